package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/run"
	"github.com/crashkey/crashkey/vm"
)

// domainDiskFlags let pull and preflight read a libvirt domain's disk instead of an IMAGE:
// --libvirt URI --domain NAME.
type domainDiskFlags struct {
	libvirt, domain string
	rpcTimeout      time.Duration
}

func (f *domainDiskFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.libvirt, "libvirt", "", "read the disk of a libvirt domain instead of IMAGE: qemu:///system, qemu+ssh://USER@HOST/system, qemu+tls://HOST/system, qemu+tcp://HOST/system (a remote disk is read through libvirt's storage API)")
	fs.StringVar(&f.domain, "domain", "", "the libvirt domain whose disk is read (with --libvirt)")
	fs.DurationVar(&f.rpcTimeout, "rpc-timeout", 10*time.Second, "deadline of connecting and of every libvirt call")
	cmd.MarkFlagsRequiredTogether("libvirt", "domain")
}

// image returns IMAGE from args, or "" when --libvirt names the disk; exactly one is needed.
func (f *domainDiskFlags) image(args []string) (string, error) {
	switch {
	case f.libvirt != "" && len(args) > 0:
		return "", usageErr(errors.New("give IMAGE or --libvirt URI --domain NAME, not both"))
	case f.libvirt != "":
		return "", nil
	case len(args) == 1:
		return args[0], nil
	}
	return "", usageErr(errors.New("no image: give IMAGE, or --libvirt URI --domain NAME to read a libvirt domain's disk"))
}

// open connects to the domain and opens its Windows disk. A running domain's disk is
// refused without --force-share, as a local image a running QEMU holds is. The returned
// closer ends the connection too.
func (f *domainDiskFlags) open(ctx context.Context, stderr io.Writer, share bool, opts disk.Options) (*disk.Image, *run.DomainImage, func(), error) {
	t, err := vm.Dial(ctx, vm.Address{LibvirtURI: f.libvirt, Domain: f.domain}, vm.Options{Timeout: f.rpcTimeout})
	if err != nil {
		return nil, nil, nil, connectErr(err)
	}
	st, err := t.Status(ctx)
	if err != nil {
		t.Close()
		return nil, nil, nil, failedErr(err)
	}
	if st.Running && !share {
		t.Close()
		return nil, nil, nil, failedErr(fmt.Errorf("%w: domain %s is %s: its disk may change while it is read; stop the guest first, or pass --force-share", disk.ErrInUse, f.domain, st.State))
	}
	if st.Running {
		fmt.Fprintf(stderr, "crashkey: warning: domain %s is %s: what is read may be inconsistent\n", f.domain, st.State)
	}
	img, di, err := run.OpenDomainImage(ctx, t, opts)
	if err != nil {
		t.Close()
		return nil, nil, nil, err
	}
	restore := func() {}
	if di.Remote {
		old := debug.SetGCPercent(remoteGCPercent)
		restore = func() { debug.SetGCPercent(old) }
	}
	return img, di, func() { img.Close(); t.Close(); restore() }, nil
}

// remoteGCPercent is the garbage collector's target while a disk is read through libvirt's
// storage API: go-libvirt allocates a new buffer for every stream packet (256 KiB), so the
// stream leaves garbage at the speed of the network. At 50 a 512 MiB pull peaked at
// 44–46 MiB of RSS, at the default 100 at 53–56 MiB, for the same CPU time (1.42–1.59 s
// against 1.39–1.60 s per 512 MiB; the collector's marking is ~1.5% of it, the heap holding
// no pointers to speak of), so the lower target is kept (measured with
// scripts/bench/remote-pull.sh's setup and perf, 2026-12-06).
const remoteGCPercent = 50

// connectErr maps a dial error: a URI crashkey cannot use is bad input (2), anything else a
// failure (3).
func connectErr(err error) error {
	var ue *vm.URIError
	if errors.As(err, &ue) {
		return usageErr(err)
	}
	return failedErr(err)
}
