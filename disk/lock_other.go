//go:build !linux

package disk

import "os"

// lockedByQEMU cannot query QEMU's OFD locks on this system; it reports no lock.
func lockedByQEMU(*os.File) (bool, error) { return false, nil }

func qemuLocks(*os.File) (held, written bool, err error) { return false, false, nil }
