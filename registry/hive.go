package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf16"

	"www.velocidex.com/golang/regparser"
)

// Errors that callers may test for with errors.Is.
var (
	// ErrNotHive: the data does not start with a registry hive's "regf" base block.
	ErrNotHive = errors.New("not a registry hive")
	// ErrCorruptHive: the hive's cells are damaged (bad offsets, sizes or signatures, loops).
	ErrCorruptHive = errors.New("corrupt registry hive")
	// ErrNotSystemHive: the hive is readable but is not a SYSTEM hive (no Select key or no
	// control set).
	ErrNotSystemHive = errors.New("not a SYSTEM hive")
)

const (
	// hbinStart is the file offset of the first hive bin; cell offsets are relative to it.
	hbinStart = 0x1000
	// MaxHiveSize is the largest hive ReadHive accepts (cell offsets are 32-bit).
	MaxHiveSize = hbinStart + 1<<32
	// maxValueData bounds the data of one value: crashkey reads only small values.
	maxValueData = 1 << 20
	// visitBudget bounds the cells one ReadHive visits, so that a hive whose index cells
	// form loops or claim huge counts cannot keep it busy.
	visitBudget = 1 << 16
	// maxKeyNameBytes bounds a key name: Windows allows 255 characters (510 bytes as UTF-16).
	maxKeyNameBytes = 512
	// bigDataThreshold: values longer than this are stored in a "db" big-data cell (hive
	// version 1.4 and later).
	bigDataThreshold = 16344
)

// Cell signatures, as the little-endian uint16 regparser returns.
const (
	sigNK = 0x6b6e // "nk"
	sigVK = 0x6b76 // "vk"
	sigLF = 0x666c // "lf"
	sigLH = 0x686c // "lh"
	sigLI = 0x696c // "li"
	sigRI = 0x6972 // "ri"
	sigDB = 0x6264 // "db"
)

// Registry value types.
const (
	regSZ       = 1
	regExpandSZ = 2
	regBinary   = 3
	regDWORD    = 4
	regMultiSZ  = 7
	regQWORD    = 11
)

// HiveInfo describes a hive file's base block.
type HiveInfo struct {
	// Size is the hive file's size in bytes.
	Size int64 `json:"size"`
	// Version is the format version, "1.3" … "1.6".
	Version string `json:"version"`
	// Sequence1 and Sequence2 are the primary and secondary sequence numbers. They differ
	// when the hive was not written back completely (a dirty hive).
	Sequence1 uint32 `json:"sequence1"`
	Sequence2 uint32 `json:"sequence2"`
	// Dirty reports Sequence1 != Sequence2: recent changes may exist only in the
	// SYSTEM.LOG1/SYSTEM.LOG2 transaction logs, so what the file says may be stale.
	Dirty bool `json:"dirty"`
	// ChecksumOK reports whether the base block's XOR checksum matches.
	ChecksumOK bool `json:"checksumOK"`
	// Truncated reports a file shorter than the hive bins its base block announces.
	Truncated bool `json:"truncated,omitempty"`
	// LastWritten is the base block's timestamp (UTC), when set.
	LastWritten *time.Time `json:"lastWritten,omitempty"`
	// Replay says which transaction log entries were applied to a dirty hive (in memory);
	// nil when none were. The other fields describe the primary file as found.
	Replay *Replay `json:"replay,omitempty"`
	// LogWarnings say why logs could not be used (damaged, not matching the primary); the
	// primary file was read as it is when Replay is nil.
	LogWarnings []string `json:"logWarnings,omitempty"`
}

// hive is a bounded, read-only walk over a regf file. regparser supplies the base block and
// the cell layouts; the traversal here checks every offset and size against the file before
// following it, because regparser's own helpers trust them (unbounded recursion through
// nested index cells, counts taken from the file).
type hive struct {
	c      *pageCache
	p      *regparser.RegistryProfile
	base   *regparser.HBASE_BLOCK
	end    int64 // file offset just past the last hive bin
	budget int
	info   HiveInfo
	// damage lists the damaged list entries met so far (each once): a reader skips them and
	// goes on, so damage far from the keys it needs costs nothing but a warning.
	damage []Damage
	seen   map[string]bool
}

