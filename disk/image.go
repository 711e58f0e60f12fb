package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/lima-vm/go-qcow2reader/image/qcow2"
	qlog "github.com/lima-vm/go-qcow2reader/log"

	"github.com/crashkey/crashkey/internal/hostfile"
	"github.com/crashkey/crashkey/internal/units"
)

// Image formats reported by [Image.Format].
const (
	FormatRaw   = "raw"
	FormatQcow2 = "qcow2"
)

// Errors that callers may test for with errors.Is.
var (
	// ErrUnsupportedFormat: the image is vmdk, vhdx, vdi, vpc, parallels, … (the message
	// carries the qemu-img convert command that helps).
	ErrUnsupportedFormat = errors.New("unsupported image format")
	// ErrInUse: a running QEMU holds the image's lock and Options.ForceShare was not set.
	ErrInUse = errors.New("image in use")
	// ErrCorruptImage: the image is damaged: a broken qcow2 structure or a truncated file,
	// and also (wrapped with ErrCorruptFS) NTFS structures damaged so that a search cannot
	// go on (a data cluster past the end of the volume, a broken MFT record, an index larger
	// than the volume). Commands exit 3 on it.
	ErrCorruptImage = errors.New("corrupt image")
	// ErrNoVolume: no volume matches (no NTFS volume with \Windows, or a bad --partition).
	ErrNoVolume = errors.New("no such volume")
)

// Options control [Open] and [OpenSource].
type Options struct {
	// ForceShare reads an image even while a running QEMU holds its lock (or holds a
	// backing file of it with write permission). The guest may be writing to it, so what is
	// read may be inconsistent; a warning says so.
	ForceShare bool
	// Partition selects the volume that WindowsVolume returns by its index (as in
	// [Volume.Index]); 0 finds the NTFS volume that holds \Windows by itself.
	Partition int
	// AllowBacking widens which local backing files [Open] follows (see [BackingPolicy];
	// the zero value is the safe default). It is not used when Resolver is set.
	AllowBacking BackingPolicy
	// Resolver opens backing files. nil means [LocalResolver](AllowBacking) for a
	// [FileSource] and refusing every backing file for other sources.
	Resolver Resolver
	// Context, when set, ends every long operation on the image (opening, directory walks,
	// reads) soon after it is cancelled, with an error wrapping its error.
	Context context.Context
}

// Image is an opened disk image. It is an [io.ReaderAt] over the virtual disk (the bytes
// the guest sees). It is safe for concurrent use.
type Image struct {
	path     string
	format   string
	img      layer
	sources  []Source // every source of the chain, top first; closed by Close
	chain    []ChainFile
	size     int64
	opts     Options
	ctx      context.Context
	scheme   string
	vols     []Volume
	warnings []string

	mu  sync.Mutex
	fss map[int]*FS

	corruptN   atomic.Int64 // how many times corruption was met while reading
	corruptMu  sync.Mutex
	corruptErr error // the last corruption met

	ioErr atomic.Pointer[SourceError] // the first read of a source that failed (sticky)
}

// SourceError is a read of an image's [Source] that failed: an I/O error of the file, device
// or remote stream, not damage of the image (it never wraps ErrCorruptImage). Once a source
// failed, every later operation on the image returns the same SourceError: go-ntfs may have
// taken the failed read for zeros, so no result read after it is trusted. Reopen the image
// to try again.
type SourceError struct {
	Source string // the source's Name
	Off    int64  // byte offset of the failed read in the source
	Err    error  // the source's error
}

func (e *SourceError) Error() string {
	return fmt.Sprintf("read %s at byte %d: %v", e.Source, e.Off, e.Err)
}

func (e *SourceError) Unwrap() error { return e.Err }

// failed returns the first read error of a source, or nil.
func (im *Image) failed() error {
	if e := im.ioErr.Load(); e != nil {
		return e
	}
	return nil
}

// sourceReader reads a source of the chain and records its I/O errors in the image, so that
// an error go-qcow2reader or go-ntfs would turn into "corrupt" or hide stays an I/O error.
type sourceReader struct {
	Source
	im *Image
}

