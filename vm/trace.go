package vm

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/digitalocean/go-libvirt"
)

// Debug tracing. crashkey logs through log/slog's default logger at level Debug: every QMP
// and guest agent command with its reply (package qmpconn), every libvirt call (tracedLibvirt
// wraps the connection, since go-libvirt has no hook) and every agent call, each with its
// duration. Nothing is formatted unless Debug is enabled. Secrets never reach the log: URIs
// are logged through RedactURI, and crashkey never reads key files or TLS keys itself (their
// paths may appear, their contents cannot).

// Redacted replaces a secret in logs and messages.
const Redacted = "xxxxx"

// secretParam matches URI query parameters that may carry a secret.
var secretParam = regexp.MustCompile(`(?i)pass|secret|token|credential`)

// RedactURI hides the secrets of a connection URI: the password of its user info
// (qemu+ssh://user:PASSWORD@host/system) and the values of query parameters named like
// password, secret, token or credential. Paths (keyfile=, pkipath=) are kept: they are not
// secrets, and crashkey never logs what they point to. A string that is not a URI is
// returned unchanged, except that anything of the form "//user:password@" is redacted.
func RedactURI(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return redactUserinfo(s)
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), Redacted)
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		changed := false
		for k, vs := range q {
			if secretParam.MatchString(k) {
				for i := range vs {
					vs[i] = Redacted
				}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

var userinfoPassword = regexp.MustCompile(`//([^/@:\s]*):([^/@\s]*)@`)

// redactUserinfo hides "//user:password@" anywhere in s (a URI inside an error message).
func redactUserinfo(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return userinfoPassword.ReplaceAllString(s, "//$1:"+Redacted+"@")
}

// RedactText hides URI passwords anywhere in free text (error messages, log values).
func RedactText(s string) string { return redactUserinfo(s) }

// debugEnabled reports whether debug logs are wanted, so that nothing is formatted otherwise.
func debugEnabled(ctx context.Context) bool {
	return slog.Default().Enabled(ctx, slog.LevelDebug)
}

// traceCall logs one call with its duration and error at level Debug.
func traceCall(ctx context.Context, msg string, start time.Time, err error, attrs ...slog.Attr) {
	if !debugEnabled(ctx) {
		return
	}
	attrs = append(attrs, slog.Duration("took", time.Since(start)))
	if err != nil {
		attrs = append(attrs, slog.String("error", RedactText(err.Error())))
	}
	slog.LogAttrs(ctx, slog.LevelDebug, msg, attrs...)
}

// tracedLibvirt logs every libvirt call crashkey makes. Methods it does not override pass
// straight through the embedded interface.
type tracedLibvirt struct {
	libvirtAPI
}

// traceLibvirt wraps a libvirt connection so that its calls are logged.
func traceLibvirt(api libvirtAPI) libvirtAPI { return tracedLibvirt{api} }

func lvCall(method string, start time.Time, err error, attrs ...slog.Attr) {
	traceCall(context.Background(), "libvirt call", start, err, append([]slog.Attr{slog.String("method", method)}, attrs...)...)
}

func domName(d libvirt.Domain) slog.Attr { return slog.String("domain", d.Name) }

func (t tracedLibvirt) DomainLookupByName(name string) (libvirt.Domain, error) {
	start := time.Now()
	d, err := t.libvirtAPI.DomainLookupByName(name)
	lvCall("DomainLookupByName", start, err, slog.String("name", name))
	return d, err
}

func (t tracedLibvirt) DomainGetState(dom libvirt.Domain, flags uint32) (int32, int32, error) {
	start := time.Now()
	s, r, err := t.libvirtAPI.DomainGetState(dom, flags)
	lvCall("DomainGetState", start, err, domName(dom), slog.Int("state", int(s)), slog.Int("reason", int(r)))
	return s, r, err
}

func (t tracedLibvirt) DomainGetXMLDesc(dom libvirt.Domain, flags libvirt.DomainXMLFlags) (string, error) {
	start := time.Now()
	x, err := t.libvirtAPI.DomainGetXMLDesc(dom, flags)
	lvCall("DomainGetXMLDesc", start, err, domName(dom), slog.Int("bytes", len(x)))
	return x, err
}

func (t tracedLibvirt) QEMUDomainMonitorCommand(dom libvirt.Domain, cmd string, flags uint32) (string, error) {
	start := time.Now()
	r, err := t.libvirtAPI.QEMUDomainMonitorCommand(dom, cmd, flags)
	lvCall("QEMUDomainMonitorCommand", start, err, domName(dom), slog.String("command", cmd), slog.String("reply", clip(r)))
	return r, err
}

func (t tracedLibvirt) DomainSendKey(dom libvirt.Domain, codeset, holdtime uint32, keycodes []uint32, flags uint32) error {
	start := time.Now()
	err := t.libvirtAPI.DomainSendKey(dom, codeset, holdtime, keycodes, flags)
	lvCall("DomainSendKey", start, err, domName(dom), slog.Any("keycodes", keycodes), slog.Int("holdtime", int(holdtime)))
	return err
}

func (t tracedLibvirt) DomainInjectNmi(dom libvirt.Domain, flags uint32) error {
	start := time.Now()
	err := t.libvirtAPI.DomainInjectNmi(dom, flags)
	lvCall("DomainInjectNmi", start, err, domName(dom))
	return err
}

func (t tracedLibvirt) DomainResume(dom libvirt.Domain) error {
	start := time.Now()
	err := t.libvirtAPI.DomainResume(dom)
	lvCall("DomainResume", start, err, domName(dom))
	return err
}

func (t tracedLibvirt) DomainReboot(dom libvirt.Domain, flags libvirt.DomainRebootFlagValues) error {
	start := time.Now()
	err := t.libvirtAPI.DomainReboot(dom, flags)
	lvCall("DomainReboot", start, err, domName(dom))
	return err
}

func (t tracedLibvirt) QEMUDomainAgentCommand(dom libvirt.Domain, cmd string, timeout int32, flags uint32) (libvirt.OptString, error) {
	start := time.Now()
	r, err := t.libvirtAPI.QEMUDomainAgentCommand(dom, cmd, timeout, flags)
	lvCall("QEMUDomainAgentCommand", start, err, domName(dom), slog.String("command", cmd), slog.String("reply", clip(strings.Join(r, ""))))
	return r, err
}

func (t tracedLibvirt) LifecycleEvents(ctx context.Context) (<-chan libvirt.DomainEventLifecycleMsg, error) {
	start := time.Now()
	ch, err := t.libvirtAPI.LifecycleEvents(ctx)
	lvCall("LifecycleEvents", start, err)
	return ch, err
}

func (t tracedLibvirt) SubscribeQEMUEvents(ctx context.Context, dom string) (<-chan libvirt.DomainEvent, error) {
	start := time.Now()
	ch, err := t.libvirtAPI.SubscribeQEMUEvents(ctx, dom)
	lvCall("SubscribeQEMUEvents", start, err, slog.String("domain", dom))
	return ch, err
}

func (t tracedLibvirt) Disconnect() error {
	start := time.Now()
	err := t.libvirtAPI.Disconnect()
	lvCall("Disconnect", start, err)
	return err
}

// tracedAgent logs every guest agent call.
type tracedAgent struct {
	agentRunner
	via string
}

// traceAgent wraps an agent runner so that its calls are logged ("via" names the channel).
func traceAgent(r agentRunner, via string) agentRunner { return tracedAgent{r, RedactText(via)} }

func (a tracedAgent) run(ctx context.Context, command string, args any) (json.RawMessage, error) {
	start := time.Now()
	ret, err := a.agentRunner.run(ctx, command, args)
	if debugEnabled(ctx) {
		argJSON, _ := json.Marshal(args)
		traceCall(ctx, "agent call", start, err, slog.String("via", a.via), slog.String("command", command),
			slog.String("arguments", clip(string(argJSON))), slog.String("return", clip(string(ret))))
	}
	return ret, err
}

// maxTraced bounds one logged payload.
const maxTraced = 4096

func clip(s string) string {
	if len(s) <= maxTraced {
		return s
	}
	return s[:maxTraced] + "…(" + strconv.Itoa(len(s)) + " bytes)"
}
