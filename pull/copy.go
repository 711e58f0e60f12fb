package pull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/internal/atomicfile"
	"github.com/crashkey/crashkey/internal/units"
)

// Options control [Pull] and [PullMinidumps].
type Options struct {
	// OutDir is the directory the file is written to ("" means the current directory); it is
	// created (mode 0755, with its parents) when missing. The file keeps its name as stored
	// in the image (MEMORY.DMP, 112026-01.dmp), made safe for a local file system (see
	// Result.Renamed); a dump cut from a pagefile or dedicated dump file is named MEMORY.DMP,
	// a minidump cut from one PagefileMinidump or DedicatedMinidump.
	OutDir string
	// Path pulls this file (any file, whole) instead of looking for a dump.
	Path string
	// Minidumps makes Pull take the newest minidump instead of a full or kernel dump.
	Minidumps bool
	// Force overwrites an existing output file. It never replaces a file of the image's
	// backing chain or a file a running QEMU holds.
	Force bool
	// MaxSize bounds each output file: a larger one is refused before anything is written
	// (ErrTooLarge). 0 means DefaultMaxSize, a negative value no limit.
	MaxSize int64
	// Progress, when set, is called after each chunk with the bytes copied so far and the
	// total. It runs on the copying goroutine: keep it quick.
	Progress func(done, total int64)
	// Sources are registry-provided paths to look at besides the defaults.
	Sources Sources
}

// Output names of dumps cut from the start of a pagefile or dedicated dump file.
const (
	PagefileDump      = "MEMORY.DMP"             // a full or kernel dump (what Windows would have moved there)
	PagefileMinidump  = "pagefile-minidump.dmp"  // a triage dump found in pagefile.sys
	DedicatedMinidump = "dedicated-minidump.dmp" // a triage dump found in the DedicatedDumpFile
)

// DefaultMaxSize bounds a single output unless Options.MaxSize says otherwise: 256 GiB, more
// than the complete memory dump of any guest crashkey is meant for.
const DefaultMaxSize int64 = 256 << 30

// SpaceMargin is the free space an output must leave on the output file system.
const SpaceMargin int64 = 64 << 20

// Result describes a pulled file.
type Result struct {
	Source string `json:"source"` // path inside the image's volume, as stored, e.g. `Windows\MEMORY.DMP`
	Volume int    `json:"volume"` // index of that volume
	Output string `json:"output"` // the written file
	// Renamed says why the output name differs from the name in the image (a name unsafe as a
	// local file name or longer than 255 bytes); empty when it does not.
	Renamed string `json:"renamed,omitempty"`
	Size    int64  `json:"size"`   // bytes written
	SHA256  string `json:"sha256"` // hex digest of the written bytes
	// FromPagefile: the dump was cut from the start of pagefile.sys (or the dedicated dump
	// file) at the length its header gives.
	FromPagefile bool       `json:"from_pagefile"`
	Note         string     `json:"note,omitempty"`
	Candidate    *Candidate `json:"dump,omitempty"` // the dump header summary; nil for a plain file
}

// Pull copies one file out of img: with Options.Path that file, whole; with
// Options.Minidumps the newest valid minidump; otherwise the newest valid dump (MEMORY.DMP,
// the registry's DumpFile, or a dump at the start of pagefile.sys or the DedicatedDumpFile,
// a triage dump there included). It returns an error wrapping ErrNoDump when there is none,
// ErrExists when the output exists without Force, ErrTooLarge or ErrNoSpace for an output
// that must not be written, and disk.ErrNotFound for a missing Path.
func Pull(ctx context.Context, img *disk.Image, opts Options) (*Result, error) {
	fs, err := img.WindowsVolume()
	if err != nil {
		return nil, err
	}
	if opts.Path != "" {
		f, err := fs.Open(opts.Path)
		if err != nil {
			return nil, err
		}
		c := Candidate{Source: f.Path(), Volume: fs.Volume().Index, Kind: KindFile, Size: f.Size(), ModTime: f.ModTime()}
		describe(&c, f)
		res, err := copyOut(ctx, f, f.Size(), f.Name(), img, opts)
		if err != nil {
			return nil, err
		}
		res.Source, res.Volume = c.Source, c.Volume
		if c.DumpSize > 0 {
			res.Candidate = &c
		}
		return res, nil
	}
	cands, err := list(ctx, fs, opts.Sources, !opts.Minidumps, opts.Minidumps)
	if err != nil {
		return nil, err
	}
	best, err := newest(img, cands)
	if err != nil {
		if !opts.Minidumps {
			err = withMinidumpHint(ctx, fs, img, opts.Sources, err)
		}
		return nil, err
	}
	return pullCandidate(ctx, fs, img, best, opts)
}

