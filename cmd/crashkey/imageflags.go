package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/disk"
)

// imageFlags are the flags every command that reads a disk image shares: --allow-backing.
type imageFlags struct {
	allow []string
}

// anyBacking is the value --allow-backing takes without =DIR.
const anyBacking = "*"

// addImageFlags registers the image flags on cmd.
func addImageFlags(cmd *cobra.Command, f *imageFlags) {
	fs := cmd.Flags()
	fs.StringArrayVar(&f.allow, "allow-backing", nil, "follow qcow2 backing files inside DIR too (--allow-backing=DIR, repeatable), or any backing file (--allow-backing alone); by default only image files next to (or below) the image, owned by its owner, are followed, and never a device, FIFO, /proc, /sys or /dev path")
	fs.Lookup("allow-backing").NoOptDefVal = anyBacking
}

// policy is the backing policy the flags give.
func (f *imageFlags) policy() disk.BackingPolicy {
	var p disk.BackingPolicy
	for _, d := range f.allow {
		if d == anyBacking || d == "" {
			p.Any = true
			continue
		}
		p.Dirs = append(p.Dirs, d)
	}
	return p
}

// options adds what the image flags say (and ctx, so that Ctrl-C ends every long walk) to o.
func (f *imageFlags) options(ctx context.Context, o disk.Options) disk.Options {
	o.AllowBacking = f.policy()
	o.Context = ctx
	return o
}
