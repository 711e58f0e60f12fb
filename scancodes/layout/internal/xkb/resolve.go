package xkb

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Levels are a key's keysyms in group 1, level 1 first ("NoSymbol" or "" when undefined).
type Levels []string

// Keymap is what one layout puts on each key, by key name (AC01), aliases resolved.
type Keymap map[string]Levels

// Resolver reads symbol files from an xkb root (/usr/share/X11/xkb) and resolves layouts with
// their includes.
type Resolver struct {
	Root    string
	aliases map[string]string
	files   map[string][]Section
}

// NewResolver reads the key-name aliases of root's keycodes (evdev and aliases(qwerty)).
func NewResolver(root string) (*Resolver, error) {
	r := &Resolver{Root: root, aliases: map[string]string{}, files: map[string][]Section{}}
	for _, f := range []string{"keycodes/evdev", "keycodes/aliases"} {
		src, err := os.ReadFile(filepath.Join(root, f))
		if err != nil {
			return nil, fmt.Errorf("xkb: %w", err)
		}
		for _, m := range aliasRE.FindAllStringSubmatch(string(src), -1) {
			if _, ok := r.aliases[m[1]]; !ok {
				r.aliases[m[1]] = m[2]
			}
		}
	}
	return r, nil
}

var (
	aliasRE   = regexp.MustCompile(`alias\s*<([^>]+)>\s*=\s*<([^>]+)>\s*;`)
	keycodeRE = regexp.MustCompile(`(?m)^\s*<([^>]+)>\s*=\s*(\d+)\s*;`)
)

// EvdevCodes reads root/keycodes/evdev: key name → Linux evdev code (the X keycode minus 8).
func EvdevCodes(root string) (map[string]uint16, error) {
	src, err := os.ReadFile(filepath.Join(root, "keycodes/evdev"))
	if err != nil {
		return nil, fmt.Errorf("xkb: %w", err)
	}
	out := map[string]uint16{}
	for _, m := range keycodeRE.FindAllStringSubmatch(string(src), -1) {
		n, _ := strconv.Atoi(m[2])
		if n >= 8 {
			if _, ok := out[m[1]]; !ok {
				out[m[1]] = uint16(n - 8)
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("xkb: no keycodes in %s/keycodes/evdev", root)
	}
	return out, nil
}

func (r *Resolver) canonical(name string) string {
	for i := 0; i < 4; i++ {
		a, ok := r.aliases[name]
		if !ok {
			break
		}
		name = a
	}
	return name
}

func (r *Resolver) sections(file string) ([]Section, error) {
	if s, ok := r.files[file]; ok {
		return s, nil
	}
	if strings.Contains(file, "..") || strings.HasPrefix(file, "/") {
		return nil, fmt.Errorf("symbols file %q: not a plain name", file)
	}
	src, err := os.ReadFile(filepath.Join(r.Root, "symbols", file))
	if err != nil {
		return nil, fmt.Errorf("xkb: %w", err)
	}
	s, err := ParseSymbols(string(src))
	if err != nil {
		return nil, fmt.Errorf("xkb: symbols/%s: %w", file, err)
	}
	r.files[file] = s
	return s, nil
}

// Section finds a section of a symbols file; "" is the default section (the one flagged
// default, else the first).
func (r *Resolver) Section(file, name string) (*Section, error) {
	ss, err := r.sections(file)
	if err != nil {
		return nil, err
	}
	for i := range ss {
		if name == "" && ss[i].Default || name != "" && ss[i].Name == name {
			return &ss[i], nil
		}
	}
	if name == "" && len(ss) > 0 {
		return &ss[0], nil
	}
	return nil, fmt.Errorf("xkb: symbols/%s has no section %q", file, name)
}

// Resolve builds the keymap of the given include spec ("pc+de(nodeadkeys)"), following
// includes as xkbcomp does: '+' merges overriding, '|' augmenting, level by level.
func (r *Resolver) Resolve(spec string) (Keymap, error) {
	km := Keymap{}
	if err := r.include(km, spec, "override", 0); err != nil {
		return nil, err
	}
	return km, nil
}

var componentRE = regexp.MustCompile(`([+|]?)([^+|()]+)(?:\(([^()]*)\))?(?::\d+)?`)

func (r *Resolver) include(km Keymap, spec, merge string, depth int) error {
	if depth > 20 {
		return fmt.Errorf("xkb: include %q: nested too deep", spec)
	}
	for i, m := range componentRE.FindAllStringSubmatch(spec, -1) {
		mode := merge
		if i > 0 || m[1] != "" {
			mode = "override"
			if m[1] == "|" {
				mode = "augment"
			}
		}
		sec, err := r.Section(m[2], m[3])
		if err != nil {
			return err
		}
		if err := r.apply(km, sec, mode, depth); err != nil {
			return err
		}
	}
	return nil
}

// apply merges a section into km: its statements build their own keymap, which is then merged
// with mode.
func (r *Resolver) apply(into Keymap, sec *Section, mode string, depth int) error {
	own := Keymap{}
	typed := map[string]bool{}
	for _, st := range sec.Stmts {
		if st.Include != "" {
			if err := r.include(own, st.Include, st.Merge, depth+1); err != nil {
				return fmt.Errorf("%s: %w", sec.Name, err)
			}
			continue
		}
		mergeKey(own, r.canonical(st.Key), st.Syms, st.Merge, st.Typed)
		if st.Typed {
			typed[r.canonical(st.Key)] = true
		}
	}
	for k, l := range own {
		mergeKey(into, k, l, mode, typed[k])
	}
	return nil
}

// mergeKey merges a key's new group 1 into km level by level (a NoSymbol level keeps the old
// one); a key that names its type replaces the old group when it overrides, as xkbcomp does.
func mergeKey(km Keymap, key string, syms []string, mode string, typed bool) {
	old := km[key]
	if typed && mode == "override" && len(syms) > 0 {
		old = nil
	}
	n := max(len(old), len(syms))
	out := make(Levels, n)
	for i := 0; i < n; i++ {
		var o, s string
		if i < len(old) {
			o = old[i]
		}
		if i < len(syms) {
			s = syms[i]
		}
		switch {
		case undefined(s):
			out[i] = o
		case undefined(o) || mode == "override":
			out[i] = s
		default:
			out[i] = o
		}
	}
	km[key] = out
}

func undefined(s string) bool { return s == "" || strings.EqualFold(s, "NoSymbol") }
