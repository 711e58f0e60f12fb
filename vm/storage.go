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
	// CacheBlocks bounds the cache (default 12 blocks); sequential reads fetch up to
	// CacheBlocks/3 blocks in one download.
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

// withStallTimeout runs f (a stream) until it returns, ctx ends or no byte arrives for stall:
// a long download is fine as long as it moves. On a stall or ctx's end it calls abort (which
// must unblock f) and returns an error.
func withStallTimeout(ctx context.Context, stall time.Duration, pw *progressWriter, f func() error, abort func()) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	tick := time.NewTicker(max(stall/8, 10*time.Millisecond))
	defer tick.Stop()
	last, since := pw.n.Load(), time.Now()
	for {
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			abort()
			return fmt.Errorf("download: %w", ctx.Err())
		case <-tick.C:
			if n := pw.n.Load(); n != last {
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
// reader asks for travel; runs of sequential misses are fetched in one download. It never
// writes to the volume. Safe for concurrent use (reads are serialized).
//
// Downloads are plain streams: go-libvirt's stream reader cannot tell the hole packets of
// VIR_STORAGE_VOL_DOWNLOAD_SPARSE_STREAM from data, so that flag is not used.
type Volume struct {
	name    string
	size    int64
	bs      int64
	max     int
	fetch   DownloadFunc
	storage *Storage

	mu       sync.Mutex
	blocks   map[int64]*cblock
	tick     uint64
	lastMiss int64
	run      int
	fetched  int64
	ahead    *readAhead // the download of the next sequential run, running beside the reader
}

// readAhead is a download started in the background after a sequential miss.
type readAhead struct {
	first, count int64 // blocks
	n            int64 // bytes
	done         chan struct{}
	buf          []byte
	err          error
}

type cblock struct {
	data []byte
	used uint64
}

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
	return &Volume{name: name, size: size, bs: int64(opts.BlockSize), max: opts.CacheBlocks, fetch: fetch,
		blocks: map[int64]*cblock{}, lastMiss: -2}
}

// Name is the volume's path on the daemon's host.
func (v *Volume) Name() string { return v.name }

// Size is the volume's physical size (the file's length).
func (v *Volume) Size() int64 { return v.size }

// Fetched is the number of volume bytes downloaded so far.
func (v *Volume) Fetched() int64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.fetched
}

// Storage is the storage the volume was opened from (to open its backing files).
func (v *Volume) Storage() *Storage { return v.storage }

// Close drops the cache. The connection belongs to the target.
func (v *Volume) Close() error {
	v.mu.Lock()
	if v.ahead != nil {
		<-v.ahead.done
		v.ahead = nil
	}
	v.blocks = map[int64]*cblock{}
	v.mu.Unlock()
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

// block returns cached block i, downloading it (with the next ones, when reads run
// sequentially) on a miss.
func (v *Volume) block(i int64) (*cblock, error) {
	v.tick++
	if b, ok := v.blocks[i]; ok {
		b.used = v.tick
		return b, nil
	}
	// A read-ahead runs: wait for it (it takes no lock), keep what it brought.
	if a := v.ahead; a != nil {
		<-a.done
		v.ahead = nil
		if a.err == nil {
			v.store(a.first, a.count, a.n, a.buf)
			if b, ok := v.blocks[i]; ok {
				b.used = v.tick
				v.run = min(max(v.run*2, 2), v.max/3)
				v.startAhead()
				return b, nil
			}
		}
	}
	// Sequential misses widen the download: 1, 2, 4, … blocks, up to a third of the cache.
	if i == v.lastMiss+1 {
		v.run = min(max(v.run*2, 2), v.max/3)
	} else {
		v.run = 1
	}
	count := v.runFrom(i, int64(v.run))
	off := i * v.bs
	n := min(count*v.bs, v.size-off)
	buf, err := v.download(off, n)
	if err != nil {
		return nil, err
	}
	v.store(i, count, n, buf)
	if v.run >= 2 {
		v.startAhead()
	}
	return v.blocks[i], nil
}

// runFrom is how many of the count blocks from i are to be fetched: up to the first one
// cached or past the end.
func (v *Volume) runFrom(i, count int64) int64 {
	for j := int64(1); j < count; j++ {
		if _, ok := v.blocks[i+j]; ok || (i+j)*v.bs >= v.size {
			return j
		}
	}
	return count
}

// store caches the count blocks of a download of n bytes starting at block first.
func (v *Volume) store(first, count, n int64, buf []byte) {
	v.fetched += n
	v.lastMiss = first + count - 1
	for j := int64(0); j < count; j++ {
		end := min((j+1)*v.bs, n)
		v.put(first+j, buf[j*v.bs:end:end])
	}
}

// startAhead downloads the next sequential run in the background, so that the network works
// while the reader consumes what it has.
func (v *Volume) startAhead() {
	first := v.lastMiss + 1
	if first*v.bs >= v.size {
		return
	}
	if _, ok := v.blocks[first]; ok {
		return
	}
	count := v.runFrom(first, int64(max(v.run, 1)))
	off := first * v.bs
	a := &readAhead{first: first, count: count, n: min(count*v.bs, v.size-off), done: make(chan struct{})}
	v.ahead = a
	go func() {
		defer close(a.done)
		a.buf, a.err = v.download(off, a.n)
	}()
}

// download reads the n bytes at off. A stream that ends early is resumed where it stopped
// (as long as each download brings something); a failed download is tried once more (the
// storage connection is redialled), into a new buffer: an aborted stream may still be writing
// into the old one.
func (v *Volume) download(off, n int64) ([]byte, error) {
	buf := make([]byte, n)
	var got int64
	failed := false
	for got < n {
		w := &rangeWriter{buf: buf[got:]}
		err := v.fetch(w, off+got, n-got)
		if err == nil && w.err != nil {
			err = w.err
		}
		if err != nil {
			if failed {
				return nil, fmt.Errorf("volume %s: download of %d bytes at %d: %w", v.name, n-got, off+got, err)
			}
			failed = true
			nb := make([]byte, n)
			copy(nb, buf[:got])
			buf = nb
			continue
		}
		if w.n == 0 {
			return nil, fmt.Errorf("volume %s: short download: %d of %d bytes at %d (the volume shrank, or the stream ended early)", v.name, got, n, off)
		}
		got += int64(w.n)
		if got < n {
			slog.Debug("volume: download ended early; resuming", "volume", v.name, "at", off+got, "missing", n-got)
		}
	}
	return buf, nil
}

// put caches a block, evicting the least recently used ones beyond the bound.
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
		delete(v.blocks, oldest)
	}
}

// cached is the number of blocks held (tests).
func (v *Volume) cached() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.blocks)
}

// rangeWriter collects one download into buf and refuses more bytes than asked for.
type rangeWriter struct {
	buf []byte
	n   int
	err error
}

func (w *rangeWriter) Write(p []byte) (int, error) {
	if len(p) > len(w.buf)-w.n {
		w.err = fmt.Errorf("the stream sent more than the %d bytes asked for", len(w.buf))
		return 0, w.err
	}
	w.n += copy(w.buf[w.n:], p)
	return len(p), nil
}
