package standin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/crashkey/crashkey/internal/atomicfile"
	"github.com/crashkey/crashkey/registry"
)

// RegState is what the stand-in's reg command (e2e/cmd/reg) keeps: the registry values
// imported with "reg import", as reg.exe import writes them into the live registry. The file
// is JSON, written atomically; keys are stored as written (HKLM\…) and looked up without case.
type RegState struct {
	Keys map[string]*RegStateKey `json:"keys"`
}

// RegStateKey is one key of a RegState.
type RegStateKey struct {
	Path   string              `json:"path"`
	Values map[string]RegEntry `json:"values"` // lower-case name → value
}

// RegEntry is one value as reg.exe query prints it.
type RegEntry struct {
	Name string `json:"name"`
	Type string `json:"type"`
	Data string `json:"data"`
}

// RegErrNotFound is reg.exe query's message for a missing key.
const RegErrNotFound = "ERROR: The system was unable to find the specified registry key or value."

// LoadRegState reads the state file; a missing file is an empty registry.
func LoadRegState(path string) (*RegState, error) {
	s := &RegState{Keys: map[string]*RegStateKey{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if s.Keys == nil {
		s.Keys = map[string]*RegStateKey{}
	}
	return s, nil
}

// Save writes the state file atomically.
func (s *RegState) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

func normKey(k string) string {
	k = strings.TrimSpace(k)
	if rest, ok := strings.CutPrefix(strings.ToUpper(k), "HKEY_LOCAL_MACHINE"); ok {
		k = "HKLM" + k[len(k)-len(rest):]
	}
	return strings.TrimRight(k, `\`)
}

// Import applies a .reg file as reg.exe import does.
func (s *RegState) Import(reg []byte) error {
	keys, err := registry.ParseReg(reg)
	if err != nil {
		return err
	}
	for _, k := range keys {
		path := normKey(k.Path)
		lk := strings.ToLower(path)
		if k.Delete {
			for name := range s.Keys {
				if name == lk || strings.HasPrefix(name, lk+`\`) {
					delete(s.Keys, name)
				}
			}
			continue
		}
		key := s.Keys[lk]
		if key == nil {
			key = &RegStateKey{Path: path, Values: map[string]RegEntry{}}
			s.Keys[lk] = key
		}
		for _, v := range k.Values {
			switch {
			case v.Delete:
				delete(key.Values, strings.ToLower(v.Name))
			case v.DWORD != nil:
				key.Values[strings.ToLower(v.Name)] = RegEntry{v.Name, v.Type, fmt.Sprintf("0x%x", *v.DWORD)}
			case v.String != nil:
				key.Values[strings.ToLower(v.Name)] = RegEntry{v.Name, v.Type, *v.String}
			}
		}
	}
	return nil
}

// Query prints a key as reg.exe query KEY does, or reports false when it does not exist.
func (s *RegState) Query(key string) (string, bool) {
	k := s.Keys[strings.ToLower(normKey(key))]
	if k == nil {
		return "", false
	}
	var b strings.Builder
	b.WriteString("\r\n" + strings.Replace(k.Path, "HKLM", "HKEY_LOCAL_MACHINE", 1) + "\r\n")
	names := make([]string, 0, len(k.Values))
	for n := range k.Values {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := k.Values[n]
		name := v.Name
		if name == "" {
			name = "(Default)"
		}
		fmt.Fprintf(&b, "    %s    %s    %s\r\n", name, v.Type, v.Data)
	}
	b.WriteString("\r\n")
	return b.String(), true
}
