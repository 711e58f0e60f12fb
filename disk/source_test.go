package disk

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
)

// hostMarker fills the "host file" that hostile overlays name as their backing file: no
// byte of it may ever come out of an image that crashkey refused to follow.
var hostMarker = []byte("HOST-SECRET-MARKER-0123456789ab\n") // 32 bytes

func writeMarker(tb testing.TB, path string, size int) {
	tb.Helper()
	b := bytes.Repeat(hostMarker, size/len(hostMarker))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// overlayOver makes a qcow2 overlay at path whose backing file is backing (as written in
// the header, relative or absolute) of the given format, with qemu-img and no check that
// the backing file exists or is an image (-u).
func overlayOver(tb testing.TB, path, backing, format string, size string) {
	tb.Helper()
	needTool(tb, "qemu-img")
	run(tb, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", format, path, size)
}

// TestBackingPolicy builds overlays whose backing files are host files and checks what
// the default policy, --allow-backing=DIR and --allow-backing follow.
func TestBackingPolicy(t *testing.T) {
	root := t.TempDir()
	images := filepath.Join(root, "images")
	host := filepath.Join(root, "host")
	for _, d := range []string{images, host, filepath.Join(images, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(host, "secret") // a host file outside the image's directory
	writeMarker(t, secret, 1<<20)
	// A raw disk in the image directory: an MBR boot signature over a whole number of sectors.
	goodRaw := filepath.Join(images, "sub", "base.raw")
	disk := make([]byte, 1<<20)
	copy(disk, mbrSeed())
	if err := os.WriteFile(goodRaw, disk, 0o644); err != nil {
		t.Fatal(err)
	}
	textInDir := filepath.Join(images, "notes.txt") // a non-image file next to the image
	writeMarker(t, textInDir, 1<<20)
	if err := os.Symlink(secret, filepath.Join(images, "link.raw")); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(images, "fifo.raw")
	run(t, "mkfifo", fifo)

	tests := []struct {
		name, backing, format string
		policy                BackingPolicy
		refused               string // "" when it must open
	}{
		{"host file by absolute path", secret, "raw", BackingPolicy{}, "lies outside"},
		{"host file by ../ path", "../host/secret", "raw", BackingPolicy{}, "lies outside"},
		{"symlink to a host file", "link.raw", "raw", BackingPolicy{}, "lies outside"},
		{"text file in the image directory", "notes.txt", "raw", BackingPolicy{}, "does not look like a disk image"},
		{"/etc/passwd", "/etc/passwd", "raw", BackingPolicy{Any: true}, ""},
		{"/proc path", "/proc/self/environ", "raw", BackingPolicy{Any: true}, "never followed"},
		{"/sys path", "/sys/kernel/uevent_seqnum", "raw", BackingPolicy{Any: true}, "never followed"},
		{"device", "/dev/zero", "raw", BackingPolicy{Any: true}, "never followed"},
		{"FIFO", "fifo.raw", "raw", BackingPolicy{Any: true}, "FIFO"},
		{"raw disk below the image directory", "sub/base.raw", "raw", BackingPolicy{}, ""},
		{"host file in an allowed directory", secret, "raw", BackingPolicy{Dirs: []string{host}}, ""},
		{"host file with --allow-backing", secret, "raw", BackingPolicy{Any: true}, ""},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			top := filepath.Join(images, fmt.Sprintf("top%d.qcow2", i))
			overlayOver(t, top, tt.backing, tt.format, "1M")
			start := time.Now()
			im, err := Open(top, Options{AllowBacking: tt.policy})
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Open took %v", d)
			}
			if tt.refused != "" {
				if err == nil {
					im.Close()
					t.Fatal("opened, want refused")
				}
				if !errors.Is(err, ErrBackingRefused) || !strings.Contains(err.Error(), tt.refused) {
					t.Fatalf("err = %v, want ErrBackingRefused with %q", err, tt.refused)
				}
				if strings.Contains(err.Error(), string(hostMarker[:11])) {
					t.Errorf("the error carries host bytes: %v", err)
				}
				if tt.policy.Any || len(tt.policy.Dirs) > 0 {
					return
				}
				if !strings.Contains(err.Error(), "--allow-backing") || strings.Count(err.Error(), "\n") > 0 {
					t.Errorf("want one line naming --allow-backing: %v", err)
				}
				return
			}
			if tt.name == "/etc/passwd" {
				// Any regular file is followed with --allow-backing; a text file is no disk.
				if err == nil || errors.Is(err, ErrBackingRefused) {
					t.Fatalf("err = %v, want a partition-table error after following it", err)
				}
				return
			}
			if err != nil && !errors.Is(err, ErrPartitionTable) {
				t.Fatalf("err = %v", err)
			}
			if err == nil {
				defer im.Close()
			}
			// Followed: the chain names both files, and the host bytes do show through the
			// overlay (so the refusals above really kept them out).
			ch := chainOf(t, top, tt.policy)
			if len(ch) != 2 || ch[0].Format != FormatQcow2 || ch[1].Format != FormatRaw || !ch[1].Local {
				t.Fatalf("chain = %+v", ch)
			}
			if strings.Contains(tt.name, "host file") && !bytes.Contains(readVirtual(t, top, tt.policy), hostMarker) {
				t.Error("host bytes do not show through the overlay that follows them")
			}
		})
	}
}

// chainOf opens top without reading partitions (a host file has none) and returns its chain.
func chainOf(tb testing.TB, top string, policy BackingPolicy) []ChainFile {
	tb.Helper()
	src, err := OpenFile(top)
	if err != nil {
		tb.Fatal(err)
	}
	im := &Image{path: top, ctx: t0ctx, fss: map[int]*FS{}}
	c := &chain{im: im, res: LocalResolver(policy), seen: map[string]bool{}}
	if err := c.add(src, ""); err != nil {
		tb.Fatal(err)
	}
	if im.img, err = c.open(src); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { im.Close() })
	return im.Chain()
}

