package registry

import (
	"encoding/binary"
	"math/bits"
)

// logSeed is the Marvin32 seed of the registry's log entries (the kernel's
// HvInitializeHashLibrary passes the 64-bit value 0x82EF4D887A4E55C5, low half first).
const logSeed = 0x82EF4D887A4E55C5

// marvin32 is Microsoft's Marvin32 hash of b with seed, as the 64-bit value hi<<32 | lo that
// a log entry stores little-endian.
func marvin32(b []byte, seed uint64) uint64 {
	lo, hi := uint32(seed), uint32(seed>>32)
	mix := func(v uint32) {
		lo += v
		hi ^= lo
		lo = bits.RotateLeft32(lo, 20) + hi
		hi = bits.RotateLeft32(hi, 9) ^ lo
		lo = bits.RotateLeft32(lo, 27) + hi
		hi = bits.RotateLeft32(hi, 19)
	}
	for len(b) >= 4 {
		mix(binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	final := uint32(0x80)
	for i := len(b) - 1; i >= 0; i-- {
		final = final<<8 | uint32(b[i])
	}
	mix(final)
	mix(0)
	return uint64(hi)<<32 | uint64(lo)
}
