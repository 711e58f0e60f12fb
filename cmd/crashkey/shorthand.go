package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/vm"
)

// Target shorthands on every command that takes --qmp: --proxmox VMID, --incus NAME, --lxd
// NAME and --qemu-pid PID find the QMP socket (see vm.Locator) and set --qmp (and --agent,
// when the command has one and the hypervisor has a known agent socket).

// locator resolves shorthands; tests point its Root at a fake layout.
var locator = vm.Locator{}

var shorthandFlags = []struct{ name, usage string }{
	{"proxmox", "Proxmox VE VMID: the QMP socket /var/run/qemu-server/VMID.qmp (and the agent's VMID.qga)"},
	{"incus", "Incus VM NAME or PROJECT/NAME: crashkey.qmp or qemu.monitor in /var/log/incus/NAME (see README)"},
	{"lxd", "LXD VM NAME or PROJECT/NAME: crashkey.qmp or qemu.monitor in LXD's log directory (see README)"},
	{"qemu-pid", "PID of a QEMU started by hand: the QMP socket from its command line (-qmp unix:PATH,server=on,wait=off, or -chardev socket,…,server=on -mon chardev=…,mode=control)"},
}

func init() {
	rootHooks = append(rootHooks, func(root *cobra.Command) {
		walk(root, func(c *cobra.Command) {
			if c.Flags().Lookup("qmp") == nil {
				return
			}
			// Not a cobra flag group: cobra checks groups after resolveShorthand has set --qmp.
			for _, f := range shorthandFlags {
				c.Flags().String(f.name, "", f.usage)
			}
			_ = c.RegisterFlagCompletionFunc("proxmox", fixed(func() []string { return locator.ProxmoxVMIDs() }))
			_ = c.RegisterFlagCompletionFunc("incus", fixed(func() []string { return locator.Instances("incus") }))
			_ = c.RegisterFlagCompletionFunc("lxd", fixed(func() []string { return locator.Instances("lxd") }))
		})
	})
	preRunHooks = append(preRunHooks, resolveShorthand)
}

// walk calls f on c and every command below it.
func walk(c *cobra.Command, f func(*cobra.Command)) {
	f(c)
	for _, sub := range c.Commands() {
		walk(sub, f)
	}
}

// resolveShorthand turns the shorthand flag given to cmd, if any, into --qmp (and --agent).
func resolveShorthand(cmd *cobra.Command) error {
	fs := cmd.Flags()
	var given []string
	for _, f := range shorthandFlags {
		if fl := fs.Lookup(f.name); fl != nil && fl.Changed {
			given = append(given, "--"+f.name)
		}
	}
	if len(given) == 0 {
		return nil
	}
	for _, n := range []string{"qmp", "libvirt", "domain"} {
		if fl := fs.Lookup(n); fl != nil && fl.Changed {
			given = append(given, "--"+n)
		}
	}
	if len(given) > 1 {
		return usageErr(fmt.Errorf("%s: give one target", strings.Join(given, " and ")))
	}
	for _, f := range shorthandFlags {
		fl := fs.Lookup(f.name)
		if fl == nil || !fl.Changed {
			continue
		}
		v := fl.Value.String()
		var r vm.Resolved
		var err error
		switch f.name {
		case "proxmox":
			r, err = locator.Proxmox(v)
		case "incus":
			r, err = locator.Incus(v)
		case "lxd":
			r, err = locator.LXD(v)
		case "qemu-pid":
			pid, perr := strconv.Atoi(v)
			if perr != nil || pid <= 0 {
				return usageErr(fmt.Errorf("--qemu-pid %q: want a process id (pidof qemu-system-x86_64)", v))
			}
			r, err = locator.QEMUProcess(pid)
		}
		if err != nil {
			return usageErr(fmt.Errorf("--%s: %w", f.name, err))
		}
		slog.Debug("target shorthand", "flag", f.name, "value", v, "qmp", r.QMP, "agent", r.Agent, "tried", r.Tried)
		if r.Warning != "" {
			fmt.Fprintln(cmd.ErrOrStderr(), "crashkey: warning: "+r.Warning)
		}
		if err := fs.Set("qmp", r.QMP); err != nil {
			return usageErr(err)
		}
		if a := fs.Lookup("agent"); a != nil && !a.Changed && r.Agent != "" {
			if err := fs.Set("agent", r.Agent); err != nil {
				return usageErr(err)
			}
		}
	}
	return nil
}
