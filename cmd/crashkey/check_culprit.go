package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/dump/analyze"
)

// checkJSON is check's JSON output: the report's fields, then the analysis (modules,
// culprit, attributions, …) at the same level.
type checkJSON struct {
	*dump.Report
	*analyze.Result
}

// writeCheckText prints the report, the analysis and, with --modules, the module list.
func writeCheckText(w io.Writer, name string, rep *dump.Report, res *analyze.Result, modules bool) error {
	if err := rep.WriteText(w, name); err != nil {
		return err
	}
	if res == nil {
		return nil
	}
	if err := res.WriteText(w); err != nil {
		return err
	}
	if modules {
		return res.WriteModules(w)
	}
	return nil
}

// culpritFlags are --expect-culprit and --forbid-culprit.
type culpritFlags struct{ expect, forbid []string }

// sameModule compares a module name with a flag value, ignoring case and, when the value
// has no extension, the module's extension.
func sameModule(module, want string) bool {
	if strings.EqualFold(module, want) {
		return true
	}
	if !strings.Contains(want, ".") {
		if i := strings.LastIndexByte(module, '.'); i > 0 {
			return strings.EqualFold(module[:i], want)
		}
	}
	return false
}

// violation returns why the analysis fails the flags, or "".
func (c culpritFlags) violation(res *analyze.Result) string {
	if len(c.expect) == 0 && len(c.forbid) == 0 {
		return ""
	}
	var cul *analyze.Culprit
	if res != nil {
		cul = res.Culprit
	}
	if cul == nil {
		if len(c.expect) > 0 {
			return fmt.Sprintf("no probable culprit could be named (no address from the dump lies in a known module), expected %s", strings.Join(c.expect, " or "))
		}
		return ""
	}
	for _, f := range c.forbid {
		if sameModule(cul.Module, f) {
			return fmt.Sprintf("the probable culprit is %s, which --forbid-culprit rejects (%s)", cul.Module, cul.Evidence)
		}
	}
	if len(c.expect) == 0 {
		return ""
	}
	for _, e := range c.expect {
		if sameModule(cul.Module, e) {
			return ""
		}
	}
	return fmt.Sprintf("the probable culprit is %s, not the expected %s (%s)", cul.Module, strings.Join(c.expect, " or "), cul.Evidence)
}
