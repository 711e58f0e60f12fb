package registry

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/hid"
)

// The disk images of package disk's fixtures (disk/testdata/mkfixtures.sh) carry the
// SYSTEM-crashcontrol hive: gpt.qcow2 on GPT partition 3, mbr.qcow2 on logical partition 5
// with the path in odd case (WINDOWS\system32\CONFIG\system), base.qcow2 none.
const diskFixtures = "../disk/testdata/"

// copyFixture copies a disk fixture to a temporary directory, so that a QEMU that happens to
// hold the shared fixture (another test, a developer) cannot make this test see a locked image.
func copyFixture(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(diskFixtures + name)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPreflightDiskFixtures(t *testing.T) {
	h := mustHotkey(t, "rctrl+scroll")
	for _, tc := range []struct {
		image  string
		volume int
	}{
		{"gpt.qcow2", 3},
		{"mbr.qcow2", 5},
	} {
		t.Run(tc.image, func(t *testing.T) {
			image := copyFixture(t, tc.image)
			r, err := Preflight(context.Background(), image, PreflightOptions{Hotkey: h})
			if err != nil {
				t.Fatal(err)
			}
			if r.Volume != tc.volume || r.Hive != SystemHivePath || r.Image != image || len(r.Warnings) != 0 {
				t.Errorf("read %s volume %d hive %s", r.Image, r.Volume, r.Hive)
			}
			if !r.OK || !r.Hotkey.PS2.Fires || !r.Hotkey.USB.Fires || r.Dump.Type != DumpActive {
				t.Errorf("report: OK %v, hotkey %+v, dump %s, problems %q", r.OK, r.Hotkey, r.Dump.Type, problemIDs(r))
			}
			want, _ := ReadHiveFile("testdata/SYSTEM-crashcontrol")
			if got := r.Settings.Driver(hid.Kbdhid); !eqU32(got.Dump2Key, want.Driver(hid.Kbdhid).Dump2Key) {
				t.Errorf("kbdhid Dump2Key from the image = %s", showU32(got.Dump2Key))
			}
		})
	}
}

func TestPreflightErrors(t *testing.T) {
	notImage := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notImage, []byte(strings.Repeat("not a disk\n", 100)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path string
		opts       PreflightOptions
		want       error
		bad        bool
	}{
		{"volume without SYSTEM", copyFixture(t, "base.qcow2"), PreflightOptions{}, ErrNoSystemHive, true},
		{"no such partition", copyFixture(t, "gpt.qcow2"), PreflightOptions{Partition: 9}, disk.ErrNoVolume, true},
		{"not a disk image", notImage, PreflightOptions{}, disk.ErrPartitionTable, true},
		{"minimal hive file", "testdata/hivex-minimal", PreflightOptions{}, ErrNotSystemHive, true},
		{"missing file", filepath.Join(t.TempDir(), "nope.qcow2"), PreflightOptions{}, os.ErrNotExist, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Preflight(context.Background(), tc.path, tc.opts)
			if !errors.Is(err, tc.want) || r != nil {
				t.Fatalf("Preflight = %v, %v; want %v", r, err, tc.want)
			}
			if IsBadInput(err) != tc.bad {
				t.Errorf("IsBadInput(%v) = %v", err, !tc.bad)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Preflight(ctx, "testdata/SYSTEM-crashcontrol", PreflightOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

var (
	helperOnce sync.Once
	helperDir  string
	helperPath string
	helperErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if helperDir != "" {
		os.RemoveAll(helperDir)
	}
	os.Exit(code)
}

// ntfsHelper builds package disk's small libntfs-3g tool (mkdir in an NTFS image without FUSE).
func ntfsHelper(t *testing.T) string {
	t.Helper()
	helperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crashkey-ntfshelper")
		if err != nil {
			helperErr = err
			return
		}
		helperDir, helperPath = dir, filepath.Join(dir, "ntfshelper")
		out, err := exec.Command("gcc", "-O1", "-o", helperPath, "../disk/testdata/ntfshelper.c", "-lntfs-3g").CombinedOutput()
		if err != nil {
			helperErr = errors.New("gcc ntfshelper.c: " + err.Error() + "\n" + string(out) + "(run scripts/deps.sh: it installs gcc and ntfs-3g-dev)")
		}
	})
	if helperErr != nil {
		t.Fatal(helperErr)
	}
	return helperPath
}

// ntfsImage builds a bare NTFS volume (the way disk's fixtures are built) holding the given
// files under Windows\System32\config.
func ntfsImage(t *testing.T, files map[string]string) string {
	t.Helper()
	helper := ntfsHelper(t)
	for _, tool := range []string{"mkntfs", "ntfscp"} {
		needTool(t, tool)
	}
	vol := filepath.Join(t.TempDir(), "win.img")
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %q: %v\n%s", name, args, err, out)
		}
	}
	if err := os.WriteFile(vol, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(vol, 4<<20); err != nil {
		t.Fatal(err)
	}
	run("mkntfs", "-F", "-Q", "-q", "-c", "4096", "-s", "512", "-L", "Windows", vol)
	for _, d := range []string{"Windows", "Windows/System32", "Windows/System32/config"} {
		run(helper, "mkdir", vol, d)
	}
	for name, src := range files {
		run("ntfscp", "-q", vol, src, "Windows/System32/config/"+name)
	}
	return vol
}

// TestPreflightDirtyImage reads a dirty hive out of an NTFS image that also holds its
// transaction log, as a guest that was killed leaves it.
func TestPreflightDirtyImage(t *testing.T) {
	custom := mustHotkey(t, "lctrl+lalt+p")
	hive := buildHive(t, baseReg("WinNT"), armReg(t, ArmOptions{Hotkey: custom}))
	setSequence2(t, hive, 41)
	log1 := filepath.Join(t.TempDir(), "SYSTEM.LOG1")
	if err := os.WriteFile(log1, make([]byte, 8192), 0o644); err != nil {
		t.Fatal(err)
	}
	img := ntfsImage(t, map[string]string{"SYSTEM": hive, "SYSTEM.LOG1": log1})
	r, err := Preflight(context.Background(), img, PreflightOptions{Hotkey: custom})
	if err != nil {
		t.Fatal(err)
	}
	if got := problemIDs(r); strings.Join(got, ",") != "warning:hive-dirty,warning:version-unknown" {
		t.Errorf("problems = %q, want the dirty hive and the unknown version", got)
	}
	if msg := r.Problems[0].Message; !strings.Contains(msg, `transaction log SYSTEM.LOG1: no "regf" base block at its start`) {
		t.Errorf("the dirty-hive warning does not say why the log was not replayed: %s", msg)
	}
	if len(r.Logs) != 1 || r.Logs[0] != (LogFile{Name: "SYSTEM.LOG1", Size: 8192}) {
		t.Errorf("logs = %+v", r.Logs)
	}
	if !r.Hotkey.PS2.Fires || !r.Hotkey.USB.Fires || r.Volume != 1 {
		t.Errorf("hotkey %+v, volume %d", r.Hotkey, r.Volume)
	}
	// The same hive as a plain file, with its log beside it.
	dir := t.TempDir()
	for src, dst := range map[string]string{hive: "SYSTEM", log1: "SYSTEM.LOG1"} {
		b, _ := os.ReadFile(src)
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err = Preflight(context.Background(), filepath.Join(dir, "SYSTEM"), PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Logs) != 1 || !strings.Contains(r.Problems[0].Message, "SYSTEM.LOG1 (8192 bytes)") {
		t.Errorf("hive file: logs %+v, problems %+v", r.Logs, r.Problems)
	}
}

// BenchmarkPreflightImage reads the SYSTEM hive out of a compressed qcow2 GPT image and
// checks it: the cost of a preflight before every crash attempt.
func BenchmarkPreflightImage(b *testing.B) {
	h := hid.CrashOnCtrlScroll()
	image := copyFixture(b, "gpt.qcow2")
	for b.Loop() {
		r, err := Preflight(context.Background(), image, PreflightOptions{Hotkey: &h})
		if err != nil || !r.OK {
			b.Fatal(r, err)
		}
	}
}

// TestPreflightCorruptHiveInImage: a damaged hive inside an image is an error that names the
// image, the volume and the hive, and says what to do.
func TestPreflightCorruptHiveInImage(t *testing.T) {
	b, err := os.ReadFile("testdata/SYSTEM-crashcontrol")
	if err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(t.TempDir(), "SYSTEM")
	if err := os.WriteFile(bad, b[:4096+512], 0o644); err != nil {
		t.Fatal(err)
	}
	img := ntfsImage(t, map[string]string{"SYSTEM": bad})
	_, err = Preflight(context.Background(), img, PreflightOptions{})
	if !errors.Is(err, ErrCorruptHive) || IsBadInput(err) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{"preflight " + img + ", volume 1, " + SystemHivePath, "boot the guest once"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
