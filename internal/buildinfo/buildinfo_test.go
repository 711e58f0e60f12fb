package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.25.3",
		Main:      debug.Module{Path: "github.com/crashkey/crashkey", Version: "v1.2.0"},
		Deps: []*debug.Module{
			{Path: GoQEMU, Version: "v0.0.0-20250212194115-ee9b0668d242"},
			{Path: GoLibvirt, Version: "v0.0.1", Replace: &debug.Module{Path: "../go-libvirt", Version: ""}},
			{Path: "github.com/spf13/cobra", Version: "v1.10.2"},
		},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "2bdae25aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
			{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	in := FromBuildInfo(bi)
	if in.Version != "v1.2.0" || in.Revision != "2bdae25aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" || in.Time != "2026-12-01T10:00:00Z" || !in.Modified {
		t.Errorf("got %+v", in)
	}
	if in.GoQEMU != "v0.0.0-20250212194115-ee9b0668d242" || !strings.Contains(in.GoLibvirt, "replaced by ../go-libvirt") {
		t.Errorf("deps: qemu %q libvirt %q", in.GoQEMU, in.GoLibvirt)
	}
	if got := in.Short(); !strings.HasPrefix(got, "crashkey v1.2.0 (2bdae25aaaaa+dirty, 2026-12-01T10:00:00Z) go1.25.3 ") {
		t.Errorf("Short = %q", got)
	}
	if in := FromBuildInfo(nil); in.Version != "(unknown)" || in.Revision != "" || in.GoVersion == "" {
		t.Errorf("nil build info: %+v", in)
	}
	if in := FromBuildInfo(&debug.BuildInfo{}); in.Version != "(devel)" {
		t.Errorf("empty version: %q", in.Version)
	}
}
