package main

import (
	"fmt"
	"os"
	"strings"
)

// params holds the kernel command line's key=value words (bare words map to "").
type params map[string]string

// readParams parses the kernel command line in path (normally /proc/cmdline).
func readParams(path string) (params, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return parseParams(string(b)), nil
}

// parseParams splits a command line into words; the last occurrence of a key wins.
func parseParams(s string) params {
	p := params{}
	for _, w := range strings.Fields(s) {
		k, v, _ := strings.Cut(w, "=")
		p[k] = v
	}
	return p
}

// get returns the value of key, or def when the key is absent.
func (p params) get(key, def string) string {
	if v, ok := p[key]; ok {
		return v
	}
	return def
}

// list returns the comma-separated values of key.
func (p params) list(key string) []string {
	var out []string
	for _, v := range strings.Split(p[key], ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// flag reports whether key is set to a true value (1, y, yes, true, or a bare word).
func (p params) flag(key string) bool {
	v, ok := p[key]
	if !ok {
		return false
	}
	switch strings.ToLower(v) {
	case "", "1", "y", "yes", "true", "on":
		return true
	}
	return false
}
