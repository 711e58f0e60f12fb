// Package pull finds crash dumps inside a Windows guest's disk image and copies one out.
//
// Candidates are Windows\MEMORY.DMP (the dump after the guest rebooted), a dump header at
// offset 0 of pagefile.sys (the guest stopped before it rebooted, or a DedicatedDumpFile),
// Windows\Minidump\*.dmp, and whatever the guest's registry names (DumpFile, MinidumpDir,
// DedicatedDumpFile; the caller reads the registry and passes them in [Sources]).
//
//	img, _ := disk.Open("win.qcow2", disk.Options{})
//	res, err := pull.Pull(ctx, img, pull.Options{OutDir: "."})
//	fmt.Println(res.Output, res.SHA256)
//
// Pull never writes to the image. It streams with constant memory, writes a temporary file
// next to the output and renames it into place, and leaves nothing behind on failure. The
// image is untrusted: a dump is cut to the length its header gives, an output is bounded by
// Options.MaxSize and the free space of the output directory, sparse runs stay holes, names
// are mapped to safe local names (Result.Renamed says when), and Force never replaces a file
// of the image's backing chain or one a running QEMU holds.
package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/dump"
)

// Errors that callers may test for with errors.Is.
var (
	// ErrNoDump: no valid dump was found among the candidates.
	ErrNoDump = errors.New("no dump found")
	// ErrExists: the output file exists and Options.Force was not set.
	ErrExists = errors.New("output file exists")
)

// Candidate kinds.
const (
	KindMemoryDump = "memory.dmp" // Windows\MEMORY.DMP or the registry's DumpFile
	KindPagefile   = "pagefile"   // pagefile.sys: a dump at offset 0, if any
	KindDedicated  = "dedicated"  // the registry's DedicatedDumpFile: a dump at offset 0, if any
	KindMinidump   = "minidump"   // a file of Windows\Minidump or MinidumpDir
	KindFile       = "file"       // any file, named with Options.Path
)

// Default locations (inside the Windows volume).
const (
	DefaultDumpFile    = `Windows\MEMORY.DMP`
	DefaultMinidumpDir = `Windows\Minidump`
	DefaultPagefile    = `pagefile.sys`
)

// Sources are extra places to look, as the guest's registry gives them
// (HKLM\SYSTEM\…\Control\CrashControl). Windows paths are accepted as they are stored:
// `%SystemRoot%\MEMORY.DMP`, `C:\dumps\dedicated.sys`. The drive letter is dropped: every
// path is looked up on the Windows volume.
type Sources struct {
	DumpFile          string // CrashControl\DumpFile
	MinidumpDir       string // CrashControl\MinidumpDir
	DedicatedDumpFile string // CrashControl\DedicatedDumpFile
}

// Candidate is a file that holds, or might hold, a dump.
type Candidate struct {
	Source   string    `json:"source"`    // path inside the volume, as stored, e.g. `Windows\MEMORY.DMP`
	Volume   int       `json:"volume"`    // index of the volume (disk.Volume.Index)
	Kind     string    `json:"kind"`      // KindMemoryDump, KindPagefile, KindDedicated, KindMinidump or KindFile
	Size     int64     `json:"size"`      // size of the file
	ModTime  time.Time `json:"mod_time"`  // the file's last write time (UTC)
	Valid    bool      `json:"valid"`     // a dump header was found and the file holds the whole dump
	DumpSize int64     `json:"dump_size"` // length of the dump by its header (0 when not a dump)
	// FromPagefile: the dump sits at offset 0 of a pagefile or dedicated dump file and is
	// DumpSize bytes long: Windows had not rebooted yet when the image was taken.
	FromPagefile bool      `json:"from_pagefile"`
	BugCheck     uint32    `json:"bugcheck,omitempty"`
	BugCheckName string    `json:"bugcheck_name,omitempty"`
	DumpType     string    `json:"dump_type,omitempty"`
	SystemTime   time.Time `json:"system_time,omitzero"` // the crash time from the header (UTC)
	Summary      string    `json:"summary"`              // one line: bug check, dump type, time; or what is wrong
	Problem      string    `json:"problem,omitempty"`    // why it is not valid
	// PullSize is how many bytes, from the start of the file, pull takes: the length the dump
	// header gives (for a triage dump with its secondary data), never more than the file holds.
	PullSize int64 `json:"pull_size"`

	hdrTime bool
	err     error          // the read error that made the candidate invalid, if any
	name    string         // the file's exact name (a name may hold '\')
	record  int64          // MFT record number
	entry   *disk.DirEntry // the directory entry it was listed from, if any
}

