package vm

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
)

// fakeStream serves a byte slice as virStorageVolDownload would, in chunks, and records each
// download.
type fakeStream struct {
	mu    sync.Mutex
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
	f.mu.Lock()
	f.calls = append(f.calls, [2]int64{off, n})
	end := min(off+n-f.short+f.extra, int64(len(f.data)))
	if f.endEarly > 0 {
		end, f.endEarly = min(end, off+f.endEarly), 0
	}
	cut := f.cut
	f.mu.Unlock()
	sent := int64(0)
	for p := off; p < end; p += int64(f.chunk) {
		q := min(p+int64(f.chunk), end)
		if cut > 0 && sent+(q-p) > cut {
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

// TestVolumeSequential: a sequential read fetches every byte once, in few downloads that
// double in length up to the span bound, and the cache and the stream's window stay within
// their bounds.
func TestVolumeSequential(t *testing.T) {
	const bs = 4096
	data := testData(100 * bs)
	f := &fakeStream{data: data, chunk: 777}
	v := NewVolume("v", int64(len(data)), VolumeOptions{BlockSize: bs, CacheBlocks: 12}, f.fetch)
	v.span = 32 * bs
	var got bytes.Buffer
	p := make([]byte, 1000)
	for off := int64(0); off < int64(len(data)); off += int64(len(p)) {
		n, err := v.ReadAt(p, off)
		if err != nil && err != io.EOF {
			t.Fatal(err)
		}
		got.Write(p[:n])
		if c, b := v.cached(), v.buffered(); c > 12 || b > 6 {
			t.Fatalf("%d blocks cached, %d buffered by the stream; bounds 12 and 6", c, b)
		}
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatal("sequential read: wrong bytes")
	}
	if v.Fetched() != int64(len(data)) {
		t.Errorf("fetched %d bytes for a %d-byte volume read once", v.Fetched(), len(data))
	}
	var want [][2]int64 // spans of 1, 2, 4, 8, 16, 32, 32 and 5 blocks
	for _, r := range [][2]int64{{0, 1}, {1, 2}, {3, 4}, {7, 8}, {15, 16}, {31, 32}, {63, 32}, {95, 5}} {
		want = append(want, [2]int64{r[0] * bs, r[1] * bs})
	}
	if fmt.Sprint(f.calls) != fmt.Sprint(want) {
		t.Errorf("downloads %v, want %v", f.calls, want)
	}
}

// TestVolumeBackpressure: a stream that could send everything at once is held by the reader:
// it runs at most the window (half the cache) plus the block being filled ahead.
func TestVolumeBackpressure(t *testing.T) {
	const bs = 4096
	data := testData(64 * bs)
	var sent atomic.Int64
	fetch := func(w io.Writer, off, n int64) error {
		for p := off; p < off+n; p += 1000 {
			q := min(p+1000, off+n)
			if _, err := w.Write(data[p:q]); err != nil {
				return err
			}
			sent.Add(q - p)
		}
		return nil
	}
	v := NewVolume("v", int64(len(data)), VolumeOptions{BlockSize: bs, CacheBlocks: 8}, fetch)
	p := make([]byte, bs)
	for i := int64(0); i < 8; i++ { // spans 1, 2, 4, then 8 blocks from block 7
		if _, err := v.ReadAt(p, i*bs); err != nil || !bytes.Equal(p, data[i*bs:(i+1)*bs]) {
			t.Fatalf("block %d: %v", i, err)
		}
	}
	for end := time.Now().Add(5 * time.Second); v.buffered() < 4; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d blocks buffered ahead after 5 s, want the window of 4", v.buffered())
		}
	}
	// The writer is held by the reader now: what it has sent is all it sends.
	for end := time.Now().Add(5 * time.Second); !v.streamHeld(); time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatal("the stream's writer is not held after 5 s with the window full")
		}
	}
	if s := sent.Load(); s > (8+4+1)*bs {
		t.Errorf("the stream sent %d bytes (%d blocks) with 8 read: more than the 4-block window and one block ahead", s, s/bs)
	}
	if b := v.buffered(); b != 4 {
		t.Errorf("%d blocks buffered ahead, want the window of 4", b)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestVolumeLeave: a read elsewhere leaves the stream: a short rest is drained, a long one is
// cut off (Cut is closed: the connection would be dropped); the reads stay right.
func TestVolumeLeave(t *testing.T) {
	const bs = 4096
	data := testData(256 * bs)
	var mu sync.Mutex
	var cuts []int64
	fetch := func(w io.Writer, off, n int64) error {
		cut := w.(interface{ Cut() <-chan struct{} }).Cut()
		for p := off; p < off+n; p += 1500 {
			select {
			case <-cut:
				mu.Lock()
				cuts = append(cuts, off)
				mu.Unlock()
				return errLeft
			default:
			}
			if _, err := w.Write(data[p:min(p+1500, off+n)]); err != nil {
				return err
			}
		}
		return nil
	}
	v := NewVolume("v", int64(len(data)), VolumeOptions{BlockSize: bs, CacheBlocks: 6}, fetch)
	v.span, v.drain = 64*bs, 4*bs
	p := make([]byte, bs)
	read := func(i int64) {
		t.Helper()
		if _, err := v.ReadAt(p, i*bs); err != nil || !bytes.Equal(p, data[i*bs:(i+1)*bs]) {
			t.Fatalf("block %d: %v", i, err)
		}
	}
	full := func() { // the stream has filled its window of 3 blocks
		t.Helper()
		for end := time.Now().Add(5 * time.Second); v.buffered() < 3; time.Sleep(time.Millisecond) {
			if time.Now().After(end) {
				t.Fatal("the stream did not fill its window")
			}
		}
	}
	for i := int64(0); i < 8; i++ { // spans 1, 2, 4, then 8 blocks from block 7
		read(i)
	}
	full()
	read(200)                           // 8..10 buffered, 11..14 owed (at most 4 blocks): drained
	for i := int64(100); i < 120; i++ { // spans 1, 2, 4, 8, 16 from block 115
		read(i)
	}
	full()
	read(3) // 120..122 buffered, 123..130 owed: cut
	read(4)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(cuts) != fmt.Sprint([]int64{115 * bs}) {
		t.Errorf("downloads cut off at %v, want the one at block 115", cuts)
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
	// A writer held by its reader for longer than the bound is not stalled; one its reader
	// cut off is aborted at once.
	st := &vstream{cut: make(chan struct{})}
	st.held.Store(true)
	pw = &progressWriter{w: st}
	released := make(chan struct{})
	err = withStallTimeout(ctx, 50*time.Millisecond, pw, func() error {
		time.Sleep(300 * time.Millisecond)
		return nil
	}, func() { t.Error("a held stream was aborted") })
	if err != nil {
		t.Fatalf("held stream: %v", err)
	}
	start := time.Now()
	time.AfterFunc(20*time.Millisecond, func() { close(st.cut) })
	// Without the cut, the stall bound would end it (a "stalled" error) after 2 s.
	st.held.Store(false)
	err = withStallTimeout(ctx, 2*time.Second, pw, func() error {
		<-released
		return libvirt.ErrInterrupted
	}, func() { close(released) })
	if !errors.Is(err, errLeft) || time.Since(start) >= 2*time.Second {
		t.Fatalf("cut stream: %v after %v, want errLeft at once", err, time.Since(start))
	}
}

// TestVolumeLateWriteAfterFailure: a download that failed (a stall, a dropped connection)
// may still deliver a packet afterwards, as go-libvirt's reader goroutine outlives the call
// that gave up on it. That late packet must be dropped: its partial block's buffer has gone
// back to the pool and fills the retried download's block by then.
func TestVolumeLateWriteAfterFailure(t *testing.T) {
	data := testData(4096)
	retried, late := make(chan struct{}), make(chan struct{})
	calls := 0
	fetch := func(w io.Writer, off, n int64) error {
		calls++
		switch calls {
		case 1:
			w.Write(data[off : off+100])
			go func() { // the packet that was on its way when the download was given up
				<-retried
				w.Write(bytes.Repeat([]byte{0xEE}, 100))
				close(late)
			}()
			return libvirt.ErrInterrupted
		default:
			w.Write(data[off : off+300]) // past where the late packet would land
			close(retried)
			<-late
			_, err := w.Write(data[off+300 : off+n])
			return err
		}
	}
	v := NewVolume("/pool/win.qcow2", int64(len(data)), VolumeOptions{BlockSize: 4096, CacheBlocks: 3}, fetch)
	p := make([]byte, len(data))
	if n, err := v.ReadAt(p, 0); n != len(p) || err != nil {
		t.Fatalf("ReadAt = %d, %v", n, err)
	}
	if i := bytes.IndexByte(p, 0xEE); !bytes.Equal(p, data) {
		t.Fatalf("wrong bytes (the late packet's 0xEE at %d)", i)
	}
}