func (s sourceReader) ReadAt(p []byte, off int64) (int, error) {
	n, err := s.Source.ReadAt(p, off)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		se := &SourceError{Source: s.Name(), Off: off + int64(n), Err: err}
		s.im.ioErr.CompareAndSwap(nil, se)
		return n, se
	}
	return n, err
}

// noteCorrupt records corruption met while reading, so that the operation that met it
// reports it (see FS.guard) even when go-ntfs hides the error behind zeros.
func (im *Image) noteCorrupt(err error) {
	im.corruptMu.Lock()
	im.corruptErr = err
	im.corruptMu.Unlock()
	im.corruptN.Add(1)
}

func (im *Image) lastCorrupt() error {
	im.corruptMu.Lock()
	defer im.corruptMu.Unlock()
	if im.corruptErr == nil {
		return ErrCorruptImage
	}
	return im.corruptErr
}

// layer is one opened image of a chain: qcow2 (with or without a backing layer) or raw.
type layer interface {
	io.ReaderAt
	Size() int64
}

func init() {
	qlog.SetWarnFunc(nil) // the library's warnings go to the standard logger otherwise
	qcow2.SetDecompressor(qcow2.CompressionTypeZstd, newZstdReader)
	qcow2.SetDecompressor(qcow2.CompressionTypeZlib, newFlateReader)
}

// Open opens the image at path read-only (a regular file or a block device; see
// [OpenFile]), reads its partition table and probes every volume. It refuses formats it
// cannot read, backing files that opts.AllowBacking does not allow and, without
// opts.ForceShare, images that a running QEMU holds.
func Open(path string, opts Options) (*Image, error) {
	src, err := OpenFile(path)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	im, err := OpenSource(src, opts)
	if err != nil {
		_ = src.Close()
		return nil, err
	}
	slog.Debug("disk: image opened", "path", path, "format", im.format, "size", im.size, "scheme", im.scheme, "volumes", len(im.vols))
	return im, nil
}

// OpenSource opens the image held by src: a local [FileSource] or any other [Source], such
// as a remote volume. Backing files of a qcow2 image are opened through opts.Resolver. The
// Image takes src over: Close closes it (and every backing source) when they implement
// io.Closer. When OpenSource fails, src is left open for the caller to close.
func OpenSource(src Source, opts Options) (*Image, error) {
	ctx := opts.Context
	if ctx == nil {
		ctx = context.Background()
	}
	res := opts.Resolver
	if res == nil {
		res = noResolver{}
		if _, ok := src.(*FileSource); ok {
			res = LocalResolver(opts.AllowBacking)
		}
	}
	im := &Image{path: src.Name(), opts: opts, ctx: ctx, fss: map[int]*FS{}}
	c := &chain{im: im, res: res, seen: map[string]bool{}}
	if err := c.add(src, ""); err != nil {
		return nil, err
	}
	img, err := c.open(src)
	if ioErr := im.failed(); ioErr != nil {
		err = ioErr
	}
	if err != nil {
		im.closeSources(1)
		return nil, fmt.Errorf("open image %s: %w", im.path, err)
	}
	im.img = img
	err = im.load()
	if ioErr := im.failed(); ioErr != nil {
		err = fmt.Errorf("open image %s: %w", im.path, ioErr)
	}
	if err != nil {
		im.closeSources(1)
		return nil, err
	}
	return im, nil
}

// openReader opens an image held by any io.ReaderAt of the given size (tests and fuzzing).
func openReader(ra io.ReaderAt, size int64, name string, opts Options) (*Image, error) {
	return OpenSource(readerSource{ra, size, name}, opts)
}