// when orders candidates: the crash time when the header has one, else the file's time.
func (c Candidate) when() time.Time {
	if c.hdrTime {
		return c.SystemTime
	}
	return c.ModTime
}

type lookupPath struct {
	path string
	kind string
}

// List examines every candidate location on the Windows volume of img and returns the files
// that exist, valid or not, sorted by kind (memory dumps, pagefile and dedicated dump file,
// minidumps), valid before invalid, then newest first.
func List(img *disk.Image, src Sources) ([]Candidate, error) {
	return ListContext(context.Background(), img, src)
}

// ListContext is List, stopped (with ctx's error) when ctx is done: a walk through a
// directory of many thousands of minidumps ends within moments of Ctrl-C.
func ListContext(ctx context.Context, img *disk.Image, src Sources) ([]Candidate, error) {
	fs, err := img.WindowsVolume()
	if err != nil {
		return nil, err
	}
	return list(ctx, fs, src, true, true)
}

func cleanOr(p, def string) (string, error) {
	if strings.TrimSpace(p) == "" {
		return def, nil
	}
	c, err := disk.CleanPath(p)
	if err != nil {
		return "", fmt.Errorf("pull: registry path: %w", err)
	}
	return c, nil
}

func list(ctx context.Context, fs *disk.FS, src Sources, full, mini bool) ([]Candidate, error) {
	var paths []lookupPath
	if full || mini { // a pagefile may hold a minidump too
		df, err := cleanOr(src.DumpFile, DefaultDumpFile)
		if err != nil {
			return nil, err
		}
		paths = append(paths, lookupPath{DefaultDumpFile, KindMemoryDump}, lookupPath{df, KindMemoryDump},
			lookupPath{DefaultPagefile, KindPagefile})
		if src.DedicatedDumpFile != "" {
			dd, err := cleanOr(src.DedicatedDumpFile, "")
			if err != nil {
				return nil, err
			}
			paths = append(paths, lookupPath{dd, KindDedicated})
		}
	}
	var out []Candidate
	seen := map[int64]bool{}
	add := func(c Candidate) {
		if c.record >= 0 {
			if seen[c.record] {
				return
			}
			seen[c.record] = true
		}
		out = append(out, c)
	}
	looked := map[string]bool{}
	for _, p := range paths {
		if looked[strings.ToLower(p.path)] {
			continue
		}
		looked[strings.ToLower(p.path)] = true
		c, err := examine(fs, p.path, p.kind)
		if errors.Is(err, disk.ErrNotFound) {
			continue
		}
		if err != nil {
			// A damaged pagefile.sys must not hide a good MEMORY.DMP: keep the failure as a
			// candidate (noDump reports the corruption when nothing else is usable).
			c = Candidate{Source: p.path, Volume: fs.Volume().Index, Kind: p.kind, record: -1, err: err}
			c.Problem = "cannot be read: " + err.Error()
			c.Summary = "invalid: " + c.Problem
			add(c)
			continue
		}
		if !full && c.DumpType != dump.TypeTriage.String() {
			continue // only minidumps were asked for
		}
		add(c)
	}
	if mini {
		md, err := cleanOr(src.MinidumpDir, DefaultMinidumpDir)
		if err != nil {
			return nil, err
		}
		dirs := []string{DefaultMinidumpDir}
		if !strings.EqualFold(md, DefaultMinidumpDir) {
			dirs = append(dirs, md)
		}
		for _, d := range dirs {
			// Streamed: linear in the directory's size, one entry in memory at a time.
			err := fs.ReadDirFunc(d, func(e disk.DirEntry) error {
				if err := ctx.Err(); err != nil {
					return err
				}
				if !e.IsDir && strings.EqualFold(pathExt(e.Name), ".dmp") {
					add(examineEntry(fs, e, KindMinidump))
				}
				return nil
			})
			if errors.Is(err, disk.ErrNotFound) || errors.Is(err, disk.ErrBadPath) {
				continue
			}
			if err != nil && isCorrupt(err) {
				// A damaged folder must not hide the dumps found elsewhere (or in it so far).
				c := Candidate{Source: d, Volume: fs.Volume().Index, Kind: KindMinidump, record: -1, err: err}
				c.Problem = "the folder cannot be read: " + err.Error()
				c.Summary = "invalid: " + c.Problem
				add(c)
				continue
			}
			if err != nil {
				return nil, err
			}
		}
	}
	// A source that failed (a broken remote stream, a disk I/O error) is an I/O error of
	// the whole search, not an invalid candidate: it must not read as "no dump".
	for _, c := range out {
		var se *disk.SourceError
		if errors.As(c.err, &se) {
			return nil, c.err
		}
	}
	rank := map[string]int{KindMemoryDump: 0, KindPagefile: 1, KindDedicated: 1, KindMinidump: 2, KindFile: 3}
	sort.SliceStable(out, func(i, j int) bool {
		if rank[out[i].Kind] != rank[out[j].Kind] {
			return rank[out[i].Kind] < rank[out[j].Kind]
		}
		if out[i].Valid != out[j].Valid {
			return out[i].Valid
		}
		return out[i].when().After(out[j].when())
	})
	return out, nil
}

