package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/scancodes"
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
}

// tableDoc is the JSON form of one Dump2Key table entry.
type tableDoc struct {
	Index int     `json:"index"`
	Value int     `json:"value"`
	QCode *string `json:"qcode"`
	Note  string  `json:"note,omitempty"`
}

func newKeysCmd() *cobra.Command {
	var asJSON, table bool
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "List every key: QKeyCode, set-1, qnum, Linux, USB, Dump2Key index and aliases",
		Long: `List every key QEMU can send with its QEMU QKeyCode (the canonical name), set-1 make code,
qnum, Linux evdev code, USB HID usage, Dump2Key index and the aliases crashkey accepts.
--table lists the Windows drivers' 134-entry crash-key table instead, empty entries included.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := cmd.OutOrStdout()
			if table {
				return printDump2KeyTable(cmd, asJSON)
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
				docs = append(docs, d)
			}
			if asJSON {
				return writeJSON(w, docs)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
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
	return cmd
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
