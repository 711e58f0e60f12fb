// Package units formats quantities for people.
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Bytes renders a size with binary prefixes: "512 B", "1.5 KiB", "2.0 GiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ParseBytes reads a size as people write it: "1048576", "512K", "64M", "256G", "1T" (binary
// prefixes, with or without "i" and "B": "64MiB", "64MB" and "64m" are all 64 × 2^20).
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "b")
	t = strings.TrimSuffix(t, "i")
	shift := 0
	if n := len(t); n > 0 {
		if i := strings.IndexByte("KMGTPE", t[n-1]&^0x20); i >= 0 && t[n-1] > '9' {
			shift, t = 10*(i+1), t[:n-1]
		}
	}
	v, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional K, M, G, T suffix (e.g. 64G)", s)
	}
	if shift > 0 && v > math.MaxInt64>>shift {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return v << shift, nil
}
