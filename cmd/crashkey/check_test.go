package main

import (
	"bytes"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
)

// checkSpec is a realistic keyboard-crash kernel dump.
func checkSpec(typ dump.DumpType) dump.Spec {
	return dump.Spec{Type: typ, Is64: true, BugCheck: dump.BugCheckManuallyInitiated, Processors: 2, Build: 19045,
		DirectoryTableBase: 0x1AD002, PsLoadedModuleList: 0xFFFFF8057E22A2D0, KdDebuggerDataBlock: 0xFFFFF8057E000B20,
		SystemTime: time.Date(2026, 11, 21, 9, 15, 0, 0, time.UTC), SystemUpTime: 42 * time.Minute,
		Runs:          []dump.Run{{BasePage: 1, PageCount: 0x9E}, {BasePage: 0x100, PageCount: 0x100}},
		SecondaryData: 0x40}
}

func TestCheckCommand(t *testing.T) {
	goldens, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, spec dump.Spec, cut int) {
		var b bytes.Buffer
		if err := dump.Write(&b, spec, dump.PatternPages(5)); err != nil {
			t.Fatal(err)
		}
		data := b.Bytes()
		if cut > 0 {
			data = data[:cut]
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("MEMORY.DMP", checkSpec(dump.TypeBitmapKernel), 0)
	write("full.dmp", checkSpec(dump.TypeFull), 0)
	write("cut.dmp", checkSpec(dump.TypeBitmapFull), 0x40000)
	write("mini.dmp", checkSpec(dump.TypeTriage), 0)
	variant := checkSpec(dump.TypeBitmapKernel)
	variant.BugCheck, variant.Params = 0x1000007E, [4]uint64{0xFFFFFFFFC0000005, 0xFFFFF8057E3A1234, 0xFFFFB00C1A2B3C40, 0xFFFFB00C1A2B3480}
	write("variant.dmp", variant, 0)
	if err := os.WriteFile(filepath.Join(dir, "user.dmp"), append([]byte("MDMP\x93\xa7"), make([]byte, 200)...), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		args     []string
		code     int
		stderr   string // substring; "" means stderr must be empty
		noGolden bool
	}{
		{"valid", []string{"check", "MEMORY.DMP"}, ExitOK, "", false},
		{"valid-json", []string{"check", "--json", "MEMORY.DMP"}, ExitOK, "", false},
		{"deep-expect", []string{"check", "--deep", "--expect-bugcheck", "manually_initiated_crash", "full.dmp"}, ExitOK, "", false},
		{"expect-other", []string{"check", "--expect-bugcheck", "NMI_HARDWARE_FAILURE", "MEMORY.DMP"}, ExitNo,
			"crashkey: check: MEMORY.DMP: bug check is 0x000000E2 (MANUALLY_INITIATED_CRASH), expected 0x00000080 (NMI_HARDWARE_FAILURE)\n", false},
		{"expect-other-json", []string{"check", "--json", "--expect-bugcheck", "0x80", "MEMORY.DMP"}, ExitNo, "expected 0x00000080", false},
		{"expect-base-of-variant", []string{"check", "--expect-bugcheck", "0x7E", "variant.dmp"}, ExitOK, "", false},
		{"expect-base-name-json", []string{"check", "--json", "--expect-bugcheck", "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED", "variant.dmp"}, ExitOK, "", false},
		{"expect-variant-on-base", []string{"check", "--expect-bugcheck", "SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M", "MEMORY.DMP"}, ExitNo,
			"expected 0x1000007E (SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M; base 0x0000007E SYSTEM_THREAD_EXCEPTION_NOT_HANDLED)", true},
		{"truncated", []string{"check", "--deep", "cut.dmp"}, ExitNo, "crashkey: check: cut.dmp is not a valid kernel dump: the file is 262144 bytes but its pages end at", false},
		{"triage", []string{"check", "mini.dmp"}, ExitOK, "", false},
		{"user-minidump", []string{"check", "user.dmp"}, ExitNo, "user-mode minidump (MDMP), not a Windows kernel crash dump", false},
		{"unknown-name", []string{"check", "--expect-bugcheck", "NO_SUCH_BUGCHECK", "MEMORY.DMP"}, ExitUsage, "crashkey: check: --expect-bugcheck: bug check: \"NO_SUCH_BUGCHECK\" is neither", true},
		{"missing-file", []string{"check", "nope.dmp"}, ExitUsage, "crashkey: check: open nope.dmp: no such file or directory", true},
		{"directory", []string{"check", "."}, ExitUsage, "is a directory", true},
		{"no-args", []string{"check"}, ExitUsage, "accepts 1 arg(s)", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(dir) // file names in the reports are relative
			out, errs, code := runCrashkey(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, errs)
			}
			if tt.stderr == "" && errs != "" || !strings.Contains(errs, tt.stderr) {
				t.Errorf("stderr %q, want %q", errs, tt.stderr)
			}
			if strings.Count(errs, "\n") > 1 {
				t.Errorf("stderr has more than one line: %q", errs)
			}
			if !tt.noGolden {
				t.Chdir(goldens)
				checkGolden(t, filepath.Join("check", tt.name+".golden"), out)
			}
		})
	}
}

// TestCheckRefusesNonFiles: check FILE on a FIFO (with no writer: a plain open waits for
// one forever), a socket or a character device ends at once with one line naming what it
// is (exit 2), as pull and preflight do for IMAGE.
func TestCheckRefusesNonFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "MEMORY.DMP")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "dump.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, tt := range []struct{ path, want string }{
		{fifo, "is a FIFO (named pipe), not a dump file"},
		{sock, "is a socket, not a dump file"},
		{"/dev/null", "is a character device, not a dump file"},
	} {
		type result struct {
			errs string
			code int
		}
		done := make(chan result, 1)
		go func() {
			_, errs, code := runCrashkey(t, "check", tt.path)
			done <- result{errs, code}
		}()
		select {
		case r := <-done:
			if r.code != ExitUsage || !strings.Contains(r.errs, tt.path+" "+tt.want) || strings.Count(r.errs, "\n") != 1 {
				t.Errorf("check %s: exit %d, stderr %q; want exit 2 and one line with %q", tt.path, r.code, r.errs, tt.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("check %s blocked", tt.path)
		}
	}
}
