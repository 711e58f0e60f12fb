package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf16"

	parser "www.velocidex.com/golang/go-ntfs/parser"
)

// Errors that callers may test for with errors.Is.
var (
	// ErrNotFound: no such file or directory (it also matches fs.ErrNotExist).
	ErrNotFound error = notFound{}
	// ErrCorruptFS: the NTFS structures are damaged (or go-ntfs panicked on them). It also
	// matches ErrCorruptImage.
	ErrCorruptFS error = &kindError{"corrupt NTFS file system", ErrCorruptImage}
	// ErrNoExtents: the file's bytes do not lie on the disk as they read (resident in the
	// MFT record or NTFS-compressed), so Extents cannot describe them.
	ErrNoExtents = errors.New("file has no plain on-disk extents")
	// ErrBadPath: the path cannot name a file inside a volume.
	ErrBadPath = errors.New("bad path")
)

const (
	recordRoot      = 5      // MFT record of the root directory
	recordVolume    = 3      // MFT record of $Volume
	attrVolumeName  = 0x60   // $VOLUME_NAME
	indexBlockSize  = 0x1000 // go-ntfs decodes index allocations in 4 KiB blocks
	maxDirEntries   = 1 << 20
	maxPathDepth    = 64
	pagedPageSize   = 4096
	pagedCachePages = 1024 // 4 MiB of metadata cache per volume
)

// FS is a read-only NTFS volume. It is safe for concurrent use.
type FS struct {
	im          *Image
	vol         Volume
	ctx         *parser.NTFSContext
	clusterSize int64
	mu          sync.Mutex
}

// FileInfo describes a file or directory of an [FS].
type FileInfo struct {
	Name    string    `json:"name"`     // the name as stored (the long/POSIX name)
	Path    string    `json:"path"`     // the path inside the volume, with '\' separators
	IsDir   bool      `json:"is_dir"`   // a directory
	Size    int64     `json:"size"`     // bytes of the unnamed $DATA stream; 0 for directories
	ModTime time.Time `json:"mod_time"` // last write time ($STANDARD_INFORMATION), UTC
	Record  int64     `json:"record"`   // MFT record number

	seq uint16 // the record's sequence number, for OpenEntry
}

// DirEntry is one entry of a directory listing.
type DirEntry = FileInfo

// guard runs fn and turns a panic inside go-ntfs into an error naming the image and path.
//
// When the image met corruption while fn ran (a read past the end of the image or of the
// volume), that corruption is what stopped fn, whatever fn made of the bytes it got: the
// error then wraps ErrCorruptImage and says what was damaged.
func (f *FS) guard(op, path string, fn func() error) (err error) {
	n0 := f.im.corruptN.Load()
	defer func() {
		r := recover()
		if ioErr := f.im.failed(); ioErr != nil {
			// A source failed (now or before): whatever go-ntfs made of it (zeros, a panic,
			// nothing found, a partial listing), the answer is that I/O error.
			if err == nil || !errors.Is(err, ioErr) {
				err = fmt.Errorf("ntfs: %s %s on volume %d: %w", op, displayPath(path), f.vol.Index, ioErr)
			}
			return
		}
		if r != nil {
			err = fmt.Errorf("ntfs: %s %s on volume %d of %s: %w (go-ntfs panicked: %v)", op, displayPath(path), f.vol.Index, f.im.path, ErrCorruptFS, r)
			if debugPanics {
				err = fmt.Errorf("%w\n%s", err, debug.Stack())
			}
			return
		}
		if f.im.corruptN.Load() == n0 || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return
		}
		cause := f.im.lastCorrupt()
		if err != nil && !errors.Is(err, ErrCorruptImage) {
			err = fmt.Errorf("%w (then: %v)", cause, err)
		} else {
			err = cause
		}
	}()
	return fn()
}

var debugPanics = false

// kindError is a sentinel error that also matches a broader one.
type kindError struct {
	msg    string
	parent error
}

