package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Transaction log replay. A hive whose base block sequence numbers differ ("dirty") was not
// written back completely: the newest data lives in its transaction logs (SYSTEM.LOG1,
// SYSTEM.LOG2). Windows replays them at boot; crashkey does the same, in memory only, so that
// preflight sees what the guest will see. Two formats exist (Maxim Suhanov's "Windows
// registry file format specification", libyal's regf documentation):
//
//   - new (Windows 8.1 / 2012 R2 and later, file type 6): a 512-byte partial base block, then
//     "HvLE" log entries at 512-byte boundaries: signature, size, flags, sequence number, hive
//     bins data size, dirty page count, Hash-1 (Marvin32 of the entry from byte 40 to its
//     end), Hash-2 (Marvin32 of the entry's first 32 bytes), the page references (offset and
//     size, relative to the hive bins) and the pages. Entries apply from the one whose
//     sequence number equals the primary's secondary sequence number, each next one being
//     number + 1, across LOG1 and LOG2; the first bad entry ends the replay.
//   - old (Windows 7 and earlier, file type 1 or 2): a partial base block in the first
//     sector, a "DIRT" vector in the second (one bit per 512-byte page of the hive bins), and
//     the dirty pages, one after the other from the next sector on. A log applies when it is
//     valid (its sequence numbers agree) and its timestamp equals the primary's.

const (
	// logHeader is the size of the partial base block at the start of a log.
	logHeader = 512
	// maxLogSize bounds a log file crashkey reads into memory (Windows keeps its logs far
	// smaller: it reconciles the primary file as they grow).
	maxLogSize = 64 << 20
	// hvleHeader is the fixed part of a log entry.
	hvleHeader = 40
	// maxEntries bounds the log entries one replay considers.
	maxEntries = 1 << 16
)

// File types in a base block.
const (
	fileTypePrimary = 0
	fileTypeLogOld  = 1
	fileTypeLogOld2 = 2
	fileTypeLogNew  = 6
)

// LogSource is a transaction log of a hive: its file name (for reports) and its data.
type LogSource struct {
	Name string
	R    io.ReaderAt
	Size int64
}

// Replay says which transaction log data was applied to a dirty hive.
type Replay struct {
	// Format is "HvLE" (Windows 8.1 and later) or "DIRT" (Windows 7 and earlier).
	Format string `json:"format"`
	// Applied lists the log entries applied, in order (one for an old-format log).
	Applied []AppliedEntry `json:"applied"`
	// Sequence is the hive's sequence number after the replay.
	Sequence uint32 `json:"sequence"`
	// BinsSize is the size of the hive bins data after the replay.
	BinsSize uint32 `json:"binsSize"`
}

// AppliedEntry is one applied log entry.
type AppliedEntry struct {
	// Log is the log file's name; Offset the entry's byte offset in it.
	Log    string `json:"log"`
	Offset int64  `json:"offset"`
	// Sequence is the entry's sequence number (new format) or the log's (old format).
	Sequence uint32 `json:"sequence"`
	// Pages and Bytes count the dirty pages written (512-byte sectors for the old format).
	Pages int   `json:"pages"`
	Bytes int64 `json:"bytes"`
}

// String is "SYSTEM.LOG1 entry 205 at 0x200 (3 pages, 12288 bytes)".
func (e AppliedEntry) String() string {
	return fmt.Sprintf("%s entry %d at %#x (%d pages, %d bytes)", e.Log, e.Sequence, e.Offset, e.Pages, e.Bytes)
}

// errLog marks a damaged or unusable log.
var errLog = errors.New("transaction log")

func logErr(name string, format string, args ...any) error {
	return fmt.Errorf("%w %s: %s", errLog, name, fmt.Sprintf(format, args...))
}

// logFile is one read log.
type logFile struct {
	name string
	b    []byte
	typ  uint32
}

// hvle is one valid new-format log entry.
type hvle struct {
	log      *logFile
	off      int64
	size     uint32
	flags    uint32
	seq      uint32
	binsSize uint32
	refs     [][2]uint32 // offset, size
	pages    []byte      // the pages, one after the other
}

