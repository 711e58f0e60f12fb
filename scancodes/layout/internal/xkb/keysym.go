package xkb

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
)

// Keysyms maps keysym names to the character they type.
type Keysyms map[string]rune

var keysymRE = regexp.MustCompile(`(?m)^#define XK_(\w+)\s+0x([0-9a-fA-F]+)\s*(?:/\*\s*\(?U\+([0-9A-Fa-f]{4,6}))?`)

// ReadKeysyms reads X11's keysymdef.h: every keysym with a Unicode character (the "U+XXXX"
// comment, or Latin-1 for keysyms below 0x100).
func ReadKeysyms(path string) (Keysyms, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("xkb: %w (install x11proto-dev)", err)
	}
	ks := Keysyms{}
	byValue := map[uint64]rune{}
	var unmapped [][]string
	for _, m := range keysymRE.FindAllStringSubmatch(string(src), -1) {
		v, _ := strconv.ParseUint(m[2], 16, 32)
		switch {
		case m[3] != "":
			u, _ := strconv.ParseUint(m[3], 16, 32)
			ks[m[1]] = rune(u)
			byValue[v] = rune(u)
		case v >= 0x20 && v < 0x7f || v >= 0xa0 && v <= 0xff:
			ks[m[1]] = rune(v)
		default:
			unmapped = append(unmapped, m)
		}
	}
	// Deprecated spellings (kana_middledot) have the value of a keysym with a character.
	for _, m := range unmapped {
		v, _ := strconv.ParseUint(m[2], 16, 32)
		if r, ok := byValue[v]; ok {
			ks[m[1]] = r
		}
	}
	if len(ks) < 1000 {
		return nil, fmt.Errorf("xkb: %s: only %d keysyms with a character", path, len(ks))
	}
	return ks, nil
}

// deadKeys are the dead keysyms with the spacing character their keycaps show.
var deadKeys = map[string]rune{
	"dead_grave": '`', "dead_acute": '´', "dead_circumflex": '^', "dead_tilde": '~',
	"dead_perispomeni": '~', "dead_macron": '¯', "dead_breve": '˘', "dead_abovedot": '˙',
	"dead_diaeresis": '¨', "dead_abovering": '˚', "dead_doubleacute": '˝', "dead_caron": 'ˇ',
	"dead_cedilla": '¸', "dead_ogonek": '˛', "dead_iota": 'ͺ', "dead_belowdot": '.',
	"dead_stroke": '/', "dead_abovecomma": '’',
	"dead_psili": '’', "dead_abovereversedcomma": '‘', "dead_dasia": '‘',
	"dead_belowcomma": ',', "dead_currency": '¤', "dead_greek": 'µ',
}

// Char is the character a keysym types and whether it is a dead key (then the character is
// what its keycap shows). ok is false for keysyms that type no character (Shift_L,
// ISO_Level3_Shift, VoidSymbol) and for control characters.
func (ks Keysyms) Char(sym string) (r rune, dead, ok bool) {
	if d, isDead := deadKeys[sym]; isDead {
		return d, true, true
	}
	if r, ok := ks[sym]; ok {
		return r, false, r >= 0x20 && r != 0x7f && !(r >= 0x80 && r < 0xa0)
	}
	switch {
	case len(sym) >= 3 && len(sym) <= 9 && sym[0] == 'U' && isHex(sym[1:]):
		u, err := strconv.ParseUint(sym[1:], 16, 32)
		if err == nil && u >= 0x20 && u <= 0x10ffff {
			return rune(u), false, true
		}
	case strings.HasPrefix(sym, "0x"):
		u, err := strconv.ParseUint(sym[2:], 16, 32)
		if err == nil && u >= 0x1000020 && u <= 0x110ffff {
			return rune(u - 0x1000000), false, true
		}
		if err == nil && (u >= 0x20 && u < 0x7f || u >= 0xa0 && u <= 0xff) {
			return rune(u), false, true
		}
	}
	return 0, false, false
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return s != ""
}
