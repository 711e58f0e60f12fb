//go:build e2e

package e2e

// End-to-end tests of libvirt's remote transports, of disks read through libvirt's storage API
// and of fleets, against a "remote" host on loopback (scripts/guest/remote.sh): a private
// libvirtd listening on 127.0.0.1 for tcp and tls, reached over ssh through a private sshd.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/harness"
)

// remoteHost is a running scripts/guest/remote.sh.
type remoteHost struct {
	dir string
	env map[string]string
}

// uris are the four ways to reach the remote host's libvirtd.
func (h *remoteHost) uris() map[string]string {
	return map[string]string{"unix": h.env["UNIX_URI"], "tcp": h.env["TCP_URI"], "tls": h.env["TLS_URI"], "ssh": h.env["SSH_URI"]}
}

func (h *remoteHost) virsh(t *testing.T, ctx context.Context, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, "virsh", append([]string{"-q", "-c", h.env["UNIX_URI"]}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("virsh %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// startRemote starts the remote host for the test and stops it (removing everything) when the
// test ends. CRASHKEY_REMOTE_DIR names its state directory (scripts/test.d/50-e2e.sh sets it,
// to stop it even when the test binary is killed).
func startRemote(t *testing.T, ctx context.Context) *remoteHost {
	t.Helper()
	if os.Getenv("CRASHKEY_WITH_LIBVIRT") == "0" {
		t.Skip("CRASHKEY_WITH_LIBVIRT=0: scripts/deps.sh did not install libvirt")
	}
	dir := os.Getenv("CRASHKEY_REMOTE_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), fmt.Sprintf("ck-remote-%d", os.Getpid()))
	}
	script := filepath.Join(repoRoot(t), "scripts", "guest", "remote.sh")
	out, err := exec.CommandContext(ctx, "bash", script, "start", dir).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("remote.sh start: %v: %s", err, stderr)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("bash", script, "stop", dir).CombinedOutput(); err != nil {
			t.Errorf("remote.sh stop: %v: %s", err, out)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("remote.sh stop left %s", dir)
		}
	})
	h := &remoteHost{dir: dir, env: map[string]string{}}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			h.env[k] = strings.Trim(v, "'")
		}
	}
	for _, k := range []string{"UNIX_URI", "TCP_URI", "TLS_URI", "SSH_URI", "SSH_PORT", "SSH_KEY", "KNOWN_HOSTS", "PKI"} {
		if h.env[k] == "" {
			t.Fatalf("remote.sh start printed no %s:\n%s", k, out)
		}
	}
	return h
}

// TestRemote proves the transports and the fleet against one remote host: status, send and
// nmi over unix, tcp, tls and ssh against a plain guest; the connection errors of each step;
// a fleet run over qemu+ssh crashing three stand-in Windows guests (one not armed for the
// hotkey) with one more target unreachable, disks found in the domains' XML and read through
// the storage API; then pull and preflight of those disks over ssh, tls and tcp, byte-identical
// to a local pull, also through a qcow2 overlay whose backing file is found through the pool.
func TestRemote(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t, 10*time.Minute)
	h := startRemote(t, ctx)

	// The three stand-in disks live in one directory, which becomes a storage pool.
	pool := t.TempDir()
	var wg sync.WaitGroup
	disks := map[string]string{}
	var mu sync.Mutex
	for name, args := range map[string][]string{
		"ck-win-1": {"--ctrl-scroll"},
		"ck-win-2": {"--ctrl-scroll"},
		"ck-win-3": {"--hotkey", "lshift+rshift+d"}, // armed for another hotkey
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := filepath.Join(pool, name+".qcow2")
			if err := os.Rename(winDisk(t, ctx, args...), p); err != nil {
				t.Error(err)
			}
			mu.Lock()
			disks[name] = p
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Boot all four guests at once.
	guests := map[string]*harness.Guest{}
	names := []string{"ck-plain", "ck-win-1", "ck-win-2", "ck-win-3"}
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// no_timer_check: on a loaded host TCG's timer can look broken to the kernel's
			// IO-APIC check, which then panics at boot.
			cfg := harness.Config{PVPanic: true, Keyboards: []harness.Keyboard{harness.PS2}, Append: "no_timer_check"}
			if name != "ck-plain" {
				cfg.Disks = []harness.Disk{{Path: disks[name], Format: "qcow2"}}
				cfg.Mode, cfg.AllowReboot = "windows", true
			}
			g := startDomainWith(t, ctx, cfg, harness.LibvirtOptions{URI: h.env["UNIX_URI"], Name: name})
			mu.Lock()
			guests[name] = g
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	t.Run("transports", func(t *testing.T) { remoteTransports(t, ctx, h, guests["ck-plain"]) })
	t.Run("errors", func(t *testing.T) { remoteErrors(t, ctx, h) })
	t.Run("no pool", func(t *testing.T) {
		_, stderr, code := crashkey(t, ctx, "pull", "--libvirt", h.env["TCP_URI"], "--domain", "ck-win-1", "--force-share", "--list")
		if code != 3 || !strings.Contains(stderr, "no storage pool") || !strings.Contains(stderr, "pool-define-as") || !strings.Contains(stderr, pool) {
			t.Errorf("pull of a disk in no pool: exit %d: %s", code, stderr)
		}
	})
	h.virsh(t, ctx, "pool-create-as", "ck-pool", "dir", "--target", pool)
	dumps := remoteFleetRun(t, ctx, h, guests)
	remotePulls(t, ctx, h, pool, disks, dumps)
	t.Run("run", func(t *testing.T) { remoteRuns(t, ctx, h, guests) })
}

