package disk

import (
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Bounds on qcow2 header fields, as QEMU itself enforces them (block/qcow2.h).
const (
	qcow2MinClusterBits = 9
	qcow2MaxClusterBits = 21
	qcow2MaxL1Bytes     = 32 << 20 // QCOW_MAX_L1_SIZE
	qcow2MaxVirtualSize = 1 << 55  // far beyond any real disk; keeps offset arithmetic safe
)

// checkQcow2Header validates the fields of a qcow2 header that drive allocations and offset
// arithmetic in go-qcow2reader, against the file's size when it is known (fileSize ≥ 0).
func checkQcow2Header(hdr []byte, fileSize int64) error {
	if len(hdr) < 72 {
		return fmt.Errorf("%w: qcow2 header is truncated (%d bytes)", ErrCorruptImage, len(hdr))
	}
	be := binary.BigEndian
	version := be.Uint32(hdr[4:])
	clusterBits := be.Uint32(hdr[20:])
	size := be.Uint64(hdr[24:])
	l1Size := be.Uint32(hdr[36:])
	l1Off := be.Uint64(hdr[40:])
	if version != 2 && version != 3 {
		return fmt.Errorf("%w: qcow2 version %d (crashkey reads versions 2 and 3)", ErrCorruptImage, version)
	}
	if version == 3 {
		if len(hdr) < 104 {
			return fmt.Errorf("%w: qcow2 v3 header is truncated (%d bytes)", ErrCorruptImage, len(hdr))
		}
		if hl := be.Uint32(hdr[100:]); hl < 104 || hl > 512 {
			return fmt.Errorf("%w: qcow2 header length %d is not within 104-512", ErrCorruptImage, hl)
		}
	}
	if clusterBits < qcow2MinClusterBits || clusterBits > qcow2MaxClusterBits {
		return fmt.Errorf("%w: qcow2 cluster_bits %d is not within %d-%d", ErrCorruptImage, clusterBits, qcow2MinClusterBits, qcow2MaxClusterBits)
	}
	if size > qcow2MaxVirtualSize {
		return fmt.Errorf("%w: qcow2 virtual size %d is absurd", ErrCorruptImage, size)
	}
	clusterSize := uint64(1) << clusterBits
	l2Entries := clusterSize / 8
	needL1 := (size + clusterSize*l2Entries - 1) / (clusterSize * l2Entries)
	if uint64(l1Size) < needL1 {
		return fmt.Errorf("%w: qcow2 L1 table has %d entries, the %d-byte disk needs %d", ErrCorruptImage, l1Size, size, needL1)
	}
	l1Bytes := uint64(l1Size) * 8
	if l1Bytes > qcow2MaxL1Bytes {
		return fmt.Errorf("%w: qcow2 L1 table of %d entries is larger than QEMU allows", ErrCorruptImage, l1Size)
	}
	if l1Size > 0 && (l1Off == 0 || l1Off%clusterSize != 0) {
		return fmt.Errorf("%w: qcow2 L1 table offset %d is not cluster-aligned", ErrCorruptImage, l1Off)
	}
	if fileSize >= 0 && l1Size > 0 && (l1Off > uint64(fileSize) || l1Bytes > uint64(fileSize)-l1Off) {
		return fmt.Errorf("%w: qcow2 L1 table (offset %d, %d bytes) lies past the end of the %d-byte file; the image is truncated", ErrCorruptImage, l1Off, l1Bytes, fileSize)
	}
	return nil
}

// fullReader makes every Read fill p. go-qcow2reader asks a decompressor for at most the
// rest of one cluster, and decompresses the cluster again for every short Read; filling p
// in one call saves that work, and a stream that ends early is reported as corrupt
// (io.ErrUnexpectedEOF) instead of passing for the end of the disk.
type fullReader struct {
	r     io.Reader
	close func() error
}

func (f *fullReader) Read(p []byte) (int, error) {
	n, err := io.ReadFull(f.r, p)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

func (f *fullReader) Close() error {
	if f.close != nil {
		return f.close()
	}
	return nil
}

func newFlateReader(r io.Reader) (io.ReadCloser, error) {
	fr := flate.NewReader(r)
	return &fullReader{r: fr, close: fr.Close}, nil
}

// zstd decoders are pooled: creating one per compressed cluster is slow.
var zstdPool = sync.Pool{New: func() any {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(8<<20))
	if err != nil {
		return err
	}
	return d
}}

func newZstdReader(r io.Reader) (io.ReadCloser, error) {
	v := zstdPool.Get()
	d, ok := v.(*zstd.Decoder)
	if !ok {
		return nil, fmt.Errorf("zstd decoder: %v", v)
	}
	if err := d.Reset(r); err != nil {
		zstdPool.Put(d)
		return nil, err
	}
	return &fullReader{r: d, close: func() error {
		_ = d.Reset(nil)
		zstdPool.Put(d)
		return nil
	}}, nil
}
