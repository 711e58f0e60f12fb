package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/vm"
)

// targetFlags are the flags every command that talks to a VM shares:
// --qmp unix:PATH|tcp:HOST:PORT, or --libvirt URI --domain NAME, and --rpc-timeout.
type targetFlags struct {
	qmp, libvirt, domain string
	rpcTimeout           time.Duration
}

// add registers the flags on cmd.
func (f *targetFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.qmp, "qmp", "", "QEMU monitor socket: unix:PATH or tcp:HOST:PORT (QEMU started with -qmp unix:PATH,server=on,wait=off)")
	fs.StringVar(&f.libvirt, "libvirt", "", "libvirt URI: qemu:///system, qemu+ssh://USER@HOST/system, qemu+tls://HOST/system, qemu+tcp://HOST/system")
	fs.StringVar(&f.domain, "domain", "", "libvirt domain name (with --libvirt)")
	fs.DurationVar(&f.rpcTimeout, "rpc-timeout", 10*time.Second, "deadline of connecting and of every call to QEMU or libvirt")
	cmd.MarkFlagsMutuallyExclusive("qmp", "libvirt")
	cmd.MarkFlagsMutuallyExclusive("qmp", "domain")
	cmd.MarkFlagsRequiredTogether("libvirt", "domain")
}

// address returns the target the flags name; errors are usage errors.
func (f *targetFlags) address() (vm.Address, error) {
	a := vm.Address{QMP: f.qmp, LibvirtURI: f.libvirt, Domain: f.domain}
	if err := a.Validate(); err != nil {
		return a, usageErr(err)
	}
	if f.rpcTimeout <= 0 {
		return a, usageErr(fmt.Errorf("--rpc-timeout %v: must be positive", f.rpcTimeout))
	}
	return a, nil
}

// dial connects to the target; a failure to connect is exit code 3.
func (f *targetFlags) dial(ctx context.Context) (vm.Target, error) {
	a, err := f.address()
	if err != nil {
		return nil, err
	}
	t, err := vm.Dial(ctx, a, vm.Options{Timeout: f.rpcTimeout})
	if err != nil {
		return nil, failedErr(err)
	}
	return t, nil
}
