package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/lima-vm/go-qcow2reader"
	"github.com/lima-vm/go-qcow2reader/image"
	"github.com/lima-vm/go-qcow2reader/image/qcow2"
	qlog "github.com/lima-vm/go-qcow2reader/log"

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
	// ErrCorruptImage: the qcow2 structure is damaged.
	ErrCorruptImage = errors.New("corrupt image")
	// ErrNoVolume: no volume matches (no NTFS volume with \Windows, or a bad --partition).
	ErrNoVolume = errors.New("no such volume")
)

// Options control [Open].
type Options struct {
	// ForceShare reads an image even while a running QEMU holds its lock. The guest may be
	// writing to it, so what is read may be inconsistent; a warning says so.
	ForceShare bool
	// Partition selects the volume that WindowsVolume returns by its index (as in
	// [Volume.Index]); 0 finds the NTFS volume that holds \Windows by itself.
	Partition int
}

// Image is an opened disk image. It is an [io.ReaderAt] over the virtual disk (the bytes
// the guest sees). It is safe for concurrent use.
type Image struct {
	path     string
	format   string
	file     *os.File
	img      image.Image
	size     int64
	opts     Options
	scheme   string
	vols     []Volume
	warnings []string

	mu  sync.Mutex
	fss map[int]*FS
}

func init() {
	qlog.SetWarnFunc(nil) // the library's warnings go to the standard logger otherwise
	qcow2.SetDecompressor(qcow2.CompressionTypeZstd, newZstdReader)
	qcow2.SetDecompressor(qcow2.CompressionTypeZlib, newFlateReader)
}

// Open opens the image at path read-only, reads its partition table and probes every
// volume. It refuses formats it cannot read and, without opts.ForceShare, images that a
// running QEMU holds.
func Open(path string, opts Options) (*Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	im, err := open(f, path, opts)
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	slog.Debug("disk: image opened", "path", path, "format", im.format, "size", im.size, "scheme", im.scheme, "volumes", len(im.vols))
	return im, nil
}

func open(f *os.File, path string, opts Options) (*Image, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open image: %w", err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("open image: %s is a directory, not a disk image", path)
	}
	im := &Image{path: path, file: f, opts: opts, fss: map[int]*FS{}}
	held, err := lockedByQEMU(f)
	if err != nil {
		return nil, fmt.Errorf("open image: check for a running QEMU: %w", err)
	}
	if held {
		if !opts.ForceShare {
			return nil, fmt.Errorf("%w: %s is locked by a running QEMU; pause or shut down the VM first, or pass --force-share to read it anyway (a running guest's image may be inconsistent)", ErrInUse, path)
		}
		im.warnings = append(im.warnings, fmt.Sprintf("%s is in use by a running QEMU: a running guest's image may be inconsistent", path))
	}
	size := st.Size()
	if st.Mode()&os.ModeDevice != 0 { // a block device (an LVM volume, a disk): ask it
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			return nil, fmt.Errorf("open image: size of device %s: %w", path, err)
		}
	}
	if err := im.load(f, size); err != nil {
		return nil, err
	}
	return im, nil
}

// openReader opens an image held by any io.ReaderAt of the given size (tests and fuzzing).
func openReader(ra io.ReaderAt, size int64, name string, opts Options) (*Image, error) {
	im := &Image{path: name, opts: opts, fss: map[int]*FS{}}
	if err := im.load(ra, size); err != nil {
		return nil, err
	}
	return im, nil
}

// load detects the image format, reads the partition table and probes the volumes.
func (im *Image) load(ra io.ReaderAt, fileSize int64) error {
	img, err := openImage(ra, fileSize, &chain{seen: map[string]bool{}})
	if err != nil {
		return fmt.Errorf("open image %s: %w", im.path, err)
	}
	im.img = img
	im.format = string(img.Type())
	im.size = img.Size()
	if im.format == FormatRaw {
		im.size = fileSize // also right for block devices, whose Stat size is 0
	}
	if im.size < 0 {
		_ = img.Close()
		return fmt.Errorf("open image %s: %w: unknown virtual size", im.path, ErrCorruptImage)
	}
	parts, scheme, err := readPartitions(im, im.size)
	if err != nil {
		_ = img.Close()
		return fmt.Errorf("image %s: %w", im.path, err)
	}
	im.scheme = scheme
	for _, p := range parts {
		im.vols = append(im.vols, im.probe(p))
	}
	return nil
}

// chain guards a qcow2 backing chain against loops and unbounded depth, and keeps the
// first error met while opening it.
type chain struct {
	seen  map[string]bool
	depth int
	err   error
}

// errImage stands in for a backing image that could not be opened: go-qcow2reader v0.7.1
// panics when its opener returns an error (it closes the nil image), so the opener returns
// this instead and the error is reported from chain.err.
type errImage struct{ err error }