// Damage is a part of a hive that could not be read.
type Damage struct {
	// Key is the path of the key whose subkey or value list holds the damaged entry ("" for
	// the root key).
	Key string `json:"key"`
	// Item names what preflight could not learn because of it ("kbdhid", "CrashControl", …);
	// empty for damage that preflight does not need to read past.
	Item string `json:"item,omitempty"`
	// Error says what is wrong.
	Error string `json:"error"`
}

// otherDamage is the damage noted while reading that made no item unknown (items lists
// what did).
func (h *hive) otherDamage(items []Damage) []Damage {
	var out []Damage
	for _, d := range h.damage {
		dup := false
		for _, it := range items {
			if strings.Contains(it.Error, d.Error) {
				dup = true
			}
		}
		if !dup {
			out = append(out, d)
		}
	}
	return out
}

// errBudget: the visit budget is spent; every further read fails, so it ends the walk.
var errBudget = errors.New("visit budget spent")

func (h *hive) noteDamage(keyPath, what string, err error) {
	msg := what + ": " + strings.ReplaceAll(err.Error(), ErrCorruptHive.Error()+": ", "")
	id := keyPath + "\x00" + msg
	if h.seen[id] || len(h.damage) >= 64 {
		return
	}
	if h.seen == nil {
		h.seen = map[string]bool{}
	}
	h.seen[id] = true
	h.damage = append(h.damage, Damage{Key: keyPath, Error: msg})
}

// key is one key node of a hive.
type key struct {
	h   *hive
	nk  *regparser.CM_KEY_NODE
	end int64 // end of the nk cell
	// parent is the path of the parent key; "" for the root and its children. root marks
	// the root key itself, whose path is "".
	parent string
	root   bool
}

