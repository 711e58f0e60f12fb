package vm

import (
	"bytes"
	"errors"
	"io"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
)

// fakeStream serves a byte slice as virStorageVolDownload would, in chunks, and records each
// download.
type fakeStream struct {
	data  []byte
	chunk int
	calls [][2]int64
	// cut, when > 0, breaks the stream after that many bytes of a download.
	cut int64
	// short, when > 0, ends each download that many bytes early without an error.
	short int64
	// extra sends that many bytes more than asked for.
	extra int64
	// endEarly, when > 0, ends the next download after that many bytes, without an error.
	endEarly int64
}

func (f *fakeStream) fetch(w io.Writer, off, n int64) error {
	f.calls = append(f.calls, [2]int64{off, n})
	end := min(off+n-f.short+f.extra, int64(len(f.data)))
	if f.endEarly > 0 {
		end, f.endEarly = min(end, off+f.endEarly), 0
	}
	sent := int64(0)
	for p := off; p < end; p += int64(f.chunk) {
		q := min(p+int64(f.chunk), end)
		if f.cut > 0 && sent+(q-p) > f.cut {
			return libvirt.ErrInterrupted
		}
		if _, err := w.Write(f.data[p:q]); err != nil {
			return err
		}
		sent += q - p
	}
	return nil
}

func testData(n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(1)).Read(b)
	return b
}

func TestVolumeReadAt(t *testing.T) {
	data := testData(10*4096 + 123)
	f := &fakeStream{data: data, chunk: 1000}
	v := NewVolume("/pool/win.qcow2", int64(len(data)), VolumeOptions{BlockSize: 4096, CacheBlocks: 6}, f.fetch)
	r := rand.New(rand.NewSource(2))
	for i := 0; i < 500; i++ {
		off := r.Int63n(int64(len(data)))
		p := make([]byte, r.Intn(9000)+1)
		n, err := v.ReadAt(p, off)
		want := min(len(p), len(data)-int(off))
		if n != want || (n < len(p) && err != io.EOF) || (n == len(p) && err != nil) {
			t.Fatalf("ReadAt(%d bytes at %d) = %d, %v; want %d", len(p), off, n, err, want)
		}
		if !bytes.Equal(p[:n], data[off:off+int64(n)]) {
			t.Fatalf("ReadAt at %d: wrong bytes", off)
		}
		if c := v.cached(); c > 6 {
			t.Fatalf("%d blocks cached, bound 6", c)
		}
	}
	if n, err := v.ReadAt(make([]byte, 1), int64(len(data))); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, EOF", n, err)
	}
}

// TestVolumeSequential: a sequential read fetches every byte once, in downloads that grow
// up to a third of the cache, and the cache stays within its bound.
func TestVolumeSequential(t *testing.T) {
	const bs = 4096
	data := testData(100 * bs)
	f := &fakeStream{data: data, chunk: 777}
	v := NewVolume("v", int64(len(data)), VolumeOptions{BlockSize: bs, CacheBlocks: 12}, f.fetch)
	var got bytes.Buffer
	if _, err := io.Copy(&got, io.NewSectionReader(v, 0, int64(len(data)))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("sequential read: wrong bytes")
	}
	if v.Fetched() != int64(len(data)) {
		t.Errorf("fetched %d bytes for a %d-byte volume read once", v.Fetched(), len(data))
	}
	for _, c := range f.calls {
		if c[1] > 4*bs {
			t.Errorf("download of %d bytes: more than a third of the 12-block cache", c[1])
		}
	}
	if len(f.calls) > 100/4+3 {
		t.Errorf("%d downloads for 100 sequential blocks: runs were not batched", len(f.calls))
	}
	if c := v.cached(); c > 12 {
		t.Errorf("%d blocks cached, bound 12", c)
	}
}

func TestVolumeShortRead(t *testing.T) {
	data := testData(8 * 4096)
	f := &fakeStream{data: data, chunk: 4096, short: 10}
	v := NewVolume("v", int64(len(data)), VolumeOptions{BlockSize: 4096}, f.fetch)
	n, err := v.ReadAt(make([]byte, 100), 4096*3)
	if err == nil || !strings.Contains(err.Error(), "short download") || n != 0 {
		t.Fatalf("ReadAt over a short stream = %d, %v; want 0 and a short-download error", n, err)
	}
	if v.cached() != 0 {
		t.Error("a short download was cached")
	}
}