func (e *kindError) Error() string { return e.msg }
func (e *kindError) Unwrap() error { return e.parent }

// volReader reads one volume of the image. A read that starts past the volume's end can
// only come from damaged metadata (a run or an MFT position outside the volume): it is
// recorded as corruption of the image, so that the operation reports it.
type volReader struct {
	im          *Image
	start, size int64
	index       int
}

func (r *volReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= r.size {
		r.im.noteCorrupt(fmt.Errorf("%w: NTFS metadata points to byte %d, past the end of the %d-byte volume %d", ErrCorruptFS, off, r.size, r.index))
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > r.size-off {
		p = p[:r.size-off]
	}
	n, err := r.im.ReadAt(p, r.start+off)
	if err == nil && n < want {
		err = io.EOF
	}
	return n, err
}

func openNTFS(im *Image, v Volume) (*FS, error) {
	f := &FS{im: im, vol: v}
	err := f.guard("open volume", `\`, func() error {
		paged, err := parser.NewPagedReader(&volReader{im: im, start: v.Start, size: v.Size, index: v.Index}, pagedPageSize, pagedCachePages)
		if err != nil {
			return err
		}
		sector := make([]byte, 512)
		if _, err := readFull(paged, sector, 0); err != nil {
			return fmt.Errorf("ntfs: volume %d of %s: read the boot sector: %w", v.Index, im.path, err)
		}
		nb, err := parseBoot(sector, v.Size)
		if err != nil {
			return fmt.Errorf("ntfs: volume %d of %s: %w", v.Index, im.path, err)
		}
		ctx, err := newNTFSContext(paged, nb)
		if err != nil {
			return fmt.Errorf("ntfs: volume %d of %s: %w: $MFT: %v", v.Index, im.path, ErrCorruptFS, err)
		}
		f.ctx = ctx
		f.clusterSize = ctx.ClusterSize
		if f.clusterSize <= 0 || f.clusterSize > 2<<20 || f.clusterSize&(f.clusterSize-1) != 0 {
			return fmt.Errorf("ntfs: volume %d of %s: %w: cluster size %d", v.Index, im.path, ErrCorruptFS, f.clusterSize)
		}
		if _, err := ctx.GetMFT(recordRoot); err != nil {
			return fmt.Errorf("ntfs: volume %d of %s: %w: root directory: %v", v.Index, im.path, ErrCorruptFS, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (f *FS) close() {
	if f.ctx != nil {
		f.ctx.Close()
	}
}

// Volume describes the partition this file system lives on.
func (f *FS) Volume() Volume { return f.vol }

// ClusterSize is the volume's cluster size in bytes.
func (f *FS) ClusterSize() int64 { return f.clusterSize }

func (f *FS) label() string {
	var label string
	_ = f.guard("read label", "$Volume", func() error {
		mft, err := f.record(recordVolume)
		if err != nil {
			return err
		}
		for _, a := range mft.EnumerateAttributes(f.ctx) {
			if a.Type().Value != attrVolumeName || !a.IsResident() {
				continue
			}
			n := int(a.Content_size())
			if n > 256 {
				n = 256
			}
			buf := make([]byte, n)
			m, _ := a.Reader.ReadAt(buf, a.Offset+int64(a.Content_offset()))
			u := make([]uint16, 0, m/2)
			for i := 0; i+1 < m; i += 2 {
				u = append(u, binary.LittleEndian.Uint16(buf[i:]))
			}
			label = string(utf16.Decode(u))
		}
		return nil
	})
	return label
}

// CleanPath turns a Windows path into a path inside a volume: `\` or `/` separators,
// a leading `\??\`, `\\?\`, drive letter, `%SystemRoot%`, `%windir%` or `\SystemRoot` is
// accepted (the last three mean `Windows`). It returns the components joined with `\`,
// or "" for the root. Alternate data streams ("name:stream") and ".." are refused.
func CleanPath(p string) (string, error) {
	orig := p
	p = strings.ReplaceAll(strings.TrimSpace(p), "/", `\`)
	for _, pre := range []string{`\??\`, `\\?\`, `\\.\`} {
		if strings.HasPrefix(p, pre) {
			p = p[len(pre):]
		}
	}
	if len(p) >= 2 && p[1] == ':' && (p[0]|0x20) >= 'a' && (p[0]|0x20) <= 'z' {
		p = p[2:]
	}
	lower := strings.ToLower(p)
	for _, pre := range []string{`%systemroot%`, `%windir%`, `\systemroot`} {
		if strings.HasPrefix(lower, pre) && (len(p) == len(pre) || p[len(pre)] == '\\') {
			p = `Windows` + p[len(pre):]
			break
		}
	}
	var parts []string
	for _, c := range strings.Split(p, `\`) {
		switch c {
		case "", ".":
			continue
		case "..":
			return "", fmt.Errorf("%w: %q: '..' is not allowed", ErrBadPath, orig)
		}
		if strings.ContainsAny(c, ":*?\"<>|%\x00") {
			return "", fmt.Errorf("%w: %q: %q is not a plain file name (drive letters go only at the start; alternate data streams, wildcards and unexpanded variables are not supported)", ErrBadPath, orig, c)
		}
		parts = append(parts, c)
	}
	if len(parts) > maxPathDepth {
		return "", fmt.Errorf("%w: %q is nested more than %d deep", ErrBadPath, orig, maxPathDepth)
	}
	return strings.Join(parts, `\`), nil
}

type dirent struct {
	name   string
	record int64
	seq    uint16 // sequence number the index entry expects the record to have
}

// Bounds on a directory walk: a hostile index cannot make it run for hours or fill memory.
const (
	// maxIndexBlocks bounds the index blocks of one directory: 256 MiB of 4 KiB blocks, room
	// for about two million names, read in a few seconds at most.
	maxIndexBlocks = 1 << 16
	// ctxCheckEvery is how many entries are handled between two checks of the context.
	ctxCheckEvery = 256
)

// errStopWalk ends a directory walk early without an error.
var errStopWalk = errors.New("stop walk")

// walkDir calls fn for every name in the $I30 index of the directory record mft, node by
// node in disk order, without collecting them: memory stays bounded by one index block whatever the
// directory's size. DOS 8.3 aliases (which always come with a long name of the same
// record) are left out. The walk reads only the index blocks that the index's $BITMAP
// marks in use, is bounded by the volume's size and maxIndexBlocks, and stops when the
// image's context is cancelled. fn returning errStopWalk ends it without an error.
func (f *FS) walkDir(mft *parser.MFT_ENTRY, fn func(dirent) error) error {
	var root, alloc, bitmap *parser.NTFS_ATTRIBUTE
	isDir := false
	for _, a := range mft.EnumerateAttributes(f.ctx) {
		switch a.Type().Value {
		case parser.ATTR_TYPE_INDEX_ROOT, parser.ATTR_TYPE_INDEX_ALLOCATION, attrBitmap:
			if a.Type().Value != attrBitmap {
				isDir = true
			}
			if a.Name() != "$I30" {
				continue
			}
			switch a.Type().Value {
			case parser.ATTR_TYPE_INDEX_ROOT:
				root = a
			case parser.ATTR_TYPE_INDEX_ALLOCATION:
				alloc = a
			default:
				bitmap = a
			}
		}
	}
	if !isDir {
		return errNotDir
	}
	if err := f.im.ctx.Err(); err != nil { // also for directories too small to reach a check below
		return err
	}
	n := 0
	emit := func(recs []*parser.INDEX_RECORD_ENTRY) error {
		for _, r := range recs {
			if n++; n%ctxCheckEvery == 0 {
				if err := f.im.ctx.Err(); err != nil {
					return err
				}
			}
			fn1 := r.File()
			if fn1.NameType().Name == "DOS" {
				continue
			}
			name := fn1.Name()
			ref := int64(r.MftReference() & 0xFFFFFFFFFFFF)
			if name == "" {
				continue
			}
			if err := fn(dirent{name: name, record: ref, seq: r.Seq_num()}); err != nil {
				return err
			}
		}
		return nil
	}
	blockSize := int64(indexBlockSize)
	if root != nil {
		data := root.Data(f.ctx)
		var hdr [16]byte
		if _, err := data.ReadAt(hdr[:], 0); err == nil {
			if bs := int64(binary.LittleEndian.Uint32(hdr[8:])); bs >= 512 && bs <= 64<<10 && bs&(bs-1) == 0 {
				blockSize = bs
			}
		}
		ir := f.ctx.Profile.INDEX_ROOT(data, 0)
		if err := emit(ir.Node().GetRecords(f.ctx)); err != nil {
			return err
		}
	}
	if alloc == nil {
		return nil
	}
	size := alloc.DataSize()
	if size < 0 || size > f.vol.Size {
		return fmt.Errorf("%w: directory index of %d bytes is larger than the %d-byte volume", ErrCorruptFS, size, f.vol.Size)
	}
	blocks := (size + blockSize - 1) / blockSize
	if blocks > maxIndexBlocks {
		return fmt.Errorf("%w: directory index of %d blocks is larger than crashkey reads (%d)", ErrCorruptFS, blocks, maxIndexBlocks)
	}
	// The $I30 bitmap says which blocks are in use; blocks past its end are not. Without
	// one (a damaged directory) every block is read, within the budget above.
	var used []byte
	if bitmap != nil {
		n := min((blocks+7)/8, max(bitmap.DataSize(), 0))
		used = make([]byte, n)
		k, _ := bitmap.Data(f.ctx).ReadAt(used, 0)
		used = used[:k]
	}
	r := alloc.Data(f.ctx)
	for blk := int64(0); blk < blocks; blk++ {
		if used != nil && (blk/8 >= int64(len(used)) || used[blk/8]&(1<<(blk%8)) == 0) {
			continue
		}
		if blk%ctxCheckEvery == 0 {
			if err := f.im.ctx.Err(); err != nil {
				return err
			}
		}
		h, err := parser.DecodeSTANDARD_INDEX_HEADER(f.ctx, r, blk*blockSize, blockSize)
		if err == nil && !h.MagicNumber().IsValid() {
			err = errors.New("no INDX signature")
		}
		if err != nil {
			if used == nil {
				continue // no bitmap: an unused block, probably
			}
			return fmt.Errorf("%w: index block %d (in use) of the directory is damaged: %v", ErrCorruptFS, blk, err)
		}
		if err := emit(h.Node().GetRecords(f.ctx)); err != nil {
			return err
		}
	}
	return nil
}

// attrBitmap is the $BITMAP attribute type.
const attrBitmap = 0xB0

var errNotDir = errors.New("not a directory")

type notFound struct{}

func (notFound) Error() string        { return "no such file or directory" }
func (notFound) Is(target error) bool { return target == fs.ErrNotExist }

// find looks name up in the directory record mft with one linear, streaming walk. Index
// entries whose record was deleted or reused are skipped; a record that is damaged (no FILE
// signature, a broken fixup) is corruption and reported as such when nothing else matches.
func (f *FS) find(mft *parser.MFT_ENTRY, name string) (dirent, *parser.MFT_ENTRY, error) {
	var found dirent
	var fm *parser.MFT_ENTRY
	var stale, corrupt error
	err := f.walkDir(mft, func(e dirent) error {
		if !strings.EqualFold(e.name, name) {
			return nil
		}
		m, err := f.entryRecord(e)
		if err != nil {
			if errors.Is(err, errStale) {
				stale = err
			} else {
				corrupt = err
			}
			return nil
		}
		found, fm = e, m
		return errStopWalk
	})
	switch {
	case fm != nil:
		return found, fm, nil
	case err != nil && !errors.Is(err, errStopWalk):
		return dirent{}, nil, err
	case corrupt != nil:
		return dirent{}, nil, fmt.Errorf("%w: %v", ErrCorruptFS, corrupt)
	case stale != nil:
		return dirent{}, nil, fmt.Errorf("%w (a stale index entry: %v)", ErrNotFound, stale)
	}
	return dirent{}, nil, ErrNotFound
}

// lookup walks a cleaned path from the root and returns the MFT record of its last part.
// It also returns the stored name of that part and the path spelled as stored.
func (f *FS) lookup(clean string) (int64, *parser.MFT_ENTRY, string, string, error) {
	rec := int64(recordRoot)
	mft, err := f.record(rec)
	if err != nil {
		return 0, nil, "", "", fmt.Errorf("%w: root directory: %v", ErrCorruptFS, err)
	}
	if clean == "" {
		return rec, mft, "", "", nil
	}
	name := `\`
	var canon []string
	for _, comp := range strings.Split(clean, `\`) {
		e, m, err := f.find(mft, comp)
		if errors.Is(err, errNotDir) {
			return 0, nil, "", "", fmt.Errorf("%w (%s is not a directory)", ErrNotFound, name)
		}
		if err != nil {
			return 0, nil, "", "", err
		}
		rec, name, mft = e.record, e.name, m
		canon = append(canon, name)
	}
	return rec, mft, name, strings.Join(canon, `\`), nil
}

// errStale marks an index entry whose record was deleted or reused.
var errStale = errors.New("stale index entry")

// entryRecord reads the record an index entry points to and checks that it is the record
// the entry was written for (same sequence number), not a deleted or reused one.
func (f *FS) entryRecord(e dirent) (*parser.MFT_ENTRY, error) {
	m, err := f.record(e.record)
	if err != nil {
		return nil, err
	}
	if seq := m.Sequence_value(); e.seq != 0 && seq != e.seq {
		return nil, fmt.Errorf("%w: MFT record %d has sequence number %d, the index entry for %q expects %d", errStale, e.record, seq, e.name, e.seq)
	}
	return m, nil
}

// record reads MFT record id and checks that it is a FILE record in use. (go-ntfs itself
// does not check the signature, so a damaged record would be parsed as garbage.)
func (f *FS) record(id int64) (*parser.MFT_ENTRY, error) {
	m, err := f.ctx.GetMFT(id)
	if err != nil {
		return nil, err
	}
	if !m.Magic().IsValid() {
		return nil, fmt.Errorf("MFT record %d has no FILE signature", id)
	}
	var flags [2]byte
	if _, err := m.Reader.ReadAt(flags[:], m.Offset+0x16); err != nil {
		return nil, fmt.Errorf("MFT record %d: %v", id, err)
	}
	if flags[0]&1 == 0 {
		return nil, fmt.Errorf("%w: MFT record %d is not in use (a deleted file?)", errStale, id)
	}
	return m, nil
}

// stat builds FileInfo for an MFT record.
func (f *FS) stat(rec int64, mft *parser.MFT_ENTRY, name, clean string) (FileInfo, parser.RangeReaderAt, error) {
	fi := FileInfo{Name: name, Path: clean, Record: rec}
	if si, err := mft.StandardInformation(f.ctx); err == nil {
		fi.ModTime = si.File_altered_time().Time.UTC()
	}
	for _, a := range mft.EnumerateAttributes(f.ctx) {
		if v := a.Type().Value; v == parser.ATTR_TYPE_INDEX_ROOT || v == parser.ATTR_TYPE_INDEX_ALLOCATION {
			fi.IsDir = true
		}
	}
	if fi.IsDir {
		return fi, nil, nil
	}
	data, err := parser.OpenStream(f.ctx, mft, parser.ATTR_TYPE_DATA, parser.WILDCARD_STREAM_ID, "")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fi, nil, nil // no $DATA: an empty file
		}
		return fi, nil, fmt.Errorf("%w: $DATA of record %d: %v", ErrCorruptFS, rec, err)
	}
	fi.Size = parser.RangeSize(data)
	if fi.Size < 0 || fi.Size > maxFileSize {
		return fi, nil, fmt.Errorf("%w: record %d claims a size of %d bytes", ErrCorruptFS, rec, fi.Size)
	}
	if fi.Size > f.vol.Size {
		// Only a sparse or compressed file can be larger than its volume.
		if vcns := parser.GetAllVCNs(f.ctx, mft, parser.ATTR_TYPE_DATA, parser.WILDCARD_STREAM_ID, ""); len(vcns) == 0 ||
			!parser.IsCompressedOrSparse(vcns[0].Flags()) {
			return fi, nil, fmt.Errorf("%w: record %d claims %d bytes, more than its %d-byte volume holds", ErrCorruptFS, rec, fi.Size, f.vol.Size)
		}
	}
	return fi, data, nil
}

// maxFileSize bounds the size a (possibly sparse) file may claim: 16 TiB, the NTFS limit
// at 4 KiB clusters.
const maxFileSize = 16 << 40

func (f *FS) pathErr(op, p string, err error) error {
	return fmt.Errorf("%s %s on volume %d of %s: %w", op, displayPath(p), f.vol.Index, f.im.path, err)
}

func displayPath(clean string) string { return `\` + clean }

// Stat describes the file or directory at path.
func (f *FS) Stat(path string) (FileInfo, error) {
	clean, err := CleanPath(path)
	if err != nil {
		return FileInfo{}, err
	}
	var fi FileInfo
	err = f.guard("stat", clean, func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		rec, mft, name, canon, err := f.lookup(clean)
		if err != nil {
			return err
		}
		fi, _, err = f.stat(rec, mft, name, canon)
		return err
	})
	if err != nil {
		return FileInfo{}, f.pathErr("stat", clean, err)
	}
	return fi, nil
}

// ReadDir lists a directory, sorted by name (case-insensitively). DOS 8.3 aliases are left
// out; the NTFS metafiles ($MFT, …) of the root are kept. It holds the whole listing in
// memory and refuses directories of more than 1,048,576 entries: use [FS.ReadDirFunc] to
// walk a directory of any size in bounded memory.
func (f *FS) ReadDir(path string) ([]DirEntry, error) {
	var out []DirEntry
	err := f.ReadDirFunc(path, func(e DirEntry) error {
		if len(out) >= maxDirEntries {
			return fmt.Errorf("%w: more than %d entries; walk it with ReadDirFunc", ErrBadPath, maxDirEntries)
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out, nil
}

// ReadDirFunc calls fn for every entry of a directory, in the order the index stores them
// (B-tree nodes in disk order: not sorted), as it reads them: the walk is linear in the directory's size
// and its memory bounded whatever that size. Entries whose record was deleted or reused are
// left out, as are DOS 8.3 aliases and ".". An error from fn stops the walk and is returned
// as it is. Open an entry with [FS.OpenEntry], which does not walk the path again. The walk
// stops, with an error wrapping the context's error, soon after the image's context
// ([Options.Context]: one context governs every operation on an image, as for its reads)
// is cancelled.
func (f *FS) ReadDirFunc(path string, fn func(DirEntry) error) error {
	clean, err := CleanPath(path)
	if err != nil {
		return err
	}
	var fnErr error
	err = f.guard("list", clean, func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		_, mft, _, canon, err := f.lookup(clean)
		if err != nil {
			return err
		}
		err = f.walkDir(mft, func(e dirent) error {
			if e.name == "." {
				return nil
			}
			m, err := f.entryRecord(e)
			if err != nil {
				return nil // a stale or dangling index entry
			}
			child := e.name
			if canon != "" {
				child = canon + `\` + e.name
			}
			fi, _, err := f.stat(e.record, m, e.name, child)
			if err != nil {
				return err
			}
			fi.seq = m.Sequence_value()
			f.mu.Unlock()
			err = fn(fi)
			f.mu.Lock()
			if err != nil {
				fnErr = err
				return errStopWalk
			}
			return nil
		})
		if errors.Is(err, errStopWalk) {
			return nil
		}
		if errors.Is(err, errNotDir) {
			return fmt.Errorf("%w: not a directory", ErrBadPath)
		}
		return err
	})
	if fnErr != nil {
		return fnErr
	}
	if err != nil {
		return f.pathErr("list", clean, err)
	}
	return nil
}

// OpenEntry opens a file that [FS.ReadDirFunc] or [FS.ReadDir] listed, by its MFT record,
// without looking its path up again. It fails (ErrNotFound) when the record has been
// reused since.
func (f *FS) OpenEntry(e DirEntry) (*File, error) {
	file := &File{fs: f}
	err := f.guard("open", e.Path, func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		m, err := f.entryRecord(dirent{name: e.Name, record: e.Record, seq: e.seq})
		if errors.Is(err, errStale) {
			return fmt.Errorf("%w (%v)", ErrNotFound, err)
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrCorruptFS, err)
		}
		fi, data, err := f.stat(e.Record, m, e.Name, e.Path)
		if err != nil {
			return err
		}
		if fi.IsDir {
			return fmt.Errorf("%w: is a directory", ErrBadPath)
		}
		fi.seq = e.seq
		file.info, file.data, file.mft = fi, data, m
		return nil
	})
	if err != nil {
		return nil, f.pathErr("open", e.Path, err)
	}
	return file, nil
}

// Open opens the unnamed data stream of the file at path (case-insensitive, `\` or `/`,
// no drive letter; see [CleanPath]).
func (f *FS) Open(path string) (*File, error) {
	clean, err := CleanPath(path)
	if err != nil {
		return nil, err
	}
	file := &File{fs: f}
	err = f.guard("open", clean, func() error {
		f.mu.Lock()
		defer f.mu.Unlock()
		rec, mft, name, canon, err := f.lookup(clean)
		if err != nil {
			return err
		}
		fi, data, err := f.stat(rec, mft, name, canon)
		if err != nil {
			return err
		}
		if fi.IsDir {
			return fmt.Errorf("%w: is a directory", ErrBadPath)
		}
		file.info, file.data, file.mft = fi, data, mft
		return nil
	})
	if err != nil {
		return nil, f.pathErr("open", clean, err)
	}
	return file, nil
}

// File is an open file of an [FS]: an [io.ReaderAt] over its data.
type File struct {
	fs   *FS
	info FileInfo
	data parser.RangeReaderAt // nil for an empty file
	mft  *parser.MFT_ENTRY
}

// Size is the file's length in bytes.
func (fl *File) Size() int64 { return fl.info.Size }

// ModTime is the file's last write time (UTC).
func (fl *File) ModTime() time.Time { return fl.info.ModTime }

// Name is the file's name as stored on the volume.
func (fl *File) Name() string { return fl.info.Name }

// Path is the file's path inside the volume, with `\` separators and no leading `\`.
func (fl *File) Path() string { return fl.info.Path }

// Info describes the file.
func (fl *File) Info() FileInfo { return fl.info }

// FS is the volume the file belongs to.
func (fl *File) FS() *FS { return fl.fs }

// ReadAt reads from the file's data. It follows io.ReaderAt: a read that reaches the end
// of the file returns io.EOF.
func (fl *File) ReadAt(p []byte, off int64) (n int, err error) {
	if off < 0 {
		return 0, fmt.Errorf("ntfs: read %s: negative offset", displayPath(fl.info.Path))
	}
	if off >= fl.info.Size {
		return 0, io.EOF
	}
	want := len(p)
	if rem := fl.info.Size - off; int64(len(p)) > rem {
		p = p[:rem]
	}
	err = fl.fs.guard("read", fl.info.Path, func() error {
		for n < len(p) {
			m, rerr := fl.data.ReadAt(p[n:], off+int64(n))
			n += m
			if rerr != nil && !errors.Is(rerr, io.EOF) {
				return rerr
			}
			if m == 0 {
				return fmt.Errorf("%w: data ends at byte %d of %d", ErrCorruptFS, off+int64(n), fl.info.Size)
			}
		}
		return nil
	})
	if err != nil {
		return n, fl.fs.pathErr("read", fl.info.Path, err)
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// Extent says where a part of a file lies on the virtual disk.
type Extent struct {
	FileOffset int64 `json:"file_offset"` // byte offset in the file
	DiskOffset int64 `json:"disk_offset"` // byte offset on the virtual disk (as the guest sees it); 0 when Sparse
	Length     int64 `json:"length"`      // bytes
	Sparse     bool  `json:"sparse"`      // a hole: no clusters on disk, reads as zeros
}

// Extents lists where the file's bytes lie on the virtual disk, in file order, covering
// exactly [0, Size()). Allocated-but-uninitialised tails are included with their clusters.
// Resident and NTFS-compressed files have no such layout: their error wraps ErrNoExtents.
func (fl *File) Extents() ([]Extent, error) {
	var out []Extent
	start := time.Now()
	defer func() {
		slog.Debug("disk: file extents", "path", fl.info.Path, "size", fl.info.Size, "extents", len(out), "took", time.Since(start))
	}()
	err := fl.fs.guard("map", fl.info.Path, func() error {
		fl.fs.mu.Lock()
		defer fl.fs.mu.Unlock()
		var err error
		out, err = fl.extents()
		return err
	})
	if err != nil {
		return nil, fl.fs.pathErr("map", fl.info.Path, err)
	}
	return out, nil
}

func (fl *File) extents() ([]Extent, error) {
	if fl.info.Size == 0 {
		return nil, nil
	}
	ctx := fl.fs.ctx
	vcns := parser.GetAllVCNs(ctx, fl.mft, parser.ATTR_TYPE_DATA, parser.WILDCARD_STREAM_ID, "")
	if len(vcns) == 0 {
		return nil, fmt.Errorf("%w: no $DATA attribute", ErrCorruptFS)
	}
	if vcns[0].IsResident() {
		return nil, fmt.Errorf("%w: the data is resident in MFT record %d", ErrNoExtents, fl.info.Record)
	}
	flags := vcns[0].Flags()
	if parser.IsCompressed(flags) {
		return nil, fmt.Errorf("%w: the file is NTFS-compressed", ErrNoExtents)
	}
	sparse := parser.IsSparse(flags)
	sort.Slice(vcns, func(i, j int) bool { return vcns[i].Runlist_vcn_start() < vcns[j].Runlist_vcn_start() })
	cs := fl.fs.clusterSize
	var out []Extent
	var fileOff int64
	volClusters := fl.fs.vol.Size / cs
	for _, a := range vcns {
		for _, r := range a.RunList() {
			if fileOff >= fl.info.Size {
				break
			}
			if r.Length <= 0 || r.Length > volClusters+maxFileSize/cs {
				return nil, fmt.Errorf("%w: run of %d clusters", ErrCorruptFS, r.Length)
			}
			n := r.Length * cs
			if rem := fl.info.Size - fileOff; n > rem {
				n = rem
			}
			e := Extent{FileOffset: fileOff, Length: n}
			if sparse && r.RelativeUrnOffset == 0 {
				e.Sparse = true
			} else {
				if r.Offset < 0 || r.Offset+r.Length > volClusters {
					return nil, fmt.Errorf("%w: run at cluster %d (+%d) lies outside the %d-cluster volume", ErrCorruptFS, r.Offset, r.Length, volClusters)
				}
				e.DiskOffset = fl.fs.vol.Start + r.Offset*cs
			}
			if k := len(out) - 1; k >= 0 && out[k].Sparse == e.Sparse &&
				(e.Sparse || out[k].DiskOffset+out[k].Length == e.DiskOffset) {
				out[k].Length += e.Length
			} else {
				out = append(out, e)
			}
			fileOff += n
		}
	}
	if fileOff < fl.info.Size {
		return nil, fmt.Errorf("%w: the run list covers %d of %d bytes", ErrCorruptFS, fileOff, fl.info.Size)
	}
	return out, nil
}
