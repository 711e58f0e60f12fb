package disk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"

	parser "www.velocidex.com/golang/go-ntfs/parser"
)

// ntfsBoot holds what crashkey takes from an NTFS boot sector. It parses the boot sector
// itself because go-ntfs v0.2.1 gets large clusters wrong: it multiplies the
// sectors-per-cluster byte by the sector size, so the byte 0xF4 (2^(256-0xF4) = 4096 sectors,
// a 2 MiB cluster, which Windows 10 1709 and later format) becomes 0x1E800, and it refuses
// anything above 64 KiB. crashkey builds go-ntfs's context with the real geometry instead
// (see newNTFSContext).
type ntfsBoot struct {
	sectorSize  int64 // bytes per sector: 512 … 4096 (4Kn)
	clusterSize int64 // bytes per cluster: one sector … 2 MiB
	sectors     int64 // sectors in the volume
	mftOffset   int64 // byte offset of $MFT in the volume
	recordSize  int64 // bytes per MFT record
	indexSize   int64 // bytes per index record
}

// maxClusterSize is the largest NTFS cluster (Windows 10 1709 and later): 2 MiB.
const maxClusterSize = 2 << 20

// parseBoot decodes and checks an NTFS boot sector (at least 512 bytes) of a volume of
// volSize bytes. Errors wrap ErrCorruptFS.
func parseBoot(b []byte, volSize int64) (ntfsBoot, error) {
	bad := func(format string, a ...any) (ntfsBoot, error) {
		return ntfsBoot{}, fmt.Errorf("%w: boot sector: %s", ErrCorruptFS, fmt.Sprintf(format, a...))
	}
	if len(b) < 512 || string(b[3:11]) != "NTFS    " {
		return bad("no NTFS signature")
	}
	if b[510] != 0x55 || b[511] != 0xAA {
		return bad("no 55 AA signature")
	}
	le := binary.LittleEndian
	var nb ntfsBoot
	nb.sectorSize = int64(le.Uint16(b[0x0B:]))
	if nb.sectorSize < 256 || nb.sectorSize > 4096 || bits.OnesCount64(uint64(nb.sectorSize)) != 1 {
		return bad("%d bytes per sector", nb.sectorSize)
	}
	spc := int64(b[0x0D])
	switch c := b[0x0D]; {
	case c >= 0xF0: // 2^(256-c) sectors
		if shift := 256 - int(c); shift <= 16 {
			spc = 1 << shift
		} else {
			spc = 0
		}
	case c == 0 || c > 0x80 || bits.OnesCount8(c) != 1:
		return bad("sectors-per-cluster byte 0x%02X", c)
	}
	nb.clusterSize = nb.sectorSize * spc
	if spc == 0 || nb.clusterSize > maxClusterSize {
		return bad("sectors-per-cluster byte 0x%02X gives clusters above 2 MiB", b[0x0D])
	}
	sectors := le.Uint64(b[0x28:])
	if sectors == 0 || sectors > uint64(volSize/nb.sectorSize) {
		return bad("%d sectors of %d bytes do not fit the %d-byte volume", sectors, nb.sectorSize, volSize)
	}
	nb.sectors = int64(sectors)
	size := nb.sectors * nb.sectorSize
	mftLCN := le.Uint64(b[0x30:])
	if mftLCN == 0 || mftLCN >= uint64(size/nb.clusterSize) {
		return bad("$MFT at cluster %d is outside the volume", mftLCN)
	}
	nb.mftOffset = int64(mftLCN) * nb.clusterSize
	var err error
	if nb.recordSize, err = recordBytes(int8(b[0x40]), nb.clusterSize); err != nil {
		return bad("MFT record size: %v", err)
	}
	if nb.indexSize, err = recordBytes(int8(b[0x44]), nb.clusterSize); err != nil {
		return bad("index record size: %v", err)
	}
	return nb, nil
}

// recordBytes decodes a clusters-per-record byte: positive in clusters, negative n means
// 2^-n bytes. Records are 256 bytes to 64 KiB.
func recordBytes(v int8, clusterSize int64) (int64, error) {
	var n int64
	switch {
	case v > 0:
		n = int64(v) * clusterSize
	case v < 0 && v >= -31:
		n = 1 << uint(-int(v))
	default:
		return 0, fmt.Errorf("byte 0x%02X", uint8(v))
	}
	if n < 256 || n > 64<<10 || bits.OnesCount64(uint64(n)) != 1 {
		return 0, fmt.Errorf("%d bytes", n)
	}
	return n, nil
}

// newNTFSContext builds go-ntfs's context for a volume read through disk, with the geometry
// of nb: go-ntfs's own GetNTFSContext refuses clusters above 64 KiB and miscomputes them
// (see ntfsBoot). It gives go-ntfs a synthetic boot sector (512-byte sectors, one sector
// per cluster, $MFT at the same byte offset, the record size as a power of two), used only
// to find $MFT, and the real cluster size, by which it reads every run list.
func newNTFSContext(disk parserReader, nb ntfsBoot) (*parser.NTFSContext, error) {
	ctx := parser.GetNTFSContextFromRawMFT(disk, nb.clusterSize, nb.recordSize)
	ctx.DiskReader = disk
	synth := make([]byte, 512)
	copy(synth[3:], "NTFS    ")
	binary.LittleEndian.PutUint16(synth[0x0B:], 512)
	synth[0x0D] = 1
	binary.LittleEndian.PutUint64(synth[0x28:], uint64(nb.sectors*nb.sectorSize/512))
	binary.LittleEndian.PutUint64(synth[0x30:], uint64(nb.mftOffset/512))
	synth[0x40] = byte(-int8(bits.TrailingZeros64(uint64(nb.recordSize))))
	synth[0x44] = byte(-int8(bits.TrailingZeros64(uint64(nb.indexSize))))
	synth[510], synth[511] = 0x55, 0xAA
	ctx.Boot = &parser.NTFS_BOOT_SECTOR{Reader: bytes.NewReader(synth), Profile: ctx.Profile}
	mft, err := parser.BootstrapMFT(ctx)
	if err != nil {
		return nil, err
	}
	ctx.MFTReader = mft
	return ctx, nil
}

// parserReader is what go-ntfs reads a volume through.
type parserReader interface {
	ReadAt(p []byte, off int64) (int, error)
}
