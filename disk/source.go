package disk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/crashkey/crashkey/internal/hostfile"
)

// Source is where the bytes of an image file come from: a local file or block device
// ([OpenFile]), or a remote volume (package vm provides one for libvirt storage volumes).
// An image is opened from a Source with [OpenSource]; a qcow2 image's backing files are
// opened through a [Resolver].
type Source interface {
	io.ReaderAt
	// Size is the length of the file in bytes (a block device's size, not its Stat size).
	Size() int64
	// Name names the file in messages; a relative backing-file name in a qcow2 header is
	// resolved against it by the local resolver.
	Name() string
}

// Resolver opens the backing file that a qcow2 image names in its header. name is the
// name exactly as the header gives it (relative names are relative to of's directory, as
// QEMU reads them). A Resolver decides what may be followed: returning an error wrapping
// ErrBackingRefused stops the open with that error.
type Resolver interface {
	Backing(of Source, name string) (Source, error)
}

// ErrBackingRefused: a qcow2 image names a backing file that crashkey will not open, either
// because the backing policy does not allow it ([BackingPolicy]) or because it is not an
// image file (a device, FIFO, socket, /proc or /sys path).
var ErrBackingRefused = errors.New("backing file refused")

// BackingPolicy says which backing files the local resolver follows. The zero value is
// the default: a backing file is followed only when it is a regular file inside the
// directory of the image it backs (or below it, symbolic links resolved), owned by the same
// user as that image, and an image file by its content (qcow2, or a raw disk with a
// partition table or an NTFS boot sector). Devices, FIFOs, sockets and anything under
// /proc, /sys or /dev are never followed, whatever the policy.
type BackingPolicy struct {
	// Dirs are further directories whose regular files (and those below them) may be
	// backing files, whoever owns them and whatever they hold (--allow-backing=DIR).
	Dirs []string `json:"dirs,omitempty"`
	// Any allows every regular file (--allow-backing).
	Any bool `json:"any,omitempty"`
}

// ChainFile is one file of an image's backing chain, top image first.
type ChainFile struct {
	Name   string `json:"name"`             // the path (for a local file, symbolic links resolved) or the source's name
	Format string `json:"format"`           // FormatQcow2 or FormatRaw
	Local  bool   `json:"local"`            // a local file or device: Dev and Ino identify it
	Dev    uint64 `json:"dev,omitempty"`    // st_dev
	Ino    uint64 `json:"ino,omitempty"`    // st_ino
	InUse  bool   `json:"in_use,omitempty"` // a running QEMU holds it (any of its OFD lock bytes)
	// Written: a running QEMU holds it with write permission (the guest may be changing it).
	Written bool `json:"written,omitempty"`
}

// Same reports whether fi (from os.Stat or os.Lstat) is this local file.
func (c ChainFile) Same(fi os.FileInfo) bool {
	if !c.Local || fi == nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == c.Dev && uint64(st.Ino) == c.Ino //nolint:unconvert // Dev is uint32 on some systems
}

// FileSource is a local image file or block device opened read-only.
type FileSource struct {
	f        *os.File
	name     string
	size     int64
	dev, ino uint64
	uid      uint32
	regular  bool
}

// OpenFile opens a local image file or block device read-only for [OpenSource]. It opens
// with O_NONBLOCK, so that a FIFO never blocks, and refuses anything but a regular file or
// a block device with one clear error wrapping ErrUnsupportedFormat.
func OpenFile(path string) (*FileSource, error) {
	f, info, err := hostfile.Open(path)
	if err != nil {
		var kind *hostfile.KindError
		if errors.As(err, &kind) {
			return nil, fmt.Errorf("%w: %s is %s, not a disk image (crashkey reads regular files and block devices only)", ErrUnsupportedFormat, path, kind.Kind)
		}
		return nil, err
	}
	s := &FileSource{f: f, name: path, dev: info.Dev, ino: info.Ino, uid: info.UID, regular: info.Regular, size: info.Size}
	if !s.regular { // a block device: ask it
		if s.size, err = s.f.Seek(0, io.SeekEnd); err != nil {
			_ = s.f.Close()
			return nil, fmt.Errorf("size of device %s: %w", path, err)
		}
	}
	return s, nil
}

// ReadAt reads the file.
func (s *FileSource) ReadAt(p []byte, off int64) (int, error) { return s.f.ReadAt(p, off) }

// Size is the file's (or device's) length in bytes.
func (s *FileSource) Size() int64 { return s.size }

// Name is the path the file was opened by.
func (s *FileSource) Name() string { return s.name }

// Close closes the file.
func (s *FileSource) Close() error { return s.f.Close() }

// File is the open file (to query locks, not to read: use ReadAt).
func (s *FileSource) File() *os.File { return s.f }

func (s *FileSource) chainFile(format string) ChainFile {
	name := s.name
	if real, err := filepath.EvalSymlinks(name); err == nil {
		name = real
	}
	if abs, err := filepath.Abs(name); err == nil {
		name = abs
	}
	return ChainFile{Name: name, Format: format, Local: true, Dev: s.dev, Ino: s.ino}
}