// remoteRuns: `crashkey run` over the tls and tcp transports (the fleet ran over ssh), at the
// same time on two guests: the hotkey over tls, an NMI over tcp; each disk found in the
// domain's XML and read through the storage API.
func remoteRuns(t *testing.T, ctx context.Context, h *remoteHost, guests map[string]*harness.Guest) {
	for _, tc := range []struct {
		tr, domain, driver, bus string
		trigger                 string
		code                    uint32
	}{
		{"tls", "ck-win-1", "i8042prt", "ps2", "keys", dump.BugCheckManuallyInitiated},
		{"tcp", "ck-win-2", "", "", "nmi", dump.BugCheckNMIHardwareFailure},
	} {
		t.Run(tc.tr, func(t *testing.T) {
			t.Parallel()
			g := guests[tc.domain]
			m := g.Mark()
			stdout, stderr, code := crashkey(t, ctx, "run", "--libvirt", h.uris()[tc.tr], "--domain", tc.domain, "--trigger", tc.trigger,
				"--json", "--out", t.TempDir(), "--poll", "1s", "--timeout", "5m")
			var rep winReport
			if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != 0 || rep.Outcome != "dump-ok" || rep.Dump == nil || rep.BugCheck == nil || *rep.BugCheck != tc.code {
				t.Fatalf("run over %s: exit %d (%v)\n%s\n%s", tc.tr, code, err, stdout, stderr)
			}
			if got := winWantCrashed(t, ctx, g, m, tc.driver, tc.bus, tc.code); got != rep.Dump.SHA256 {
				t.Errorf("run over %s: the guest wrote sha256 %s, crashkey pulled %s", tc.tr, got, rep.Dump.SHA256)
			}
		})
	}
}

