package analyze

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/dump"
)

// triageSpec describes a hand-built triage dump.
type triageSpec struct {
	is64     bool
	machine  uint32
	bugcheck uint32
	params   [4]uint64
	ip       uint64
	stack    []uint64 // words of the saved stack
	broken   int      // index+1 of the driver BrokenDriverOffset names; 0 for none
	peBlock  bool     // save mydriver.sys's PE header as a data block (64-bit only)
}

var triageDrivers = []struct {
	name       string
	base       uint64
	size       uint32
	stamp, sum uint32
}{
	{"ntoskrnl.exe", 0xFFFFF80312000000, 0x1046000, 0x5F8A1C2B, 0xA51B4C},
	{"hal.dll", 0xFFFFF80311000000, 0x6000, 0x11111111, 0x1234},
	{"mydriver.sys", 0xFFFFF80320000000, 0x8000, 0x65000001, 0x9ABC},
	{"i8042prt.sys", 0xFFFFF80330000000, 0x20000, 0x22222222, 0x4321},
}

func low32(v uint64, is64 bool) uint64 {
	if is64 {
		return v
	}
	return v & 0xFFFFFFFF
}

// buildTriage writes a triage dump at the offsets of ntiodump.h's TRIAGE_DUMP32/64 and
// dump-format.md §10.3: triage header after the main header, Mm information, unloaded
// drivers, KPRCB, EPROCESS, ETHREAD, call stack, driver list (DUMP_DRIVER_ENTRY 0x90/0x54
// bytes), string pool (DUMP_STRING), data blocks, "TRGD" at ValidOffset.
func buildTriage(s triageSpec) []byte {
	le := binary.LittleEndian
	hs, stride, w := 0x1000, 0x54, 4
	if s.is64 {
		hs, stride, w = 0x2000, 0x90, 8
	}
	size := hs + 0x4000
	b := bytes.Repeat([]byte("PAGE"), size/4)
	put := func(off int, v uint64) {
		if w == 8 {
			le.PutUint64(b[off:], v)
		} else {
			le.PutUint32(b[off:], uint32(v))
		}
	}
	ctx := 0x320
	if s.is64 {
		copy(b, "PAGEDU64")
		le.PutUint32(b[0x30:], s.machine)
		le.PutUint32(b[0x38:], s.bugcheck)
		for i, p := range s.params {
			le.PutUint64(b[0x40+8*i:], p)
		}
		le.PutUint32(b[0xF98:], 4)
		ctx = 0x348
		clear(b[ctx : ctx+0x4D0])
		if s.machine == dump.MachineARM64 {
			le.PutUint64(b[ctx+0x108:], s.ip)
			le.PutUint64(b[ctx+0x100:], 0xFFFFF80000001000)
		} else {
			le.PutUint64(b[ctx+0xF8:], s.ip)
			le.PutUint64(b[ctx+0x98:], 0xFFFFF80000001000)
		}
	} else {
		copy(b, "PAGEDUMP")
		le.PutUint32(b[0x20:], s.machine)
		le.PutUint32(b[0x28:], s.bugcheck)
		for i, p := range s.params {
			le.PutUint32(b[0x2C+4*i:], uint32(p))
		}
		le.PutUint32(b[0xF88:], 4)
		clear(b[ctx : ctx+0x2CC])
		le.PutUint32(b[ctx+0xB8:], uint32(s.ip))
		le.PutUint32(b[ctx+0xC4:], 0x80001000)
	}
	t := hs
	const (
		mm, unl, prcb, proc, thr = 0x80, 0xD0, 0x200, 0x600, 0x800
		stack, stackSize         = 0x1000, 0x400
		list                     = 0x1800
		blocks, blockData        = 0x2C00, 0x3000
	)
	pool := list + len(triageDrivers)*stride
	fields := []uint32{0, uint32(size), uint32(size - 4), uint32(ctx), uint32(ctx + 0xBB8), uint32(hs + mm), uint32(hs + unl), uint32(hs + prcb),
		uint32(hs + proc), uint32(hs + thr), uint32(hs + stack), stackSize, uint32(hs + list), uint32(len(triageDrivers)), uint32(hs + pool), 0x300, 0, 0xFFFFFFFF}
	if !s.is64 {
		fields[4] = 0x7D0
	} else {
		fields[4] = 0xF00
	}
	for i, v := range fields {
		le.PutUint32(b[t+4*i:], v)
	}
	if s.broken > 0 {
		le.PutUint32(b[t+0x40:], uint32(hs+list+(s.broken-1)*stride))
	}
	clear(b[t+0x48 : t+0x80])
	put(t+0x48, low32(0xFFFFF80000001000, s.is64)) // TopOfStack
	// Unloaded drivers: a count, then DUMP_UNLOADED_DRIVERS entries.
	unloaded := []string{"oldflt.sys", "averyveryverylongname.sys"}
	if s.is64 {
		le.PutUint64(b[hs+unl:], uint64(len(unloaded)))
	} else {
		le.PutUint32(b[hs+unl:], uint32(len(unloaded)))
	}
	for i, n := range unloaded {
		esz, name, start, first := 40, 8, 32, hs+unl+4
		if s.is64 {
			esz, name, start, first = 56, 16, 40, hs+unl+8
		}
		e := first + i*esz
		clear(b[e : e+esz])
		u := utf16le(n)
		le.PutUint16(b[e:], uint16(len(u)))
		copy(b[e+name:e+name+24], u)
		put(e+start, low32(0xFFFFF80340000000+uint64(i)*0x10000, s.is64))
		put(e+start+w, low32(0xFFFFF80340008000+uint64(i)*0x10000, s.is64))
	}
	// Stack.
	clear(b[hs+stack : hs+stack+stackSize])
	for i, v := range s.stack {
		put(hs+stack+i*w, low32(v, s.is64))
	}
	// Driver list and string pool.
	p := pool
	for i, d := range triageDrivers {
		e := list + i*stride
		clear(b[hs+e : hs+e+stride])
		le.PutUint32(b[hs+e:], uint32(hs+p))
		u := utf16le(d.name)
		le.PutUint32(b[hs+p:], uint32(len(u)))
		copy(b[hs+p+4:], append(u, 0, 0))
		p += (4 + len(u) + 2 + 7) &^ 7
		if s.is64 {
			put(hs+e+0x38, d.base)
			put(hs+e+0x40, d.base+0x1000)
			le.PutUint32(b[hs+e+0x48:], d.size)
			le.PutUint32(b[hs+e+0x80:], d.sum)
			le.PutUint32(b[hs+e+0x88:], d.stamp)
		} else {
			put(hs+e+0x1C, low32(d.base, false))
			put(hs+e+0x20, low32(d.base+0x1000, false))
			le.PutUint32(b[hs+e+0x24:], d.size)
			le.PutUint32(b[hs+e+0x44:], d.sum)
			le.PutUint32(b[hs+e+0x4C:], d.stamp)
		}
	}
	if s.peBlock {
		// DataBlocksOffset/Count at 0x78/0x7C (64-bit) or 0x60/0x64 (32-bit).
		tb := map[bool]int{true: 0x78, false: 0x60}[s.is64]
		base := low32(triageDrivers[2].base, s.is64)
		le.PutUint32(b[t+tb:], uint32(hs+blocks))
		le.PutUint32(b[t+tb+4:], 1)
		le.PutUint64(b[hs+blocks:], base)
		le.PutUint32(b[hs+blocks+8:], uint32(hs+blockData))
		le.PutUint32(b[hs+blocks+12:], 0x1000)
		clear(b[hs+blockData : hs+blockData+0x1000])
		mem := physMem{}
		v := &vmem{mem: mem}
		v.add(base, 0, 0x1000)
		writePE(v, testModule{base: base, size: 0x8000, stamp: 0x65000001}, s.is64, `d:\build\mydriver.pdb`)
		copy(b[hs+blockData:], mem[0])
	}
	copy(b[size-4:], "TRGD")
	return b
}

