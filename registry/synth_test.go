package registry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"unicode/utf16"
)

// synthHive builds regf hives cell by cell, for the layouts that Debian's hivex does not
// write but Windows does: big-data ("db") values longer than 16344 bytes, "ri" index roots,
// "li" lists, and UTF-16 (uncompressed) key names.
type synthHive struct {
	bins []byte // the hive bins data; offsets are relative to its start (file offset 0x1000)
}

func newSynthHive() *synthHive {
	b := make([]byte, 0x20, 1<<16)
	copy(b, "hbin")
	return &synthHive{bins: b}
}

// cell appends an allocated cell holding payload and returns its offset.
func (h *synthHive) cell(payload []byte) uint32 {
	off := uint32(len(h.bins))
	size := (4 + len(payload) + 7) &^ 7
	c := make([]byte, size)
	binary.LittleEndian.PutUint32(c, uint32(-int32(size)))
	copy(c[4:], payload)
	h.bins = append(h.bins, c...)
	return off
}

// nk appends a key node. utf16Name stores the name uncompressed.
func (h *synthHive) nk(name string, utf16Name bool, subkeys uint32, nsub int, values uint32, nval int) uint32 {
	p := make([]byte, 76)
	copy(p, "nk")
	flags := uint16(0x20)
	nameBytes := []byte(name)
	if utf16Name {
		flags = 0
		nameBytes = nil
		for _, u := range utf16.Encode([]rune(name)) {
			nameBytes = binary.LittleEndian.AppendUint16(nameBytes, u)
		}
	}
	binary.LittleEndian.PutUint16(p[2:], flags)
	binary.LittleEndian.PutUint32(p[20:], uint32(nsub))
	binary.LittleEndian.PutUint32(p[28:], subkeys)
	binary.LittleEndian.PutUint32(p[32:], 0xffffffff)
	binary.LittleEndian.PutUint32(p[36:], uint32(nval))
	binary.LittleEndian.PutUint32(p[40:], values)
	binary.LittleEndian.PutUint32(p[44:], 0xffffffff)
	binary.LittleEndian.PutUint32(p[48:], 0xffffffff)
	binary.LittleEndian.PutUint16(p[72:], uint16(len(nameBytes)))
	return h.cell(append(p, nameBytes...))
}

// list appends a subkey list: "lf"/"lh" entries are (offset, hash), "li"/"ri" offsets only.
func (h *synthHive) list(sig string, offs ...uint32) uint32 {
	p := []byte(sig)
	p = binary.LittleEndian.AppendUint16(p, uint16(len(offs)))
	for _, o := range offs {
		p = binary.LittleEndian.AppendUint32(p, o)
		if sig == "lf" || sig == "lh" {
			p = binary.LittleEndian.AppendUint32(p, 0)
		}
	}
	return h.cell(p)
}

// valueList appends a value list cell.
func (h *synthHive) valueList(offs ...uint32) uint32 {
	var p []byte
	for _, o := range offs {
		p = binary.LittleEndian.AppendUint32(p, o)
	}
	return h.cell(p)
}

// vk appends a value; data longer than 16344 bytes goes into a big-data record.
func (h *synthHive) vk(name string, typ uint32, data []byte) uint32 {
	p := make([]byte, 20)
	copy(p, "vk")
	binary.LittleEndian.PutUint16(p[2:], uint16(len(name)))
	binary.LittleEndian.PutUint32(p[4:], uint32(len(data)))
	switch {
	case len(data) <= 4:
		binary.LittleEndian.PutUint32(p[4:], uint32(len(data))|0x80000000)
		copy(p[8:12], data)
	case len(data) > bigDataThreshold:
		var segs []uint32
		for rest := data; len(rest) > 0; {
			n := min(len(rest), bigDataThreshold)
			segs = append(segs, h.cell(rest[:n]))
			rest = rest[n:]
		}
		list := h.valueList(segs...)
		db := []byte("db")
		db = binary.LittleEndian.AppendUint16(db, uint16(len(segs)))
		db = binary.LittleEndian.AppendUint32(db, list)
		binary.LittleEndian.PutUint32(p[8:], h.cell(db))
	default:
		binary.LittleEndian.PutUint32(p[8:], h.cell(data))
	}
	binary.LittleEndian.PutUint32(p[12:], typ)
	binary.LittleEndian.PutUint16(p[16:], 1) // compressed (ASCII) name
	return h.cell(append(p, name...))
}

// file returns the hive file: base block, then the bins padded to 4 KiB.
func (h *synthHive) file(root uint32) []byte {
	for len(h.bins)%4096 != 0 {
		h.bins = append(h.bins, 0)
	}
	binary.LittleEndian.PutUint32(h.bins[8:], uint32(len(h.bins)))
	base := make([]byte, hbinStart)
	copy(base, "regf")
	binary.LittleEndian.PutUint32(base[4:], 1)
	binary.LittleEndian.PutUint32(base[8:], 1)
	binary.LittleEndian.PutUint32(base[20:], 1)
	binary.LittleEndian.PutUint32(base[24:], 5)
	binary.LittleEndian.PutUint32(base[32:], 1)
	binary.LittleEndian.PutUint32(base[36:], root)
	binary.LittleEndian.PutUint32(base[40:], uint32(len(h.bins)))
	binary.LittleEndian.PutUint32(base[508:], baseChecksum(base[:508]))
	return append(base, h.bins...)
}

