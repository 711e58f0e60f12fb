// Package archtest holds the test that keeps crashkey's imports pointing one way: scancodes ←
// hid ← vm; beside them dump, disk, registry and pull; run on top of those; fleet (many targets)
// above run; qemuboot (starts QEMU, imports nothing of crashkey) and selftest (certifies an
// image: qemuboot + run) beside fleet; cmd/crashkey on top of everything; and nothing imports cmd.
// Tests are held to the same arrows, with a few test-helper packages (testHelpers) allowed.
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
	"e2e/harness":                   {"qemuboot"},
	"e2e/guest":                     {"e2e/standin", "hid", "dump", "disk", "registry", "scancodes", "scancodes/layout"},
	"cmd/crashkey":                  {"dump", "dump/analyze", "disk", "fleet", "hid", "live", "pull", "qemuboot", "registry", "run", "scancodes", "scancodes/layout", "selftest", "vm"},
}

func TestImportsPointDownwards(t *testing.T) {
	imports, _ := listPackages(t)
	for pkg, deps := range imports {
		ok := map[string]bool{}
		for _, a := range allowed[pkg] {
			ok[a] = true
		}
		for _, dep := range deps {
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

// testHelpers are the packages that exist to serve other packages' tests: a fake QMP server,
// a fake guest agent, and the stand-in guest's own logic (settings, detector, dump writer),
// which run's tests use as a simulated Windows guest. A package's tests may import one of them
// only when the helper's own project imports are all ones the package itself may import, so a
// test never reaches a layer above the package it tests.
var testHelpers = []string{"vm/qmptest", "live/livetest", "e2e/standin"}

func TestTestImportsPointDownwards(t *testing.T) {
	imports, tests := listPackages(t)
	isHelper := map[string]bool{}
	for _, h := range testHelpers {
		isHelper[h] = true
		if _, ok := imports[h]; !ok {
			t.Errorf("test helper %s does not exist: update testHelpers", h)
		}
	}
	for pkg, deps := range tests {
		ok := map[string]bool{pkg: true}
		for _, a := range allowed[pkg] {
			ok[a] = true
		}
		below := func(dep string) bool {
			return ok[dep] || strings.HasPrefix(dep, "internal/") || strings.HasPrefix(dep, pkg+"/")
		}
		for _, dep := range deps {
			switch {
			case strings.HasPrefix(dep, "cmd/"):
				t.Errorf("%s's tests import %s: nothing may import cmd (test the library call instead)", pkg, dep)
			case below(dep):
			case isHelper[dep]:
				for _, d := range imports[dep] {
					if !below(d) && !isHelper[d] {
						t.Errorf("%s's tests import the test helper %s, which imports %s, above %s: move what the test needs down", pkg, dep, d, pkg)
					}
				}
			case strings.HasPrefix(pkg, "e2e/") || strings.HasPrefix(pkg, "internal/"):
				// e2e and internal tools test from the top; their non-test imports are checked above.
			default:
				t.Errorf("%s's tests import %s: not allowed (a test may import what its package may, internal/ helpers, and %v)", pkg, dep, testHelpers)
			}
		}
	}
}

// listPackages returns, for each of the module's packages (its path below the module), the
// module's packages it imports and those its tests import (in-package and external tests).
func listPackages(t *testing.T) (imports, tests map[string][]string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-f",
		"{{.ImportPath}} {{join .Imports \",\"}} {{join .TestImports \",\"}} {{join .XTestImports \",\"}}",
		module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	own := func(list string) []string {
		var r []string
		for _, imp := range strings.Split(list, ",") {
			if strings.HasPrefix(imp, module+"/") {
				r = append(r, strings.TrimPrefix(imp, module+"/"))
			}
		}
		return r
	}
	imports, tests = map[string][]string{}, map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, " ")
		for len(f) < 4 {
			f = append(f, "")
		}
		pkg := strings.TrimPrefix(strings.TrimPrefix(f[0], module), "/")
		imports[pkg] = own(f[1])
		tests[pkg] = append(own(f[2]), own(f[3])...)
	}
	return imports, tests
}