func TestTriageX64StackCulprit(t *testing.T) {
	nt, drv := triageDrivers[0].base, triageDrivers[2].base
	b := buildTriage(triageSpec{is64: true, machine: dump.MachineAMD64, bugcheck: 0x1000007E,
		params: [4]uint64{0xC0000005, nt + 0x100, 0, 0}, ip: nt + 0x3F0,
		stack: []uint64{0x1234, nt + 0x200, 0, drv + 0x1500, nt + 0x300}, peBlock: true})
	res := analyzeBytes(t, b, Options{})
	if res.Source != SourceTriage || len(res.Modules) != 4 {
		t.Fatalf("source %q, %d modules, problems %q", res.Source, len(res.Modules), res.Problems)
	}
	for i, d := range triageDrivers {
		m := res.Modules[i]
		if m.Name != d.name || uint64(m.Base) != d.base || m.Size != d.size || m.TimeDateStamp != d.stamp || m.CheckSum != d.sum {
			t.Errorf("module %d = %+v, want %+v", i, m, d)
		}
	}
	if d := res.Module("mydriver.sys"); d.SymbolPath != "mydriver.pdb/3844DBB920174967BE7AA4A2C20430FA1/mydriver.pdb" || d.PDB != `d:\build\mydriver.pdb` {
		t.Errorf("identity from the data block: %+v", *d)
	}
	if len(res.Unloaded) != 2 || res.Unloaded[0].Name != "oldflt.sys" || res.Unloaded[1].Name != "averyveryver" ||
		uint64(res.Unloaded[1].Start) != 0xFFFFF80340010000 || uint64(res.Unloaded[1].End) != 0xFFFFF80340018000 {
		t.Errorf("unloaded %+v", res.Unloaded)
	}
	if len(res.Stack) != 3 || res.Stack[1].Location() != "mydriver.sys+0x1500" || uint64(*res.Stack[1].StackOffset) != 0x18 {
		t.Fatalf("stack %+v", res.Stack)
	}
	c := res.Culprit
	if c == nil || c.Module != "mydriver.sys" || uint64(*c.Offset) != 0x1500 || !strings.Contains(c.Evidence, "return address on the stack") ||
		!strings.Contains(c.Evidence, "Microsoft's ntoskrnl.exe only") {
		t.Fatalf("culprit %+v", c)
	}
	if ip := res.InstructionPointer; ip == nil || uint64(*ip) != nt+0x3F0 {
		t.Errorf("IP %v", ip)
	}
	names := []string{}
	for _, r := range res.Regions {
		names = append(names, r.Name)
	}
	if !strings.Contains(strings.Join(names, ","), "KPRCB,EPROCESS,ETHREAD,call stack") {
		t.Errorf("regions %v", names)
	}
}

