package xkb

import (
	"bufio"
	"bytes"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Positions are the xkb names of the keys whose labels depend on the layout, in the order of
// the generated table: the number row with the JIS yen key (AE13), the three letter rows, the
// backslash key (BKSL, AC12), the ISO key left of Z (LSGT) and the JIS ro key (AB11).
var Positions = func() []string {
	p := []string{"TLDE"}
	for i := 1; i <= 13; i++ {
		p = append(p, fmt.Sprintf("AE%02d", i))
	}
	for i := 1; i <= 12; i++ {
		p = append(p, fmt.Sprintf("AD%02d", i))
	}
	for i := 1; i <= 11; i++ {
		p = append(p, fmt.Sprintf("AC%02d", i))
	}
	p = append(p, "BKSL", "LSGT")
	for i := 1; i <= 11; i++ {
		p = append(p, fmt.Sprintf("AB%02d", i))
	}
	return p
}()

// Levels is the number of shift levels kept per key: 1 plain, 2 Shift, 3 AltGr, 4 Shift+AltGr.
const NumLevels = 4

// VariantsOf are the layouts whose every variant goes into the table (all other layouts come
// with their default variant only).
var VariantsOf = []string{"us", "gb", "fr", "de", "ch", "be", "it", "es", "pt", "nl", "se", "no", "dk", "fi", "pl", "cz", "hu", "ru", "jp"}

// Layout is one generated layout: its name ("de" or "de:nodeadkeys"), description, and for
// each level the character on each position (a space for none) and which are dead keys.
type Layout struct {
	Name, Description string
	Chars             [NumLevels][]rune
	Dead              [NumLevels]uint64
	// Syms maps the keysym names of level 1 to their characters ("eacute": 'é').
	Syms map[string]rune
}

// Options locate the inputs.
type Options struct {
	// Root is the xkb data directory (/usr/share/X11/xkb).
	Root string
	// Keysymdef is X11's keysymdef.h (/usr/include/X11/keysymdef.h).
	Keysymdef string
}

// DefaultOptions are Debian's paths (packages xkb-data and x11proto-dev).
var DefaultOptions = Options{Root: "/usr/share/X11/xkb", Keysymdef: "/usr/include/X11/keysymdef.h"}

// Layouts resolves every layout of rules/evdev.lst (with all variants of VariantsOf), as
// setxkbmap would build it: symbols pc+LAYOUT(VARIANT). Skipped names (a variant the rules map
// to another file) are returned with the reason.
func Layouts(o Options) ([]Layout, []string, error) {
	ks, err := ReadKeysyms(o.Keysymdef)
	if err != nil {
		return nil, nil, err
	}
	r, err := NewResolver(o.Root)
	if err != nil {
		return nil, nil, err
	}
	names, descs, err := readList(filepath.Join(o.Root, "rules/evdev.lst"))
	if err != nil {
		return nil, nil, err
	}
	var out []Layout
	var skipped []string
	for _, name := range names {
		file, variant, _ := strings.Cut(name, ":")
		spec := "pc+" + file
		if variant != "" {
			spec += "(" + variant + ")"
		}
		km, err := r.Resolve(spec)
		if err != nil {
			skipped = append(skipped, fmt.Sprintf("%s: %v", name, err))
			continue
		}
		l := Layout{Name: name, Description: descs[name], Syms: map[string]rune{}}
		hasChar := false
		for lv := 0; lv < NumLevels; lv++ {
			l.Chars[lv] = []rune(strings.Repeat(" ", len(Positions)))
			for i, pos := range Positions {
				levels := km[pos]
				if lv >= len(levels) {
					continue
				}
				c, dead, ok := ks.Char(levels[lv])
				if !ok || c == ' ' {
					continue
				}
				l.Chars[lv][i] = c
				if lv == 0 && !dead {
					l.Syms[levels[lv]] = c
				}
				if dead {
					l.Dead[lv] |= 1 << i
				}
				hasChar = hasChar || lv == 0 && pos == "AD01"
			}
		}
		if !hasChar {
			skipped = append(skipped, name+": no character on <AD01>")
			continue
		}
		out = append(out, l)
	}
	return out, skipped, nil
}

// readList reads the layouts and variants of an xkb rules .lst file, keeping the layouts of
// "! layout" and the variants of VariantsOf.
func readList(path string) ([]string, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("xkb: %w", err)
	}
	defer f.Close()
	want := map[string]bool{}
	for _, v := range VariantsOf {
		want[v] = true
	}
	var names []string
	descs := map[string]string{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "!") {
			section = strings.TrimSpace(line[1:])
			continue
		}
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		switch section {
		case "layout":
			names = append(names, fields[0])
			descs[fields[0]] = strings.Join(fields[1:], " ")
		case "variant":
			base := strings.TrimSuffix(fields[1], ":")
			if want[base] && len(fields) > 2 {
				n := base + ":" + fields[0]
				names = append(names, n)
				descs[n] = strings.Join(fields[2:], " ")
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("xkb: %s: %w", path, err)
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("xkb: %s lists no layouts", path)
	}
	sort.Strings(names)
	return names, descs, nil
}

// Generate returns the Go source of package layout's table (tables_gen.go): the evdev codes of
// Positions and every layout of Layouts.
func Generate(o Options) ([]byte, []string, error) {
	codes, err := EvdevCodes(o.Root)
	if err != nil {
		return nil, nil, err
	}
	ls, skipped, err := Layouts(o)
	if err != nil {
		return nil, nil, err
	}
	var b bytes.Buffer
	b.WriteString("// Code generated by scancodes/layout/internal/gen from xkeyboard-config (xkb-data) and X11's keysymdef.h; DO NOT EDIT.\n\n")
	b.WriteString("package layout\n\n")
	b.WriteString("// positions are the Linux evdev codes of the layout-dependent keys (xkb keycodes/evdev\n// minus 8), in the order of each table's characters.\n")
	b.WriteString("var positions = [...]uint16{\n")
	for _, p := range Positions {
		c, ok := codes[p]
		if !ok {
			return nil, nil, fmt.Errorf("xkb: keycodes/evdev has no <%s>", p)
		}
		fmt.Fprintf(&b, "\t%d, // <%s>\n", c, p)
	}
	b.WriteString("}\n\n")
	b.WriteString("// tables are the layouts: the character of every position on each level (a space: none), and\n// the dead keys of each level as a bit per position.\n")
	b.WriteString("var tables = []table{\n")
	for _, l := range ls {
		fmt.Fprintf(&b, "\t{%s, %s, [%d]string{", strconv.Quote(l.Name), strconv.Quote(l.Description), NumLevels)
		for lv := 0; lv < NumLevels; lv++ {
			if lv > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Quote(string(l.Chars[lv])))
		}
		fmt.Fprintf(&b, "}, [%d]uint64{", NumLevels)
		for lv := 0; lv < NumLevels; lv++ {
			if lv > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%#x", l.Dead[lv])
		}
		b.WriteString("}},\n")
	}
	b.WriteString("}\n\n")
	syms := map[string]rune{}
	for _, l := range ls {
		for n, c := range l.Syms {
			if len(n) > 1 && !strings.HasPrefix(n, "U") && !strings.HasPrefix(n, "0x") {
				syms[n] = c
			}
		}
	}
	var names []string
	for n := range syms {
		names = append(names, n)
	}
	sort.Strings(names)
	b.WriteString("// keysymNames are the keysym names on level 1 of some layout, with their characters.\n")
	b.WriteString("var keysymNames = map[string]rune{\n")
	for _, n := range names {
		fmt.Fprintf(&b, "\t%s: %s,\n", strconv.Quote(n), strconv.QuoteRune(syms[n]))
	}
	b.WriteString("}\n")
	src, err := format.Source(b.Bytes())
	if err != nil {
		return nil, nil, fmt.Errorf("xkb: generated source: %w", err)
	}
	return src, skipped, nil
}