func readVirtual(tb testing.TB, top string, policy BackingPolicy) []byte {
	tb.Helper()
	src, err := OpenFile(top)
	if err != nil {
		tb.Fatal(err)
	}
	im := &Image{path: top, ctx: t0ctx, fss: map[int]*FS{}}
	c := &chain{im: im, res: LocalResolver(policy), seen: map[string]bool{}}
	if err := c.add(src, ""); err != nil {
		tb.Fatal(err)
	}
	if im.img, err = c.open(src); err != nil {
		tb.Fatal(err)
	}
	defer im.Close()
	im.size = im.img.Size()
	b := make([]byte, 4096)
	if _, err := im.ReadAt(b, 0); err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestBackingOwner: a backing file in the image's directory owned by another user is not
// followed by default.
func TestBackingOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	dir := t.TempDir()
	base := filepath.Join(dir, "base.qcow2")
	run(t, "qemu-img", "create", "-q", "-f", "qcow2", base, "1M")
	if err := os.Chown(base, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	top := filepath.Join(dir, "top.qcow2")
	overlayOver(t, top, "base.qcow2", "qcow2", "1M")
	_, err := Open(top, Options{})
	if !errors.Is(err, ErrBackingRefused) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("err = %v", err)
	}
	if _, err := Open(top, Options{AllowBacking: BackingPolicy{Dirs: []string{dir}}}); !errors.Is(err, ErrPartitionTable) {
		t.Fatalf("allowed: err = %v, want the empty disk's partition-table error", err)
	}
}

