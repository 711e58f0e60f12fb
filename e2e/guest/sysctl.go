package main

import (
	"fmt"
	"os"
)

// applySysctls turns kernel command-line options into sysctl writes.
func applySysctls(p params) error {
	if p.flag("crashkey.panic_on_nmi") {
		if err := writeSysctl("/proc/sys/kernel/unknown_nmi_panic", "1"); err != nil {
			return err
		}
	}
	return nil
}

func writeSysctl(path, value string) error {
	if err := os.WriteFile(path, []byte(value), 0); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
