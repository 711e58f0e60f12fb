package registry

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/internal/hivetest"
)

// The damage tests take a hive made by hivexregedit and free one cell, as a guest whose
// disk lost a write leaves it: the cell's size turns positive ("not allocated"). The cell is
// found by its name, independently of the reader: a key node holds its name at byte 76 of
// the cell data ("nk" signature first), a value at byte 20 ("vk").

// freeCell marks the key (sig "nk") or value (sig "vk") cell named name as unallocated.
func freeCell(t *testing.T, hive []byte, sig, name string) []byte {
	t.Helper()
	b, err := hivetest.FreeCell(hive, sig, name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func damagedHive(t *testing.T, extra ...string) []byte {
	t.Helper()
	regs := append([]string{baseReg("ServerNT"), armReg(t, ArmOptions{}),
		reg(cs1(`Control\Unrelated`), `"Junk"=dword:00000001`, ``, cs1(`Control\Zzz`)),
		reg(cs1(`Services\kbdhid\crashdump`), `"Dump1Keys"=dword:00000002`, `"Dump2Key"=dword:0000003d`),
		reg(cs1(`Control\CrashControl`), `"LogEvent"=dword:00000001`)}, extra...)
	b, err := os.ReadFile(buildHive(t, regs...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDamagedHive(t *testing.T) {
	good := damagedHive(t)
	s, err := ReadHive(bytes.NewReader(good), int64(len(good)))
	if err != nil || len(s.Damage) != 0 {
		t.Fatalf("the undamaged hive: %v, %+v", err, s)
	}
	for _, tc := range []struct {
		name, sig, cell string
		ok              bool
		ids             []string // problem IDs that must be there
		msg             string
	}{
		{"a key far from what preflight reads", "nk", "Unrelated", true, []string{"warning:hive-damage"}, `the hive is damaged under ControlSet001\Control (subkey entry`},
		{"kbdhid's service key", "nk", "kbdhid", false, []string{"error:hotkey-damaged"}, `whether kbdhid has a crash hotkey is unknown: its keys in the hive are damaged (ControlSet001\Services\kbdhid cannot be read: 1 damaged entry of ControlSet001\Services's subkey list may hold it (subkey entry`},
		{"kbdhid's crashdump key under CrashOnCtrlScroll", "nk", "crashdump", true, nil, ""},
		{"CrashControl", "nk", "CrashControl", false, []string{"error:dump-damaged"}, `the crash dump settings are unknown`},
		{"an unneeded CrashControl value", "vk", "LogEvent", true, []string{"warning:hive-damage"}, `some values of Control\CrashControl cannot be read`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := freeCell(t, good, tc.sig, tc.cell)
			s, err := ReadHive(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Damage) == 0 {
				t.Fatal("no damage noted")
			}
			r := Check(s, CheckOptions{})
			ids := strings.Join(problemIDs(r), ",")
			for _, id := range tc.ids {
				if !strings.Contains(ids, id) {
					t.Errorf("problems %s lack %s", ids, id)
				}
			}
			if r.OK != tc.ok {
				t.Errorf("ok = %v; problems %+v", r.OK, r.Problems)
			}
			all := ""
			for _, p := range r.Problems {
				all += p.Message + "\n"
			}
			if !strings.Contains(all, tc.msg) || tc.msg != "" && !strings.Contains(all, "is not allocated") {
				t.Errorf("problems do not say %q (and name the unallocated cell):\n%s", tc.msg, all)
			}
			var text strings.Builder
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if tc.cell == "kbdhid" && !strings.Contains(text.String(), "kbdhid   (USB)     start type not set; HOTKEY UNKNOWN: unknown (damaged)") {
				t.Errorf("report:\n%s", text.String())
			}
		})
	}
	// Nothing useful: the Select key or the control set is unreadable.
	for _, cell := range []string{"Select", "ControlSet001"} {
		b := freeCell(t, good, "nk", cell)
		if _, err := ReadHive(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrCorruptHive) || !strings.Contains(err.Error(), "is not allocated") {
			t.Errorf("%s freed: err = %v", cell, err)
		}
	}
}
