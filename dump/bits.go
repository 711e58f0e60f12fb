package dump

import (
	"encoding/binary"
	"math/bits"
)

// popcountBits counts the set bits among the first nbits bits of b (LSB-first).
func popcountBits(b []byte, nbits uint64) uint64 {
	nbytes := nbits / 8
	var c uint64
	i := uint64(0)
	for ; i+8 <= nbytes; i += 8 {
		c += uint64(bits.OnesCount64(binary.LittleEndian.Uint64(b[i:])))
	}
	for ; i < nbytes; i++ {
		c += uint64(bits.OnesCount8(b[i]))
	}
	if r := nbits % 8; r != 0 {
		c += uint64(bits.OnesCount8(b[nbytes] & (byte(1<<r) - 1)))
	}
	return c
}
