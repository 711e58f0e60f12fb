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
)

// Options control [Pull] and [PullMinidumps].
type Options struct {
	// OutDir is the directory the file is written to ("" means the current directory). The
	// file keeps its name (MEMORY.DMP; a dump cut from a pagefile is named MEMORY.DMP too).
	OutDir string
	// Path pulls this file (any file, whole) instead of looking for a dump.
	Path string
	// Minidumps makes Pull take the newest minidump instead of a full or kernel dump.
	Minidumps bool
	// Force overwrites an existing output file.
	Force bool
	// Progress, when set, is called after each chunk with the bytes copied so far and the
	// total. It runs on the copying goroutine: keep it quick.
	Progress func(done, total int64)
	// Sources are registry-provided paths to look at besides the defaults.
	Sources Sources
}

// Result describes a pulled file.
type Result struct {
	Source string `json:"source"` // path inside the image's volume, e.g. `Windows\MEMORY.DMP`
	Volume int    `json:"volume"` // index of that volume
	Output string `json:"output"` // the written file
	Size   int64  `json:"size"`   // bytes written
	SHA256 string `json:"sha256"` // hex digest of the written bytes
	// FromPagefile: the dump was cut from the start of pagefile.sys (or the dedicated dump
	// file) at the length its header gives.
	FromPagefile bool       `json:"from_pagefile"`
	Note         string     `json:"note,omitempty"`
	Candidate    *Candidate `json:"dump,omitempty"` // the dump header summary; nil for a plain file
}

// Pull copies one file out of img: with Options.Path that file, whole; with
// Options.Minidumps the newest valid minidump; otherwise the newest valid full or kernel
// dump (MEMORY.DMP, the registry's DumpFile, or a dump at the start of pagefile.sys or the
// DedicatedDumpFile). It returns an error wrapping ErrNoDump when there is none,
// ErrExists when the output exists without Force, and disk.ErrNotFound for a missing Path.
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
		res, err := copyOut(ctx, f, f.Size(), f.Name(), img.Path(), opts)
		if err != nil {
			return nil, err
		}
		res.Source, res.Volume = c.Source, c.Volume
		if c.DumpSize > 0 {
			res.Candidate = &c
		}
		return res, nil
	}
	cands, err := list(fs, opts.Sources, !opts.Minidumps, opts.Minidumps)
	if err != nil {
		return nil, err
	}
	best, err := newest(img, cands)
	if err != nil {
		return nil, err
	}
	return pullCandidate(ctx, fs, img.Path(), best, opts)
}

// PullMinidumps copies every valid minidump out of img (newest first).
func PullMinidumps(ctx context.Context, img *disk.Image, opts Options) ([]*Result, error) {
	fs, err := img.WindowsVolume()
	if err != nil {
		return nil, err
	}
	cands, err := list(fs, opts.Sources, false, true)
	if err != nil {
		return nil, err
	}
	var valid []Candidate
	for _, c := range cands {
		if c.Valid {
			valid = append(valid, c)
		}
	}
	if len(valid) == 0 {
		return nil, noDump(img, cands, "minidump")
	}
	if !opts.Force {
		for _, c := range valid {
			if err := checkFree(filepath.Join(opts.OutDir, baseName(c.Source))); err != nil {
				return nil, err
			}
		}
	}
	var out []*Result
	for _, c := range valid {
		r, err := pullCandidate(ctx, fs, img.Path(), c, opts)
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
	return fmt.Errorf("pull: %w in %s: %s", ErrNoDump, img.Path(), strings.Join(why, "; "))
}

func pullCandidate(ctx context.Context, fs *disk.FS, imagePath string, c Candidate, opts Options) (*Result, error) {
	f, err := fs.Open(c.Source)
	if err != nil {
		return nil, err
	}
	size, name := f.Size(), f.Name()
	if c.FromPagefile {
		size, name = c.DumpSize, "MEMORY.DMP"
	}
	res, err := copyOut(ctx, f, size, name, imagePath, opts)
	if err != nil {
		return nil, err
	}
	res.Source, res.Volume, res.FromPagefile = c.Source, c.Volume, c.FromPagefile
	if c.FromPagefile {
		res.Note = fmt.Sprintf(`the dump is still in \%s: Windows had not rebooted to move it to MEMORY.DMP; its first %d bytes (the length its header gives) were taken`, c.Source, c.DumpSize)
	} else if c.Problem != "" {
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

// copyOut streams size bytes of src into OutDir/name through a temporary file. It refuses
// to replace the image itself (imagePath), even with Force.
func copyOut(ctx context.Context, src io.ReaderAt, size int64, name, imagePath string, opts Options) (_ *Result, err error) {
	dir := opts.OutDir
	if dir == "" {
		dir = "."
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("pull: output directory: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("pull: output directory %s is not a directory", dir)
	}
	name = safeName(name)
	out := filepath.Join(dir, name)
	if !opts.Force {
		if err := checkFree(out); err != nil {
			return nil, err
		}
	} else if a, err := os.Stat(out); err == nil {
		if b, err := os.Stat(imagePath); err == nil && os.SameFile(a, b) {
			return nil, fmt.Errorf("pull: %w: %s is the disk image itself; choose another --out directory", ErrExists, out)
		}
	}
	tmp, err := os.CreateTemp(dir, "."+name+".crashkey-*")
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
	sum, err := Copy(ctx, tmp, src, size, opts.Progress)
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
	return &Result{Output: out, Size: size, SHA256: hex.EncodeToString(sum)}, nil
}

// safeName keeps a file name from the image from escaping the output directory.
func safeName(n string) string {
	n = strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 {
			return '_'
		}
		return r
	}, n)
	if n == "" || n == "." || n == ".." {
		n = "pulled.bin"
	}
	return n
}

// Chunk size and depth of the copy pipeline: 4 × 4 MiB in flight bounds memory.
const (
	chunkSize   = 4 << 20
	chunkBuffer = 4
)

type chunk struct {
	buf []byte
	n   int
	wg  *sync.WaitGroup
}

// Copy copies size bytes from src to w and returns their SHA-256. Reading, hashing and
// writing run concurrently on a fixed set of buffers, so memory stays constant and the
// copy runs at the speed of the slowest stage. progress (optional) is called after each
// chunk is written.
func Copy(ctx context.Context, w io.Writer, src io.ReaderAt, size int64, progress func(done, total int64)) ([]byte, error) {
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
		for c := range toWrite {
			if writeErr == nil {
				if _, err := w.Write(c.buf[:c.n]); err != nil {
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
	}()
	var readErr error
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
		m, err := src.ReadAt(buf[:n], off)
		if int64(m) < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = fmt.Errorf("source ended at byte %d of %d: %w", off+int64(m), size, io.ErrUnexpectedEOF)
			}
			readErr = fmt.Errorf("pull: read: %w", err)
			free <- buf
			break
		}
		wg := &sync.WaitGroup{}
		wg.Add(1)
		c := chunk{buf: buf, n: int(n), wg: wg}
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
