package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/scancodes/layout"
)

// hotkeyFlags are the flags every command that takes a hotkey shares:
// --hotkey SPEC | --dump1keys N --dump2key N, and --layout NAME. With none set, the hotkey is
// CrashOnCtrlScroll.
type hotkeyFlags struct {
	spec      string
	dump1Keys string
	dump2Key  uint32
	layout    string
}

// add registers the flags on cmd.
func (f *hotkeyFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.spec, "hotkey", "", `hotkey spec: modifiers and crash key joined by '+' ("rctrl+scroll", "lshift+rshift+d") or the registry pair "DUMP1KEYS/DUMP2KEY" ("0x11/0x22"); default: CrashOnCtrlScroll (RCtrl+ScrollLock)`)
	fs.StringVar(&f.dump1Keys, "dump1keys", "", "crashdump\\Dump1Keys: modifier bitmask (0x01 RShift, 0x02 RCtrl, 0x04 RAlt, 0x10 LShift, 0x20 LCtrl, 0x40 LAlt) or names (\"lshift+rshift\")")
	fs.Uint32Var(&f.dump2Key, "dump2key", 0, "crashdump\\Dump2Key: index into the driver's 134-entry key table (not a scan code; see 'crashkey keys')")
	addLayoutFlag(cmd, &f.layout)
	cmd.MarkFlagsMutuallyExclusive("hotkey", "dump1keys")
	cmd.MarkFlagsMutuallyExclusive("hotkey", "dump2key")
	cmd.MarkFlagsRequiredTogether("dump1keys", "dump2key")
}

// addLayoutFlag registers --layout.
func addLayoutFlag(cmd *cobra.Command, v *string) {
	cmd.Flags().StringVar(v, "layout", layout.Default, `keyboard layout the hotkey's character keys are labels on (xkb names: us, gb, fr, de, ch, jp, …; variants as "de:nodeadkeys"; 'crashkey keys --layouts' lists them): "a" is the key labelled A there; ctrl_r, scroll_lock, f5 and position names (KEY_Q, Digit1) are unaffected`)
}

// keyboardLayout resolves --layout.
func keyboardLayout(name string) (*layout.Layout, error) {
	l, err := layout.Get(name)
	if err != nil {
		return nil, usageErr(fmt.Errorf("--layout: %w", err))
	}
	return l, nil
}

// set reports whether the user named a hotkey.
func (f *hotkeyFlags) set(cmd *cobra.Command) bool {
	return cmd.Flags().Changed("hotkey") || cmd.Flags().Changed("dump1keys")
}

// layoutSet reports whether the user chose a layout other than US.
func (f *hotkeyFlags) layoutSet(cmd *cobra.Command) bool {
	l, err := layout.Get(f.layout)
	return cmd.Flags().Changed("layout") && err == nil && !l.IsUS()
}

// hotkey returns the hotkey the flags name (CrashOnCtrlScroll when none is set), read on
// --layout. Errors are usage errors.
func (f *hotkeyFlags) hotkey(cmd *cobra.Command) (hid.Hotkey, error) {
	l, err := keyboardLayout(f.layout)
	if err != nil {
		return hid.Hotkey{}, err
	}
	switch {
	case cmd.Flags().Changed("hotkey"):
		h, err := hid.ParseHotkeyOn(f.spec, l)
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
		return h.On(l), nil
	}
	return hid.CrashOnCtrlScroll().On(l), nil
}