// withMinidumpHint adds to a "no dump found" error how many valid minidumps there are and
// the command that pulls them.
func withMinidumpHint(ctx context.Context, fs *disk.FS, img *disk.Image, src Sources, err error) error {
	if !errors.Is(err, ErrNoDump) {
		return err
	}
	minis, lerr := list(ctx, fs, src, false, true)
	if lerr != nil {
		return err
	}
	n := 0
	for _, c := range minis {
		if c.Valid {
			n++
		}
	}
	if n == 0 {
		return err
	}
	return fmt.Errorf("%w; but %d valid minidump(s) exist: crashkey pull %s --minidumps", err, n, shellQuote(img.Path()))
}

// PullMinidumps copies every valid minidump out of img (newest first), a triage dump still
// at the start of pagefile.sys or the DedicatedDumpFile included.
func PullMinidumps(ctx context.Context, img *disk.Image, opts Options) ([]*Result, error) {
	fs, err := img.WindowsVolume()
	if err != nil {
		return nil, err
	}
	cands, err := list(ctx, fs, opts.Sources, false, true)
	if err != nil {
		return nil, err
	}
	var valid []Candidate
	var total int64
	for _, c := range cands {
		if c.Valid {
			valid = append(valid, c)
			total += c.PullSize
		}
	}
	if len(valid) == 0 {
		return nil, noDump(img, cands, "minidump")
	}
	dir, err := outDir(opts.OutDir)
	if err != nil {
		return nil, err
	}
	if !opts.Force {
		var exist []string
		for _, c := range valid {
			name, _ := outputName(candidateName(c))
			out := filepath.Join(dir, name)
			if _, err := os.Lstat(out); err == nil {
				exist = append(exist, out)
			}
		}
		if len(exist) > 0 {
			return nil, fmt.Errorf("pull: %w: %s; pass --force to overwrite or choose another --out directory", ErrExists, summarise(exist, 3))
		}
	}
	if err := checkSpace(dir, total); err != nil {
		return nil, err
	}
	var out []*Result
	for _, c := range valid {
		r, err := pullCandidate(ctx, fs, img, c, opts)
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

func newest(img *disk.Image, cands []Candidate) (Candidate, error) {
	var best *Candidate
	for i := range cands {
		c := &cands[i]
		if !c.Valid {
			continue
		}
		if best == nil || c.when().After(best.when()) {
			best = c
		}
	}
	if best == nil {
		return Candidate{}, noDump(img, cands, "")
	}
	return *best, nil
}

// noDump says why no candidate was usable, in one line however many there are. When a
// damaged image or file system made a candidate unreadable, the error wraps that too, so
// that callers report the corruption rather than a missing dump.
func noDump(img *disk.Image, cands []Candidate, what string) error {
	if len(cands) == 0 {
		where := `Windows\MEMORY.DMP, pagefile.sys`
		if what == "minidump" {
			where = `Windows\Minidump\*.dmp`
		}
		return fmt.Errorf("pull: %w in %s: none of %s exists (the guest may not have crashed, dumps may be disabled, or they are on another volume: see --list and --partition)", ErrNoDump, img.Path(), where)
	}
	var why []string
	for _, c := range cands {
		why = append(why, fmt.Sprintf(`\%s: %s`, c.Source, c.Summary))
	}
	if corrupt := Damage(cands); corrupt != nil {
		return fmt.Errorf("pull: %w in %s, because the image is damaged: %w", ErrNoDump, img.Path(), corrupt)
	}
	return fmt.Errorf("pull: %w in %s: %s", ErrNoDump, img.Path(), summarise(why, 3))
}

// summarise joins the first n items and says how many more there are.
func summarise(items []string, n int) string {
	if len(items) <= n {
		return strings.Join(items, "; ")
	}
	return fmt.Sprintf("%s; and %d more (see --list)", strings.Join(items[:n], "; "), len(items)-n)
}

// candidateName is the output name a candidate is pulled under (before outputName).
func candidateName(c Candidate) string {
	if c.FromPagefile {
		switch {
		case c.DumpType != dump.TypeTriage.String():
			return PagefileDump
		case c.Kind == KindDedicated:
			return DedicatedMinidump
		}
		return PagefileMinidump
	}
	if c.name != "" {
		return c.name
	}
	return baseName(c.Source)
}

func pullCandidate(ctx context.Context, fs *disk.FS, img *disk.Image, c Candidate, opts Options) (*Result, error) {
	f, err := c.open(fs)
	if err != nil {
		return nil, err
	}
	size := c.PullSize
	if size <= 0 || size > f.Size() {
		size = f.Size()
	}
	res, err := copyOut(ctx, f, size, candidateName(c), img, opts)
	if err != nil {
		return nil, err
	}
	res.Source, res.Volume, res.FromPagefile = c.Source, c.Volume, c.FromPagefile
	switch {
	case c.FromPagefile && c.DumpType == dump.TypeTriage.String():
		res.Note = fmt.Sprintf(`a minidump is still in \%s: Windows had not rebooted to save it to the Minidump folder; its first %d bytes (the dump and its secondary data, as the header and blob headers give them) were taken`, c.Source, size)
	case c.FromPagefile:
		res.Note = fmt.Sprintf(`the dump is still in \%s: Windows had not rebooted to move it to MEMORY.DMP; its first %d bytes (the length its header gives) were taken`, c.Source, size)
	case size < f.Size():
		res.Note = fmt.Sprintf("the file is %d bytes but its header gives %d: only those were taken", f.Size(), size)
	case c.Problem != "":
		res.Note = c.Problem
	}
	res.Candidate = &c
	return res, nil
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `\/`); i >= 0 {
		return p[i+1:]
	}
	return p
}

func checkFree(out string) error {
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("pull: %w: %s; pass --force to overwrite it or choose another --out directory", ErrExists, out)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("pull: %w", err)
	}
	return nil
}