func dword(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }

func utf16z(items ...string) []byte {
	var b []byte
	for _, s := range items {
		for _, u := range utf16.Encode([]rune(s)) {
			b = binary.LittleEndian.AppendUint16(b, u)
		}
		b = append(b, 0, 0)
	}
	return b
}

// synthSystem is a SYSTEM hive whose root lists its keys through an "ri" index of "li"
// lists, whose Services key has a UTF-16 name, and whose PagingFiles is a big-data value.
func synthSystem(paging []string) []byte {
	h := newSynthHive()
	multi := append(utf16z(paging...), 0, 0)
	mm := h.nk("Memory Management", false, 0xffffffff, 0, h.valueList(h.vk("PagingFiles", regMultiSZ, multi)), 1)
	sm := h.nk("Session Manager", false, h.list("lh", mm), 1, 0xffffffff, 0)
	cc := h.nk("CrashControl", false, 0xffffffff, 0, h.valueList(h.vk("CrashDumpEnabled", regDWORD, dword(2)),
		h.vk("DumpFile", regExpandSZ, utf16z(`%SystemRoot%\MEMORY.DMP`))), 2)
	po := h.nk("ProductOptions", false, 0xffffffff, 0, h.valueList(h.vk("ProductType", regSZ, utf16z("ServerNT"))), 1)
	control := h.nk("Control", false, h.list("lf", cc, po, sm), 3, 0xffffffff, 0)
	params := h.nk("Parameters", false, 0xffffffff, 0, h.valueList(h.vk("CrashOnCtrlScroll", regDWORD, dword(1))), 1)
	i8042 := h.nk("i8042prt", false, h.list("lf", params), 1, 0xffffffff, 0)
	services := h.nk("Services", true, h.list("li", i8042), 1, 0xffffffff, 0)
	cs := h.nk("ControlSet001", false, h.list("lh", control, services), 2, 0xffffffff, 0)
	sel := h.nk("Select", false, 0xffffffff, 0, h.valueList(h.vk("Current", regDWORD, dword(1))), 1)
	ri := h.list("ri", h.list("li", cs), h.list("li", sel))
	root := h.nk("ROOT", false, ri, 2, 0xffffffff, 0)
	return h.file(root)
}

func TestSynthHive(t *testing.T) {
	var paging []string
	for i := range 700 {
		paging = append(paging, `C:\pagefile`+strings.Repeat("x", i%7)+`.sys 1024 2048`)
	}
	b := synthSystem(paging)
	s, err := ReadHive(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(s.PagingFiles, paging) {
		t.Errorf("big-data PagingFiles: %d entries, want %d", len(s.PagingFiles), len(paging))
	}
	if s.ProductType != "ServerNT" || !eqU32(s.CrashControl.CrashDumpEnabled, u32(2)) || !eqU32(s.Driver("i8042prt").CrashOnCtrlScroll, u32(1)) {
		t.Errorf("settings = %+v", s)
	}
	if s.CrashControl.DumpFile == nil || *s.CrashControl.DumpFile != `%SystemRoot%\MEMORY.DMP` {
		t.Errorf("DumpFile = %v", s.CrashControl.DumpFile)
	}

	// A big-data value whose segments hold less than its length is corrupt.
	h := newSynthHive()
	v := h.vk("PagingFiles", regMultiSZ, make([]byte, 20000))
	vl := h.valueList(v)
	bins := h.bins
	binary.LittleEndian.PutUint32(bins[v+4+4:], 40000) // claim twice the data
	k := &synthHive{bins: bins}
	root := k.nk("R", false, 0xffffffff, 0, vl, 1)
	hb := k.file(root)
	hv, err := openHive(bytes.NewReader(hb), int64(len(hb)))
	if err != nil {
		t.Fatal(err)
	}
	rk, err := hv.root()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rk.Value("PagingFiles"); !errors.Is(err, ErrCorruptHive) || !strings.Contains(err.Error(), "value \\PagingFiles: big-data segments hold 20004 of 40000 bytes") {
		t.Errorf("short big data: %v", err)
	}
}

// TestIndexLoop: an ri index that lists itself is refused, not followed forever.
func TestIndexLoop(t *testing.T) {
	h := newSynthHive()
	off := uint32(len(h.bins))
	ri := h.list("ri", off) // the entry points at the ri cell itself
	root := h.nk("R", false, ri, 1, 0xffffffff, 0)
	b := h.file(root)
	_, err := ReadHive(bytes.NewReader(b), int64(len(b)))
	if !errors.Is(err, ErrCorruptHive) || !strings.Contains(err.Error(), "nests an ri index") {
		t.Fatalf("err = %v", err)
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
