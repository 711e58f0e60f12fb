// Command reg is the stand-in Windows guest's small userland for the QEMU guest agent, one
// binary under several names in its initramfs (e2e/harness packs it):
//
//   - reg: "reg import FILE" and "reg query KEY", closely enough for crashkey arm --apply and
//     preflight --live through the real qemu-ga. On the stand-in Windows guest
//     (crashkey.mode=windows) reg works on its disk's registry (package e2e/standin,
//     Registry): query shows the hives with the imported values on top at once, import keeps
//     the values on the disk (written with ntfscp) and the guest applies them at its next
//     boot. Elsewhere the values are kept in the state file $CRASHKEY_REG_STATE (default
//     /var/lib/crashkey/reg.json; RegState). Output and exit codes follow reg.exe: "The operation completed
//     successfully." and 0, or "ERROR: …" on stderr and 1.
//   - rm FILE…, cat FILE…: what crashkey runs on a Linux guest through guest-exec.
//   - shutdown -r …: what qemu-ga's guest-shutdown mode reboot runs: sync, then reboot.
//   - sh -c 'PROGRAM ARG…': what crashkey's exec trigger runs on a Linux guest (no shell syntax).
//   - notmyfault: asks the stand-in's /init for a bug check (SIGUSR1 to PID 1).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/crashkey/crashkey/e2e/standin"
)

func main() {
	switch filepath.Base(os.Args[0]) {
	case "rm":
		os.Exit(rm(os.Args[1:]))
	case "cat":
		os.Exit(cat(os.Args[1:]))
	case "shutdown", "reboot":
		os.Exit(shutdown(os.Args[1:]))
	case "sh":
		os.Exit(sh(os.Args[1:]))
	case "notmyfault":
		// The stand-in's /init (windows mode) bug-checks on SIGUSR1.
		if err := unix.Kill(1, unix.SIGUSR1); err != nil {
			fmt.Fprintln(os.Stderr, "notmyfault:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(run(os.Args[1:]))
}

// sh runs "sh -c 'PROGRAM ARG…'" (words split on white space, no shell syntax): what crashkey's
// exec trigger runs on a Linux guest through guest-exec.
func sh(args []string) int {
	if len(args) != 2 || args[0] != "-c" || len(strings.Fields(args[1])) == 0 {
		fmt.Fprintln(os.Stderr, "sh: only sh -c 'PROGRAM ARG…' is supported")
		return 2
	}
	words := strings.Fields(args[1])
	path, err := exec.LookPath(words[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, "sh:", err)
		return 127
	}
	if err := unix.Exec(path, words, os.Environ()); err != nil {
		fmt.Fprintln(os.Stderr, "sh:", err)
	}
	return 126
}

func rm(args []string) int {
	code := 0
	for _, a := range args {
		if a == "-f" || a == "--" {
			continue
		}
		if err := os.Remove(a); err != nil && !os.IsNotExist(err) {
			fmt.Fprintln(os.Stderr, "rm:", err)
			code = 1
		}
	}
	return code
}

func cat(args []string) int {
	for _, a := range args {
		f, err := os.Open(a)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cat:", err)
			return 1
		}
		_, err = io.Copy(os.Stdout, f)
		f.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "cat:", err)
			return 1
		}
	}
	return 0
}

func shutdown(args []string) int {
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if os.Args[0] == "reboot" || strings.Contains(" "+strings.Join(args, " ")+" ", " -r ") {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	if err := unix.Reboot(cmd); err != nil {
		fmt.Fprintln(os.Stderr, "shutdown:", err)
		return 1
	}
	return 0
}

// regStore is where reg keeps the registry: the stand-in's disk (windows mode) or a state file.
type regStore interface {
	Import(reg []byte) error
	Query(key string) (string, bool)
	save() error
}

// fileStore is a RegState in a file, without a hive below it.
type fileStore struct {
	*standin.RegState
	path string
}

func (f fileStore) save() error { return f.RegState.Save(f.path) }

// diskStore is the stand-in Windows guest's live registry: its disk's hives with the imported
// values on top, kept on the disk (standin.RegStatePath) and applied at its next boot.
type diskStore struct {
	*standin.Registry
	ntfscp string
}

func (d diskStore) save() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return d.Registry.Save(ctx, d.ntfscp, os.TempDir())
}

// openStore picks the store: $CRASHKEY_REG_STATE when set; the disk (crashkey.disk=,
// default /dev/vda) when the kernel command line says crashkey.mode=windows; otherwise
// /var/lib/crashkey/reg.json (in the initramfs: gone at the next boot).
func openStore() (regStore, error) {
	if path := os.Getenv("CRASHKEY_REG_STATE"); path != "" {
		st, err := standin.LoadRegState(path)
		return fileStore{st, path}, err
	}
	params := map[string]string{}
	if b, err := os.ReadFile("/proc/cmdline"); err == nil {
		for _, f := range strings.Fields(string(b)) {
			if k, v, ok := strings.Cut(f, "="); ok {
				params[k] = v
			}
		}
	}
	if params["crashkey.mode"] == "windows" {
		dev, ntfscp := params["crashkey.disk"], params["crashkey.ntfscp"]
		if dev == "" {
			dev = "/dev/vda"
		}
		if ntfscp == "" {
			ntfscp = "/bin/ntfscp"
		}
		r, err := standin.OpenRegistry(dev)
		return diskStore{r, ntfscp}, err
	}
	path := "/var/lib/crashkey/reg.json"
	st, err := standin.LoadRegState(path)
	return fileStore{st, path}, err
}

func run(args []string) int {
	fail := func(msg string) int { fmt.Fprintln(os.Stderr, "ERROR: "+msg); return 1 }
	if len(args) != 2 {
		return fail("Invalid syntax.\r\nType \"REG IMPORT /?\" or \"REG QUERY /?\" for usage.")
	}
	st, err := openStore()
	if err != nil {
		return fail("Error accessing the registry: " + err.Error())
	}
	switch strings.ToLower(args[0]) {
	case "import":
		b, err := os.ReadFile(args[1])
		if err != nil {
			return fail("Error opening the file. There may be a disk or file system error.")
		}
		if err := st.Import(b); err != nil {
			return fail("Error accessing the registry: " + err.Error())
		}
		if err := st.save(); err != nil {
			return fail("Error accessing the registry: " + err.Error())
		}
		fmt.Println("The operation completed successfully.")
	case "query":
		out, ok := st.Query(args[1])
		if !ok {
			fmt.Fprintln(os.Stderr, standin.RegErrNotFound)
			return 1
		}
		fmt.Print(out)
	default:
		return fail("Invalid syntax.")
	}
	return 0
}
