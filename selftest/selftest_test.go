package selftest

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crashkey/crashkey/internal/golden"
	"github.com/crashkey/crashkey/qemuboot"
	"github.com/crashkey/crashkey/run"
	"github.com/crashkey/crashkey/vm/qmptest"
)

func trig(k run.TriggerKind) run.Trigger { return run.Trigger{Kind: k} }

// fixedResult is a matrix with one failed cell, for the output tests.
func fixedResult() *Result {
	return &Result{
		Image: "/img/win11.qcow2", Accel: "kvm", Duration: 125 * time.Second,
		Cells: []Cell{
			{Keyboard: "ps2", Trigger: "keys", Passed: true, Outcome: "dump-ok", Summary: "the guest crashed with 0x000000E2 (MANUALLY_INITIATED_CRASH) and its dump is valid",
				Timings: Timings{Boot: 20 * time.Second, Arm: 15 * time.Second, Crash: 12300 * time.Millisecond, Total: 47300 * time.Millisecond}},
			{Keyboard: "ps2", Trigger: "nmi", Passed: true, Outcome: "dump-ok", Summary: "the guest crashed with 0x00000080 (NMI_HARDWARE_FAILURE) and its dump is valid",
				Timings: Timings{Boot: 19 * time.Second, Arm: 14 * time.Second, Crash: 10 * time.Second, Total: 43 * time.Second}},
			{Keyboard: "usb", Trigger: "keys", Outcome: "no-crash", Summary: "no crash within 2m0s <after & \"keys\">\nsecond line",
				Timings: Timings{Boot: 21 * time.Second, Arm: 15 * time.Second, Crash: 120 * time.Second, Total: 156 * time.Second}},
		},
	}
}

func TestWriteText(t *testing.T) {
	var b bytes.Buffer
	if err := WriteText(&b, fixedResult()); err != nil {
		t.Fatal(err)
	}
	golden.CheckString(t, filepath.Join("testdata", "matrix.golden"), b.String())
}

