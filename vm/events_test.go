package vm

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDecodeQMPEvent(t *testing.T) {
	now := time.Unix(1795251645, 0).UTC()
	tests := []struct {
		name, event, data string
		want              string // JSON of the event without time and source
		wantErr           bool
	}{
		{"hv-crash", "GUEST_PANICKED", `{"action":"run","info":{"type":"hyper-v","arg1":226,"arg2":0,"arg3":0,"arg4":0,"arg5":0}}`,
			`"event":"GUEST_PANICKED","action":"run","panic":{"type":"hyper-v","bugcheck":"0xe2","params":["0x0","0x0","0x0","0x0"]}}`, false},
		{"pvpanic", "GUEST_PANICKED", `{"action":"pause"}`, `"event":"GUEST_PANICKED","action":"pause"}`, false},
		{"crashloaded", "GUEST_CRASHLOADED", `{"action":"run"}`, `"event":"GUEST_CRASHLOADED","action":"run"}`, false},
		{"shutdown", "SHUTDOWN", `{"guest":true,"reason":"guest-panic"}`, `"event":"SHUTDOWN","reason":"guest-panic","guest":true}`, false},
		{"reset", "RESET", `{"guest":false,"reason":"host-qmp-system-reset"}`, `"event":"RESET","reason":"host-qmp-system-reset","guest":false}`, false},
		{"stop", "STOP", ``, `"event":"STOP"}`, false},
		{"resume null", "RESUME", `null`, `"event":"RESUME"}`, false},
		{"other", "RTC_CHANGE", `{"offset":3}`, `"event":"RTC_CHANGE","data":{"offset":3}}`, false},
		{"tdx message", "GUEST_PANICKED", `{"action":"run","info":{"type":"tdx","message":"boom"}}`, `"event":"GUEST_PANICKED","action":"run","panic":{"type":"tdx","message":"boom"}}`, false},
		{"hyper-v without arg1", "GUEST_PANICKED", `{"action":"run","info":{"type":"hyper-v"}}`, "", true},
		{"negative arg", "GUEST_PANICKED", `{"info":{"type":"hyper-v","arg1":-1}}`, "", true},
		{"not an object", "SHUTDOWN", `[1]`, "", true},
		{"no name", "", `{}`, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeQMPEvent(tt.event, []byte(tt.data), now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err != nil {
				return
			}
			b, _ := json.Marshal(e)
			prefix := `{"time":"2026-11-21T09:00:45Z","source":"qmp",`
			if !strings.HasPrefix(string(b), prefix) || strings.TrimPrefix(string(b), prefix) != tt.want {
				t.Errorf("got  %s\nwant %s%s", b, prefix, tt.want)
			}
		})
	}
}

func TestHex64JSON(t *testing.T) {
	for _, in := range []string{`"0xfffff80000000000"`, `18446735277616529408`} {
		var h Hex64
		if err := json.Unmarshal([]byte(in), &h); err != nil || h != 0xfffff80000000000 {
			t.Errorf("%s: %x %v", in, uint64(h), err)
		}
	}
	var h Hex64
	if err := json.Unmarshal([]byte(`"zz"`), &h); err == nil {
		t.Error("bad hex accepted")
	}
}

func FuzzDecodeQMPEvent(f *testing.F) {
	f.Add("GUEST_PANICKED", []byte(`{"action":"run","info":{"type":"hyper-v","arg1":226,"arg2":1,"arg3":2,"arg4":3,"arg5":4}}`))
	f.Add("SHUTDOWN", []byte(`{"guest":true,"reason":"guest-reset"}`))
	f.Add("STOP", []byte(nil))
	f.Add("BLOCK_JOB_COMPLETED", []byte(`{"device":"x","len":1}`))
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		e, err := DecodeQMPEvent(name, data, time.Unix(0, 0))
		if err != nil {
			if e.Kind != "" {
				t.Fatal("error with a result")
			}
			return
		}
		if e.Kind != name || name == "" {
			t.Fatalf("kind %q for %q", e.Kind, name)
		}
		if e.Panic != nil && e.Panic.Type == "hyper-v" && (e.Panic.BugCheck == nil || len(e.Panic.Params) != 4) {
			t.Fatal("hyper-v panic without code and four parameters")
		}
		if _, err := json.Marshal(e); err != nil {
			t.Fatalf("event does not marshal: %v", err)
		}
	})
}
