package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/vm"
	"github.com/crashkey/crashkey/vm/qmptest"
)

func listDir(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return strings.Join(names, "\n") + "\n"
}

func TestDocsMan(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dir := t.TempDir()
	if _, errOut, code := runCrashkey(t, "docs", "--man", dir); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkGolden(t, "docs/man-tree.txt", listDir(t, dir))
	page, err := os.ReadFile(filepath.Join(dir, "crashkey-version.1"))
	if err != nil {
		t.Fatal(err)
	}
	// The source field names the binary's version, which depends on how the test was built.
	th := regexp.MustCompile(`(?m)^\.TH "CRASHKEY" "1" "Nov 2023" "crashkey [^"]*"`)
	if !th.Match(page) {
		t.Errorf("no .TH line with SOURCE_DATE_EPOCH's date:\n%.300s", page)
	}
	checkGolden(t, "docs/crashkey-version.1", th.ReplaceAllString(string(page), `.TH "CRASHKEY" "1" "Nov 2023" "crashkey VERSION"`))

	md := t.TempDir()
	if _, errOut, code := runCrashkey(t, "docs", "--markdown", md); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkGolden(t, "docs/markdown-tree.txt", listDir(t, md))

	if _, _, code := runCrashkey(t, "docs"); code != ExitUsage {
		t.Errorf("docs without a directory: exit %d", code)
	}
	t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
	if _, errOut, code := runCrashkey(t, "docs", "--man", t.TempDir()); code != ExitUsage || !strings.Contains(errOut, "SOURCE_DATE_EPOCH") {
		t.Errorf("bad SOURCE_DATE_EPOCH: exit %d %s", code, errOut)
	}
}

func TestCompletionScripts(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, errOut, code := runCrashkey(t, "completion", sh)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", sh, code, errOut)
		}
		checkGolden(t, "completion/crashkey."+sh, out)
	}
}

// complete runs cobra's hidden __complete command and returns the candidates and the
// directive line.
func complete(t *testing.T, args ...string) ([]string, string) {
	t.Helper()
	out, errOut, code := runCrashkey(t, append([]string{"__complete"}, args...)...)
	if code != 0 {
		t.Fatalf("__complete %q: exit %d: %s", args, code, errOut)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	return lines[:len(lines)-1], lines[len(lines)-1]
}

func TestCompleteValues(t *testing.T) {
	got, dir := complete(t, "send", "--hotkey", "rctrl+scroll_l")
	if strings.Join(got, ",") != "rctrl+scroll_lock" || dir != ":6" { // NoSpace|NoFileComp
		t.Errorf("hotkey: %q %s", got, dir)
	}
	got, _ = complete(t, "plan", "--hotkey", "lsh")
	if len(got) == 0 || got[0] != "lshift" && got[0] != "shift" {
		// "lshift" is an alias of shift; either name must be offered
		t.Errorf("hotkey lsh: %q", got)
	}
	got, _ = complete(t, "check", "--expect-bugcheck", "MANUALLY_INITIATED_C")
	if strings.Join(got, ",") != "MANUALLY_INITIATED_CRASH,MANUALLY_INITIATED_CRASH1" {
		t.Errorf("bugcheck: %q", got)
	}
	got, _ = complete(t, "plan", "--format", "v")
	if strings.Join(got, ",") != "virsh,vbox" && strings.Join(got, ",") != "vbox,virsh" {
		t.Errorf("format: %q", got)
	}
	// --domain against a libvirt that does not answer: an error directive, quickly.
	start := time.Now()
	got, dir = complete(t, "send", "--libvirt", "qemu+tcp://127.0.0.1:1/system", "--domain", "")
	if len(got) != 0 || dir != ":5" || time.Since(start) > domainListTimeout+time.Second {
		t.Errorf("domain: %q %s after %v", got, dir, time.Since(start))
	}
}

// withFakeRoot points the shorthand locator at a fake layout with a fake QEMU monitor at
// each given path.
func withFakeRoot(t *testing.T, paths ...string) (string, map[string]*qmptest.Server) {
	t.Helper()
	root, err := os.MkdirTemp("", "ckroot")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	srvs := map[string]*qmptest.Server{}
	for _, p := range paths {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		s, err := qmptest.Listen(full)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		srvs[p] = s
	}
	prev := locator
	locator = vm.Locator{Root: root, Env: func(string) string { return "" }}
	t.Cleanup(func() { locator = prev })
	return root, srvs
}

func TestShorthands(t *testing.T) {
	root, _ := withFakeRoot(t, "/var/run/qemu-server/101.qmp", "/var/log/incus/win11/qemu.monitor", "/var/log/incus/ci_win/crashkey.qmp")
	out, errOut, code := runCrashkey(t, "status", "--proxmox", "101", "--json")
	if code != 0 || !strings.Contains(out, `"state": "running"`) {
		t.Errorf("--proxmox 101: exit %d\n%s%s", code, out, errOut)
	}
	_, errOut, code = runCrashkey(t, "status", "--proxmox", "102")
	if code != ExitUsage || !strings.Contains(errOut, "tried /var/run/qemu-server/102.qmp") {
		t.Errorf("--proxmox 102: exit %d %s", code, errOut)
	}
	_, errOut, code = runCrashkey(t, "status", "--incus", "win11", "--debug")
	if code != 0 || !strings.Contains(errOut, "warning: incus: /var/log/incus/win11/qemu.monitor is the socket incusd itself keeps open") ||
		!strings.Contains(errOut, `msg="target shorthand" flag=incus value=win11 qmp=unix:`+root+"/var/log/incus/win11/qemu.monitor") {
		t.Errorf("--incus win11: exit %d %s", code, errOut)
	}
	if _, errOut, code := runCrashkey(t, "status", "--incus", "ci/win"); code != 0 || strings.Contains(errOut, "warning") {
		t.Errorf("--incus ci/win: exit %d %s", code, errOut)
	}
	if _, errOut, code := runCrashkey(t, "status", "--proxmox", "101", "--qmp", "unix:/x"); code != ExitUsage || !strings.Contains(errOut, "give one target") {
		t.Errorf("two targets: exit %d %s", code, errOut)
	}
	got, _ := complete(t, "send", "--proxmox", "")
	if strings.Join(got, ",") != "101" {
		t.Errorf("proxmox completion: %q", got)
	}
	got, _ = complete(t, "watch", "--incus", "")
	if strings.Join(got, ",") != "ci/win,win11" {
		t.Errorf("incus completion: %q", got)
	}
	got, _ = complete(t, "status", "--qmp", "unix:"+root+"/var/run")
	if strings.Join(got, ",") != "unix:"+root+"/var/run/qemu-server/101.qmp" {
		t.Errorf("qmp completion: %q", got)
	}
}
