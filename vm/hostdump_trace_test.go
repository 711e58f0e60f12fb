package vm

import (
	"context"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
)

// dumpingLibvirt is a fake connection that can also dump, as *libvirt.Libvirt can.
type dumpingLibvirt struct {
	*fakeLibvirt
	dumped string
}

func (d *dumpingLibvirt) DomainCoreDumpWithFormat(dom libvirt.Domain, to string, dumpformat uint32, flags libvirt.DomainCoreDumpFlags) error {
	d.dumped = to
	return nil
}

func (d *dumpingLibvirt) DomainGetJobInfo(libvirt.Domain) (int32, uint64, uint64, uint64, uint64, uint64, uint64, uint64, uint64, uint64, uint64, uint64, error) {
	return 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, nil
}

func (d *dumpingLibvirt) DomainGetInfo(libvirt.Domain) (uint8, uint64, uint64, uint16, uint64, error) {
	return 1, 0, 0, 1, 0, nil
}

func (d *dumpingLibvirt) DomainSuspend(libvirt.Domain) error { return nil }

// DialLibvirt wraps every connection for --debug tracing; the dump calls must still reach the
// connection underneath (they did not: "this libvirt connection cannot dump").
func TestDumpAPIThroughTrace(t *testing.T) {
	for _, traced := range []bool{false, true} {
		d := &dumpingLibvirt{fakeLibvirt: &fakeLibvirt{state: 1, reason: 1, xml: testDomainXML}}
		tg, err := newLibvirtTarget(context.Background(), "qemu:///system", "win11", Options{Timeout: 300 * time.Millisecond},
			func(context.Context) (libvirtAPI, error) {
				if traced {
					return traceLibvirt(d), nil
				}
				return d, nil
			})
		if err != nil {
			t.Fatal(err)
		}
		api, dom, err := tg.dumpAPI()
		if err != nil {
			t.Fatalf("traced=%v: %v", traced, err)
		}
		if err := api.DomainCoreDumpWithFormat(dom, "/tmp/x.dmp", 0, 0); err != nil || d.dumped != "/tmp/x.dmp" {
			t.Errorf("traced=%v: dump reached %q (%v)", traced, d.dumped, err)
		}
	}
	plain := &fakeLibvirt{state: 1, reason: 1, xml: testDomainXML}
	tg, _ := newFakeTarget(t, plain)
	if _, _, err := tg.dumpAPI(); err == nil {
		t.Error("a connection without the dump calls is taken for one that can dump")
	}
}
