package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/disk"
)

const (
	pullFixtures    = "../../disk/testdata/"
	hostileFixtures = "../../pull/testdata/"
)

// TestPullGolden runs `crashkey pull` against the committed fixture images and compares
// stdout and stderr with golden files (regenerate with -update).
func TestPullGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		pre  func(t *testing.T, out string)
	}{
		{name: "list-gpt", args: []string{"pull", pullFixtures + "gpt.qcow2", "--list"}},
		{name: "list-mbr-json", args: []string{"pull", pullFixtures + "mbr.qcow2", "--list", "--json"}},
		{name: "list-data-volume", args: []string{"pull", pullFixtures + "gpt.qcow2", "--list", "--partition", "2"}, code: ExitNo},
		{name: "pull-gpt", args: []string{"pull", pullFixtures + "gpt.qcow2"}},
		{name: "list-registry-paths", args: []string{"pull", pullFixtures + "gpt.qcow2", "--list",
			"--dump-file", `%SystemRoot%\MEMORY.DMP`, "--dedicated-dump-file", `D:\dumps\dedicated.sys`}},
		{name: "pull-dedicated", args: []string{"pull", pullFixtures + "gpt.qcow2", "--dedicated-dump-file", `D:\dumps\dedicated.sys`}},
		{name: "pull-pagefile", args: []string{"pull", pullFixtures + "mbr.qcow2"}},
		{name: "pull-overlay-json", args: []string{"pull", pullFixtures + "overlay.qcow2", "--json"}},
		{name: "pull-minidumps-json", args: []string{"pull", pullFixtures + "gpt.qcow2", "--minidumps", "--json"}},
		{name: "pull-path", args: []string{"pull", pullFixtures + "gpt.qcow2", "--path", `C:\Windows\System32\config\SYSTEM`}},
		{name: "pull-exists", args: []string{"pull", pullFixtures + "gpt.qcow2"}, code: ExitUsage,
			pre: func(t *testing.T, out string) { os.WriteFile(filepath.Join(out, "MEMORY.DMP"), nil, 0o644) }},
		{name: "pull-missing-path", args: []string{"pull", pullFixtures + "gpt.qcow2", "--path", `Windows\nothing.dmp`}, code: ExitUsage},
		{name: "pull-no-dump", args: []string{"pull", pullFixtures + "gpt.qcow2", "--partition", "2"}, code: ExitNo},
		{name: "pull-bad-partition", args: []string{"pull", pullFixtures + "gpt.qcow2", "--partition", "7"}, code: ExitUsage},
		{name: "pull-no-image", args: []string{"pull", pullFixtures + "nothing.qcow2"}, code: ExitUsage},
		{name: "pull-two-modes", args: []string{"pull", pullFixtures + "gpt.qcow2", "--list", "--minidumps"}, code: ExitUsage},
		// Hostile images (pull/testdata/mkhostile.sh): every name listed, escaped on the
		// terminal, mapped to a safe output name; huge files refused; a minidump-only image.
		{name: "list-hostile", args: []string{"pull", hostileFixtures + "hostile.qcow2", "--list"}},
		{name: "minidumps-hostile", args: []string{"pull", hostileFixtures + "hostile.qcow2", "--minidumps"}},
		{name: "pull-huge", args: []string{"pull", hostileFixtures + "hostile.qcow2", "--path", `Windows\Temp\huge.bin`}, code: ExitUsage},
		{name: "pull-minidumps-only", args: []string{"pull", hostileFixtures + "minionly.qcow2"}, code: ExitNo},
		// No \Windows volume: exit 1 ("the answer is no"), as preflight.
		{name: "list-no-windows", args: []string{"pull", pullFixtures + "tiny.qcow2", "--list"}, code: ExitNo},
		{name: "pull-bad-max-size", args: []string{"pull", hostileFixtures + "hostile.qcow2", "--max-size", "lots"}, code: ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			if tt.pre != nil {
				tt.pre(t, out)
			}
			stdout, stderr, code := runCrashkey(t, append(tt.args, "--out", out)...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.code, stderr)
			}
			clean := func(s string) string { return strings.ReplaceAll(s, out, "$OUT") }
			checkGolden(t, "pull/"+tt.name+".stdout", clean(stdout))
			checkGolden(t, "pull/"+tt.name+".stderr", clean(stderr))
			if strings.Count(stderr, "\n") > 1 {
				t.Errorf("stderr is more than one line:\n%s", stderr)
			}
			if tt.code != ExitOK && tt.pre == nil {
				if ents, _ := os.ReadDir(out); len(ents) != 0 {
					t.Errorf("a failed pull left %d files in --out", len(ents))
				}
			}
		})
	}
}

// TestPullJSONContract checks the fields other tools rely on.
func TestPullJSONContract(t *testing.T) {
	out := t.TempDir()
	stdout, stderr, code := runCrashkey(t, "pull", pullFixtures+"mbr.qcow2", "--out", out, "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r map[string]any
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"source", "output", "size", "sha256", "from_pagefile", "note"} {
		if _, ok := r[k]; !ok {
			t.Errorf("JSON lacks %q: %s", k, stdout)
		}
	}
	if r["source"] != "PAGEFILE.SYS" || r["output"] != filepath.Join(out, "MEMORY.DMP") || r["from_pagefile"] != true {
		t.Errorf("JSON %s", stdout)
	}
}

