package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/internal/termsafe"
	"github.com/crashkey/crashkey/vm"
)

// commands holds the constructors of every subcommand. Each command lives in a file of its
// own and registers itself from an init function, so adding a command touches one file.
var commands []func() *cobra.Command

func register(newCmd func() *cobra.Command) { commands = append(commands, newCmd) }

// rootHooks adjust the root command after every subcommand is added (persistent flags,
// --version, completion); each lives in the file of its feature.
var rootHooks []func(root *cobra.Command)

// newRootCmd builds the whole command tree.
func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "crashkey",
		Short: "Force a crash dump out of a Windows guest and prove that the dump is good",
		Long: `crashkey turns a Windows crash hotkey (CrashOnCtrlScroll or Dump1Keys/Dump2Key) into the
exact key events, delivers them into a running guest over QMP or libvirt (or injects an NMI),
watches for the crash, pulls the dump out of the guest's disk image and checks it like dumpchk.

Exit codes: 0 success; 1 the command ran but the answer is "no" (would not crash, dump
invalid, problems found, guest not running); 2 bad input or usage; 3 the operation failed
(connection, I/O, timeout); 130 interrupted. run adds 4 (no crash seen), 5 (crashed, no
dump found) and 6 (dump invalid or another bug check). Each command's help lists its codes.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		DisableAutoGenTag: true,
	}
	root.CompletionOptions.HiddenDefaultCmd = true
	for _, c := range commands {
		root.AddCommand(c())
	}
	for _, h := range rootHooks {
		h(root)
	}
	return root
}

// Main runs crashkey with args and returns the process exit code. Errors are printed as one
// line on stderr.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErr(fmt.Errorf("%w (see '%s --help')", err, c.CommandPath()))
	})
	defer saveLogging()() // --debug replaces the default logger for one run
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	code := exitCode(err)
	if code == ExitInterrupted && ctx.Err() != nil {
		if msg := err.Error(); strings.Contains(msg, "release them with") {
			fmt.Fprintln(stderr, "crashkey: interrupted: "+oneLine(msg)) // keep the hint
		} else {
			fmt.Fprintln(stderr, "crashkey: interrupted")
		}
		return code
	}
	var q quietError
	if !errors.As(err, &q) {
		fmt.Fprintln(stderr, "crashkey: "+oneLine(vm.RedactText(err.Error())))
	}
	return code
}

func oneLine(s string) string {
	return termsafe.String(strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " "))
}