func TestTriageARM64BrokenDriver(t *testing.T) {
	nt := triageDrivers[0].base
	b := buildTriage(triageSpec{is64: true, machine: dump.MachineARM64, bugcheck: 0x1C8, ip: nt + 0x10, broken: 4})
	res := analyzeBytes(t, b, Options{})
	if ip := res.InstructionPointer; ip == nil || uint64(*ip) != nt+0x10 {
		t.Fatalf("ARM64 Pc %v", ip)
	}
	// i8042prt.sys is Microsoft's, ntoskrnl too: the broken driver comes first among them.
	c := res.Culprit
	if c == nil || c.Module != "i8042prt.sys" || !strings.HasPrefix(c.Evidence, "broken driver") {
		t.Fatalf("culprit %+v", c)
	}
}

func TestTriage32(t *testing.T) {
	drv := low32(triageDrivers[2].base, false)
	b := buildTriage(triageSpec{machine: dump.MachineI386, bugcheck: 0xD1, params: [4]uint64{0, 2, 0, drv + 0x44}, ip: drv + 0x44, peBlock: true})
	res := analyzeBytes(t, b, Options{})
	if len(res.Modules) != 4 || res.Modules[2].Name != "mydriver.sys" || uint64(res.Modules[2].Base) != drv || res.Modules[2].TimeDateStamp != 0x65000001 {
		t.Fatalf("modules %+v problems %q", res.Modules, res.Problems)
	}
	if len(res.Unloaded) != 2 || res.Unloaded[0].Name != "oldflt.sys" {
		t.Errorf("unloaded %+v", res.Unloaded)
	}
	if d := res.Modules[2]; d.SymbolPath != "mydriver.pdb/3844DBB920174967BE7AA4A2C20430FA1/mydriver.pdb" || len(res.Problems) != 0 {
		t.Errorf("identity from the 32-bit data block: %+v; problems %q", d, res.Problems)
	}
	if c := res.Culprit; c == nil || c.Module != "mydriver.sys" || uint64(*c.Offset) != 0x44 {
		t.Fatalf("culprit %+v", c)
	}
}

