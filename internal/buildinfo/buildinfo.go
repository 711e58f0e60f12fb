// Package buildinfo reads what the Go toolchain recorded in the running binary: the module
// version, the VCS revision and time, whether the tree was modified, the Go version, and the
// versions of the libraries that speak to hypervisors (go-qemu, go-libvirt).
package buildinfo

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
)

// Module paths whose versions Info reports.
const (
	GoQEMU    = "github.com/digitalocean/go-qemu"
	GoLibvirt = "github.com/digitalocean/go-libvirt"
)

// Info is what the binary knows about its own build.
type Info struct {
	// Path is the main module's path.
	Path string `json:"path"`
	// Version is the main module's version: a tag ("v1.2.0"), a pseudo-version, or
	// "(devel)" for a build from a checkout.
	Version string `json:"version"`
	// Revision is the VCS commit ("" when built without VCS stamping, e.g. -buildvcs=false).
	Revision string `json:"revision"`
	// Time is the commit time in RFC 3339 ("" when unknown).
	Time string `json:"time"`
	// Modified is true when the working tree had uncommitted changes.
	Modified bool `json:"modified"`
	// GoVersion is the toolchain that built the binary.
	GoVersion string `json:"go_version"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
	// Deps are the versions of go-qemu and go-libvirt ("" when not linked in).
	GoQEMU    string `json:"go_qemu"`
	GoLibvirt string `json:"go_libvirt"`
}

// Set with -ldflags -X by scripts/package.sh, for builds the Go toolchain cannot stamp itself
// (a git worktree, whose .git is a file, gets no vcs.* settings). The toolchain's own
// settings win when present.
var (
	stampedRevision string
	stampedTime     string
	stampedModified string
)

// Read returns the running binary's build info.
func Read() Info {
	bi, _ := debug.ReadBuildInfo()
	in := FromBuildInfo(bi)
	if in.Revision == "" && stampedRevision != "" {
		in.Revision, in.Time, in.Modified = stampedRevision, stampedTime, stampedModified == "true"
	}
	return in
}

// FromBuildInfo extracts Info from bi (nil gives only the Go version and platform).
func FromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Version: "(unknown)"}
	if bi == nil {
		return in
	}
	in.Path, in.Version = bi.Main.Path, bi.Main.Version
	if in.Version == "" {
		in.Version = "(devel)"
	}
	if bi.GoVersion != "" {
		in.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v = d.Replace.Version + " (replaced by " + d.Replace.Path + ")"
		}
		switch d.Path {
		case GoQEMU:
			in.GoQEMU = v
		case GoLibvirt:
			in.GoLibvirt = v
		}
	}
	return in
}

// Short is the one-line form: "crashkey v1.2.0 (abc1234, 2026-12-01T10:00:00Z) go1.25.3 linux/amd64".
func (in Info) Short() string {
	s := "crashkey " + in.Version
	if in.Revision != "" {
		rev := in.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if in.Modified {
			rev += "+dirty"
		}
		s += " (" + rev
		if in.Time != "" {
			s += ", " + in.Time
		}
		s += ")"
	}
	return s + " " + in.GoVersion + " " + in.Platform
}

// WriteText writes the multi-line form.
func (in Info) WriteText(w io.Writer) error {
	orNone := func(s string) string {
		if s == "" {
			return "(not recorded)"
		}
		return s
	}
	_, err := fmt.Fprintf(w, "crashkey    %s\nmodule      %s\nrevision    %s\ntime        %s\nmodified    %t\ngo          %s\nplatform    %s\ngo-qemu     %s\ngo-libvirt  %s\n",
		in.Version, orNone(in.Path), orNone(in.Revision), orNone(in.Time), in.Modified, in.GoVersion, in.Platform,
		orNone(in.GoQEMU), orNone(in.GoLibvirt))
	return err
}