// load reads the partition table and probes the volumes.
func (im *Image) load() error {
	im.size = im.img.Size()
	if len(im.chain) > 0 {
		im.format = im.chain[0].Format
	}
	if im.size < 0 {
		return fmt.Errorf("open image %s: %w: unknown virtual size", im.path, ErrCorruptImage)
	}
	parts, scheme, err := readPartitions(im, im.size)
	if err != nil {
		return fmt.Errorf("image %s: %w", im.path, err)
	}
	im.scheme = scheme
	for _, p := range parts {
		if err := im.ctx.Err(); err != nil {
			return fmt.Errorf("image %s: %w", im.path, err)
		}
		im.vols = append(im.vols, im.probe(p))
	}
	if err := im.ctx.Err(); err != nil {
		return fmt.Errorf("image %s: %w", im.path, err)
	}
	return nil
}

// closeSources closes the sources of the chain from index from on.
func (im *Image) closeSources(from int) {
	for i := from; i < len(im.sources); i++ {
		if c, ok := im.sources[i].(io.Closer); ok {
			_ = c.Close()
		}
	}
	if from < len(im.sources) {
		im.sources = im.sources[:from]
	}
}

// chain opens a backing chain, guards it against loops and unbounded depth, and records
// every file followed.
type chain struct {
	im   *Image
	res  Resolver
	seen map[string]bool
}

const maxChainDepth = 16

// add records src as the next file of the chain, checks that it is not already in it and
// whether a running QEMU holds it.
func (c *chain) add(src Source, format string) error {
	im := c.im
	cf := ChainFile{Name: src.Name(), Format: format}
	key := "name:" + src.Name()
	fs, local := src.(*FileSource)
	if local {
		cf = fs.chainFile(format)
		key = fmt.Sprintf("file:%d:%d", cf.Dev, cf.Ino)
	}
	if len(im.chain) >= maxChainDepth {
		return fmt.Errorf("%w: backing chain deeper than %d images", ErrCorruptImage, maxChainDepth)
	}
	if c.seen[key] {
		return fmt.Errorf("%w: backing chain loops back to %s", ErrCorruptImage, cf.Name)
	}
	c.seen[key] = true
	if local {
		held, written, err := hostfile.QEMULocks(fs.File())
		if err != nil {
			return fmt.Errorf("open image: check for a running QEMU on %s: %w", cf.Name, err)
		}
		cf.InUse, cf.Written = held, written
		top := len(im.chain) == 0
		switch {
		case top && held && !im.opts.ForceShare:
			return fmt.Errorf("%w: %s is locked by a running QEMU; pause or shut down the VM first, or pass --force-share to read it anyway (a running guest's image may be inconsistent)", ErrInUse, src.Name())
		case top && held:
			im.warnings = append(im.warnings, fmt.Sprintf("%s is in use by a running QEMU: a running guest's image may be inconsistent", src.Name()))
		case written && !im.opts.ForceShare:
			return fmt.Errorf("%w: %s, a backing file of %s, is held with write permission by a running QEMU; shut down that VM first, or pass --force-share to read it anyway (the image may be inconsistent)", ErrInUse, cf.Name, im.path)
		case written:
			im.warnings = append(im.warnings, fmt.Sprintf("%s, a backing file of %s, is being written by a running QEMU: the image may be inconsistent", cf.Name, im.path))
		}
	}
	im.chain = append(im.chain, cf)
	im.sources = append(im.sources, src)
	return nil
}

