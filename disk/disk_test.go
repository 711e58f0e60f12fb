package disk

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// manifestEntry is one line of testdata/manifest.tsv, written by mkfixtures.sh from
// ntfscat's view of the raw volumes.
type manifestEntry struct {
	image  string
	volume int
	path   string
	size   int64
	sha256 string
}

func readManifest(tb testing.TB) []manifestEntry {
	tb.Helper()
	f, err := os.Open("testdata/manifest.tsv")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []manifestEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), "\t")
		if len(fs) != 5 {
			tb.Fatalf("manifest line %q: want 5 fields", sc.Text())
		}
		vol, _ := strconv.Atoi(fs[1])
		size, _ := strconv.ParseInt(fs[3], 10, 64)
		out = append(out, manifestEntry{fs[0], vol, fs[2], size, fs[4]})
	}
	if len(out) < 10 {
		tb.Fatalf("manifest has only %d entries", len(out))
	}
	return out
}

func openFixture(tb testing.TB, name string, opts Options) *Image {
	tb.Helper()
	im, err := Open(filepath.Join("testdata", name), opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", name, err)
	}
	tb.Cleanup(func() { im.Close() })
	return im
}

func sha(tb testing.TB, r io.ReaderAt, size int64) string {
	tb.Helper()
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(r, 0, size))
	if err != nil || n != size {
		tb.Fatalf("read %d bytes: got %d, %v", size, n, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// TestManifest reads every recorded file and compares it with what ntfscat read when the
// fixtures were built.
func TestManifest(t *testing.T) {
	for _, e := range readManifest(t) {
		if strings.Contains(e.path, "#") {
			continue // a derived entry (pull's cut pagefile)
		}
		t.Run(e.image+"/"+e.path, func(t *testing.T) {
			im := openFixture(t, e.image, Options{})
			fs, err := im.Volume(e.volume)
			if err != nil {
				t.Fatal(err)
			}
			f, err := fs.Open(e.path)
			if err != nil {
				t.Fatal(err)
			}
			if f.Size() != e.size {
				t.Fatalf("size %d, ntfscat read %d", f.Size(), e.size)
			}
			if got := sha(t, f, f.Size()); got != e.sha256 {
				t.Fatalf("sha256 %s, ntfscat read %s", got, e.sha256)
			}
			// Odd-sized reads at odd offsets must agree with the whole-file read.
			if f.Size() > 5000 {
				a := make([]byte, 3001)
				b := make([]byte, 3001)
				if _, err := f.ReadAt(a, 1999); err != nil {
					t.Fatal(err)
				}
				whole, _ := io.ReadAll(io.NewSectionReader(f, 0, f.Size()))
				copy(b, whole[1999:])
				if !bytes.Equal(a, b) {
					t.Fatal("ReadAt(3001 bytes at 1999) differs from the whole-file read")
				}
			}
			if n, err := f.ReadAt(make([]byte, 10), f.Size()-4); n != 4 || err != io.EOF {
				t.Fatalf("ReadAt across the end: n=%d err=%v, want 4, io.EOF", n, err)
			}
		})
	}
}

func TestVolumes(t *testing.T) {
	type vol struct {
		index      int
		scheme     string
		fs, label  string
		logical    bool
		hasWindows bool
	}
	tests := []struct {
		image   string
		scheme  string
		format  string
		vols    []vol
		windows int
	}{
		{"gpt.qcow2", SchemeGPT, FormatQcow2, []vol{
			{1, SchemeGPT, "", "", false, false},
			{2, SchemeGPT, FSNTFS, "Data", false, false},
			{3, SchemeGPT, FSNTFS, "Windows", false, true},
		}, 3},
		{"mbr.qcow2", SchemeMBR, FormatQcow2, []vol{
			{1, SchemeMBR, FSNTFS, "Data", false, false},
			{2, SchemeMBR, "", "", false, false},
			{5, SchemeMBR, FSNTFS, "Win", true, true},
		}, 5},
		{"overlay.qcow2", SchemeNone, FormatQcow2, []vol{{1, SchemeNone, FSNTFS, "Bare", false, true}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			im := openFixture(t, tt.image, Options{})
			if im.Scheme() != tt.scheme || im.Format() != tt.format {
				t.Errorf("scheme %s format %s, want %s %s", im.Scheme(), im.Format(), tt.scheme, tt.format)
			}
			got := im.Volumes()
			if len(got) != len(tt.vols) {
				t.Fatalf("%d volumes, want %d: %+v", len(got), len(tt.vols), got)
			}
			for i, w := range tt.vols {
				g := got[i]
				if g.Index != w.index || g.Scheme != w.scheme || g.FS != w.fs || g.Label != w.label ||
					g.Logical != w.logical || g.HasWindows != w.hasWindows || g.Error != "" {
					t.Errorf("volume %d = %+v, want %+v", i, g, w)
				}
				if g.Start <= 0 && tt.scheme != SchemeNone || g.Start+g.Size > im.Size() {
					t.Errorf("volume %d at %d+%d is outside the %d-byte disk", g.Index, g.Start, g.Size, im.Size())
				}
			}
			fs, err := im.WindowsVolume()
			if err != nil {
				t.Fatal(err)
			}
			if fs.Volume().Index != tt.windows {
				t.Errorf("WindowsVolume = %d, want %d", fs.Volume().Index, tt.windows)
			}
		})
	}
}

func TestPartitionOption(t *testing.T) {
	im := openFixture(t, "gpt.qcow2", Options{Partition: 2})
	fs, err := im.WindowsVolume()
	if err != nil || fs.Volume().Index != 2 {
		t.Fatalf("WindowsVolume with Partition 2 = %v, %v", fs, err)
	}
	if _, err := fs.Stat("readme.txt"); err != nil {
		t.Error(err)
	}
	for _, p := range []int{1, 4, 9} {
		im := openFixture(t, "gpt.qcow2", Options{Partition: p})
		if _, err := im.WindowsVolume(); !errors.Is(err, ErrNoVolume) {
			t.Errorf("Partition %d: err = %v, want ErrNoVolume", p, err)
		}
	}
}

func TestNoWindowsVolume(t *testing.T) {
	im := openFixture(t, "gpt.qcow2", Options{})
	im.vols[2].HasWindows = false
	_, err := im.WindowsVolume()
	if !errors.Is(err, ErrNoVolume) || !strings.Contains(err.Error(), "--partition") {
		t.Fatalf("err = %v, want ErrNoVolume naming --partition", err)
	}
}

func TestPaths(t *testing.T) {
	im := openFixture(t, "mbr.qcow2", Options{})
	fs, err := im.WindowsVolume()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path, want string
		err        error
	}{
		{`Windows\System32\config\SYSTEM`, `WINDOWS\system32\CONFIG\system`, nil},
		{`windows/system32/config/system`, `WINDOWS\system32\CONFIG\system`, nil},
		{`C:\WINDOWS\SYSTEM32\CONFIG\SYSTEM`, `WINDOWS\system32\CONFIG\system`, nil},
		{`%SystemRoot%\System32\config\SYSTEM`, `WINDOWS\system32\CONFIG\system`, nil},
		{`\??\C:\pagefile.sys`, `PAGEFILE.SYS`, nil},
		{`/Windows//./Minidump/mini112026-01.dmp`, `WINDOWS\MINIDUMP\Mini112026-01.DMP`, nil},
		{`Windows\MEMORY.DMP`, "", ErrNotFound},
		{`pagefile.sys\x`, "", ErrNotFound},
		{`Windows\..\pagefile.sys`, "", ErrBadPath},
		{`pagefile.sys:stream`, "", ErrBadPath},
		{`Windows\*.dmp`, "", ErrBadPath},
		{`Windows`, "", ErrBadPath}, // a directory
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			f, err := fs.Open(tt.path)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.Path() != tt.want {
				t.Errorf("Path = %q, want %q", f.Path(), tt.want)
			}
		})
	}
	if !errors.Is(ErrNotFound, os.ErrNotExist) {
		t.Error("ErrNotFound does not match os.ErrNotExist")
	}
}

