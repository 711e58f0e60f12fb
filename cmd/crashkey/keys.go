package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/scancodes"
	"github.com/crashkey/crashkey/scancodes/layout"
)

func init() { register(newKeysCmd) }

// keyDoc is the JSON form of one key.
type keyDoc struct {
	QCode     string   `json:"qcode"`
	Name      string   `json:"name"`
	Set1      string   `json:"set1"`
	Break     string   `json:"break"`
	Qnum      int      `json:"qnum"`
	Linux     int      `json:"linux"`
	LinuxName string   `json:"linux_name"`
	USB       int      `json:"usb"`
	Code      string   `json:"code,omitempty"`
	Dump2Key  *int     `json:"dump2key"`
	Aliases   []string `json:"aliases"`
	Since     string   `json:"qemu_since,omitempty"`
	// Label is the key's label on --layout and Levels what it types on each level (plain,
	// Shift, AltGr, Shift+AltGr; "" for nothing), for the keys whose label depends on the layout.
	Label  string   `json:"label,omitempty"`
	Levels []string `json:"levels,omitempty"`
}

// layoutDoc is the JSON form of one layout (--layouts).
type layoutDoc struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Kind        string `json:"kind,omitempty"`
}

// tableDoc is the JSON form of one Dump2Key table entry.
type tableDoc struct {
	Index int     `json:"index"`
	Value int     `json:"value"`
	QCode *string `json:"qcode"`
	Note  string  `json:"note,omitempty"`
}

