package dump

import (
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// bugCheckTable is a copy of the reference list of Microsoft's bug-check codes: one
// "0xXXXXXXXX NAME" pair per line, sorted by code.
//
//go:embed bugcheck-codes.txt
var bugCheckTable string

// Well-known bug-check codes.
const (
	BugCheckManuallyInitiated  uint32 = 0xE2       // MANUALLY_INITIATED_CRASH: keyboard hotkey, debugger .crash
	BugCheckNMIHardwareFailure uint32 = 0x80       // NMI_HARDWARE_FAILURE: NMI on Windows 8 / 2012 and later
	BugCheckLiveSystemDump     uint32 = 0x161      // LIVE_SYSTEM_DUMP: live dumps, QEMU win-dmp of a running guest
	BugCheckManuallyInitiated1 uint32 = 0xDEADDEAD // MANUALLY_INITIATED_CRASH1
)

// ErrUnknownBugCheck is returned by ParseBugCheck for a name that is not in the table.
var ErrUnknownBugCheck = errors.New("unknown bug check")

var bugChecks = sync.OnceValues(func() (map[uint32]string, map[string]uint32) {
	byCode := make(map[uint32]string, 400)
	byName := make(map[string]uint32, 400)
	for _, line := range strings.Split(bugCheckTable, "\n") {
		code, name, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(code, 0, 32)
		if err != nil {
			panic("dump: bad line in embedded bugcheck-codes.txt: " + line)
		}
		byCode[uint32(v)] = name
		byName[name] = uint32(v)
	}
	// 0x161 has its own documentation page and is missing from the reference list.
	byCode[BugCheckLiveSystemDump] = "LIVE_SYSTEM_DUMP"
	byName["LIVE_SYSTEM_DUMP"] = BugCheckLiveSystemDump
	return byCode, byName
})

// BugCheckName returns the symbolic name of a bug-check code, such as
// "MANUALLY_INITIATED_CRASH" for 0xE2, or "" when the code is not in Microsoft's list.
func BugCheckName(code uint32) string {
	byCode, _ := bugChecks()
	return byCode[code]
}

// BugCheckNames returns every known bug-check code, sorted.
func BugCheckNames() []uint32 {
	byCode, _ := bugChecks()
	codes := make([]uint32, 0, len(byCode))
	for c := range byCode {
		codes = append(codes, c)
	}
	sort.Slice(codes, func(i, j int) bool { return codes[i] < codes[j] })
	return codes
}

// VariantFlag marks the "_M" variants of bug checks (0x1000007E
// SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M, 0x1000008E, 0x100000EA, …): Windows reports the same
// bug check with this bit set when the crash went through a different path in the kernel.
const VariantFlag uint32 = 0x10000000

// BaseBugCheck returns the bug check a flagged "_M" variant stands for: for a code whose top
// nibble is exactly VariantFlag and whose remaining bits name a known bug check, that bug check
// (0x7E for 0x1000007E), with ok true. Every other code is its own base (ok false).
func BaseBugCheck(code uint32) (base uint32, ok bool) {
	if code&0xF0000000 != VariantFlag {
		return code, false
	}
	b := code &^ VariantFlag
	if b == 0 || BugCheckName(b) == "" {
		return code, false
	}
	return b, true
}

// BugCheckMatches reports whether a dump holding bug check got satisfies an expectation of
// want: the same code, or a flagged "_M" variant of want (expecting 0x7E accepts 0x7E and
// 0x1000007E; expecting 0x1000007E accepts only 0x1000007E).
func BugCheckMatches(want, got uint32) bool {
	if got == want {
		return true
	}
	base, ok := BaseBugCheck(got)
	return ok && base == want
}

// FormatBugCheck renders a code as "0x000000E2 (MANUALLY_INITIATED_CRASH)", or just the hex
// code when its name is unknown. A flagged variant also names its base:
// "0x1000007E (SYSTEM_THREAD_EXCEPTION_NOT_HANDLED_M; base 0x0000007E
// SYSTEM_THREAD_EXCEPTION_NOT_HANDLED)".
func FormatBugCheck(code uint32) string {
	n := BugCheckName(code)
	if base, ok := BaseBugCheck(code); ok {
		if n == "" {
			n = BugCheckName(base) + "_M"
		}
		return fmt.Sprintf("0x%08X (%s; base 0x%08X %s)", code, n, base, BugCheckName(base))
	}
	if n != "" {
		return fmt.Sprintf("0x%08X (%s)", code, n)
	}
	return fmt.Sprintf("0x%08X", code)
}

// ParseBugCheck parses a bug-check code given in hex, with or without a prefix ("0xE2", "E2",
// "80", "0x000000E2"), as decimal with WinDbg's 0n prefix ("0n226"), or as a name matched
// case-insensitively ("manually_initiated_crash"). NAME_M is the flagged variant of NAME
// ("IRQL_NOT_LESS_OR_EQUAL_M" is 0x1000000A), whether or not Microsoft's list names it.
func ParseBugCheck(s string) (uint32, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("bug check: empty code: give a hex code like 0xE2 or a name like MANUALLY_INITIATED_CRASH: %w", ErrUnknownBugCheck)
	}
	lower := strings.ToLower(t)
	// Bug checks are always quoted in hex ("0x80", "E2"), so bare digits are hex too;
	// WinDbg's 0n prefix marks decimal.
	digits, base := lower, 16
	switch {
	case strings.HasPrefix(lower, "0x"):
		digits = lower[2:]
	case strings.HasPrefix(lower, "0n"):
		digits, base = lower[2:], 10
	}
	if digits != "" && !strings.ContainsAny(digits, "+-_") {
		if v, err := strconv.ParseUint(digits, base, 32); err == nil {
			return uint32(v), nil
		}
	}
	_, byName := bugChecks()
	upper := strings.ToUpper(t)
	if v, ok := byName[upper]; ok {
		return v, nil
	}
	// NAME_M is the flagged variant of any known bug check, listed or not.
	if b, ok := strings.CutSuffix(upper, "_M"); ok {
		if v, ok := byName[b]; ok && v&0xF0000000 == 0 && v != 0 {
			return v | VariantFlag, nil
		}
	}
	return 0, fmt.Errorf("bug check: %q is neither a hex code (0xE2, E2, 0n226 for decimal) nor a known name (MANUALLY_INITIATED_CRASH): %w", s, ErrUnknownBugCheck)
}
