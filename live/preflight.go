package live

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/registry"
	"github.com/crashkey/crashkey/vm"
)

// PreflightOptions tune Preflight.
type PreflightOptions struct {
	// Check are the options of the report (hotkey, memory size, layout).
	Check registry.CheckOptions
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Preflight reads the running guest's SYSTEM settings through the agent (reg.exe query) and
// judges them as an offline preflight does (registry.Check). When crashkey armed the guest
// after its last boot (MarkerKey newer than host time − Uptime), the report carries the error
// "reboot-needed": the keyboard drivers and CrashControl are read only at boot.
func Preflight(ctx context.Context, ag vm.Agent, opts PreflightOptions) (*registry.Report, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	prog := regProgram(ctx, ag)
	q := func(key string) (map[string]Value, bool, error) {
		vals, found, err := queryFound(ctx, ag, prog, `HKLM\`+key)
		if err != nil {
			return nil, false, fmt.Errorf("preflight --live: %w", err)
		}
		return vals, found, nil
	}
	s := &registry.Settings{ControlSet: 1, ControlSetFrom: `Select\Current`, Hive: registry.HiveInfo{Version: "live", ChecksumOK: true}}
	sel, _, err := q(`SYSTEM\Select`)
	if err != nil {
		return nil, err
	}
	if n, ok := sel["current"].DWORD(); ok && n >= 1 && n <= 999 {
		s.ControlSet = int(n)
	}
	s.ControlSets = []string{fmt.Sprintf("ControlSet%03d", s.ControlSet)}
	cs := `SYSTEM\CurrentControlSet\`
	po, _, err := q(cs + `Control\ProductOptions`)
	if err != nil {
		return nil, err
	}
	if v, ok := po["producttype"]; ok && v.Type == "REG_SZ" {
		s.ProductType = v.Data
	}
	for _, d := range hid.Drivers {
		svc, found, err := q(cs + `Services\` + string(d))
		if err != nil {
			return nil, err
		}
		ds := registry.DriverSettings{Driver: d, Present: found}
		ds.Start = dword(svc, "start", &s.Anomalies, d)
		if found {
			par, _, err := q(cs + `Services\` + string(d) + `\Parameters`)
			if err != nil {
				return nil, err
			}
			ds.CrashOnCtrlScroll = dword(par, "crashonctrlscroll", &s.Anomalies, d)
			cd, _, err := q(cs + `Services\` + string(d) + `\crashdump`)
			if err != nil {
				return nil, err
			}
			ds.Dump1Keys = dword(cd, "dump1keys", &s.Anomalies, d)
			ds.Dump2Key = dword(cd, "dump2key", &s.Anomalies, d)
		}
		s.Drivers = append(s.Drivers, ds)
	}
	cc, found, err := q(cs + `Control\CrashControl`)
	if err != nil {
		return nil, err
	}
	c := registry.CrashControl{Present: found}
	for name, p := range map[string]**uint32{
		"crashdumpenabled": &c.CrashDumpEnabled, "filterpages": &c.FilterPages, "autoreboot": &c.AutoReboot,
		"overwrite": &c.Overwrite, "dumpfilesize": &c.DumpFileSize, "alwayskeepmemorydump": &c.AlwaysKeepMemoryDump,
		"nmicrashdump": &c.NMICrashDump,
	} {
		*p = dword(cc, name, &s.Anomalies, "CrashControl")
	}
	for name, p := range map[string]**string{"dumpfile": &c.DumpFile, "minidumpdir": &c.MinidumpDir, "dedicateddumpfile": &c.DedicatedDumpFile} {
		if v, ok := cc[name]; ok && (v.Type == "REG_SZ" || v.Type == "REG_EXPAND_SZ") {
			str := v.Data
			*p = &str
		}
	}
	s.CrashControl = c
	mm, _, err := q(cs + `Control\Session Manager\Memory Management`)
	if err != nil {
		return nil, err
	}
	if v, ok := mm["pagingfiles"]; ok && v.Type == "REG_MULTI_SZ" && v.Data != "" {
		s.PagingFiles = strings.Split(v.Data, `\0`)
	}
	if v, ok := mm["existingpagefiles"]; ok && v.Type == "REG_MULTI_SZ" && v.Data != "" {
		s.ExistingPageFiles = strings.Split(v.Data, `\0`)
	}
	co := opts.Check
	if co.VersionUnknown == "" {
		co.VersionUnknown = "a live preflight does not read the SOFTWARE hive's version"
	}
	r := registry.Check(s, co)
	r.Hive = `HKLM\SYSTEM (live, through the guest agent)`

	mk, _, err := q(MarkerKey)
	if err != nil {
		return nil, err
	}
	if v, ok := mk[strings.ToLower(MarkerValue)]; ok {
		secs, perr := strconv.ParseInt(strings.TrimSpace(v.Data), 10, 64)
		if perr == nil && secs > 0 {
			up, err := Uptime(ctx, ag)
			if err != nil {
				return nil, fmt.Errorf("preflight --live: %w", err)
			}
			armed, boot := time.Unix(secs, 0).UTC(), opts.Now().Add(-up).UTC().Truncate(time.Second)
			if armed.After(boot) {
				r.Problems = append([]registry.Problem{{
					ID: "reboot-needed", Severity: registry.SeverityError,
					Message: fmt.Sprintf("armed after the last boot: reboot needed (armed at %s, booted at %s): the keyboard drivers and CrashControl read these settings only at boot",
						armed.Format(time.RFC3339), boot.Format(time.RFC3339)),
					Fix: "restart the guest (crashkey arm --apply --reboot does it through the agent)",
				}}, r.Problems...)
				r.OK = false
			}
		}
	}
	return r, nil
}

func dword(vals map[string]Value, name string, anomalies *[]string, where any) *uint32 {
	v, ok := vals[name]
	if !ok {
		return nil
	}
	n, ok := v.DWORD()
	if !ok {
		*anomalies = append(*anomalies, fmt.Sprintf("%v: %s is %s, not REG_DWORD", where, v.Name, v.Type))
		return nil
	}
	return &n
}

// queryFound runs reg query KEY and says whether the key exists.
func queryFound(ctx context.Context, ag vm.Agent, prog, key string) (map[string]Value, bool, error) {
	res, err := ag.Run(ctx, prog, "query", key)
	var ee *vm.ExitError
	if errors.As(err, &ee) && ee.Result.ExitCode == 1 && strings.Contains(strings.ToLower(string(ee.Result.Stderr)), "unable to find") {
		return map[string]Value{}, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("%s query %s: %w", prog, key, err)
	}
	vals, err := ParseRegQuery(res.Stdout)
	if err != nil {
		return nil, false, fmt.Errorf("%s query %s: %w", prog, key, err)
	}
	return vals, true, nil
}
