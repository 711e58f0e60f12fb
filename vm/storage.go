package vm

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/digitalocean/go-libvirt"
)

// DomainDisk is one <disk> of a libvirt domain.
type DomainDisk struct {
	// Target is the guest's device name ("vda", "sda").
	Target string `json:"target"`
	// Bus is the target bus ("virtio", "sata", …).
	Bus string `json:"bus,omitempty"`
	// Device is "disk", "cdrom", "floppy" or "lun".
	Device string `json:"device"`
	// Type is the source type: "file", "block", "volume", "network", …
	Type string `json:"type"`
	// Format is the driver's format ("qcow2", "raw").
	Format string `json:"format,omitempty"`
	// Path is the source file or block device on the daemon's host (for volumes: the pool
	// and volume).
	Path string `json:"path"`
	// Pool and Volume name a <source pool='' volume=''/>.
	Pool   string `json:"pool,omitempty"`
	Volume string `json:"volume,omitempty"`
	// ReadOnly is <readonly/>.
	ReadOnly bool `json:"readonly,omitempty"`
}

// ParseDomainDisks returns the disks of a libvirt domain XML in document order.
func ParseDomainDisks(doc []byte) ([]DomainDisk, error) {
	var d struct {
		Devices struct {
			Disks []struct {
				Type   string `xml:"type,attr"`
				Device string `xml:"device,attr"`
				Driver struct {
					Type string `xml:"type,attr"`
				} `xml:"driver"`
				Source struct {
					File   string `xml:"file,attr"`
					Dev    string `xml:"dev,attr"`
					Pool   string `xml:"pool,attr"`
					Volume string `xml:"volume,attr"`
					Name   string `xml:"name,attr"`
				} `xml:"source"`
				Target struct {
					Dev string `xml:"dev,attr"`
					Bus string `xml:"bus,attr"`
				} `xml:"target"`
				ReadOnly *struct{} `xml:"readonly"`
			} `xml:"disk"`
		} `xml:"devices"`
	}
	if err := xml.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("domain xml: %w", err)
	}
	var out []DomainDisk
	for _, x := range d.Devices.Disks {
		dd := DomainDisk{Target: x.Target.Dev, Bus: x.Target.Bus, Device: x.Device, Type: x.Type,
			Format: x.Driver.Type, ReadOnly: x.ReadOnly != nil, Pool: x.Source.Pool, Volume: x.Source.Volume}
		if dd.Device == "" {
			dd.Device = "disk"
		}
		switch x.Type {
		case "file", "":
			dd.Path = x.Source.File
		case "block":
			dd.Path = x.Source.Dev
		case "volume":
			dd.Path = x.Source.Pool + "/" + x.Source.Volume
		default:
			dd.Path = x.Source.Name
		}
		out = append(out, dd)
	}
	return out, nil
}

// storageAPI is the storage part of *libvirt.Libvirt; tests fake it.
type storageAPI interface {
	StorageVolLookupByPath(path string) (libvirt.StorageVol, error)
	StoragePoolLookupByName(name string) (libvirt.StoragePool, error)
	StorageVolLookupByName(pool libvirt.StoragePool, name string) (libvirt.StorageVol, error)
	StorageVolGetPath(vol libvirt.StorageVol) (string, error)
	StorageVolGetInfoFlags(vol libvirt.StorageVol, flags uint32) (int8, uint64, uint64, error)
	StorageVolDownload(vol libvirt.StorageVol, w io.Writer, offset, length uint64, flags libvirt.StorageVolDownloadFlags) error
}

// Storage reads a libvirt domain's disks: their definitions from the domain XML and, when
// the daemon is remote, their bytes through libvirt's storage API. The storage API has a
// connection of its own (dialled on first use, redialled after a failure), so that a stalled
// download never takes the target's control connection (its events, its keys) down with it.
type Storage struct {
	t  *libvirtTarget
	rx byteCounter

	mu sync.Mutex
	lv *libvirt.Libvirt
}

// OpenStorage returns the storage of t, which must be a libvirt target. It is shared by every
// caller and closed with the target.
func OpenStorage(t Target) (*Storage, error) {
	lt, ok := t.(*libvirtTarget)
	if !ok {
		return nil, fmt.Errorf("%s: the disk can be found through libvirt only; give the image with --disk", t.Describe())
	}
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.storage == nil {
		lt.storage = &Storage{t: lt}
	}
	return lt.storage, nil
}

