package pull

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/dump"
)

const testdata = "../disk/testdata"

// manifest maps "image|path" to the sha256 that ntfscat read when the fixtures were built.
func manifest(tb testing.TB) map[string]string {
	tb.Helper()
	f, err := os.Open(filepath.Join(testdata, "manifest.tsv"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Split(sc.Text(), "\t")
		m[fs[0]+"|"+strings.ReplaceAll(fs[2], "/", `\`)] = fs[4]
	}
	return m
}

func openImage(tb testing.TB, name string, opts disk.Options) *disk.Image {
	tb.Helper()
	im, err := disk.Open(filepath.Join(testdata, name), opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { im.Close() })
	return im
}

func fileSHA(tb testing.TB, p string) string {
	tb.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		tb.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestPull(t *testing.T) {
	m := manifest(t)
	tests := []struct {
		image        string
		opts         Options
		source       string
		manifestKey  string
		output       string
		fromPagefile bool
		bugcheck     uint32
		note         string
	}{
		{image: "gpt.qcow2", source: `Windows\MEMORY.DMP`, output: "MEMORY.DMP", bugcheck: 0xE2},
		{image: "mbr.qcow2", source: `PAGEFILE.SYS`, manifestKey: `PAGEFILE.SYS#dump`, output: "MEMORY.DMP",
			fromPagefile: true, bugcheck: 0xE2, note: "had not rebooted"},
		{image: "gpt.qcow2", opts: Options{Sources: Sources{DedicatedDumpFile: `D:\DUMPS\dedicated.sys`}}, source: `dumps\dedicated.sys`,
			manifestKey: `dumps\dedicated.sys#dump`, output: "MEMORY.DMP", fromPagefile: true, bugcheck: 0x80, note: "had not rebooted"},
		{image: "base.qcow2", source: `Windows\MEMORY.DMP`, output: "MEMORY.DMP", bugcheck: 0x1E},
		{image: "overlay.qcow2", source: `Windows\MEMORY.DMP`, output: "MEMORY.DMP", bugcheck: 0xE2},
		{image: "gpt.qcow2", opts: Options{Minidumps: true}, source: `Windows\Minidump\112026-10300-02.dmp`,
			output: "112026-10300-02.dmp", bugcheck: 0xE2},
		{image: "mbr.qcow2", opts: Options{Path: `windows/system32/config/SYSTEM`}, source: `WINDOWS\system32\CONFIG\system`,
			output: "system"},
		{image: "gpt.qcow2", opts: Options{Path: `Windows\Minidump\112026-9015-01.dmp`}, source: `Windows\Minidump\112026-9015-01.dmp`,
			output: "112026-9015-01.dmp", bugcheck: 0x1E},
	}
	for _, tt := range tests {
		t.Run(tt.image+"/"+tt.source, func(t *testing.T) {
			im := openImage(t, tt.image, disk.Options{})
			dir := t.TempDir()
			tt.opts.OutDir = dir
			var calls int
			var last int64
			tt.opts.Progress = func(done, total int64) { calls++; last = done }
			res, err := Pull(context.Background(), im, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			key := tt.manifestKey
			if key == "" {
				key = tt.source
			}
			want, ok := m[tt.image+"|"+strings.ReplaceAll(key, "/", `\`)]
			if !ok {
				t.Fatalf("no manifest entry %s|%s", tt.image, key)
			}
			if res.Source != tt.source || res.Output != filepath.Join(dir, tt.output) || res.SHA256 != want ||
				res.FromPagefile != tt.fromPagefile || !strings.Contains(res.Note, tt.note) {
				t.Errorf("result %+v\nwant source %s output %s sha %s fromPagefile %v note ~%q", res, tt.source, tt.output, want, tt.fromPagefile, tt.note)
			}
			if got := fileSHA(t, res.Output); got != want {
				t.Errorf("written file sha256 %s, want %s", got, want)
			}
			st, _ := os.Stat(res.Output)
			if st.Size() != res.Size || st.Mode().Perm() != 0o644 {
				t.Errorf("written file: size %d mode %v, result size %d", st.Size(), st.Mode(), res.Size)
			}
			if calls == 0 || last != res.Size {
				t.Errorf("progress: %d calls, last %d of %d", calls, last, res.Size)
			}
			if tt.bugcheck != 0 && (res.Candidate == nil || res.Candidate.BugCheck != tt.bugcheck) {
				t.Errorf("candidate %+v, want bug check 0x%X", res.Candidate, tt.bugcheck)
			}
			ents, _ := os.ReadDir(dir)
			if len(ents) != 1 {
				t.Errorf("output directory holds %d entries, want 1 (temporary files left?)", len(ents))
			}
		})
	}
}

func TestPullMinidumps(t *testing.T) {
	im := openImage(t, "gpt.qcow2", disk.Options{})
	dir := t.TempDir()
	res, err := PullMinidumps(context.Background(), im, Options{OutDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 2 || filepath.Base(res[0].Output) != "112026-10300-02.dmp" || filepath.Base(res[1].Output) != "112026-9015-01.dmp" {
		t.Fatalf("results %+v", res)
	}
	if _, err := PullMinidumps(context.Background(), im, Options{OutDir: dir}); !errors.Is(err, ErrExists) {
		t.Fatalf("second pull: err = %v, want ErrExists", err)
	}
	if _, err := PullMinidumps(context.Background(), openImage(t, "overlay.qcow2", disk.Options{}), Options{OutDir: dir}); !errors.Is(err, ErrNoDump) {
		t.Fatalf("no minidumps: err = %v, want ErrNoDump", err)
	}
}

func TestExistingOutput(t *testing.T) {
	im := openImage(t, "gpt.qcow2", disk.Options{})
	dir := t.TempDir()
	out := filepath.Join(dir, "MEMORY.DMP")
	os.WriteFile(out, []byte("keep me"), 0o600)
	_, err := Pull(context.Background(), im, Options{OutDir: dir})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("err = %v, want ErrExists naming --force", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "keep me" {
		t.Fatal("existing file changed")
	}
	res, err := Pull(context.Background(), im, Options{OutDir: dir, Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if fileSHA(t, out) != res.SHA256 {
		t.Fatal("forced pull did not replace the file")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in the output directory", len(ents))
	}
}

func TestNoDump(t *testing.T) {
	im := openImage(t, "gpt.qcow2", disk.Options{Partition: 2})
	_, err := Pull(context.Background(), im, Options{OutDir: t.TempDir()})
	if !errors.Is(err, ErrNoDump) {
		t.Fatalf("err = %v, want ErrNoDump", err)
	}
	if _, err := Pull(context.Background(), openImage(t, "gpt.qcow2", disk.Options{}), Options{OutDir: t.TempDir(), Path: "nope.txt"}); !errors.Is(err, disk.ErrNotFound) {
		t.Fatalf("missing --path: err = %v", err)
	}
}

func TestList(t *testing.T) {
	im := openImage(t, "gpt.qcow2", disk.Options{})
	cands, err := List(im, Sources{DumpFile: `%SystemRoot%\MEMORY.DMP`, MinidumpDir: `C:\Windows\Temp`})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cands {
		got = append(got, c.Kind+" "+c.Source+" "+map[bool]string{true: "valid", false: "invalid"}[c.Valid])
	}
	want := []string{
		`memory.dmp Windows\MEMORY.DMP valid`,
		`pagefile pagefile.sys invalid`,
		`minidump Windows\Minidump\112026-10300-02.dmp valid`,
		`minidump Windows\Minidump\112026-9015-01.dmp valid`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("List:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(cands[1].Summary, "no dump header") {
		t.Errorf("pagefile summary %q", cands[1].Summary)
	}
	if !strings.Contains(cands[0].Summary, "MANUALLY_INITIATED_CRASH") || cands[0].DumpSize != cands[0].Size {
		t.Errorf("MEMORY.DMP candidate %+v", cands[0])
	}
	if _, err := List(im, Sources{DumpFile: `C:\a:b`}); !errors.Is(err, disk.ErrBadPath) {
		t.Errorf("bad registry path: %v", err)
	}
}

// TestDescribe checks the validity rules on dumps written by the dump package.
func TestDescribe(t *testing.T) {
	full := func(pages uint64) []byte {
		var b bytes.Buffer
		spec := dump.Spec{Is64: true, Type: dump.TypeFull, BugCheck: 0xE2, SystemTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
			Runs: []dump.Run{{BasePage: 1, PageCount: pages}}}
		if err := dump.Write(&b, spec, nil); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	d := full(4)
	tests := []struct {
		name    string
		kind    string
		data    []byte
		valid   bool
		pf      bool
		summary string
	}{
		{"whole MEMORY.DMP", KindMemoryDump, d, true, false, "0x000000E2 (MANUALLY_INITIATED_CRASH), full dump, 2026-01-02 03:04:05 UTC"},
		{"half-copied MEMORY.DMP", KindMemoryDump, d[:len(d)-4096], false, false, "truncated"},
		{"pagefile with a dump and more", KindPagefile, append(bytes.Clone(d), make([]byte, 8192)...), true, true, "first 24576 bytes"},
		{"pagefile without a dump", KindPagefile, make([]byte, 8192), false, false, "no dump header"},
		{"user minidump", KindMinidump, append([]byte("MDMP"), make([]byte, 100)...), false, false, "user-mode"},
		{"full dump in the minidump folder", KindMinidump, d, true, false, "in the minidump folder"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Candidate{Kind: tt.kind, Size: int64(len(tt.data))}
			describe(&c, bytes.NewReader(tt.data))
			if c.Valid != tt.valid || c.FromPagefile != tt.pf || !strings.Contains(c.Summary, tt.summary) {
				t.Errorf("got valid %v pagefile %v summary %q; want %v %v ~%q", c.Valid, c.FromPagefile, c.Summary, tt.valid, tt.pf, tt.summary)
			}
		})
	}
}

func TestNewestWins(t *testing.T) {
	old := Candidate{Source: "a", Valid: true, SystemTime: time.Unix(100, 0), hdrTime: true}
	young := Candidate{Source: "b", Valid: true, SystemTime: time.Unix(200, 0), hdrTime: true}
	broken := Candidate{Source: "c", Valid: false, SystemTime: time.Unix(300, 0), hdrTime: true}
	c, err := newest(nil, []Candidate{old, broken, young})
	if err != nil || c.Source != "b" {
		t.Fatalf("newest = %+v, %v", c, err)
	}
}

type failWriter struct{ after int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.after -= len(p); w.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

type shortReader struct{ n int64 }

func (r shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.n {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.n-off)
	return int(n), nil
}

func TestCopy(t *testing.T) {
	src := bytes.Repeat([]byte("crashkey"), 3<<20) // 24 MiB: several chunks
	var out bytes.Buffer
	sum, err := Copy(context.Background(), &out, bytes.NewReader(src), int64(len(src)), nil)
	want := sha256.Sum256(src)
	if err != nil || !bytes.Equal(out.Bytes(), src) || !bytes.Equal(sum, want[:]) {
		t.Fatalf("copy: err %v, %d bytes", err, out.Len())
	}
	if _, err := Copy(context.Background(), &failWriter{after: 5 << 20}, bytes.NewReader(src), int64(len(src)), nil); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("failing writer: %v", err)
	}
	if _, err := Copy(context.Background(), io.Discard, shortReader{1000}, 5000, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short source: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Copy(ctx, io.Discard, bytes.NewReader(src), int64(len(src)), nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestCancelledPullLeavesNothing(t *testing.T) {
	im := openImage(t, "gpt.qcow2", disk.Options{})
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Pull(ctx, im, Options{OutDir: dir}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %d files behind", len(ents))
	}
}

// TestNeverReplacesTheImage pulls a file named like the image into the image's directory
// with Force: it must refuse rather than rename over the image.
func TestNeverReplacesTheImage(t *testing.T) {
	dir := t.TempDir()
	b, err := os.ReadFile(filepath.Join(testdata, "gpt.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "MEMORY.DMP") // an image that happens to carry the dump's name
	os.WriteFile(img, b, 0o644)
	im, err := disk.Open(img, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	_, err = Pull(context.Background(), im, Options{OutDir: dir, Force: true})
	if !errors.Is(err, ErrProtected) || !strings.Contains(err.Error(), "image itself") {
		t.Fatalf("err = %v", err)
	}
	if got, _ := os.ReadFile(img); !bytes.Equal(got, b) {
		t.Fatal("the image changed")
	}
}

// sliceWriter records the writes it is given.
type sliceWriter struct {
	bytes.Buffer
	writes, largest int
}

func (w *sliceWriter) Write(p []byte) (int, error) {
	w.writes++
	w.largest = max(w.largest, len(p))
	return w.Buffer.Write(p)
}

// TestCopyWritesInSlices copies a source of an odd length (a chunk and a slice that are
// not whole at the end): every write is at most writeSlice bytes, the bytes arrive in order,
// and the SHA-256 the pipeline computes beside the writer is that of what was written.
func TestCopyWritesInSlices(t *testing.T) {
	src := make([]byte, 3*chunkSize+writeSlice/2+12345)
	for i := range src {
		src[i] = byte(i*7 + i>>16)
	}
	var w sliceWriter
	sum, err := Copy(context.Background(), &w, bytes.NewReader(src), int64(len(src)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(w.Bytes(), src) {
		t.Fatalf("wrote %d bytes, not the source's %d", w.Len(), len(src))
	}
	if got := sha256.Sum256(w.Bytes()); !bytes.Equal(sum, got[:]) {
		t.Fatalf("sha256 %x, of the written bytes %x", sum, got)
	}
	if w.largest > writeSlice || w.largest == 0 {
		t.Errorf("largest write %d bytes, want at most %d", w.largest, writeSlice)
	}
	if want := (len(src) + writeSlice - 1) / writeSlice; w.writes < want {
		t.Errorf("%d writes for %d bytes: fewer than %d slices", w.writes, len(src), want)
	}
}
