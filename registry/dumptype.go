package registry

import (
	"fmt"
	"strings"
)

// DumpType is a crash dump type as Windows' "System failure" settings name it. It maps to
// CrashControl\CrashDumpEnabled (and FilterPages for the active memory dump).
type DumpType string

// The dump types of CrashControl\CrashDumpEnabled (windows-crash.md §5).
const (
	DumpNone      DumpType = "none"      // CrashDumpEnabled 0 (or absent): no dump is written
	DumpComplete  DumpType = "complete"  // CrashDumpEnabled 1: all physical memory
	DumpKernel    DumpType = "kernel"    // CrashDumpEnabled 2: kernel memory
	DumpSmall     DumpType = "small"     // CrashDumpEnabled 3: a minidump in MinidumpDir
	DumpAutomatic DumpType = "automatic" // CrashDumpEnabled 7: kernel dump, pagefile grown as needed
	DumpActive    DumpType = "active"    // CrashDumpEnabled 1 and FilterPages 1
)

// DumpTypes lists the types crashkey arm accepts.
var DumpTypes = []DumpType{DumpKernel, DumpComplete, DumpAutomatic, DumpActive, DumpSmall}

// ParseDumpType accepts the name of a dump type that writes a dump.
func ParseDumpType(s string) (DumpType, error) {
	for _, d := range DumpTypes {
		if strings.EqualFold(s, string(d)) {
			return d, nil
		}
	}
	return "", fmt.Errorf("unknown dump type %q: use kernel, complete, automatic, active or small", s)
}

// CrashDumpEnabled is the CrashControl\CrashDumpEnabled value that selects d.
func (d DumpType) CrashDumpEnabled() uint32 {
	switch d {
	case DumpComplete, DumpActive:
		return 1
	case DumpKernel:
		return 2
	case DumpSmall:
		return 3
	case DumpAutomatic:
		return 7
	}
	return 0
}

// WritesMemoryDump reports whether d writes MEMORY.DMP (every type but none and small).
func (d DumpType) WritesMemoryDump() bool {
	switch d {
	case DumpComplete, DumpKernel, DumpAutomatic, DumpActive:
		return true
	}
	return false
}

func dumpTypeOf(enabled uint32, filterPages bool) DumpType {
	switch enabled {
	case 0:
		return DumpNone
	case 1:
		if filterPages {
			return DumpActive
		}
		return DumpComplete
	case 2:
		return DumpKernel
	case 3:
		return DumpSmall
	case 7:
		return DumpAutomatic
	}
	return DumpType(fmt.Sprintf("unknown (CrashDumpEnabled %d)", enabled))
}