// Local is true when the daemon runs on this machine (a unix socket URI), so that the disk
// paths of its domains are local files.
func (s *Storage) Local() bool { return !s.t.parsed.IsRemote() }

// BytesReceived is the number of bytes the storage connection has received so far (RPC
// framing included): what crossed the network for the disk.
func (s *Storage) BytesReceived() int64 { return s.rx.n.Load() }

// Disks are the domain's disks (devices "disk" first, in document order).
func (s *Storage) Disks(ctx context.Context) ([]DomainDisk, error) {
	var doc string
	err := s.t.call(ctx, func(api libvirtAPI, dom libvirt.Domain) error {
		var err error
		doc, err = api.DomainGetXMLDesc(dom, 0)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: reading the domain XML: %w", s.t.Describe(), err)
	}
	disks, err := ParseDomainDisks([]byte(doc))
	if err != nil {
		return nil, err
	}
	sort.SliceStable(disks, func(i, j int) bool { return disks[i].Device == "disk" && disks[j].Device != "disk" })
	return disks, nil
}

// conn returns the storage connection, dialling it when there is none.
func (s *Storage) conn(ctx context.Context) (*libvirt.Libvirt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lv != nil && s.lv.IsConnected() {
		return s.lv, nil
	}
	ctx, cancel := withDefaultDeadline(ctx, s.t.opts.Timeout)
	defer cancel()
	var lv *libvirt.Libvirt
	err := withDeadline(ctx, s.t.opts.Timeout, func() error {
		var err error
		lv, err = dialLibvirt(ctx, s.t.parsed, &s.rx)
		return err
	}, func() {})
	if err != nil {
		return nil, fmt.Errorf("storage connection: %w", err)
	}
	s.lv = lv
	return lv, nil
}

// drop closes lv if it is still the storage connection (after a failure or a stall).
func (s *Storage) drop(lv *libvirt.Libvirt) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lv == lv && lv != nil {
		go lv.Disconnect()
		s.lv = nil
	}
}

// Close ends the storage connection.
func (s *Storage) Close() error {
	s.mu.Lock()
	lv := s.lv
	s.lv = nil
	s.mu.Unlock()
	if lv != nil {
		return withDeadline(context.Background(), s.t.opts.Timeout, lv.Disconnect, func() {})
	}
	return nil
}

// do runs f on the storage connection with the target's deadline; a failure that is not
// libvirtd's answer drops the connection and f is tried once more on a new one.
func (s *Storage) do(ctx context.Context, f func(sa storageAPI) error) error {
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var lv *libvirt.Libvirt
		if lv, err = s.conn(ctx); err != nil {
			return err
		}
		err = withDeadline(ctx, s.t.opts.Timeout, func() error { return f(lv) }, func() { s.drop(lv) })
		var lerr libvirt.Error
		if err == nil || errors.As(err, &lerr) || ctx.Err() != nil {
			return err
		}
		s.drop(lv)
	}
	return err
}

// ErrNoPool: a disk path lies in no storage pool of the daemon, so the storage API cannot
// read it.
var ErrNoPool = errors.New("the disk is in no storage pool")

// VolumeOptions tune a Volume's reads.
type VolumeOptions struct {
	// BlockSize is the unit of download and caching (default 1 MiB).
	BlockSize int
	// CacheBlocks bounds the cache (default 12 blocks); the stream of a sequential read
	// runs at most CacheBlocks/2 blocks (and the one being filled) ahead of the reader.
	CacheBlocks int
}

// OpenVolume opens the storage volume at path on the daemon's host (virStorageVolLookupByPath).
func (s *Storage) OpenVolume(ctx context.Context, p string, opts VolumeOptions) (*Volume, error) {
	var vol libvirt.StorageVol
	err := s.do(ctx, func(sa storageAPI) error {
		var err error
		vol, err = sa.StorageVolLookupByPath(p)
		return err
	})
	if err != nil {
		if libvirt.IsNotFound(err) || strings.Contains(err.Error(), "no storage vol") {
			dir := path.Dir(p)
			return nil, fmt.Errorf("%s: disk %s: %w, so libvirt cannot serve its bytes; fix: define a pool on its directory on that host: virsh -c '%s' pool-define-as crashkey-%s dir --target %s && virsh -c '%s' pool-start crashkey-%s",
				s.t.uri, p, ErrNoPool, s.t.uri, path.Base(dir), dir, s.t.uri, path.Base(dir))
		}
		return nil, fmt.Errorf("%s: disk %s: looking up its storage volume: %w", s.t.uri, p, err)
	}
	return s.openVol(ctx, vol, p, opts)
}