func newKeysCmd() *cobra.Command {
	var asJSON, table, layouts bool
	var layoutName string
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List every key: QKeyCode, set-1, qnum, Linux, USB, Dump2Key index and aliases",
		Long: `List every key QEMU can send with its QEMU QKeyCode (the canonical name), set-1 make code,
qnum, Linux evdev code, USB HID usage, Dump2Key index and the aliases crashkey accepts.
--table lists the Windows drivers' 134-entry crash-key table instead, empty entries included.
--layout NAME adds each key's label on that keyboard layout (what it types without a
modifier) and what it types with Shift, AltGr and Shift+AltGr; --layouts lists the layouts.`,
		Example: `  crashkey keys
  crashkey keys --layout fr
  crashkey keys --layouts`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if table {
				return printDump2KeyTable(cmd, asJSON)
			}
			if layouts {
				return printLayouts(cmd, asJSON)
			}
			var l *layout.Layout
			if cmd.Flags().Changed("layout") {
				var err error
				if l, err = keyboardLayout(layoutName); err != nil {
					return err
				}
			}
			var docs []keyDoc
			for i := range scancodes.All() {
				k := &scancodes.All()[i]
				d := keyDoc{QCode: k.QCode, Name: k.Name(), Set1: k.Set1Hex(), Break: fmt.Sprintf("%x", k.Break), Qnum: int(k.Qnum),
					Linux: int(k.Linux), LinuxName: k.LinuxName, USB: int(k.USB), Code: k.Code, Aliases: scancodes.Aliases(k), Since: k.Since}
				if d.Aliases == nil {
					d.Aliases = []string{}
				}
				if k.Dump2Key >= 0 {
					idx := k.Dump2Key
					d.Dump2Key = &idx
				}
				if l != nil && layout.Dependent(k) {
					d.Label = l.Label(k)
					for lv := 1; lv <= layout.Levels; lv++ {
						c, _ := l.LevelChar(k, lv)
						s := ""
						if c != 0 {
							s = string(c)
						}
						d.Levels = append(d.Levels, s)
					}
				}
				docs = append(docs, d)
			}
			if asJSON {
				return writeJSON(w, docs)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			if l != nil {
				return printLayoutKeys(tw, l, docs)
			}
			fmt.Fprintln(tw, "QCODE\tSET1\tQNUM\tLINUX\tUSB\tDUMP2KEY\tALIASES")
			for _, d := range docs {
				idx := "-"
				if d.Dump2Key != nil {
					idx = fmt.Sprint(*d.Dump2Key)
				}
				usb := "-"
				if d.USB != 0 {
					usb = fmt.Sprintf("0x%02x", d.USB)
				}
				fmt.Fprintf(tw, "%s\t%s\t0x%02x\t%d\t%s\t%s\t%s\n", d.QCode, d.Set1, d.Qnum, d.Linux, usb, idx, strings.Join(d.Aliases, " "))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().BoolVar(&table, "table", false, "list the drivers' 134-entry Dump2Key table")
	cmd.Flags().BoolVar(&layouts, "layouts", false, "list the keyboard layouts --layout takes")
	addLayoutFlag(cmd, &layoutName)
	cmd.MarkFlagsMutuallyExclusive("table", "layouts", "layout")
	return cmd
}

// printLayoutKeys prints the keys with their labels on l: the layout-dependent keys first (in
// keyboard order), then the rest, whose labels are their names on every layout.
func printLayoutKeys(tw *tabwriter.Writer, l *layout.Layout, docs []keyDoc) error {
	fmt.Fprintf(tw, "layout %s: %s\n", l.Title(), l.Description)
	fmt.Fprintln(tw, "LABEL\tQCODE (US POSITION)\tSET1\tUSB\tDUMP2KEY\tSHIFT\tALTGR\tSHIFT+ALTGR")
	byQ := map[string]keyDoc{}
	for _, d := range docs {
		byQ[d.QCode] = d
	}
	row := func(d keyDoc, label string, levels []string) {
		idx := "-"
		if d.Dump2Key != nil {
			idx = fmt.Sprintf("%d (0x%02x)", *d.Dump2Key, *d.Dump2Key)
		}
		usb := "-"
		if d.USB != 0 {
			usb = fmt.Sprintf("0x%02x", d.USB)
		}
		for len(levels) < layout.Levels {
			levels = append(levels, "")
		}
		for i, v := range levels {
			if v == "" {
				levels[i] = "-"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", label, d.QCode, d.Set1, usb, idx, levels[1], levels[2], levels[3])
	}
	for _, kl := range l.Labels() {
		d := byQ[kl.Key.QCode]
		label := d.Label
		if kl.Chars[0] == 0 {
			label = "(none)"
		}
		row(d, label, append([]string(nil), d.Levels...))
	}
	for _, d := range docs {
		if d.Label == "" {
			row(d, d.Name, nil)
		}
	}
	return tw.Flush()
}

func printLayouts(cmd *cobra.Command, asJSON bool) error {
	var docs []layoutDoc
	for _, l := range layout.All() {
		docs = append(docs, layoutDoc{Name: l.Name, Description: l.Description, Kind: l.Kind()})
	}
	if asJSON {
		return writeJSON(cmd.OutOrStdout(), docs)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYOUT\tKIND\tDESCRIPTION")
	for _, d := range docs {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.Name, d.Kind, d.Description)
	}
	return tw.Flush()
}

func printDump2KeyTable(cmd *cobra.Command, asJSON bool) error {
	var docs []tableDoc
	for i := 0; i < scancodes.Dump2KeyCount; i++ {
		v, _ := scancodes.Dump2KeyValue(i)
		d := tableDoc{Index: i, Value: int(v)}
		if k, ok := scancodes.ByDump2Key(i); ok {
			q := k.QCode
			d.QCode = &q
			if k.Modifier() != 0 {
				d.Note = "modifier: can never be the crash key"
			}
			if i == scancodes.SysRqIndex {
				d.Note = "special: matches E0 37 and 54"
			}
		} else {
			d.Note = "empty: no crash key"
		}
		docs = append(docs, d)
	}
	if asJSON {
		return writeJSON(cmd.OutOrStdout(), docs)
	}
	tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "INDEX\tHEX\tVALUE\tKEY\tNOTE")
	for _, d := range docs {
		key := "-"
		if d.QCode != nil {
			key = *d.QCode
		}
		fmt.Fprintf(tw, "%d\t0x%02x\t0x%02x\t%s\t%s\n", d.Index, d.Index, d.Value, key, d.Note)
	}
	return tw.Flush()
}
