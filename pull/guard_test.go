package pull

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crashkey/crashkey/disk"
)

// copyFixture copies a disk fixture into dir under name.
func copyFixture(t *testing.T, fixture, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, fixture))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestForceSparesTheBackingChain: --force with --out pointing at the backing file's
// directory, the backing file named like the output (MEMORY.DMP), or reached through a
// hard link under another path: it must refuse and leave the backing file as it was.
func TestForceSparesTheBackingChain(t *testing.T) {
	if _, err := exec.LookPath("qemu-img"); err != nil {
		t.Fatal("qemu-img is missing (run scripts/deps.sh)")
	}
	dir := t.TempDir()
	base := copyFixture(t, "base.qcow2", dir, "MEMORY.DMP")
	top := filepath.Join(dir, "overlay.qcow2")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", "MEMORY.DMP", "-F", "qcow2", top).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	orig, _ := os.ReadFile(base)
	im, err := disk.Open(top, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if len(im.Chain()) != 2 {
		t.Fatalf("chain %+v", im.Chain())
	}
	_, err = Pull(context.Background(), im, Options{OutDir: dir, Force: true})
	if !errors.Is(err, ErrProtected) || !strings.Contains(err.Error(), "backing file") {
		t.Fatalf("same path: err = %v, want ErrProtected naming the backing file", err)
	}
	other := filepath.Join(t.TempDir(), "elsewhere")
	os.Mkdir(other, 0o755)
	if err := os.Link(base, filepath.Join(other, "MEMORY.DMP")); err != nil {
		t.Fatal(err)
	}
	_, err = Pull(context.Background(), im, Options{OutDir: other, Force: true})
	if !errors.Is(err, ErrProtected) {
		t.Fatalf("hard link: err = %v, want ErrProtected", err)
	}
	if got, _ := os.ReadFile(base); !bytes.Equal(got, orig) {
		t.Fatal("the backing file changed")
	}
}

// TestForceSparesFilesQEMUHolds: a file a running QEMU holds (here qemu-io, which takes the
// same OFD locks) is never replaced, even with --force.
func TestForceSparesFilesQEMUHolds(t *testing.T) {
	if _, err := exec.LookPath("qemu-io"); err != nil {
		t.Fatal("qemu-io is missing (run scripts/deps.sh)")
	}
	dir := t.TempDir()
	held := copyFixture(t, "tiny.qcow2", dir, "MEMORY.DMP") // another guest's disk, named like the dump
	cmd := exec.Command("qemu-io", "-r", "-f", "qcow2", "-c", "sleep 60000", held)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	st, _ := os.Stat(held)
	ino := fmt.Sprint(st.Sys().(*syscall.Stat_t).Ino)
	for i := 0; ; i++ {
		if locks, _ := os.ReadFile("/proc/locks"); strings.Contains(string(locks), ":"+ino+" ") {
			break
		}
		if i > 300 {
			t.Fatal("qemu-io took no lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	orig, _ := os.ReadFile(held)
	im := openImage(t, "gpt.qcow2", disk.Options{})
	_, err := Pull(context.Background(), im, Options{OutDir: dir, Force: true})
	if !errors.Is(err, ErrProtected) || !strings.Contains(err.Error(), "running QEMU") {
		t.Fatalf("err = %v, want ErrProtected naming the running QEMU", err)
	}
	if got, _ := os.ReadFile(held); !bytes.Equal(got, orig) {
		t.Fatal("the held file changed")
	}
}
