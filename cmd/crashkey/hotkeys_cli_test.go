package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestKeysAndPlanGolden(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"keys", []string{"keys"}},
		{"keys-table", []string{"keys", "--table"}},
		{"plan-default", []string{"plan"}},
		{"plan-usb-shifts-d", []string{"plan", "--hotkey", "lshift+rshift+d", "--format", "usb"}},
		{"plan-json-registry", []string{"plan", "--dump1keys", "0x02", "--dump2key", "0x3d", "--format", "json"}},
		{"plan-qmp-burst", []string{"plan", "--hotkey", "0x77/0x4f", "--format", "qmp", "--burst"}},
		{"plan-virsh", []string{"plan", "--format", "virsh"}},
		{"simulate-crash", []string{"simulate", "--driver", "i8042prt", "--crash-on-ctrl-scroll", "1", "--set1", "e0 1d 46 c6 46 c6 e0 9d"}},
		{"simulate-chord-usb", []string{"simulate", "--driver", "kbdhid", "--crash-on-ctrl-scroll", "1", "--usb",
			"00 00 00 00 00 00 00 00;10 00 00 00 00 00 00 00;10 00 47 00 00 00 00 00;10 00 47 00 00 00 00 00;10 00 00 00 00 00 00 00;10 00 00 00 00 00 00 00;00 00 00 00 00 00 00 00"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, _ := runCrashkey(t, tt.args...)
			if errOut != "" {
				out += "--- stderr\n" + errOut
			}
			checkGolden(t, "hotkeys/"+tt.name+".golden", out)
		})
	}
}

func TestKeysJSONContract(t *testing.T) {
	out, _, code := runCrashkey(t, "keys", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var keys []map[string]any
	if err := json.Unmarshal([]byte(out), &keys); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 161 {
		t.Errorf("%d keys", len(keys))
	}
	found := false
	for _, k := range keys {
		for _, field := range []string{"qcode", "set1", "linux", "usb", "dump2key", "aliases"} {
			if _, ok := k[field]; !ok {
				t.Fatalf("key %v lacks %q", k["qcode"], field)
			}
		}
		if k["qcode"] == "ctrl_r" {
			found = true
			if k["set1"] != "e01d" || k["linux"] != float64(97) || k["usb"] != float64(0xE4) || k["dump2key"] != float64(64) {
				t.Errorf("ctrl_r: %v", k)
			}
		}
		if k["qcode"] == "meta_l" && k["dump2key"] != nil {
			t.Errorf("meta_l dump2key %v, want null", k["dump2key"])
		}
	}
	if !found {
		t.Error("ctrl_r missing")
	}
}

func TestPlanJSONContract(t *testing.T) {
	out, _, code := runCrashkey(t, "plan", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var doc struct {
		Dump1Keys uint32 `json:"dump1keys"`
		Dump2Key  uint32 `json:"dump2key"`
		Hotkey    string `json:"hotkey"`
		Set1      string `json:"set1"`
		Events    []struct {
			Key     string `json:"key"`
			Down    bool   `json:"down"`
			DelayMS int    `json:"delay_ms"`
		} `json:"events"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Dump1Keys != 2 || doc.Dump2Key != 125 || doc.Hotkey != "RCtrl+ScrollLock" || doc.Set1 != "e0 1d 46 c6 46 c6 e0 9d" || len(doc.Events) != 6 {
		t.Errorf("plan json: %+v", doc)
	}
	if doc.Events[0].Key != "ctrl_r" || !doc.Events[0].Down || doc.Events[0].DelayMS != 100 || doc.Events[5].Down {
		t.Errorf("events: %+v", doc.Events)
	}
}

func TestSimulateExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		contains string
	}{
		{"crash", []string{"--driver", "i8042prt", "--crash-on-ctrl-scroll", "1", "--set1", "e0 1d 46 c6 46 c6 e0 9d"}, 0, `"at": 5`},
		{"no crash", []string{"--driver", "i8042prt", "--crash-on-ctrl-scroll", "1", "--set1", "1d 46 c6 46 c6 9d"}, 1, `"crash": false`},
		{"client default over usb", []string{"--driver", "kbdhid", "--client", "--usb", "22 00 35 00 00 00 00 00;22 00 00 00 00 00 00 00;22 00 35 00 00 00 00 00;22 00 00 00 00 00 00 00"}, 0, `"hotkey": "LShift+RShift+Grave"`},
		{"raw registry values", []string{"--driver", "i8042prt", "--dump1keys", "0x02", "--dump2key", "0x3d", "--set1", "e0 1d 39 b9 39 b9 e0 9d"}, 0, `"registry": "0x02/0x3d"`},
		{"unfireable registry values", []string{"--driver", "i8042prt", "--dump1keys", "0x08", "--dump2key", "1", "--set1", "29 a9 29 a9"}, 1, "can never fire"},
		{"bad hex", []string{"--driver", "i8042prt", "--set1", "e0 zz"}, 2, ""},
		{"short report", []string{"--driver", "kbdhid", "--usb", "10 00 47"}, 2, ""},
		{"wrong input for driver", []string{"--driver", "kbdhid", "--set1", "e0 1d"}, 2, ""},
		{"both inputs", []string{"--driver", "kbdhid", "--set1", "e0", "--usb", "00 00 00 00 00 00 00 00"}, 2, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runCrashkey(t, append([]string{"simulate", "--json"}, tt.args...)...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d (stderr %q)", code, tt.code, errOut)
			}
			if !strings.Contains(out+errOut, tt.contains) {
				t.Errorf("output lacks %q:\n%s%s", tt.contains, out, errOut)
			}
			if code == 2 && (!strings.HasPrefix(errOut, "crashkey: ") || strings.Count(errOut, "\n") != 1) {
				t.Errorf("bad input must give one error line on stderr, got %q", errOut)
			}
		})
	}
}

func TestPlanBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"plan", "--hotkey", "rctrl+lwin"},
		{"plan", "--hotkey", "scroll"},
		{"plan", "--dump1keys", "0x08", "--dump2key", "125"},
		{"plan", "--dump1keys", "2", "--dump2key", "200"},
		{"plan", "--dump1keys", "2"},
		{"plan", "--hotkey", "rctrl+scroll", "--dump1keys", "2", "--dump2key", "125"},
		{"plan", "--format", "xml"},
		{"plan", "extra-arg"},
	} {
		_, errOut, code := runCrashkey(t, args...)
		if code != 2 || !strings.HasPrefix(errOut, "crashkey: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 with one error line", args, code, errOut)
		}
	}
}
