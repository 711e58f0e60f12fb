package main

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// TestVersionJSONShape keeps the shape of `version --json` (keys and value types) stable;
// the values depend on the build and are masked.
func TestVersionJSONShape(t *testing.T) {
	out, errOut, code := runCrashkey(t, "version", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + ": ")
		switch m[k].(type) {
		case string:
			b.WriteString("<string>\n")
		case bool:
			b.WriteString("<bool>\n")
		default:
			b.WriteString("<other>\n")
		}
	}
	checkGolden(t, "version/json-shape.txt", b.String())
	// A test binary links go-qemu and go-libvirt: their versions must be found.
	if !strings.HasPrefix(m["go_qemu"].(string), "v") || !strings.HasPrefix(m["go_libvirt"].(string), "v") {
		t.Errorf("dependency versions not found: %v %v", m["go_qemu"], m["go_libvirt"])
	}
}

func TestVersionFlag(t *testing.T) {
	out, _, code := runCrashkey(t, "--version")
	if code != 0 || !strings.HasPrefix(out, "crashkey ") || !strings.Contains(out, " go1.") || strings.Count(out, "\n") != 1 {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	out, _, _ = runCrashkey(t, "version")
	for _, want := range []string{"revision", "go-qemu", "go-libvirt", "modified"} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}