// Path is the key's path from the root, with backslashes between the names ("ControlSet001\Services").
func (k *key) Path() string {
	switch {
	case k.root:
		return ""
	case k.parent == "":
		return k.Name()
	}
	return k.parent + `\` + k.Name()
}

// value is one value of a key, data included.
type value struct {
	Name string
	Type uint32
	Data []byte
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptHive, fmt.Sprintf(format, args...))
}

// openHive reads the base block of the hive in the first size bytes of r.
func openHive(r io.ReaderAt, size int64) (*hive, error) {
	if size < hbinStart {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the 4096-byte base block", ErrNotHive, size)
	}
	if size > MaxHiveSize {
		return nil, fmt.Errorf("%w: %d bytes is larger than any hive can be (cell offsets are 32-bit)", ErrNotHive, size)
	}
	c := newPageCache(r, size)
	reg, err := regparser.NewRegistry(c)
	if err != nil {
		if c.err != nil {
			return nil, fmt.Errorf("read base block: %w", c.err)
		}
		return nil, fmt.Errorf("%w: no \"regf\" signature at offset 0", ErrNotHive)
	}
	h := &hive{c: c, p: reg.Profile, base: reg.BaseBlock, budget: visitBudget}
	b := reg.BaseBlock
	h.info = HiveInfo{
		Size:      size,
		Version:   fmt.Sprintf("%d.%d", b.Major(), b.Minor()),
		Sequence1: b.Sequence1(),
		Sequence2: b.Sequence2(),
	}
	h.info.Dirty = h.info.Sequence1 != h.info.Sequence2
	if t := filetime(binary.LittleEndian.Uint64(h.read(int64(h.p.Off_HBASE_BLOCK_TimeStamp), 8))); !t.IsZero() {
		h.info.LastWritten = &t
	}
	h.info.ChecksumOK = baseChecksum(h.read(0, 508)) == b.CheckSum()
	if b.Major() != 1 {
		return nil, fmt.Errorf("%w: format version %s (crashkey reads version 1.x)", ErrNotHive, h.info.Version)
	}
	h.end = size
	if l := int64(b.Length()); l > 0 {
		if hbinStart+l > size {
			h.info.Truncated = true
		} else {
			h.end = hbinStart + l
		}
	}
	if c.err != nil {
		return nil, fmt.Errorf("read base block: %w", c.err)
	}
	return h, nil
}

// baseChecksum is the regf base block checksum: the XOR of its first 127 dwords, with 0 and
// 0xFFFFFFFF remapped.
func baseChecksum(b []byte) uint32 {
	var x uint32
	for i := 0; i+4 <= len(b) && i < 508; i += 4 {
		x ^= binary.LittleEndian.Uint32(b[i:])
	}
	switch x {
	case 0xFFFFFFFF:
		return 0xFFFFFFFE
	case 0:
		return 1
	}
	return x
}

// filetime converts a Windows FILETIME to UTC; 0 is the zero time.
func filetime(ft uint64) time.Time {
	if ft == 0 {
		return time.Time{}
	}
	const epochDiff = 11644473600 // seconds from 1601-01-01 to 1970-01-01
	return time.Unix(int64(ft/1e7)-epochDiff, int64(ft%1e7)*100).UTC()
}

// read returns n bytes at off (zero-filled where the file ends).
func (h *hive) read(off int64, n int) []byte {
	b := make([]byte, n)
	got, _ := h.c.ReadAt(b, off)
	clear(b[got:])
	return b
}

func (h *hive) spend() error {
	h.budget--
	if h.budget < 0 {
		return fmt.Errorf("%w: %w: more than %d cells visited: the hive's index cells loop or claim impossible counts", ErrCorruptHive, errBudget, visitBudget)
	}
	return nil
}

// cell returns the file offset and payload size of the allocated cell at hive offset off.
func (h *hive) cell(off uint32) (abs, payload int64, err error) {
	abs = hbinStart + int64(off)
	if off == 0xFFFFFFFF || off%8 != 0 || abs+8 > h.end {
		return 0, 0, corrupt("cell offset %#x is outside the hive bins", off)
	}
	sz := int64(int32(regparser.ParseUint32(h.c, abs)))
	if sz >= 0 {
		return 0, 0, corrupt("cell at %#x is not allocated", off)
	}
	sz = -sz
	if sz < 8 || abs+sz > h.end {
		return 0, 0, corrupt("cell at %#x has an impossible size %d", off, sz)
	}
	if err := h.spend(); err != nil {
		return 0, 0, err
	}
	return abs, sz - 4, nil
}

func (h *hive) sig(abs int64) uint16 { return regparser.ParseUint16(h.c, abs+4) }

// keyAt returns the key node in the cell at hive offset off.
func (h *hive) keyAt(off uint32, parent string) (*key, error) {
	abs, n, err := h.cell(off)
	if err != nil {
		return nil, fmt.Errorf("subkey of %s: %w", showPath(parent), err)
	}
	if h.sig(abs) != sigNK || n < h.p.Off_CM_KEY_NODE__Name {
		return nil, corrupt("subkey of %s: cell at %#x is not a key node", showPath(parent), off)
	}
	k := &key{h: h, nk: h.p.CM_KEY_NODE(h.c, abs+4), end: abs + 4 + n, parent: parent}
	if k.nk.NameLength() > maxKeyNameBytes {
		return nil, corrupt("subkey of %s: key name of %d bytes (Windows allows 255 characters)", showPath(parent), k.nk.NameLength())
	}
	if k.nk.Offset+h.p.Off_CM_KEY_NODE__Name+int64(k.nk.NameLength()) > k.end {
		return nil, corrupt("subkey of %s: key name at %#x runs past its cell", showPath(parent), off)
	}
	return k, nil
}

// root returns the hive's root key. Its path is "" (the hive itself).
func (h *hive) root() (*key, error) {
	k, err := h.keyAt(h.base.RootCell(), "")
	if err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	k.root = true
	return k, nil
}

func entries(n int) string {
	if n == 1 {
		return "1 damaged entry"
	}
	return fmt.Sprintf("%d damaged entries", n)
}

// joinPath is parent\name ("name" under the root).
func joinPath(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + `\` + name
}

func showPath(p string) string {
	if p == "" {
		return `the root key`
	}
	return p
}

// decodeName decodes a key or value name: Latin-1 when compressed, UTF-16LE otherwise.
func decodeName(b []byte, compressed bool) string {
	if compressed {
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r)
	}
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// nameLengthFits reports whether a stored name of n bytes can spell want: one byte per
// character when compressed (Latin-1), two per UTF-16 unit otherwise. It saves reading and
// decoding names that cannot match.
func nameLengthFits(n int64, compressed bool, want string) bool {
	units := int64(len(utf16.Encode([]rune(want))))
	if compressed {
		return n == units
	}
	return n == 2*units
}

// Name is the key's name.
func (k *key) Name() string {
	b := k.h.read(k.nk.Offset+k.h.p.Off_CM_KEY_NODE__Name, int(k.nk.NameLength()))
	return decodeName(b, k.nk.Flags()&0x20 != 0)
}

// LastWrite is the key's last write time (UTC).
func (k *key) LastWrite() time.Time {
	return filetime(regparser.ParseUint64(k.h.c, k.nk.Offset+k.h.p.Off_CM_KEY_NODE_LastWriteTime))
}

// eachSubkey calls fn for every readable subkey until fn returns true. Damaged entries of
// the subkey list are skipped (and noted); damaged is their number.
func (k *key) eachSubkey(fn func(*key) bool) (damaged listDamage, err error) {
	return k.eachSubkeyFor("", fn)
}

// eachSubkeyFor is eachSubkey for a lookup of the subkey named want (or "" for all): a
// damaged entry whose name hint (lf) or name hash (lh) shows it is another key is noted as
// damage but not counted.
func (k *key) eachSubkeyFor(want string, fn func(*key) bool) (damaged listDamage, err error) {
	damaged.want = want
	if regparser.ParseUint32(k.h.c, k.nk.Offset+k.h.p.Off_CM_KEY_NODE_SubKeyCounts) == 0 {
		return damaged, nil
	}
	_, err = k.walkIndex(regparser.ParseUint32(k.h.c, k.nk.Offset+k.h.p.Off_CM_KEY_NODE_SubKeyLists), 0, fn, &damaged)
	return damaged, err
}

// listDamage counts the damaged entries of a list and keeps the first one's description.
type listDamage struct {
	n     int
	first string
	want  string
}

// mayBe reports whether a damaged list entry with this lf name hint or lh hash can be the
// key named d.want.
func (d *listDamage) mayBe(sig uint16, extra uint32) bool {
	if d.want == "" {
		return true
	}
	switch sig {
	case sigLH:
		var h uint32
		for _, c := range utf16.Encode([]rune(strings.ToUpper(d.want))) {
			h = 37*h + uint32(c)
		}
		return h == extra
	case sigLF:
		var hint [4]byte
		binary.LittleEndian.PutUint32(hint[:], extra)
		if hint[0] == 0 {
			return true // a name not in ASCII: no hint
		}
		w := []byte(d.want)
		for i := range 4 {
			var c byte
			if i < len(w) {
				c = w[i]
			}
			if c >= 0x80 {
				return true
			}
			if !strings.EqualFold(string(hint[i]), string(c)) {
				return false
			}
		}
	}
	return true
}

func (d *listDamage) add(what string, err error) {
	if d.n == 0 {
		d.first = what + ": " + strings.ReplaceAll(err.Error(), ErrCorruptHive.Error()+": ", "")
	}
	d.n++
}

// walkIndex walks one subkey list (an ri index holds lists, not keys; it cannot nest). The
// recursion is bounded: depth 1 at most.
func (k *key) walkIndex(off uint32, depth int, fn func(*key) bool, damaged *listDamage) (bool, error) {
	h := k.h
	kp := k.Path()
	abs, n, err := h.cell(off)
	if err != nil {
		return false, fmt.Errorf("subkey list of %s: %w", showPath(kp), err)
	}
	count := int64(regparser.ParseUint16(h.c, abs+6))
	sig := h.sig(abs)
	width := int64(4)
	if sig == sigLF || sig == sigLH {
		width = 8
	}
	if 4+count*width > n {
		return false, corrupt("subkey list of %s claims %d entries in %d bytes", showPath(kp), count, n)
	}
	for i := range count {
		entry := regparser.ParseUint32(h.c, abs+8+i*width)
		switch sig {
		case sigLF, sigLH, sigLI:
			child, err := h.keyAt(entry, kp)
			if errors.Is(err, errBudget) {
				return false, err
			}
			if err != nil {
				what := fmt.Sprintf("subkey entry %d of %d", i+1, count)
				if sig == sigLI || damaged.mayBe(sig, regparser.ParseUint32(h.c, abs+8+i*width+4)) {
					damaged.add(what, err)
				}
				h.noteDamage(kp, what, err)
				continue
			}
			if fn(child) {
				return true, nil
			}
		case sigRI:
			if depth > 0 {
				return false, corrupt("subkey list of %s nests an ri index inside another", showPath(kp))
			}
			stop, err := k.walkIndex(entry, depth+1, fn, damaged)
			if errors.Is(err, errBudget) || stop {
				return stop, err
			}
			if err != nil {
				what := fmt.Sprintf("subkey list %d of %d", i+1, count)
				damaged.add(what, err)
				h.noteDamage(kp, what, err)
			}
		default:
			return false, corrupt("subkey list of %s has signature %#04x, not lf, lh, li or ri", showPath(kp), sig)
		}
	}
	return false, nil
}

// Subkey returns the subkey named name (case-insensitive), or nil when there is none. When
// it is not found but some entries of the subkey list are damaged, it may be one of them:
// that is an error wrapping ErrCorruptHive.
func (k *key) Subkey(name string) (*key, error) {
	var found *key
	damaged, err := k.eachSubkeyFor(name, func(c *key) bool {
		if nameLengthFits(int64(c.nk.NameLength()), c.nk.Flags()&0x20 != 0, name) && strings.EqualFold(c.Name(), name) {
			found = c
			return true
		}
		return false
	})
	if err == nil && found == nil && damaged.n > 0 {
		err = corrupt("%s cannot be read: %s may hold it (%s)", joinPath(k.Path(), name), entries(damaged.n)+" of "+showPath(k.Path())+"'s subkey list", damaged.first)
	}
	return found, err
}

// Subkeys lists the names of the readable subkeys.
func (k *key) Subkeys() ([]string, error) {
	var names []string
	_, err := k.eachSubkey(func(c *key) bool {
		names = append(names, c.Name())
		return false
	})
	return names, err
}

// Open follows a path of subkeys separated by '\'. It returns nil when a key is missing.
func (k *key) Open(path string) (*key, error) {
	cur := k
	for _, part := range strings.Split(path, `\`) {
		if part == "" {
			continue
		}
		next, err := cur.Subkey(part)
		if err != nil || next == nil {
			return nil, err
		}
		cur = next
	}
	return cur, nil
}

// Value returns the value named name (case-insensitive; "" is the default value) with its
// data, or nil when there is none.
func (k *key) Value(name string) (*value, error) {
	h := k.h
	list := k.nk.ValueList()
	count := int64(list.Count())
	if count == 0 {
		return nil, nil
	}
	abs, n, err := h.cell(list.List())
	if err != nil {
		return nil, fmt.Errorf("value list of %s: %w", showPath(k.Path()), err)
	}
	if count*4 > n {
		return nil, corrupt("value list of %s claims %d values in %d bytes", showPath(k.Path()), count, n)
	}
	var damaged listDamage
	skip := func(i int64, err error) {
		what := fmt.Sprintf("value entry %d of %d", i+1, count)
		damaged.add(what, err)
		h.noteDamage(k.Path(), what, err)
	}
	for i := range count {
		off := regparser.ParseUint32(h.c, abs+4+4*i)
		vabs, vn, err := h.cell(off)
		if errors.Is(err, errBudget) {
			return nil, err
		}
		if err != nil {
			skip(i, err)
			continue
		}
		if h.sig(vabs) != sigVK || vn < h.p.Off_CM_KEY_VALUE_Name {
			skip(i, corrupt("cell at %#x is not a value", off))
			continue
		}
		vk := h.p.CM_KEY_VALUE(h.c, vabs+4)
		nl := int64(vk.NameLength())
		if vk.Offset+h.p.Off_CM_KEY_VALUE_Name+nl > vabs+4+vn {
			skip(i, corrupt("name at %#x runs past its cell", off))
			continue
		}
		if !nameLengthFits(nl, vk.Flags()&1 != 0, name) {
			continue
		}
		vname := decodeName(h.read(vk.Offset+h.p.Off_CM_KEY_VALUE_Name, int(nl)), vk.Flags()&1 != 0)
		if !strings.EqualFold(vname, name) {
			continue
		}
		data, err := k.valueData(vk, vname)
		if err != nil {
			return nil, err
		}
		return &value{Name: vname, Type: vk.Type(), Data: data}, nil
	}
	if damaged.n > 0 {
		return nil, corrupt("value %s cannot be read: %s may hold it (%s)", joinPath(k.Path(), name), entries(damaged.n)+" of the key's value list", damaged.first)
	}
	return nil, nil
}

func (k *key) valueData(vk *regparser.CM_KEY_VALUE, name string) ([]byte, error) {
	h := k.h
	where := k.Path() + `\` + name
	dl := vk.DataLength()
	if dl&0x80000000 != 0 {
		dl &^= 0x80000000
		if dl > 4 {
			return nil, corrupt("value %s: inline data of %d bytes (at most 4 fit)", where, dl)
		}
		return h.read(vk.Offset+h.p.Off_CM_KEY_VALUE_Data, int(dl)), nil
	}
	if dl == 0 {
		return nil, nil
	}
	if dl > maxValueData {
		return nil, corrupt("value %s claims %d bytes of data (crashkey reads at most %d)", where, dl, maxValueData)
	}
	abs, n, err := h.cell(vk.Data())
	if err != nil {
		return nil, fmt.Errorf("value %s: %w", where, err)
	}
	if dl > bigDataThreshold && h.sig(abs) == sigDB {
		segs := int64(regparser.ParseUint16(h.c, abs+6))
		labs, ln, err := h.cell(regparser.ParseUint32(h.c, abs+8))
		if err != nil {
			return nil, fmt.Errorf("value %s: segment list: %w", where, err)
		}
		if segs*4 > ln {
			return nil, corrupt("value %s: segment list claims %d segments in %d bytes", where, segs, ln)
		}
		out := make([]byte, 0, dl)
		for i := int64(0); i < segs && uint32(len(out)) < dl; i++ {
			sabs, sn, err := h.cell(regparser.ParseUint32(h.c, labs+4+4*i))
			if err != nil {
				return nil, fmt.Errorf("value %s: segment %d: %w", where, i, err)
			}
			take := min(sn, int64(dl)-int64(len(out)), bigDataThreshold)
			out = append(out, h.read(sabs+4, int(take))...)
		}
		if uint32(len(out)) < dl {
			return nil, corrupt("value %s: big-data segments hold %d of %d bytes", where, len(out), dl)
		}
		return out, nil
	}
	if int64(dl) > n {
		return nil, corrupt("value %s: %d bytes of data in a %d-byte cell", where, dl, n)
	}
	return h.read(abs+4, int(dl)), nil
}

// typeName names a registry value type.
func typeName(t uint32) string { return regparser.RegTypeToString(t) }

// utf16String decodes REG_SZ/REG_EXPAND_SZ data up to the first NUL.
func utf16String(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
		if u[i] == 0 {
			u = u[:i]
			break
		}
	}
	return string(utf16.Decode(u))
}

// multiString decodes REG_MULTI_SZ data: strings separated by NULs, ended by an empty one (a
// missing final terminator is tolerated).
func multiString(b []byte) []string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	var out []string
	start := 0
	for i := 0; i <= len(u); i++ {
		if i < len(u) && u[i] != 0 {
			continue
		}
		if i == start {
			break
		}
		out = append(out, string(utf16.Decode(u[start:i])))
		start = i + 1
	}
	return out
}