func TestTriageHostileCounts(t *testing.T) {
	b := buildTriage(triageSpec{is64: true, machine: dump.MachineAMD64, bugcheck: 0xE2})
	binary.LittleEndian.PutUint32(b[0x2000+0x34:], 0xFFFFFFFF) // DriverCount
	binary.LittleEndian.PutUint64(b[0x2000+0xD0:], 1<<40)      // unloaded count
	res := analyzeBytes(t, b, Options{})
	if len(res.Modules) != 0 || len(res.Unloaded) != maxUnloaded && len(res.Problems) < 2 {
		t.Fatalf("modules %d unloaded %d problems %q", len(res.Modules), len(res.Unloaded), res.Problems)
	}
	if !strings.Contains(strings.Join(res.Problems, "\n"), "DriverCount 4294967295") {
		t.Errorf("problems %q", res.Problems)
	}
}

// TestTriageStrideMatchesRealDumps checks the DUMP_DRIVER_ENTRY64 size against the triage
// headers of the two public Windows triage dumps (rizinorg/rizin-testbins dmp/triage_x64.dmp
// and dmp/triage_arm64.dmp, values recorded in dump-format.md §10.3; the files themselves
// carry no licence and are not committed): the driver list fills exactly the space before
// the string pool.
func TestTriageStrideMatchesRealDumps(t *testing.T) {
	for _, d := range []struct {
		name                 string
		list, count, strPool uint32
	}{
		{"triage_x64.dmp (build 19041)", 0x10828, 0x97, 0x15D18},
		{"triage_arm64.dmp (build 22000)", 0xDE30, 0xF5, 0x16800},
	} {
		if got := (d.strPool - d.list) / d.count; got != uint32(triage64.stride) || (d.strPool-d.list)%d.count != 0 {
			t.Errorf("%s: %d drivers fill 0x%X bytes: stride 0x%X, crashkey uses 0x%X", d.name, d.count, d.strPool-d.list, got, triage64.stride)
		}
	}
}

// A driver name from the dump is kept exactly in the Result (and so in --json), and printed
// escaped: an ESC sequence or a bidi override in it cannot rewrite the terminal.
func TestTriageHostileNameEscapedInText(t *testing.T) {
	const evil = "evil\x1b[2J\u202esys.exe"
	saved := triageDrivers[2].name
	triageDrivers[2].name = evil
	defer func() { triageDrivers[2].name = saved }()
	drv := triageDrivers[2].base
	b := buildTriage(triageSpec{is64: true, machine: dump.MachineAMD64, bugcheck: 0xD1,
		params: [4]uint64{0, 2, 0, drv + 0x20}, ip: drv + 0x20})
	res := analyzeBytes(t, b, Options{})
	if len(res.Modules) != 4 || res.Modules[2].Name != evil {
		t.Fatalf("modules %+v: the name must be kept exactly", res.Modules)
	}
	if res.Culprit == nil || res.Culprit.Module != evil {
		t.Fatalf("culprit %+v", res.Culprit)
	}
	var text bytes.Buffer
	if err := res.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteModules(&text); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	if strings.ContainsAny(out, "\x1b\u202e") {
		t.Errorf("raw ESC or bidi override printed:\n%q", out)
	}
	if !strings.Contains(out, `evil\x1b[2J\u202esys.exe`) {
		t.Errorf("the escaped name is not shown:\n%s", out)
	}
}