// localResolver follows backing files on the local file system under a BackingPolicy.
type localResolver struct{ policy BackingPolicy }

// LocalResolver returns the Resolver that [Open] uses: it opens local backing files that
// policy allows (see [BackingPolicy]) and refuses every other one with an error wrapping
// ErrBackingRefused that names the file and the --allow-backing flag.
func LocalResolver(policy BackingPolicy) Resolver { return localResolver{policy} }

// refusedDirs are never followed, whatever the policy: reading them can block, has side
// effects, or leaks the host's state.
var refusedDirs = []string{"/proc", "/sys", "/dev"}

func within(path, dir string) bool {
	if dir == "/" {
		return true
	}
	return path == dir || strings.HasPrefix(path, dir+string(filepath.Separator))
}

func (r localResolver) Backing(of Source, name string) (Source, error) {
	path := name
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(of.Name()), path)
	}
	refuse := func(why string) error {
		return fmt.Errorf("%w: %s (named by %s) %s", ErrBackingRefused, path, of.Name(), why)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("backing file %s of %s: %w; make it reachable (qemu-img info --backing-chain shows the chain; qemu-img rebase -u -b NEWPATH fixes a moved one) or flatten the image: qemu-img convert -O qcow2 IMAGE FLAT.qcow2", path, of.Name(), err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return nil, err
	}
	for _, d := range refusedDirs {
		if within(real, d) {
			return nil, refuse(fmt.Sprintf("resolves to %s, under %s: never followed", real, d))
		}
	}
	fs, err := OpenFile(real)
	if err != nil {
		return nil, refuse(fmt.Sprintf("cannot be a backing file: %v", err))
	}
	ok := false
	defer func() {
		if !ok {
			_ = fs.Close()
		}
	}()
	if !fs.regular {
		return nil, refuse("is a device: backing files must be regular files")
	}
	// The file opened must be the one checked (no swap between the checks and the open).
	if st, err := os.Stat(real); err != nil || !(ChainFile{Local: true, Dev: fs.dev, Ino: fs.ino}).Same(st) {
		return nil, refuse("changed while it was being opened")
	}
	if r.policy.Any {
		ok = true
		return fs, nil
	}
	for _, d := range r.policy.Dirs {
		if rd, err := filepath.EvalSymlinks(d); err == nil {
			if rd, err = filepath.Abs(rd); err == nil && within(real, rd) {
				ok = true
				return fs, nil
			}
		}
	}
	hint := fmt.Sprintf("; if you trust it, pass --allow-backing=%s (or --allow-backing to follow any backing file)", shellQuote(filepath.Dir(real)))
	top, isFile := of.(*FileSource)
	if !isFile {
		return nil, refuse("backs an image that is not a local file" + hint)
	}
	topReal, err := filepath.EvalSymlinks(top.name)
	if err == nil {
		topReal, err = filepath.Abs(topReal)
	}
	if err != nil {
		return nil, refuse(fmt.Sprintf("cannot be checked against the image's directory: %v%s", err, hint))
	}
	if dir := filepath.Dir(topReal); !within(real, dir) {
		return nil, refuse(fmt.Sprintf("lies outside %s, the directory of the image%s", dir, hint))
	}
	if fs.uid != top.uid {
		return nil, refuse(fmt.Sprintf("is owned by uid %d, the image by uid %d%s", fs.uid, top.uid, hint))
	}
	if kind := imageContent(fs); kind == "" {
		return nil, refuse("does not look like a disk image (no qcow2 header, partition table or NTFS boot sector)" + hint)
	}
	ok = true
	return fs, nil
}

// imageContent says what kind of image the first sectors of s look like: "qcow2", "disk"
// (an MBR/GPT boot signature or an NTFS boot sector on a whole number of sectors), or "".
func imageContent(s Source) string {
	b := make([]byte, 512)
	if n, _ := s.ReadAt(b, 0); n < 4 {
		return ""
	} else {
		b = b[:n]
	}
	if bytesHasPrefix(b, qcow2Magic) {
		return FormatQcow2
	}
	if len(b) == 512 && s.Size()%512 == 0 && ((b[510] == 0x55 && b[511] == 0xAA) || string(b[3:11]) == "NTFS    ") {
		return "disk"
	}
	return ""
}

// noResolver refuses every backing file: the default for a Source that is not a local
// file when the caller gives no Resolver.
type noResolver struct{}

func (noResolver) Backing(of Source, name string) (Source, error) {
	return nil, fmt.Errorf("%w: %s names the backing file %q, but no resolver was given to open backing files of this source", ErrBackingRefused, of.Name(), name)
}

// readerSource turns an io.ReaderAt of known size into a Source (tests, fuzzing).
type readerSource struct {
	io.ReaderAt
	size int64
	name string
}

func (r readerSource) Size() int64  { return r.size }
func (r readerSource) Name() string { return r.name }
