package vm

import (
	"context"
	"encoding/xml"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/digitalocean/go-libvirt"
)

// libvirtDumpAPI is the part of *libvirt.Libvirt a host-side dump uses.
type libvirtDumpAPI interface {
	DomainCoreDumpWithFormat(dom libvirt.Domain, to string, dumpformat uint32, flags libvirt.DomainCoreDumpFlags) error
	DomainGetJobInfo(dom libvirt.Domain) (rType int32, rTimeElapsed, rTimeRemaining, rDataTotal, rDataProcessed, rDataRemaining, rMemTotal, rMemProcessed, rMemRemaining, rFileTotal, rFileProcessed, rFileRemaining uint64, err error)
	DomainGetInfo(dom libvirt.Domain) (rState uint8, rMaxMem, rMemory uint64, rNrVirtCPU uint16, rCPUTime uint64, err error)
	DomainSuspend(dom libvirt.Domain) error
}

func (t *libvirtTarget) dumpAPI() (libvirtDumpAPI, libvirt.Domain, error) {
	api, dom := t.current()
	tr, traced := api.(tracedLibvirt)
	if traced {
		api = tr.libvirtAPI
	}
	d, ok := api.(libvirtDumpAPI)
	if !ok {
		return nil, dom, fmt.Errorf("dump: this libvirt connection cannot dump")
	}
	if traced {
		d = tracedDump{d}
	}
	return d, dom, nil
}

// tracedDump logs the dump calls of a traced connection (--debug).
type tracedDump struct{ libvirtDumpAPI }

func (t tracedDump) DomainCoreDumpWithFormat(dom libvirt.Domain, to string, dumpformat uint32, flags libvirt.DomainCoreDumpFlags) error {
	start := time.Now()
	err := t.libvirtDumpAPI.DomainCoreDumpWithFormat(dom, to, dumpformat, flags)
	lvCall("DomainCoreDumpWithFormat", start, err, domName(dom), slog.String("to", to), slog.Int("format", int(dumpformat)))
	return err
}

func (t tracedDump) DomainSuspend(dom libvirt.Domain) error {
	start := time.Now()
	err := t.libvirtDumpAPI.DomainSuspend(dom)
	lvCall("DomainSuspend", start, err, domName(dom))
	return err
}

// vmcoreinfoFeature reads <features><vmcoreinfo state='on'/></features>.
func vmcoreinfoFeature(doc []byte) (bool, error) {
	if len(doc) > maxDomainXML {
		return false, fmt.Errorf("domain xml: %d bytes, more than %d", len(doc), maxDomainXML)
	}
	var d struct {
		Features struct {
			VMCoreInfo *struct {
				State string `xml:"state,attr"`
			} `xml:"vmcoreinfo"`
		} `xml:"features"`
	}
	if err := xml.Unmarshal(doc, &d); err != nil {
		return false, fmt.Errorf("domain xml: %w", err)
	}
	v := d.Features.VMCoreInfo
	return v != nil && (v.State == "" || v.State == "on"), nil
}

// HostDumpInfo implements HostDumper.
func (t *libvirtTarget) HostDumpInfo(ctx context.Context) (HostDumpInfo, error) {
	info := HostDumpInfo{}
	if u, err := url.Parse(t.uri); err == nil {
		info.Local = u.Host == ""
	}
	d, _, err := t.dumpAPI()
	if err != nil {
		return info, err
	}
	var doc string
	var state uint8
	var maxMem uint64
	err = t.call(ctx, func(api libvirtAPI, dom libvirt.Domain) error {
		var err error
		if doc, err = api.DomainGetXMLDesc(dom, 0); err != nil {
			return err
		}
		state, maxMem, _, _, _, err = d.DomainGetInfo(dom)
		return err
	})
	if err != nil {
		return info, fmt.Errorf("dump: %w", err)
	}
	info.State = nameOf(libvirtStates, int32(state))
	info.MemoryBytes = maxMem * 1024
	info.VMCoreInfo, err = vmcoreinfoFeature([]byte(doc))
	return info, err
}

// Pause implements HostDumper.
func (t *libvirtTarget) Pause(ctx context.Context) error {
	d, _, err := t.dumpAPI()
	if err != nil {
		return err
	}
	if err := t.call(ctx, func(_ libvirtAPI, dom libvirt.Domain) error { return d.DomainSuspend(dom) }); err != nil {
		return fmt.Errorf("suspend: %w", err)
	}
	return nil
}

// DumpMemory implements HostDumper: virDomainCoreDumpWithFormat, memory only, with progress
// from the domain's job info. libvirtd opens path itself, on its host.
func (t *libvirtTarget) DumpMemory(ctx context.Context, path string, opts HostDumpOptions) error {
	opts = opts.withDefaults()
	d, dom, err := t.dumpAPI()
	if err != nil {
		return err
	}
	format := uint32(libvirt.DomainCoreDumpFormatRaw) // memory-only raw = ELF
	if opts.Format == DumpWinDmp {
		format = uint32(libvirt.DomainCoreDumpFormatWinDmp)
	}
	done := make(chan error, 1)
	go func() { done <- d.DomainCoreDumpWithFormat(dom, path, format, libvirt.DumpMemoryOnly) }()
	tick := time.NewTicker(opts.Poll)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				return nil
			}
			has := true
			if info, ierr := t.HostDumpInfo(ctx); ierr == nil {
				has = info.VMCoreInfo
			}
			return classifyDumpError(err.Error(), opts.Format, has, Libvirt)
		case <-tick.C:
			if opts.Progress == nil {
				continue
			}
			typ, _, _, dTotal, dDone, _, mTotal, mDone, _, _, _, _, err := d.DomainGetJobInfo(dom)
			if err != nil || typ == 0 {
				continue
			}
			switch {
			case mTotal > 0:
				opts.Progress(int64(mDone), int64(mTotal))
			case dTotal > 0:
				opts.Progress(int64(dDone), int64(dTotal))
			}
		case <-ctx.Done():
			return fmt.Errorf("dump: %w (libvirtd goes on with the dump job: virsh domjobabort)", ctx.Err())
		}
	}
}
