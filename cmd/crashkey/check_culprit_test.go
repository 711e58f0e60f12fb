package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"
)

// culpritTriage builds a 64-bit triage dump by hand (dump-format.md §3 and §10.3; the
// DUMP_DRIVER_ENTRY64 offsets of ntiodump.h): bug check 0xD1 whose parameter 4 and RIP lie
// in mydriver.sys, two drivers in the list, one unloaded driver.
func culpritTriage() []byte {
	le := binary.LittleEndian
	const size = 0x6000
	b := bytes.Repeat([]byte("PAGE"), size/4)
	copy(b, "PAGEDU64")
	le.PutUint32(b[0x08:], 0xF)
	le.PutUint32(b[0x0C:], 22631)
	le.PutUint32(b[0x30:], 0x8664)
	le.PutUint32(b[0x34:], 4)
	le.PutUint32(b[0x38:], 0xD1)
	for i, p := range []uint64{0x28, 2, 0, 0xFFFFF80320001234} {
		le.PutUint64(b[0x40+8*i:], p)
	}
	clear(b[0x348 : 0x348+0x4D0])
	le.PutUint64(b[0x348+0xF8:], 0xFFFFF80320001234) // Rip
	le.PutUint32(b[0xF98:], 4)                       // triage
	le.PutUint64(b[0xFA0:], 0x40000)
	t := b[0x2000:]
	clear(t[:0x80])
	for i, v := range []uint32{0, size, size - 4, 0x348, 0xF00, 0x2080, 0x20D0, 0, 0, 0, 0x2200, 0x100, 0x2400, 2, 0x2520, 0x100, 0, 0xFFFFFFFF} {
		le.PutUint32(t[4*i:], v)
	}
	le.PutUint64(t[0x48:], 0xFFFFF80000001000)
	clear(b[0x20D0:0x2300])
	le.PutUint64(b[0x20D0:], 1) // one unloaded driver
	name := utf16.Encode([]rune("oldflt.sys"))
	le.PutUint16(b[0x20D8:], uint16(2*len(name)))
	for i, u := range name {
		le.PutUint16(b[0x20D8+16+2*i:], u)
	}
	le.PutUint64(b[0x20D8+40:], 0xFFFFF80340000000)
	le.PutUint64(b[0x20D8+48:], 0xFFFFF80340008000)
	pool := 0x2520
	for i, d := range []struct {
		name string
		base uint64
		size uint32
	}{{"ntoskrnl.exe", 0xFFFFF80312000000, 0x1046000}, {"mydriver.sys", 0xFFFFF80320000000, 0x8000}} {
		e := b[0x2400+0x90*i:]
		clear(e[:0x90])
		le.PutUint32(e, uint32(pool))
		le.PutUint64(e[0x38:], d.base)
		le.PutUint32(e[0x48:], d.size)
		le.PutUint32(e[0x88:], 0x65000000+uint32(i))
		u := utf16.Encode([]rune(d.name))
		le.PutUint32(b[pool:], uint32(2*len(u)))
		for j, c := range u {
			le.PutUint16(b[pool+4+2*j:], c)
		}
		le.PutUint16(b[pool+4+2*len(u):], 0)
		pool += 0x40
	}
	copy(b[size-4:], "TRGD")
	return b
}

func TestCheckCulprit(t *testing.T) {
	goldens, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "crash.dmp"), culpritTriage(), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
		golden bool
	}{
		{"culprit-modules", []string{"check", "--modules", "crash.dmp"}, ExitOK, "", true},
		{"culprit-json", []string{"check", "--json", "crash.dmp"}, ExitOK, "", true},
		{"expect-ok", []string{"check", "--expect-culprit", "MyDriver", "crash.dmp"}, ExitOK, "", false},
		{"expect-any", []string{"check", "--expect-culprit", "other.sys", "--expect-culprit", "mydriver.sys", "crash.dmp"}, ExitOK, "", false},
		{"expect-other", []string{"check", "--expect-culprit", "other.sys", "crash.dmp"}, ExitNo,
			"crashkey: check: crash.dmp: the probable culprit is mydriver.sys, not the expected other.sys (bug-check parameter 4 (the address that referenced memory) 0xFFFFF80320001234 is mydriver.sys+0x1234)\n", false},
		{"forbid", []string{"check", "--forbid-culprit", "mydriver.sys", "crash.dmp"}, ExitNo,
			"crashkey: check: crash.dmp: the probable culprit is mydriver.sys, which --forbid-culprit rejects", false},
		{"forbid-other", []string{"check", "--forbid-culprit", "ntoskrnl.exe", "crash.dmp"}, ExitOK, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Chdir(dir)
			out, errs, code := runCrashkey(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, errs)
			}
			if tt.stderr == "" && errs != "" || !strings.Contains(errs, tt.stderr) {
				t.Errorf("stderr %q, want %q", errs, tt.stderr)
			}
			if tt.golden {
				t.Chdir(goldens)
				checkGolden(t, filepath.Join("check", tt.name+".golden"), out)
			}
		})
	}
}