func TestPullUnsupportedFormat(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "win.vhdx")
	if out, err := exec.Command("qemu-img", "create", "-q", "-f", "vhdx", img, "8M").CombinedOutput(); err != nil {
		t.Fatalf("qemu-img (run scripts/deps.sh): %v\n%s", err, out)
	}
	stdout, stderr, code := runCrashkey(t, "pull", img, "--out", dir)
	want := "qemu-img convert -f vhdx -O qcow2 " + img + " " + filepath.Join(dir, "win.qcow2")
	if code != ExitUsage || stdout != "" || !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit 2 and one line with %q", code, stdout, stderr, want)
	}
}

// TestPullOutAndCorruption: --out naming a missing directory creates it; a truncated image
// exits 3 "corrupt image", not 1 "no dump".
func TestPullOutAndCorruption(t *testing.T) {
	out := filepath.Join(t.TempDir(), "new", "dir")
	if _, stderr, code := runCrashkey(t, "pull", pullFixtures+"gpt.qcow2", "--out", out); code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if st, err := os.Stat(filepath.Join(out, "MEMORY.DMP")); err != nil || st.Size() != 253952 {
		t.Fatalf("MEMORY.DMP in the created --out: %v", err)
	}
	b, err := os.ReadFile(pullFixtures + "gpt.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{300000, 600000} {
		img := filepath.Join(t.TempDir(), "truncated.qcow2")
		os.WriteFile(img, b[:n], 0o644)
		runs := [][]string{{"pull", img, "--out", t.TempDir()}}
		if n == 300000 { // the partition table is gone too: --list cannot list anything
			runs = append(runs, []string{"pull", img, "--list"})
		}
		for _, args := range runs {
			_, stderr, code := runCrashkey(t, args...)
			if code != ExitFailed || !strings.Contains(stderr, "corrupt image") || strings.Count(stderr, "\n") != 1 {
				t.Errorf("%v (first %d bytes): exit %d, stderr %q; want exit 3 and one line naming the corrupt image", args, n, code, stderr)
			}
		}
	}
	// Cut inside the Minidump folder's index and the dumps' data: --list still shows
	// MEMORY.DMP (its header is intact) and every minidump, the damaged folder as a line of its
	// own; pulling the dump fails with exit 3.
	img := filepath.Join(t.TempDir(), "truncated.qcow2")
	os.WriteFile(img, b[:700000], 0o644)
	stdout, stderr, code := runCrashkey(t, "pull", img, "--list")
	if code != ExitOK || !strings.Contains(stdout, `\Windows\MEMORY.DMP`) || !strings.Contains(stdout, "112026-9015-01.dmp") ||
		!strings.Contains(stdout, "the folder cannot be read") {
		t.Errorf("--list: exit %d\n%s%s", code, stdout, stderr)
	}
	if _, stderr, code := runCrashkey(t, "pull", img, "--out", t.TempDir()); code != ExitFailed || !strings.Contains(stderr, "corrupt image") {
		t.Errorf("pull: exit %d, %s", code, stderr)
	}
}

// TestPullJSONExactNames: JSON carries every name exactly as stored (control characters
// encoded by JSON), where the text output escapes them.
func TestPullJSONExactNames(t *testing.T) {
	stdout, stderr, code := runCrashkey(t, "pull", hostileFixtures+"hostile.qcow2", "--list", "--json")
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var doc struct {
		Candidates []struct{ Source string } `json:"candidates"`
	}
	if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"Windows\\Minidump\\esc\x1b]0;owned\a\x1b[2J.dmp": false, "Windows\\Minidump\\new\nline.dmp": false,
		`Windows\Minidump\..\..\evil.dmp`: false, `Windows\Minidump\Case.dmp`: false, `Windows\Minidump\CASE.dmp`: false}
	for _, c := range doc.Candidates {
		if _, ok := want[c.Source]; ok {
			want[c.Source] = true
		}
	}
	for n, seen := range want {
		if !seen {
			t.Errorf("%q missing from the JSON list", n)
		}
	}
	if strings.Contains(stdout, "\x1b") {
		t.Error("raw ESC in JSON output")
	}
}

// TestPullErrSourceIO: a failed read of the image's source (a broken remote stream) is exit
// 3 "failed", also when it surfaces while looking for the dump, and not 1 "no dump".
func TestPullErrSourceIO(t *testing.T) {
	se := &disk.SourceError{Source: "remote:/pool/win.qcow2", Off: 4096, Err: errors.New("stream broke")}
	for _, err := range []error{se, fmt.Errorf("ntfs: list \\Windows on volume 3: %w", se)} {
		if code := exitCode(pullErr(err, pullFlags{})); code != ExitFailed {
			t.Errorf("%v: exit %d, want %d", err, code, ExitFailed)
		}
	}
}
