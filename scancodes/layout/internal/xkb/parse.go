// Package xkb reads the parts of xkeyboard-config (Debian package xkb-data) that crashkey's
// layout table is generated from: the evdev keycodes (<AC01> = 38, evdev code + 8), the symbol
// files with their include statements, and X11's keysymdef.h (keysym names → Unicode). It is
// used by the generator (scancodes/layout/internal/gen, run by go generate) and by the test that
// regenerates the committed table and compares.
package xkb

import (
	"fmt"
	"strings"
)

// token is one lexical token of an xkb file.
type token struct {
	kind byte   // 'i' identifier or number, 's' string, 'k' <KEYNAME>, or the punctuation byte
	text string // identifier, string contents or key name (without the angle brackets)
	line int
}

// lex splits an xkb file into tokens, dropping //, # and /* */ comments.
func lex(src string) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f':
			i++
		case c == '#' || (c == '/' && i+1 < len(src) && src[i+1] == '/'):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += end + 4
		case c == '"':
			end := strings.IndexByte(src[i+1:], '"')
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated string", line)
			}
			toks = append(toks, token{'s', src[i+1 : i+1+end], line})
			line += strings.Count(src[i+1:i+1+end], "\n")
			i += end + 2
		case c == '<':
			end := strings.IndexByte(src[i+1:], '>')
			if end < 0 || strings.ContainsAny(src[i+1:i+1+end], " \n;") {
				toks = append(toks, token{'<', "<", line})
				i++
				continue
			}
			toks = append(toks, token{'k', src[i+1 : i+1+end], line})
			i += end + 2
		case isIdent(c):
			j := i
			for j < len(src) && isIdent(src[j]) {
				j++
			}
			toks = append(toks, token{'i', src[i:j], line})
			i = j
		default:
			toks = append(toks, token{c, string(c), line})
			i++
		}
	}
	return toks, nil
}

