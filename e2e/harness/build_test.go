package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBuildPrebuilt packs an initramfs from a prebuilt /init and a kernel directory in the
// kernel script's layout (no download, no compiler) and reads it back with zcat | cpio.
func TestBuildPrebuilt(t *testing.T) {
	kdir := t.TempDir()
	os.MkdirAll(filepath.Join(kdir, "modules"), 0o755)
	os.WriteFile(filepath.Join(kdir, "vmlinuz"), []byte("kernel"), 0o644)
	os.WriteFile(filepath.Join(kdir, "version"), []byte("6.1.0-99-amd64\n"), 0o644)
	os.WriteFile(filepath.Join(kdir, "modules.order"), []byte("a.ko\n"), 0o644)
	os.WriteFile(filepath.Join(kdir, "modules", "a.ko"), []byte("module"), 0o644)
	initPath := filepath.Join(t.TempDir(), "init")
	os.WriteFile(initPath, []byte("static init"), 0o755)
	cache := t.TempDir()
	stale := filepath.Join(cache, "initramfs-0000000000000000.cpio.gz")
	os.WriteFile(stale, []byte("old"), 0o644)
	long := time.Now().Add(-30 * 24 * time.Hour)
	os.Chtimes(stale, long, long)

	opts := BuildOptions{CacheDir: cache, KernelDir: kdir, Init: initPath}
	art, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if art.Kernel != filepath.Join(kdir, "vmlinuz") || art.KernelVersion != "6.1.0-99-amd64" {
		t.Errorf("artifacts = %+v", art)
	}
	if filepath.Dir(art.Initramfs) != cache || !strings.HasPrefix(filepath.Base(art.Initramfs), "initramfs-") {
		t.Errorf("initramfs %s not in the cache", art.Initramfs)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale initramfs not pruned: %v", err)
	}
	out, err := exec.Command("sh", "-c", "zcat < '"+art.Initramfs+"' | cpio -t --quiet").Output()
	if err != nil {
		t.Fatalf("zcat | cpio -t: %v", err)
	}
	if !strings.Contains(string(out), "\ninit\n") || !strings.Contains(string(out), "lib/modules/crashkey/a.ko\n") ||
		!strings.Contains(string(out), "\nbin/ntfscp\n") || !strings.Contains(string(out), "\nlib64/ld-linux-x86-64.so.2\n") {
		t.Errorf("archive lists:\n%s", out)
	}
	again, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Initramfs != art.Initramfs {
		t.Errorf("same inputs, different archives: %s, %s", art.Initramfs, again.Initramfs)
	}
	os.WriteFile(initPath, []byte("changed init"), 0o755)
	changed, err := Build(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if changed.Initramfs == art.Initramfs {
		t.Error("a changed /init kept the old archive name")
	}

	noNtfscp := opts
	noNtfscp.Ntfscp = filepath.Join(t.TempDir(), "ntfscp")
	if _, err := Build(context.Background(), noNtfscp); err == nil || !strings.Contains(err.Error(), "ntfscp") {
		t.Errorf("missing ntfscp: err = %v", err)
	}

	opts.KernelDir = t.TempDir()
	if _, err := Build(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "kernel.sh") {
		t.Errorf("empty kernel dir: err = %v", err)
	}
}
