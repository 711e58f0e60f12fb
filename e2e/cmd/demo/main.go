// Command demo boots the stand-in Windows guest for scripts/demo.sh and keeps it running until
// it is told to stop: the e2e test guest (package e2e/harness) in its "windows" mode, with a
// stand-in disk built by scripts/guest/standin-disk.sh, a pvpanic device, and reboots allowed
// (the guest reboots after writing its dump, as Windows does).
//
//	go run ./e2e/cmd/demo -disk win.qcow2 [-keyboard ps2|usb] [-ready FILE] [-dir DIR]
//
// Once the guest is ready it prints "qmp unix:PATH" on standard output (and writes the address
// to -ready FILE), then echoes what the guest reports about itself ("windows …" lines) on
// standard error, prefixed with "guest: ". It stops QEMU and removes its files on SIGINT,
// SIGTERM, when the process that started it exits (a script killed outright), when standard
// input reaches end of file (-stdin), or after -max-time.
//
// Exit codes: 0 stopped on request; 1 the guest failed to boot or QEMU died; 2 bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/crashkey/crashkey/e2e/harness"
)

// extraQMP is a second QMP monitor on 127.0.0.1:port (none for 0).
func extraQMP(port int) []string {
	if port == 0 {
		return nil
	}
	return []string{"-qmp", fmt.Sprintf("tcp:127.0.0.1:%d,server=on,wait=off", port)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	diskPath := fs.String("disk", "", "the stand-in disk (qcow2) from scripts/guest/standin-disk.sh (required)")
	keyboard := fs.String("keyboard", "ps2", "the keyboard keys go to: ps2 (Windows driver i8042prt) or usb (kbdhid, on xhci)")
	ready := fs.String("ready", "", "file to write the QMP address to once the guest is ready")
	dir := fs.String("dir", "", "working directory for QEMU's socket and logs (default: a temporary one, removed at the end)")
	memory := fs.Int("memory", 256, "guest RAM in MiB")
	maxTime := fs.Duration("max-time", 30*time.Minute, "stop the guest after this long whatever happens")
	bootTimeout := fs.Duration("boot-timeout", 3*time.Minute, "how long building the initramfs and booting may take")
	repo := fs.String("repo", "", "the crashkey repository (default: found above the working directory)")
	watchStdin := fs.Bool("stdin", false, "also stop when standard input reaches end of file")
	hostDump := fs.Bool("hostdump", false, "add QEMU's vmcoreinfo device and have the guest publish its Windows dump header (for crashkey dump)")
	qmpTCP := fs.Int("qmp-tcp", 0, "also serve QMP on 127.0.0.1:PORT (a second monitor, for a client by hand)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *diskPath == "" || fs.NArg() != 0 {
		fmt.Fprintln(stderr, "demo: -disk IMAGE is required and no arguments are taken (build the disk with scripts/guest/standin-disk.sh)")
		return 2
	}
	var kbds []harness.Keyboard
	switch *keyboard {
	case "ps2":
	case "usb":
		kbds = []harness.Keyboard{harness.USBXHCI}
	default:
		fmt.Fprintf(stderr, "demo: -keyboard %q: use ps2 or usb\n", *keyboard)
		return 2
	}
	abs, err := filepath.Abs(*diskPath)
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 2
	}
	if _, err := os.Stat(abs); err != nil {
		fmt.Fprintf(stderr, "demo: disk: %v (build it with scripts/guest/standin-disk.sh)\n", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *maxTime)
	defer cancel()
	go watchParent(ctx, cancel)
	if *watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, stdin)
			cancel()
		}()
	}

	bctx, bcancel := context.WithTimeout(ctx, *bootTimeout)
	defer bcancel()
	art, err := harness.Build(bctx, harness.BuildOptions{Log: stderr, RepoRoot: *repo})
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	g, err := harness.Start(bctx, harness.Config{
		Artifacts:     art,
		Keyboards:     kbds,
		PVPanic:       true,
		Disks:         []harness.Disk{{Path: abs, Format: format(abs)}},
		Mode:          "windows",
		AllowReboot:   true,
		MemoryMiB:     *memory,
		Dir:           *dir,
		VMCoreInfo:    *hostDump,
		PublishHeader: *hostDump,
		ExtraArgs:     extraQMP(*qmpTCP),
	})
	if err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	defer g.Stop()
	if err := g.WaitReady(bctx); err != nil {
		fmt.Fprintf(stderr, "demo: %v\n", err)
		return 1
	}
	addr := g.QMPAddr()
	if *ready != "" {
		if err := writeAtomic(*ready, addr+"\n"); err != nil {
			fmt.Fprintf(stderr, "demo: %v\n", err)
			return 1
		}
	}
	fmt.Fprintf(stdout, "qmp %s\n", addr)

	// Echo the guest's own account of itself until told to stop.
	next := 0
	for _, o := range g.Observations(0) {
		echo(stderr, o)
		next = o.Index + 1
	}
	for {
		o, err := g.WaitFor(ctx, next, func(o harness.Observation) bool {
			return o.Kind == "windows" || o.Kind == harness.KindError || o.Kind == harness.KindBoot
		})
		if err != nil {
			if errors.Is(err, harness.ErrStreamEnded) {
				fmt.Fprintf(stderr, "demo: QEMU exited: %v\n", g.ExitErr())
				return 1
			}
			return 0 // stopped on request (or -max-time)
		}
		echo(stderr, o)
		next = o.Index + 1
	}
}

// watchParent calls stop when the process that started this one exits (this process is then
// reparented, so its parent pid changes).
func watchParent(ctx context.Context, stop func()) {
	ppid := os.Getppid()
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		if os.Getppid() != ppid {
			stop()
			return
		}
	}
}

// echo prints the guest's own lines (what the stand-in Windows did), not the raw key bytes.
func echo(w io.Writer, o harness.Observation) {
	switch o.Kind {
	case "windows", harness.KindError, harness.KindBoot, harness.KindReady:
		fmt.Fprintf(w, "guest: %s\n", o.Line)
	}
}

// format is QEMU's image format for path: qcow2 by its magic, raw otherwise.
func format(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return "raw"
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err == nil && string(magic[:]) == "QFI\xfb" {
		return "qcow2"
	}
	return "raw"
}

func writeAtomic(path, data string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
