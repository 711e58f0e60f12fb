package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/internal/progress"
	"github.com/crashkey/crashkey/internal/termsafe"
	"github.com/crashkey/crashkey/internal/units"
	"github.com/crashkey/crashkey/pull"
	"github.com/crashkey/crashkey/run"
)

func init() { register(newPullCmd) }

type pullFlags struct {
	out, path                      string
	minidumps, list, force, share  bool
	json                           bool
	partition                      int
	dumpFile, minidumpDir, dedicat string
	maxSize                        string
	image                          imageFlags
	dom                            domainDiskFlags
}

func newPullCmd() *cobra.Command {
	var fl pullFlags
	cmd := &cobra.Command{
		Use:   "pull (IMAGE | --libvirt URI --domain NAME)",
		Short: "Copy the crash dump out of a guest's disk image (raw or qcow2), read-only",
		Long: `pull finds the crash dump inside a Windows guest's disk image and copies it out, without
writing a byte to the image. It reads raw and qcow2 images (compressed clusters, backing
chains), GPT and MBR disks (logical partitions too) and NTFS, and finds the volume that holds
\Windows by itself.

By default it pulls the newest valid dump: Windows\MEMORY.DMP, or a dump at the start of
pagefile.sys when the guest was stopped before it rebooted (cut to the length its header
gives). A triage (mini) dump at the start of pagefile.sys or the DedicatedDumpFile is taken too, as
pagefile-minidump.dmp or dedicated-minidump.dmp. --minidumps pulls the small dumps of
Windows\Minidump instead, --path any file, and --list shows every candidate. The file keeps
its name (MEMORY.DMP) in --out (created if missing); a name that is unsafe as a local file
name or longer than 255 bytes is changed to a safe, unique one (ending in ~ and 8 hex
digits), and the output says so. It is written to a temporary file and renamed into place,
and its sha256 is printed. A dump is cut to the length its header gives; an output larger
than --max-size, or than the free space of --out minus 64 MiB, is refused before writing.

Exit codes: 0 pulled or listed; 1 no dump found (or no \Windows volume); 2 bad input
(unsupported image format, unknown path or partition, output exists without --force, output
larger than --max-size, --force would replace the image, a backing file or a file QEMU holds);
3 the operation failed (I/O error, corrupt image, not enough free space, image in use by a
running QEMU).

With --libvirt URI --domain NAME it reads the disk of a libvirt domain instead: the one of its
disks that holds \Windows, as a local file when the daemon runs here, otherwise through
libvirt's storage API (only the byte ranges the reader needs travel; the disk's directory must
be a storage pool on that host). A running domain needs --force-share.`,
		Example: `  crashkey pull win.qcow2 --out dumps/
  crashkey pull win.qcow2 --list
  crashkey pull win.qcow2 --minidumps --json
  crashkey pull win.img --path 'Windows\System32\config\SYSTEM' --partition 3
  crashkey pull --libvirt qemu+ssh://admin@host7/system --domain win11 --out dumps/`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			image, err := fl.dom.image(args)
			if err != nil {
				return err
			}
			return runPull(cmd, image, fl)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&fl.out, "out", "o", "", "directory to write the file to (default: the current directory)")
	f.StringVar(&fl.path, "path", "", `pull this file instead of a dump (inside the Windows volume, e.g. 'Windows\System32\config\SYSTEM')`)
	f.BoolVar(&fl.minidumps, "minidumps", false, `pull every valid minidump (Windows\Minidump\*.dmp) instead of the full dump`)
	f.BoolVar(&fl.list, "list", false, "list every dump candidate with size, time and a header summary; pull nothing")
	f.IntVar(&fl.partition, "partition", 0, `use this partition (as numbered by --list or fdisk) instead of the one holding \Windows`)
	f.BoolVar(&fl.force, "force", false, "overwrite an existing output file (never the image, its backing files or a file a running QEMU holds)")
	f.StringVar(&fl.maxSize, "max-size", "256G", "refuse any single output larger than this (K, M, G, T suffixes; 0 for no limit)")
	f.BoolVar(&fl.share, "force-share", false, "read the image even while a running QEMU holds it (the contents may be inconsistent)")
	f.BoolVar(&fl.json, "json", false, "print the result as JSON")
	f.StringVar(&fl.dumpFile, "dump-file", "", `also look here, as the guest's CrashControl\DumpFile gives it (e.g. '%SystemRoot%\MEMORY.DMP')`)
	f.StringVar(&fl.minidumpDir, "minidump-dir", "", `also look here for minidumps, as CrashControl\MinidumpDir gives it`)
	f.StringVar(&fl.dedicat, "dedicated-dump-file", "", `also look for a dump at the start of this file, as CrashControl\DedicatedDumpFile gives it`)
	addImageFlags(cmd, &fl.image)
	fl.dom.add(cmd)
	cmd.MarkFlagsMutuallyExclusive("path", "minidumps", "list")
	return cmd
}

