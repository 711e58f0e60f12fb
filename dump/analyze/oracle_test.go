package analyze

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/dump"
)

// oracleDir is kdmp-parser's source (MIT), shared by the project's tests.
func oracleDir() string {
	if d := os.Getenv("CRASHKEY_SHARED"); d != "" {
		return filepath.Join(d, "oracles", "kdmp-parser")
	}
	return filepath.Join("..", "..", "..", "shared", "oracles", "kdmp-parser")
}

// buildTranslateOracle compiles testdata/translate.cc against kdmp-parser, caching the
// binary by the hash of its inputs.
func buildTranslateOracle(t *testing.T) string {
	t.Helper()
	dir := oracleDir()
	hdr := filepath.Join(dir, "src", "lib", "kdmp-parser.h")
	if _, err := os.Stat(hdr); errors.Is(err, os.ErrNotExist) {
		t.Skipf("kdmp-parser not found at %s", dir)
	}
	src, err := os.ReadFile("testdata/translate.cc")
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	h.Write(src)
	hb, err := os.ReadFile(hdr)
	if err != nil {
		t.Fatal(err)
	}
	h.Write(hb)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "crashkey", "oracle-translate-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := bin + fmt.Sprintf(".%d", os.Getpid())
	out, err := exec.Command("g++", "-O1", "-std=c++20", "-I", filepath.Join(dir, "src", "lib"), "-I", "testdata/kdmp-include", "testdata/translate.cc", "-o", tmp).CombinedOutput()
	if err != nil {
		t.Fatalf("g++ (scripts/deps.sh installs it): %v\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// TestTranslationAgainstKdmpParser translates the x64 scene's addresses (4 KiB, 2 MiB and
// 1 GiB pages, unmapped ones) with kdmp-parser and with Space, over the same full and bitmap
// dumps.
func TestTranslationAgainstKdmpParser(t *testing.T) {
	bin := buildTranslateOracle(t)
	s := x64Scene(4, 0xFFFFF80000000000)
	vas := []uint64{s.head, s.head + 0x1008, s.entries[1] + 0x58, s.ntos, s.ntos + 0x1FFFF8, s.drv + 0x7123,
		s.hal, s.hal + 0x2345678, s.hal + 0x3FFFF000, s.ghost, 0xFFFFF80599990000, 0xFFFFF80550010000}
	full := buildFull(fullSpec{is64: true, machine: dump.MachineAMD64, dtb: s.pt.root, psl: s.head, bugcheck: 0xE2}, s.mem)
	path := filepath.Join(t.TempDir(), "full.dmp")
	if err := os.WriteFile(path, full, 0o644); err != nil {
		t.Fatal(err)
	}
	sparse, size, _ := sparseBitmapDump(t)
	mapped := 0
	for _, d := range []struct {
		path string
		r    interface {
			ReadAt([]byte, int64) (int, error)
		}
		size int64
	}{{path, bytes.NewReader(full), int64(len(full))}, {sparse.Name(), sparse, size}} {
		args := []string{d.path}
		for _, va := range vas {
			args = append(args, fmt.Sprintf("0x%X", va))
		}
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("oracle on %s: %v\n%s", d.path, err, out)
		}
		want := map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "T" {
				want[f[1]] = f[2]
			}
		}
		f, err := dump.Open(d.r, d.size)
		if err != nil {
			t.Fatal(err)
		}
		sp := NewSpace(f.PhysicalReader(), PagingX64, s.pt.root, 0)
		for _, va := range vas {
			key := fmt.Sprintf("0x%X", va)
			got := "none"
			if pa, err := sp.Translate(va); err == nil {
				got = fmt.Sprintf("0x%X", pa)
				mapped++
			}
			if want[key] != got {
				t.Errorf("%s: 0x%X: crashkey %s, kdmp-parser %q", filepath.Base(d.path), va, got, want[key])
			}
		}
	}
	if mapped < 18 {
		t.Errorf("only %d of %d addresses mapped: the test lost its point", mapped, len(vas))
	}
}