// readLog reads a whole log into memory (bounded by maxLogSize).
func readLog(src LogSource) (*logFile, error) {
	if src.Size < logHeader {
		return nil, logErr(src.Name, "%d bytes is shorter than its 512-byte header (an empty log holds nothing to replay)", src.Size)
	}
	if src.Size > maxLogSize {
		return nil, logErr(src.Name, "%d bytes is larger than crashkey reads (%d)", src.Size, maxLogSize)
	}
	b := make([]byte, src.Size)
	n, err := src.R.ReadAt(b, 0)
	if int64(n) < src.Size {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, logErr(src.Name, "read: %v", err)
	}
	if string(b[:4]) != "regf" {
		return nil, logErr(src.Name, `no "regf" base block at its start`)
	}
	lf := &logFile{name: src.Name, b: b, typ: le32(b, 28)}
	switch lf.typ {
	case fileTypeLogNew, fileTypeLogOld, fileTypeLogOld2:
	default:
		return nil, logErr(src.Name, "file type %d is no transaction log (1, 2 or 6)", lf.typ)
	}
	return lf, nil
}

func le32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
func le64(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }

// entries parses a new-format log's entries up to the first one that is not valid. A
// missing signature ends the entries quietly (the rest of the file is unused); any other
// flaw is returned as the reason the entries end there.
func (lf *logFile) entries() ([]hvle, error) {
	var out []hvle
	b := lf.b
	for off := int64(logHeader); off+hvleHeader <= int64(len(b)) && len(out) < maxEntries; {
		e := b[off:]
		if string(e[:4]) != "HvLE" {
			return out, nil
		}
		where := fmt.Sprintf("entry at %#x", off)
		size := le32(e, 4)
		if size < hvleHeader || size%512 != 0 || int64(size) > int64(len(e)) {
			return out, logErr(lf.name, "%s: size %d is not a multiple of 512 within the file's %d bytes", where, size, len(b))
		}
		e = e[:size]
		if got := marvin32(e[:32], logSeed); got != le64(e, 32) {
			return out, logErr(lf.name, "%s: header hash (Hash-2) %#x does not match %#x", where, le64(e, 32), got)
		}
		if got := marvin32(e[hvleHeader:], logSeed); got != le64(e, 24) {
			return out, logErr(lf.name, "%s: data hash (Hash-1) %#x does not match %#x", where, le64(e, 24), got)
		}
		h := hvle{log: lf, off: off, size: size, flags: le32(e, 8), seq: le32(e, 12), binsSize: le32(e, 16)}
		if h.binsSize == 0 || h.binsSize%4096 != 0 {
			return out, logErr(lf.name, "%s: hive bins size %d is not a multiple of 4096", where, h.binsSize)
		}
		count := int64(le32(e, 20))
		pos := hvleHeader + 8*count
		if pos > int64(size) {
			return out, logErr(lf.name, "%s: %d page references do not fit in %d bytes", where, count, size)
		}
		data := int64(0)
		for i := range count {
			po, ps := le32(e, int(hvleHeader+8*i)), le32(e, int(hvleHeader+8*i+4))
			if ps == 0 || ps%512 != 0 || po%512 != 0 || int64(po)+int64(ps) > int64(h.binsSize) {
				return out, logErr(lf.name, "%s: page %d (offset %#x, %d bytes) is not 512-byte aligned within the %d-byte hive bins", where, i+1, po, ps, h.binsSize)
			}
			data += int64(ps)
			h.refs = append(h.refs, [2]uint32{po, ps})
		}
		if pos+data > int64(size) {
			return out, logErr(lf.name, "%s: its pages (%d bytes) run past its end", where, data)
		}
		h.pages = e[pos : pos+data]
		out = append(out, h)
		off += int64(size)
	}
	return out, nil
}