func runPull(cmd *cobra.Command, image string, fl pullFlags) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if fl.partition < 0 {
		return usageErr(fmt.Errorf("pull: --partition %d: partitions are numbered from 1", fl.partition))
	}
	maxSize, err := units.ParseBytes(fl.maxSize)
	if err != nil {
		return usageErr(fmt.Errorf("pull: --max-size: %w", err))
	}
	if maxSize == 0 {
		maxSize = -1 // no limit
	}
	dopts := fl.image.options(cmd.Context(), disk.Options{ForceShare: fl.share, Partition: fl.partition})
	var img *disk.Image
	if image == "" {
		var closeAll func()
		var di *run.DomainImage
		img, di, closeAll, err = fl.dom.open(cmd.Context(), stderr, fl.share, dopts)
		if err != nil {
			return pullErr(err, fl)
		}
		defer closeAll()
		if di.Remote {
			defer func() {
				fmt.Fprintf(stderr, "remote: %s read through libvirt's storage API: %d bytes downloaded, %d bytes received on the connection\n",
					di.Disk.Path, di.Volume.Fetched(), di.Volume.Storage().BytesReceived())
			}()
		}
	} else {
		img, err = disk.Open(image, dopts)
		if err != nil {
			return pullErr(err, fl)
		}
		defer img.Close()
	}
	for _, w := range img.Warnings() {
		fmt.Fprintln(stderr, "crashkey: warning: "+termsafe.String(w))
	}
	src := pull.Sources{DumpFile: fl.dumpFile, MinidumpDir: fl.minidumpDir, DedicatedDumpFile: fl.dedicat}
	if fl.list {
		return pullList(cmd.Context(), stdout, img, src, fl)
	}
	opts := pull.Options{OutDir: fl.out, Path: fl.path, Force: fl.force, MaxSize: maxSize, Sources: src}
	bar := progress.New(stderr, 0, "pull")
	opts.Progress = bar.Func()
	var results []*pull.Result
	if fl.minidumps {
		results, err = pull.PullMinidumps(cmd.Context(), img, opts)
	} else {
		var r *pull.Result
		r, err = pull.Pull(cmd.Context(), img, opts)
		if r != nil {
			results = append(results, r)
		}
	}
	bar.Finish()
	if err != nil {
		return pullErr(err, fl)
	}
	if fl.json {
		if fl.minidumps {
			return writeJSON(stdout, results)
		}
		return writeJSON(stdout, results[0])
	}
	for i, r := range results {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		printPullResult(stdout, r)
	}
	return nil
}

func printPullResult(w io.Writer, r *pull.Result) {
	fmt.Fprintf(w, "pulled  \\%s (volume %d) to %s\n", termsafe.String(r.Source), r.Volume, termsafe.String(r.Output))
	if r.Renamed != "" {
		fmt.Fprintf(w, "renamed %s\n", r.Renamed)
	}
	fmt.Fprintf(w, "size    %d bytes\n", r.Size)
	fmt.Fprintf(w, "sha256  %s\n", r.SHA256)
	if r.Candidate != nil && r.Candidate.DumpSize > 0 {
		fmt.Fprintf(w, "dump    %s\n", termsafe.String(r.Candidate.Summary))
	}
	if r.Note != "" {
		fmt.Fprintf(w, "note    %s\n", termsafe.String(r.Note))
	}
}

