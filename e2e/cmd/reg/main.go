// Command reg is the stand-in Windows guest's small userland for the QEMU guest agent, one
// binary under several names in its initramfs (e2e/harness packs it):
//
//   - reg: "reg import FILE" and "reg query KEY", closely enough for crashkey arm --apply and
//     preflight --live through the real qemu-ga. The imported values are kept in the state
//     file $CRASHKEY_REG_STATE (default /var/lib/crashkey/reg.json; package e2e/standin,
//     RegState). Output and exit codes follow reg.exe: "The operation completed
//     successfully." and 0, or "ERROR: …" on stderr and 1.
//   - rm FILE…, cat FILE…: what crashkey runs on a Linux guest through guest-exec.
//   - shutdown -r …: what qemu-ga's guest-shutdown mode reboot runs: sync, then reboot.
//   - sh -c 'PROGRAM ARG…': what crashkey's exec trigger runs on a Linux guest (no shell syntax).
//   - notmyfault: asks the stand-in's /init for a bug check (SIGUSR1 to PID 1).
package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

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

func run(args []string) int {
	path := os.Getenv("CRASHKEY_REG_STATE")
	if path == "" {
		path = "/var/lib/crashkey/reg.json"
	}
	fail := func(msg string) int { fmt.Fprintln(os.Stderr, "ERROR: "+msg); return 1 }
	if len(args) != 2 {
		return fail("Invalid syntax.\r\nType \"REG IMPORT /?\" or \"REG QUERY /?\" for usage.")
	}
	st, err := standin.LoadRegState(path)
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
		if err := st.Save(path); err != nil {
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
