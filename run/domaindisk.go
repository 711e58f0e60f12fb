package run

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/vm"
)

// DomainImage says which disk of a libvirt domain OpenDomainImage opened and how.
type DomainImage struct {
	// Disk is the domain's disk, as its XML gives it.
	Disk vm.DomainDisk `json:"disk"`
	// Remote is true when the bytes came through libvirt's storage API (the daemon is not
	// on this machine), false for a local file.
	Remote bool `json:"remote"`
	// Volume reads the disk when Remote (its Fetched count says how much travelled).
	Volume *vm.Volume `json:"-"`
}

// OpenDomainImage finds the disk of a libvirt domain that holds \Windows (the only disk, or
// the first whose volumes include the Windows one; with opts.Partition, the first disk) and
// opens it read-only: a local file when the daemon runs here, else through libvirt's storage
// API (virStorageVolDownload by byte ranges, behind a bounded cache), backing files of a
// qcow2 image resolved through the daemon's pools too. A disk in no storage pool is refused
// with the virsh commands that define one.
func OpenDomainImage(ctx context.Context, t vm.Target, opts disk.Options) (*disk.Image, *DomainImage, error) {
	st, err := vm.OpenStorage(t)
	if err != nil {
		return nil, nil, err
	}
	all, err := st.Disks(ctx)
	if err != nil {
		return nil, nil, err
	}
	var disks []vm.DomainDisk
	var skipped []string
	for _, d := range all {
		switch {
		case d.Device != "disk":
			skipped = append(skipped, d.Target+" ("+d.Device+")")
		case d.Type != "file" && d.Type != "block" && d.Type != "volume":
			skipped = append(skipped, fmt.Sprintf("%s (%s source %s: crashkey reads file, block and volume disks)", d.Target, d.Type, d.Path))
		default:
			disks = append(disks, d)
		}
	}
	if len(disks) == 0 {
		msg := fmt.Sprintf("%s has no disk crashkey can read", t.Describe())
		if len(skipped) > 0 {
			msg += ": " + strings.Join(skipped, ", ")
		}
		return nil, nil, errors.New(msg + "; give the image with --disk")
	}
	if opts.Context == nil {
		opts.Context = ctx
	}
	var errs []error
	for i, d := range disks {
		img, di, err := openDomainDisk(ctx, st, d, opts)
		if err != nil {
			if errors.Is(err, vm.ErrNoPool) || len(disks) == 1 {
				return nil, nil, err
			}
			errs = append(errs, err)
			continue
		}
		if len(disks) == 1 || opts.Partition != 0 || i == len(disks)-1 && len(errs) == 0 {
			return img, di, nil
		}
		if _, err := img.WindowsVolume(); err == nil {
			return img, di, nil
		}
		img.Close()
		errs = append(errs, fmt.Errorf("disk %s (%s): no Windows volume", d.Target, d.Path))
	}
	return nil, nil, fmt.Errorf("%s: no disk holds \\Windows: %w", t.Describe(), errors.Join(errs...))
}

func openDomainDisk(ctx context.Context, st *vm.Storage, d vm.DomainDisk, opts disk.Options) (*disk.Image, *DomainImage, error) {
	di := &DomainImage{Disk: d}
	if st.Local() && d.Type != "volume" {
		img, err := disk.Open(d.Path, opts)
		return img, di, err
	}
	var vol *vm.Volume
	var err error
	if d.Type == "volume" {
		vol, err = st.OpenPoolVolume(ctx, d.Pool, d.Volume, vm.VolumeOptions{})
	} else {
		vol, err = st.OpenVolume(ctx, d.Path, vm.VolumeOptions{})
	}
	if err != nil {
		return nil, nil, err
	}
	di.Remote, di.Volume = true, vol
	opts.Resolver = volumeResolver{ctx: ctx, st: st}
	img, err := disk.OpenSource(vol, opts)
	if err != nil {
		vol.Close()
		return nil, nil, err
	}
	return img, di, nil
}

// volumeResolver opens the backing files of a remote qcow2 image through the daemon's pools.
type volumeResolver struct {
	ctx context.Context
	st  *vm.Storage
}

func (r volumeResolver) Backing(of disk.Source, name string) (disk.Source, error) {
	p := name
	if !path.IsAbs(p) {
		p = path.Join(path.Dir(of.Name()), p)
	}
	if strings.Contains(name, "://") || strings.HasPrefix(name, "json:") {
		return nil, fmt.Errorf("%w: %s names a network backing file %q", disk.ErrBackingRefused, of.Name(), name)
	}
	return r.st.OpenVolume(r.ctx, p, vm.VolumeOptions{})
}
