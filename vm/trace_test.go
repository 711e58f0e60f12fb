package vm

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRedactURI(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"qemu:///system", "qemu:///system"},
		{"qemu+ssh://admin:hunter2@host/system", "qemu+ssh://admin:xxxxx@host/system"},
		{"qemu+ssh://admin@host/system?keyfile=/root/.ssh/id_ed25519", "qemu+ssh://admin@host/system?keyfile=/root/.ssh/id_ed25519"},
		{"qemu+tls://host/system?pkipath=/etc/pki/c&password=hunter2", "qemu+tls://host/system?password=xxxxx&pkipath=%2Fetc%2Fpki%2Fc"},
		{"qemu+tcp://u:p%40ss@[::1]:16509/system", "qemu+tcp://u:xxxxx@[::1]:16509/system"},
		{"unix:/run/vm.qmp", "unix:/run/vm.qmp"},
		{"connect to qemu+ssh://root:topsecret@h/system: refused", "connect to qemu+ssh://root:xxxxx@h/system: refused"},
		{"%zz://a:b@c", "%zz://a:xxxxx@c"}, // unparsable, still redacted
	} {
		if got := RedactURI(tt.in); got != tt.want {
			t.Errorf("RedactURI(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// captureDebug sends slog's default logger to a buffer at level Debug for the test.
func captureDebug(t *testing.T) *bytes.Buffer {
	t.Helper()
	var b bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	return &b
}

func TestTraceLibvirtAndAgent(t *testing.T) {
	b := captureDebug(t)
	f := &fakeLibvirt{state: 1, reason: 1, xml: testDomainXML}
	tg, err := newLibvirtTarget(context.Background(), "qemu+ssh://root:topsecret@h/system", "win11", Options{Timeout: time.Second},
		func(context.Context) (libvirtAPI, error) { return traceLibvirt(f), nil })
	if err != nil {
		t.Fatal(err)
	}
	tg.uri = RedactURI(tg.uri) // as DialLibvirt stores it
	if err := tg.InjectNMI(context.Background()); err != nil {
		t.Fatal(err)
	}
	ag, err := tg.Agent(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	_ = ag.Ping(context.Background())
	log := b.String()
	for _, want := range []string{
		`msg="libvirt call" method=DomainLookupByName name=win11 took=`,
		`msg="libvirt call" method=DomainInjectNmi domain=`,
		`method=QEMUDomainAgentCommand`,
		`msg="agent call" via="libvirt qemu+ssh://root:xxxxx@h/system" command=guest-ping`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "topsecret") {
		t.Errorf("the log holds the URI's password:\n%s", log)
	}
}

func TestTraceOffFormatsNothing(t *testing.T) {
	// With Debug disabled (the default logger), wrapped calls still work and log nothing.
	f := &fakeLibvirt{state: 1, reason: 1, xml: testDomainXML}
	api := traceLibvirt(f)
	if _, err := api.DomainLookupByName("win11"); err != nil {
		t.Fatal(err)
	}
	if debugEnabled(context.Background()) {
		t.Fatal("debug enabled by default")
	}
}
