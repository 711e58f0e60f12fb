package harness

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteCpio checks the archive against Debian's cpio, an independent reader: the listing,
// the extracted contents and modes.
func TestWriteCpio(t *testing.T) {
	if _, err := exec.LookPath("cpio"); err != nil {
		t.Fatal("cpio not found: run scripts/deps.sh")
	}
	files := []cpioFile{
		{Name: "dev", Mode: modeDir | 0o755},
		{Name: "init", Mode: modeFile | 0o755, Data: []byte("#!/bin/sh\necho hi\n")},
		{Name: "lib", Mode: modeDir | 0o755},
		{Name: "lib/a.ko", Mode: modeFile | 0o644, Data: bytes.Repeat([]byte{1, 2, 3}, 1001)},
		{Name: "lib/empty", Mode: modeFile | 0o600},
		{Name: "lib/odd-name_1", Mode: modeFile | 0o644, Data: []byte{7}},
	}
	var buf bytes.Buffer
	if err := writeCpio(&buf, files); err != nil {
		t.Fatal(err)
	}
	if buf.Len()%4 != 0 {
		t.Errorf("archive length %d is not 4-aligned", buf.Len())
	}
	list := exec.Command("cpio", "-t", "--quiet")
	list.Stdin = bytes.NewReader(buf.Bytes())
	out, err := list.Output()
	if err != nil {
		t.Fatalf("cpio -t: %v", err)
	}
	want := "dev\ninit\nlib\nlib/a.ko\nlib/empty\nlib/odd-name_1\n"
	if string(out) != want {
		t.Fatalf("cpio -t = %q, want %q", out, want)
	}
	dir := t.TempDir()
	extract := exec.Command("cpio", "-i", "-d", "--quiet", "--no-absolute-filenames")
	extract.Dir = dir
	extract.Stdin = bytes.NewReader(buf.Bytes())
	if out, err := extract.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v: %s", err, out)
	}
	for _, f := range files {
		st, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if got := uint32(st.Mode().Perm()); got != f.Mode&0o777 {
			t.Errorf("%s: mode %o, want %o", f.Name, got, f.Mode&0o777)
		}
		if f.Mode&0o170000 != modeFile {
			if !st.IsDir() {
				t.Errorf("%s: not a directory", f.Name)
			}
			continue
		}
		got, _ := os.ReadFile(filepath.Join(dir, f.Name))
		if !bytes.Equal(got, f.Data) {
			t.Errorf("%s: %d bytes extracted, want %d", f.Name, len(got), len(f.Data))
		}
	}
	// Deterministic: same input, same bytes.
	var again bytes.Buffer
	if err := writeCpio(&again, files); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.Bytes(), buf.Bytes()) {
		t.Error("two archives of the same files differ")
	}
}

func TestWriteCpioDevice(t *testing.T) {
	var buf bytes.Buffer
	if err := writeCpio(&buf, []cpioFile{{Name: "dev/console", Mode: modeChar | 0o600, RdevMajor: 5, RdevMinor: 1}}); err != nil {
		t.Fatal(err)
	}
	list := exec.Command("cpio", "-t", "-v", "--quiet")
	list.Stdin = &buf
	out, err := list.Output()
	if err != nil {
		t.Fatalf("cpio -tv: %v", err)
	}
	// e.g. "crw-------   1 root     root       5,   1 Jan  1  1970 dev/console"
	if s := string(out); !strings.HasPrefix(s, "crw-------") || !strings.Contains(s, "5,   1") || !strings.HasSuffix(s, "dev/console\n") {
		t.Errorf("cpio -tv = %q, want a char device 5,1 named dev/console", s)
	}
}