func isIdent(c byte) bool {
	return c == '_' || c == '.' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// Section is one xkb_symbols "name" { … } block of a symbols file.
type Section struct {
	Name    string
	Default bool
	// Description is name[Group1].
	Description string
	// Stmts are the include and key statements in order.
	Stmts []Stmt
}

// Stmt is an include (Include != "") or a key definition.
type Stmt struct {
	// Merge is "override" (include, override, replace) or "augment".
	Merge   string
	Include string
	// Key is the key name (AC01) and Syms its first group's keysyms, level 1 first
	// ("NoSymbol" for a level left undefined).
	Key  string
	Syms []string
	// Typed is set when the key (or a key.type default before it in the section) names its
	// key type: xkbcomp then replaces the group instead of merging it level by level.
	Typed bool
}

// ParseSymbols reads the xkb_symbols sections of a symbols file.
func ParseSymbols(src string) ([]Section, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	var out []Section
	for !p.eof() {
		// Flags (default, partial, hidden, alphanumeric_keys, …) up to xkb_symbols.
		var flags []string
		for !p.eof() && !(p.peek().kind == 'i' && p.peek().text == "xkb_symbols") {
			t := p.next()
			if t.kind != 'i' {
				return nil, fmt.Errorf("line %d: unexpected %q before xkb_symbols", t.line, t.text)
			}
			flags = append(flags, t.text)
		}
		if p.eof() {
			break
		}
		p.next()
		name := p.next()
		if name.kind != 's' {
			return nil, fmt.Errorf("line %d: xkb_symbols without a name", name.line)
		}
		if t := p.next(); t.kind != '{' {
			return nil, fmt.Errorf("line %d: expected { after xkb_symbols %q", t.line, name.text)
		}
		s := Section{Name: name.text}
		for _, f := range flags {
			if f == "default" {
				s.Default = true
			}
		}
		if err := p.body(&s); err != nil {
			return nil, fmt.Errorf("xkb_symbols %q: %w", s.Name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

type parser struct {
	toks []token
	pos  int
}

func (p *parser) eof() bool { return p.pos >= len(p.toks) }

func (p *parser) peek() token {
	if p.eof() {
		return token{kind: 0, text: "end of file"}
	}
	return p.toks[p.pos]
}

func (p *parser) next() token {
	t := p.peek()
	p.pos++
	return t
}

// closeBlock consumes a closing brace and the semicolon after it, if any.
func (p *parser) closeBlock() {
	p.next()
	if p.peek().kind == ';' {
		p.next()
	}
}

// body reads statements up to the section's closing "};".
func (p *parser) body(s *Section) error {
	defaultType := false
	for {
		if p.eof() {
			return fmt.Errorf("unterminated section")
		}
		t := p.peek()
		switch {
		case t.kind == '}':
			p.closeBlock()
			return nil
		case t.kind == ';':
			p.next()
		case t.kind == 'i' && (t.text == "include" || t.text == "augment" || t.text == "override" || t.text == "replace") && p.pos+1 < len(p.toks) && p.toks[p.pos+1].kind == 's':
			p.next()
			merge := "override"
			if t.text == "augment" {
				merge = "augment"
			}
			s.Stmts = append(s.Stmts, Stmt{Merge: merge, Include: p.next().text})
		case t.kind == 'i' && (t.text == "key" || t.text == "augment" || t.text == "override" || t.text == "replace"):
			merge := "override"
			if t.text != "key" {
				if t.text == "augment" {
					merge = "augment"
				}
				p.next()
				if k := p.peek(); k.kind != 'i' || k.text != "key" {
					if err := p.skipStatement(); err != nil {
						return err
					}
					continue
				}
			}
			p.next() // key
			name := p.next()
			if name.kind != 'k' {
				return fmt.Errorf("line %d: key without a <NAME>", name.line)
			}
			syms, typed, err := p.keyBody()
			if err != nil {
				return fmt.Errorf("key <%s>: %w", name.text, err)
			}
			s.Stmts = append(s.Stmts, Stmt{Merge: merge, Key: name.text, Syms: syms, Typed: typed || defaultType})
		case t.kind == 'i' && strings.EqualFold(t.text, "key.type"):
			defaultType = true
			if err := p.skipStatement(); err != nil {
				return err
			}
		case t.kind == 'i' && t.text == "name":
			start := p.pos
			p.next()
			var d string
			if p.peek().kind == '[' {
				for !p.eof() && p.next().kind != ']' {
				}
				if p.peek().kind == '=' {
					p.next()
					if v := p.next(); v.kind == 's' {
						d = v.text
					}
				}
			}
			if s.Description == "" {
				s.Description = d
			}
			p.pos = start
			if err := p.skipStatement(); err != nil {
				return err
			}
		default:
			if err := p.skipStatement(); err != nil {
				return err
			}
		}
	}
}

// skipStatement skips to the ';' that ends the statement at this nesting level (or to the
// section's closing brace, which it leaves).
func (p *parser) skipStatement() error {
	depth := 0
	for !p.eof() {
		t := p.peek()
		switch t.kind {
		case '{', '[', '(':
			depth++
		case ']', ')':
			depth--
		case '}':
			if depth == 0 {
				return nil
			}
			depth--
		case ';':
			if depth == 0 {
				p.next()
				return nil
			}
		}
		p.next()
	}
	return fmt.Errorf("unterminated statement")
}

// keyBody reads { … } after a key name and returns group 1's keysyms: symbols[Group1] = [ … ]
// or the first bare [ … ] list.
func (p *parser) keyBody() (group1 []string, typed bool, err error) {
	if t := p.next(); t.kind != '{' {
		return nil, false, fmt.Errorf("line %d: expected {", t.line)
	}
	found := false
	for {
		if p.eof() {
			return nil, false, fmt.Errorf("unterminated key")
		}
		t := p.peek()
		switch {
		case t.kind == '}':
			p.closeBlock()
			return group1, typed, nil
		case t.kind == ',':
			p.next()
		case t.kind == '[':
			list, err := p.list()
			if err != nil {
				return nil, false, err
			}
			if !found {
				group1, found = list, true
			}
		case t.kind == 'i' && t.text == "symbols":
			p.next()
			group := ""
			if p.peek().kind == '[' {
				p.next()
				for !p.eof() && p.peek().kind != ']' {
					group += p.next().text
				}
				p.next()
			}
			if p.peek().kind != '=' {
				return nil, false, fmt.Errorf("line %d: symbols without =", t.line)
			}
			p.next()
			list, err := p.list()
			if err != nil {
				return nil, false, err
			}
			if strings.EqualFold(group, "group1") || group == "1" {
				group1, found = list, true
			}
		default:
			if t.kind == 'i' && t.text == "type" {
				typed = true
			}
			// type[…] = "…", actions[…] = [ … ], virtualMods = …, repeat = …: skip one item.
			depth := 0
			for !p.eof() {
				c := p.peek().kind
				if depth == 0 && (c == ',' || c == '}') {
					break
				}
				switch c {
				case '[', '(', '{':
					depth++
				case ']', ')', '}':
					depth--
				}
				p.next()
			}
		}
	}
}

// list reads [ sym, sym, … ].
func (p *parser) list() ([]string, error) {
	if t := p.next(); t.kind != '[' {
		return nil, fmt.Errorf("line %d: expected [", t.line)
	}
	var out []string
	cur := ""
	for {
		t := p.next()
		switch t.kind {
		case 0:
			return nil, fmt.Errorf("unterminated list")
		case ']':
			if cur != "" || len(out) > 0 {
				out = append(out, cur)
			}
			return out, nil
		case ',':
			out = append(out, cur)
			cur = ""
		case '{', '(':
			return nil, fmt.Errorf("line %d: nested %q in a keysym list", t.line, t.text)
		default:
			cur += t.text
		}
	}
}
