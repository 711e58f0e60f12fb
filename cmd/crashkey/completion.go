package main

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/scancodes"
	"github.com/crashkey/crashkey/vm"
)

// Shell completion: cobra's completion command (bash, zsh, fish, powershell) with dynamic
// values: --domain from the libvirt URI given with --libvirt (qemu:///system by default),
// --qmp from the sockets in common places, --proxmox/--incus/--lxd from the running VMs,
// --hotkey key names, --expect-bugcheck bug-check names, plan's --format.

// domainListTimeout bounds the libvirt call behind --domain completion: a shell waits for it.
const domainListTimeout = 2 * time.Second

func init() {
	rootHooks = append(rootHooks, func(root *cobra.Command) {
		root.CompletionOptions.HiddenDefaultCmd = false
		walk(root, func(c *cobra.Command) {
			for name, fn := range flagCompletions {
				if c.Flags().Lookup(name) != nil {
					_ = c.RegisterFlagCompletionFunc(name, fn)
				}
			}
			if c.Name() == "plan" && c.Flags().Lookup("format") != nil {
				_ = c.RegisterFlagCompletionFunc("format", completeFormats)
			}
		})
	})
}

type completeFunc = func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective)

var flagCompletions = map[string]completeFunc{
	"domain":          completeDomains,
	"qmp":             completeQMP,
	"hotkey":          completeHotkey,
	"expect-bugcheck": completeBugChecks,
}

func fixed(list func() []string) completeFunc {
	return func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return withPrefix(list(), toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// withPrefix keeps the names that start with prefix, ignoring case.
func withPrefix(names []string, prefix string) []string {
	var out []string
	for _, n := range names {
		if strings.HasPrefix(strings.ToLower(n), strings.ToLower(prefix)) {
			out = append(out, n)
		}
	}
	return out
}

func completeDomains(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	// --libvirt repeats (fleets): complete against the last one given.
	uri := ""
	if uris, _ := cmd.Flags().GetStringArray("libvirt"); len(uris) > 0 {
		uri = uris[len(uris)-1]
	}
	if uri == "" {
		uri = "qemu:///system"
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	names, err := vm.ListDomains(ctx, uri, domainListTimeout)
	if err != nil {
		cobra.CompErrorln(err.Error())
		return nil, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveError
	}
	return withPrefix(names, toComplete), cobra.ShellCompDirectiveNoFileComp
}

func completeQMP(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	socks := withPrefix(locator.QMPSockets(""), toComplete)
	if len(socks) == 0 && !strings.Contains(toComplete, ":") {
		return []string{"unix:", "tcp:"}, cobra.ShellCompDirectiveNoSpace
	}
	return socks, cobra.ShellCompDirectiveNoFileComp
}

// keyNames are the names offered for --hotkey: every QKeyCode and alias in lower case (case
// does not matter to crashkey), without the KEY_ forms.
func keyNames() []string {
	var out []string
	seen := map[string]bool{}
	for i := range scancodes.All() {
		k := &scancodes.All()[i]
		for _, a := range append([]string{k.QCode}, scancodes.Aliases(k)...) {
			a = strings.ToLower(a)
			if !strings.HasPrefix(a, "key_") && !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out
}

// completeHotkey completes the key after the last '+' of a hotkey spec.
func completeHotkey(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	head, last := "", toComplete
	if i := strings.LastIndexByte(toComplete, '+'); i >= 0 {
		head, last = toComplete[:i+1], toComplete[i+1:]
	}
	var out []string
	for _, n := range withPrefix(keyNames(), last) {
		out = append(out, head+n)
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

func completeBugChecks(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	var names []string
	for _, c := range dump.BugCheckNames() {
		names = append(names, dump.BugCheckName(c))
	}
	return withPrefix(names, toComplete), cobra.ShellCompDirectiveNoFileComp
}

func completeFormats(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	var names []string
	for _, f := range hid.Formats {
		names = append(names, string(f))
	}
	return withPrefix(names, toComplete), cobra.ShellCompDirectiveNoFileComp
}
