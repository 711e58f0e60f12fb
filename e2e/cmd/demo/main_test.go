package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunBadInput: bad flags and a missing disk are refused with exit 2 and a message, before
// anything is built or booted.
func TestRunBadInput(t *testing.T) {
	disk := filepath.Join(t.TempDir(), "win.qcow2")
	os.WriteFile(disk, []byte("QFI\xfb"), 0o644)
	tests := []struct {
		args []string
		want string
	}{
		{nil, "-disk IMAGE is required"},
		{[]string{"-disk", disk, "extra"}, "no arguments"},
		{[]string{"-disk", disk, "-keyboard", "virtio"}, `-keyboard "virtio": use ps2 or usb`},
		{[]string{"-disk", filepath.Join(t.TempDir(), "missing.qcow2")}, "standin-disk.sh"},
		{[]string{"-frobnicate"}, "flag provided but not defined"},
	}
	for _, tt := range tests {
		var stdout, stderr bytes.Buffer
		if code := run(tt.args, strings.NewReader(""), &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), tt.want) {
			t.Errorf("run(%q) = %d, stderr %q; want 2 and %q", tt.args, code, stderr.String(), tt.want)
		}
		if stdout.Len() != 0 {
			t.Errorf("run(%q) printed %q on stdout", tt.args, stdout.String())
		}
	}
}

func TestFormat(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string]string{"a.qcow2": "QFI\xfb\x00\x00\x00\x03", "b.img": "\x00\x00\x00\x00", "c": ""} {
		os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644)
	}
	for name, want := range map[string]string{"a.qcow2": "qcow2", "b.img": "raw", "c": "raw", "missing": "raw"} {
		if got := format(filepath.Join(dir, name)); got != want {
			t.Errorf("format(%s) = %s, want %s", name, got, want)
		}
	}
}
