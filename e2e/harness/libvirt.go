package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"text/template"
	"time"
)

// LibvirtOptions configures StartLibvirt.
type LibvirtOptions struct {
	// URI is the libvirt connection URI (default "qemu:///system").
	URI string
	// Name is the domain name (default "crashkey-e2e-<random>"). scripts/guest/libvirtd.sh stop
	// removes leftover domains whose names start with "crashkey-e2e-".
	Name string
	// Virsh is the virsh binary (default "virsh").
	Virsh string
	// OnCrash is the domain's <on_crash> action (default "preserve": after a pvpanic the domain
	// stays, paused, in state "crashed").
	OnCrash string
	// Emulator is the QEMU binary libvirt runs (default "/usr/bin/qemu-system-x86_64").
	Emulator string
}

// DomainNamePrefix starts every default domain name.
const DomainNamePrefix = "crashkey-e2e-"

func (o LibvirtOptions) withDefaults() LibvirtOptions {
	if o.URI == "" {
		o.URI = "qemu:///system"
	}
	if o.Name == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.Name = DomainNamePrefix + hex.EncodeToString(b[:])
	}
	if o.Virsh == "" {
		o.Virsh = "virsh"
	}
	if o.OnCrash == "" {
		o.OnCrash = "preserve"
	}
	if o.Emulator == "" {
		o.Emulator = "/usr/bin/qemu-system-x86_64"
	}
	return o
}

var domainTmpl = template.Must(template.New("domain").Funcs(template.FuncMap{
	"x":      xmlEscape,
	"letter": func(i int) string { return string(rune('a' + i)) },
}).Parse(
	`<domain type='qemu'>
  <name>{{x .Name}}</name>
  <memory unit='MiB'>{{.Cfg.MemoryMiB}}</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='{{x .Cfg.Machine}}'>hvm</type>
    <kernel>{{x .Cfg.Artifacts.Kernel}}</kernel>
    <initrd>{{x .Cfg.Artifacts.Initramfs}}</initrd>
    <cmdline>{{x .Cmdline}}</cmdline>
  </os>
  <features>
    <acpi/>{{if .Cfg.VMCoreInfo}}
    <vmcoreinfo state='on'/>{{end}}
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>{{if .Cfg.AllowReboot}}restart{{else}}destroy{{end}}</on_reboot>
  <on_crash>{{x .OnCrash}}</on_crash>
  <devices>
    <emulator>{{x .Emulator}}</emulator>
{{- range $i, $d := .Cfg.Disks}}
    <disk type='file' device='disk'>
      <driver name='qemu' type='{{if $d.Format}}{{x $d.Format}}{{else}}raw{{end}}'/>
      <source file='{{x $d.Path}}'/>
      <target dev='vd{{letter $i}}' bus='virtio'/>{{if $d.ReadOnly}}
      <readonly/>{{end}}
    </disk>
{{- end}}
{{- if .USBModel}}
    <controller type='usb' model='{{.USBModel}}'/>
{{- else}}
    <controller type='usb' model='none'/>
{{- end}}
    <serial type='file'>
      <source path='{{x .Paths.Console}}'/>
      <target port='0'/>
    </serial>
    <serial type='file'>
      <source path='{{x .Paths.Data}}'/>
      <target port='1'/>
    </serial>
{{- if .Cfg.Agent}}
    <channel type='unix'>
      <source mode='bind'/>
      <target type='virtio' name='org.qemu.guest_agent.0'/>
    </channel>
{{- end}}
    <input type='keyboard' bus='ps2'/>
{{- if .USBModel}}
    <input type='keyboard' bus='usb'/>
{{- end}}
{{- if .Virtio}}
    <input type='keyboard' bus='virtio'/>
{{- end}}
{{- if .Cfg.PVPanic}}
    <panic model='isa'/>
{{- end}}
    <memballoon model='none'/>
  </devices>
</domain>
`))

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return strings.ReplaceAll(b.String(), "'", "&#39;")
}