func pathExt(name string) string {
	if i := strings.LastIndexByte(name, '.'); i >= 0 {
		return name[i:]
	}
	return ""
}

// examine opens one file and decodes its dump header, if any.
func examine(fs *disk.FS, path, kind string) (Candidate, error) {
	f, err := fs.Open(path)
	if err != nil {
		return Candidate{}, err
	}
	info := f.Info()
	c := Candidate{Source: info.Path, Volume: fs.Volume().Index, Kind: kind, Size: info.Size, ModTime: info.ModTime, name: info.Name, record: info.Record}
	describe(&c, f)
	return c, nil
}

// examineEntry examines a directory entry. A file that cannot be opened is a candidate with
// the problem, never an error: one odd or damaged file must not hide the others.
func examineEntry(fs *disk.FS, e disk.DirEntry, kind string) Candidate {
	c := Candidate{Source: e.Path, Volume: fs.Volume().Index, Kind: kind, Size: e.Size, ModTime: e.ModTime, name: e.Name, record: e.Record, entry: &e}
	f, err := openEntry(fs, e)
	if err != nil {
		c.err, c.Problem = err, "cannot be read: "+err.Error()
		c.Summary = "invalid: " + c.Problem
		return c
	}
	describe(&c, f)
	return c
}

// openEntry opens the file a directory entry names, by its MFT record: any name works, one
// the path syntax cannot express (':', '?', '%', '..') or one that differs from another only
// in case included.
func openEntry(fs *disk.FS, e disk.DirEntry) (*disk.File, error) {
	return fs.OpenEntry(e)
}

// open opens a candidate again, by its directory entry when it came from a listing.
func (c Candidate) open(fs *disk.FS) (*disk.File, error) {
	if c.entry != nil {
		return fs.OpenEntry(*c.entry)
	}
	return fs.Open(c.Source)
}