// open detects the format of src (the last file added to the chain) and opens it. qcow2
// headers are checked before the library sees them, so that a hostile header cannot make it
// allocate gigabytes, and the library never sees a backing file name: the chain opens
// backing files itself, through the Resolver, and layers them under the image.
func (c *chain) open(src Source) (layer, error) {
	if err := c.im.ctx.Err(); err != nil {
		return nil, err
	}
	self := &c.im.chain[len(c.im.chain)-1]
	rd := sourceReader{src, c.im} // every read of src goes through rd
	hdr := make([]byte, 512)
	n, err := rd.ReadAt(hdr, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read header: %w", err)
	}
	hdr = hdr[:n]
	if !bytesHasPrefix(hdr, qcow2Magic) {
		if self.Format == FormatQcow2 {
			return nil, fmt.Errorf("%w: %s is named as a qcow2 backing file but has no qcow2 header", ErrCorruptImage, src.Name())
		}
		if self.Format == "" {
			if t := foreignFormat(hdr); t != "" {
				return nil, unsupported(t, src)
			}
		}
		self.Format = FormatRaw
		return rawLayer{rd}, nil
	}
	if self.Format == FormatRaw { // the overlay says raw: read it as raw, as QEMU would
		return rawLayer{rd}, nil
	}
	self.Format = FormatQcow2
	if err := checkQcow2Header(hdr, src.Size()); err != nil {
		return nil, err
	}
	backing, err := backingName(rd, hdr)
	if err != nil {
		return nil, err
	}
	q, err := qcow2.Open(noBacking{rd}, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptImage, err)
	}
	if err := q.Readable(); err != nil {
		return nil, fmt.Errorf("qcow2 image %s cannot be read: %w%s", src.Name(), err, readableHint(err))
	}
	if backing == "" {
		return q, nil
	}
	if q.HeaderFieldsV3 != nil && q.IncompatibleFeatures&(1<<qcow2.IncompatibleFeaturesExtendedL2EntriesBit) != 0 {
		return nil, fmt.Errorf("%w: %s has extended L2 entries (subclusters) and a backing file, which crashkey does not read; flatten it: qemu-img convert -O qcow2 IMAGE FLAT.qcow2", ErrUnsupportedFormat, src.Name())
	}
	format := ""
	switch t := string(q.BackingFileFormat); t {
	case "", FormatRaw, FormatQcow2:
		format = t
	default:
		return nil, fmt.Errorf("%w: backing file %s of %s is a %s image; crashkey reads raw and qcow2 only: qemu-img convert -O qcow2 IMAGE FLAT.qcow2 flattens the chain", ErrUnsupportedFormat, backing, src.Name(), t)
	}
	bsrc, err := c.res.Backing(src, backing)
	if err != nil {
		return nil, err
	}
	if err := c.add(bsrc, format); err != nil {
		if cl, ok := bsrc.(io.Closer); ok {
			_ = cl.Close()
		}
		return nil, err
	}
	base, err := c.open(bsrc)
	if err != nil {
		return nil, err
	}
	return &layered{top: q, base: base}, nil
}

// backingName reads the backing file name of a qcow2 header ("" when there is none).
func backingName(src Source, hdr []byte) (string, error) {
	off := binary.BigEndian.Uint64(hdr[8:])
	n := binary.BigEndian.Uint32(hdr[16:])
	if off == 0 {
		return "", nil
	}
	if n == 0 || n > 1023 || off > uint64(src.Size()) || uint64(n) > uint64(src.Size())-off {
		return "", fmt.Errorf("%w: qcow2 backing file name (offset %d, %d bytes) is invalid", ErrCorruptImage, off, n)
	}
	name := make([]byte, n)
	if _, err := readFull(src, name, int64(off)); err != nil {
		return "", fmt.Errorf("%w: read qcow2 backing file name: %v", ErrCorruptImage, err)
	}
	if strings.IndexByte(string(name), 0) >= 0 {
		return "", fmt.Errorf("%w: qcow2 backing file name %q holds a NUL byte", ErrCorruptImage, name)
	}
	return string(name), nil
}

// noBacking shows go-qcow2reader a qcow2 image without its backing file name (bytes 8-19 of
// the header read as zero), so that the library never opens a file by itself. It has no
// Name and no Close on purpose.
type noBacking struct{ ra io.ReaderAt }

func (b noBacking) ReadAt(p []byte, off int64) (int, error) {
	n, err := b.ra.ReadAt(p, off)
	for i := max(off, 8); i < 20 && i < off+int64(n); i++ {
		p[i-off] = 0
	}
	return n, err
}

// rawLayer is a raw image: the source's bytes as they are.
type rawLayer struct{ src Source }

func (r rawLayer) ReadAt(p []byte, off int64) (int, error) { return r.src.ReadAt(p, off) }
func (r rawLayer) Size() int64                             { return r.src.Size() }

// layered is a qcow2 image over its backing image: clusters the qcow2 image does not
// allocate read from the backing image (zeros past its end), as QEMU reads them.
type layered struct {
	top  *qcow2.Qcow2
	base layer
}

