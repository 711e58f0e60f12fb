package registry

import "fmt"

// FwCfgService is virtio-win's FwCfg driver (fwcfg64): it publishes the guest's crash-dump
// header through QEMU's vmcoreinfo device, so that the host can write a Windows dump of the
// guest's memory (QEMU dump-guest-memory win-dmp, crashkey dump).
const FwCfgService = "FwCfg"

// ServiceInfo is a service key's presence and start type.
type ServiceInfo struct {
	Present bool    `json:"present"`
	Start   *uint32 `json:"start,omitempty"`
}

// fwcfg reads Services\FwCfg.
func (sc *scan) fwcfg(cs *key) error {
	svc, err := cs.Open(`Services\` + FwCfgService)
	if err != nil || svc == nil {
		return err
	}
	sc.s.FwCfg.Present = true
	sc.s.FwCfg.Start, err = sc.dword(svc, "Start")
	return err
}

// hostDumpNote says whether the host can write a Windows dump of this guest (the escalation
// ladder's dump rung).
func hostDumpNote(s *Settings) string {
	switch {
	case !s.FwCfg.Present:
		return `Services\FwCfg does not exist: without virtio-win's FwCfg driver the guest publishes no dump header, so the host can write only an ELF core (crashkey dump --format elf); install the driver for win-dmp dumps from the host`
	case s.FwCfg.Start != nil && *s.FwCfg.Start == 4:
		return "virtio-win's FwCfg driver is installed but disabled (Start=4): the host can write only an ELF core"
	}
	return fmt.Sprintf("virtio-win's FwCfg driver is installed (%s): with QEMU's vmcoreinfo device the host can write a Windows dump (crashkey dump, run --trigger …,dump)", startName(s.FwCfg.Start))
}

func startName(v *uint32) string {
	if v == nil {
		return "Start absent"
	}
	names := []string{"boot", "system", "automatic", "manual", "disabled"}
	if int(*v) < len(names) {
		return fmt.Sprintf("Start=%d, %s", *v, names[*v])
	}
	return fmt.Sprintf("Start=%d", *v)
}