// outDir returns the output directory, created when missing.
func outDir(dir string) (string, error) {
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("pull: output directory: %w", err)
	}
	if st, err := os.Stat(dir); err != nil {
		return "", fmt.Errorf("pull: output directory: %w", err)
	} else if !st.IsDir() {
		return "", fmt.Errorf("pull: output directory %s is not a directory", dir)
	}
	return dir, nil
}

// copyOut streams size bytes of src into OutDir/name through a temporary file. Even with
// Force it never replaces a file of the image's backing chain or one a running QEMU holds.
func copyOut(ctx context.Context, src *disk.File, size int64, name string, img *disk.Image, opts Options) (_ *Result, err error) {
	limit := opts.MaxSize
	if limit == 0 {
		limit = DefaultMaxSize
	}
	if limit > 0 && size > limit {
		return nil, fmt.Errorf("pull: %w: \\%s would be %d bytes (%s), more than --max-size %d; pass a larger --max-size (0 for no limit) if that is right", ErrTooLarge, src.Path(), size, units.Bytes(size), limit)
	}
	dir, err := outDir(opts.OutDir)
	if err != nil {
		return nil, err
	}
	name, renamed := outputName(name)
	out := filepath.Join(dir, name)
	if !opts.Force {
		if err := checkFree(out); err != nil {
			return nil, err
		}
	} else if err := mayReplace(out, img); err != nil {
		return nil, err
	}
	if err := checkSpace(dir, size); err != nil {
		return nil, err
	}
	// A short fixed-length temporary name: "." + an image's 765-byte name + a suffix would
	// not fit NAME_MAX.
	tmp, err := os.CreateTemp(dir, atomicfile.TempPattern)
	if err != nil {
		return nil, fmt.Errorf("pull: create output: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o644); err != nil {
		return nil, fmt.Errorf("pull: create output: %w", err)
	}
	holes, _ := holesOf(src, size)
	sum, err := copyFile(ctx, tmp, src, size, holes, opts.Progress)
	if err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("pull: write %s: %w", out, err)
	}
	if !opts.Force {
		// Link instead of rename, so that a file that appeared meanwhile is not replaced.
		if err := os.Link(tmp.Name(), out); err != nil {
			if errors.Is(err, os.ErrExist) {
				return nil, checkFree(out)
			}
			if err := os.Rename(tmp.Name(), out); err != nil {
				return nil, fmt.Errorf("pull: %w", err)
			}
		} else {
			_ = os.Remove(tmp.Name())
		}
	} else if err := os.Rename(tmp.Name(), out); err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	return &Result{Output: out, Renamed: renamed, Size: size, SHA256: hex.EncodeToString(sum)}, nil
}

// holesOf lists the parts of the first size bytes of f that are sparse (no clusters): they
// read as zeros, so they are neither read nor written (the output keeps them as holes).
func holesOf(f *disk.File, size int64) ([]span, error) {
	ext, err := f.Extents()
	if err != nil {
		return nil, err
	}
	var out []span
	for _, e := range ext {
		if e.Sparse && e.FileOffset < size {
			out = append(out, span{e.FileOffset, min(e.FileOffset+e.Length, size)})
		}
	}
	return out, nil
}

