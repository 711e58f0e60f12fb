package layout

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/scancodes/layout/internal/xkb"
)

// needXKB skips (or, in CI, where scripts/deps.sh installs them, fails) a test that needs
// xkb-data, x11proto-dev and, with tool, x11-xkb-utils.
func needXKB(t *testing.T, tool string) {
	t.Helper()
	var missing []string
	for _, p := range []string{xkb.DefaultOptions.Root + "/symbols/us", xkb.DefaultOptions.Keysymdef} {
		if _, err := os.Stat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if tool != "" {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "missing " + strings.Join(missing, ", ") + " (scripts/deps.sh installs xkb-data, x11proto-dev and x11-xkb-utils)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// The committed table is what the generator makes from the installed xkb-data.
func TestGeneratedTableUpToDate(t *testing.T) {
	needXKB(t, "")
	src, _, err := xkb.Generate(xkb.DefaultOptions)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("tables_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, committed) {
		t.Fatal("tables_gen.go differs from what the installed xkb-data gives: run go generate ./scancodes/layout and commit the result")
	}
}

// xkbcompSymbols compiles the keymap of symbols spec with X.org's xkbcomp (an independent
// implementation of includes and merging) and returns group 1 of every key.
func xkbcompSymbols(t *testing.T, spec string) xkb.Keymap {
	t.Helper()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.xkb")
	src := `xkb_keymap {
	xkb_keycodes { include "evdev+aliases(qwerty)" };
	xkb_types    { include "complete" };
	xkb_compat   { include "complete" };
	xkb_symbols  { include "` + spec + `" };
};
`
	if err := os.WriteFile(in, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.xkb")
	cmd := exec.Command("xkbcomp", "-w", "0", "-I"+xkb.DefaultOptions.Root, "-xkb", in, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xkbcomp %s: %v\n%s", spec, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "xkb_symbols")
	if start < 0 {
		t.Fatalf("xkbcomp output has no xkb_symbols")
	}
	text = text[start:]
	if end := strings.Index(text, "\n};"); end >= 0 {
		text = text[:end+3]
	}
	secs, err := xkb.ParseSymbols(text)
	if err != nil || len(secs) != 1 {
		t.Fatalf("xkbcomp's symbols: %v (%d sections)", err, len(secs))
	}
	km := xkb.Keymap{}
	for _, st := range secs[0].Stmts {
		km[st.Key] = st.Syms
	}
	return km
}

// The golden layouts' tables agree, key by key and level by level, with the keymaps xkbcomp
// compiles from the same xkb-data.
func TestAgainstXkbcomp(t *testing.T) {
	needXKB(t, "xkbcomp")
	ks, err := xkb.ReadKeysyms(xkb.DefaultOptions.Keysymdef)
	if err != nil {
		t.Fatal(err)
	}
	names := goldenLayouts
	if os.Getenv("CRASHKEY_ALL_LAYOUTS") != "" {
		names = Names()
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			file, variant, _ := strings.Cut(name, ":")
			spec := "pc+" + file
			if variant != "" {
				spec += "(" + variant + ")"
			}
			km := xkbcompSymbols(t, spec)
			l := mustGet(t, name)
			checked := 0
			for i, pos := range xkb.Positions {
				syms := km[pos]
				for lv := 0; lv < Levels; lv++ {
					var want rune
					var wantDead bool
					if lv < len(syms) {
						if c, dead, ok := ks.Char(syms[lv]); ok && c != ' ' {
							want, wantDead = c, dead
						}
					}
					got := l.chars[lv][i]
					gotDead := l.dead[lv]&(1<<i) != 0
					if got != want || gotDead != wantDead {
						t.Errorf("<%s> level %d: table %q (dead %v), xkbcomp %q (%v, dead %v)", pos, lv+1, got, gotDead, want, syms, wantDead)
					}
					if want != 0 {
						checked++
					}
				}
			}
			if checked < 90 {
				t.Errorf("only %d characters compared", checked)
			}
		})
	}
}
