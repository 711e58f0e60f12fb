// Package hivetest damages registry hives for tests, as a lost write leaves them.
package hivetest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"unicode/utf16"
)

// FreeCell returns a copy of hive with the key (sig "nk") or value (sig "vk") cell named
// name marked unallocated (its size made positive), so that a reader meets "cell at 0x… is
// not allocated". The cell is found by its name alone, at the offset the format gives it in
// the cell (76 for a key node, 20 for a value, after the 4-byte size), in ASCII or UTF-16LE,
// independently of any hive reader. Exactly one such cell must exist.
func FreeCell(hive []byte, sig, name string) ([]byte, error) {
	nameAt, ok := map[string]int{"nk": 76, "vk": 20}[sig]
	if !ok {
		return nil, fmt.Errorf("hivetest: signature %q: use nk or vk", sig)
	}
	b := bytes.Clone(hive)
	u := utf16.Encode([]rune(name))
	wide := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(wide[2*i:], c)
	}
	found := 0
	for _, form := range [][]byte{[]byte(name), wide} {
		for i := 0; ; {
			j := bytes.Index(b[i:], form)
			if j < 0 {
				break
			}
			pos := i + j
			cell := pos - nameAt - 4
			if cell >= 4096 && string(b[cell+4:cell+6]) == sig && int32(binary.LittleEndian.Uint32(b[cell:])) < 0 {
				binary.LittleEndian.PutUint32(b[cell:], uint32(-int32(binary.LittleEndian.Uint32(b[cell:]))))
				found++
			}
			i = pos + 1
		}
	}
	if found != 1 {
		return nil, fmt.Errorf("hivetest: %d allocated %s cells named %q, want 1", found, sig, name)
	}
	return b, nil
}