func (e errImage) ReadAt([]byte, int64) (int, error)         { return 0, e.err }
func (e errImage) Close() error                              { return nil }
func (e errImage) Extent(int64, int64) (image.Extent, error) { return image.Extent{}, e.err }
func (e errImage) Type() image.Type                          { return "unreadable" }
func (e errImage) Size() int64                               { return 0 }
func (e errImage) Readable() error                           { return e.err }

const maxChainDepth = 16

// openImage detects the format of ra and opens it. qcow2 headers are checked before the
// library sees them, so that a hostile header cannot make it allocate gigabytes.
func openImage(ra io.ReaderAt, fileSize int64, c *chain) (image.Image, error) {
	hdr := make([]byte, 512)
	n, err := ra.ReadAt(hdr, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read header: %w", err)
	}
	hdr = hdr[:n]
	if bytesHasPrefix(hdr, qcow2Magic) {
		if err := checkQcow2Header(hdr, fileSize); err != nil {
			return nil, err
		}
		if err := checkBacking(ra, hdr); err != nil {
			return nil, err
		}
		var opener image.OpenWithType
		opener = func(bra io.ReaderAt, t image.Type) (image.Image, error) {
			img, err := openBacking(bra, t, c)
			if err != nil {
				if c.err == nil {
					name := "?"
					if nm, ok := bra.(interface{ Name() string }); ok {
						name = nm.Name()
					}
					c.err = fmt.Errorf("backing file %s: %w", name, err)
				}
				if closer, ok := bra.(io.Closer); ok {
					_ = closer.Close()
				}
				return errImage{err}, nil
			}
			return img, nil
		}
		if nm, ok := ra.(interface{ Name() string }); ok && c.depth == 0 {
			if abs, err := filepath.Abs(nm.Name()); err == nil {
				c.seen[abs] = true
			}
		}
		img, err := qcow2.Open(ra, opener)
		if err != nil {
			if img != nil {
				_ = img.Close()
			}
			return nil, fmt.Errorf("%w: %v", ErrCorruptImage, err)
		}
		if c.err != nil {
			_ = img.Close()
			return nil, c.err
		}
		if err := img.Readable(); err != nil {
			_ = img.Close()
			return nil, fmt.Errorf("qcow2 image cannot be read: %w%s", err, readableHint(err))
		}
		return img, nil
	}
	if t := foreignFormat(hdr); t != "" {
		return nil, unsupported(t, ra)
	}
	img, err := qcow2reader.Open(ra)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptImage, err)
	}
	switch img.Type() {
	case FormatRaw:
		if err := img.Readable(); err != nil {
			_ = img.Close()
			return nil, err
		}
		return img, nil
	default:
		t := string(img.Type())
		_ = img.Close()
		return nil, unsupported(t, ra)
	}
}

func openBacking(ra io.ReaderAt, t image.Type, c *chain) (image.Image, error) {
	name := ""
	if nm, ok := ra.(interface{ Name() string }); ok {
		name = nm.Name()
		if abs, err := filepath.Abs(name); err == nil {
			name = abs
		}
	}
	if c.depth >= maxChainDepth {
		return nil, fmt.Errorf("backing chain deeper than %d images", maxChainDepth)
	}
	if name != "" && c.seen[name] {
		return nil, fmt.Errorf("backing chain loops back to %s", name)
	}
	if name != "" {
		c.seen[name] = true
	}
	c.depth++
	size := int64(-1)
	if f, ok := ra.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			size = st.Size()
		}
	}
	switch t {
	case FormatRaw:
		return qcow2reader.OpenWithType(ra, t)
	case "", qcow2.Type:
		return openImage(ra, size, c)
	default:
		return nil, unsupported(string(t), ra)
	}
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

// ReadAt reads the virtual disk. Reads past the end return io.EOF as io.ReaderAt requires.
func (im *Image) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("disk: negative offset %d", off)
	}
	if off >= im.size {
		return 0, io.EOF
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
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: data ends early (a truncated image?)", ErrCorruptImage)
			}
			return n, fmt.Errorf("read image %s at byte %d: %w", im.path, off+int64(n), err)
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
	im.mu.Unlock()
	if im.img != nil {
		return im.img.Close() // closes the file too
	}
	if im.file != nil {
		return im.file.Close()
	}
	return nil
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
		v.Error = err.Error()
		return v
	}
	defer fs.close()
	v.Label = fs.label()
	if st, err := fs.Stat("Windows"); err == nil && st.IsDir {
		v.HasWindows = true
		if _, err := fs.Stat(`Windows\System32\config\SYSTEM`); err == nil {
			v.hasSystemHive = true
		}
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
