// Command reg is the stand-in Windows guest's reg.exe: "reg import FILE" and "reg query KEY",
// closely enough for crashkey arm --apply and preflight --live through the real qemu-ga. The
// imported values are kept in the state file $CRASHKEY_REG_STATE (default
// /var/lib/crashkey/reg.json; package e2e/standin, RegState). Output and exit codes follow
// reg.exe: "The operation completed successfully." and 0, or "ERROR: …" on stderr and 1.
package main

import (
	"fmt"
	"os"

	"github.com/crashkey/crashkey/e2e/standin"
)

func main() { os.Exit(run(os.Args[1:])) }

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
	switch args[0] {
	case "import", "IMPORT":
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
	case "query", "QUERY":
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