// remoteTransports: status, send and nmi over every transport reach the plain guest.
func remoteTransports(t *testing.T, ctx context.Context, h *remoteHost, g *harness.Guest) {
	for _, tr := range []string{"unix", "tcp", "tls", "ssh"} {
		uri := h.uris()[tr]
		target := []string{"--libvirt", uri, "--domain", "ck-plain"}
		out := mustCrashkey(t, ctx, 0, append([]string{"status", "--json"}, target...)...)
		var st struct {
			State    string `json:"state"`
			Receiver struct {
				Bus string `json:"bus"`
			} `json:"receiver"`
			PanicDevices []string `json:"panic_devices"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || st.State != "running" || st.Receiver.Bus != "ps2" || len(st.PanicDevices) != 1 {
			t.Errorf("%s: status %s (%v)", tr, out, err)
		}

		m := g.Mark()
		out = mustCrashkey(t, ctx, 0, append([]string{"send", "--sequence", "+a -a", "--json"}, target...)...)
		if !strings.Contains(out, `"complete": true`) {
			t.Errorf("%s: send %s", tr, out)
		}
		wantPS2(t, ctx, g, m, "1e 9e")

		m = g.Mark()
		mustCrashkey(t, ctx, 0, append([]string{"nmi"}, target...)...)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := g.WaitKind(wctx, m, harness.KindNMI)
		cancel()
		if err != nil {
			t.Errorf("%s: nmi: %v", tr, err)
		}
	}
}

// remoteErrors: each step of connecting fails with its own message and fix.
func remoteErrors(t *testing.T, ctx context.Context, h *remoteHost) {
	dir := t.TempDir()
	// A known_hosts that holds another key for the host: a changed host key.
	other := filepath.Join(dir, "other")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", other).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, _ := os.ReadFile(other + ".pub")
	wrongKH := filepath.Join(dir, "known_hosts")
	fields := strings.Fields(string(pub))
	os.WriteFile(wrongKH, []byte(fmt.Sprintf("[127.0.0.1]:%s %s %s\n", h.env["SSH_PORT"], fields[0], fields[1])), 0o600)
	emptyKH := filepath.Join(dir, "empty_known_hosts")
	os.WriteFile(emptyKH, nil, 0o600)
	sshBase := fmt.Sprintf("qemu+ssh://root@127.0.0.1:%s/system?socket=%s/sock/libvirt-sock", h.env["SSH_PORT"], h.dir)
	// A CA that did not sign the daemon's certificate.
	badPKI := filepath.Join(dir, "pki")
	os.MkdirAll(badPKI, 0o755)
	for _, f := range []string{"clientcert.pem", "clientkey.pem"} {
		b, _ := os.ReadFile(filepath.Join(h.env["PKI"], f))
		os.WriteFile(filepath.Join(badPKI, f), b, 0o600)
	}
	if out, err := exec.Command("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
		"-subj", "/CN=other CA", "-keyout", filepath.Join(dir, "cakey.pem"), "-out", filepath.Join(badPKI, "cacert.pem")).CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v: %s", err, out)
	}
	tlsPort := strings.TrimPrefix(strings.Split(h.env["TLS_URI"], "/")[2], "127.0.0.1:")
	for _, tc := range []struct {
		name, uri string
		code      int
		want      []string
	}{
		{"host key changed", sshBase + "&keyfile=" + h.env["SSH_KEY"] + "&known_hosts=" + wrongKH, 3, []string{": ssh host key: HOST KEY MISMATCH", "ssh-keygen -R"}},
		{"host key unknown", sshBase + "&keyfile=" + h.env["SSH_KEY"] + "&known_hosts=" + emptyKH, 3, []string{": ssh host key: host 127.0.0.1:", "is not in", "ssh-keyscan -p " + h.env["SSH_PORT"]}},
		{"ssh auth", sshBase + "&keyfile=" + other + "&known_hosts=" + h.env["KNOWN_HOSTS"], 3, []string{": ssh auth: ", "authorized_keys"}},
		{"ssh socket", fmt.Sprintf("qemu+ssh://root@127.0.0.1:%s/system?socket=/nonexistent&keyfile=%s&known_hosts=%s", h.env["SSH_PORT"], h.env["SSH_KEY"], h.env["KNOWN_HOSTS"]), 3, []string{": ssh socket: ", "socket=PATH"}},
		{"no_verify skips the host key check", sshBase + "&keyfile=" + h.env["SSH_KEY"] + "&no_verify=1", 3, []string{": domain: no domain \"nope\""}},
		{"tls verify", "qemu+tls://127.0.0.1:" + tlsPort + "/system?pkipath=" + badPKI, 3, []string{": tls verify: ", "not signed by the CA"}},
		{"tls name", "qemu+tls://localhost:" + tlsPort + "/system?pkipath=" + h.env["PKI"], 3, []string{": domain: "}}, // localhost is in the certificate
		{"tcp refused", "qemu+tcp://127.0.0.1:1/system", 3, []string{": tcp: ", "listen_tcp = 1"}},
		{"dns", "qemu+tcp://no-such-host.invalid/system", 3, []string{": dns: ", "check the host name"}},
		{"domain", h.env["TCP_URI"], 3, []string{": domain: no domain \"nope\"", "list --all"}},
		{"bad parameter", h.env["TCP_URI"] + "?keyfile=/k", 2, []string{"keyfile= is for qemu+ssh"}},
	} {
		_, stderr, code := crashkey(t, ctx, "status", "--libvirt", tc.uri, "--domain", "nope", "--rpc-timeout", "20s")
		if code != tc.code || strings.Count(stderr, "crashkey: ") != 1 {
			t.Errorf("%s: exit %d, want %d: %s", tc.name, code, tc.code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%s: %q not in %s", tc.name, w, stderr)
			}
		}
	}
}

// fleetLine is one line of a fleet's --json output.
type fleetLine struct {
	Target  string     `json:"target"`
	Code    int        `json:"exit_code"`
	Summary string     `json:"summary"`
	Error   string     `json:"error"`
	Report  *winReport `json:"report"`
}

// remoteFleetRun runs `crashkey run` on the fleet over qemu+ssh and returns the digests of
// the dumps pulled per domain.
func remoteFleetRun(t *testing.T, ctx context.Context, h *remoteHost, guests map[string]*harness.Guest) map[string]string {
	targets := filepath.Join(t.TempDir(), "targets")
	os.WriteFile(targets, []byte(fmt.Sprintf("# the fleet\n%s ck-win-*\nqemu+ssh://root@127.0.0.1:1/system?keyfile=%s ck-gone # no sshd there\n", h.env["SSH_URI"], h.env["SSH_KEY"])), 0o644)
	marks := map[string]int{}
	for n, g := range guests {
		marks[n] = g.Mark()
	}
	out := t.TempDir()
	start := time.Now()
	stdout, stderr, code := crashkey(t, ctx, "run", "--targets", targets, "--parallel", "3", "--json", "--out", out, "--poll", "1s", "--timeout", "5m")
	t.Logf("fleet run: exit %d in %v\n%s", code, time.Since(start).Round(100*time.Millisecond), stderr)
	if code != 3 {
		t.Errorf("fleet run: exit %d, want 3 (the worst: one target unreachable)", code)
	}
	results := map[string]fleetLine{}
	var summary map[string]any
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	for _, l := range lines {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("fleet --json line %q: %v", l, err)
		}
		if _, ok := m["target"]; !ok {
			json.Unmarshal([]byte(l), &summary)
			continue
		}
		var fl fleetLine
		if err := json.Unmarshal([]byte(l), &fl); err != nil {
			t.Fatalf("fleet --json line %q: %v", l, err)
		}
		results[strings.SplitN(fl.Target, "@", 2)[0]] = fl
	}
	if len(results) != 4 || summary == nil {
		t.Fatalf("fleet --json: %d target lines and summary %v, want 4 and a summary:\n%s", len(results), summary, stdout)
	}
	if s, _ := summary["summary"].(map[string]any); s == nil || s["exit_code"] != float64(3) || s["ok"] != float64(2) || s["targets"] != float64(4) {
		t.Errorf("fleet summary %v", summary)
	}
	dumps := map[string]string{}
	for _, n := range []string{"ck-win-1", "ck-win-2"} {
		r := results[n]
		if r.Code != 0 || r.Report == nil || r.Report.Outcome != "dump-ok" || r.Report.Dump == nil {
			t.Errorf("%s: exit %d: %s (%s)", n, r.Code, r.Summary, r.Error)
			continue
		}
		if got := winWantCrashed(t, ctx, guests[n], marks[n], "i8042prt", "ps2", dump.BugCheckManuallyInitiated); got != r.Report.Dump.SHA256 {
			t.Errorf("%s: the guest wrote sha256 %s, crashkey pulled %s", n, got, r.Report.Dump.SHA256)
		}
		if filepath.Base(filepath.Dir(r.Report.Dump.Output)) != n+"@127.0.0.1-"+h.env["SSH_PORT"] {
			t.Errorf("%s: dump written to %s, want a directory of its own", n, r.Report.Dump.Output)
		}
		dumps[n] = r.Report.Dump.SHA256
	}
	if r := results["ck-win-3"]; r.Code != 1 || !strings.Contains(r.Summary, "LShift+RShift+D") {
		t.Errorf("ck-win-3 (armed for another hotkey): exit %d: %s; want exit 1 saying what it is armed for", r.Code, r.Summary)
	}
	if winCount(guests["ck-win-3"], marks["ck-win-3"], harness.KindPS2) != 0 {
		t.Error("ck-win-3: keys were sent to a guest the preflight stopped")
	}
	if r := results["ck-gone"]; r.Code != 3 || !strings.Contains(r.Summary, "tcp") {
		t.Errorf("ck-gone (no sshd): exit %d: %s", r.Code, r.Summary)
	}
	return dumps
}

// remotePulls: pull and preflight through the storage API equal the local reads.
func remotePulls(t *testing.T, ctx context.Context, h *remoteHost, pool string, disks, dumps map[string]string) {
	sum, ok := dumps["ck-win-1"]
	if !ok {
		t.Skip("no dump of ck-win-1 to pull")
	}
	type pullRes struct {
		SHA256 string `json:"sha256"`
		Size   int64  `json:"size"`
	}
	pullJSON := func(args ...string) (pullRes, string) {
		stdout, stderr, code := crashkey(t, ctx, append([]string{"pull", "--json", "--out", t.TempDir()}, args...)...)
		var r pullRes
		if code != 0 || json.Unmarshal([]byte(stdout), &r) != nil {
			t.Fatalf("pull %v: exit %d\n%s\n%s", args, code, stdout, stderr)
		}
		return r, stderr
	}
	local, _ := pullJSON(disks["ck-win-1"], "--force-share")
	if local.SHA256 != sum {
		t.Errorf("local pull: sha256 %s, run pulled %s", local.SHA256, sum)
	}
	for _, tr := range []string{"ssh", "tcp"} {
		r, stderr := pullJSON("--libvirt", h.uris()[tr], "--domain", "ck-win-1", "--force-share")
		if r != local {
			t.Errorf("pull over %s: %+v, local %+v", tr, r, local)
		}
		var got, recv int64
		if _, err := fmt.Sscanf(stderr[strings.Index(stderr, "storage API: "):], "storage API: %d bytes downloaded, %d bytes received", &got, &recv); err != nil {
			t.Errorf("pull over %s: no transfer figures: %s", tr, stderr)
		} else if fi, _ := os.Stat(disks["ck-win-1"]); got > fi.Size() || recv < got {
			t.Errorf("pull over %s: %d bytes downloaded (%d received) from a %d-byte image", tr, got, recv, fi.Size())
		}
	}
	// Running domains' disks need --force-share, as local images QEMU holds do.
	if _, stderr, code := crashkey(t, ctx, "pull", "--libvirt", h.env["TCP_URI"], "--domain", "ck-win-1", "--list"); code != 3 || !strings.Contains(stderr, "--force-share") {
		t.Errorf("pull of a running domain without --force-share: exit %d: %s", code, stderr)
	}

	// An overlay whose backing file is the first disk, found through the pool.
	overlay := filepath.Join(pool, "ck-overlay.qcow2")
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "ck-win-1.qcow2", overlay).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img: %v: %s", err, out)
	}
	h.virsh(t, ctx, "pool-refresh", "ck-pool")
	xml := filepath.Join(t.TempDir(), "overlay.xml")
	os.WriteFile(xml, []byte(`<domain type='qemu'><name>ck-overlay</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os>
<devices><disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='`+overlay+`'/><target dev='vda' bus='virtio'/></disk></devices></domain>`), 0o644)
	h.virsh(t, ctx, "define", xml)
	defer h.virsh(t, context.Background(), "undefine", "ck-overlay")
	if r, _ := pullJSON("--libvirt", h.env["TLS_URI"], "--domain", "ck-overlay"); r != local {
		t.Errorf("pull of the overlay over tls: %+v, local %+v", r, local)
	}

	// preflight over ssh: the armed guest is ready, the other one is not (and says why).
	mustCrashkey(t, ctx, 0, "preflight", "--libvirt", h.env["SSH_URI"], "--domain", "ck-win-2", "--force-share")
	out, _, code := crashkey(t, ctx, "preflight", "--libvirt", h.env["SSH_URI"], "--domain", "ck-win-3", "--force-share", "--json")
	if code != 0 || !strings.Contains(out, `"ok": true`) {
		t.Errorf("preflight of ck-win-3 (armed for LShift+RShift+D, no --hotkey): exit %d\n%s", code, out)
	}
	out, _, code = crashkey(t, ctx, "preflight", "--libvirt", h.env["SSH_URI"], "--domain", "ck-win-3", "--force-share", "--hotkey", "rctrl+scroll")
	if code != 1 || !strings.Contains(out, "does NOT fire") {
		t.Errorf("preflight of ck-win-3 for RCtrl+ScrollLock: exit %d\n%s", code, out)
	}
}