func TestReadDir(t *testing.T) {
	im := openFixture(t, "gpt.qcow2", Options{})
	fs, _ := im.WindowsVolume()
	ents, err := fs.ReadDir(`WINDOWS\minidump`)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Path)
		if e.IsDir || e.Size == 0 || e.ModTime.IsZero() || e.Record < 16 {
			t.Errorf("entry %+v", e)
		}
	}
	want := `Windows\Minidump\112026-10300-02.dmp Windows\Minidump\112026-9015-01.dmp`
	if strings.Join(names, " ") != want {
		t.Errorf("ReadDir = %v, want %s", names, want)
	}
	root, err := fs.ReadDir("")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range root {
		if e.Name == "Windows" && e.IsDir {
			found = true
		}
	}
	if !found {
		t.Errorf("root listing lacks Windows: %+v", root)
	}
	if _, err := fs.ReadDir("pagefile.sys"); !errors.Is(err, ErrBadPath) {
		t.Errorf("ReadDir of a file: %v", err)
	}
}

func TestExtents(t *testing.T) {
	im := openFixture(t, "gpt.qcow2", Options{})
	fs, _ := im.WindowsVolume()
	check := func(path string, minExtents int, wantSparse bool) {
		t.Helper()
		f, err := fs.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		ext, err := f.Extents()
		if err != nil {
			t.Fatal(err)
		}
		if len(ext) < minExtents {
			t.Fatalf("%s: %d extents, want at least %d: %+v", path, len(ext), minExtents, ext)
		}
		var next int64
		sparse := false
		for _, e := range ext {
			if e.FileOffset != next || e.Length <= 0 {
				t.Fatalf("%s: extents do not tile the file: %+v", path, ext)
			}
			next += e.Length
			want := make([]byte, e.Length)
			if _, err := f.ReadAt(want, e.FileOffset); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			got := make([]byte, e.Length)
			if e.Sparse {
				sparse = true
			} else if _, err := im.ReadAt(got, e.DiskOffset); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%s: the disk bytes at %d differ from file bytes %d-%d", path, e.DiskOffset, e.FileOffset, e.FileOffset+e.Length)
			}
		}
		if next != f.Size() {
			t.Fatalf("%s: extents cover %d of %d bytes", path, next, f.Size())
		}
		if sparse != wantSparse {
			t.Fatalf("%s: sparse extent %v, want %v", path, sparse, wantSparse)
		}
	}
	check(`Windows\MEMORY.DMP`, 4, false) // written in interleaved pieces: fragmented
	check(`Windows\Temp\sparse.bin`, 3, true)
	check(`pagefile.sys`, 1, false)
	for _, p := range []string{`Windows\Compressed\notes.txt`} {
		f, err := fs.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Extents(); !errors.Is(err, ErrNoExtents) {
			t.Errorf("%s: Extents err = %v, want ErrNoExtents", p, err)
		}
	}
	data, _ := im.Volume(2)
	small, err := data.Open("readme.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := small.Extents(); !errors.Is(err, ErrNoExtents) {
		t.Errorf("resident file: Extents err = %v, want ErrNoExtents", err)
	}
}

