package registry

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
)

// RegKey is one section of a .reg file: a key path (as written, e.g.
// `HKEY_LOCAL_MACHINE\SYSTEM\…`) and its values, or the key's deletion ([-KEY]).
type RegKey struct {
	Path   string      `json:"path"`
	Delete bool        `json:"delete,omitempty"`
	Values []PlanValue `json:"values"`
}

// Bounds of ParseReg (a .reg file may come from anywhere).
const (
	maxRegFile   = 8 << 20
	maxRegValues = 100000
)

// ParseReg reads a .reg file as reg.exe import and regedit read it ("Windows Registry Editor
// Version 5.00" or REGEDIT4; UTF-8, or UTF-16LE with its byte order mark): sections [KEY] and
// [-KEY], values "name"=dword:…, "name"="string", "name"=hex(2):… (REG_EXPAND_SZ),
// hex(7):… (REG_MULTI_SZ, strings joined with "\0"), hex:… (REG_BINARY, as hex in String),
// "name"=- (delete), @ for the default value, and lines continued with a backslash.
func ParseReg(b []byte) ([]RegKey, error) {
	if len(b) > maxRegFile {
		return nil, fmt.Errorf("reg file: %d bytes, more than %d", len(b), maxRegFile)
	}
	if bytes.HasPrefix(b, []byte{0xff, 0xfe}) {
		u := make([]uint16, (len(b)-2)/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2+2*i:])
		}
		b = []byte(string(utf16.Decode(u)))
	}
	b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
	lines := strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n")
	if len(lines) == 0 || (strings.TrimSpace(lines[0]) != "Windows Registry Editor Version 5.00" && strings.TrimSpace(lines[0]) != "REGEDIT4") {
		return nil, errors.New(`reg file: the first line is not "Windows Registry Editor Version 5.00"`)
	}
	var keys []RegKey
	n := 0
	for i := 1; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + strings.TrimSpace(lines[i])
		}
		switch {
		case line == "" || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			p := line[1 : len(line)-1]
			k := RegKey{Path: strings.TrimPrefix(p, "-"), Delete: strings.HasPrefix(p, "-")}
			if k.Path == "" {
				return nil, fmt.Errorf("reg file, line %d: empty key name", i+1)
			}
			keys = append(keys, k)
		default:
			if len(keys) == 0 {
				return nil, fmt.Errorf("reg file, line %d: a value before any [KEY]", i+1)
			}
			v, err := parseRegValue(line)
			if err != nil {
				return nil, fmt.Errorf("reg file, line %d: %w", i+1, err)
			}
			if n++; n > maxRegValues {
				return nil, fmt.Errorf("reg file: more than %d values", maxRegValues)
			}
			keys[len(keys)-1].Values = append(keys[len(keys)-1].Values, v)
		}
	}
	return keys, nil
}

func parseRegValue(line string) (PlanValue, error) {
	var name, rest string
	if strings.HasPrefix(line, "@=") {
		rest = line[2:]
	} else {
		s, tail, ok := readQuoted(line)
		if !ok || !strings.HasPrefix(tail, "=") {
			return PlanValue{}, fmt.Errorf("unreadable value %q", clipStr(line))
		}
		name, rest = s, tail[1:]
	}
	v := PlanValue{Name: name}
	switch {
	case rest == "-":
		v.Delete = true
	case strings.HasPrefix(rest, `"`):
		s, tail, ok := readQuoted(rest)
		if !ok || strings.TrimSpace(tail) != "" {
			return v, fmt.Errorf("value %q: unterminated string", clipStr(name))
		}
		v.Type, v.String = "REG_SZ", &s
	case strings.HasPrefix(strings.ToLower(rest), "dword:"):
		d, err := strconv.ParseUint(rest[6:], 16, 32)
		if err != nil {
			return v, fmt.Errorf("value %q: bad dword %q", clipStr(name), clipStr(rest[6:]))
		}
		u := uint32(d)
		v.Type, v.DWORD = "REG_DWORD", &u
	case strings.HasPrefix(strings.ToLower(rest), "hex"):
		typ, data, ok := strings.Cut(rest, ":")
		if !ok {
			return v, fmt.Errorf("value %q: hex without ':'", clipStr(name))
		}
		raw, err := hex.DecodeString(strings.NewReplacer(",", "", " ", "", "\t", "").Replace(data))
		if err != nil {
			return v, fmt.Errorf("value %q: bad hex bytes", clipStr(name))
		}
		switch strings.ToLower(typ) {
		case "hex(2)", "hex(7)":
			u := make([]uint16, len(raw)/2)
			for i := range u {
				u[i] = binary.LittleEndian.Uint16(raw[2*i:])
			}
			s := string(utf16.Decode(u))
			if strings.ToLower(typ) == "hex(2)" {
				s = strings.TrimRight(s, "\x00")
				v.Type = "REG_EXPAND_SZ"
			} else {
				s = strings.ReplaceAll(strings.TrimRight(s, "\x00"), "\x00", `\0`)
				v.Type = "REG_MULTI_SZ"
			}
			v.String = &s
		case "hex":
			s := strings.ToUpper(hex.EncodeToString(raw))
			v.Type, v.String = "REG_BINARY", &s
		default:
			return v, fmt.Errorf("value %q: type %s is not supported", clipStr(name), clipStr(typ))
		}
	default:
		return v, fmt.Errorf("value %q: unknown data %q", clipStr(name), clipStr(rest))
	}
	return v, nil
}

// readQuoted reads a .reg quoted string (\\ and \" escapes) at the start of s.
func readQuoted(s string) (string, string, bool) {
	if !strings.HasPrefix(s, `"`) {
		return "", s, false
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		case '"':
			return b.String(), s[i+1:], true
		default:
			b.WriteByte(s[i])
		}
	}
	return "", s, false
}

func clipStr(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}
