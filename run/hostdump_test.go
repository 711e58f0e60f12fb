package run

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/vm"
	"github.com/crashkey/crashkey/vm/qmptest"
)

// hostDumpServer is a fake QEMU whose dump-guest-memory writes a dump made by dump.Write (or
// garbage) to the file it is given, as QEMU does, and announces DUMP_COMPLETED.
func hostDumpServer(t *testing.T, garbage bool) *qmptest.Server {
	s := qmptest.New(t)
	s.Update(func(s *qmptest.Server) {
		s.Devices = []qmptest.Device{{Container: "/machine/peripheral-anon", Name: "device[1]", Type: "vmcoreinfo"}}
	})
	s.Handle("query-memory-size-summary", func(json.RawMessage) (any, *qmptest.Error) {
		return map[string]uint64{"base-memory": 64 << 10}, nil
	})
	s.Handle("query-dump", func(json.RawMessage) (any, *qmptest.Error) {
		return map[string]any{"status": "active", "completed": 0, "total": 1}, nil
	})
	s.Handle("dump-guest-memory", func(a json.RawMessage) (any, *qmptest.Error) {
		var args struct {
			Protocol string `json:"protocol"`
		}
		json.Unmarshal(a, &args)
		path := strings.TrimPrefix(args.Protocol, "file:")
		var err error
		if garbage {
			err = os.WriteFile(path, []byte("not a dump"), 0o600)
		} else {
			f, ferr := os.Create(path)
			if ferr != nil {
				t.Error(ferr)
				return nil, &qmptest.Error{Class: "GenericError", Desc: ferr.Error()}
			}
			err = dump.Write(f, dump.Spec{Type: dump.TypeFull, Is64: true, BugCheck: dump.BugCheckLiveSystemDump,
				SystemTime: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC), Runs: []dump.Run{{BasePage: 1, PageCount: 8}}}, nil)
			f.Close()
		}
		if err != nil {
			t.Error(err)
		}
		go s.Event("DUMP_COMPLETED", map[string]any{"result": map[string]any{"status": "completed", "completed": 1, "total": 1}})
		return map[string]any{}, nil
	})
	return s
}