// TestVolumeResume: a stream that ends early without an error is resumed where it stopped.
func TestVolumeResume(t *testing.T) {
	data := testData(8 * 4096)
	f := &fakeStream{data: data, chunk: 1000, endEarly: 2500}
	v := NewVolume("v", int64(len(data)), VolumeOptions{BlockSize: 4096}, f.fetch)
	p := make([]byte, 4096)
	if n, err := v.ReadAt(p, 4096); n != 4096 || err != nil || !bytes.Equal(p, data[4096:8192]) {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if len(f.calls) != 2 || f.calls[1] != [2]int64{4096 + 2500, 4096 - 2500} {
		t.Errorf("downloads %v, want the first cut at 2500 bytes and the rest asked for", f.calls)
	}
}

func TestVolumeStreamCut(t *testing.T) {
	data := testData(8 * 4096)
	f := &fakeStream{data: data, chunk: 1000, cut: 2500}
	v := NewVolume("v", int64(len(data)), VolumeOptions{BlockSize: 4096}, f.fetch)
	p := make([]byte, 4096)
	n, err := v.ReadAt(p, 0)
	if !errors.Is(err, libvirt.ErrInterrupted) || n != 0 {
		t.Fatalf("ReadAt over a cut stream = %d, %v; want 0, ErrInterrupted", n, err)
	}
	if !bytes.Equal(p, make([]byte, 4096)) {
		t.Error("bytes of the cut download reached the caller")
	}
	if v.cached() != 0 || v.Fetched() != 0 {
		t.Error("a cut download was cached")
	}
	// The connection is back: the same read now works.
	f.cut = 0
	if n, err := v.ReadAt(p, 0); n != 4096 || err != nil || !bytes.Equal(p, data[:4096]) {
		t.Fatalf("ReadAt after the cut = %d, %v", n, err)
	}
}

func TestVolumeOverlongStream(t *testing.T) {
	data := testData(8 * 4096)
	f := &fakeStream{data: data, chunk: 4096, extra: 5}
	v := NewVolume("v", 4*4096, VolumeOptions{BlockSize: 4096}, f.fetch)
	if _, err := v.ReadAt(make([]byte, 10), 0); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("ReadAt over an overlong stream: %v; want an error", err)
	}
}

func TestParseDomainDisks(t *testing.T) {
	doc := `<domain><devices>
  <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><source file='/iso/virtio.iso'/><target dev='sda' bus='sata'/><readonly/></disk>
  <disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='/var/lib/libvirt/images/win.qcow2'/><target dev='vda' bus='virtio'/></disk>
  <disk type='block' device='disk'><driver name='qemu' type='raw'/><source dev='/dev/vg/win'/><target dev='vdb' bus='virtio'/></disk>
  <disk type='volume' device='disk'><driver name='qemu' type='qcow2'/><source pool='default' volume='data.qcow2'/><target dev='vdc' bus='virtio'/></disk>
  <disk type='network' device='disk'><source protocol='rbd' name='pool/img'/><target dev='vdd' bus='virtio'/></disk>
</devices></domain>`
	got, err := ParseDomainDisks([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := []DomainDisk{
		{Target: "sda", Bus: "sata", Device: "cdrom", Type: "file", Format: "raw", Path: "/iso/virtio.iso", ReadOnly: true},
		{Target: "vda", Bus: "virtio", Device: "disk", Type: "file", Format: "qcow2", Path: "/var/lib/libvirt/images/win.qcow2"},
		{Target: "vdb", Bus: "virtio", Device: "disk", Type: "block", Format: "raw", Path: "/dev/vg/win"},
		{Target: "vdc", Bus: "virtio", Device: "disk", Type: "volume", Format: "qcow2", Path: "default/data.qcow2", Pool: "default", Volume: "data.qcow2"},
		{Target: "vdd", Bus: "virtio", Device: "disk", Type: "network", Path: "pool/img"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d disks, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("disk %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if _, err := ParseDomainDisks([]byte("<domain><devices><disk")); err == nil {
		t.Error("truncated XML: no error")
	}
}

// TestStallTimeout: a slow download that keeps moving runs past the stall bound; one that
// stops is aborted.
func TestStallTimeout(t *testing.T) {
	ctx := t.Context()
	var buf bytes.Buffer
	pw := &progressWriter{w: &buf}
	err := withStallTimeout(ctx, 100*time.Millisecond, pw, func() error {
		for i := 0; i < 8; i++ { // 400 ms in all, never 100 ms without data
			time.Sleep(50 * time.Millisecond)
			pw.Write([]byte("x"))
		}
		return nil
	}, func() { t.Error("a moving stream was aborted") })
	if err != nil || buf.Len() != 8 {
		t.Fatalf("moving stream: %v, %d bytes", err, buf.Len())
	}
	aborted := make(chan struct{})
	pw = &progressWriter{w: io.Discard}
	err = withStallTimeout(ctx, 100*time.Millisecond, pw, func() error {
		pw.Write([]byte("xy"))
		<-aborted
		return libvirt.ErrInterrupted
	}, func() { close(aborted) })
	if err == nil || !strings.Contains(err.Error(), "stalled: no data for 100ms after 2 bytes") {
		t.Fatalf("stalled stream: %v", err)
	}
}
