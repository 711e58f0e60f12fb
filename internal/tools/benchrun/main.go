// Command benchrun runs a command and prints its wall-clock time in seconds and its peak
// resident set size in KiB on one line ("SECONDS MAXRSS_KIB"), for scripts/bench/pull.sh.
// Standard output of the command can be sent to a file with -o (like a shell redirect).
//
//	benchrun [-o FILE] COMMAND [ARG...]
package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	args := os.Args[1:]
	out := os.Stdout
	if len(args) >= 2 && args[0] == "-o" {
		f, err := os.Create(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchrun:", err)
			os.Exit(1)
		}
		defer f.Close()
		out, args = f, args[2:]
	}
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "usage: benchrun [-o FILE] COMMAND [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchrun:", err)
		os.Exit(1)
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	var rss int64
	if ru != nil {
		rss = ru.Maxrss // KiB on Linux
	}
	fmt.Printf("%.3f %d\n", wall.Seconds(), rss)
}