// DomainXML returns the libvirt domain definition that runs cfg's guest with its serial ports in
// the files of p. Libvirt supports one USB keyboard controller model per domain here, so at most
// one USB keyboard may be listed.
func DomainXML(cfg Config, name string, p Paths, opts LibvirtOptions) (string, error) {
	cfg = cfg.withDefaults()
	opts.Name = name
	opts = opts.withDefaults()
	if err := cfg.validate(); err != nil {
		return "", fmt.Errorf("domain xml: %w", err)
	}
	if len(cfg.Disks) > 26 {
		return "", fmt.Errorf("domain xml: %d disks, at most 26", len(cfg.Disks))
	}
	if cfg.Accel != "tcg" {
		return "", fmt.Errorf("domain xml: accel %q: the domain is type='qemu' (TCG); use Start for other accelerators", cfg.Accel)
	}
	data := struct {
		Name, Cmdline, OnCrash, Emulator, USBModel string
		Virtio                                     bool
		Cfg                                        Config
		Paths                                      Paths
	}{Name: opts.Name, Cmdline: cfg.KernelCmdline(), OnCrash: opts.OnCrash, Emulator: opts.Emulator,
		Cfg: cfg, Paths: p}
	for _, k := range cfg.Keyboards {
		model := ""
		switch k {
		case USBXHCI:
			model = "qemu-xhci"
		case USBUHCI:
			model = "piix3-uhci"
			if strings.HasPrefix(cfg.Machine, "q35") {
				model = "ich9-uhci1"
			}
		case USBEHCI:
			model = "ehci"
		case Virtio:
			data.Virtio = true
		}
		if model != "" {
			if data.USBModel != "" {
				return "", fmt.Errorf("domain xml: more than one USB keyboard; list one of %s, %s, %s", USBXHCI, USBUHCI, USBEHCI)
			}
			data.USBModel = model
		}
	}
	var b bytes.Buffer
	if err := domainTmpl.Execute(&b, data); err != nil {
		return "", fmt.Errorf("domain xml: %w", err)
	}
	return b.String(), nil
}

// StartLibvirt defines and starts cfg's guest as a libvirt domain and returns once it runs.
// Stop destroys and undefines it. The guest's observation stream works as with Start; QMPAddr is
// empty (libvirtd owns the monitor): use Virsh, e.g.
// g.Virsh(ctx, "qemu-monitor-command", g.Domain(), json) or g.Virsh(ctx, "inject-nmi", g.Domain()).
func StartLibvirt(ctx context.Context, cfg Config, opts LibvirtOptions) (*Guest, error) {
	cfg = cfg.withDefaults()
	opts = opts.withDefaults()
	g, err := newGuest(cfg)
	if err != nil {
		return nil, err
	}
	g.uri, g.virsh = opts.URI, opts.Virsh
	x, err := DomainXML(cfg, opts.Name, g.paths, opts)
	if err != nil {
		g.cleanupDir()
		return nil, fmt.Errorf("start libvirt: %w", err)
	}
	xmlPath := filepath.Join(g.dir, "domain.xml")
	if err := os.WriteFile(xmlPath, []byte(x), 0o644); err != nil {
		g.cleanupDir()
		return nil, fmt.Errorf("start libvirt: %w", err)
	}
	if _, err := g.Virsh(ctx, "define", xmlPath); err != nil {
		g.cleanupDir()
		return nil, fmt.Errorf("start libvirt: %w", err)
	}
	g.domain = opts.Name
	g.startTail()
	if _, err := g.Virsh(ctx, "start", g.domain); err != nil {
		g.Stop()
		return nil, fmt.Errorf("start libvirt: %w", err)
	}
	return g, nil
}

// Virsh runs virsh against the guest's libvirt connection and returns its standard output. A
// failure carries virsh's standard error. ctx bounds the call (virsh is killed when it ends).
func (g *Guest) Virsh(ctx context.Context, args ...string) (string, error) {
	virsh, uri := g.virsh, g.uri
	if virsh == "" {
		virsh, uri = "virsh", "qemu:///system"
	}
	cmd := exec.CommandContext(ctx, virsh, append([]string{"-q", "-c", uri}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		name := "virsh"
		if len(args) > 0 {
			name += " " + args[0]
		}
		return stdout.String(), fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// stopDomain destroys (if running) and undefines the domain.
func (g *Guest) stopDomain() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	state, _ := g.Virsh(ctx, "domstate", g.domain)
	if s := strings.TrimSpace(state); s != "" && s != "shut off" {
		if _, err := g.Virsh(ctx, "destroy", g.domain); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := g.Virsh(ctx, "undefine", g.domain); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
