//go:build e2e

package e2e

// End-to-end tests of `crashkey dump`: the test guest publishes a Windows dump header through
// QEMU's vmcoreinfo device (e2e/guest/vmcoreinfo.go) and QEMU's own win-dmp writer
// (dump/win_dump.c), driven by the crashkey binary over QMP and libvirt, writes the dump;
// crashkey checks what QEMU patched in and reads the guest's marker back through
// dump.PhysicalReader. Error paths: no vmcoreinfo device, a device without a note, no space.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/harness"
)

// hdPublished is the guest's "vmcoreinfo published …" line.
type hdPublished struct {
	line     string
	markerPA uint64
	marker   string
	runs     [][2]uint64 // base page, page count
	live     bool        // the guest has not bug-checked: QEMU writes 0x161
}

// hdWaitPublished waits for the guest's vmcoreinfo line and parses it.
func hdWaitPublished(t *testing.T, ctx context.Context, g *harness.Guest) hdPublished {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	o, err := g.WaitFor(wctx, 0, func(o harness.Observation) bool { return o.Kind == "vmcoreinfo" })
	if err != nil {
		t.Fatalf("no vmcoreinfo line: %v", err)
	}
	if !strings.HasPrefix(o.Line, "vmcoreinfo published ") {
		t.Fatalf("the guest did not publish its header: %s", o.Line)
	}
	p := hdPublished{line: o.Line, marker: winField(o.Line, "marker"), live: true}
	p.markerPA, err = strconv.ParseUint(winField(o.Line, "marker_pa"), 0, 64)
	if err != nil {
		t.Fatalf("marker_pa: %v in %s", err, o.Line)
	}
	for _, r := range strings.Split(winField(o.Line, "runs"), ",") {
		b, c, _ := strings.Cut(r, "+")
		base, err1 := strconv.ParseUint(b, 0, 64)
		count, err2 := strconv.ParseUint(c, 0, 64)
		if err1 != nil || err2 != nil {
			t.Fatalf("runs %q in %s", r, o.Line)
		}
		p.runs = append(p.runs, [2]uint64{base, count})
	}
	return p
}

