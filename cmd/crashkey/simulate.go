package main

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/hid"
)

func init() { register(newSimulateCmd) }

// simulateDoc is the JSON result of simulate.
type simulateDoc struct {
	Crash    bool    `json:"crash"`
	At       *int    `json:"at"`
	Hotkey   *string `json:"hotkey"`
	Registry *string `json:"registry"`
	Driver   string  `json:"driver"`
	Source   string  `json:"source"`
	Reason   string  `json:"reason,omitempty"`
	State    string  `json:"state,omitempty"`
}

func newSimulateCmd() *cobra.Command {
	var (
		driver     string
		ctrlScroll uint32
		dump1, d2  string
		client     bool
		set1, usb  string
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Run the Windows keyboard drivers' crash-hotkey logic on a byte or report stream",
		Long: `Feed set-1 bytes (i8042prt, PS/2) or USB boot reports (kbdhid) to a model of the Windows
keyboard drivers' crash-hotkey state machine, armed with the registry values the guest has,
and tell whether and where bug check 0xE2 fires. Registry flags are the guest's values:
--crash-on-ctrl-scroll (Parameters), --dump1keys/--dump2key (crashdump; raw values are
accepted, even ones that can never fire), --client for a client SKU whose drivers fall back
to the built-in hotkey (0x11/1) when no crashdump values are set.

Exit codes: 0 the bug check fires, 1 it does not, 2 bad input.`,
		Example: `  crashkey simulate --driver i8042prt --crash-on-ctrl-scroll 1 --set1 "$(crashkey plan --format set1)"
  crashkey simulate --driver kbdhid --client --usb "22 00 35 00 00 00 00 00;22 00 00 00 00 00 00 00;22 00 35 00 00 00 00 00;22 00 00 00 00 00 00 00"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			drv, err := hid.ParseDriver(driver)
			if err != nil {
				return usageErr(err)
			}
			reg := hid.Registry{CrashOnCtrlScroll: ctrlScroll, Client: client}
			if cmd.Flags().Changed("dump1keys") {
				v, err := parseRegDword(dump1, true)
				if err != nil {
					return usageErr(fmt.Errorf("--dump1keys: %w", err))
				}
				reg.Dump1Keys = &v
			}
			if cmd.Flags().Changed("dump2key") {
				v, err := parseRegDword(d2, false)
				if err != nil {
					return usageErr(fmt.Errorf("--dump2key: %w", err))
				}
				reg.Dump2Key = &v
			}
			var v hid.Verdict
			unit := "byte"
			switch {
			case drv == hid.I8042prt && set1 != "":
				b, err := hid.ParseHexBytes(set1)
				if err != nil {
					return usageErr(fmt.Errorf("--set1: %w", err))
				}
				v = hid.SimulateSet1(reg, b)
			case drv == hid.Kbdhid && usb != "":
				reps, err := hid.ParseReports(usb)
				if err != nil {
					return usageErr(fmt.Errorf("--usb: %w", err))
				}
				v = hid.SimulateUSB(reg, reps)
				unit = "report"
			case drv == hid.I8042prt:
				return usageErr(errors.New("--driver i8042prt reads set-1 bytes: give --set1 \"e0 1d 46 …\""))
			case drv == hid.Kbdhid:
				return usageErr(errors.New("--driver kbdhid reads boot reports: give --usb \"10 00 47 00 00 00 00 00;…\""))
			default:
				return usageErr(fmt.Errorf("--driver %s: the model covers i8042prt (--set1) and kbdhid (--usb)", drv))
			}
			eff := v.Effective
			doc := simulateDoc{Crash: v.Crash, At: v.At, Driver: string(drv), Source: eff.Source, Reason: eff.Reason}
			if eff.Hotkey != nil {
				s, r := eff.Hotkey.String(), eff.Hotkey.RegistryString()
				doc.Hotkey, doc.Registry = &s, &r
			}
			if !v.Crash {
				doc.State = fmt.Sprintf("%#x", v.State)
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if err := writeJSON(w, doc); err != nil {
					return err
				}
			} else {
				armed := "not armed"
				if doc.Hotkey != nil {
					armed = fmt.Sprintf("%s (%s) from %s", *doc.Hotkey, *doc.Registry, eff.Source)
				}
				fmt.Fprintf(w, "driver:  %s\nhotkey:  %s\n", drv, armed)
				if eff.Reason != "" {
					fmt.Fprintf(w, "reason:  %s\n", eff.Reason)
				}
				if v.Crash {
					fmt.Fprintf(w, "verdict: CRASH: bug check 0xE2 MANUALLY_INITIATED_CRASH fires at %s %d (0-based)\n", unit, *v.At)
				} else {
					fmt.Fprintf(w, "verdict: no crash (driver state %s: %s)\n", doc.State, describeState(v.State))
				}
			}
			if !v.Crash {
				return quietError{ExitNo}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&driver, "driver", "", "i8042prt (PS/2, reads --set1) or kbdhid (USB, reads --usb)")
	f.Uint32Var(&ctrlScroll, "crash-on-ctrl-scroll", 0, "Parameters\\CrashOnCtrlScroll as the guest has it (0 = absent)")
	f.StringVar(&dump1, "dump1keys", "", "crashdump\\Dump1Keys as the guest has it (number or modifier names)")
	f.StringVar(&d2, "dump2key", "", "crashdump\\Dump2Key as the guest has it")
	f.BoolVar(&client, "client", false, "client SKU: the built-in default 0x11/1 applies to absent crashdump values")
	f.StringVar(&set1, "set1", "", "set-1 bytes in hex, e.g. \"e0 1d 46 c6 46 c6 e0 9d\"")
	f.StringVar(&usb, "usb", "", "boot reports separated by ';', each 8 hex bytes")
	f.BoolVar(&asJSON, "json", false, `print {"crash": bool, "at": int|null, "hotkey": …}`)
	_ = cmd.MarkFlagRequired("driver")
	cmd.MarkFlagsMutuallyExclusive("set1", "usb")
	return cmd
}

// parseRegDword reads a REG_DWORD as the guest has it: a number; for Dump1Keys also modifier names.
func parseRegDword(s string, names bool) (uint32, error) {
	n, err := strconv.ParseUint(s, 0, 32)
	if err == nil {
		return uint32(n), nil
	}
	if names {
		d, err := hid.ParseDump1Keys(s)
		return uint32(d), err
	}
	return 0, fmt.Errorf("%q is not a 32-bit number (decimal or 0x hex)", s)
}

func describeState(s uint32) string {
	mods := hid.Dump1Keys(s & 0xff).String()
	switch {
	case s&0x200 != 0:
		return "crash key released twice, but the held modifiers (" + mods + ") are not exactly the hotkey's"
	case s&0x100 != 0:
		return "crash key released once; modifiers held: " + mods
	case s == 0:
		return "nothing pending"
	}
	return "modifiers held: " + mods
}
