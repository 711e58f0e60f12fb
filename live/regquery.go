package live

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Value is one registry value as reg.exe query prints it.
type Value struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Data string `json:"data"`
}

// DWORD is the value as a REG_DWORD ("0x1"), or false.
func (v Value) DWORD() (uint32, bool) {
	if v.Type != "REG_DWORD" {
		return 0, false
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.ToLower(v.Data), "0x"), 16, 32)
	return uint32(n), err == nil
}

// Bounds on reg.exe query output crashkey parses (untrusted: it comes from the guest).
const (
	maxQueryValues = 4096
	maxQueryLine   = 64 << 10
)

// ParseRegQuery reads the output of "reg.exe query KEY" (no /s): the values of the key printed
// as "    NAME    REG_TYPE    DATA" under a line naming the key. The default value is named
// "(Default)" by reg.exe and "" here.
func ParseRegQuery(out []byte) (map[string]Value, error) {
	vals := map[string]Value{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 4096), maxQueryLine)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if !strings.HasPrefix(line, "    ") {
			continue // the key line, blank lines, subkeys (printed without indentation)
		}
		parts := strings.SplitN(line[4:], "    ", 3)
		if len(parts) < 2 || !strings.HasPrefix(parts[1], "REG_") {
			return nil, fmt.Errorf("reg query: unreadable line %q", clip(line))
		}
		v := Value{Name: parts[0], Type: parts[1]}
		if len(parts) == 3 {
			v.Data = parts[2]
		}
		if v.Name == "(Default)" {
			v.Name = ""
		}
		if len(vals) >= maxQueryValues {
			return nil, fmt.Errorf("reg query: more than %d values", maxQueryValues)
		}
		vals[strings.ToLower(v.Name)] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reg query: %w", err)
	}
	return vals, nil
}

func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}