func pullList(ctx context.Context, w io.Writer, img *disk.Image, src pull.Sources, fl pullFlags) error {
	cands, err := pull.ListContext(ctx, img, src)
	if err != nil {
		return pullErr(err, fl)
	}
	valid := 0
	for _, c := range cands {
		if c.Valid {
			valid++
		}
	}
	fs, err := img.WindowsVolume()
	if err != nil {
		return pullErr(err, fl)
	}
	if fl.json {
		if cands == nil {
			cands = []pull.Candidate{}
		}
		return pullListJSON(w, img, fs.Volume().Index, cands, valid)
	}
	fmt.Fprintf(w, "%s: %s image, %s, %s\n", termsafe.String(img.Path()), img.Format(), img.Scheme(), units.Bytes(img.Size()))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, v := range img.Volumes() {
		mark := " "
		if v.Index == fs.Volume().Index {
			mark = "*"
		}
		what := v.TypeName
		if v.FS != "" {
			what = v.FS
			if v.Label != "" {
				what += fmt.Sprintf(" %q", v.Label)
			}
		}
		var notes []string
		if v.HasWindows {
			notes = append(notes, `has \Windows`)
		}
		if v.Logical {
			notes = append(notes, "logical")
		}
		if v.Error != "" {
			notes = append(notes, "unreadable: "+termsafe.String(v.Error))
		}
		line := fmt.Sprintf("%s volume %d\t%s\t%s", mark, v.Index, what, units.Bytes(v.Size))
		if len(notes) > 0 {
			line += "\t" + strings.Join(notes, ", ")
		}
		fmt.Fprintln(tw, line)
	}
	tw.Flush()
	fmt.Fprintln(w)
	if len(cands) == 0 {
		fmt.Fprintf(w, "no dump candidates on volume %d (no Windows\\MEMORY.DMP, pagefile.sys or Windows\\Minidump\\*.dmp)\n", fs.Volume().Index)
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "KIND\tSIZE\tMODIFIED (UTC)\tSOURCE\tSUMMARY")
		for _, c := range cands {
			fmt.Fprintf(tw, "%s\t%d\t%s\t\\%s\t%s\n", c.Kind, c.Size, modTime(c.ModTime), termsafe.String(c.Source), termsafe.String(c.Summary))
		}
		tw.Flush()
	}
	return listVerdict(cands, valid)
}

func modTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05")
}

// listVerdict is --list's exit: 0 with a valid dump; else 3 when a damaged image made a
// candidate unreadable (one error line), else 1.
func listVerdict(cands []pull.Candidate, valid int) error {
	if valid > 0 {
		return nil
	}
	if err := pull.Damage(cands); err != nil {
		return failedErr(fmt.Errorf("pull: no valid dump, because the image is damaged: %w", err))
	}
	return quietError{ExitNo}
}

// pullListJSON writes the --list --json document.
func pullListJSON(w io.Writer, img *disk.Image, volume int, cands []pull.Candidate, valid int) error {
	doc := struct {
		Image      string           `json:"image"`
		Format     string           `json:"format"`
		Scheme     string           `json:"scheme"`
		Size       int64            `json:"size"`
		Volumes    []disk.Volume    `json:"volumes"`
		Volume     int              `json:"volume"` // the volume searched
		Candidates []pull.Candidate `json:"candidates"`
	}{img.Path(), img.Format(), img.Scheme(), img.Size(), img.Volumes(), volume, cands}
	if err := writeJSON(w, doc); err != nil {
		return err
	}
	return listVerdict(cands, valid)
}

// pullErr maps library errors to exit codes. Corruption comes first: a damaged image that
// stopped the search is "corrupt image" (3), not "no dump" or "no volume".
func pullErr(err error, fl pullFlags) error {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return err
	case errors.Is(err, disk.ErrCorruptImage), errors.Is(err, disk.ErrCorruptFS), errors.Is(err, pull.ErrNoSpace):
		return failedErr(err)
	case errors.Is(err, pull.ErrNoDump):
		return noErr(err)
	case errors.Is(err, disk.ErrNoVolume) && fl.partition == 0:
		return noErr(err)
	case errors.Is(err, disk.ErrUnsupportedFormat), errors.Is(err, disk.ErrNoVolume),
		errors.Is(err, disk.ErrBadPath), errors.Is(err, pull.ErrExists), errors.Is(err, pull.ErrTooLarge), errors.Is(err, pull.ErrProtected),
		errors.Is(err, disk.ErrBackingRefused),
		errors.Is(err, fs.ErrNotExist):
		return usageErr(err)
	}
	return failedErr(err)
}