// OpenPoolVolume opens volume name of pool (a <source pool volume/> disk).
func (s *Storage) OpenPoolVolume(ctx context.Context, pool, name string, opts VolumeOptions) (*Volume, error) {
	var vol libvirt.StorageVol
	var p string
	err := s.do(ctx, func(sa storageAPI) error {
		pl, err := sa.StoragePoolLookupByName(pool)
		if err != nil {
			return err
		}
		if vol, err = sa.StorageVolLookupByName(pl, name); err != nil {
			return err
		}
		p, err = sa.StorageVolGetPath(vol)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: volume %s in pool %s: %w", s.t.uri, name, pool, err)
	}
	return s.openVol(ctx, vol, p, opts)
}

func (s *Storage) openVol(ctx context.Context, vol libvirt.StorageVol, p string, opts VolumeOptions) (*Volume, error) {
	var physical uint64
	err := s.do(ctx, func(sa storageAPI) error {
		var err error
		_, _, physical, err = sa.StorageVolGetInfoFlags(vol, uint32(libvirt.StorageVolGetPhysical))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%s: volume %s: size: %w", s.t.uri, p, err)
	}
	v := newVolume(p, int64(physical), opts, func(w io.Writer, off, n int64) error {
		lv, err := s.conn(ctx)
		if err != nil {
			return err
		}
		pw := &progressWriter{w: w}
		err = withStallTimeout(ctx, s.t.opts.Timeout, pw, func() error {
			return lv.StorageVolDownload(vol, pw, uint64(off), uint64(n), 0)
		}, func() { s.drop(lv) })
		var lerr libvirt.Error
		if err != nil && !errors.As(err, &lerr) {
			s.drop(lv)
		}
		return err
	})
	v.storage = s
	return v, nil
}

// progressWriter counts what went through it.
type progressWriter struct {
	w io.Writer
	n atomic.Int64
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n.Add(int64(n))
	return n, err
}

// held is true while the writer waits for its reader (backpressure, not a stalled network).
func (p *progressWriter) held() bool {
	h, ok := p.w.(interface{ Held() bool })
	return ok && h.Held()
}

// cut is closed when the writer's reader gives the download up (nil: never).
func (p *progressWriter) cut() <-chan struct{} {
	if c, ok := p.w.(interface{ Cut() <-chan struct{} }); ok {
		return c.Cut()
	}
	return nil
}

// withStallTimeout runs f (a stream) until it returns, ctx ends or no byte arrives for stall:
// a long download is fine as long as it moves, or waits for its reader. On a stall, ctx's
// end or the writer's cut it calls abort (which must unblock f) and returns an error.
//
// A download is never ended by an error from its writer: go-libvirt's reader holds its
// routing lock while it hands the next packet of the stream over, so a call that returned
// early would leave it blocked and the connection dead. Dropping the connection is the way
// out.
func withStallTimeout(ctx context.Context, stall time.Duration, pw *progressWriter, f func() error, abort func()) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	tick := time.NewTicker(max(stall/8, 10*time.Millisecond))
	defer tick.Stop()
	last, since := pw.n.Load(), time.Now()
	cut := pw.cut()
	for {
		select {
		case err := <-done:
			return err
		case <-cut:
			abort()
			return errLeft
		case <-ctx.Done():
			abort()
			return fmt.Errorf("download: %w", ctx.Err())
		case <-tick.C:
			if n := pw.n.Load(); n != last || pw.held() {
				last, since = n, time.Now()
			} else if time.Since(since) > stall {
				abort()
				return fmt.Errorf("the download stalled: no data for %v after %d bytes", stall, last)
			}
		}
	}
}

// Volume is a storage volume read through virStorageVolDownload, by byte ranges, behind a
// bounded block cache: an io.ReaderAt with Size and Name (a disk.Source). Only the blocks a
// reader asks for travel. A miss starts one download (a stream) from the missing block;
// while the reader goes on sequentially the stream goes on too, one span after the other, each
// twice as long as the one before (up to 1 GiB), so a long sequential read is a few long
// streams as virsh vol-download's one, not one round trip per block. The stream writes into a
// window of at most CacheBlocks/2 blocks ahead of the reader and then waits for it
// (backpressure: the daemon's sending pauses, nothing piles up in memory), so the volume
// holds at most CacheBlocks cached blocks plus that window plus the block being filled,
// recycling their buffers. A read elsewhere leaves the stream: a short rest is drained in the
// background, a long one ends by dropping the connection. It never writes to the volume.
// Safe for concurrent use (reads are serialized).
//
// Downloads are plain streams: go-libvirt's stream reader cannot tell the hole packets of
// VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM from data, so that flag is not used.
type Volume struct {
	name    string
	size    int64
	bs      int64
	max     int
	window  int
	span    int64 // the longest download, in bytes
	drain   int64 // the most a left stream may owe to be drained
	fetch   DownloadFunc
	storage *Storage
	pool    bufPool

	mu       sync.Mutex
	blocks   map[int64]*cblock
	tick     uint64
	lastMiss int64 // the last block taken from a stream
	run      int64 // the current span's length, in blocks
	fetched  int64
	st       *vstream       // the stream the reader follows, if any
	leaving  sync.WaitGroup // streams left behind (draining or ending)
}

type cblock struct {
	data []byte
	used uint64
}

// maxSpan bounds one download. Each download waits for its first byte while the daemon
// starts an I/O helper for it, with nothing else in flight: a 1100 MiB sequential read takes
// 11 spans up to 1 GiB against 23 up to 64 MiB, and a 512 MiB one 4.1–4.6 s against
// 4.5–5.1 s over qemu+tcp (2026-12-06). What a left stream still owes beyond drainMax is not
// read but cut off with the connection, so a long span costs no bytes.
const maxSpan = 1 << 30

// drainMax is the most a left stream may still owe to be drained rather than cut.
const drainMax = 8 << 20

// errLeft: the reader left the stream and its download was cut off.
var errLeft = errors.New("the reader left the stream")

// DownloadFunc writes the n bytes of a volume at off to w (virStorageVolDownload).
type DownloadFunc func(w io.Writer, off, n int64) error

// NewVolume is a Volume of size bytes read through fetch: OpenVolume's reader over any
// ranged download (tests use it with a fake stream).
func NewVolume(name string, size int64, opts VolumeOptions, fetch DownloadFunc) *Volume {
	return newVolume(name, size, opts, fetch)
}

func newVolume(name string, size int64, opts VolumeOptions, fetch DownloadFunc) *Volume {
	if opts.BlockSize <= 0 {
		opts.BlockSize = 1 << 20
	}
	if opts.CacheBlocks <= 0 {
		opts.CacheBlocks = 12
	}
	if opts.CacheBlocks < 3 {
		opts.CacheBlocks = 3
	}
	window := opts.CacheBlocks / 2
	return &Volume{name: name, size: size, bs: int64(opts.BlockSize), max: opts.CacheBlocks, window: window,
		span: maxSpan, drain: drainMax, fetch: fetch, blocks: map[int64]*cblock{}, lastMiss: -2,
		pool: bufPool{size: opts.BlockSize, keep: window + 2}}
}

// Name is the volume's path on the daemon's host.
func (v *Volume) Name() string { return v.name }

// Size is the volume's physical size (the file's length).
func (v *Volume) Size() int64 { return v.size }

// Fetched is the number of volume bytes downloaded so far (for the reader: drained bytes of
// a left stream are not counted).
func (v *Volume) Fetched() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fetched
}

