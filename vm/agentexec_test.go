package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/vm/qmptest"
)

func dialAgent(t *testing.T, ag *qmptest.Server) Agent {
	t.Helper()
	tg := dialFake(t, qmptest.New(t), Options{Timeout: 300 * time.Millisecond})
	a, err := tg.Agent(context.Background(), ag.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestAgentRun(t *testing.T) {
	ag := qmptest.NewAgent(t)
	ag.Update(func(s *qmptest.Server) {
		s.Program = func(path string, args []string) (int, string, string) {
			if path == "reg.exe" && len(args) > 0 && args[0] == "query" {
				return 0, "HKEY_LOCAL_MACHINE\\x\r\n", ""
			}
			return 1, "", "ERROR: The system was unable to find the specified registry key or value."
		}
	})
	a := dialAgent(t, ag)
	res, err := a.Run(context.Background(), "reg.exe", "query", `HKLM\x`)
	if err != nil || res.ExitCode != 0 || string(res.Stdout) != "HKEY_LOCAL_MACHINE\\x\r\n" {
		t.Fatalf("run: %+v %v", res, err)
	}
	_, err = a.Run(context.Background(), "reg.exe", "import", `C:\x.reg`)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Result.ExitCode != 1 || !strings.Contains(err.Error(), "unable to find") {
		t.Fatalf("non-zero exit: %v", err)
	}
	if !a.Windows(context.Background()) {
		t.Error("mswindows guest not seen as Windows")
	}
}

func TestAgentErrorsTyped(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *qmptest.Error
		want error
	}{
		{"old", &qmptest.Error{Class: "CommandNotFound", Desc: "The command guest-exec has not been found"}, ErrAgentTooOld},
		{"disabled", &qmptest.Error{Class: "GenericError", Desc: "The command guest-exec has been disabled for this instance"}, ErrAgentDenied},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ag := qmptest.NewAgent(t)
			ag.Handle("guest-exec", func(json.RawMessage) (any, *qmptest.Error) { return nil, tc.err })
			a := dialAgent(t, ag)
			if _, err := a.Run(context.Background(), "reg.exe", "query", "x"); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	// No agent on the socket: ErrNoAgent.
	ag := qmptest.NewAgent(t)
	ag.Update(func(s *qmptest.Server) { s.Hang = func(string) bool { return true } })
	tg := dialFake(t, qmptest.New(t), Options{Timeout: 200 * time.Millisecond})
	if _, err := tg.Agent(context.Background(), ag.Addr); !errors.Is(err, ErrNoAgent) {
		t.Errorf("silent agent: %v", err)
	}
}

func TestAgentWriteFile(t *testing.T) {
	ag := qmptest.NewAgent(t)
	a := dialAgent(t, ag)
	data := bytes.Repeat([]byte("Windows Registry Editor Version 5.00\r\n"), 4000) // > one chunk
	if err := a.WriteFile(context.Background(), `C:\Windows\Temp\crashkey.reg`, data); err != nil {
		t.Fatal(err)
	}
	var got []byte
	ag.Update(func(s *qmptest.Server) { got = s.Files[`C:\Windows\Temp\crashkey.reg`] })
	if !bytes.Equal(got, data) || ag.OpenFiles() != 0 {
		t.Errorf("wrote %d bytes (want %d), %d handles open", len(got), len(data), ag.OpenFiles())
	}
	// A failing write still closes the handle.
	ag.Handle("guest-file-write", func(json.RawMessage) (any, *qmptest.Error) {
		return nil, &qmptest.Error{Class: "GenericError", Desc: "No space left on device"}
	})
	if err := a.WriteFile(context.Background(), `C:\y`, data); err == nil || !strings.Contains(err.Error(), "No space") {
		t.Errorf("failed write: %v", err)
	}
	if ag.OpenFiles() != 0 {
		t.Errorf("%d handles left open after a failed write", ag.OpenFiles())
	}
	if err := a.RemoveFile(context.Background(), `C:\y`); err != nil {
		t.Fatal(err)
	}
	if ex := ag.Execs(); ex[len(ex)-1] != `cmd.exe /c del /f /q C:\y` {
		t.Errorf("remove ran %q", ex[len(ex)-1])
	}
}

func TestAgentReboot(t *testing.T) {
	ag := qmptest.NewAgent(t)
	ag.Update(func(s *qmptest.Server) { s.RebootFor = 1500 * time.Millisecond })
	a := dialAgent(t, ag)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := a.Reboot(ctx); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 1500*time.Millisecond {
		t.Errorf("reboot returned after %v, before the agent was back", time.Since(start))
	}
	var n int
	ag.Update(func(s *qmptest.Server) { n = s.Reboots })
	if n != 1 {
		t.Errorf("%d guest-shutdown", n)
	}
	if err := a.Ping(context.Background()); err != nil {
		t.Errorf("ping after reboot: %v", err)
	}
	// An agent that never goes down: the wait ends with a clear error.
	ag2 := qmptest.NewAgent(t)
	ag2.Handle("guest-shutdown", func(json.RawMessage) (any, *qmptest.Error) { return nil, nil })
	a2 := dialAgent(t, ag2)
	ctx2, cancel2 := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel2()
	if err := a2.Reboot(ctx2); err == nil || !strings.Contains(err.Error(), "did not go down") {
		t.Errorf("reboot that never happens: %v", err)
	}
}

func TestParseExecStatus(t *testing.T) {
	for _, tc := range []struct {
		in   string
		done bool
		code int
		out  string
		bad  bool
	}{
		{`{"exited":false}`, false, 0, "", false},
		{`{"exited":true,"exitcode":0,"out-data":"aGk="}`, true, 0, "hi", false},
		{`{"exited":true,"exitcode":3221225477}`, true, -1073741819, "", false}, // 0xC0000005
		{`{"exited":true,"signal":9}`, true, -1, "", false},
		{`{"exited":true}`, false, 0, "", true},
		{`{"exited":true,"exitcode":0,"out-data":"!!"}`, false, 0, "", true},
		{`{}`, false, 0, "", true},
		{`[1]`, false, 0, "", true},
	} {
		res, done, err := ParseExecStatus(json.RawMessage(tc.in))
		if (err != nil) != tc.bad || done != tc.done {
			t.Errorf("%s: done=%v err=%v", tc.in, done, err)
			continue
		}
		if done && (res.ExitCode != tc.code || string(res.Stdout) != tc.out) {
			t.Errorf("%s: %+v", tc.in, res)
		}
	}
}

func FuzzParseExecStatus(f *testing.F) {
	f.Add([]byte(`{"exited":true,"exitcode":0,"out-data":"aGk=","err-data":"","out-truncated":true}`))
	f.Add([]byte(`{"exited":false}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		res, done, err := ParseExecStatus(b)
		if err == nil && done && (len(res.Stdout) > MaxExecOutput || len(res.Stderr) > MaxExecOutput) {
			t.Fatalf("output beyond the bound: %d %d", len(res.Stdout), len(res.Stderr))
		}
		_, _ = ParseExecPID(b)
	})
}