// overlay is the replayed hive: the primary file with 512-byte sectors replaced by log data,
// read through as an io.ReaderAt. It never writes to the primary.
type overlay struct {
	r       io.ReaderAt
	rsize   int64
	size    int64
	sectors map[int64][]byte // by file offset / 512
}

// put places b (a multiple of 512 bytes, at a 512-byte aligned offset) over the primary. The
// sectors keep pointing into b, usually the log's own buffer, so that a replay holds no copy
// of the pages besides the logs themselves.
func (o *overlay) put(off int64, b []byte) {
	for len(b) >= 512 {
		o.sectors[off/512] = b[:512:512]
		off += 512
		b = b[512:]
	}
}

// ReadAt implements io.ReaderAt.
func (o *overlay) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= o.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < o.size {
		sec := off / 512
		in := off % 512
		if s, ok := o.sectors[sec]; ok {
			k := copy(p[n:], s[in:min(512, in+o.size-off)])
			n += k
			off += int64(k)
			continue
		}
		// A run of sectors the logs did not touch: read it from the primary at once.
		end := off + int64(len(p)-n)
		for next := sec + 1; next*512 < end; next++ {
			if _, ok := o.sectors[next]; ok {
				end = next * 512
				break
			}
		}
		end = min(end, o.size)
		chunk := p[n : n+int(end-off)]
		clear(chunk)
		if off < o.rsize {
			want := chunk[:min(int64(len(chunk)), o.rsize-off)]
			got, err := o.r.ReadAt(want, off)
			if got < len(want) {
				if err == nil || errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				return n + got, err
			}
		}
		n += len(chunk)
		off = end
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// replayLogs replays the logs onto the dirty primary in the first size bytes of r. It
// returns the replayed hive as a reader (nil when nothing was applied), what was applied,
// and warnings about logs that could not be used.
func replayLogs(r io.ReaderAt, size int64, logs []LogSource) (io.ReaderAt, int64, *Replay, []string) {
	var warns []string
	base := make([]byte, 4096)
	if n, _ := r.ReadAt(base, 0); n < len(base) {
		return nil, 0, nil, []string{"the primary file's base block cannot be read"}
	}
	var files []*logFile
	var empty []string
	for _, src := range logs {
		if src.Size == 0 {
			empty = append(empty, src.Name) // an unused log: Windows keeps it empty
			continue
		}
		lf, err := readLog(src)
		if err != nil {
			warns = append(warns, err.Error())
			continue
		}
		files = append(files, lf)
	}
	if len(files) == 0 {
		switch {
		case len(warns) > 0:
		case len(empty) > 0:
			warns = append(warns, fmt.Sprintf("the transaction logs are empty (%s): nothing to replay", strings.Join(empty, ", ")))
		default:
			warns = append(warns, "no transaction log (.LOG1, .LOG2) found beside the hive")
		}
		return nil, 0, nil, warns
	}
	// A primary base block with a wrong checksum is recovered from a valid log's copy.
	if baseChecksum(base[:508]) != le32(base, 508) {
		for _, lf := range files {
			if baseChecksum(lf.b[:508]) == le32(lf.b, 508) && le32(lf.b, 4) == le32(lf.b, 8) {
				copy(base, lf.b[:logHeader])
				binary.LittleEndian.PutUint32(base[28:], fileTypePrimary)
				warns = append(warns, fmt.Sprintf("the primary's base block checksum is wrong: its first 512 bytes were taken from %s", lf.name))
				break
			}
		}
	}
	o := &overlay{r: r, rsize: size, size: size, sectors: map[int64][]byte{}}
	rep, w := replayNew(o, base, files)
	warns = append(warns, w...)
	if rep == nil {
		var w []string
		rep, w = replayOld(o, base, files)
		warns = append(warns, w...)
	}
	if rep == nil {
		return nil, 0, nil, warns
	}
	o.size = max(size, hbinStart+int64(rep.BinsSize))
	return o, o.size, rep, warns
}

// replayNew applies the new-format entries that continue the primary's sequence.
func replayNew(o *overlay, base []byte, files []*logFile) (*Replay, []string) {
	var warns []string
	var all []hvle
	var haveNew bool
	for _, lf := range files {
		if lf.typ != fileTypeLogNew {
			continue
		}
		haveNew = true
		es, err := lf.entries()
		if err != nil {
			warns = append(warns, err.Error()+"; its entries from there on are ignored")
		}
		all = append(all, es...)
	}
	if !haveNew {
		return nil, warns
	}
	seq := le32(base, 8)
	rep := &Replay{Format: "HvLE"}
	var cur *logFile
	var last *hvle
	bySeq := map[uint32][]int{}
	for i, e := range all {
		bySeq[e.seq] = append(bySeq[e.seq], i)
	}
	for range len(all) {
		var pick *hvle
		for _, i := range bySeq[seq] {
			e := &all[i]
			if pick == nil || e.log == cur && pick.log != cur {
				pick = e
			}
		}
		if pick == nil {
			break
		}
		pos := int64(0)
		for _, ref := range pick.refs {
			o.put(hbinStart+int64(ref[0]), pick.pages[pos:pos+int64(ref[1])])
			pos += int64(ref[1])
		}
		rep.Applied = append(rep.Applied, AppliedEntry{Log: pick.log.name, Offset: pick.off, Sequence: pick.seq, Pages: len(pick.refs), Bytes: pos})
		cur, last = pick.log, pick
		seq++
	}
	if last == nil {
		var seqs []uint32
		for _, e := range all {
			seqs = append(seqs, e.seq)
		}
		sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
		have := "no valid entries"
		if len(seqs) > 0 {
			have = fmt.Sprintf("entries %d to %d", seqs[0], seqs[len(seqs)-1])
		}
		return nil, append(warns, fmt.Sprintf("no log entry continues the primary's sequence number %d (the logs hold %s)", le32(base, 8), have))
	}
	b := append([]byte(nil), base...)
	binary.LittleEndian.PutUint32(b[4:], last.seq)
	binary.LittleEndian.PutUint32(b[8:], last.seq)
	binary.LittleEndian.PutUint32(b[28:], fileTypePrimary)
	binary.LittleEndian.PutUint32(b[40:], last.binsSize)
	binary.LittleEndian.PutUint32(b[144:], last.flags)
	binary.LittleEndian.PutUint32(b[508:], baseChecksum(b[:508]))
	o.put(0, b)
	rep.Sequence, rep.BinsSize = last.seq, last.binsSize
	return rep, warns
}

// replayOld applies the newest valid old-format log whose timestamp matches the primary's.
func replayOld(o *overlay, base []byte, files []*logFile) (*Replay, []string) {
	var warns []string
	var best *logFile
	for _, lf := range files {
		if lf.typ == fileTypeLogNew {
			continue
		}
		b := lf.b
		switch {
		case baseChecksum(b[:508]) != le32(b, 508):
			warns = append(warns, logErr(lf.name, "its base block checksum is wrong").Error())
		case le32(b, 4) != le32(b, 8):
			warns = append(warns, logErr(lf.name, "it was not written completely (sequence numbers %d and %d)", le32(b, 4), le32(b, 8)).Error())
		case le64(b, 12) != le64(base, 12):
			warns = append(warns, logErr(lf.name, "its timestamp differs from the primary's: it belongs to another write").Error())
		case best == nil || le32(b, 4) > le32(best.b, 4):
			best = lf
		}
	}
	if best == nil {
		return nil, warns
	}
	b := best.b
	binsSize := le32(b, 40)
	if binsSize == 0 || binsSize%512 != 0 || int64(binsSize) > MaxHiveSize {
		return nil, append(warns, logErr(best.name, "hive bins size %d in its base block is not a multiple of 512", binsSize).Error())
	}
	sector := int64(512)
	if cf := le32(b, 44); cf > 1 && cf <= 8 && int64(cf)*512+4 <= int64(len(b)) && string(b[cf*512:cf*512+4]) == "DIRT" {
		sector = int64(cf) * 512
	}
	if sector+4 > int64(len(b)) || string(b[sector:sector+4]) != "DIRT" {
		return nil, append(warns, logErr(best.name, `no "DIRT" dirty vector in its second sector`).Error())
	}
	bits := int64(binsSize / 512)
	vec := sector + 4
	if vec+(bits+7)/8 > int64(len(b)) {
		return nil, append(warns, logErr(best.name, "its dirty vector (%d bits) runs past its end", bits).Error())
	}
	pages := (vec + (bits+7)/8 + sector - 1) / sector * sector
	var dirty []int64
	room := (int64(len(b)) - pages) / 512
	for i := int64(0); i < bits && int64(len(dirty)) <= room; i++ {
		if i%8 == 0 && b[vec+i/8] == 0 {
			i += 7
			continue
		}
		if b[vec+i/8]&(1<<(i%8)) != 0 {
			dirty = append(dirty, i)
		}
	}
	if pages+int64(len(dirty))*512 > int64(len(b)) {
		return nil, append(warns, logErr(best.name, "%d dirty pages are marked but the file holds only %d", len(dirty), max(0, (int64(len(b))-pages)/512)).Error())
	}
	// Check the dirty hive bin headers before applying anything: a bin whose header is
	// wrong stops the recovery, as in Windows.
	for k, i := range dirty {
		page := b[pages+int64(k)*512:][:512]
		hoff := int64(i) * 512
		primaryBin := false
		if hoff%4096 == 0 {
			hdr := make([]byte, 8)
			if n, _ := o.r.ReadAt(hdr, hbinStart+hoff); n == 8 && string(hdr[:4]) == "hbin" && int64(le32(hdr, 4)) == hoff {
				primaryBin = true
			}
		}
		if string(page[:4]) == "hbin" || primaryBin {
			if string(page[:4]) != "hbin" || int64(le32(page, 4)) != hoff || le32(page, 8) < 4096 || le32(page, 8)%4096 != 0 {
				return nil, append(warns, logErr(best.name, "dirty page %d (hive offset %#x) holds a damaged hive bin header", k+1, hoff).Error())
			}
		}
	}
	for k, i := range dirty {
		o.put(hbinStart+i*512, b[pages+int64(k)*512:][:512])
	}
	nb := append([]byte(nil), base...)
	copy(nb, b[:logHeader])
	binary.LittleEndian.PutUint32(nb[28:], fileTypePrimary)
	binary.LittleEndian.PutUint32(nb[508:], baseChecksum(nb[:508]))
	o.put(0, nb)
	rep := &Replay{Format: "DIRT", Sequence: le32(b, 4), BinsSize: binsSize,
		Applied: []AppliedEntry{{Log: best.name, Offset: pages, Sequence: le32(b, 4), Pages: len(dirty), Bytes: int64(len(dirty)) * 512}}}
	return rep, warns
}

// openReplayed opens the hive in the first size bytes of r; when it is dirty, it replays
// the logs first (in memory) and describes that in the hive's info.
func openReplayed(r io.ReaderAt, size int64, logs []LogSource) (*hive, error) {
	h, err := openHive(r, size)
	if err != nil || !h.info.Dirty && h.info.ChecksumOK {
		return h, err
	}
	rr, rsize, rep, warns := replayLogs(r, size, logs)
	if rep == nil {
		h.info.LogWarnings = warns
		return h, nil
	}
	h2, err := openHive(rr, rsize)
	if err != nil {
		h.info.LogWarnings = append(warns, fmt.Sprintf("the replayed hive cannot be read (%v): using the primary file as it is", err))
		return h, nil
	}
	orig := h.info
	h2.info.Size = orig.Size
	h2.info.Sequence1, h2.info.Sequence2, h2.info.Dirty = orig.Sequence1, orig.Sequence2, orig.Dirty
	h2.info.ChecksumOK = orig.ChecksumOK
	h2.info.Replay = rep
	h2.info.LogWarnings = warns
	return h2, nil
}
