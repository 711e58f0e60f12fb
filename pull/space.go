package pull

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/internal/hostfile"
	"github.com/crashkey/crashkey/internal/units"
)

var (
	// ErrTooLarge: an output would be larger than Options.MaxSize.
	ErrTooLarge = errors.New("output too large")
	// ErrNoSpace: an output would not fit the free space of the output file system (minus
	// SpaceMargin).
	ErrNoSpace = errors.New("not enough free space")
	// ErrProtected: Force would replace a file of the image's backing chain or one a running
	// QEMU holds.
	ErrProtected = errors.New("output would replace a protected file")
)

// checkSpace refuses, before anything is written, an output of size bytes that would not
// leave SpaceMargin free on dir's file system.
func checkSpace(dir string, size int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("pull: free space of %s: %w", dir, err)
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	if st.Bavail > uint64(1<<62)/uint64(max(st.Bsize, 1)) {
		free = 1 << 62
	}
	if size > free-SpaceMargin {
		return fmt.Errorf("pull: %w: the output needs %d bytes (%s) but %s has %s free, and %s must stay free; free some space or choose another --out",
			ErrNoSpace, size, units.Bytes(size), dir, units.Bytes(max(free, 0)), units.Bytes(SpaceMargin))
	}
	return nil
}

// mayReplace refuses to let Force replace out when it is a file of img's backing chain (the
// same file, by device and inode, whatever its path) or a file a running QEMU holds.
func mayReplace(out string, img *disk.Image) error {
	st, err := os.Stat(out)
	if err != nil {
		return nil // nothing to replace (or not ours to judge: the rename will say)
	}
	for i, c := range img.Chain() {
		if !c.Same(st) {
			continue
		}
		what := "the disk image itself"
		if i > 0 {
			what = "a backing file of the disk image (" + c.Name + ")"
		}
		return fmt.Errorf("pull: %w: %s is %s; choose another --out directory", ErrProtected, out, what)
	}
	if f, _, err := hostfile.Open(out); err == nil {
		held, _, err := hostfile.QEMULocks(f)
		_ = f.Close()
		if err == nil && held {
			return fmt.Errorf("pull: %w: %s is held by a running QEMU (a disk image in use?); choose another --out directory", ErrProtected, out)
		}
	}
	return nil
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`!*?[](){}<>|&;#~") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
