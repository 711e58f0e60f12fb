package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/internal/progress"
	"github.com/crashkey/crashkey/run"
	"github.com/crashkey/crashkey/vm"
)

func init() { register(newDumpCmd) }

// Exit code of dump (and run) when the dump written is not valid.
const exitDumpInvalid = 6

type dumpReport struct {
	*run.HostDumpReport
	Error string `json:"error,omitempty"`
}

func newDumpCmd() *cobra.Command {
	var (
		tf                targetFlags
		out, format, name string
		pause, keepPaused bool
		deep, asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "dump (--qmp unix:PATH|tcp:HOST:PORT | --libvirt URI --domain NAME) [--out DIR]",
		Short: "Write the guest's memory from the host: a Windows dump (win-dmp) or an ELF core",
		Long: `dump makes QEMU write the guest's memory as a Windows full crash dump, from outside the guest:
QMP dump-guest-memory with format win-dmp, or libvirt virDomainCoreDumpWithFormat with
VIR_DOMAIN_CORE_DUMP_FORMAT_WIN_DMP. It works on a guest that no longer answers the keyboard or
NMIs. QEMU needs the guest's dump header: the guest must have QEMU's vmcoreinfo device
(-device vmcoreinfo; libvirt <features><vmcoreinfo state='on'/>) and, in Windows, virtio-win's
FwCfg driver, which publishes the header through it. Without them dump says which is missing;
--format elf writes an ELF core instead (crash, gdb, QEMU's contrib/elf2dmp read it).

The file is written by QEMU (or libvirtd) itself, so --out must be on the hypervisor's host:
dump refuses remote targets. It checks first that --out has as much free space as the guest has
RAM, has QEMU write a temporary file there and renames it into place only when the dump is
complete and checked (crashkey check; a guest that had not crashed gives bug check 0x161
LIVE_SYSTEM_DUMP, which is expected). QEMU stops the guest while it writes and resumes it;
--pause stops it first and --keep-paused leaves it stopped afterwards.

Exit codes: 0 written and valid; 1 no win-dmp dump possible for this guest (the reason and the
fix are printed; --format elf works); 2 bad input; 3 failed (connection, not enough space,
QEMU's error); 6 the file written is not a valid dump; 130 interrupted.`,
		Example: `  crashkey dump --qmp unix:/run/win11.qmp --out dumps/
  crashkey dump --libvirt qemu:///system --domain win11 --out /var/crash --pause --json
  crashkey dump --qmp unix:/run/win11.qmp --format elf --out dumps/`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			f := vm.DumpFormat(format)
			if f != vm.DumpWinDmp && f != vm.DumpELF {
				return usageErr(fmt.Errorf("dump: --format %q: want win-dmp or elf", format))
			}
			if keepPaused && !pause {
				return usageErr(errors.New("dump: --keep-paused goes with --pause"))
			}
			addr, err := tf.address()
			if err != nil {
				return err
			}
			t, err := tf.dialAddr(ctx, addr)
			if err != nil {
				return err
			}
			defer t.Close()
			stderr := cmd.ErrOrStderr()
			cfg := run.HostDumpConfig{
				Target: addr,
				OutDir: out, Name: name, Format: f, Pause: pause, KeepPaused: keepPaused, Deep: deep,
			}
			bar := progress.New(stderr, 0, "dump: QEMU writing")
			cfg.Progress = bar.Func()
			rep, err := run.HostDumpWith(ctx, t, cfg)
			bar.Finish()
			r := dumpReport{HostDumpReport: rep}
			if err != nil {
				r.Error = err.Error()
			}
			w := cmd.OutOrStdout()
			if asJSON {
				if werr := writeJSON(w, r); werr != nil {
					return failedErr(werr)
				}
			} else if rep != nil {
				printDump(w, rep)
			}
			return dumpExit(ctx.Err(), err)
		},
	}
	tf.add(cmd)
	fs := cmd.Flags()
	fs.StringVar(&out, "out", ".", "directory for the dump, on the hypervisor's host")
	fs.StringVar(&name, "name", "", "file name (default: DOMAIN-or-guest-YYYYMMDD-HHMMSS.dmp or .elf)")
	fs.StringVar(&format, "format", "win-dmp", "win-dmp (a Windows full dump) or elf (an ELF core)")
	fs.BoolVar(&pause, "pause", false, "stop the guest before the dump and resume it afterwards")
	fs.BoolVar(&keepPaused, "keep-paused", false, "with --pause: leave the guest stopped after the dump")
	fs.BoolVar(&deep, "deep", false, "read every page when checking the dump")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// dumpExit maps HostDump's error to dump's exit code.
func dumpExit(ctxErr, err error) error {
	switch {
	case err == nil:
		return nil
	case ctxErr != nil:
		return ctxErr
	case errors.Is(err, vm.ErrNoVMCoreInfo), errors.Is(err, vm.ErrNoDumpHeader),
		errors.Is(err, vm.ErrBadDumpHeader), errors.Is(err, vm.Err32BitGuest):
		return noErr(err)
	case errors.Is(err, run.ErrBadConfig), errors.Is(err, run.ErrRemoteHost):
		return usageErr(err)
	case errors.Is(err, run.ErrDumpInvalid):
		return &exitError{exitDumpInvalid, err}
	}
	return failedErr(err)
}

func printDump(w io.Writer, rep *run.HostDumpReport) {
	fmt.Fprintf(w, "target  %s\n", rep.Target)
	vmci := "absent"
	if rep.VMCoreInfo {
		vmci = "present"
	}
	fmt.Fprintf(w, "guest   %d MiB RAM, vmcoreinfo device %s\n", rep.MemoryBytes>>20, vmci)
	if rep.Output == "" {
		return
	}
	fmt.Fprintf(w, "dumped  %s (%s) in %.1fs\n", rep.Output, rep.Format, rep.Duration.Seconds())
	fmt.Fprintf(w, "size    %d bytes\nsha256  %s\n", rep.Size, rep.SHA256)
	if rep.Paused {
		if rep.Resumed {
			fmt.Fprintln(w, "guest   paused for the dump, resumed")
		} else {
			fmt.Fprintln(w, "guest   left paused (--keep-paused)")
		}
	}
	if c := rep.Check; c != nil {
		bc := dump.FormatBugCheck(c.BugCheck.Code.Value)
		if rep.Live {
			bc += ": the guest had not crashed (a live dump, as expected from the host)"
		}
		fmt.Fprintf(w, "check   %s, bug check %s\n", c.Verdict, bc)
	}
	if rep.Readers != "" {
		fmt.Fprintf(w, "format  %s\n", rep.Readers)
	}
}
