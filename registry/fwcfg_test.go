package registry

import (
	"strings"
	"testing"
)

// TestFwCfg: the FwCfg service (virtio-win) decides whether the host can write a win-dmp dump;
// the hive is built with hivexregedit.
func TestFwCfg(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, extra, want string
	}{
		{"absent", "", `Services\FwCfg does not exist`},
		{"installed", reg(`[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\FwCfg]`, `"Start"=dword:00000003`), "installed (Start=3, manual)"},
		{"disabled", reg(`[HKEY_LOCAL_MACHINE\SYSTEM\ControlSet001\Services\FwCfg]`, `"Start"=dword:00000004`), "disabled (Start=4)"},
	} {
		regs := []string{baseReg("ServerNT"), armed(t, ArmOptions{})}
		if tc.extra != "" {
			regs = append(regs, tc.extra)
		}
		s, err := ReadHiveFile(buildHive(t, regs...))
		if err != nil {
			t.Fatal(err)
		}
		r := Check(s, CheckOptions{})
		if !strings.Contains(r.Dump.HostDump, tc.want) || s.FwCfg.Present != (tc.extra != "") {
			t.Errorf("%s: fwcfg %+v, host dump %q, want %q", tc.name, s.FwCfg, r.Dump.HostDump, tc.want)
		}
	}
}