// TestReadOnly checks that opening and reading every fixture leaves the files untouched.
func TestReadOnly(t *testing.T) {
	names := []string{"gpt.qcow2", "mbr.qcow2", "base.qcow2", "overlay.qcow2"}
	before := map[string]string{}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		before[n] = hex.EncodeToString(sha256.New().Sum(b))
	}
	for _, e := range readManifest(t) {
		if strings.Contains(e.path, "#") {
			continue
		}
		im := openFixture(t, e.image, Options{})
		fs, _ := im.Volume(e.volume)
		f, err := fs.Open(e.path)
		if err != nil {
			t.Fatal(err)
		}
		sha(t, f, f.Size())
		im.Close()
	}
	for _, n := range names {
		b, _ := os.ReadFile(filepath.Join("testdata", n))
		if hex.EncodeToString(sha256.New().Sum(b)) != before[n] {
			t.Errorf("%s changed", n)
		}
	}
}

func needTool(tb testing.TB, name string) {
	tb.Helper()
	if _, err := exec.LookPath(name); err != nil {
		tb.Fatalf("%s is missing: run scripts/deps.sh (%v)", name, err)
	}
}

func run(tb testing.TB, name string, args ...string) {
	tb.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		tb.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// TestRawImage converts a fixture to raw with qemu-img and reads the same content from it.
func TestRawImage(t *testing.T) {
	needTool(t, "qemu-img")
	raw := filepath.Join(t.TempDir(), "gpt.img")
	run(t, "qemu-img", "convert", "-f", "qcow2", "-O", "raw", "testdata/gpt.qcow2", raw)
	im, err := Open(raw, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if im.Format() != FormatRaw || im.Scheme() != SchemeGPT {
		t.Fatalf("format %s scheme %s", im.Format(), im.Scheme())
	}
	fs, err := im.WindowsVolume()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range readManifest(t) {
		if e.image != "gpt.qcow2" || e.volume != 3 || strings.Contains(e.path, "#") {
			continue
		}
		f, err := fs.Open(e.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := sha(t, f, f.Size()); got != e.sha256 {
			t.Errorf("%s: sha256 %s, want %s", e.path, got, e.sha256)
		}
	}
}

func TestUnsupportedFormats(t *testing.T) {
	needTool(t, "qemu-img")
	dir := t.TempDir()
	for _, format := range []string{"vmdk", "vhdx", "vdi", "vpc", "parallels"} {
		t.Run(format, func(t *testing.T) {
			p := filepath.Join(dir, "disk."+format)
			run(t, "qemu-img", "create", "-q", "-f", format, p, "4M")
			_, err := Open(p, Options{})
			if !errors.Is(err, ErrUnsupportedFormat) {
				t.Fatalf("err = %v, want ErrUnsupportedFormat", err)
			}
			want := "qemu-img convert -f " + format + " -O qcow2 " + p
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks %q", err, want)
			}
		})
	}
}

func TestMissingBacking(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/overlay.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "overlay.qcow2")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Open(p, Options{})
	if err == nil || !strings.Contains(err.Error(), "base.qcow2") || !strings.Contains(err.Error(), "qemu-img rebase") {
		t.Fatalf("err = %v, want one naming base.qcow2 and qemu-img rebase", err)
	}
	// A backing "file" that is a FIFO must be refused without opening it (which would block).
	fifo := filepath.Join(dir, "base.qcow2")
	run(t, "mkfifo", fifo)
	if _, err := Open(p, Options{AllowBacking: BackingPolicy{Any: true}}); !errors.Is(err, ErrBackingRefused) || !strings.Contains(err.Error(), "FIFO") {
		t.Fatalf("FIFO backing file: err = %v", err)
	}
}

func TestBackingChainLoop(t *testing.T) {
	needTool(t, "qemu-img")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.qcow2"), filepath.Join(dir, "b.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", a, "4M")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "a.qcow2", "-F", "qcow2", b)
	run(t, "qemu-img", "rebase", "-q", "-u", "-f", "qcow2", "-b", "b.qcow2", "-F", "qcow2", a)
	_, err := Open(b, Options{})
	if err == nil || !strings.Contains(err.Error(), "loops") {
		t.Fatalf("err = %v, want a backing-chain loop error", err)
	}
}

// TestLockedByQEMU holds the same kind of lock QEMU holds (a shared OFD lock on byte 100+i
// of the image file, from another open file description) and expects Open to refuse.
func TestLockedByQEMU(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile("testdata/gpt.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "vm.qcow2")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(p, Options{}); err != nil {
		t.Fatalf("unlocked: %v", err)
	}
	holder, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if err := qemuStyleLock(holder, 101); err != nil {
		t.Fatal(err)
	}
	_, err = Open(p, Options{})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "--force-share") {
		t.Fatalf("locked: err = %v, want ErrInUse naming --force-share", err)
	}
	im, err := Open(p, Options{ForceShare: true})
	if err != nil {
		t.Fatalf("locked with ForceShare: %v", err)
	}
	defer im.Close()
	if w := im.Warnings(); len(w) != 1 || !strings.Contains(w[0], "inconsistent") {
		t.Errorf("warnings = %q", w)
	}
	if _, err := im.WindowsVolume(); err != nil {
		t.Error(err)
	}
}