// Storage is the storage the volume was opened from (to open its backing files).
func (v *Volume) Storage() *Storage { return v.storage }

// Close ends the volume's stream and drops the cache. The connection belongs to the target.
func (v *Volume) Close() error {
	v.mu.Lock()
	v.leave()
	v.blocks = map[int64]*cblock{}
	v.mu.Unlock()
	v.leaving.Wait()
	return nil
}

// ReadAt reads len(p) bytes at off; past the end it returns io.EOF as os.File does.
func (v *Volume) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("volume %s: negative offset", v.name)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for n < len(p) {
		pos := off + int64(n)
		if pos >= v.size {
			return n, io.EOF
		}
		b, err := v.block(pos / v.bs)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], b.data[pos%v.bs:])
	}
	return n, nil
}

// block returns cached block i, or takes it from the stream, starting one on a miss.
func (v *Volume) block(i int64) (*cblock, error) {
	v.tick++
	if b, ok := v.blocks[i]; ok {
		b.used = v.tick
		return b, nil
	}
	var carry *vstream // a stream that ended early: its partial block is resumed
	failed := false
	for {
		st := v.st
		if st != nil && st.next != i {
			v.leave()
			st = nil
		}
		if st == nil {
			st = v.start(i, carry)
		}
		data, err := st.take()
		if data != nil && st.next >= st.end {
			// The span's last block: it counts once the download ended well (an overlong
			// stream or a failed end is not trusted).
			<-st.done
			v.st = nil
			if err = st.err; err != nil {
				v.pool.put(data)
				data = nil
			}
		}
		if data != nil {
			v.fetched += int64(len(data))
			v.lastMiss = i
			v.put(i, data)
			return v.blocks[i], nil
		}
		// The stream ended before block i.
		v.st = nil
		if err == nil {
			if st.pos == st.off {
				return nil, fmt.Errorf("volume %s: short download: %d of %d bytes at %d (the volume shrank, or the stream ended early)",
					v.name, st.off-st.begin, st.endOff-st.begin, st.begin)
			}
			slog.Debug("volume: download ended early; resuming", "volume", v.name, "at", st.pos, "missing", st.endOff-st.pos)
			carry = st
			continue
		}
		if failed {
			return nil, fmt.Errorf("volume %s: download of %d bytes at %d: %w", v.name, st.endOff-st.pos, st.pos, err)
		}
		// Tried once more (the storage connection is redialled), from block i.
		failed, carry = true, nil
		v.pool.put(st.fill)
	}
}

