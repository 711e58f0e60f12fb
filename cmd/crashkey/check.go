package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/dump/analyze"
	"github.com/crashkey/crashkey/internal/hostfile"
	"github.com/crashkey/crashkey/internal/progress"
)

func init() { register(newCheckCmd) }

func newCheckCmd() *cobra.Command {
	var (
		deep    bool
		expect  string
		asJSON  bool
		modules bool
		culprit culpritFlags
	)
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Check a Windows kernel crash dump like dumpchk",
		Long: `check validates a Windows kernel crash dump (MEMORY.DMP, a Minidump\*.dmp triage dump, or
pagefile.sys holding a dump at its start) and prints its header fields, its memory layout,
findings graded info, warning or error, and a verdict: valid, valid with warnings, or corrupt.

--deep also reads every page of full and bitmap dumps and reports unreadable and all-zero
pages. --expect-bugcheck takes a hex code (0xE2, E2, 80), a decimal code with WinDbg's 0n prefix (0n226) or a name
(MANUALLY_INITIATED_CRASH, NMI_HARDWARE_FAILURE), and fails when the dump holds another. A
base code also accepts its flagged _M variant (0x7E accepts 0x1000007E
SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M); an _M code (0x1000007E, or NAME_M) accepts only itself.

The report ends with what crashed: the loaded modules (a triage dump's driver list, or
PsLoadedModuleList walked through the dump's page tables), the exception address, the
instruction pointer and the bug-check parameters that hold code addresses as module+offset,
and "Probably caused by" with its evidence. --modules prints the module list with each
module's symbol-server path. --expect-culprit NAME and --forbid-culprit NAME (repeatable)
fail when the probable culprit is not / is that module.

Exit codes: 0 valid (also with warnings); 1 corrupt, not a kernel dump, or a bug check
other than --expect-bugcheck, or a probable culprit that --expect-culprit or --forbid-culprit
rejects; 2 bad input (missing file, not a regular file or block device,
unknown bug-check name);
3 I/O error while reading.`,
		Example: `  crashkey check MEMORY.DMP
  crashkey check --deep --expect-bugcheck MANUALLY_INITIATED_CRASH --json MEMORY.DMP
  crashkey check --modules --forbid-culprit mydriver.sys Minidump/112026-1234-01.dmp`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := dump.CheckOptions{Deep: deep}
			if cmd.Flags().Changed("expect-bugcheck") {
				code, err := dump.ParseBugCheck(expect)
				if err != nil {
					return usageErr(fmt.Errorf("check: --expect-bugcheck: %w", err))
				}
				opts.ExpectBugCheck = &code
			}
			name := args[0]
			f, info, err := hostfile.Open(name) // never blocks on a FIFO
			if err != nil {
				var kind *hostfile.KindError
				switch {
				case errors.As(err, &kind):
					return usageErr(fmt.Errorf("check: %s is %s, not a dump file; give the dump file (a regular file or block device)", name, kind.Kind))
				case errors.Is(err, os.ErrNotExist) || errors.Is(err, os.ErrPermission):
					return usageErr(fmt.Errorf("check: %w", err))
				}
				return failedErr(fmt.Errorf("check: %w", err))
			}
			defer f.Close()
			size := info.Size
			if !info.Regular { // a block device: ask it
				if size, err = f.Seek(0, io.SeekEnd); err != nil {
					return failedErr(fmt.Errorf("check: size of device %s: %w", name, err))
				}
			}
			if deep {
				bar := progress.New(cmd.ErrOrStderr(), size, "check: reading pages")
				defer bar.Finish()
				opts.Progress = bar.Func()
			}
			rep, err := dump.CheckFile(cmd.Context(), f, size, opts)
			if err != nil {
				return failedErr(fmt.Errorf("check %s: %w", name, err))
			}
			var res *analyze.Result
			if rep.Header != nil {
				if res, err = analyze.AnalyzeFile(cmd.Context(), f, size, analyze.Options{}); err != nil {
					return failedErr(fmt.Errorf("check %s: analyze: %w", name, err))
				}
			}
			out := cmd.OutOrStdout()
			if asJSON {
				err = writeJSON(out, checkJSON{rep, res})
			} else {
				err = writeCheckText(out, name, rep, res, modules)
			}
			if err != nil {
				return failedErr(fmt.Errorf("check: write report: %w", err))
			}
			if !rep.OK() {
				// The report is on stdout; one line on stderr says why the check failed.
				if rep.Verdict == dump.Corrupt {
					return noErr(fmt.Errorf("check: %s is not a valid kernel dump: %s", name, rep.Problem()))
				}
				return noErr(fmt.Errorf("check: %s: %s", name, rep.Problem()))
			}
			if msg := culprit.violation(res); msg != "" {
				return noErr(fmt.Errorf("check: %s: %s", name, msg))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVar(&deep, "deep", false, "read every page of full and bitmap dumps")
	fl.StringVar(&expect, "expect-bugcheck", "", "fail unless the dump holds this bug check: hex (0xE2, E2, 80), decimal with 0n (0n226), or a name (MANUALLY_INITIATED_CRASH)")
	fl.BoolVar(&asJSON, "json", false, "print the report as JSON")
	fl.BoolVar(&modules, "modules", false, "print the loaded modules with their symbol-server paths, and the unloaded drivers")
	fl.StringArrayVar(&culprit.expect, "expect-culprit", nil, "fail unless the probable culprit is this module (mydriver.sys or mydriver; repeatable: any of them)")
	fl.StringArrayVar(&culprit.forbid, "forbid-culprit", nil, "fail when the probable culprit is this module (repeatable)")
	return cmd
}