// Chunk size and depth of the copy pipeline: 4 × 1 MiB in flight bounds memory (4 MiB; with
// 6 × 4 MiB a remote pull peaked at ~80 MiB of RSS, with these at ~45 MiB, at the same speed).
//
// Each chunk is written in writeSlice pieces. A large write(2) lets Linux fill the page cache
// with large folios (ext4 and others use them since 6.x), and on the virtual machine measured
// (2 cores; scripts/bench/remote-pull.sh, perf) filling those was ten times dearer than
// filling small ones, likely because their memory had gone back to the hypervisor: per
// 512 MiB written, copy_folio_from_iter took 1.0–1.16 s of system time with 4 MiB writes,
// 0.6–1.0 s with 256 KiB, 0.13–0.41 s with 128 KiB and 0.04–0.12 s with 64 KiB (the rest of
// a remote pull, receive, hash and copies, takes ~1.4 s). virsh vol-download writes 262120
// bytes at a time. 64 KiB costs one system call per 64 KiB on any machine, well under 1% of
// the copy.
const (
	chunkSize   = 1 << 20
	chunkBuffer = 4
	writeSlice  = 64 << 10
)

// span is a byte range [start, end) of the source.
type span struct{ start, end int64 }

type chunk struct {
	buf  []byte
	n    int
	hole bool // all zeros from a sparse run: seek over it instead of writing
	wg   *sync.WaitGroup
}

// Copy copies size bytes from src to w and returns their SHA-256. Reading, hashing and
// writing run concurrently on a fixed set of buffers, so memory stays constant and the
// copy runs at the speed of the slowest stage. progress (optional) is called after each
// chunk is written.
func Copy(ctx context.Context, w io.Writer, src io.ReaderAt, size int64, progress func(done, total int64)) ([]byte, error) {
	return copyFile(ctx, w, src, size, nil, progress)
}

// copyFile is Copy that knows the sparse runs of src (sorted, not overlapping): a chunk
// that lies wholly in one is not read but zeroed, and when w is an *os.File it is not
// written either but skipped with a seek, so the output keeps the hole.
func copyFile(ctx context.Context, w io.Writer, src io.ReaderAt, size int64, holes []span, progress func(done, total int64)) ([]byte, error) {
	file, _ := w.(*os.File)
	free := make(chan []byte, chunkBuffer)
	for i := 0; i < chunkBuffer; i++ {
		free <- make([]byte, chunkSize)
	}
	toHash := make(chan chunk, chunkBuffer)
	toWrite := make(chan chunk, chunkBuffer)
	h := sha256.New()
	var hashWG sync.WaitGroup
	hashWG.Add(1)
	go func() {
		defer hashWG.Done()
		for c := range toHash {
			h.Write(c.buf[:c.n])
			c.wg.Done()
		}
	}()
	var writeErr error
	var failed atomic.Bool
	var writeWG sync.WaitGroup
	writeWG.Add(1)
	go func() {
		defer writeWG.Done()
		var done int64
		seeked := false
		for c := range toWrite {
			if writeErr == nil {
				var err error
				if c.hole && file != nil {
					_, err = file.Seek(int64(c.n), io.SeekCurrent)
					seeked = true
				} else {
					err = writeSliced(w, c.buf[:c.n])
					seeked = false
				}
				if err != nil {
					writeErr = fmt.Errorf("pull: write: %w", err)
					failed.Store(true)
				}
				done += int64(c.n)
				if progress != nil && writeErr == nil {
					progress(done, size)
				}
			}
			c.wg.Wait() // the hasher is done with it too
			free <- c.buf
		}
		if seeked && writeErr == nil { // a trailing hole: give the file its length
			if err := file.Truncate(done); err != nil {
				writeErr = fmt.Errorf("pull: write: %w", err)
			}
		}
	}()
	var readErr error
	hi := 0
	for off := int64(0); off < size && !failed.Load(); {
		if err := ctx.Err(); err != nil {
			readErr = err
			break
		}
		buf := <-free
		n := int64(len(buf))
		if rem := size - off; rem < n {
			n = rem
		}
		for hi < len(holes) && holes[hi].end <= off {
			hi++
		}
		hole := hi < len(holes) && holes[hi].start <= off && off+n <= holes[hi].end
		if hole {
			clear(buf[:n])
		} else if m, err := src.ReadAt(buf[:n], off); int64(m) < n || err != nil && !errors.Is(err, io.EOF) {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("source ended at byte %d of %d: %w", off+int64(m), size, io.ErrUnexpectedEOF)
			}
			readErr = fmt.Errorf("pull: read: %w", err)
			free <- buf
			break
		}
		wg := &sync.WaitGroup{}
		wg.Add(1)
		c := chunk{buf: buf, n: int(n), hole: hole, wg: wg}
		toHash <- c
		toWrite <- c
		off += n
	}
	close(toHash)
	close(toWrite)
	hashWG.Wait()
	writeWG.Wait()
	if readErr != nil {
		return nil, readErr
	}
	if writeErr != nil {
		return nil, writeErr
	}
	return h.Sum(nil), nil
}

// writeSliced writes b to w in pieces of at most writeSlice bytes (see writeSlice).
func writeSliced(w io.Writer, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), writeSlice)
		if _, err := w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
