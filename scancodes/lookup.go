package scancodes

import (
	"fmt"
	"sort"
	"strings"
)

// aliases adds the names people type to the names every key already answers to (its QKeyCode,
// Linux name with and without KEY_, and W3C code).
var aliases = map[string][]string{
	"ctrl":         {"lctrl", "leftctrl", "lcontrol", "leftcontrol", "control", "ctrl_l", "lctl"},
	"ctrl_r":       {"rctrl", "rcontrol", "rightcontrol", "rctl"},
	"shift":        {"lshift", "shift_l"},
	"shift_r":      {"rshift"},
	"alt":          {"lalt", "alt_l", "lmenu"},
	"alt_r":        {"ralt", "altgr", "rmenu"},
	"meta_l":       {"lwin", "win", "leftwin", "super", "lsuper", "windows"},
	"meta_r":       {"rwin", "rightwin", "rsuper"},
	"compose":      {"apps", "application", "contextmenu"},
	"scroll_lock":  {"scroll", "scrlk", "scrolllk", "scrl"},
	"grave_accent": {"grave", "backtick", "tilde", "backquote"},
	"spc":          {"space", "spacebar"},
	"ret":          {"enter", "return"},
	"esc":          {"escape"},
	"backspace":    {"bksp", "bs"},
	"caps_lock":    {"caps", "capslk"},
	"num_lock":     {"numlk"},
	"print":        {"prtsc", "prtscn", "prtscr", "printscreen", "prnt"},
	"pgup":         {"pageup", "prior"},
	"pgdn":         {"pagedown", "next"},
	"delete":       {"del"},
	"insert":       {"ins"},
	"kp_enter":     {"numpadenter", "kpenter"},
	"kp_multiply":  {"kpasterisk", "numpadmultiply", "numpadstar"},
	"kp_divide":    {"kpslash", "numpadslash"},
	"kp_subtract":  {"kpminus", "numpadminus"},
	"kp_add":       {"kpplus", "numpadplus"},
	"kp_decimal":   {"kpdot", "kpperiod"},
	"pause":        {"break"},
	"dot":          {"period"},
	"bracket_left": {"lbracket"}, "bracket_right": {"rbracket"},
}

// duplicateOf names keys that are another key under a second QKeyCode: QEMU rewrites sysrq to
// print, and asterisk is kp_multiply. Generic names (Linux, W3C) resolve to the primary key.
var duplicateOf = map[string]string{"sysrq": "print", "asterisk": "kp_multiply"}

var (
	byQCode = map[string]*Key{}
	byName  = map[string]*Key{}
	byQnum  = map[uint8]*Key{}
	byUSB   = map[uint16]*Key{}
	byLinux = map[uint16]*Key{}
)

func init() {
	for i := range keys {
		k := &keys[i]
		byQCode[k.QCode] = k
	}
	for i := range keys {
		k := &keys[i]
		addName(k.QCode, k)
		if _, dup := duplicateOf[k.QCode]; dup {
			continue
		}
		if _, ok := byQnum[k.Qnum]; !ok {
			byQnum[k.Qnum] = k
		}
		if k.USB != 0 {
			if _, ok := byUSB[k.USB]; !ok {
				byUSB[k.USB] = k
			}
		}
		if _, ok := byLinux[k.Linux]; !ok {
			byLinux[k.Linux] = k
		}
	}
	// Secondary names never shadow a QKeyCode.
	for i := range keys {
		k := &keys[i]
		if _, dup := duplicateOf[k.QCode]; dup {
			continue
		}
		addName(k.LinuxName, k)
		addName(strings.TrimPrefix(k.LinuxName, "KEY_"), k)
		addName(k.Code, k)
		addName(k.Name(), k)
		for _, a := range aliases[k.QCode] {
			addName(a, k)
		}
	}
	byQnum[0xB7] = byQCode["print"] // keymap-gen accepts 0xB7 (E0 37) for Print Screen
	byUSB[0x32] = byQCode["backslash"]
	byLinux[42] = byQCode["shift"] // KEY_SHIFT alias
}

func addName(name string, k *Key) {
	n := normalize(name)
	if n == "" {
		return
	}
	if _, taken := byName[n]; !taken {
		byName[n] = k
	}
}

