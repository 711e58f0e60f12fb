package standin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
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

	"github.com/crashkey/crashkey/dump"
)

// The tests build real disks with scripts/guest/standin-disk.sh (hivexregedit, mkntfs,
// ntfscp, sfdisk, qemu-img) and check them with ntfs-3g's ntfscat and the project's readers.

var (
	toolsOnce   sync.Once
	toolsSkip   string // the Debian tool that is missing: tests that need it skip
	toolsErr    string // why building the helpers failed: tests that need them fail
	toolDir     string // holds the built ntfshelper (and crashkey)
	crashkeyBin string // the crashkey binary the script runs
)

// repoRoot is the module root (two levels above this package).
func repoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// needTools skips the test when a Debian tool the script needs is missing from PATH, and
// builds crashkey (unless $CRASHKEY names one) and ntfshelper once per test binary; a build
// failure fails the test.
func needTools(t testing.TB) {
	t.Helper()
	toolsOnce.Do(func() {
		for _, tool := range []string{"hivexregedit", "mkntfs", "ntfscp", "ntfscat", "sfdisk", "qemu-img", "iconv", "gcc", "go"} {
			if _, err := exec.LookPath(tool); err != nil {
				toolsSkip = fmt.Sprintf("%s is not in PATH (run scripts/deps.sh)", tool)
				return
			}
		}
		dir, err := os.MkdirTemp("", "standin-tools")
		if err != nil {
			toolsErr = err.Error()
			return
		}
		toolDir = dir
		root := repoRoot(t)
		crashkeyBin = os.Getenv("CRASHKEY")
		if crashkeyBin == "" {
			crashkeyBin = filepath.Join(dir, "crashkey")
			build := exec.Command("go", "build", "-o", crashkeyBin, "./cmd/crashkey")
			build.Dir = root
			if out, err := build.CombinedOutput(); err != nil {
				toolsErr = fmt.Sprintf("go build ./cmd/crashkey: %v: %s", err, out)
				return
			}
		}
		gcc := exec.Command("gcc", "-O2", "-o", filepath.Join(dir, "ntfshelper"), filepath.Join(root, "disk", "testdata", "ntfshelper.c"), "-lntfs-3g")
		if out, err := gcc.CombinedOutput(); err != nil {
			toolsErr = fmt.Sprintf("building disk/testdata/ntfshelper.c (ntfs-3g-dev missing? run scripts/deps.sh): %v: %s", err, out)
		}
	})
	if toolsSkip != "" {
		t.Skip("stand-in disk tests need the Debian tools: " + toolsSkip)
	}
	if toolsErr != "" {
		t.Fatal(toolsErr)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if toolDir != "" {
		os.RemoveAll(toolDir)
	}
	os.Exit(code)
}

// makeDisk runs scripts/guest/standin-disk.sh into dir/name with args and returns the path.
func makeDisk(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	needTools(t)
	out := filepath.Join(dir, name)
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot(t), "scripts", "guest", "standin-disk.sh"), out}, args...)...)
	cmd.Env = append(os.Environ(), "CRASHKEY="+crashkeyBin, "NTFSHELPER="+filepath.Join(toolDir, "ntfshelper"))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("standin-disk.sh %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out
}

// extractVolume copies the Windows volume of m out of the disk image into its own file (what
// /dev/vdaN is in the guest) and returns its path.
func extractVolume(t testing.TB, m *Machine, diskPath string) string {
	t.Helper()
	src, err := os.Open(diskPath)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(t.TempDir(), "volume.ntfs")
	dst, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, io.NewSectionReader(src, m.Volume.Start, m.Volume.Size)); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}

// ntfscat returns a file of a bare NTFS volume as ntfs-3g's ntfscat reads it: the independent
// oracle.
func ntfscat(t testing.TB, vol, path string) []byte {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command("ntfscat", vol, strings.ReplaceAll(path, `\`, "/"))
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("ntfscat %s %s: %v: %s", vol, path, err, errb.String())
	}
	return out.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func fileSHA(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha(b)
}

// qemuMemory is the memory map QEMU's SeaBIOS gives a 32 MiB pc guest.
var qemuMemory = []MemRange{{0, 0x9fc00}, {0x100000, 0x1fe0000}}

// testOpts are the system facts the tests use in place of the host's.
var testOpts = DumpOptions{Processors: 2, Memory: qemuMemory, UpTime: 42 * time.Second}

// crashTime is a fixed crash time (FILETIME precision is 100 ns).
var crashTime = time.Date(2026, 11, 21, 9, 30, 15, 123456700, time.UTC)

// nowForCheck is the reference time of dump.Check, so "in the future" never depends on the
// clock of the test host.
var nowForCheck = crashTime.Add(time.Minute)

// checkDump opens b as a dump and runs the deep check.
func checkDump(t testing.TB, b []byte, want uint32) (*dump.File, *dump.Report) {
	t.Helper()
	f, err := dump.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatalf("dump.Open: %v", err)
	}
	rep, err := f.Check(t.Context(), dump.CheckOptions{Deep: true, ExpectBugCheck: &want, Now: nowForCheck})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return f, rep
}
