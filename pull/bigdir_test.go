package pull

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/disk"
)

// bigMinidumpDir builds a bare NTFS volume with n empty files in \Windows\Minidump, with
// mkntfs and the libntfs-3g helper of disk/testdata.
func bigMinidumpDir(tb testing.TB, n int) string {
	tb.Helper()
	dir := tb.TempDir()
	helper := filepath.Join(dir, "ntfshelper")
	vol := filepath.Join(dir, "bigdir.img")
	steps := [][]string{
		{"gcc", "-O2", "-o", helper, filepath.Join(testdata, "ntfshelper.c"), "-lntfs-3g"},
		{"truncate", "-s", fmt.Sprint(64<<20 + n*8<<10), vol},
		{"mkntfs", "-F", "-Q", "-q", "-c", "4096", "-s", "512", vol},
		{helper, "mkdir", vol, "Windows"},
		{helper, "mkdir", vol, "Windows/Minidump"},
		{helper, "mkfiles", vol, "/Windows/Minidump", fmt.Sprint(n), "Mini"},
	}
	for _, s := range steps {
		if out, err := exec.Command(s[0], s[1:]...).CombinedOutput(); err != nil {
			tb.Fatalf("%s: %v\n%s (run scripts/deps.sh)", strings.Join(s, " "), err, out)
		}
	}
	return vol
}

// TestTenThousandMinidumps: 10,000 files in the Minidump folder are all listed (streamed,
// memory bounded), and the "no dump" error stays one short line.
func TestTenThousandMinidumps(t *testing.T) {
	const n = 10000
	im, err := disk.Open(bigMinidumpDir(t, n), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cands, err := List(im, Sources{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	mini := 0
	for _, c := range cands {
		if c.Kind == KindMinidump && !c.Valid {
			mini++
		}
	}
	if mini != n {
		t.Fatalf("%d of %d empty minidumps listed", mini, n)
	}
	if grew := int64(after.HeapInuse) - int64(before.HeapInuse); grew > 64<<20 {
		t.Errorf("listing %d minidumps grew the heap by %d MiB", n, grew>>20)
	}
	out := t.TempDir()
	_, err = PullMinidumps(context.Background(), im, Options{OutDir: out})
	if !errors.Is(err, ErrNoDump) || len(err.Error()) > 1000 || !strings.Contains(err.Error(), fmt.Sprintf("and %d more", n-3)) {
		t.Fatalf("err (%d bytes) = %.400s", len(err.Error()), err)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Fatal("files written")
	}
}