// dial connects to a fake QEMU for the test's duration.
func dial(t *testing.T, s *qmptest.Server) vm.Target {
	tg, err := vm.Dial(context.Background(), vm.Address{QMP: s.Addr}, vm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// plenty is a free-space reading that never runs out.
func plenty(string) (uint64, error) { return 1 << 40, nil }

func TestHostDumpWith(t *testing.T) {
	now := func() time.Time { return time.Date(2026, 12, 5, 13, 0, 0, 0, time.UTC) }

	t.Run("ok", func(t *testing.T) {
		out := t.TempDir()
		s := hostDumpServer(t, false)
		tg := dial(t, s)
		rep, err := HostDumpWith(context.Background(), tg, HostDumpConfig{OutDir: out, Now: now, freeSpace: plenty, Pause: true})
		if err != nil {
			t.Fatal(err)
		}
		want := filepath.Join(out, "guest-20261205-130000.dmp")
		if rep.Output != want || !rep.Live || rep.Check == nil || !rep.Check.OK() || rep.Size != 0x2000+8*0x1000 || len(rep.SHA256) != 64 {
			t.Errorf("report %+v", rep)
		}
		if !rep.Paused || !rep.Resumed || strings.Join(s.Executed(), " ") == "" || !strings.Contains(strings.Join(s.Executed(), " "), "stop") ||
			!strings.Contains(strings.Join(s.Executed(), " "), "cont") {
			t.Errorf("pause/resume: %+v, executed %v", rep, s.Executed())
		}
		ents, _ := os.ReadDir(out)
		if len(ents) != 1 || ents[0].Name() != filepath.Base(want) {
			t.Errorf("out dir holds %v", ents)
		}
		// The same name again is refused, and nothing is written.
		if _, err := HostDumpWith(context.Background(), tg, HostDumpConfig{OutDir: out, Now: now, freeSpace: plenty}); !errors.Is(err, ErrBadConfig) {
			t.Errorf("existing output: %v", err)
		}
	})
	t.Run("no space", func(t *testing.T) {
		out := t.TempDir()
		s := hostDumpServer(t, false)
		little := func(string) (uint64, error) { return 32 << 10, nil }
		_, err := HostDumpWith(context.Background(), dial(t, s), HostDumpConfig{OutDir: out, Now: now, freeSpace: little})
		if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "0.0 MiB free") || !strings.Contains(err.Error(), "--out") {
			t.Errorf("err = %v", err)
		}
		if strings.Contains(strings.Join(s.Executed(), " "), "dump-guest-memory") {
			t.Error("dumped without the space for it")
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("left behind: %v", ents)
		}
	})
	t.Run("invalid", func(t *testing.T) {
		out := t.TempDir()
		s := hostDumpServer(t, true)
		_, err := HostDumpWith(context.Background(), dial(t, s), HostDumpConfig{OutDir: out, Now: now, freeSpace: plenty})
		if !errors.Is(err, ErrDumpInvalid) {
			t.Errorf("err = %v", err)
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("left behind: %v", ents)
		}
	})
}

// slowDumpServer is a fake QEMU whose detached dump-guest-memory writes the dump in pieces
// after it has answered, as QEMU's dump thread does, then announces DUMP_COMPLETED; with hang
// it writes the first piece and never finishes; extra is written after the dump.
func slowDumpServer(t *testing.T, hang bool, extra ...byte) *qmptest.Server {
	s := hostDumpServer(t, false)
	var img bytes.Buffer
	if err := dump.Write(&img, dump.Spec{Type: dump.TypeFull, Is64: true, BugCheck: dump.BugCheckLiveSystemDump,
		SystemTime: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC), Runs: []dump.Run{{BasePage: 1, PageCount: 256}}}, nil); err != nil {
		t.Fatal(err)
	}
	img.Write(extra)
	s.Handle("dump-guest-memory", func(a json.RawMessage) (any, *qmptest.Error) {
		var args struct {
			Protocol string `json:"protocol"`
		}
		json.Unmarshal(a, &args)
		path := strings.TrimPrefix(args.Protocol, "file:")
		go func() {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			b := img.Bytes()
			for off := 0; off < len(b); off += 64 << 10 {
				f.Write(b[off:min(len(b), off+64<<10)])
				if hang {
					return
				}
				time.Sleep(2 * time.Millisecond)
			}
			s.Event("DUMP_COMPLETED", map[string]any{"result": map[string]any{"status": "completed", "completed": len(b), "total": len(b)}})
		}()
		return map[string]any{}, nil
	})
	return s
}

func TestHostDumpFollowsWriter(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		out := t.TempDir()
		rep, err := HostDumpWith(context.Background(), dial(t, slowDumpServer(t, false)), HostDumpConfig{OutDir: out, Name: "g.dmp", freeSpace: plenty})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(out, "g.dmp"))
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if rep.Size != int64(len(b)) || rep.Size != 0x2000+256*0x1000 || rep.SHA256 != hex.EncodeToString(sum[:]) || !rep.Check.OK() {
			t.Errorf("report: size %d sha256 %s; file %d bytes sha256 %x", rep.Size, rep.SHA256, len(b), sum)
		}
	})
	t.Run("longer than its header says", func(t *testing.T) {
		out := t.TempDir()
		_, err := HostDumpWith(context.Background(), dial(t, slowDumpServer(t, false, make([]byte, 4096)...)), HostDumpConfig{OutDir: out, Name: "g.dmp", freeSpace: plenty})
		if !errors.Is(err, ErrDumpInvalid) || !strings.Contains(err.Error(), "4096 more than") {
			t.Errorf("err = %v", err)
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("left behind: %v", ents)
		}
	})
	t.Run("interrupted", func(t *testing.T) {
		out := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { // Ctrl-C once QEMU has begun writing
			for ctx.Err() == nil {
				tmps, _ := filepath.Glob(filepath.Join(out, ".crashkey-dump-*.tmp"))
				if len(tmps) == 1 {
					if st, err := os.Stat(tmps[0]); err == nil && st.Size() > 0 {
						cancel()
					}
				}
				time.Sleep(time.Millisecond)
			}
		}()
		_, err := HostDumpWith(ctx, dial(t, slowDumpServer(t, true)), HostDumpConfig{OutDir: out, Name: "g.dmp", freeSpace: plenty})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v", err)
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("left behind: %v", ents)
		}
	})
}
