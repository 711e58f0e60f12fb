// Package live arms a running guest through its QEMU guest agent and reads its registry back:
// it writes the .reg file that registry.Plan renders into the guest's temp folder, imports it
// with reg.exe import, reads every value back with reg.exe query, removes the file (also on
// errors), and optionally reboots the guest and waits for its agent. Preflight builds the same
// report as an offline preflight from reg.exe query output, and says when the settings were
// armed after the guest's last boot (a reboot is still needed).
//
// On Linux guests (crashkey's stand-in) the programs are "reg" and /proc/uptime instead of
// reg.exe and PowerShell.
package live

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/crashkey/crashkey/registry"
	"github.com/crashkey/crashkey/vm"
)

// MarkerKey and MarkerValue record, in the guest's registry, when crashkey last armed it (Unix
// seconds, host clock, REG_SZ), for Preflight's "armed after the last boot".
const (
	MarkerKey   = `SOFTWARE\crashkey`
	MarkerValue = "ArmedAt"
)

// Options tune Apply.
type Options struct {
	// Reboot restarts the guest after arming and waits until its agent answers again.
	Reboot bool
	// RebootTimeout bounds the wait for the agent after the reboot (default 10 minutes).
	RebootTimeout time.Duration
	// TempDir is the guest folder the .reg file is written to (default C:\Windows\Temp on
	// Windows, /tmp elsewhere).
	TempDir string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Check is one value read back after the import.
type Check struct {
	Key  string `json:"key"`
	Name string `json:"name"`
	Want string `json:"want"`
	Got  string `json:"got"`
	OK   bool   `json:"ok"`
}

// Result is what Apply did.
type Result struct {
	Plan *registry.Plan `json:"plan"`
	// File is the guest file the .reg was written to (removed again).
	File string `json:"file"`
	// Checks are the values read back; all OK when Apply returns no error.
	Checks []Check `json:"checks"`
	// ArmedAt is the time recorded in the guest (MarkerKey).
	ArmedAt time.Time `json:"armedAt"`
	// Rebooted is set when the guest was restarted and its agent answers again.
	Rebooted bool `json:"rebooted"`
	// RebootNeeded is set when the guest must still restart for the settings to take effect.
	RebootNeeded bool `json:"rebootNeeded"`
}

// ErrVerify is returned when a value read back differs from the plan.
var ErrVerify = errors.New("registry values differ after the import")

func regProgram(ctx context.Context, ag vm.Agent) string {
	if ag.Windows(ctx) {
		return "reg.exe"
	}
	return "reg"
}

// Apply arms the running guest behind ag with plan (see the package comment).
func Apply(ctx context.Context, ag vm.Agent, plan *registry.Plan, opts Options) (res *Result, err error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	win := ag.Windows(ctx)
	dir, sep := opts.TempDir, "/"
	if win {
		sep = `\`
	}
	if dir == "" {
		dir = "/tmp"
		if win {
			dir = `C:\Windows\Temp`
		}
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	file := strings.TrimRight(dir, `\/`) + sep + "crashkey-arm-" + hex.EncodeToString(rnd[:]) + ".reg"
	res = &Result{Plan: plan, File: file, ArmedAt: opts.Now().UTC().Truncate(time.Second)}

	reg := append(plan.Reg(), []byte(fmt.Sprintf("[HKEY_LOCAL_MACHINE\\%s]\r\n\"%s\"=\"%d\"\r\n\r\n",
		MarkerKey, MarkerValue, res.ArmedAt.Unix()))...)
	if err := ag.WriteFile(ctx, file, reg); err != nil {
		return nil, fmt.Errorf("arm: %w", err)
	}
	defer func() {
		// Nothing is left in the guest's temp folder, also when the import failed.
		if rerr := ag.RemoveFile(context.WithoutCancel(ctx), file); rerr != nil && err == nil {
			err = fmt.Errorf("arm: %w", rerr)
		}
	}()
	prog := regProgram(ctx, ag)
	if _, err := ag.Run(ctx, prog, "import", file); err != nil {
		return nil, fmt.Errorf("arm: %s import: %w", prog, err)
	}
	bad := 0
	for _, k := range plan.Keys {
		vals, err := query(ctx, ag, prog, `HKLM\SYSTEM\`+k.Path)
		if err != nil {
			return nil, fmt.Errorf("arm: reading back: %w", err)
		}
		for _, v := range k.Values {
			c := Check{Key: `HKLM\SYSTEM\` + k.Path, Name: v.Name, Want: want(v)}
			if got, ok := vals[strings.ToLower(v.Name)]; ok {
				c.Got = got.Type + " " + got.Data
			} else {
				c.Got = "(absent)"
			}
			c.OK = c.Got == c.Want
			if !c.OK {
				bad++
			}
			res.Checks = append(res.Checks, c)
		}
	}
	if bad > 0 {
		var diffs []string
		for _, c := range res.Checks {
			if !c.OK {
				diffs = append(diffs, fmt.Sprintf(`%s\%s is %s, want %s`, c.Key, c.Name, c.Got, c.Want))
			}
		}
		return res, fmt.Errorf("arm: %w: %s", ErrVerify, strings.Join(diffs, "; "))
	}
	res.RebootNeeded = true
	if opts.Reboot {
		t := opts.RebootTimeout
		if t <= 0 {
			t = 10 * time.Minute
		}
		rctx, cancel := context.WithTimeout(ctx, t)
		defer cancel()
		// The file goes before the reboot: the agent is gone while the guest restarts.
		if rerr := ag.RemoveFile(ctx, file); rerr != nil {
			return res, fmt.Errorf("arm: %w", rerr)
		}
		if err := ag.Reboot(rctx); err != nil {
			return res, fmt.Errorf("arm: %w", err)
		}
		res.Rebooted, res.RebootNeeded = true, false
	}
	return res, nil
}

// want renders a plan value as reg.exe query prints it ("REG_DWORD 0x1").
func want(v registry.PlanValue) string {
	switch {
	case v.Delete:
		return "(absent)"
	case v.DWORD != nil:
		return fmt.Sprintf("REG_DWORD 0x%x", *v.DWORD)
	case v.String != nil:
		typ := v.Type
		if typ == "" {
			typ = "REG_SZ"
		}
		return typ + " " + *v.String
	}
	return "?"
}

// query runs reg query KEY; a missing key is an empty map.
func query(ctx context.Context, ag vm.Agent, prog, key string) (map[string]Value, error) {
	vals, _, err := queryFound(ctx, ag, prog, key)
	return vals, err
}

// Uptime asks the guest how long it has been running: on Windows through PowerShell
// (Win32_OperatingSystem LocalDateTime − LastBootUpTime, both in the guest's clock), elsewhere
// from /proc/uptime. Host time minus Uptime is the boot time in the host's clock, free of
// any skew between the two clocks.
func Uptime(ctx context.Context, ag vm.Agent) (time.Duration, error) {
	var res *vm.ExecResult
	var err error
	if ag.Windows(ctx) {
		res, err = ag.Run(ctx, "powershell.exe", "-NoProfile", "-NonInteractive", "-Command",
			"$o = Get-CimInstance Win32_OperatingSystem; [int64]($o.LocalDateTime - $o.LastBootUpTime).TotalSeconds")
	} else {
		res, err = ag.Run(ctx, "/bin/cat", "/proc/uptime")
	}
	if err != nil {
		return 0, fmt.Errorf("guest uptime: %w", err)
	}
	return ParseUptime(res.Stdout)
}

// ParseUptime reads seconds (the first field, decimals allowed) as printed by PowerShell or
// /proc/uptime.
func ParseUptime(out []byte) (time.Duration, error) {
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return 0, errors.New("guest uptime: empty output")
	}
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil || s < 0 || s > 100*365*24*3600 {
		return 0, fmt.Errorf("guest uptime: %q is no number of seconds", clip(f[0]))
	}
	return time.Duration(s * float64(time.Second)), nil
}
