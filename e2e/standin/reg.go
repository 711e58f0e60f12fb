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
	// Deleted: the .reg deleted the key ([-KEY]) and did not create it again. Cleared: it
	// was deleted at some point, so what the hive holds under it is gone (Registry).
	Deleted bool `json:"deleted,omitempty"`
	Cleared bool `json:"cleared,omitempty"`
}

// RegEntry is one value as reg.exe query prints it; Deleted marks a value the .reg deleted
// ("NAME"=-), which hides the hive's value of that name (Registry).
type RegEntry struct {
	Name    string `json:"name"`
	Type    string `json:"type"`
	Data    string `json:"data"`
	Deleted bool   `json:"deleted,omitempty"`
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
	return parseRegState(b, path)
}

// parseRegState reads a state file's contents (name: where it came from, for errors).
func parseRegState(b []byte, name string) (*RegState, error) {
	s := &RegState{}
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if s.Keys == nil {
		s.Keys = map[string]*RegStateKey{}
	}
	for _, k := range s.Keys {
		if k == nil {
			return nil, fmt.Errorf("%s: a key without contents", name)
		}
		if k.Values == nil {
			k.Values = map[string]RegEntry{}
		}
	}
	return s, nil
}

func (s *RegState) marshal() ([]byte, error) { return json.MarshalIndent(s, "", "  ") }

// Save writes the state file atomically.
func (s *RegState) Save(path string) error {
	b, err := s.marshal()
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
			s.Keys[lk] = &RegStateKey{Path: path, Values: map[string]RegEntry{}, Deleted: true, Cleared: true}
			continue
		}
		key := s.Keys[lk]
		if key == nil {
			key = &RegStateKey{Path: path, Values: map[string]RegEntry{}}
			s.Keys[lk] = key
		}
		key.Deleted = false
		for _, v := range k.Values {
			switch {
			case v.Delete:
				key.Values[strings.ToLower(v.Name)] = RegEntry{Name: v.Name, Deleted: true}
			case v.DWORD != nil:
				key.Values[strings.ToLower(v.Name)] = RegEntry{Name: v.Name, Type: v.Type, Data: fmt.Sprintf("0x%x", *v.DWORD)}
			case v.String != nil:
				key.Values[strings.ToLower(v.Name)] = RegEntry{Name: v.Name, Type: v.Type, Data: *v.String}
			}
		}
	}
	return nil
}

// Query prints a key as reg.exe query KEY does, or reports false when it does not exist: the
// state alone, without a hive below it (Registry.Query has both).
func (s *RegState) Query(key string) (string, bool) {
	k := s.Keys[strings.ToLower(normKey(key))]
	if k == nil || k.Deleted {
		return "", false
	}
	vals := map[string]RegEntry{}
	for n, v := range k.Values {
		if !v.Deleted {
			vals[n] = v
		}
	}
	return formatQuery(k.Path, vals), true
}

// formatQuery prints the values of key as reg.exe query KEY does.
func formatQuery(key string, vals map[string]RegEntry) string {
	path := normKey(key)
	if rest, ok := strings.CutPrefix(path, "HKLM"); ok {
		path = "HKEY_LOCAL_MACHINE" + rest
	}
	var b strings.Builder
	b.WriteString("\r\n" + path + "\r\n")
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := vals[n]
		name := v.Name
		if name == "" {
			name = "(Default)"
		}
		fmt.Fprintf(&b, "    %s    %s    %s\r\n", name, v.Type, v.Data)
	}
	b.WriteString("\r\n")
	return b.String()
}
