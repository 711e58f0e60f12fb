package standin

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/pull"
)

// MoveOptions control MoveDumpAtBootWith.
type MoveOptions struct {
	// Device is the whole disk Load read (a raw disk or block device).
	Device string
	// PartitionDevice is the Windows volume's own device, the one ntfscp writes to; "" derives
	// it from Device and the volume's index (/dev/vda + 2 → /dev/vda2, /dev/nvme0n1 + 2 →
	// /dev/nvme0n1p2), or uses Device itself for a bare file system (no partition table).
	PartitionDevice string
	// Ntfscp is the ntfs-3g ntfscp binary; "" looks it up in PATH.
	Ntfscp string
	// TempDir holds the dump copied out of the paging file while ntfscp runs; "" means
	// os.TempDir().
	TempDir string
}

// MoveInfo is what MoveDumpAtBoot did.
type MoveInfo struct {
	// Moved reports that a dump was copied to Dest; Reason says why not.
	Moved  bool   `json:"moved"`
	Reason string `json:"reason,omitempty"`
	// Kept reports that Dest existed and CrashControl\Overwrite=0 kept it.
	Kept bool `json:"kept,omitempty"`
	// Source is the paging file (or dedicated dump file) the dump was found in; Dest the file
	// created inside the volume (`Windows\MEMORY.DMP`, `Windows\Minidump\112026-61-01.dmp`).
	Source string `json:"source"`
	Dest   string `json:"dest,omitempty"`
	// Type, BugCheck, Size and SHA256 describe the dump (SHA256 of its Size bytes).
	Type     dump.DumpType `json:"type,omitempty"`
	BugCheck uint32        `json:"bugcheck,omitempty"`
	Size     int64         `json:"size,omitempty"`
	SHA256   string        `json:"sha256,omitempty"`
	// Verified reports that Dest was read back through the disk (package disk) and matched.
	Verified bool `json:"verified"`
	// Wiped reports that the dump header in the paging file was zeroed, so the next boot
	// does not move it again.
	Wiped bool `json:"wiped"`
}

// Line renders the result in one line for a log.
func (mv *MoveInfo) Line() string {
	if !mv.Moved && !mv.Kept {
		return fmt.Sprintf("move source=%s moved=false reason=%q wiped=%t", mv.Source, mv.Reason, mv.Wiped)
	}
	return fmt.Sprintf("move source=%s dest=%s moved=%t kept=%t type=%d bugcheck=%s size=%d sha256=%s verified=%t wiped=%t",
		mv.Source, mv.Dest, mv.Moved, mv.Kept, mv.Type, dump.FormatBugCheck(mv.BugCheck), mv.Size, mv.SHA256, mv.Verified, mv.Wiped)
}

// MoveDumpAtBoot does what SMSS does at the next boot: when the paging file (or dedicated
// dump file) of m holds a valid dump at offset 0, it copies the dump's bytes out through the
// extents on dev, creates DumpFile (Windows\MEMORY.DMP), or a file in MinidumpDir for a small
// dump, on the NTFS volume with ntfs-3g's ntfscp, reads it back, and zeroes the dump header in
// the paging file. With CrashControl\Overwrite=0 an existing DumpFile is kept (the dump is
// dropped). No dump in the paging file is not an error: MoveInfo.Moved is false with a reason.
func MoveDumpAtBoot(m *Machine, dev, ntfscp string) (*MoveInfo, error) {
	return MoveDumpAtBootWith(context.Background(), m, MoveOptions{Device: dev, Ntfscp: ntfscp})
}

