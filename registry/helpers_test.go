package registry

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf16"
)

// Hives for the tests are built the way a user would arm an offline hive: crashkey's own .reg
// output (and hand-written .reg snippets for broken configurations) merged into a copy of
// hivex's minimal hive with Debian's hivexregedit, an independent registry writer.

const regHeader = "Windows Registry Editor Version 5.00\r\n\r\n"

// reg joins .reg lines with CRLF under the header.
func reg(lines ...string) string {
	return regHeader + strings.Join(lines, "\r\n") + "\r\n\r\n"
}

func needTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s is missing: run scripts/deps.sh (it installs libwin-hivex-perl, libhivex-bin, ntfs-3g, …)", name)
	}
	return p
}

// buildHive merges the .reg texts (each starting with the header), in order, into a copy of hivex's minimal hive and returns
// the hive's path.
func buildHive(t testing.TB, regs ...string) string {
	t.Helper()
	hx := needTool(t, "hivexregedit")
	dir := t.TempDir()
	hive := filepath.Join(dir, "SYSTEM")
	src, err := os.ReadFile("testdata/hivex-minimal")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hive, src, 0o644); err != nil {
		t.Fatal(err)
	}
	// One merge of all the files, in order (a later section overrides an earlier one, as
	// importing the files one after the other would): hivexregedit is a Perl program, and
	// starting it once per file would dominate the test time.
	var all strings.Builder
	all.WriteString(regHeader)
	for _, r := range regs {
		all.WriteString(strings.TrimPrefix(r, regHeader))
	}
	f := filepath.Join(dir, "merge.reg")
	if err := os.WriteFile(f, []byte(all.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(hx, "--merge", "--prefix", `HKEY_LOCAL_MACHINE\SYSTEM`, hive, f).CombinedOutput()
	if err != nil {
		t.Fatalf("hivexregedit --merge: %v\n%s\n%s", err, out, all.String())
	}
	return hive
}

// hivexget reads one value with Debian's hivexget (the independent oracle).
func hivexget(t testing.TB, hive, key, value string) (string, bool) {
	t.Helper()
	out, err := exec.Command(needTool(t, "hivexget"), hive, key, value).CombinedOutput()
	if err != nil {
		return strings.TrimSpace(string(out)), false
	}
	return strings.TrimSpace(string(out)), true
}

func hexBytes(b []byte) string {
	parts := make([]string, len(b))
	for i, c := range b {
		parts[i] = fmt.Sprintf("%02x", c)
	}
	return strings.Join(parts, ",")
}

// multiSZ is a .reg REG_MULTI_SZ value.
func multiSZ(name string, items ...string) string {
	var u []uint16
	for _, s := range items {
		u = append(u, utf16.Encode([]rune(s))...)
		u = append(u, 0)
	}
	u = append(u, 0)
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(b[2*i:], c)
	}
	return fmt.Sprintf(`"%s"=hex(7):%s`, name, hexBytes(b))
}

// filetimeValue is a .reg REG_BINARY FILETIME value.
func filetimeValue(name string, t time.Time) string {
	ft := uint64(t.Unix()+11644473600) * 1e7
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], ft)
	return fmt.Sprintf(`"%s"=hex(3):%s`, name, hexBytes(b[:]))
}

// baseReg is the skeleton of a SYSTEM hive: Select, the product type, the keyboard services
// with their usual start types, and a system-managed paging file.
func baseReg(product string) string {
	return reg(
		`[HKEY_LOCAL_MACHINE\SYSTEM\Select]`,
		`"Current"=dword:00000001`, `"Default"=dword:00000001`, `"LastKnownGood"=dword:00000001`, ``,
		`[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001]`, ``,
		`[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control]`, ``,
		`[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\ProductOptions]`,
		`"ProductType"="`+product+`"`, ``,
		`[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\Session Manager]`, ``,
		`[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Control\Session Manager\Memory Management]`,
		multiSZ("PagingFiles", `?:\pagefile.sys`), ``,
		`[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services]`, ``,
		`[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\i8042prt]`, `"Start"=dword:00000001`, ``,
		`[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\kbdhid]`, `"Start"=dword:00000003`,
	)
}

// armReg is crashkey arm's .reg output for an offline merge into ControlSet001.
func armReg(t testing.TB, opts ArmOptions) string {
	t.Helper()
	opts.ControlSet = 1
	p, err := Arm(opts)
	if err != nil {
		t.Fatal(err)
	}
	return string(p.Reg())
}

// cs1 prefixes a key path with HKLM\SYSTEM\ControlSet001.
func cs1(path string) string { return `[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\` + path + `]` }

// setSequence2 rewrites the secondary sequence number of a hive file (and its checksum), as
// a guest stopped in the middle of a registry flush leaves it.
func setSequence2(t testing.TB, hive string, seq uint32) {
	t.Helper()
	b, err := os.ReadFile(hive)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(b[8:], seq)
	binary.LittleEndian.PutUint32(b[508:], baseChecksum(b[:508]))
	if err := os.WriteFile(hive, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
