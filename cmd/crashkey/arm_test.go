package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestArmGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default.reg", []string{"arm"}},
		{"custom-all-complete.ps1", []string{"arm", "--hotkey", "lshift+rshift+d", "--driver", "all", "--dump-type", "complete", "--format", "ps1"}},
		{"registry-pair-offline.json", []string{"arm", "--dump1keys", "0x22", "--dump2key", "0x3d", "--driver", "kbdhid,hyperkbd", "--control-set", "1", "--no-autoreboot", "--json"}},
		{"dedicated-active.reg", []string{"arm", "--dump-type", "ACTIVE", "--dedicated-dump-file", `D:\dump\dedicated.sys`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCrashkey(t, tc.args...)
			if code != 0 || errOut != "" {
				t.Fatalf("exit %d, stderr %q", code, errOut)
			}
			checkGolden(t, "arm/"+tc.name+".golden", out)
		})
	}
}

func TestArmUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"unknown driver", []string{"arm", "--driver", "mouclass"}, `--driver: unknown keyboard driver "mouclass"`},
		{"dump type none", []string{"arm", "--dump-type", "none"}, `--dump-type: unknown dump type "none"`},
		{"unknown format", []string{"arm", "--format", "xml"}, `--format "xml": use reg, ps1 or json`},
		{"json and format", []string{"arm", "--json", "--format", "reg"}, "if any flags in the group [json format] are set none of the others can be"},
		{"relative dedicated file", []string{"arm", "--dedicated-dump-file", "dump.sys"}, "full Windows path"},
		{"control set 0", []string{"arm", "--control-set", "0"}, "--control-set 0: use 1..999"},
		{"bad hotkey", []string{"arm", "--hotkey", "scroll"}, "has no modifier"},
		{"dump1keys without dump2key", []string{"arm", "--dump1keys", "0x02"}, "dump2key"},
		{"argument", []string{"arm", "extra"}, `unknown command "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCrashkey(t, tc.args...)
			if code != ExitUsage || out != "" {
				t.Fatalf("exit %d, stdout %q; want exit 2 and no output", code, out)
			}
			if !strings.HasPrefix(errOut, "crashkey: ") || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.msg) {
				t.Errorf("stderr %q: want one line saying %q", errOut, tc.msg)
			}
		})
	}
}

func TestArmOutputFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "arm.reg")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCrashkey(t, "arm", "-o", path)
	if code != 0 || out != "" || !strings.Contains(errOut, "arm: wrote "+path+" (RCtrl+ScrollLock for i8042prt, kbdhid); Restart Windows") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, _, _ := runCrashkey(t, "arm")
	if string(got) != want {
		t.Errorf("file differs from stdout output:\n%s", got)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("temporary files left behind: %v", entries)
	}
	if _, errOut, code := runCrashkey(t, "arm", "-o", filepath.Join(dir, "missing", "arm.reg")); code != ExitFailed || !strings.Contains(errOut, "arm: ") {
		t.Errorf("unwritable output: exit %d, stderr %q", code, errOut)
	}
}
