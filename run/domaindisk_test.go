package run

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/digitalocean/go-libvirt"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/pull"
	"github.com/crashkey/crashkey/vm"
)

// fileStream serves a local image as a libvirt volume download would, and can break the
// stream after a number of bytes.
type fileStream struct {
	f *os.File

	mu     sync.Mutex // the volume reads ahead in the background
	cutAt  int64      // total bytes after which the stream breaks (0: never)
	served int64
}

func (s *fileStream) cut(after int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cutAt = s.served + after
}

func (s *fileStream) total() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.served
}

func (s *fileStream) fetch(w io.Writer, off, n int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := make([]byte, 64<<10)
	for n > 0 {
		k := min(int64(len(buf)), n)
		if s.cutAt > 0 && s.served+k > s.cutAt {
			return libvirt.ErrInterrupted
		}
		if _, err := s.f.ReadAt(buf[:k], off); err != nil {
			return err
		}
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		s.served += k
		off, n = off+k, n-k
	}
	return nil
}

func remoteImage(t *testing.T, name string, cacheBlocks int) (*disk.Image, *fileStream) {
	t.Helper()
	f, err := os.Open("../disk/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, _ := f.Stat()
	s := &fileStream{f: f}
	v := vm.NewVolume("/pool/"+name, fi.Size(), vm.VolumeOptions{BlockSize: 64 << 10, CacheBlocks: cacheBlocks}, s.fetch)
	img, err := disk.OpenSource(v, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img, s
}

// TestPullThroughVolume pulls MEMORY.DMP of a qcow2 image read through a volume download,
// byte-identical to the manifest of the fixture (made by ntfs-3g, disk/testdata/mkfixtures.sh).
func TestPullThroughVolume(t *testing.T) {
	img, s := remoteImage(t, "gpt.qcow2", 12) // reads ahead
	out := t.TempDir()
	res, err := pull.Pull(t.Context(), img, pull.Options{OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	if res.SHA256 != "3dd2f60273a92ffa53abfd25c25c2a49a24cfe5095d710a5f4c418ced408beb0" || res.Size != 253952 {
		t.Errorf("pulled %d bytes, sha256 %s", res.Size, res.SHA256)
	}
	b, _ := os.ReadFile(res.Output)
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != res.SHA256 {
		t.Error("the file written is not the one reported")
	}
	fi, _ := s.f.Stat()
	if got := s.total(); got > fi.Size() {
		t.Errorf("%d bytes downloaded from a %d-byte image", got, fi.Size())
	}
}

// TestPullThroughCutStream: a stream that breaks midway fails the pull, and nothing is left
// in the output directory.
func TestPullThroughCutStream(t *testing.T) {
	img, s := remoteImage(t, "gpt.qcow2", 3) // no read-ahead: nothing of the dump is fetched yet
	s.cut(100 << 10)                         // opening read the metadata; the dump's clusters break
	out := t.TempDir()
	_, err := pull.Pull(t.Context(), img, pull.Options{OutDir: out})
	if err == nil || !strings.Contains(err.Error(), libvirt.ErrInterrupted.Error()) {
		t.Fatalf("pull over a cut stream: %v; want the broken stream's error", err)
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 0 {
		t.Errorf("the failed pull left %v in the output directory", ents)
	}
}

// TestOpenDiskFollowsContext: the image run opens (--disk) ends its reads and directory
// walks once run's context is cancelled (Ctrl-C while it searches the disk).
func TestOpenDiskFollowsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j := &job{cfg: Config{Disk: "../disk/testdata/gpt.qcow2"}}
	img, err := j.openDisk(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	fs, err := img.WindowsVolume()
	if err != nil {
		t.Fatal(err)
	}
	list := func() error { return fs.ReadDirFunc(`Windows`, func(disk.DirEntry) error { return nil }) }
	if err := list(); err != nil {
		t.Fatalf("before cancel: %v", err)
	}
	cancel()
	if err := list(); !errors.Is(err, context.Canceled) {
		t.Errorf("walk after cancel: err = %v, want context.Canceled", err)
	}
	if _, err := img.ReadAt(make([]byte, 512), 0); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel: err = %v, want context.Canceled", err)
	}
}
