package standin

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	gold "github.com/crashkey/crashkey/internal/golden"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/hid"
	"github.com/crashkey/crashkey/registry"
)

func TestLoad(t *testing.T) {
	type drv struct {
		present, armed bool
		source, hotkey string
	}
	tests := []struct {
		name       string
		args       []string
		product    string
		client     bool
		drivers    map[hid.Driver]drv
		typ        registry.DumpType
		autoReboot bool
		overwrite  bool
		pagefile   int64
	}{
		{
			name: "default", args: nil, product: "ServerNT",
			drivers: map[hid.Driver]drv{
				hid.I8042prt: {true, true, "CrashOnCtrlScroll", "RCtrl+ScrollLock"},
				hid.Kbdhid:   {true, true, "CrashOnCtrlScroll", "RCtrl+ScrollLock"},
				hid.Hyperkbd: {false, false, "none", ""},
			},
			typ: registry.DumpKernel, autoReboot: true, overwrite: true, pagefile: 4 << 20,
		},
		{
			// kbdhid armed for a custom hotkey; i8042prt is installed but not armed, so on a
			// client it falls back to the built-in default hotkey.
			name: "client custom kbdhid", args: []string{"--hotkey", "lshift+rshift+d", "--driver", "kbdhid", "--client", "--dump-type", "complete", "--no-autoreboot", "--no-overwrite"},
			product: "WinNT", client: true,
			drivers: map[hid.Driver]drv{
				hid.I8042prt: {true, true, "built-in default", "LShift+RShift+Grave"},
				hid.Kbdhid:   {true, true, "crashdump", "LShift+RShift+D"},
				hid.Hyperkbd: {false, false, "none", ""},
			},
			typ: registry.DumpComplete, pagefile: 4 << 20,
		},
		{
			// A server has no built-in hotkey: the driver that is not armed has none.
			name: "server ps2 only", args: []string{"--driver", "i8042prt", "--dump-type", "none", "--pagefile-mib", "4"},
			product: "ServerNT",
			drivers: map[hid.Driver]drv{
				hid.I8042prt: {true, true, "CrashOnCtrlScroll", "RCtrl+ScrollLock"},
				hid.Kbdhid:   {true, false, "none", ""},
				hid.Hyperkbd: {false, false, "none", ""},
			},
			typ: registry.DumpNone, autoReboot: true, overwrite: true, pagefile: 4 << 20,
		},
		{
			name: "all drivers active dump", args: []string{"--driver", "all", "--dump-type", "active", "--hotkey", "rctrl+space"},
			product: "ServerNT",
			drivers: map[hid.Driver]drv{
				hid.I8042prt: {true, true, "crashdump", "RCtrl+Space"},
				hid.Kbdhid:   {true, true, "crashdump", "RCtrl+Space"},
				hid.Hyperkbd: {true, true, "crashdump", "RCtrl+Space"},
			},
			typ: registry.DumpActive, autoReboot: true, overwrite: true, pagefile: 4 << 20,
		},
	}
	dir := t.TempDir()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := tc.args
			if !strings.Contains(strings.Join(args, " "), "--pagefile-mib") {
				args = append(args, "--pagefile-mib", "4")
			}
			path := makeDisk(t, dir, "disk"+string(rune('a'+i))+".raw", args...)
			m, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if m.Format != disk.FormatRaw || m.Scheme != disk.SchemeGPT || m.Volume.Index != 1 || m.Volume.Start != 1<<20 {
				t.Errorf("disk: format %s scheme %s volume %d at %d; want raw gpt 1 at 1 MiB", m.Format, m.Scheme, m.Volume.Index, m.Volume.Start)
			}
			if m.ControlSet != 1 || m.ProductType != tc.product || m.Client != tc.client {
				t.Errorf("control set %d product %q client %t; want 1 %q %t", m.ControlSet, m.ProductType, m.Client, tc.product, tc.client)
			}
			for d, want := range tc.drivers {
				got := m.Driver(d)
				if got.Present != want.present || got.Armed != want.armed || got.Source != want.source || got.Hotkey != want.hotkey {
					t.Errorf("%s: present %t armed %t source %q hotkey %q; want %t %t %q %q (reason %q)",
						d, got.Present, got.Armed, got.Source, got.Hotkey, want.present, want.armed, want.source, want.hotkey, got.Reason)
				}
			}
			c := m.Crash
			if c.Type != tc.typ || c.AutoReboot != tc.autoReboot || c.Overwrite != tc.overwrite {
				t.Errorf("crash: type %s autoreboot %t overwrite %t; want %s %t %t", c.Type, c.AutoReboot, c.Overwrite, tc.typ, tc.autoReboot, tc.overwrite)
			}
			if c.DumpPath != `Windows\MEMORY.DMP` || c.MinidumpPath != `Windows\Minidump` {
				t.Errorf("dump paths %q %q", c.DumpPath, c.MinidumpPath)
			}
			if m.Pagefile == nil {
				t.Fatalf("no pagefile; problems %v", m.Problems)
			}
			if m.Pagefile.Path != "pagefile.sys" || m.Pagefile.Size != tc.pagefile {
				t.Errorf("pagefile %s", m.Pagefile)
			}
			var sum int64
			for _, e := range m.Pagefile.Extents {
				if e.Sparse || e.DiskOffset < m.Volume.Start || e.DiskOffset+e.Length > m.Volume.Start+m.Volume.Size {
					t.Errorf("extent %+v is not inside the volume", e)
				}
				sum += e.Length
			}
			if sum != m.Pagefile.Size {
				t.Errorf("extents cover %d of %d bytes", sum, m.Pagefile.Size)
			}
			if tgt, err := m.Target(); err != nil || tgt != m.Pagefile {
				t.Errorf("Target() = %v, %v; want the pagefile", tgt, err)
			}
			if (tc.typ == registry.DumpNone) != strings.Contains(strings.Join(m.Problems, "\n"), "CrashDumpEnabled is 0") {
				t.Errorf("problems %q", m.Problems)
			}
		})
	}
}