func (l *layered) Size() int64 { return l.top.Size() }

func (l *layered) ReadAt(p []byte, off int64) (int, error) {
	size := l.top.Size()
	if off >= size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > size-off {
		p = p[:size-off]
	}
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		ext, err := l.top.Extent(pos, int64(len(p)-n))
		if err != nil {
			return n, err
		}
		if ext.Length <= 0 {
			return n, fmt.Errorf("%w: no cluster status at byte %d", ErrCorruptImage, pos)
		}
		end := n + int(min(ext.Length, int64(len(p)-n)))
		chunk := p[n:end]
		if ext.Allocated {
			if _, err := readFull(l.top, chunk, pos); err != nil {
				return n, err
			}
		} else {
			bsize := l.base.Size()
			k := 0
			if pos < bsize {
				k = int(min(int64(len(chunk)), bsize-pos))
				if _, err := readFull(l.base, chunk[:k], pos); err != nil {
					return n, fmt.Errorf("backing file: %w", err)
				}
			}
			clear(chunk[k:])
		}
		n = end
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

func readableHint(err error) string {
	switch {
	case errors.Is(err, qcow2.ErrUnsupportedBackingFile):
		return "; make the backing file reachable (qemu-img info --backing-chain shows the chain; qemu-img rebase -u fixes a moved path) or flatten it: qemu-img convert -O qcow2 IMAGE FLAT.qcow2"
	case errors.Is(err, qcow2.ErrUnsupportedEncryption):
		return "; decrypt it first: qemu-img convert --object secret,... -O qcow2 IMAGE PLAIN.qcow2"
	case errors.Is(err, qcow2.ErrUnsupportedFeature):
		return "; convert it first: qemu-img convert -O qcow2 IMAGE PLAIN.qcow2"
	}
	return ""
}

var qcow2Magic = []byte{'Q', 'F', 'I', 0xfb}

func bytesHasPrefix(b, p []byte) bool { return len(b) >= len(p) && string(b[:len(p)]) == string(p) }

// foreignFormat names the image formats that crashkey detects but does not read.
func foreignFormat(hdr []byte) string {
	switch {
	case bytesHasPrefix(hdr, []byte("KDMV")), bytesHasPrefix(hdr, []byte("COWD")),
		bytesHasPrefix(hdr, []byte("# Disk DescriptorFile")):
		return "vmdk"
	case bytesHasPrefix(hdr, []byte("vhdxfile")):
		return "vhdx"
	case bytesHasPrefix(hdr, []byte("conectix")):
		return "vpc"
	case bytesHasPrefix(hdr, []byte("WithoutFreeSpace")), bytesHasPrefix(hdr, []byte("WithouFreSpacExt")):
		return "parallels"
	case len(hdr) >= 0x44 && binary.LittleEndian.Uint32(hdr[0x40:]) == 0xbeda107f:
		return "vdi"
	}
	return ""
}

func unsupported(format string, ra io.ReaderAt) error {
	name := "IMAGE"
	if nm, ok := ra.(interface{ Name() string }); ok {
		name = nm.Name()
	}
	out := strings.TrimSuffix(name, filepath.Ext(name)) + ".qcow2"
	return fmt.Errorf("%w: %s is a %s image; crashkey reads raw and qcow2 images only, so convert it first: qemu-img convert -f %s -O qcow2 %s %s",
		ErrUnsupportedFormat, name, format, format, shellQuote(name), shellQuote(out))
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == '+' || r == ':' ||
			(r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Path is the file name the image was opened from.
func (im *Image) Path() string { return im.path }

// Format is FormatRaw or FormatQcow2.
func (im *Image) Format() string { return im.format }

// Size is the virtual disk's size in bytes.
func (im *Image) Size() int64 { return im.size }

// Scheme is the partition-table scheme: SchemeGPT, SchemeMBR or SchemeNone.
func (im *Image) Scheme() string { return im.scheme }

// Warnings lists what the caller should tell the user (e.g. reading an image in use).
func (im *Image) Warnings() []string { return append([]string(nil), im.warnings...) }

// Chain lists every file of the image's backing chain that was followed, the image itself
// first. Callers show it, and must never write to any of its files (compare an output
// path with [ChainFile.Same]).
func (im *Image) Chain() []ChainFile { return append([]ChainFile(nil), im.chain...) }

// ReadAt reads the virtual disk. Reads past the end return io.EOF as io.ReaderAt requires.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("disk: negative offset %d", off)
	}
	if off >= im.size {
		return 0, io.EOF
	}
	if err := im.ctx.Err(); err != nil {
		return 0, fmt.Errorf("read image %s: %w", im.path, err)
	}
	if err := im.failed(); err != nil {
		return 0, fmt.Errorf("read image %s: %w", im.path, err)
	}
	want := len(p)
	if int64(want) > im.size-off {
		p = p[:im.size-off]
	}
	n := 0
	for n < len(p) {
		m, err := im.img.ReadAt(p[n:], off+int64(n))
		n += m
		if err != nil {
			if errors.Is(err, io.EOF) && n == len(p) {
				break
			}
			if ioErr := im.failed(); ioErr != nil { // whatever the qcow2 reader made of it
				return n, fmt.Errorf("read image %s at byte %d: %w", im.path, off+int64(n), ioErr)
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				err = fmt.Errorf("%w: data ends early (a truncated image?)", ErrCorruptImage)
			}
			err = fmt.Errorf("read image %s at byte %d: %w", im.path, off+int64(n), err)
			if errors.Is(err, ErrCorruptImage) {
				im.noteCorrupt(err)
			}
			return n, err
		}
		if m == 0 {
			return n, fmt.Errorf("read image %s at byte %d: %w", im.path, off+int64(n), io.ErrNoProgress)
		}
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// Close releases the image and every volume opened from it.
func (im *Image) Close() error {
	im.mu.Lock()
	for _, fs := range im.fss {
		fs.close()
	}
	im.fss = map[int]*FS{}
	srcs := im.sources
	im.sources = nil
	im.mu.Unlock()
	var err error
	for _, s := range srcs {
		if c, ok := s.(io.Closer); ok {
			if cerr := c.Close(); err == nil {
				err = cerr
			}
		}
	}
	return err
}

// Volumes lists the partitions (or the one bare file system) of the disk.
func (im *Image) Volumes() []Volume { return append([]Volume(nil), im.vols...) }

// Volume opens the NTFS file system of the volume with the given index.
func (im *Image) Volume(index int) (*FS, error) {
	for _, v := range im.vols {
		if v.Index == index {
			if v.FS != FSNTFS {
				return nil, fmt.Errorf("%w: volume %d of %s is not NTFS (%s)", ErrNoVolume, index, im.path, v.describe())
			}
			return im.fs(v)
		}
	}
	return nil, fmt.Errorf("%w: %s has no volume %d; volumes: %s", ErrNoVolume, im.path, index, im.volumeList())
}

// WindowsVolume returns the NTFS volume that holds \Windows, or the one chosen with
// Options.Partition. With several candidates it prefers one with
// \Windows\System32\config\SYSTEM, then the first.
func (im *Image) WindowsVolume() (*FS, error) {
	if im.opts.Partition != 0 {
		slog.Debug("disk: volume chosen", "volume", im.opts.Partition, "reason", "--partition")
		return im.Volume(im.opts.Partition)
	}
	var cands []Volume
	for _, v := range im.vols {
		if v.HasWindows {
			cands = append(cands, v)
		}
	}
	if len(cands) == 0 {
		if err := im.failed(); err != nil {
			return nil, fmt.Errorf("image %s: %w", im.path, err)
		}
		for _, v := range im.vols {
			if v.err != nil && errors.Is(v.err, ErrCorruptImage) {
				return nil, fmt.Errorf("image %s: volume %d could not be searched for \\Windows: %w", im.path, v.Index, v.err)
			}
		}
		return nil, fmt.Errorf("%w: no NTFS volume of %s has a \\Windows directory (volumes: %s); choose one with --partition N", ErrNoVolume, im.path, im.volumeList())
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].hasSystemHive && !cands[j].hasSystemHive })
	slog.Debug("disk: volume chosen", "volume", cands[0].Index, "reason", "NTFS with \\Windows", "system_hive", cands[0].hasSystemHive, "candidates", len(cands), "start", cands[0].Start)
	return im.fs(cands[0])
}

func (im *Image) volumeList() string {
	if len(im.vols) == 0 {
		return "none"
	}
	var s []string
	for _, v := range im.vols {
		s = append(s, fmt.Sprintf("%d %s", v.Index, v.describe()))
	}
	return strings.Join(s, ", ")
}

func (im *Image) fs(v Volume) (*FS, error) {
	im.mu.Lock()
	defer im.mu.Unlock()
	if fs, ok := im.fss[v.Index]; ok {
		return fs, nil
	}
	fs, err := openNTFS(im, v)
	if ioErr := im.failed(); ioErr != nil {
		if fs != nil {
			fs.close()
		}
		return nil, fmt.Errorf("ntfs: volume %d of %s: %w", v.Index, im.path, ioErr)
	}
	if err != nil {
		return nil, err
	}
	im.fss[v.Index] = fs
	return fs, nil
}

// probe fills in what a volume holds: NTFS or not, its label, and whether it has \Windows.
func (im *Image) probe(p part) Volume {
	v := Volume{Index: p.index, Start: p.start, Size: p.size, Scheme: p.scheme, Type: p.typ,
		TypeName: p.typeName, Name: p.name, Logical: p.logical}
	boot := make([]byte, 512)
	if _, err := readFull(im, boot, p.start); err != nil {
		v.Error = fmt.Sprintf("read the first sector: %v", err)
		return v
	}
	if string(boot[3:11]) != "NTFS    " {
		return v
	}
	v.FS = FSNTFS
	fs, err := openNTFS(im, v)
	if err != nil {
		v.Error, v.err = err.Error(), err
		return v
	}
	defer fs.close()
	v.Label = fs.label()
	st, err := fs.Stat("Windows")
	switch {
	case err == nil && st.IsDir:
		v.HasWindows = true
		if _, err := fs.Stat(`Windows\System32\config\SYSTEM`); err == nil {
			v.hasSystemHive = true
		}
	case err != nil && !errors.Is(err, ErrNotFound):
		v.Error, v.err = err.Error(), err
	}
	return v
}

// FSNTFS is the only file system [Volume.FS] reports.
const FSNTFS = "ntfs"

// Volume describes one partition (or the bare file system) of a disk.
type Volume struct {
	Index    int    `json:"index"`               // 1-based partition number (MBR logicals from 5); 1 for a bare file system
	Start    int64  `json:"start"`               // byte offset on the virtual disk
	Size     int64  `json:"size"`                // bytes
	Scheme   string `json:"scheme"`              // SchemeGPT, SchemeMBR or SchemeNone
	Type     string `json:"type,omitempty"`      // GPT type GUID or MBR type byte ("0x07")
	TypeName string `json:"type_name,omitempty"` // human name of Type
	Name     string `json:"name,omitempty"`      // GPT partition name
	Logical  bool   `json:"logical,omitempty"`   // an MBR logical partition
	FS       string `json:"fs,omitempty"`        // FSNTFS, or empty when not NTFS
	Label    string `json:"label,omitempty"`     // NTFS volume label
	// HasWindows reports a \Windows directory on the volume.
	HasWindows bool `json:"has_windows"`
	// Error says why an NTFS-looking volume could not be read.
	Error string `json:"error,omitempty"`

	hasSystemHive bool
	err           error // why the volume could not be read or searched
}

func (v Volume) describe() string {
	s := fmt.Sprintf("(%s, %s", v.TypeName, units.Bytes(v.Size))
	if v.FS != "" {
		s += ", " + v.FS
	}
	if v.Error != "" {
		s += ", unreadable: " + v.Error
	}
	if v.Label != "" {
		s += fmt.Sprintf(" %q", v.Label)
	}
	if v.HasWindows {
		s += `, has \Windows`
	}
	return s + ")"
}