func TestJSON(t *testing.T) {
	b, err := json.MarshalIndent(fixedResult(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden.CheckString(t, filepath.Join("testdata", "result.json.golden"), string(b)+"\n")
}

// TestJUnit reads the XML back with encoding/xml: one test case per cell, failures counted and
// carrying the outcome, and the file written whole.
func TestJUnit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out", "selftest.xml")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteJUnit(path, fixedResult()); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("<?xml")) {
		t.Errorf("no XML header: %.40q", b)
	}
	var doc struct {
		XMLName  xml.Name `xml:"testsuites"`
		Tests    int      `xml:"tests,attr"`
		Failures int      `xml:"failures,attr"`
		Suites   []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
			Props    []struct {
				Name  string `xml:"name,attr"`
				Value string `xml:"value,attr"`
			} `xml:"properties>property"`
			Cases []struct {
				Name      string  `xml:"name,attr"`
				Classname string  `xml:"classname,attr"`
				Time      float64 `xml:"time,attr"`
				Failure   *struct {
					Message string `xml:"message,attr"`
					Type    string `xml:"type,attr"`
					Text    string `xml:",chardata"`
				} `xml:"failure"`
				SystemOut string `xml:"system-out"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, b)
	}
	if doc.Tests != 3 || doc.Failures != 1 || len(doc.Suites) != 1 {
		t.Fatalf("testsuites: tests %d failures %d suites %d, want 3, 1, 1", doc.Tests, doc.Failures, len(doc.Suites))
	}
	s := doc.Suites[0]
	if s.Tests != 3 || s.Failures != 1 || len(s.Cases) != 3 || len(s.Props) != 2 || s.Props[0].Value != "/img/win11.qcow2" {
		t.Fatalf("testsuite: %+v", s)
	}
	names := []string{"ps2/keys", "ps2/nmi", "usb/keys"}
	for i, c := range s.Cases {
		if c.Name != names[i] || c.Classname != "crashkey.selftest" || c.Time <= 0 || !strings.Contains(c.SystemOut, "outcome: ") {
			t.Errorf("case %d: %+v", i, c)
		}
		if (c.Failure != nil) != (i == 2) {
			t.Errorf("case %s: failure %+v", c.Name, c.Failure)
		}
	}
	f := s.Cases[2].Failure
	if f.Type != "no-crash" || f.Message != `no crash within 2m0s <after & "keys"> second line` || !strings.Contains(f.Text, "\nsecond line") {
		t.Errorf("failure: %+v", f)
	}
	if s.Cases[0].Time != 47.3 {
		t.Errorf("time %v, want 47.3", s.Cases[0].Time)
	}
	// Nothing but the file is left in its directory (no temporary files).
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want the XML file only", len(ents))
	}
}

// TestRunCells checks the fan-out: every cell in matrix order, at most Parallel at once,
// OnCell per cell, and ErrNoAgent from one cell stopping the rest.
func TestRunCells(t *testing.T) {
	opts := Options{Image: "img", Keyboards: []qemuboot.Keyboard{"ps2", "usb", "virtio"},
		Triggers: []run.Trigger{trig(run.TriggerKeys), trig(run.TriggerNMI)}, Parallel: 2, Arm: func(context.Context, string, string, qemuboot.Keyboard) error { return nil }}
	var running, peak atomic.Int32
	var mu sync.Mutex
	var notified []string
	opts.OnCell = func(c Cell) {
		mu.Lock()
		notified = append(notified, string(c.Keyboard)+"/"+c.Trigger)
		mu.Unlock()
	}
	fn := func(ctx context.Context, o Options, k qemuboot.Keyboard, tr run.Trigger) (Cell, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(20 * time.Millisecond)
		ok := !(k == "virtio" && tr.Kind == run.TriggerNMI)
		return Cell{Keyboard: k, Trigger: tr.String(), Passed: ok, Outcome: map[bool]string{true: "dump-ok", false: "no-crash"}[ok]}, nil
	}
	res, err := runCells(context.Background(), opts, fn)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range res.Cells {
		got = append(got, string(c.Keyboard)+"/"+c.Trigger)
	}
	if strings.Join(got, " ") != "ps2/keys ps2/nmi usb/keys usb/nmi virtio/keys virtio/nmi" {
		t.Errorf("cells %v", got)
	}
	if res.Passed || len(notified) != 6 || peak.Load() != 2 {
		t.Errorf("passed %v, notified %d, peak parallel %d: want false, 6, 2", res.Passed, len(notified), peak.Load())
	}

	// No agent: the first cell's error stops the matrix.
	opts.Parallel = 1
	calls := 0
	res, err = runCells(context.Background(), opts, func(ctx context.Context, o Options, k qemuboot.Keyboard, tr run.Trigger) (Cell, error) {
		calls++
		return Cell{}, fmt.Errorf("selftest: %w: fix it", ErrNoAgent)
	})
	if !errors.Is(err, ErrNoAgent) || calls != 1 || len(res.Cells) != 0 || res.Passed {
		t.Errorf("no agent: err %v, %d calls, %d cells, passed %v", err, calls, len(res.Cells), res.Passed)
	}
}

func TestOptionsErrors(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img.raw")
	os.WriteFile(img, []byte("x"), 0o644)
	arm := func(context.Context, string, string, qemuboot.Keyboard) error { return nil }
	tests := []struct {
		o    Options
		want string
	}{
		{Options{Arm: arm}, "no image"},
		{Options{Image: img + ".missing", Arm: arm}, "no such file"},
		{Options{Image: img, Arm: arm, Triggers: []run.Trigger{{Kind: run.TriggerExec, Command: "x"}}}, "use keys or nmi"},
	}
	for _, tt := range tests {
		_, err := Run(context.Background(), tt.o)
		if !errors.Is(err, ErrBadConfig) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want ErrBadConfig with %q", tt.o, err, tt.want)
		}
	}
}

// TestNoAgent boots a real QEMU on an image without any guest agent (a blank disk: nothing
// boots) and checks that selftest stops with the fix, never arms, and leaves nothing behind.
func TestNoAgent(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	img := filepath.Join(tmp, "blank.raw")
	if err := os.WriteFile(img, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	armed := false
	res, err := Run(context.Background(), Options{
		Image:     img,
		Keyboards: []qemuboot.Keyboard{qemuboot.PS2, qemuboot.USB},
		Triggers:  []run.Trigger{trig(run.TriggerNMI)},
		Boot:      qemuboot.Config{Accel: "tcg", MemoryMiB: 64},
		Arm: func(context.Context, string, string, qemuboot.Keyboard) error {
			armed = true
			return nil
		},
		AgentTimeout: 3 * time.Second,
		Timeout:      time.Minute,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if !errors.Is(err, ErrNoAgent) || !strings.Contains(err.Error(), "virtio-win's guest tools") || !strings.Contains(err.Error(), "qemu-guest-agent") {
		t.Fatalf("got %v, want ErrNoAgent naming the fix", err)
	}
	if armed || res == nil || len(res.Cells) != 0 || res.Passed {
		t.Errorf("armed %v, result %+v", armed, res)
	}
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		if e.Name() != "blank.raw" {
			t.Errorf("%s left behind", e.Name())
		}
	}
}

// TestJUnitStopped: a matrix that stopped (no agent) is an errored case, never an empty suite.
func TestJUnitStopped(t *testing.T) {
	b, err := JUnit(&Result{Image: "img", Accel: "tcg", Error: "selftest: no guest agent answers: install it"})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Tests  int `xml:"tests,attr"`
		Errors int `xml:"errors,attr"`
		Suites []struct {
			Cases []struct {
				Name  string `xml:"name,attr"`
				Error *struct {
					Message string `xml:"message,attr"`
				} `xml:"error"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Tests != 1 || doc.Errors != 1 || len(doc.Suites) != 1 || len(doc.Suites[0].Cases) != 1 ||
		doc.Suites[0].Cases[0].Error == nil || !strings.Contains(doc.Suites[0].Cases[0].Error.Message, "no guest agent") {
		t.Errorf("stopped matrix: %s", b)
	}
}

func TestDriver(t *testing.T) {
	for k, want := range map[qemuboot.Keyboard]string{qemuboot.PS2: "i8042prt", qemuboot.USB: "kbdhid", qemuboot.Virtio: "kbdhid"} {
		if got := string(Driver(k)); got != want {
			t.Errorf("%s: %s, want %s", k, got, want)
		}
	}
}

// TestWaitAgentRealQGA: WaitAgent returns once Debian's real qemu-ga answers.
func TestWaitAgentRealQGA(t *testing.T) {
	addr, _ := qmptest.StartQGA(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := WaitAgent(ctx, qmptest.New(t).Addr, addr, 20*time.Second); err != nil {
		t.Fatal(err)
	}
}