// hdReport is the part of `crashkey dump --json` the tests read.
type hdReport struct {
	Format      string    `json:"format"`
	Output      string    `json:"output"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	MemoryBytes uint64    `json:"memory_bytes"`
	VMCoreInfo  bool      `json:"vmcoreinfo"`
	Paused      bool      `json:"paused"`
	Resumed     bool      `json:"resumed"`
	Live        bool      `json:"live"`
	Readers     string    `json:"readers"`
	Check       *winCheck `json:"check"`
	Error       string    `json:"error"`
}

// hdDump runs `crashkey dump --json` with args and wants exit code want.
func hdDump(t *testing.T, ctx context.Context, want int, args ...string) (*hdReport, string) {
	t.Helper()
	full := append([]string{"dump", "--json"}, args...)
	start := time.Now()
	stdout, stderr, code := crashkey(t, ctx, full...)
	t.Logf("crashkey %s: exit %d in %v", strings.Join(full, " "), code, time.Since(start).Round(100*time.Millisecond))
	var rep hdReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("crashkey dump --json: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if code != want {
		t.Fatalf("crashkey dump: exit %d, want %d: %s\nstderr:\n%s", code, want, rep.Error, stderr)
	}
	return &rep, stderr
}

// hdWantDump checks a win-dmp dump QEMU wrote of a live guest that published p: crashkey check
// --deep, the header fields QEMU patched in, the runs, and the marker read back by physical
// address.
func hdWantDump(t *testing.T, ctx context.Context, rep *hdReport, p hdPublished) {
	t.Helper()
	if rep.Format != "win-dmp" || rep.Output == "" || rep.Live != p.live || rep.Check == nil || !rep.Check.OK {
		t.Fatalf("report: %+v", rep)
	}
	if p.live && rep.Check.BugCheck.Code != dump.BugCheckLiveSystemDump {
		t.Errorf("bug check %#x, want 0x161 LIVE_SYSTEM_DUMP", rep.Check.BugCheck.Code)
	}
	var c struct {
		Verdict string `json:"verdict"`
		Deep    *struct {
			PagesRead  uint64 `json:"pages_read"`
			Unreadable uint64 `json:"unreadable_pages"`
		} `json:"deep"`
	}
	out := mustCrashkey(t, ctx, 0, "check", "--deep", "--json", rep.Output)
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatal(err)
	}
	if c.Verdict != dump.Valid.String() || c.Deep == nil || c.Deep.PagesRead == 0 || c.Deep.Unreadable != 0 {
		t.Errorf("crashkey check --deep: %s\n%s", c.Verdict, out)
	}
	f, err := os.Open(rep.Output)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d, err := dump.Open(f, rep.Size)
	if err != nil {
		t.Fatal(err)
	}
	// What QEMU patched in: RequiredDumpSpace = header + every page of the runs, which is the
	// file's size; the runs are the guest's own (its firmware memory map).
	var hdr [dump.HeaderSize64]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	var pages uint64
	if n := le.Uint32(hdr[0x88:]); int(n) != len(p.runs) {
		t.Fatalf("dump has %d runs, the guest published %d", n, len(p.runs))
	}
	for i, r := range p.runs {
		base, count := le.Uint64(hdr[0x98+16*i:]), le.Uint64(hdr[0xA0+16*i:])
		if base != r[0] || count != r[1] {
			t.Errorf("run %d: %#x+%#x, want %#x+%#x", i, base, count, r[0], r[1])
		}
		pages += r[1]
	}
	if req := int64(le.Uint64(hdr[0xFA0:])); req != int64(dump.HeaderSize64+pages*dump.PageSize) || req != rep.Size {
		t.Errorf("RequiredDumpSpace %#x, file %#x, want %#x", req, rep.Size, dump.HeaderSize64+pages*dump.PageSize)
	}
	if d.Header().DumpType != dump.TypeFull {
		t.Errorf("dump type %v, want full", d.Header().DumpType)
	}
	pr := d.PhysicalReader()
	buf := make([]byte, len(p.marker))
	if _, err := pr.ReadAt(buf, int64(p.markerPA)); err != nil {
		t.Fatalf("marker at %#x: %v", p.markerPA, err)
	}
	if string(buf) != p.marker {
		t.Errorf("marker at %#x: %q, want %q", p.markerPA, buf, p.marker)
	}
}

// hdNoTemp fails when dir holds anything (a failed dump must leave nothing behind).
func hdNoTemp(t *testing.T, dir string) {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("left behind in %s: %s", dir, e.Name())
	}
}

func TestHostDump(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 6*time.Minute)
	t.Run("published", func(t *testing.T) {
		t.Parallel()
		// The guest first publishes a Linux VMCOREINFO note (as qemu_fw_cfg.ko would), then its
		// Windows header: QEMU keeps the last complete write.
		g := bootGuest(t, ctx, harness.Config{VMCoreInfo: true, PublishHeader: true, LinuxNoteFirst: true})
		p := hdWaitPublished(t, ctx, g)
		if !strings.Contains(p.line, "linux_first=true") {
			t.Fatalf("the Linux note was not written first: %s", p.line)
		}
		out := t.TempDir()
		rep, _ := hdDump(t, ctx, 0, "--qmp", g.QMPAddr(), "--out", out, "--pause")
		if !rep.Paused || !rep.Resumed || !rep.VMCoreInfo || rep.MemoryBytes != 256<<20 {
			t.Errorf("report: paused %t resumed %t vmcoreinfo %t memory %d", rep.Paused, rep.Resumed, rep.VMCoreInfo, rep.MemoryBytes)
		}
		hdWantDump(t, ctx, rep, p)
		if st := mustCrashkey(t, ctx, 0, "status", "--qmp", g.QMPAddr()); !strings.Contains(st, "state: running") {
			t.Errorf("guest not resumed:\n%s", st)
		}

		// An ELF core of the same guest, and the reason it is what it is.
		rep, _ = hdDump(t, ctx, 0, "--qmp", g.QMPAddr(), "--out", out, "--format", "elf")
		if rep.Format != "elf" || !strings.Contains(rep.Readers, "elf2dmp") || rep.Size < 256<<20 {
			t.Errorf("elf report: %+v", rep)
		}

		// Not enough space: a 1 MiB tmpfs in a private mount namespace.
		small := t.TempDir()
		cmd := exec.CommandContext(ctx, "unshare", "-m", "--propagation", "private", "sh", "-c",
			`mount -t tmpfs -o size=1m tmpfs "$1" && shift && exec "$@"`, "sh", small,
			crashkeyBin(t), "dump", "--json", "--qmp", g.QMPAddr(), "--out", small)
		b, err := cmd.Output()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.Contains(string(b), "not enough free space") {
			t.Errorf("dump into a 1 MiB tmpfs: %v\n%s", err, b)
		}
	})
	t.Run("no note", func(t *testing.T) {
		t.Parallel()
		g := bootGuest(t, ctx, harness.Config{VMCoreInfo: true})
		out := t.TempDir()
		rep, _ := hdDump(t, ctx, 1, "--qmp", g.QMPAddr(), "--out", out)
		if !rep.VMCoreInfo || !strings.Contains(rep.Error, "published no Windows dump header") || !strings.Contains(rep.Error, "FwCfg") ||
			!strings.Contains(rep.Error, "invalid vmcoreinfo note size") {
			t.Errorf("error: %s", rep.Error)
		}
		hdNoTemp(t, out)
	})
	t.Run("no device", func(t *testing.T) {
		t.Parallel()
		g := bootGuest(t, ctx, harness.Config{})
		out := t.TempDir()
		rep, _ := hdDump(t, ctx, 1, "--qmp", g.QMPAddr(), "--out", out)
		if rep.VMCoreInfo || !strings.Contains(rep.Error, "no vmcoreinfo device") || !strings.Contains(rep.Error, "-device vmcoreinfo") {
			t.Errorf("error: %s", rep.Error)
		}
		hdNoTemp(t, out)
	})
}

// TestHostDumpLibvirt: the same dump through libvirt's virDomainCoreDumpWithFormat.
func TestHostDumpLibvirt(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 5*time.Minute)
	startLibvirtd(t, ctx)
	g := startDomain(t, ctx, harness.Config{VMCoreInfo: true, PublishHeader: true})
	p := hdWaitPublished(t, ctx, g)
	out := t.TempDir()
	rep, _ := hdDump(t, ctx, 0, "--libvirt", "qemu:///system", "--domain", g.Domain(), "--out", out)
	if !rep.VMCoreInfo || !strings.HasPrefix(filepath.Base(rep.Output), g.Domain()+"-") {
		t.Errorf("report: %+v", rep)
	}
	hdWantDump(t, ctx, rep, p)
}
