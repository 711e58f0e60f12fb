package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
	binOut  []byte
)

// hostileBin builds the crashkey binary and the hostile images of
// disk/testdata/mkhostile.sh once, and returns the binary and the images' directory.
func hostileBin(t *testing.T) (string, string) {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "crashkey-cmd-"); binErr != nil {
			return
		}
		if binOut, binErr = exec.Command("go", "build", "-o", filepath.Join(binDir, "crashkey"), ".").CombinedOutput(); binErr != nil {
			return
		}
		binOut, binErr = exec.Command("bash", "../../disk/testdata/mkhostile.sh", filepath.Join(binDir, "hx")).CombinedOutput()
	})
	if binErr != nil {
		t.Fatalf("build: %v\n%s", binErr, binOut)
	}
	t.Cleanup(func() {}) // the directory goes with the process's temp files below
	return filepath.Join(binDir, "crashkey"), filepath.Join(binDir, "hx")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// runBin runs the binary and returns its exit code and stderr.
func runBin(t *testing.T, bin string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, stderr.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), stderr.String()
	}
	t.Fatal(err)
	return 0, ""
}

// TestSignalEndsCommand runs the binary on a hostile image (a huge root index) and on a
// FIFO (where a reader blocks in open), signals it, and expects it gone within 2 s with the
// code of the signal.
func TestSignalEndsCommand(t *testing.T) {
	bin, hx := hostileBin(t)
	fifo := filepath.Join(t.TempDir(), "dump.dmp")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		sig  syscall.Signal
		code int
		args []string
	}{
		{"pull huge index, SIGINT", syscall.SIGINT, 130, []string{"pull", filepath.Join(hx, "bigindex.qcow2"), "--list"}},
		{"pull huge index, SIGTERM", syscall.SIGTERM, 143, []string{"pull", filepath.Join(hx, "bigindex.qcow2"), "--list"}},
		{"preflight huge index, SIGTERM", syscall.SIGTERM, 143, []string{"preflight", filepath.Join(hx, "bigindex.qcow2")}},
		{"check FIFO, SIGINT", syscall.SIGINT, 130, []string{"check", fifo}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				// It ended by itself before the signal: only a refusal is fine.
				if err == nil {
					t.Fatalf("ended with success before the signal: %s", stderr.String())
				}
				t.Logf("refused before the signal: %v: %s", err, stderr.String())
				return
			case <-time.After(400 * time.Millisecond):
			}
			if err := cmd.Process.Signal(tt.sig); err != nil {
				t.Fatal(err)
			}
			sent := time.Now()
			select {
			case err := <-done:
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != tt.code {
					t.Errorf("exit %v, want code %d; stderr: %s", err, tt.code, stderr.String())
				}
				if d := time.Since(sent); d > 2*time.Second {
					t.Errorf("ended %v after the signal", d)
				}
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-done
				t.Fatalf("still running 5s after %v; stderr: %s", tt.sig, stderr.String())
			}
		})
	}
}

// TestHostileExitCodes: each hostile image gets its documented exit code and one clear line.
func TestHostileExitCodes(t *testing.T) {
	bin, hx := hostileBin(t)
	out := t.TempDir()
	fifo := filepath.Join(t.TempDir(), "image.qcow2")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"pull", filepath.Join(hx, "overindex.img"), "--list"}, 3, "corrupt"},
		{[]string{"pull", filepath.Join(hx, "overbudget.img"), "--list"}, 3, "corrupt"},
		{[]string{"pull", filepath.Join(hx, "fixup.img"), "--list"}, 3, "corrupt"},
		{[]string{"pull", filepath.Join(hx, "badblock.img"), "--list"}, 3, "damaged"},
		{[]string{"pull", filepath.Join(hx, "runpast.img"), "--path", `Windows\MEMORY.DMP`, "--out", out}, 3, "past the end"},
		{[]string{"pull", filepath.Join(hx, "truncated.qcow2"), "--path", `Windows\MEMORY.DMP`, "--out", out}, 3, "truncated"},
		{[]string{"pull", filepath.Join(hx, "images", "evil.qcow2"), "--out", out}, 2, "--allow-backing"},
		{[]string{"pull", filepath.Join(hx, "images", "link.qcow2"), "--out", out}, 2, "--allow-backing"},
		{[]string{"preflight", filepath.Join(hx, "images", "evil.qcow2")}, 2, "--allow-backing"},
		{[]string{"pull", fifo, "--out", out}, 2, "FIFO"},
		{[]string{"preflight", fifo}, 2, "FIFO"},
	} {
		t.Run(strings.Join(tt.args[:2], " "), func(t *testing.T) {
			start := time.Now()
			code, stderr := runBin(t, bin, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
				t.Errorf("exit %d, stderr %q; want exit %d and one line with %q", code, stderr, tt.code, tt.want)
			}
			if strings.Contains(stderr, "HOST-SECRET") {
				t.Errorf("host bytes on stderr: %q", stderr)
			}
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	ents, _ := os.ReadDir(out)
	if len(ents) != 0 {
		t.Errorf("files written to --out: %v", ents)
	}
}
