package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// scratch is a directory for fixtures built once per test binary (hostile images, large
// directories); TestMain removes it.
var (
	scratchOnce sync.Once
	scratchDir  string
	scratchErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if scratchDir != "" {
		_ = os.RemoveAll(scratchDir)
	}
	os.Exit(code)
}

func scratch(tb testing.TB) string {
	tb.Helper()
	scratchOnce.Do(func() { scratchDir, scratchErr = os.MkdirTemp("", "crashkey-disk-") })
	if scratchErr != nil {
		tb.Fatal(scratchErr)
	}
	return scratchDir
}

var hostileOnce sync.Once

// hostile builds the images of testdata/mkhostile.sh once and returns their directory.
func hostile(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(scratch(tb), "hostile")
	var err error
	var out []byte
	hostileOnce.Do(func() {
		out, err = exec.Command("bash", "testdata/mkhostile.sh", dir).CombinedOutput()
		if err != nil {
			_ = os.RemoveAll(dir)
		}
	})
	if err != nil {
		tb.Fatalf("mkhostile.sh: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "payload.bin")); err != nil {
		tb.Fatalf("hostile fixtures missing (an earlier build failed): %v", err)
	}
	return dir
}

// TestHostileCorrupt: corruption that stops the search for \Windows, or a read, is reported
// as corruption (ErrCorruptImage, exit 3), never as "no \Windows volume" or "not found".
func TestHostileCorrupt(t *testing.T) {
	dir := hostile(t)
	for _, tt := range []struct{ image, want string }{
		{"overindex.img", "larger than the 67108864-byte volume"},
		{"overbudget.img", "larger than crashkey reads"},
		{"fixup.img", "Fixup"},
		{"badblock.img", "index block 1 (in use) of the directory is damaged"},
	} {
		t.Run(tt.image, func(t *testing.T) {
			im, err := Open(filepath.Join(dir, tt.image), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			_, err = im.WindowsVolume()
			if !errors.Is(err, ErrCorruptImage) || errors.Is(err, ErrNoVolume) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrCorruptImage with %q", err, tt.want)
			}
		})
	}
	for _, tt := range []struct{ image, want string }{
		{"runpast.img", "past the end of the 67108864-byte volume"},
		{"truncated.qcow2", "truncated"},
	} {
		t.Run(tt.image, func(t *testing.T) {
			im, err := Open(filepath.Join(dir, tt.image), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			fs, err := im.Volume(1)
			if err != nil {
				t.Fatal(err)
			}
			f, err := fs.Open(`Windows\MEMORY.DMP`)
			if err == nil {
				_, err = io.Copy(io.Discard, io.NewSectionReader(f, 0, f.Size()))
			}
			if !errors.Is(err, ErrCorruptImage) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want ErrCorruptImage with %q", err, tt.want)
			}
		})
	}
}

// TestHostileCancel: a lookup in a huge (but within the budget) root index ends soon after
// its context is cancelled.
func TestHostileCancel(t *testing.T) {
	dir := hostile(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	im, err := Open(filepath.Join(dir, "bigindex.qcow2"), Options{Context: ctx})
	if err == nil {
		im.Close()
		t.Fatalf("Open ended without the cancel after %v", time.Since(start))
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Open returned %v after the cancel", d-300*time.Millisecond)
	}
}

// TestHostileBacking: the script's overlays over a host file are refused, and no host byte
// appears in the error.
func TestHostileBacking(t *testing.T) {
	dir := hostile(t)
	for _, n := range []string{"evil.qcow2", "link.qcow2"} {
		_, err := Open(filepath.Join(dir, "images", n), Options{})
		if !errors.Is(err, ErrBackingRefused) || !strings.Contains(err.Error(), "--allow-backing") || strings.Contains(err.Error(), "HOST-SECRET") {
			t.Errorf("%s: err = %v", n, err)
		}
	}
}

var bigDirs sync.Map // entries → volume path

// bigDirVolume builds (once) a bare NTFS volume with n empty files in \Windows\Minidump and
// n files in the root, with mkntfs and the libntfs-3g helper.
func bigDirVolume(tb testing.TB, n int) string {
	tb.Helper()
	if p, ok := bigDirs.Load(n); ok {
		return p.(string)
	}
	needTool(tb, "mkntfs")
	needTool(tb, "gcc")
	dir := scratch(tb)
	helper := filepath.Join(dir, "ntfshelper")
	if _, err := os.Stat(helper); err != nil {
		run(tb, "gcc", "-O2", "-o", helper, "testdata/ntfshelper.c", "-lntfs-3g")
	}
	vol := filepath.Join(dir, fmt.Sprintf("dir%d.img", n))
	if err := os.WriteFile(vol, nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.Truncate(vol, 256<<20+int64(n)*8<<10); err != nil {
		tb.Fatal(err)
	}
	run(tb, "mkntfs", "-F", "-Q", "-q", "-c", "4096", "-s", "512", vol)
	run(tb, helper, "mkdir", vol, "Windows")
	run(tb, helper, "mkdir", vol, "Windows/Minidump")
	run(tb, helper, "mkfiles", vol, "/Windows/Minidump", fmt.Sprint(n), "Mini")
	run(tb, helper, "mkfiles", vol, "/", fmt.Sprint(n), "root")
	bigDirs.Store(n, vol)
	return vol
}

// walkMinidumps lists \Windows\Minidump with ReadDirFunc and opens every entry, as pull does.
func walkMinidumps(tb testing.TB, fs *FS, peak *uint64) int {
	tb.Helper()
	n := 0
	var ms runtime.MemStats
	err := fs.ReadDirFunc(`Windows\Minidump`, func(e DirEntry) error {
		f, err := fs.OpenEntry(e)
		if err != nil {
			return err
		}
		if f.Name() != e.Name || f.Size() != 0 {
			return fmt.Errorf("opened %q (%d bytes) for %q", f.Name(), f.Size(), e.Name)
		}
		if n++; peak != nil && n%1000 == 0 {
			runtime.ReadMemStats(&ms)
			*peak = max(*peak, ms.HeapInuse)
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// TestBigDirectory lists a 20,000-file directory and looks up a missing name in a
// 20,000-entry root: every entry once, in order, and the live heap stays small while the
// walk runs (streaming, not collecting).
func TestBigDirectory(t *testing.T) {
	const n = 20000
	vol := bigDirVolume(t, n)
	im, err := Open(vol, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	fs, err := im.WindowsVolume()
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak uint64
	if got := walkMinidumps(t, fs, &peak); got != n {
		t.Fatalf("listed %d entries, want %d", got, n)
	}
	// A bounded walk keeps the heap near where it started; collecting 20,000 FileInfos
	// and names would not matter at this size, so the bound is per entry: under 64 bytes
	// of live heap per entry over the start.
	if grow := int64(peak) - int64(base.HeapInuse); grow > 64*n+16<<20 {
		t.Errorf("live heap grew by %d bytes while walking %d entries", grow, n)
	}
	seen := make([]bool, n)
	count := 0
	if err := fs.ReadDirFunc("", func(e DirEntry) error {
		var i int
		if _, err := fmt.Sscanf(e.Name, "root%07d.dmp", &i); err == nil {
			if i < 0 || i >= n || seen[i] {
				return fmt.Errorf("%q listed twice or unexpected", e.Name)
			}
			seen[i] = true
			count++
		}
		return nil
	}); err != nil || count != n {
		t.Fatalf("root: %d entries, %v", count, err)
	}
	if _, err := fs.Stat("no-such-name"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing name: %v", err)
	}
	// An error from the callback stops the walk and comes back as it is.
	stop := errors.New("enough")
	calls := 0
	if err := fs.ReadDirFunc(`Windows\Minidump`, func(DirEntry) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("stop: err %v after %d entries", err, calls)
	}
}

// BenchmarkMinidumps lists and opens every file of a Minidump directory of 1,000 and of
// 10,000 files: ns/op grows linearly (10× the files, about 10× the time; the old lookup
// from the root per entry grew with the square).
func BenchmarkMinidumps(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		vol := bigDirVolume(b, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			im, err := Open(vol, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer im.Close()
			fs, err := im.WindowsVolume()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if got := walkMinidumps(b, fs, nil); got != n {
					b.Fatalf("%d entries", got)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
		})
	}
}
