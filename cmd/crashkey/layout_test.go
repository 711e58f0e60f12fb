package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// --layout on plan: the stream is the position's, stderr gives both readings.
func TestPlanLayout(t *testing.T) {
	out, errOut, code := runCrashkey(t, "plan", "--layout", "de", "--hotkey", "rctrl+z")
	if code != ExitOK || out != "e0 1d 15 95 15 95 e0 9d\n" {
		t.Fatalf("plan --layout de --hotkey rctrl+z: exit %d, %q", code, out)
	}
	if want := "hotkey: RCtrl + Z (QWERTZ de; the US Y position, Dump2Key 0x16); at the keyboard: hold RCtrl, press Z twice\n"; errOut != want {
		t.Errorf("stderr = %q, want %q", errOut, want)
	}
	// The default layout prints nothing more than before.
	if _, errOut, _ := runCrashkey(t, "plan", "--hotkey", "rctrl+y"); errOut != "" {
		t.Errorf("plan without --layout wrote %q on stderr", errOut)
	}
	out, _, code = runCrashkey(t, "plan", "--layout", "fr", "--hotkey", "rctrl+a", "--json")
	var doc struct {
		Layout, Labels, Description, Hotkey string
		Dump2Key                            int
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil || code != ExitOK {
		t.Fatalf("plan --json: exit %d, %v", code, err)
	}
	if doc.Layout != "fr" || doc.Labels != "RCtrl+A" || doc.Hotkey != "RCtrl+Q" || doc.Dump2Key != 17 ||
		doc.Description != "RCtrl + A (AZERTY fr; the US Q position, Dump2Key 0x11)" {
		t.Errorf("plan --json = %+v", doc)
	}
}

func TestLayoutUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"plan", "--layout", "fr", "--hotkey", "rctrl+@"}, "no key of AZERTY fr types @ without a modifier (the crash key is a key, pressed with only the hotkey's modifiers held); nearest usable: à (AltGr gives @; the US 0 position, Dump2Key 0x0b)"},
		{[]string{"arm", "--layout", "de", "--hotkey", "rctrl+<"}, "< on QWERTZ de (less, the US IntlBackslash position) is not in the driver's crash-key table"},
		{[]string{"plan", "--layout", "klingon"}, `--layout: unknown keyboard layout "klingon"`},
		{[]string{"keys", "--layout", "de:nodead"}, "did you mean de:nodeadkeys"},
	} {
		_, errOut, code := runCrashkey(t, tc.args...)
		if code != ExitUsage || !strings.Contains(errOut, tc.want) || strings.Count(errOut, "\n") != 1 {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and one line with %q", tc.args, code, errOut, tc.want)
		}
	}
}

func TestKeysLayout(t *testing.T) {
	out, _, code := runCrashkey(t, "keys", "--layout", "fr")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	checkGolden(t, "keys/layout-fr.golden", out)
	out, _, code = runCrashkey(t, "keys", "--layout", "de", "--json")
	var docs []keyDoc
	if err := json.Unmarshal([]byte(out), &docs); err != nil || code != ExitOK {
		t.Fatalf("keys --json: exit %d, %v", code, err)
	}
	labels := map[string]string{}
	for _, d := range docs {
		labels[d.QCode] = d.Label + "|" + strings.Join(d.Levels, ",")
	}
	for q, want := range map[string]string{"y": "Z|z,Z,←,¥", "z": "Y|y,Y,»,›", "minus": "ß|ß,?,\\,¿", "less": "<|<,>,|,", "scroll_lock": "|"} {
		if labels[q] != want {
			t.Errorf("keys --layout de --json: %s = %q, want %q", q, labels[q], want)
		}
	}
	out, _, _ = runCrashkey(t, "keys", "--layouts")
	rows := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			rows[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for name, want := range map[string]string{"de:nodeadkeys": "QWERTZ German (no dead keys)", "fr": "AZERTY French", "jp": "QWERTY Japanese"} {
		if rows[name] != want {
			t.Errorf("keys --layouts: %s = %q, want %q", name, rows[name], want)
		}
	}
}

// arm --layout fr --hotkey rctrl+a arms the US Q position; preflight then reads it back on fr.
func TestArmPreflightLayout(t *testing.T) {
	hive := armedHiveFile(t, "--layout", "fr", "--hotkey", "rctrl+a", "--dedicated-dump-file", `C:\dd.sys`)
	out, errOut, code := runCrashkey(t, "preflight", hive, "--layout", "fr", "--hotkey", "rctrl+a")
	if code != ExitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
	}
	for _, want := range []string{
		"fires on RCtrl+Q = 0x02/0x11 (from crashdump)",
		"at a fr keyboard: hold RCtrl, press A twice (RCtrl+A)",
		"at a fr keyboard: hold RCtrl, press A twice: RCtrl + A (AZERTY fr; the US Q position, Dump2Key 0x11)",
		"PS/2 (i8042prt): fires", "USB  (kbdhid): fires",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// The same position named the US way fires; the US A position does not.
	if _, _, code := runCrashkey(t, "preflight", hive, "--hotkey", "rctrl+q"); code != ExitOK {
		t.Errorf("--hotkey rctrl+q: exit %d, want 0", code)
	}
	if _, _, code := runCrashkey(t, "preflight", hive, "--hotkey", "rctrl+a"); code != ExitNo {
		t.Errorf("--hotkey rctrl+a on US: exit %d, want 1", code)
	}
	out, _, _ = runCrashkey(t, "preflight", hive, "--layout", "fr", "--json")
	var rep struct {
		Layout  string
		Drivers []struct{ Driver, Labels, Press string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Layout != "fr" || len(rep.Drivers) == 0 || rep.Drivers[0].Press != "hold RCtrl, press A twice" {
		t.Errorf("preflight --layout fr --json: %v, %+v", err, rep)
	}
	// arm's outputs carry both readings.
	out, _, _ = runCrashkey(t, "arm", "--layout", "fr", "--hotkey", "rctrl+a")
	if !strings.Contains(out, "; on a fr keyboard: hold RCtrl, press A twice; RCtrl + A (AZERTY fr; the US Q position, Dump2Key 0x11)\r\n") {
		t.Errorf("arm .reg lacks the layout comment:\n%s", out)
	}
	out, _, _ = runCrashkey(t, "arm", "--layout", "fr", "--hotkey", "rctrl+a", "--json")
	var plan struct{ Layout, Labels, Description, Press, Registry string }
	if err := json.Unmarshal([]byte(out), &plan); err != nil || plan.Layout != "fr" || plan.Labels != "RCtrl+A" || plan.Registry != "0x02/0x11" || plan.Press != "hold RCtrl, press A twice" {
		t.Errorf("arm --json: %v, %+v", err, plan)
	}
}