// describe fills in what the file's dump header says.
func describe(c *Candidate, r io.ReaderAt) {
	d, err := dump.Open(r, c.Size)
	if err != nil {
		if isCorrupt(err) {
			c.err = err
		}
		switch {
		case errors.Is(err, dump.ErrNotDump) && (c.Kind == KindPagefile || c.Kind == KindDedicated):
			c.Problem = "no dump header at offset 0 (no dump was written, or Windows already moved it to MEMORY.DMP at the next boot)"
		case errors.Is(err, dump.ErrNotDump):
			c.Problem = "not a kernel dump: " + shortErr(err)
		default:
			c.Problem = shortErr(err)
		}
		c.Summary = c.Problem
		return
	}
	h := d.Header()
	c.DumpSize = d.DumpSize()
	if h.BugCheckCode.Set {
		c.BugCheck = h.BugCheckCode.Value
		c.BugCheckName = dump.BugCheckName(c.BugCheck)
	}
	c.DumpType = h.DumpType.String()
	if t, ok := h.Time(); ok {
		c.SystemTime, c.hdrTime = t, true
	}
	c.FromPagefile = c.Kind == KindPagefile || c.Kind == KindDedicated
	switch {
	case c.Kind == KindMinidump && h.DumpType != dump.TypeTriage:
		c.Problem = fmt.Sprintf("a %s dump in the minidump folder", h.DumpType)
		c.Valid = true
	case c.Kind == KindMemoryDump && h.DumpType == dump.TypeTriage:
		c.Problem = "a triage (mini) dump where a full or kernel dump was expected"
	case c.Size < c.DumpSize:
		c.Problem = fmt.Sprintf("truncated: the file has %d of the %d bytes the header gives (still being written or copied?)", c.Size, c.DumpSize)
	default:
		c.Valid = true
	}
	c.PullSize = pullSize(c, h, r)
	var parts []string
	if h.BugCheckCode.Set {
		parts = append(parts, dump.FormatBugCheck(c.BugCheck))
	} else {
		parts = append(parts, "bug check not set")
	}
	if strings.Contains(c.DumpType, "dump") {
		parts = append(parts, c.DumpType)
	} else {
		parts = append(parts, c.DumpType+" dump")
	}
	if c.hdrTime {
		parts = append(parts, c.SystemTime.Format("2006-01-02 15:04:05 UTC"))
	}
	if c.FromPagefile {
		parts = append(parts, fmt.Sprintf("first %d bytes", c.PullSize))
	}
	c.Summary = strings.Join(parts, ", ")
	if c.Problem != "" {
		c.Summary += "; " + c.Problem
		if !c.Valid {
			c.Summary = "invalid: " + c.Summary
		}
	}
}

func shortErr(err error) string { return strings.TrimPrefix(err.Error(), "dump: ") }

// pullSize is the number of bytes pull takes of a dump file: the length its header gives,
// never more than the file holds, so that a sparse file claiming terabytes yields only the
// dump. A triage dump keeps its secondary data: a Minidump file up to RequiredDumpSpace, a
// triage dump still in a pagefile as far as its blob headers go (see triageLength).
func pullSize(c *Candidate, h dump.Header, r io.ReaderAt) int64 {
	required := int64(-1)
	if rs := h.RequiredDumpSpace; rs.Set && rs.Value <= uint64(c.Size) {
		required = int64(rs.Value)
	}
	switch {
	case h.DumpType != dump.TypeTriage:
		return min(c.DumpSize, c.Size)
	case c.FromPagefile:
		n, _, _ := triageLength(r, c.DumpSize, max(required, 0), c.Size)
		return n
	case required >= c.DumpSize:
		return required
	}
	return c.Size
}

// Damage returns the first error by which a damaged image or file system made one of cands
// unreadable, or nil.
func Damage(cands []Candidate) error {
	for _, c := range cands {
		if c.err != nil && isCorrupt(c.err) {
			return c.err
		}
	}
	return nil
}

// isCorrupt reports an error that comes from a damaged image or file system (as opposed to
// a file that simply holds no dump).
func isCorrupt(err error) bool {
	return errors.Is(err, disk.ErrCorruptImage) || errors.Is(err, disk.ErrCorruptFS)
}