// TestChain checks the chain of the overlay fixture: both files, with their identities.
func TestChain(t *testing.T) {
	im := openFixture(t, "overlay.qcow2", Options{})
	ch := im.Chain()
	if len(ch) != 2 {
		t.Fatalf("chain = %+v", ch)
	}
	for i, name := range []string{"overlay.qcow2", "base.qcow2"} {
		st, err := os.Stat(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		if !ch[i].Same(st) || filepath.Base(ch[i].Name) != name || ch[i].Format != FormatQcow2 || ch[i].InUse {
			t.Errorf("chain[%d] = %+v, want %s", i, ch[i], name)
		}
		if i == 0 && ch[i].Same(mustStat(t, "testdata/gpt.qcow2")) {
			t.Error("Same matches another file")
		}
	}
}

func mustStat(tb testing.TB, p string) os.FileInfo {
	st, err := os.Stat(p)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// TestChainInUse holds the backing file of an overlay in a real qemu-io process (which takes
// QEMU's OFD locks): read-only it is noted in the chain, read-write it is refused without
// ForceShare.
func TestChainInUse(t *testing.T) {
	needTool(t, "qemu-io")
	dir := t.TempDir()
	for _, n := range []string{"base.qcow2", "overlay.qcow2"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	base, top := filepath.Join(dir, "base.qcow2"), filepath.Join(dir, "overlay.qcow2")
	hold := func(readOnly bool) func() {
		args := []string{"-f", "qcow2", "-c", "sleep 60000", base}
		if readOnly {
			args = append([]string{"-r"}, args...)
		}
		cmd := exec.Command("qemu-io", args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ino := fmt.Sprint(mustStat(t, base).Sys().(*syscall.Stat_t).Ino)
		for i := 0; ; i++ {
			locks, _ := os.ReadFile("/proc/locks")
			if strings.Contains(string(locks), ":"+ino+" ") {
				break
			}
			if i > 300 {
				t.Fatal("qemu-io took no lock")
			}
			time.Sleep(10 * time.Millisecond)
		}
		return func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	}

	stop := hold(true)
	im, err := Open(top, Options{})
	if err != nil {
		stop()
		t.Fatalf("backing file held read-only: %v", err)
	}
	ch := im.Chain()
	im.Close()
	stop()
	if ch[0].InUse || !ch[1].InUse || ch[1].Written {
		t.Errorf("read-only holder: chain = %+v", ch)
	}

	stop = hold(false)
	defer stop()
	_, err = Open(top, Options{})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "base.qcow2") || !strings.Contains(err.Error(), "--force-share") {
		t.Fatalf("backing file held read-write: err = %v", err)
	}
	im, err = Open(top, Options{ForceShare: true})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if ch := im.Chain(); !ch[1].Written || len(im.Warnings()) != 1 {
		t.Errorf("ForceShare: chain = %+v, warnings %q", ch, im.Warnings())
	}
}

// TestFIFOImage: a FIFO given as the image fails at once with a clear error.
func TestFIFOImage(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "image.qcow2")
	run(t, "mkfifo", fifo)
	done := make(chan error, 1)
	go func() { _, err := Open(fifo, Options{}); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "FIFO") {
			t.Fatalf("err = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open blocked on a FIFO")
	}
	for _, p := range []string{"/dev/null", t.TempDir()} {
		if _, err := Open(p, Options{}); err == nil || !strings.Contains(err.Error(), "not a disk image") {
			t.Errorf("%s: err = %v", p, err)
		}
	}
}

// TestOpenSourceRemote opens an image through a Source that is no local file, with a
// Resolver that serves its backing file from memory (the way a remote volume is read).
func TestOpenSourceRemote(t *testing.T) {
	files := map[string][]byte{}
	for _, n := range []string{"base.qcow2", "overlay.qcow2"} {
		b, err := os.ReadFile(filepath.Join("testdata", n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = b
	}
	src := func(n string) Source {
		return readerSource{bytes.NewReader(files[n]), int64(len(files[n])), "pool/" + n}
	}
	// Without a resolver, the backing file is refused.
	if _, err := OpenSource(src("overlay.qcow2"), Options{}); !errors.Is(err, ErrBackingRefused) {
		t.Fatalf("no resolver: err = %v", err)
	}
	var asked []string
	res := resolverFunc(func(of Source, name string) (Source, error) {
		asked = append(asked, of.Name()+" -> "+name)
		return src(name), nil
	})
	im, err := OpenSource(src("overlay.qcow2"), Options{Resolver: res})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if len(asked) != 1 || asked[0] != "pool/overlay.qcow2 -> base.qcow2" {
		t.Errorf("resolver asked %q", asked)
	}
	ch := im.Chain()
	if len(ch) != 2 || ch[1].Name != "pool/base.qcow2" || ch[1].Local {
		t.Errorf("chain = %+v", ch)
	}
	local := openFixture(t, "overlay.qcow2", Options{})
	a, b := make([]byte, 1<<20), make([]byte, 1<<20)
	for _, off := range []int64{0, 1 << 20, im.Size() - 1<<20} {
		if _, err := im.ReadAt(a, off); err != nil {
			t.Fatal(err)
		}
		if _, err := local.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("remote and local reads differ at %d", off)
		}
	}
}

type resolverFunc func(of Source, name string) (Source, error)

func (f resolverFunc) Backing(of Source, name string) (Source, error) { return f(of, name) }

var t0ctx = context.Background()
