package main

import (
	"github.com/spf13/cobra"

	"github.com/crashkey/crashkey/internal/buildinfo"
)

func init() {
	register(newVersionCmd)
	rootHooks = append(rootHooks, func(root *cobra.Command) {
		root.Version = buildinfo.Read().Short()
		root.SetVersionTemplate("{{.Version}}\n")
	})
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the version, VCS revision, Go version and go-qemu/go-libvirt versions of this binary",
		Long: `Show what the Go toolchain recorded in this binary: the module version, the VCS revision
and commit time and whether the tree was modified (recorded when built from a git checkout
with -buildvcs=true, as scripts/package.sh does), the Go version and platform, and the
versions of go-qemu and go-libvirt. --version prints the one-line form.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := buildinfo.Read()
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), in)
			}
			return in.WriteText(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print as JSON")
	return cmd
}