// TestPanicBecomesError checks that a panic inside the NTFS layer is reported as an error
// naming the image and the path.
func TestPanicBecomesError(t *testing.T) {
	im := openFixture(t, "gpt.qcow2", Options{})
	fs, err := im.WindowsVolume()
	if err != nil {
		t.Fatal(err)
	}
	err = fs.guard("open", `Windows\MEMORY.DMP`, func() error { panic("runtime error: index out of range [7] with length 3") })
	if !errors.Is(err, ErrCorruptFS) || !strings.Contains(err.Error(), "gpt.qcow2") ||
		!strings.Contains(err.Error(), `Windows\MEMORY.DMP`) || !strings.Contains(err.Error(), "index out of range") {
		t.Fatalf("err = %v", err)
	}
}

func TestCleanPath(t *testing.T) {
	tests := []struct{ in, want string }{
		{`C:\Windows\MEMORY.DMP`, `Windows\MEMORY.DMP`},
		{`%SystemRoot%\MEMORY.DMP`, `Windows\MEMORY.DMP`},
		{`%windir%\Minidump`, `Windows\Minidump`},
		{`\SystemRoot\Minidump`, `Windows\Minidump`},
		{`\??\C:\pagefile.sys`, `pagefile.sys`},
		{`\\?\D:\dumps\dedicated.sys`, `dumps\dedicated.sys`},
		{`/`, ``},
		{`%SystemRootX%\a`, "error"},
		{`a\..\b`, "error"},
		{`C:`, ``},
	}
	for _, tt := range tests {
		got, err := CleanPath(tt.in)
		if err != nil {
			got = "error"
		}
		if got != tt.want {
			t.Errorf("CleanPath(%q) = %q (%v), want %q", tt.in, got, err, tt.want)
		}
	}
}
