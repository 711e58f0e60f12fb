package analyze

import (
	"encoding/binary"
	"fmt"
	"strings"
)

// Identity is what a module's PE header in memory says about it: enough to fetch its
// symbols from a symbol server.
type Identity struct {
	// TimeDateStamp and SizeOfImage come from the PE headers; together they also form the
	// binary's own symbol-server key (name/TIMESTAMPSIZEOFIMAGE/name).
	TimeDateStamp uint32 `json:"timestamp"`
	SizeOfImage   uint32 `json:"size_of_image"`
	// PDB, GUID and Age come from the CodeView (RSDS) debug record; empty when absent.
	PDB  string `json:"pdb,omitempty"`
	GUID string `json:"guid,omitempty"` // "1B2F9E6C-…" as debuggers print it
	Age  uint32 `json:"age,omitempty"`
	// guidKey is the GUID as a symbol-server key (32 upper-case hex digits).
	guidKey string
}

// SymbolPath returns the symbol-server path of the module's PDB, pdbname/GUIDAGE/pdbname
// (for example ntkrnlmp.pdb/3844DBB920174967BE7AA4A2C20430FA1/ntkrnlmp.pdb), or "".
func (id *Identity) SymbolPath() string {
	if id == nil || id.PDB == "" || id.guidKey == "" {
		return ""
	}
	name := id.PDB
	if i := strings.LastIndexAny(name, `\/`); i >= 0 {
		name = name[i+1:]
	}
	return fmt.Sprintf("%s/%s%X/%s", name, id.guidKey, id.Age, name)
}

// virtReader reads virtual memory: a Space for full dumps, the data blocks of a triage dump.
type virtReader interface {
	ReadVirtual(p []byte, va uint64) (int, error)
}

// PE layout (Microsoft PE/COFF specification): e_lfanew at 0x3C of the DOS header; "PE\0\0";
// the COFF file header (20 bytes, TimeDateStamp at +4 after the signature's 4 bytes); the
// optional header with Magic 0x10B (PE32) or 0x20B (PE32+), SizeOfImage at +56 and the data
// directories at +96 (PE32) or +112 (PE32+); the debug directory is entry 6; each
// IMAGE_DEBUG_DIRECTORY is 28 bytes with Type at +12 (2 = CodeView), SizeOfData at +16 and
// AddressOfRawData (an RVA) at +20; a CodeView record "RSDS" has the GUID at +4, the age at
// +20 and the NUL-terminated PDB path at +24.
const (
	peHeaderRead   = 0x1000
	maxDebugDirs   = 16
	maxCodeView    = 24 + 520
	imageDebugType = 2
)

// readIdentity reads the PE header of the image at base. It returns what it could read and
// an error for the first part it could not.
func readIdentity(m virtReader, base uint64) (*Identity, error) {
	hdr := make([]byte, peHeaderRead)
	n, err := m.ReadVirtual(hdr, base)
	if n < 0x40 {
		if err == nil {
			err = fmt.Errorf("short read")
		}
		return nil, fmt.Errorf("PE header at 0x%X: %w", base, err)
	}
	hdr = hdr[:n]
	le := binary.LittleEndian
	if string(hdr[:2]) != "MZ" {
		return nil, fmt.Errorf("no MZ header at 0x%X", base)
	}
	lfa := uint64(le.Uint32(hdr[0x3C:]))
	if lfa+24+2 > uint64(len(hdr)) {
		return nil, fmt.Errorf("PE header at 0x%X: e_lfanew 0x%X is outside the first page", base, lfa)
	}
	if string(hdr[lfa:lfa+4]) != "PE\x00\x00" {
		return nil, fmt.Errorf("no PE signature at 0x%X+0x%X", base, lfa)
	}
	coff := hdr[lfa+4:]
	id := &Identity{TimeDateStamp: le.Uint32(coff[4:])}
	opt := lfa + 24
	optSize := uint64(le.Uint16(coff[16:]))
	magic := le.Uint16(hdr[opt:])
	var dirs uint64
	switch magic {
	case 0x10B:
		dirs = opt + 96
	case 0x20B:
		dirs = opt + 112
	default:
		return id, fmt.Errorf("PE optional header magic 0x%X at 0x%X is neither PE32 nor PE32+", magic, base)
	}
	if opt+60 > uint64(len(hdr)) {
		return id, fmt.Errorf("PE optional header at 0x%X is cut", base)
	}
	id.SizeOfImage = le.Uint32(hdr[opt+56:])
	dbg := dirs + 6*8
	if dbg+8 > uint64(len(hdr)) || dbg+8 > opt+optSize {
		return id, nil // no debug directory
	}
	rva, size := uint64(le.Uint32(hdr[dbg:])), uint64(le.Uint32(hdr[dbg+4:]))
	if rva == 0 || size < 28 {
		return id, nil
	}
	count := min(size/28, maxDebugDirs)
	dd := make([]byte, count*28)
	if n, err := m.ReadVirtual(dd, base+rva); n < len(dd) {
		return id, fmt.Errorf("debug directory at 0x%X: %w", base+rva, err)
	}
	for i := uint64(0); i < count; i++ {
		e := dd[i*28:]
		if le.Uint32(e[12:]) != imageDebugType {
			continue
		}
		cvSize := min(uint64(le.Uint32(e[16:])), maxCodeView)
		cvRVA := uint64(le.Uint32(e[20:]))
		if cvSize < 25 || cvRVA == 0 {
			continue
		}
		cv := make([]byte, cvSize)
		if n, err := m.ReadVirtual(cv, base+cvRVA); n < len(cv) {
			return id, fmt.Errorf("CodeView record at 0x%X: %w", base+cvRVA, err)
		}
		if string(cv[:4]) != "RSDS" {
			continue
		}
		g := cv[4:20]
		d1, d2, d3 := le.Uint32(g), le.Uint16(g[4:]), le.Uint16(g[6:])
		id.GUID = fmt.Sprintf("%08X-%04X-%04X-%X-%X", d1, d2, d3, g[8:10], g[10:16])
		id.guidKey = fmt.Sprintf("%08X%04X%04X%X", d1, d2, d3, g[8:16])
		id.Age = le.Uint32(cv[20:])
		name := cv[24:]
		if i := strings.IndexByte(string(name), 0); i >= 0 {
			name = name[:i]
		}
		id.PDB = string(name) // exact; printed through termsafe
		return id, nil
	}
	return id, nil
}
