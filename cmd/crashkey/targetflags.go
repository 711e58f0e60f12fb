package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/fleet"
	"github.com/crashkey/crashkey/vm"
)

// targetFlags are the flags every command that talks to a VM shares: --qmp
// unix:PATH|tcp:HOST:PORT, or --libvirt URI --domain NAME, and --rpc-timeout; for fleets
// --qmp, --libvirt and --domain repeat (domains may be globs), --targets FILE lists targets,
// --parallel N and --target-timeout D bound the work.
type targetFlags struct {
	qmp, libvirt, domain []string
	targetsFile          string
	parallel             int
	targetTimeout        time.Duration
	rpcTimeout           time.Duration
}

// add registers the flags on cmd.
func (f *targetFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringArrayVar(&f.qmp, "qmp", nil, "QEMU monitor socket: unix:PATH or tcp:HOST:PORT (QEMU started with -qmp unix:PATH,server=on,wait=off); repeat for several guests")
	fs.StringArrayVar(&f.libvirt, "libvirt", nil, "libvirt URI: qemu:///system, qemu+ssh://USER@HOST[:PORT]/system?keyfile=F&known_hosts=F, qemu+tls://HOST/system?pkipath=DIR, qemu+tcp://HOST/system; repeat for several hosts")
	fs.StringArrayVar(&f.domain, "domain", nil, "libvirt domain name or shell-style glob ('win-ci-*') (with --libvirt); repeat for several")
	fs.StringVar(&f.targetsFile, "targets", "", "read the targets from FILE, one per line: unix:PATH | tcp:HOST:PORT | URI DOMAIN-OR-GLOB, each optionally followed by disk=IMAGE")
	fs.IntVar(&f.parallel, "parallel", 4, "how many targets of a fleet are worked on at once")
	fs.DurationVar(&f.targetTimeout, "target-timeout", 0, "deadline of the whole job on each target of a fleet (default: the command's own bound)")
	fs.DurationVar(&f.rpcTimeout, "rpc-timeout", 10*time.Second, "deadline of connecting and of every call to QEMU or libvirt")
	cmd.MarkFlagsMutuallyExclusive("qmp", "libvirt")
	cmd.MarkFlagsMutuallyExclusive("qmp", "domain")
	cmd.MarkFlagsMutuallyExclusive("targets", "qmp")
	cmd.MarkFlagsMutuallyExclusive("targets", "libvirt")
	cmd.MarkFlagsRequiredTogether("libvirt", "domain")
}

// isFleet is true when the flags name more than one target, a domain glob or a targets file.
func (f *targetFlags) isFleet() bool {
	if f.targetsFile != "" || len(f.qmp) > 1 || len(f.libvirt)*len(f.domain) > 1 {
		return true
	}
	for _, d := range f.domain {
		if fleet.IsGlob(d) {
			return true
		}
	}
	return false
}

func (f *targetFlags) checkTimeouts() error {
	if f.rpcTimeout <= 0 {
		return usageErr(fmt.Errorf("--rpc-timeout %v: must be positive", f.rpcTimeout))
	}
	if f.parallel < 1 {
		return usageErr(fmt.Errorf("--parallel %d: must be at least 1", f.parallel))
	}
	if f.targetTimeout < 0 {
		return usageErr(fmt.Errorf("--target-timeout %v: must not be negative", f.targetTimeout))
	}
	return nil
}

// address returns the one target the flags name; errors are usage errors.
func (f *targetFlags) address() (vm.Address, error) {
	var a vm.Address
	if f.isFleet() {
		return a, usageErr(errors.New("target: several targets given, but this command works on one guest: give one --qmp, or one --libvirt URI with one --domain NAME (no glob, no --targets)"))
	}
	if len(f.qmp) == 1 {
		a.QMP = f.qmp[0]
	}
	if len(f.libvirt) == 1 {
		a.LibvirtURI = f.libvirt[0]
	}
	if len(f.domain) == 1 {
		a.Domain = f.domain[0]
	}
	if err := a.Validate(); err != nil {
		return a, usageErr(err)
	}
	if err := f.checkTimeouts(); err != nil {
		return a, err
	}
	return a, nil
}

// dialAddr connects to a; a URI crashkey cannot use is exit code 2, a failure to connect
// exit code 3.
func (f *targetFlags) dialAddr(ctx context.Context, a vm.Address) (vm.Target, error) {
	t, err := vm.Dial(ctx, a, vm.Options{Timeout: f.rpcTimeout})
	if err != nil {
		return nil, connectErr(err)
	}
	return t, nil
}

// targets expands the flags into the fleet's targets (globs listed on their daemons).
func (f *targetFlags) targets(ctx context.Context) ([]fleet.Target, error) {
	if err := f.checkTimeouts(); err != nil {
		return nil, err
	}
	spec := fleet.Spec{QMP: f.qmp, Libvirt: f.libvirt, Domains: f.domain}
	if f.targetsFile != "" {
		r, err := os.Open(f.targetsFile)
		if err != nil {
			return nil, usageErr(fmt.Errorf("--targets: %w", err))
		}
		defer r.Close()
		if spec.FromFile, err = fleet.ParseTargets(r); err != nil {
			return nil, usageErr(err)
		}
	}
	ts, err := fleet.Targets(ctx, spec, vm.Options{Timeout: f.rpcTimeout})
	if err != nil {
		var ue *vm.URIError
		if errors.As(err, &ue) || !errors.As(err, new(*vm.ConnectError)) {
			return nil, usageErr(err)
		}
		return nil, failedErr(err)
	}
	return ts, nil
}
