package vm

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crashkey/crashkey/vm/qmptest"
)

// fakeDump makes s answer dump-guest-memory like QEMU 7.2 with detach: success at once, then
// query-dump "active" and finally result, announced by DUMP_COMPLETED with errMsg.
func fakeDump(s *qmptest.Server, errMsg string, args *[]json.RawMessage, mu *sync.Mutex) {
	var calls int
	s.Handle("query-memory-size-summary", func(json.RawMessage) (any, *qmptest.Error) {
		return map[string]uint64{"base-memory": 256 << 20}, nil
	})
	s.Handle("dump-guest-memory", func(a json.RawMessage) (any, *qmptest.Error) {
		mu.Lock()
		*args = append(*args, a)
		mu.Unlock()
		go func() {
			time.Sleep(150 * time.Millisecond)
			status, data := "completed", map[string]any{}
			if errMsg != "" {
				status, data["error"] = "failed", errMsg
			}
			data["result"] = map[string]any{"status": status, "completed": 4096, "total": 4096}
			s.Event("DUMP_COMPLETED", data)
		}()
		return map[string]any{}, nil
	})
	s.Handle("query-dump", func(json.RawMessage) (any, *qmptest.Error) {
		mu.Lock()
		calls++
		mu.Unlock()
		return map[string]any{"status": "active", "completed": 2048, "total": 4096}, nil
	})
}

func TestQMPDumpMemory(t *testing.T) {
	withDevice := []qmptest.Device{{Container: "/machine/peripheral-anon", Name: "device[1]", Type: "vmcoreinfo"}}
	tests := []struct {
		name    string
		devices []qmptest.Device
		format  DumpFormat
		qemuErr string
		want    error
		wantMsg string
	}{
		{"win-dmp", withDevice, DumpWinDmp, "", nil, ""},
		{"elf", nil, DumpELF, "", nil, ""},
		{"no note", withDevice, DumpWinDmp, "win-dump: invalid vmcoreinfo note size", ErrNoDumpHeader, "FwCfg"},
		{"no device", nil, DumpWinDmp, "win-dump: invalid vmcoreinfo note size", ErrNoVMCoreInfo, "-device vmcoreinfo"},
		{"linux note", withDevice, DumpWinDmp, "win-dump: invalid header, expected 'PAGE', got 'VMCO'", ErrNoDumpHeader, "not a DUMP_HEADER64"},
		{"32-bit", withDevice, DumpWinDmp, "win-dump: invalid header, expected 'DU64', got 'DUMP'", Err32BitGuest, "upgrade QEMU"},
		{"stale", withDevice, DumpWinDmp, "win-dump: invalid KDBG OwnerTag, expected 'KDBG', got '\x00\x00\x00\x00'", ErrBadDumpHeader, "stale"},
		{"io error", withDevice, DumpELF, "dump: failed to save memory: No space left on device", nil, "No space left"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := qmptest.New(t)
			s.Update(func(s *qmptest.Server) { s.Devices = tt.devices })
			var args []json.RawMessage
			var mu sync.Mutex
			fakeDump(s, tt.qemuErr, &args, &mu)
			d, ok := AsHostDumper(dialFake(t, s, Options{}))
			if !ok {
				t.Fatal("a QMP target is not a HostDumper")
			}
			info, err := d.HostDumpInfo(context.Background())
			if err != nil || info.MemoryBytes != 256<<20 || info.VMCoreInfo != (tt.devices != nil) || !info.Local {
				t.Fatalf("info %+v, %v", info, err)
			}
			var progress [][2]int64
			err = d.DumpMemory(context.Background(), "/tmp/x.dmp", HostDumpOptions{Format: tt.format, Poll: 20 * time.Millisecond,
				Progress: func(done, total int64) { progress = append(progress, [2]int64{done, total}) }})
			switch {
			case tt.wantMsg == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tt.wantMsg) || !strings.Contains(err.Error(), tt.qemuErr)):
				t.Fatalf("err = %v, want one with %q and QEMU's message", err, tt.wantMsg)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			mu.Lock()
			defer mu.Unlock()
			var a struct {
				Paging   bool   `json:"paging"`
				Protocol string `json:"protocol"`
				Detach   bool   `json:"detach"`
				Format   string `json:"format"`
			}
			if len(args) != 1 || json.Unmarshal(args[0], &a) != nil || !a.Detach || a.Paging || a.Protocol != "file:/tmp/x.dmp" ||
				(a.Format == "win-dmp") != (tt.format == DumpWinDmp) {
				t.Errorf("dump-guest-memory arguments %s", args)
			}
			if err == nil && (len(progress) < 2 || progress[0] != [2]int64{2048, 4096} || progress[len(progress)-1] != [2]int64{4096, 4096}) {
				t.Errorf("progress %v, want query-dump's then DUMP_COMPLETED's", progress)
			}
		})
	}
}

func TestVMCoreInfoFeature(t *testing.T) {
	for doc, want := range map[string]bool{
		`<domain><features><acpi/><vmcoreinfo state='on'/></features></domain>`: true,
		`<domain><features><vmcoreinfo/></features></domain>`:                   true,
		`<domain><features><vmcoreinfo state='off'/></features></domain>`:       false,
		`<domain><features><acpi/></features><devices/></domain>`:               false,
	} {
		if got, err := vmcoreinfoFeature([]byte(doc)); err != nil || got != want {
			t.Errorf("%s: %t, %v; want %t", doc, got, err, want)
		}
	}
	if _, err := vmcoreinfoFeature([]byte("<domain")); err == nil {
		t.Error("broken XML: no error")
	}
}

// FuzzVMCoreInfoFeature: any domain XML gives an answer or an error, never a panic.
func FuzzVMCoreInfoFeature(f *testing.F) {
	f.Add([]byte(`<domain><features><vmcoreinfo state='on'/></features></domain>`))
	f.Add([]byte(`<domain><features><vmcoreinfo/><vmcoreinfo state='off'/></features></domain>`))
	f.Add([]byte(`<domain`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		_, _ = vmcoreinfoFeature(doc)
	})
}

// FuzzClassifyDumpError: any QEMU message maps to an error that keeps the message.
func FuzzClassifyDumpError(f *testing.F) {
	f.Add("win-dump: invalid vmcoreinfo note size", true)
	f.Add("win-dump: invalid header, expected 'DU64', got 'DUMP'", false)
	f.Fuzz(func(t *testing.T, msg string, dev bool) {
		err := classifyDumpError(msg, DumpWinDmp, dev, QMP)
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Fatalf("%q: %v", msg, err)
		}
	})
}
