package main

import (
	"context"
	"errors"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/vm"
)

// agentFlags name a running guest's agent for arm --apply and preflight --live: --qmp
// unix:PATH with --agent unix:PATH, or --libvirt URI --domain NAME (the domain's agent, through
// libvirt). Commands that already have --libvirt/--domain pass pointers to theirs.
type agentFlags struct {
	qmp, agent      string
	libvirt, domain *string
	rpcTimeout      *time.Duration
}

func (f *agentFlags) add(cmd *cobra.Command, withLibvirt bool) {
	fs := cmd.Flags()
	fs.StringVar(&f.qmp, "qmp", "", "QEMU monitor socket of the running guest (unix:PATH or tcp:HOST:PORT), with --agent")
	fs.StringVar(&f.agent, "agent", "", "QEMU guest agent socket of the guest (unix:PATH: -chardev socket,path=PATH,server=on,wait=off,id=qga0 -device virtio-serial -device virtserialport,chardev=qga0,name=org.qemu.guest_agent.0)")
	if withLibvirt {
		f.libvirt, f.domain, f.rpcTimeout = new(string), new(string), new(time.Duration)
		fs.StringVar(f.libvirt, "libvirt", "", "libvirt URI of the running guest (its agent is reached through libvirt), with --domain")
		fs.StringVar(f.domain, "domain", "", "libvirt domain (with --libvirt)")
		fs.DurationVar(f.rpcTimeout, "rpc-timeout", 10*time.Second, "deadline of connecting and of every call to QEMU, libvirt or the agent")
		cmd.MarkFlagsRequiredTogether("libvirt", "domain")
	}
	cmd.MarkFlagsMutuallyExclusive("qmp", "libvirt")
	cmd.MarkFlagsRequiredTogether("qmp", "agent")
}

// dial connects to the guest's agent; the returned closer ends both connections.
func (f *agentFlags) dial(ctx context.Context) (vm.Agent, func(), error) {
	a := vm.Address{QMP: f.qmp, LibvirtURI: *f.libvirt, Domain: *f.domain}
	if a.QMP == "" && a.LibvirtURI == "" {
		return nil, nil, usageErr(errors.New("no running guest: give --qmp unix:PATH --agent unix:PATH, or --libvirt URI --domain NAME"))
	}
	if err := a.Validate(); err != nil {
		return nil, nil, usageErr(err)
	}
	if *f.rpcTimeout <= 0 {
		return nil, nil, usageErr(errors.New("--rpc-timeout: must be positive"))
	}
	t, err := vm.Dial(ctx, a, vm.Options{Timeout: *f.rpcTimeout})
	if err != nil {
		return nil, nil, connectErr(err)
	}
	ag, err := t.Agent(ctx, f.agent)
	if err != nil {
		t.Close()
		return nil, nil, failedErr(err)
	}
	if err := ag.Ping(ctx); err != nil {
		ag.Close()
		t.Close()
		return nil, nil, failedErr(err)
	}
	return ag, func() { ag.Close(); t.Close() }, nil
}
