package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/fleet"
	"github.com/crashkey/crashkey/internal/termsafe"
	"github.com/crashkey/crashkey/run"
	"github.com/crashkey/crashkey/vm"
)

func init() { register(newRunCmd) }

func newRunCmd() *cobra.Command {
	var (
		tf                   targetFlags
		hk                   hotkeyFlags
		img                  imageFlags
		agent, diskPath, out string
		trigger, method      string
		expect               string
		partition            int
		stopAfter, force     bool
		overwrite, deep      bool
		asJSON               bool
		timeout, crashTO     time.Duration
		poll, stepTO         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "run (--qmp ADDR | --libvirt URI --domain NAME) [--disk IMAGE] [--trigger keys|nmi|exec:CMD|keys,nmi,dump] [hotkey flags]",
		Short: "The whole job: preflight, trigger the crash, watch it, pull the dump and check it",
		Long: `run does the whole job, as CI on Windows VMs and admins use it:
 1. preflight --disk IMAGE (when given) and stop early with the fix when the hotkey cannot fire on
    the keyboard QEMU routes keys to, or when dumps are disabled;
 2. make sure the dump gets written: QMP panic action none (on libvirt: report what on_crash does);
 3. trigger: the exact key sequence (default), an NMI, or exec:CMD run by the QEMU guest agent
    (--agent unix:PATH for QMP targets; libvirt uses the domain's agent);
 4. watch GUEST_PANICKED, GUEST_CRASHLOADED, RESET, SHUTDOWN, STOP and the guest agent;
 5. after the guest reboots, poll the disk (read-only) until a complete new dump is there and pull
    it; with --stop-after-crash the guest's reboot pauses the VM instead and the dump is pulled from
    pagefile.sys;
 6. check the dump (--expect-bugcheck, default: 0xE2 for keys, 0x80 for nmi) and report every step.

The escalation ladder for hung guests: --trigger keys,nmi,dump tries each rung in turn and moves
on when no crash arrives within --step-timeout (default 1m) or, after a crash, no dump appears
within it. dump is the last resort: the hypervisor writes the guest's memory as a Windows dump
(as crashkey dump does; the guest needs the vmcoreinfo device and virtio-win's FwCfg driver).
A keys rung the preflight says cannot fire is skipped. The report says what each rung saw
and which one worked.

` + fleetHelp + `

Exit codes: 0 the guest crashed and its dump is valid with the expected bug check (or, without
--disk, the crash was seen); 1 preflight: the guest is not armed for this trigger (nothing was
sent); 2 bad input; 3 the hypervisor or the disk could not be used; 4 no crash seen before the
timeout; 5 crashed, but no dump found; 6 the dump is invalid or holds another bug check;
130 interrupted.`,
		Example: `  crashkey run --qmp unix:/run/win11.qmp --disk /var/lib/win11.qcow2
  crashkey run --libvirt qemu:///system --domain win11 --disk /var/lib/libvirt/images/win11.qcow2 --trigger nmi
  crashkey run --qmp unix:/run/win11.qmp --disk win11.qcow2 --hotkey lshift+rshift+d --stop-after-crash --json
  crashkey run --libvirt 'qemu+ssh://admin@host7/system' --domain win11 --out dumps/   # the disk found through libvirt
  crashkey run --targets fleet.txt --parallel 4 --out dumps/ --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !tf.isFleet() {
				if _, err := tf.address(); err != nil {
					return err
				}
			} else if diskPath != "" {
				return usageErr(errors.New("--disk names one image, but several targets are given: put disk=IMAGE on the lines of --targets FILE (libvirt domains find their own disks)"))
			}
			ladder, err := run.ParseLadder(trigger)
			if err != nil {
				return usageErr(fmt.Errorf("--trigger: %w", err))
			}
			trig := ladder[0]
			hasKeys := false
			for _, t := range ladder {
				hasKeys = hasKeys || t.Kind == run.TriggerKeys
			}
			if len(ladder) == 1 && trig.Kind != run.TriggerDump {
				ladder = nil
			}
			if !hasKeys && hk.set(cmd) {
				return usageErr(fmt.Errorf("hotkey flags go with --trigger keys, not %s", trig))
			}
			h, err := hk.hotkey(cmd)
			if err != nil {
				return err
			}
			if method != "events" && method != "chord" {
				return usageErr(fmt.Errorf("--method %q: want events or chord", method))
			}
			base := run.Config{
				Agent: agent, Partition: partition, AllowBacking: img.policy(), Trigger: trig, Hotkey: h,
				Chord: method == "chord", Force: force, StopAfterCrash: stopAfter, Timeout: timeout,
				CrashTimeout: crashTO, Poll: poll, OutDir: out, Overwrite: overwrite, Deep: deep,
				Ladder: ladder, StepTimeout: stepTO,
			}
			base.VM.Timeout = tf.rpcTimeout
			if expect != "" {
				code, err := dump.ParseBugCheck(expect)
				if err != nil {
					return usageErr(fmt.Errorf("--expect-bugcheck: %w", err))
				}
				base.ExpectBugCheck = &code
			}
			fleetMode := tf.isFleet()
			return runTargets(cmd, &tf, asJSON, timeout+time.Minute, func(ctx context.Context, ft fleet.Target, w io.Writer) (string, error) {
				cfg := base
				cfg.Target = ft.Addr
				cfg.Disk = diskPath
				if ft.Disk != "" {
					cfg.Disk = ft.Disk
				}
				if fleetMode {
					// One directory per target: every guest's dump is called MEMORY.DMP.
					cfg.OutDir = filepath.Join(out, targetDir(ft.Addr))
				} else if !asJSON {
					cfg.OnStep = func(s run.Step) {
						fmt.Fprintf(cmd.ErrOrStderr(), "crashkey run: %-10s %-8s %s\n", s.Name, s.Status, termsafe.String(s.Detail))
					}
				}
				rep, err := run.Run(ctx, cfg)
				if errors.Is(err, run.ErrBadConfig) {
					return "", usageErr(err)
				}
				if rep == nil {
					return "", failedErr(err)
				}
				if asJSON {
					if werr := writeJSON(w, rep); werr != nil {
						return rep.Summary, werr
					}
				} else if werr := rep.WriteText(w); werr != nil {
					return rep.Summary, werr
				}
				if ctx.Err() != nil && cmd.Context().Err() != nil {
					return rep.Summary, cmd.Context().Err()
				}
				if code := rep.ExitCode(); code != 0 {
					return string(rep.Outcome) + ": " + rep.Summary, quietError{code}
				}
				return string(rep.Outcome) + ": " + rep.Summary, nil
			})
		},
	}
	tf.add(cmd)
	hk.add(cmd)
	addImageFlags(cmd, &img)
	f := cmd.Flags()
	f.StringVar(&agent, "agent", "", "QEMU guest agent socket for --trigger exec:CMD on a QMP target (unix:PATH)")
	f.StringVar(&diskPath, "disk", "", "the guest's disk image (raw or qcow2): preflight it and pull the dump from it (read-only)")
	f.IntVar(&partition, "partition", 0, "the Windows volume's partition number (default: found by itself)")
	f.StringVar(&trigger, "trigger", "keys", "keys (the hotkey), nmi, exec:COMMAND (run in the guest by the guest agent), or a ladder tried in turn: keys,nmi,dump (dump: the hypervisor writes the guest's memory)")
	f.DurationVar(&stepTO, "step-timeout", run.DefaultStepTimeout, "with a ladder: how long each rung waits for a crash, and then for its dump, before the next is tried")
	f.StringVar(&method, "method", "events", "events (exact down/up events) or chord (one send-key chord, to see what a chord does)")
	f.StringVar(&expect, "expect-bugcheck", "", "fail unless the dump holds this bug check (default: 0xE2 for keys, 0x80 for nmi)")
	f.BoolVar(&stopAfter, "stop-after-crash", false, "pause the VM when the guest reboots after writing its dump, and pull the dump from pagefile.sys")
	f.BoolVar(&force, "force", false, "go on when the guest is not running or the preflight says the hotkey cannot fire")
	f.BoolVar(&overwrite, "overwrite", false, "overwrite an existing dump file in --out")
	f.BoolVar(&deep, "deep", false, "read every page of the dump when checking it")
	f.StringVar(&out, "out", ".", "directory the dump is written to")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "bound on the whole job")
	f.DurationVar(&crashTO, "crash-timeout", 2*time.Minute, "how long to wait for the crash after the trigger")
	f.DurationVar(&poll, "poll", 2*time.Second, "how often the disk is read while waiting for the dump")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// targetDir names a fleet target's output directory: the domain and its host
// ("win11@host7", "win11@local"), or the QMP socket's address.
func targetDir(a vm.Address) string {
	name := a.QMP
	if a.LibvirtURI != "" {
		host := "local"
		if u, err := vm.ParseLibvirtURI(a.LibvirtURI); err == nil && u.Host != "" {
			host = u.Host
			if u.Port != "" {
				host += "-" + u.Port
			}
		}
		name = a.Domain + "@" + host
	}
	b := []byte(strings.TrimPrefix(strings.TrimPrefix(name, "unix:"), "/"))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '@') {
			b[i] = '_'
		}
	}
	return string(b)
}
