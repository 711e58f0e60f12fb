package disk

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGPTTypeNames builds a GPT disk with sfdisk holding the common partition types and
// checks the names in Volumes (and JSON) against the names sfdisk itself gives the type
// GUIDs it wrote.
func TestGPTTypeNames(t *testing.T) {
	needTool(t, "sfdisk")
	p := filepath.Join(t.TempDir(), "types.img")
	if err := os.Truncate(mustCreate(t, p), 64<<20); err != nil {
		t.Fatal(err)
	}
	types := []string{
		"C12A7328-F81F-11D2-BA4B-00A0C93EC93B", // EFI System
		"E3C9E316-0B5C-4DB8-817D-F92DF00215AE", // Microsoft reserved
		"EBD0A0A2-B9E5-4433-87C0-68B6B72699C7", // Microsoft basic data
		"DE94BBA4-06D1-4D40-A16A-BFD50179D6AC", // Windows recovery environment
		"0FC63DAF-8483-4772-8E79-3D69D8477DE4", // Linux filesystem
		"E6D6D379-F507-44C2-A23C-238F2A3DF928", // Linux LVM
		"0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", // Linux swap
		"21686148-6449-6E6F-744E-656564454649", // BIOS boot
	}
	var script strings.Builder
	script.WriteString("label: gpt\n")
	for _, ty := range types {
		script.WriteString("size=4MiB, type=" + ty + "\n")
	}
	cmd := exec.Command("sfdisk", "-q", p)
	cmd.Stdin = strings.NewReader(script.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	// sfdisk's own names for the types, from its listing (the independent oracle).
	out, err := exec.Command("sfdisk", "-l", "-o", "Device,Type", p).Output()
	if err != nil {
		t.Fatal(err)
	}
	var sfNames []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[0], p) {
			sfNames = append(sfNames, strings.Join(f[1:], " "))
		}
	}
	im, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	vols := im.Volumes()
	if len(vols) != len(types) || len(sfNames) != len(types) {
		t.Fatalf("%d volumes, sfdisk lists %d, want %d", len(vols), len(sfNames), len(types))
	}
	for i, v := range vols {
		if v.Type != types[i] {
			t.Errorf("volume %d: type %s, want %s", v.Index, v.Type, types[i])
		}
		// sfdisk says "EFI System", "Windows recovery environment"; crashkey's names are the
		// same words, shorter at most.
		if v.TypeName == "unknown" || !strings.HasPrefix(strings.ToLower(sfNames[i]), strings.ToLower(v.TypeName)) {
			t.Errorf("volume %d: type name %q, sfdisk says %q", v.Index, v.TypeName, sfNames[i])
		}
		if !strings.Contains(v.describe(), v.TypeName) {
			t.Errorf("volume %d: description %q lacks the type name", v.Index, v.describe())
		}
	}
	b, err := json.Marshal(vols[0])
	if err != nil || !strings.Contains(string(b), `"type_name":"EFI system"`) {
		t.Errorf("JSON %s (%v)", b, err)
	}
}

func mustCreate(tb testing.TB, p string) string {
	tb.Helper()
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}
