package main

import (
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/vm/qmptest"
)

func TestDebugLogsQMPTraffic(t *testing.T) {
	srv := qmptest.New(t)
	out, errOut, code := runCrashkey(t, "status", "--qmp", srv.Addr, "--debug")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "running") {
		t.Errorf("stdout: %s", out)
	}
	for _, want := range []string{
		`level=DEBUG msg="crashkey start" command="crashkey status"`,
		`msg="qmp command" command=qmp_capabilities return={} took=`,
		`msg="qmp command" command=query-status return="{\"running\":true`,
		`msg="qmp command" command=qom-list arguments=`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("--debug output lacks %q:\n%s", want, errOut)
		}
	}
	// Without --debug, nothing is logged.
	_, errOut, _ = runCrashkey(t, "status", "--qmp", srv.Addr)
	if strings.Contains(errOut, "qmp command") {
		t.Errorf("logs without --debug:\n%s", errOut)
	}
	// CRASHKEY_DEBUG=1 and JSON lines.
	t.Setenv("CRASHKEY_DEBUG", "1")
	_, errOut, code = runCrashkey(t, "status", "--qmp", srv.Addr, "--log-format", "json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(errOut), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON log line: %q", line)
		}
		if m["msg"] == "qmp command" && m["command"] != nil && m["took"] != nil {
			n++
		}
	}
	if n < 3 {
		t.Errorf("%d qmp commands logged as JSON:\n%s", n, errOut)
	}
}

func TestDebugNoSecrets(t *testing.T) {
	const secret = "hunter2-Sekrit"
	// crashkey refuses a password in a libvirt URI (exit 2) and must not echo it either.
	_, errOut, code := runCrashkey(t, "status", "--libvirt", "qemu+tcp://admin:"+secret+"@127.0.0.1:1/system?password="+secret,
		"--domain", "win", "--debug", "--rpc-timeout", "3s")
	if code != ExitUsage {
		t.Errorf("exit %d, want %d: %s", code, ExitUsage, errOut)
	}
	if strings.Contains(errOut, secret) {
		t.Errorf("stderr holds the password:\n%s", errOut)
	}
	if !strings.Contains(errOut, "admin:xxxxx@127.0.0.1:1") {
		t.Errorf("stderr does not name the (redacted) URI:\n%s", errOut)
	}
	if code := Main(t.Context(), []string{"status", "--qmp", "unix:/x", "--log-format", "xml"}, new(strings.Builder), new(strings.Builder)); code != ExitUsage {
		t.Errorf("--log-format xml: exit %d", code)
	}
}

func TestDebugRestoresLogging(t *testing.T) {
	srv := qmptest.New(t)
	w := log.Writer()
	if _, errOut, code := runCrashkey(t, "status", "--qmp", srv.Addr, "--debug"); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if log.Writer() != w || slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		t.Error("--debug left its logger installed after the run")
	}
}
