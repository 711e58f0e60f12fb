package pull

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/crashkey/crashkey/disk"
)

// expected is one line of testdata/hostile.tsv (built by testdata/mkhostile.sh).
type expected struct {
	size int64
	sha  string
}

func hostileManifest(tb testing.TB) map[string]expected {
	tb.Helper()
	f, err := os.Open("testdata/hostile.tsv")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	m := map[string]expected{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), "\t")
		name, err := hex.DecodeString(fs[0])
		n, err2 := strconv.ParseInt(fs[1], 10, 64)
		if err != nil || err2 != nil {
			tb.Fatalf("hostile.tsv: %q", sc.Text())
		}
		m[string(name)] = expected{n, fs[2]}
	}
	return m
}

func openHostile(tb testing.TB, name string) *disk.Image {
	tb.Helper()
	im, err := disk.Open(filepath.Join("testdata", name), disk.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { im.Close() })
	return im
}

// allocated is the disk space a file takes (its blocks), whatever its length.
func allocated(tb testing.TB, p string) int64 {
	tb.Helper()
	st, err := os.Stat(p)
	if err != nil {
		tb.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

// TestSparseMemoryDump: a 4 TiB sparse MEMORY.DMP whose header gives 72 KiB yields 72 KiB.
func TestSparseMemoryDump(t *testing.T) {
	want := hostileManifest(t)[`Windows\MEMORY.DMP`]
	dir := t.TempDir()
	res, err := Pull(context.Background(), openHostile(t, "hostile.qcow2"), Options{OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Source != `Windows\MEMORY.DMP` || res.Size != want.size || res.SHA256 != want.sha || fileSHA(t, res.Output) != want.sha {
		t.Fatalf("result %+v, want %d bytes sha256 %s", res, want.size, want.sha)
	}
	if !strings.Contains(res.Note, "header gives 73728") {
		t.Errorf("note %q should say the file was cut", res.Note)
	}
	if st, _ := os.Stat(res.Output); st.Size() != want.size {
		t.Errorf("output is %d bytes", st.Size())
	}
}

// TestHugeFileRefused: a sparse 2 TiB file is refused before anything is written, by
// --max-size and, without a limit, by the free space of --out.
func TestHugeFileRefused(t *testing.T) {
	im := openHostile(t, "hostile.qcow2")
	dir := t.TempDir()
	_, err := Pull(context.Background(), im, Options{OutDir: dir, Path: `Windows\Temp\huge.bin`})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "--max-size") {
		t.Fatalf("default limit: err = %v, want ErrTooLarge", err)
	}
	_, err = Pull(context.Background(), im, Options{OutDir: dir, Path: `Windows\Temp\huge.bin`, MaxSize: -1})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("no limit: err = %v, want ErrNoSpace (this test assumes less than 2 TiB free in %s)", err, dir)
	}
	if _, err = Pull(context.Background(), im, Options{OutDir: dir, Path: `Windows\Temp\sparse.bin`, MaxSize: 1 << 20}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("64 MiB over a 1 MiB limit: err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("refused pulls left %d files", len(ents))
	}
}

// TestSparseOutput: the hole of a sparse file is neither read nor written: the output has
// the same bytes but takes only the space of its data.
func TestSparseOutput(t *testing.T) {
	want := hostileManifest(t)[`Windows\Temp\sparse.bin`]
	dir := t.TempDir()
	res, err := Pull(context.Background(), openHostile(t, "hostile.qcow2"), Options{OutDir: dir, Path: `Windows\Temp\sparse.bin`})
	if err != nil {
		t.Fatal(err)
	}
	if res.Size != want.size || res.SHA256 != want.sha || fileSHA(t, res.Output) != want.sha {
		t.Fatalf("result %+v, want %d bytes sha256 %s", res, want.size, want.sha)
	}
	if a := allocated(t, res.Output); a > 8<<20 {
		t.Errorf("the 64 MiB output with 8 KiB of data takes %d bytes on disk: the hole was inflated", a)
	}
}

// TestOddNames: every minidump is listed by its exact name, and pulled, and names unsafe as
// a local file name are mapped to safe, unique ones that the result reports.
func TestOddNames(t *testing.T) {
	m := hostileManifest(t)
	im := openHostile(t, "hostile.qcow2")
	cands, err := List(im, Sources{})
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, c := range cands {
		if c.Kind == KindMinidump {
			listed[c.Source] = true
			if !c.Valid {
				t.Errorf("%q: %s", c.Source, c.Summary)
			}
		}
	}
	var minis []string
	for name := range m {
		if strings.HasPrefix(name, `Windows\Minidump\`) {
			minis = append(minis, name)
			if !listed[name] {
				t.Errorf("%q is not listed", name)
			}
		}
	}
	if len(listed) != len(minis) {
		t.Errorf("%d minidumps listed, want %d", len(listed), len(minis))
	}

	dir := t.TempDir()
	res, err := PullMinidumps(context.Background(), im, Options{OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	outs := map[string]bool{}
	for _, r := range res {
		if r.Source == "pagefile.sys" {
			continue
		}
		want, ok := m[r.Source]
		if !ok {
			t.Errorf("pulled unknown %q", r.Source)
			continue
		}
		if r.Size != want.size || r.SHA256 != want.sha || fileSHA(t, r.Output) != want.sha {
			t.Errorf("%q: %d bytes sha256 %s, want %d %s", r.Source, r.Size, r.SHA256, want.size, want.sha)
		}
		base := filepath.Base(r.Output)
		if filepath.Dir(r.Output) != dir || outs[base] || len(base) > 255 {
			t.Errorf("%q → %q: not a unique name inside --out", r.Source, r.Output)
		}
		outs[base] = true
		name := strings.TrimPrefix(r.Source, `Windows\Minidump\`) // the exact name: it may hold '\'
		exact := name == base
		if exact == (r.Renamed != "") {
			t.Errorf("%q → %q, renamed %q: the result must say exactly when the name changed", r.Source, base, r.Renamed)
		}
		switch name {
		case "100%.dmp", "a:b.dmp", "q?.dmp", "Case.dmp", "CASE.dmp", "ok.dmp":
			if !exact {
				t.Errorf("%q was renamed to %q: the name is safe on Linux", r.Source, base)
			}
		case `..\..\evil.dmp`:
			if base == "evil.dmp" || !strings.HasPrefix(base, "_._.._evil~") {
				t.Errorf("%q → %q: the whole name, backslashes mapped, with its tag", r.Source, base)
			}
		}
	}
	if len(outs) != len(minis) {
		t.Errorf("%d minidumps pulled, want %d", len(outs), len(minis))
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != len(minis)+1 { // + pagefile-minidump.dmp
		t.Errorf("--out holds %d files, want %d", len(ents), len(minis)+1)
	}
}

// TestPagefileMinidump: a triage dump at the start of pagefile.sys is found, cut after its
// secondary data (the blob headers give its length), and pulled as pagefile-minidump.dmp.
func TestPagefileMinidump(t *testing.T) {
	want := hostileManifest(t)["pagefile.sys#minidump"]
	im := openHostile(t, "hostile.qcow2")
	dir := t.TempDir()
	res, err := PullMinidumps(context.Background(), im, Options{OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	var got *Result
	for _, r := range res {
		if r.Source == "pagefile.sys" {
			got = r
		}
	}
	if got == nil {
		t.Fatal("the minidump in pagefile.sys was not pulled")
	}
	if filepath.Base(got.Output) != PagefileMinidump || got.Size != want.size || got.SHA256 != want.sha || !got.FromPagefile ||
		!strings.Contains(got.Note, "secondary data") {
		t.Errorf("result %+v, want %s of %d bytes sha256 %s", got, PagefileMinidump, want.size, want.sha)
	}
}

// TestNoDumpNamesMinidumps: no full dump, but minidumps: the error says so and gives the
// command.
func TestNoDumpNamesMinidumps(t *testing.T) {
	_, err := Pull(context.Background(), openHostile(t, "minionly.qcow2"), Options{OutDir: t.TempDir()})
	if !errors.Is(err, ErrNoDump) || !strings.Contains(err.Error(), "1 valid minidump(s) exist: crashkey pull testdata/minionly.qcow2 --minidumps") {
		t.Fatalf("err = %v", err)
	}
}

// TestLongNameOut: a 238-character name (472 bytes of UTF-8, beyond NAME_MAX with any
// temporary prefix) is pulled under a shortened name that keeps the extension.
func TestLongNameOut(t *testing.T) {
	long := `Windows\Minidump\` + strings.Repeat("ä", 234) + ".dmp"
	want := hostileManifest(t)[long]
	dir := t.TempDir()
	res, err := Pull(context.Background(), openHostile(t, "hostile.qcow2"), Options{OutDir: dir, Path: long})
	if err != nil {
		t.Fatal(err)
	}
	base := filepath.Base(res.Output)
	if len(base) > 255 || !strings.HasSuffix(base, ".dmp") || !strings.HasPrefix(base, "ääää") || !strings.Contains(res.Renamed, "255 bytes") ||
		res.SHA256 != want.sha {
		t.Fatalf("%q (%d bytes), renamed %q, sha %s", base, len(base), res.Renamed, res.SHA256)
	}
}

// TestNoDumpSummarised: an error line never carries thousands of names.
func TestNoDumpSummarised(t *testing.T) {
	cands := make([]Candidate, 3000)
	for i := range cands {
		cands[i] = Candidate{Source: `Windows\Minidump\` + strconv.Itoa(i) + ".dmp", Summary: "invalid: not a kernel dump"}
	}
	im := openHostile(t, "minionly.qcow2")
	msg := noDump(im, cands, "minidump").Error()
	if !strings.Contains(msg, "and 2997 more (see --list)") || strings.Count(msg, ".dmp") > 4 || strings.Contains(msg, "\n") {
		t.Fatalf("%d bytes: %.300s…", len(msg), msg)
	}
}