// normalize folds case and drops '_', '-' and spaces, so "Right_Ctrl", "right-ctrl" and
// "RightCtrl" are one name.
func normalize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(s)) {
		if r == '_' || r == '-' || r == ' ' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// All returns every key, sorted by qnum (the returned slice is shared: do not modify it).
func All() []Key { return keys }

// ByQCode returns the key with exactly this QEMU QKeyCode.
func ByQCode(qcode string) (*Key, bool) {
	k, ok := byQCode[qcode]
	return k, ok
}

// ByQnum returns the key with this qnum (0x9D is Right Ctrl; 0xB7 and 0x54 are Print Screen).
func ByQnum(q uint8) (*Key, bool) {
	k, ok := byQnum[q]
	return k, ok
}

// BySet1 returns the key whose set-1 make code is code: 0x1D, or 0xE01D for an E0 key. Print
// Screen answers to 0xE037 and 0x54, Pause to 0xE11D and 0xE046 (the code keymaps.csv gives).
func BySet1(code uint16) (*Key, bool) {
	switch {
	case code < 0x80:
		return ByQnum(uint8(code))
	case code>>8 == 0xE0:
		return ByQnum(0x80 | uint8(code))
	case code == 0xE11D:
		return ByQCode("pause")
	case code >= 0xF1 && code <= 0xF2: // Korean Hanja/Hangul: make-only, qnum = code & 0x7F
		return ByQnum(uint8(code) & 0x7F)
	}
	return nil, false
}

// ByUSB returns the key QEMU's usb-kbd reports with this Keyboard-page usage (0x31 and 0x32 are
// both backslash).
func ByUSB(usage uint16) (*Key, bool) {
	k, ok := byUSB[usage]
	return k, ok
}

// ByLinux returns the key with this Linux evdev code.
func ByLinux(code uint16) (*Key, bool) {
	k, ok := byLinux[code]
	return k, ok
}

// UnknownKeyError is returned by [Lookup] for a name no key answers to. Suggestions holds the
// closest names.
type UnknownKeyError struct {
	Name        string
	Suggestions []string
}

func (e *UnknownKeyError) Error() string {
	msg := fmt.Sprintf("unknown key %q", e.Name)
	if len(e.Suggestions) > 0 {
		msg += "; did you mean " + strings.Join(e.Suggestions, ", ") + "?"
	}
	return msg + " ('crashkey keys' lists every key)"
}

// Lookup finds a key by any of its names, case-insensitively: QEMU QKeyCode ("ctrl_r"), short
// alias ("rctrl", "scroll"), Linux name ("KEY_RIGHTCTRL" or "RIGHTCTRL"), W3C code
// ("ControlRight") or short human name ("RCtrl", "ScrollLock"). An unknown name gives an
// *UnknownKeyError listing the closest names.
func Lookup(name string) (*Key, error) {
	n := normalize(name)
	if k, ok := byQCode[strings.ToLower(strings.TrimSpace(name))]; ok {
		return k, nil
	}
	if k, ok := byName[n]; ok {
		return k, nil
	}
	return nil, &UnknownKeyError{Name: name, Suggestions: closest(n, 4)}
}

// Names returns every name a key answers to, normalized (lower case, no separators), sorted.
func Names(k *Key) []string {
	var out []string
	for n, kk := range byName {
		if kk == k {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Aliases returns the extra names people type for k (beyond its QKeyCode), in a readable form:
// the short human name, the Linux name and the W3C code, then the hand-picked aliases.
func Aliases(k *Key) []string {
	if d, dup := duplicateOf[k.QCode]; dup {
		return []string{d}
	}
	seen := map[string]bool{normalize(k.QCode): true}
	var out []string
	add := func(s string) {
		if s == "" || seen[normalize(s)] || byName[normalize(s)] != k {
			return
		}
		seen[normalize(s)] = true
		out = append(out, s)
	}
	add(k.Name())
	add(k.LinuxName)
	add(k.Code)
	for _, a := range aliases[k.QCode] {
		add(a)
	}
	return out
}

// closest returns up to n known names nearest to s by edit distance, preferring QKeyCodes.
func closest(s string, n int) []string {
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	for name := range byName {
		d := editDistance(s, name)
		if strings.HasPrefix(name, s) && s != "" {
			d = min(d, 1)
		}
		cs = append(cs, cand{name, d})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].d != cs[j].d {
			return cs[i].d < cs[j].d
		}
		return cs[i].name < cs[j].name
	})
	limit := max(2, len(s)/2)
	seen := map[*Key]bool{}
	var out []string
	for _, c := range cs {
		if c.d > limit || len(out) == n {
			break
		}
		k := byName[c.name]
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, k.QCode)
	}
	return out
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func b(v ...byte) []byte { return v }