func TestInitramfsFiles(t *testing.T) {
	kdir := t.TempDir()
	os.MkdirAll(filepath.Join(kdir, "modules"), 0o755)
	os.WriteFile(filepath.Join(kdir, "modules.order"), []byte("a.ko\n\n# comment\nb.ko\n"), 0o644)
	os.WriteFile(filepath.Join(kdir, "modules", "a.ko"), []byte("A"), 0o644)
	os.WriteFile(filepath.Join(kdir, "modules", "b.ko"), []byte("BB"), 0o644)
	initPath := filepath.Join(t.TempDir(), "init")
	os.WriteFile(initPath, []byte("ELF"), 0o755)
	extra := []cpioFile{
		{Name: "bin/tool", Mode: modeFile | 0o755, Data: []byte("T")},
		{Name: "lib/x86_64-linux-gnu/libc.so.6", Mode: modeFile | 0o755, Data: []byte("C")},
	}
	files, err := initramfsFiles(initPath, kdir, extra)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name)
	}
	// Each file's parent directories come before it; lib is listed once.
	want := "dev dev/console proc sys tmp lib lib/modules lib/modules/crashkey init bin bin/tool lib/x86_64-linux-gnu lib/x86_64-linux-gnu/libc.so.6 lib/modules/crashkey/modules.order lib/modules/crashkey/a.ko lib/modules/crashkey/b.ko"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("files = %s\nwant    %s", got, want)
	}

	os.WriteFile(filepath.Join(kdir, "modules.order"), []byte("c.ko\n"), 0o644)
	if _, err := initramfsFiles(initPath, kdir, nil); err == nil || !strings.Contains(err.Error(), "rerun scripts/guest/kernel.sh") {
		t.Errorf("missing module: err = %v", err)
	}
	os.WriteFile(filepath.Join(kdir, "modules.order"), []byte("../x.ko\n"), 0o644)
	if _, err := initramfsFiles(initPath, kdir, nil); err == nil || !strings.Contains(err.Error(), "bad module name") {
		t.Errorf("path in modules.order: err = %v", err)
	}
}

func TestFindRepoRoot(t *testing.T) {
	root, err := FindRepoRoot("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "e2e", "guest")); err != nil {
		t.Errorf("root %s has no e2e/guest: %v", root, err)
	}
	if _, err := FindRepoRoot(t.TempDir()); err == nil {
		t.Error("FindRepoRoot found a root above a temporary directory")
	}
}

// TestWithParents: directories created on demand, in order, each once; a directory listed
// after it was created is dropped.
func TestWithParents(t *testing.T) {
	in := []cpioFile{
		{Name: "a/b/c", Mode: modeFile},
		{Name: "a", Mode: modeDir | 0o700},
		{Name: "a/b/d", Mode: modeFile},
		{Name: "e", Mode: modeDir | 0o755},
		{Name: "e/f", Mode: modeFile},
	}
	var names []string
	for _, f := range withParents(in) {
		names = append(names, f.Name)
	}
	if got, want := strings.Join(names, " "), "a a/b a/b/c a/b/d e e/f"; got != want {
		t.Errorf("withParents = %s, want %s", got, want)
	}
}

// TestBinaryFiles collects the host's ntfscp with its ELF interpreter and libraries (ntfs-3g
// is installed by scripts/deps.sh), and fails clearly for a file that is not an ELF binary.
func TestBinaryFiles(t *testing.T) {
	bin, err := findNtfscp("")
	if err != nil {
		t.Fatal(err)
	}
	files, err := binaryFiles(bin, ntfscpGuestPath)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range files {
		if len(f.Data) == 0 || f.Mode != modeFile|0o755 {
			t.Errorf("%s: %d bytes, mode %o", f.Name, len(f.Data), f.Mode)
		}
		got[f.Name] = true
	}
	for _, want := range []string{"bin/ntfscp", "lib64/ld-linux-x86-64.so.2", "lib/x86_64-linux-gnu/libc.so.6"} {
		if !got[want] {
			t.Errorf("binaryFiles(ntfscp) lacks %s: %v", want, got)
		}
	}
	libntfs := false
	for n := range got {
		libntfs = libntfs || strings.Contains(n, "libntfs-3g.so")
	}
	if !libntfs {
		t.Errorf("binaryFiles(ntfscp) lacks libntfs-3g: %v", got)
	}
	notELF := filepath.Join(t.TempDir(), "script")
	os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755)
	if _, err := binaryFiles(notELF, "bin/x"); err == nil {
		t.Error("binaryFiles accepted a shell script")
	}
	if _, err := findNtfscp(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("findNtfscp accepted a missing file")
	}
}
