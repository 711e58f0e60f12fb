// Package termsafe makes strings that come from untrusted places (file names and volume
// labels from a disk image, replies of QMP, the guest agent or libvirt) safe to print on a
// terminal. A name that carries a newline could forge output lines; an ANSI or OSC escape
// could clear the screen, recolour the text or retitle the terminal; a bidi override could
// make "gpj.exe" read as "exe.jpg". [String] shows every such character as a visible escape
// instead, and leaves ordinary text (any script, emoji, Windows paths with backslashes)
// untouched.
//
// Use it for human-readable output only: JSON output carries the exact strings (encoding/json
// escapes control characters itself).
package termsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// String returns s with every character that could change what a terminal shows replaced by
// a visible escape: C0 controls and DEL as \n, \r, \t or \xNN (ESC is \x1b, so no ANSI or
// OSC sequence survives), C1 controls (U+0080–U+009F, among them the 8-bit CSI U+009B) and
// bidi and line-separator format characters as \uNNNN, and each byte of invalid UTF-8 as
// \xNN. Strings without any of these are returned as they are.
func String(s string) string {
	if clean(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Strings applies [String] to each element, in a new slice.
func Strings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = String(s)
	}
	return out
}

// clean reports whether s needs no escaping (the fast path for plain ASCII names).
func clean(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return false
		}
		if c >= 0x80 {
			return cleanUTF8(s[i:])
		}
	}
	return true
}

func cleanUTF8(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || r < 0x20 || r == 0x7f || unsafeRune(r) {
			return false
		}
		i += size
	}
	return true
}

// unsafeRune reports the non-ASCII characters that are escaped: C1 controls, the bidi
// embeddings, overrides, isolates and marks, and the Unicode line and paragraph separators.
func unsafeRune(r rune) bool {
	switch {
	case r >= 0x80 && r <= 0x9f: // C1 controls (0x9b is a one-byte CSI on some terminals)
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f: // ARABIC LETTER MARK, LRM, RLM
		return true
	case r >= 0x202a && r <= 0x202e: // LRE, RLE, PDF, LRO, RLO
		return true
	case r >= 0x2066 && r <= 0x2069: // LRI, RLI, FSI, PDI
		return true
	case r == 0x2028, r == 0x2029: // LINE / PARAGRAPH SEPARATOR
		return true
	}
	return false
}