// start begins a download at block i: one block after a random miss, twice the last span
// when the reader goes on sequentially, up to the first cached block. carry is a stream that
// ended early within block i: the new one resumes at its byte.
func (v *Volume) start(i int64, carry *vstream) *vstream {
	if i == v.lastMiss+1 {
		v.run = min(max(v.run*2, 2), max(v.span/v.bs, 1))
	} else {
		v.run = 1
	}
	count := int64(1)
	for ; count < v.run; count++ {
		if _, ok := v.blocks[i+count]; ok || (i+count)*v.bs >= v.size {
			break
		}
	}
	st := &vstream{pool: &v.pool, bs: v.bs, size: v.size, window: v.window, next: i, end: i + count,
		begin: i * v.bs, endOff: min((i+count)*v.bs, v.size), done: make(chan struct{}), cut: make(chan struct{})}
	st.cond.L = &st.mu
	st.off, st.pos, st.fillIdx = st.begin, st.begin, i
	if carry != nil {
		st.begin, st.fill, st.filled = carry.begin, carry.fill, carry.filled
		st.off = carry.pos
		st.pos = carry.pos
	}
	v.st = st
	go func() {
		defer close(st.done)
		err := v.fetch(st, st.off, st.endOff-st.off)
		st.finish(err)
	}()
	return st
}

// leave stops following the current stream: a short rest is drained (the connection stays),
// a long one is ended with an error (the connection is dropped and redialled on next use).
func (v *Volume) leave() {
	st := v.st
	if st == nil {
		return
	}
	v.st = nil
	st.mu.Lock()
	st.quit = true
	st.drain = st.endOff-st.pos <= v.drain
	if !st.drain {
		close(st.cut)
	}
	st.cond.Broadcast()
	st.mu.Unlock()
	v.leaving.Add(1)
	go func() {
		defer v.leaving.Done()
		<-st.done
		st.mu.Lock()
		for _, b := range st.ready {
			v.pool.put(b)
		}
		v.pool.put(st.fill)
		st.ready, st.fill = nil, nil
		st.mu.Unlock()
	}()
	if !st.drain {
		v.leaving.Wait() // the connection is dropped before the next download dials
	}
}

// put caches a block, evicting the least recently used ones beyond the bound (their buffers
// are reused).
func (v *Volume) put(i int64, data []byte) {
	v.tick++
	v.blocks[i] = &cblock{data: data, used: v.tick}
	for len(v.blocks) > v.max {
		var oldest int64 = -1
		var ot uint64
		for k, b := range v.blocks {
			if k != i && (oldest < 0 || b.used < ot) {
				oldest, ot = k, b.used
			}
		}
		v.pool.put(v.blocks[oldest].data)
		delete(v.blocks, oldest)
	}
}