// MoveDumpAtBootWith is MoveDumpAtBoot with every option.
func MoveDumpAtBootWith(ctx context.Context, m *Machine, opts MoveOptions) (*MoveInfo, error) {
	target, err := m.Target()
	if err != nil {
		return &MoveInfo{Reason: err.Error()}, nil
	}
	mv := &MoveInfo{Source: target.Path}
	fd, eio, err := openRaw(opts.Device, target, true)
	if err != nil {
		return mv, fmt.Errorf("move dump: %w", err)
	}
	defer fd.Close()
	f, err := dump.Open(eio, target.Size)
	if err != nil {
		if errors.Is(err, dump.ErrNotDump) {
			mv.Reason = fmt.Sprintf("no dump in %s", target.Path)
			return mv, nil
		}
		return mv, fmt.Errorf("move dump: %s: %w", target.Path, err)
	}
	rep, err := f.Check(ctx, dump.CheckOptions{})
	if err != nil {
		return mv, fmt.Errorf("move dump: %w", err)
	}
	mv.Type, mv.BugCheck, mv.Size = f.Type(), f.Header().BugCheckCode.Value, f.DumpSize()
	if rep.Verdict == dump.Corrupt {
		mv.Reason = fmt.Sprintf("the dump in %s is not valid (%s): left in place", target.Path, rep.Problem())
		return mv, nil
	}
	switch f.Type() {
	case dump.TypeFull, dump.TypeSummary, dump.TypeBitmapFull, dump.TypeBitmapKernel:
		mv.Dest = m.Crash.DumpPath
	case dump.TypeTriage:
		h := f.Header()
		t, _ := h.Time()
		up, _ := h.UpTime()
		mv.Dest = m.Crash.MinidumpPath + `\` + minidumpName(t, up)
	default:
		mv.Reason = fmt.Sprintf("the dump in %s is a %s dump, which SMSS does not move: left in place", target.Path, f.Type())
		return mv, nil
	}

	exists, err := volumeHas(opts.Device, m.Volume.Index, mv.Dest)
	if err != nil {
		return mv, fmt.Errorf("move dump: %w", err)
	}
	if exists && !m.Crash.Overwrite {
		mv.Kept = true
		mv.Reason = fmt.Sprintf("%s exists and CrashControl\\Overwrite=0 keeps it: the new dump is dropped", mv.Dest)
	} else {
		if err := copyOut(ctx, m, opts, eio, mv); err != nil {
			return mv, fmt.Errorf("move dump: %w", err)
		}
	}

	if _, err := eio.WriteAt(make([]byte, dump.HeaderSize64), 0); err != nil {
		return mv, fmt.Errorf("move dump: wipe the dump header in %s: %w", target.Path, err)
	}
	if err := fd.Sync(); err != nil {
		return mv, fmt.Errorf("move dump: wipe: sync %s: %w", opts.Device, err)
	}
	mv.Wiped = true
	return mv, nil
}

// copyOut copies the dump to a temporary file, creates mv.Dest with ntfscp and reads it back.
func copyOut(ctx context.Context, m *Machine, opts MoveOptions, src io.ReaderAt, mv *MoveInfo) error {
	ntfscp := opts.Ntfscp
	if ntfscp == "" {
		p, err := exec.LookPath("ntfscp")
		if err != nil {
			return fmt.Errorf("ntfscp not found in PATH: install ntfs-3g (the guest's kernel has no NTFS driver) or pass its path")
		}
		ntfscp = p
	}
	part, err := partitionDevice(m, opts)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(opts.TempDir, "MEMORY.DMP.*")
	if err != nil {
		return fmt.Errorf("temporary copy: %w", err)
	}
	defer os.Remove(tmp.Name())
	sum, err := pull.Copy(ctx, tmp, src, mv.Size, nil)
	if err != nil {
		tmp.Close()
		return fmt.Errorf("copy the dump out of %s: %w", mv.Source, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("temporary copy: %w", err)
	}
	mv.SHA256 = hex.EncodeToString(sum)

	// The whole disk and the partition are separate block devices with separate page caches:
	// drop what this process read through either before ntfs-3g writes, and after.
	flushBuffers(part)
	flushBuffers(opts.Device)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, ntfscp, "-f", part, tmp.Name(), winPath(mv.Dest))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if len(msg) > 2000 {
			msg = msg[:2000] + "…"
		}
		return fmt.Errorf("%s -f %s %s %s: %w: %s (does the folder of %s exist? ntfscp creates no folders)",
			ntfscp, part, tmp.Name(), winPath(mv.Dest), err, msg, mv.Dest)
	}
	flushBuffers(part)
	flushBuffers(opts.Device)
	mv.Moved = true

	got, size, err := volumeSum(ctx, opts.Device, m.Volume.Index, mv.Dest)
	if err != nil {
		return fmt.Errorf("read %s back: %w", mv.Dest, err)
	}
	if size != mv.Size || got != mv.SHA256 {
		return fmt.Errorf("read %s back: %d bytes with sha256 %s, but ntfscp was given %d bytes with sha256 %s", mv.Dest, size, got, mv.Size, mv.SHA256)
	}
	mv.Verified = true
	return nil
}

// partitionDevice returns the device ntfscp writes to.
func partitionDevice(m *Machine, opts MoveOptions) (string, error) {
	p := opts.PartitionDevice
	if p == "" {
		p = PartitionDevice(opts.Device, m.Scheme, m.Volume.Index)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("partition device of volume %d: %w (pass MoveOptions.PartitionDevice)", m.Volume.Index, err)
	}
	return p, nil
}

// PartitionDevice is the Linux device name of partition index on disk dev: dev itself for a
// bare file system (scheme disk.SchemeNone), dev+"p"+N when dev ends in a digit (nvme0n1,
// loop0, mmcblk0), dev+N otherwise (vda, sda).
func PartitionDevice(dev, scheme string, index int) string {
	if scheme == disk.SchemeNone {
		return dev
	}
	if dev != "" && dev[len(dev)-1] >= '0' && dev[len(dev)-1] <= '9' {
		return fmt.Sprintf("%sp%d", dev, index)
	}
	return fmt.Sprintf("%s%d", dev, index)
}

// volumeHas reports whether path exists on volume index of dev, read afresh.
func volumeHas(dev string, index int, path string) (bool, error) {
	img, err := disk.Open(dev, disk.Options{Partition: index})
	if err != nil {
		return false, err
	}
	defer img.Close()
	fs, err := img.WindowsVolume()
	if err != nil {
		return false, err
	}
	_, err = fs.Stat(path)
	if errors.Is(err, disk.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// volumeSum hashes path on volume index of dev, read afresh.
func volumeSum(ctx context.Context, dev string, index int, path string) (string, int64, error) {
	img, err := disk.Open(dev, disk.Options{Partition: index})
	if err != nil {
		return "", 0, err
	}
	defer img.Close()
	fs, err := img.WindowsVolume()
	if err != nil {
		return "", 0, err
	}
	f, err := fs.Open(path)
	if err != nil {
		return "", 0, err
	}
	sum, err := pull.Copy(ctx, io.Discard, f, f.Size(), nil)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(sum), f.Size(), nil
}

// minidumpName names a small dump as Windows does: MMDDYY-N-01.dmp, N a number that differs
// between crashes (here the uptime in seconds).
func minidumpName(t time.Time, up time.Duration) string {
	if t.IsZero() {
		t = time.Now()
	}
	return fmt.Sprintf("%s-%d-01.dmp", t.UTC().Format("010206"), int64(up/time.Second)%100000)
}
