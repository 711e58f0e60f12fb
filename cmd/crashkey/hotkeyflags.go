package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/hid"
)

// hotkeyFlags are the flags every command that takes a hotkey shares:
// --hotkey SPEC | --dump1keys N --dump2key N. With none set, the hotkey is CrashOnCtrlScroll.
type hotkeyFlags struct {
	spec      string
	dump1Keys string
	dump2Key  uint32
}

// add registers the flags on cmd.
func (f *hotkeyFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.spec, "hotkey", "", `hotkey spec: modifiers and crash key joined by '+' ("rctrl+scroll", "lshift+rshift+d") or the registry pair "DUMP1KEYS/DUMP2KEY" ("0x11/0x22"); default: CrashOnCtrlScroll (RCtrl+ScrollLock)`)
	fs.StringVar(&f.dump1Keys, "dump1keys", "", "crashdump\\Dump1Keys: modifier bitmask (0x01 RShift, 0x02 RCtrl, 0x04 RAlt, 0x10 LShift, 0x20 LCtrl, 0x40 LAlt) or names (\"lshift+rshift\")")
	fs.Uint32Var(&f.dump2Key, "dump2key", 0, "crashdump\\Dump2Key: index into the driver's 134-entry key table (not a scan code; see 'crashkey keys')")
	cmd.MarkFlagsMutuallyExclusive("hotkey", "dump1keys")
	cmd.MarkFlagsMutuallyExclusive("hotkey", "dump2key")
	cmd.MarkFlagsRequiredTogether("dump1keys", "dump2key")
}

// set reports whether the user named a hotkey.
func (f *hotkeyFlags) set(cmd *cobra.Command) bool {
	return cmd.Flags().Changed("hotkey") || cmd.Flags().Changed("dump1keys")
}

// hotkey returns the hotkey the flags name (CrashOnCtrlScroll when none is set). Errors are
// usage errors.
func (f *hotkeyFlags) hotkey(cmd *cobra.Command) (hid.Hotkey, error) {
	switch {
	case cmd.Flags().Changed("hotkey"):
		h, err := hid.ParseHotkey(f.spec)
		if err != nil {
			return hid.Hotkey{}, usageErr(err)
		}
		return h, nil
	case cmd.Flags().Changed("dump1keys"):
		d1, err := hid.ParseDump1Keys(f.dump1Keys)
		if err != nil {
			return hid.Hotkey{}, usageErr(fmt.Errorf("--dump1keys: %w", err))
		}
		h, err := hid.FromRegistry(uint32(d1), f.dump2Key)
		if err != nil {
			return hid.Hotkey{}, usageErr(err)
		}
		return h, nil
	}
	return hid.CrashOnCtrlScroll(), nil
}
