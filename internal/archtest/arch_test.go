// Package archtest holds the test that keeps crashkey's imports pointing one way: scancodes ←
// hid ← vm; beside them dump, disk, registry and pull; run on top of those; fleet (many targets)
// above run; qemuboot (starts QEMU, imports nothing of crashkey) and selftest (certifies an
// image: qemuboot + run) beside fleet; cmd/crashkey on top of everything; and nothing imports cmd.
package archtest

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/crashkey/crashkey"

// allowed lists, for each package, the project packages it may import (directly). Packages
// not listed may import only internal/ helpers.
var allowed = map[string][]string{
	"scancodes":                     {},
	"scancodes/layout":              {"scancodes", "scancodes/layout/internal/xkb"},
	"scancodes/layout/internal/xkb": {},
	"scancodes/layout/internal/gen": {"scancodes/layout/internal/xkb"},
	"hid":                           {"scancodes", "scancodes/layout"},
	"vm":                            {"hid", "scancodes", "scancodes/layout", "vm/internal/qmpconn"},
	"vm/qmptest":                    {},
	"dump":                          {},
	"dump/analyze":                  {"dump"},
	"disk":                          {},
	"pull":                          {"disk", "dump"},
	"registry":                      {"disk", "hid", "scancodes", "scancodes/layout"},
	"run":                           {"disk", "dump", "dump/analyze", "hid", "pull", "registry", "scancodes/layout", "vm"},
	"fleet":                         {"vm", "run", "disk", "hid"},
	"live":                          {"hid", "registry", "vm"},
	"live/livetest":                 {"registry", "vm/qmptest"},
	"qemuboot":                      {},
	"selftest":                      {"qemuboot", "live", "run", "vm", "hid", "dump", "registry", "disk"},
	"e2e/standin":                   {"disk", "dump", "hid", "registry", "pull"},
	"e2e/harness":                   {},
	"e2e/guest":                     {"e2e/standin", "hid", "dump", "disk", "registry", "scancodes", "scancodes/layout"},
	"cmd/crashkey":                  {"dump", "dump/analyze", "disk", "fleet", "hid", "live", "pull", "qemuboot", "registry", "run", "scancodes", "scancodes/layout", "selftest", "vm"},
}

func TestImportsPointDownwards(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(strings.TrimPrefix(fields[0], module), "/")
		ok := map[string]bool{}
		for _, a := range allowed[pkg] {
			ok[a] = true
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			switch {
			case strings.HasPrefix(dep, "cmd/"):
				t.Errorf("%s imports %s: nothing may import cmd", pkg, dep)
			case ok[dep], strings.HasPrefix(dep, "internal/") && !strings.HasPrefix(pkg, "e2e/") || dep == "internal/atomicfile" || dep == "internal/units":
			case strings.HasPrefix(pkg, "internal/"), strings.HasPrefix(dep, pkg+"/internal/"):
			case strings.HasPrefix(pkg, "e2e/cmd/"): // test launchers (the demo) sit on top, like cmd
			case strings.Contains(pkg, "/internal/") && strings.HasPrefix(pkg, dep+"/internal/"): // a package's own tools
			default:
				t.Errorf("%s imports %s: not allowed (imports point downwards: scancodes ← hid ← vm; dump, disk beside; pull, registry above them; run; cmd on top)", pkg, dep)
			}
		}
	}
}
