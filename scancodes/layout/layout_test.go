package layout

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/internal/golden"
	"github.com/crashkey/crashkey/scancodes"
)

func mustGet(t *testing.T, name string) *Layout {
	t.Helper()
	l, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func key(t *testing.T, qcode string) *scancodes.Key {
	t.Helper()
	k, ok := scancodes.ByQCode(qcode)
	if !ok {
		t.Fatalf("no key %s", qcode)
	}
	return k
}

// The layouts the issue names are all there, with variants.
func TestNamedLayouts(t *testing.T) {
	for _, n := range []string{"us", "gb", "fr", "de", "ch", "be", "it", "es", "pt", "nl", "se", "no", "dk", "fi", "pl", "cz", "hu", "ru", "jp",
		"de:nodeadkeys", "fr:oss", "us:intl", "us:dvorak", "ch:fr", "DE(nodeadkeys)"} {
		l := mustGet(t, n)
		if l.Description == "" {
			t.Errorf("%s has no description", n)
		}
	}
	if _, err := Get("xx"); err == nil || !strings.Contains(err.Error(), "unknown keyboard layout") {
		t.Errorf("Get(xx) = %v", err)
	}
	if _, err := Get("de:nodead"); err == nil || !strings.Contains(err.Error(), "de:nodeadkeys") {
		t.Errorf("Get(de:nodead) = %v, want a suggestion", err)
	}
}

// On the US layout every name crashkey knew means the same key as before.
func TestUSLookupUnchanged(t *testing.T) {
	us := US()
	n := 0
	for i := range scancodes.All() {
		k := &scancodes.All()[i]
		for _, name := range append(scancodes.Names(k), k.QCode, k.Name()) {
			want, err := scancodes.Lookup(name)
			if err != nil {
				continue
			}
			got, err := us.Lookup(name)
			if err != nil || got != want {
				t.Errorf("us.Lookup(%q) = %v, %v; scancodes.Lookup gives %s", name, got, err, want.QCode)
			}
			n++
		}
	}
	if n < 500 {
		t.Fatalf("only %d names checked", n)
	}
	// Labels that were no names before now work on US too.
	for label, qcode := range map[string]string{";": "semicolon", "[": "bracket_left", "\\": "backslash", "'": "apostrophe", "`": "grave_accent", "/": "slash", ".": "dot", "=": "equal", "-": "minus", "<": "less"} {
		if k, err := us.Lookup(label); err != nil || k.QCode != qcode {
			t.Errorf("us.Lookup(%q) = %v, %v; want %s", label, k, err, qcode)
		}
	}
}

func TestLabels(t *testing.T) {
	cases := []struct {
		layout, label, qcode string
	}{
		{"fr", "a", "q"}, {"fr", "A", "q"}, {"fr", "q", "a"}, {"fr", "z", "w"}, {"fr", "w", "z"}, {"fr", "m", "semicolon"},
		{"fr", "é", "2"}, {"fr", "É", "2"}, {"fr", "&", "1"}, {"fr", "à", "0"}, {"fr", ";", "comma"}, {"fr", "^", "bracket_left"},
		{"de", "z", "y"}, {"de", "y", "z"}, {"de", "ß", "minus"}, {"de", "ü", "bracket_left"}, {"de", "Ö", "semicolon"}, {"de", "#", "backslash"},
		{"de", "<", "less"}, {"de", "^", "grave_accent"},
		{"de:nodeadkeys", "^", "grave_accent"},
		{"ch", "z", "y"}, {"ch", "$", "backslash"},
		{"be", "a", "q"}, {"it", "ò", "semicolon"}, {"es", "ñ", "semicolon"}, {"se", "å", "bracket_left"},
		{"pl", "z", "z"}, {"cz", "z", "y"}, {"hu", "z", "y"}, {"hu", "0", "grave_accent"},
		{"ru", "ф", "a"}, {"ru", "Й", "q"},
		{"jp", "@", "bracket_left"}, {"jp", "^", "equal"},
		{"gb", "#", "backslash"},
		{"us:dvorak", "a", "a"}, {"us:dvorak", "o", "s"},
	}
	for _, c := range cases {
		t.Run(c.layout+" "+c.label, func(t *testing.T) {
			k, err := mustGet(t, c.layout).KeyFor(c.label)
			if err != nil || k.QCode != c.qcode {
				t.Fatalf("KeyFor(%q) = %v, %v; want %s", c.label, k, err, c.qcode)
			}
		})
	}
}

func TestLabelRefused(t *testing.T) {
	cases := []struct {
		layout, label string
		want          []string // substrings of the error
	}{
		// @ is AltGr+à (US 0) and AltGr+Q-position on fr.
		{"fr", "@", []string{"no key of AZERTY fr types @ without a modifier", "à (AltGr gives @; the US 0 position, Dump2Key 0x0b)", "Q (AltGr gives @; the US A position, Dump2Key 0x1f)"}},
		// Digits need Shift on fr.
		{"fr", "1", []string{"without a modifier", "& (Shift gives 1; the US 1 position, Dump2Key 0x02)"}},
		// On jp, backslash is on both JIS keys.
		{"jp", "\\", []string{"\\ is on 2 keys of QWERTY jp", "yen (the US IntlYen position, Dump2Key 0x0e)", "ro (the US IntlRo position, Dump2Key 0x38)"}},
		// A Latin letter on Russian: the US layout has it.
		{"ru", "q", []string{"no key of ЙЦУКЕН ru carries q", "q on a US keyboard (--layout us; on ru that key is Й)"}},
		{"us", "€", []string{"no key of QWERTY us carries €"}},
	}
	for _, c := range cases {
		t.Run(c.layout+" "+c.label, func(t *testing.T) {
			k, err := mustGet(t, c.layout).KeyFor(c.label)
			var le *LabelError
			if !errors.As(err, &le) {
				t.Fatalf("KeyFor(%q) = %v, %v; want a *LabelError", c.label, k, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// Every label carried by exactly one key without a modifier resolves to that key and back.
func TestRoundTrip(t *testing.T) {
	for _, l := range All() {
		count := map[rune]int{}
		caps := map[string]int{}
		for _, kl := range l.Labels() {
			if c := kl.Chars[0]; c != 0 {
				count[c]++
				caps[l.Label(kl.Key)]++
			}
		}
		for _, kl := range l.Labels() {
			c := kl.Chars[0]
			if c == 0 || count[c] > 1 {
				continue
			}
			k, err := l.KeyFor(string(c))
			if err != nil || k != kl.Key {
				t.Errorf("%s: KeyFor(%q) = %v, %v; want %s", l.Name, string(c), k, err, kl.Key.QCode)
				continue
			}
			// The keycap label reads back to the same key (a capital for letters).
			if caps[l.Label(k)] > 1 || count[[]rune(l.Label(k))[0]] > 0 && []rune(l.Label(k))[0] != c {
				continue // Greek Σ is both σ and ς; Turkish I is ı while i is another key
			}
			if k2, err := l.Lookup(l.Label(k)); err != nil || k2 != k {
				t.Errorf("%s: Lookup(Label(%s) = %q) = %v, %v", l.Name, k.QCode, l.Label(k), k2, err)
			}
		}
	}
}

func TestKindAndTitle(t *testing.T) {
	for name, want := range map[string]string{"us": "QWERTY us", "fr": "AZERTY fr", "de": "QWERTZ de", "de:nodeadkeys": "QWERTZ de:nodeadkeys", "ru": "ЙЦУКЕН ru", "us:dvorak": "us:dvorak"} {
		if got := mustGet(t, name).Title(); got != want {
			t.Errorf("%s.Title() = %q, want %q", name, got, want)
		}
	}
	// Keys outside the alphanumeric block keep their names.
	fr := mustGet(t, "fr")
	for _, q := range []string{"scroll_lock", "ctrl_r", "f5", "spc", "kp_1"} {
		if got := fr.Label(key(t, q)); got != key(t, q).Name() {
			t.Errorf("fr.Label(%s) = %q", q, got)
		}
		if k, err := fr.Lookup(q); err != nil || k.QCode != q {
			t.Errorf("fr.Lookup(%s) = %v, %v", q, k, err)
		}
	}
	// Keysym names read as labels.
	if k, err := mustGet(t, "de").Lookup("udiaeresis"); err != nil || k.QCode != "bracket_left" {
		t.Errorf("de.Lookup(udiaeresis) = %v, %v", k, err)
	}
	if k, err := fr.Lookup("eacute"); err != nil || k.QCode != "2" {
		t.Errorf("fr.Lookup(eacute) = %v, %v", k, err)
	}
}

// tableText renders a layout's table for the golden files.
func tableText(l *Layout) string {
	var b strings.Builder
	fmt.Fprintf(&b, "layout %s: %s (%s)\n", l.Name, l.Description, l.Title())
	for _, kl := range l.Labels() {
		idx := "-"
		if kl.Key.Dump2Key >= 0 {
			idx = fmt.Sprint(kl.Key.Dump2Key)
		}
		fmt.Fprintf(&b, "%-13s linux %3d dump2key %3s  label %-2s levels", kl.Key.QCode, kl.Key.Linux, idx, l.Label(kl.Key))
		for lv := 0; lv < Levels; lv++ {
			switch {
			case kl.Chars[lv] == 0:
				b.WriteString(" ·")
			case kl.Dead[lv]:
				fmt.Fprintf(&b, " %c(dead)", kl.Chars[lv])
			default:
				fmt.Fprintf(&b, " %c", kl.Chars[lv])
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// goldenLayouts have golden tables (checked against xkb-data by TestAgainstXkbcomp).
var goldenLayouts = []string{"us", "gb", "fr", "de", "de:nodeadkeys", "ch", "be", "it", "es", "se", "pl", "cz", "ru", "jp"}

func TestGoldenTables(t *testing.T) {
	for _, n := range goldenLayouts {
		golden.CheckString(t, "testdata/"+strings.ReplaceAll(n, ":", "_")+".txt", tableText(mustGet(t, n)))
	}
}
