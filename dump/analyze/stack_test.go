package analyze

import (
	"bytes"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/internal/golden"
)

// fullStackDump is a manual crash (0xE2, no code address among the parameters) whose
// instruction pointer is in ntoskrnl.exe and whose stack, 0x20 bytes above the stack pointer,
// holds a return address into mydriver.sys.
func fullStackDump(s *scene) []byte {
	sp := s.head + 0x3F00 // the stack runs over the end of the mapped data: the scan stops there
	s.v.put64(sp+0x08, s.ntos+0x2000)
	s.v.put64(sp+0x20, s.drv+0x500)
	return buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head,
		bugcheck: 0xE2, ip: s.ntos + 0x1F0, sp: sp}, s.mem)
}

func TestFullDumpStackScan(t *testing.T) {
	s := x64Scene(4, 0xFFFFF80000000000)
	res := analyzeBytes(t, fullStackDump(s), Options{})
	if len(res.Stack) != 2 || res.Stack[1].Location() != "mydriver.sys+0x500" || uint64(*res.Stack[1].StackOffset) != 0x20 {
		t.Fatalf("stack %+v (problems %q)", res.Stack, res.Problems)
	}
	c := res.Culprit
	if c == nil || c.Module != "mydriver.sys" || !strings.Contains(c.Evidence, "return address on the stack (at stack offset 0x20)") {
		t.Fatalf("culprit %+v", c)
	}
}

// TestTextGolden pins the analysis text and the module table (with symbol-server paths).
func TestTextGolden(t *testing.T) {
	s := x64Scene(4, 0xFFFFF80000000000)
	res := analyzeBytes(t, fullStackDump(s), Options{})
	var b bytes.Buffer
	if err := res.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if err := res.WriteModules(&b); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/x64-stack.golden", b.Bytes())

	b.Reset()
	tri := analyzeBytes(t, buildTriage(triageSpec{is64: true, machine: dump.MachineAMD64, bugcheck: 0x1000007E,
		params: [4]uint64{0xC0000005, triageDrivers[0].base + 0x100}, ip: triageDrivers[0].base + 0x3F0,
		stack: []uint64{triageDrivers[2].base + 0x1500}, peBlock: true}), Options{})
	if err := tri.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if err := tri.WriteModules(&b); err != nil {
		t.Fatal(err)
	}
	golden.Check(t, "testdata/triage-x64.golden", b.Bytes())
}