func TestLinesGolden(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"default", []string{"--pagefile-mib", "4"}},
		{"client-kbdhid-small", []string{"--pagefile-mib", "4", "--client", "--driver", "kbdhid", "--hotkey", "0x02/0x3d", "--dump-type", "small", "--no-autoreboot"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := makeDisk(t, dir, tc.name+".raw", tc.args...)
			m, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			got := strings.ReplaceAll(strings.Join(m.Lines(), "\n")+"\n", path, "DISK")
			gold.CheckString(t, filepath.Join("testdata", tc.name+".golden"), got)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(filepath.Join(dir, "missing.raw")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	empty := filepath.Join(dir, "zeros.raw")
	if err := os.WriteFile(empty, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(empty); err == nil || !errors.Is(err, disk.ErrNoVolume) && !errors.Is(err, disk.ErrPartitionTable) {
		t.Errorf("blank disk: %v", err)
	}

	// An NTFS volume with \Windows but no SYSTEM hive.
	needTools(t)
	vol := filepath.Join(dir, "nohive.ntfs")
	if err := os.WriteFile(vol, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(vol, 8<<20); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"mkntfs", "-T", "-F", "-Q", "-q", "-c", "4096", "-s", "512", vol},
		{filepath.Join(toolDir, "ntfshelper"), "mkdir", vol, "Windows"},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	if _, err := Load(vol); !errors.Is(err, registry.ErrNoSystemHive) {
		t.Errorf("volume without a hive: %v, want ErrNoSystemHive", err)
	}
}

func TestPartitionDevice(t *testing.T) {
	for _, tc := range []struct {
		dev, scheme string
		index       int
		want        string
	}{
		{"/dev/vda", disk.SchemeGPT, 1, "/dev/vda1"},
		{"/dev/sdb", disk.SchemeMBR, 5, "/dev/sdb5"},
		{"/dev/nvme0n1", disk.SchemeGPT, 2, "/dev/nvme0n1p2"},
		{"/dev/loop0", disk.SchemeGPT, 1, "/dev/loop0p1"},
		{"/dev/vdb", disk.SchemeNone, 1, "/dev/vdb"},
		{"vol.ntfs", disk.SchemeNone, 1, "vol.ntfs"},
	} {
		if got := PartitionDevice(tc.dev, tc.scheme, tc.index); got != tc.want {
			t.Errorf("PartitionDevice(%q, %s, %d) = %q, want %q", tc.dev, tc.scheme, tc.index, got, tc.want)
		}
	}
}