// cached is the number of blocks held (tests).
func (v *Volume) cached() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.blocks)
}

// streamHeld reports whether the stream's writer waits for its reader (tests).
func (v *Volume) streamHeld() bool {
	v.mu.Lock()
	st := v.st
	v.mu.Unlock()
	return st != nil && st.Held()
}

// buffered is the number of downloaded blocks the stream holds for the reader (tests).
func (v *Volume) buffered() int {
	v.mu.Lock()
	st := v.st
	v.mu.Unlock()
	if st == nil {
		return 0
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.ready)
}

// vstream is one download: its writer (go-libvirt's stream reader) cuts the bytes into blocks
// and queues at most window of them for the reader, then waits.
type vstream struct {
	pool          *bufPool
	bs, size      int64
	window        int
	begin, endOff int64 // the bytes of the span (begin may lie before off when resuming)
	off           int64 // where this download starts
	end           int64 // past the span's last block
	done          chan struct{}
	cut           chan struct{} // closed when the reader cuts the download off
	held          atomic.Bool

	mu      sync.Mutex
	cond    sync.Cond
	next    int64    // the block the reader takes next
	ready   [][]byte // whole blocks from next on
	fill    []byte   // the block being written
	filled  int64
	fillIdx int64
	pos     int64 // the byte the stream writes next
	quit    bool  // the reader left
	drain   bool  // … and the rest is to be read and dropped
	ended   bool
	err     error // the download's failure
	werr    error // the writer's refusal
}

// Held is true while the writer waits for the reader.
func (st *vstream) Held() bool { return st.held.Load() }

// Cut is closed when the reader left the stream with too much still to come: the download
// is to be ended by dropping the connection.
func (st *vstream) Cut() <-chan struct{} { return st.cut }

// Write takes the stream's bytes. It never fails (see withStallTimeout): what comes after the
// reader left, past the bytes asked for (which fails the download) or after the download
// ended is dropped. The last happens when a stalled or cut download was given up while
// go-libvirt still delivered a packet of it: its partial block's buffer may fill another
// download's block by then.
func (st *vstream) Write(p []byte) (int, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.quit || st.ended || st.werr != nil {
		return len(p), nil
	}
	if int64(len(p)) > st.endOff-st.pos {
		st.werr = fmt.Errorf("the stream sent more than the %d bytes asked for", st.endOff-st.off)
		return len(p), nil
	}
	n := 0
	for n < len(p) {
		if st.fill == nil {
			for len(st.ready) >= st.window && !st.quit && !st.ended {
				st.held.Store(true)
				st.cond.Wait()
			}
			st.held.Store(false)
			if st.quit || st.ended {
				return len(p), nil
			}
			st.fill, st.filled = st.pool.get(), 0
		}
		want := min(st.bs, st.size-st.fillIdx*st.bs)
		c := copy(st.fill[st.filled:want], p[n:])
		st.filled += int64(c)
		st.pos += int64(c)
		n += c
		if st.filled == want {
			st.ready = append(st.ready, st.fill[:want:want])
			st.fill, st.filled = nil, 0
			st.fillIdx++
			st.cond.Broadcast()
		}
	}
	return n, nil
}

// finish records the end of the download.
func (st *vstream) finish(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.werr != nil {
		err = st.werr
	}
	st.ended, st.err = true, err
	st.cond.Broadcast()
}

// take waits for the next block; nil when the stream ended before it (with the download's
// error, or nil when it ended early).
func (st *vstream) take() ([]byte, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for len(st.ready) == 0 && !st.ended {
		st.cond.Wait()
	}
	if len(st.ready) == 0 {
		return nil, st.err
	}
	b := st.ready[0]
	st.ready[0] = nil
	st.ready = st.ready[1:]
	st.next++
	st.cond.Broadcast()
	return b, nil
}

// bufPool recycles block buffers, keeping at most keep of them.
type bufPool struct {
	mu   sync.Mutex
	size int
	keep int
	free [][]byte
}

func (p *bufPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k := len(p.free); k > 0 {
		b := p.free[k-1]
		p.free = p.free[:k-1]
		return b
	}
	return make([]byte, p.size)
}

func (p *bufPool) put(b []byte) {
	if cap(b) != p.size {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < p.keep {
		p.free = append(p.free, b[:p.size])
	}
}
