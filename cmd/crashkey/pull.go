package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/crashkey/crashkey/disk"
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
gives). --minidumps pulls the small dumps of Windows\Minidump instead, --path any file, and
--list shows every candidate. The file keeps its name (MEMORY.DMP) in --out, is written to a
temporary file and renamed into place, and its sha256 is printed.

Exit codes: 0 pulled or listed; 1 no dump found; 2 bad input (unsupported image format,
unknown path or partition, output exists without --force); 3 the operation failed (I/O error,
corrupt image, image in use by a running QEMU).

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
	f.BoolVar(&fl.force, "force", false, "overwrite an existing output file")
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
	opts := fl.image.options(cmd.Context(), disk.Options{ForceShare: fl.share, Partition: fl.partition})
	var img *disk.Image
	var err error
	if image == "" {
		var closeAll func()
		var di *run.DomainImage
		img, di, closeAll, err = fl.dom.open(cmd.Context(), stderr, fl.share, opts)
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
		img, err = disk.Open(image, opts)
		if err != nil {
			return pullErr(err, fl)
		}
		defer img.Close()
	}
	for _, w := range img.Warnings() {
		fmt.Fprintln(stderr, "crashkey: warning: "+w)
	}
	src := pull.Sources{DumpFile: fl.dumpFile, MinidumpDir: fl.minidumpDir, DedicatedDumpFile: fl.dedicat}
	if fl.list {
		return pullList(stdout, img, src, fl)
	}
	popts := pull.Options{OutDir: fl.out, Path: fl.path, Force: fl.force, Sources: src}
	bar := newPullProgress(stderr)
	if bar != nil {
		popts.Progress = bar.update
	}
	var results []*pull.Result
	if fl.minidumps {
		results, err = pull.PullMinidumps(cmd.Context(), img, popts)
	} else {
		var r *pull.Result
		r, err = pull.Pull(cmd.Context(), img, popts)
		if r != nil {
			results = append(results, r)
		}
	}
	bar.finish()
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
	fmt.Fprintf(w, "pulled  \\%s (volume %d) to %s\n", r.Source, r.Volume, r.Output)
	fmt.Fprintf(w, "size    %d bytes\n", r.Size)
	fmt.Fprintf(w, "sha256  %s\n", r.SHA256)
	if r.Candidate != nil && r.Candidate.DumpSize > 0 {
		fmt.Fprintf(w, "dump    %s\n", r.Candidate.Summary)
	}
	if r.Note != "" {
		fmt.Fprintf(w, "note    %s\n", r.Note)
	}
}

func pullList(w io.Writer, img *disk.Image, src pull.Sources, fl pullFlags) error {
	cands, err := pull.List(img, src)
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
	fmt.Fprintf(w, "%s: %s image, %s, %s\n", img.Path(), img.Format(), img.Scheme(), units.Bytes(img.Size()))
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
			notes = append(notes, "unreadable: "+v.Error)
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
			fmt.Fprintf(tw, "%s\t%d\t%s\t\\%s\t%s\n", c.Kind, c.Size, c.ModTime.UTC().Format("2006-01-02 15:04:05"), c.Source, c.Summary)
		}
		tw.Flush()
	}
	if valid == 0 {
		return quietError{ExitNo}
	}
	return nil
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
	if valid == 0 {
		return quietError{ExitNo}
	}
	return nil
}

// pullErr maps library errors to exit codes.
func pullErr(err error, fl pullFlags) error {
	var ee *exitError
	switch {
	case errors.As(err, &ee):
		return err
	case errors.Is(err, pull.ErrNoDump):
		return noErr(err)
	case errors.Is(err, disk.ErrNoVolume) && fl.partition == 0:
		return noErr(err)
	case errors.Is(err, disk.ErrUnsupportedFormat), errors.Is(err, disk.ErrNoVolume),
		errors.Is(err, disk.ErrBadPath), errors.Is(err, pull.ErrExists), errors.Is(err, disk.ErrBackingRefused),
		errors.Is(err, fs.ErrNotExist):
		return usageErr(err)
	}
	return failedErr(err)
}

// pullProgress draws a one-line progress bar on a terminal.
type pullProgress struct {
	w     io.Writer
	start time.Time
	last  time.Time
}

func newPullProgress(w io.Writer) *pullProgress {
	f, ok := w.(*os.File)
	if !ok {
		return nil
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return nil
	}
	return &pullProgress{w: w, start: time.Now()}
}

func (p *pullProgress) update(done, total int64) {
	now := time.Now()
	if now.Sub(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = now
	frac := 1.0
	if total > 0 {
		frac = float64(done) / float64(total)
	}
	const width = 30
	n := int(frac * width)
	rate := float64(done) / (1 << 20) / max(now.Sub(p.start).Seconds(), 1e-3)
	fmt.Fprintf(p.w, "\r[%s%s] %5.1f%%  %d/%d MiB  %.0f MiB/s ", strings.Repeat("=", n), strings.Repeat(" ", width-n),
		frac*100, done>>20, total>>20, rate)
}

func (p *pullProgress) finish() {
	if p != nil && !p.last.IsZero() {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
