package registry

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/crashkey/crashkey/hid"
)

// TestReadVersion reads the SOFTWARE fixtures (made by testdata/software/build.sh with
// hivexregedit) and checks every field against hivexget, the independent reader.
func TestReadVersion(t *testing.T) {
	for _, tc := range []struct {
		name, family, line string
		build              int
		server             bool
	}{
		{"win7", "Windows 7", `Windows 7 ("Windows 7 Professional", Professional), build 7601, Client`, 7601, false},
		{"win81", "Windows 8.1", `Windows 8.1 ("Windows 8.1 Pro", Professional), build 9600.20445, Client`, 9600, false},
		{"win10", "Windows 10", `Windows 10 ("Windows 10 Pro", Professional), 22H2, build 19045.3803, Client`, 19045, false},
		{"win11", "Windows 11", `Windows 11 ("Windows 10 Enterprise", Enterprise), 23H2, build 22631.2861, Client`, 22631, false},
		{"server2019", "Windows Server 2019", `Windows Server 2019 ("Windows Server 2019 Standard", ServerStandard), 1809, build 17763.5329, Server`, 17763, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := "testdata/SOFTWARE-" + tc.name
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			v, err := ReadVersion(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			if v.Build() != tc.build || v.Family() != tc.family || v.Server() != tc.server || v.String() != tc.line {
				t.Errorf("build %d, family %q, server %v, line %q", v.Build(), v.Family(), v.Server(), v.String())
			}
			for name, got := range map[string]string{"ProductName": v.ProductName, "EditionID": v.EditionID, "DisplayVersion": v.DisplayVersion,
				"ReleaseId": v.ReleaseID, "CurrentBuild": v.CurrentBuild, "InstallationType": v.InstallationType, "CurrentVersion": v.CurrentVersion} {
				want, ok := hivexget(t, path, `\Microsoft\Windows NT\CurrentVersion`, name)
				if !ok {
					want = ""
				}
				if got != want {
					t.Errorf("%s = %q, hivexget says %q", name, got, want)
				}
			}
		})
	}
	b, _ := os.ReadFile("testdata/SYSTEM-crashcontrol")
	if _, err := ReadVersion(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrNotSoftwareHive) {
		t.Errorf("a SYSTEM hive as SOFTWARE: %v", err)
	}
}

// versionCase writes a SYSTEM hive (product type, no hotkey values, dumps on, CrashControl
// as given) with the SOFTWARE fixture beside it, and preflights the pair.
func versionCase(t *testing.T, product, software string, extra ...string) *Report {
	t.Helper()
	regs := append([]string{baseReg(product), reg(cs1(`Control\CrashControl`), `"CrashDumpEnabled"=dword:00000002`)}, extra...)
	hive := buildHive(t, regs...)
	if software != "" {
		b, err := os.ReadFile("testdata/SOFTWARE-" + software)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(filepath.Dir(hive), "SOFTWARE"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Preflight(context.Background(), hive, PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func hasProblem(r *Report, id string, sev Severity) *Problem {
	for i, p := range r.Problems {
		if p.ID == id && p.Severity == sev {
			return &r.Problems[i]
		}
	}
	return nil
}

// TestVersionDecidesBuiltinDefault: the built-in 0x11/1 hotkey counts only on client
// Windows 10 and later; an unarmed Windows 7 or 8.1 client is not ready, with the arm command
// as the fix; the NMI advice follows the version.
func TestVersionDecidesBuiltinDefault(t *testing.T) {
	for _, tc := range []struct {
		software, product string
		ready, builtin    bool
		nmi               string
	}{
		{"win7", "WinNT", false, false, "an NMI does NOT bug-check: Windows 7 (before Windows 8) needs CrashControl\\NMICrashDump=1"},
		{"win81", "WinNT", false, false, "Windows 8.1 is Windows 8 / Server 2012 or later: no setting needed"},
		{"win10", "WinNT", true, true, "Windows 10 is Windows 8"},
		{"win11", "WinNT", true, true, "Windows 11 is Windows 8"},
		{"server2019", "ServerNT", false, false, "Windows Server 2019 is Windows 8"},
		{"", "WinNT", true, true, "on Windows 8 / Server 2012 and later, no setting needed"},
	} {
		t.Run(tc.software+"-"+tc.product, func(t *testing.T) {
			r := versionCase(t, tc.product, tc.software)
			if r.OK != tc.ready || r.BuiltinDefault != tc.builtin || !strings.Contains(r.Dump.NMI, tc.nmi) {
				t.Fatalf("ok %v, builtin %v, NMI %q; problems %q", r.OK, r.BuiltinDefault, r.Dump.NMI, problemIDs(r))
			}
			if tc.builtin {
				if p := hasProblem(r, "hotkey-builtin", SeverityWarning); p == nil || !strings.Contains(p.Message, "Microsoft does not document") {
					t.Errorf("no warning about the undocumented default: %q", problemIDs(r))
				}
			} else {
				p := hasProblem(r, "hotkey-none", SeverityError)
				if p == nil || !strings.HasPrefix(p.Fix, "crashkey arm") || r.Fix == "" {
					t.Fatalf("no hotkey-none error with the arm fix: %+v", r.Problems)
				}
				if tc.product == "WinNT" && !strings.Contains(p.Message, "has no built-in default hotkey (only Windows 10 and later clients have one)") {
					t.Errorf("message: %s", p.Message)
				}
			}
			hk := r.Drivers[2]
			if tc.product == "WinNT" && strings.Contains(hk.Reason, "server SKU") {
				t.Errorf("a client's hyperkbd line speaks of a server SKU: %s", hk.Reason)
			}
			if (tc.software == "") != (hasProblem(r, "version-unknown", SeverityWarning) != nil) || (tc.software == "") != (r.Windows == nil) {
				t.Errorf("version %+v, problems %q", r.Windows, problemIDs(r))
			}
			var text strings.Builder
			if err := r.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			want := "windows: version unknown (no SOFTWARE hive beside "
			if r.Windows != nil {
				want = "windows: " + r.Windows.String()
			}
			if !strings.Contains(text.String(), want) {
				t.Errorf("report lacks %q:\n%s", want, text.String())
			}
		})
	}
	// NMICrashDump=1 makes an NMI work on Windows 7.
	r := versionCase(t, "WinNT", "win7", reg(cs1(`Control\CrashControl`), `"NMICrashDump"=dword:00000001`))
	if !strings.Contains(r.Dump.NMI, "Windows 7 needs NMICrashDump=1, and it is 1") {
		t.Errorf("NMI: %s", r.Dump.NMI)
	}
	// A Windows 7 client armed explicitly is ready.
	r = versionCase(t, "WinNT", "win7", armReg(t, ArmOptions{}))
	if !r.OK || r.Drivers[0].Source != "CrashOnCtrlScroll" {
		t.Errorf("armed Windows 7: %q", problemIDs(r))
	}
	// The hotkey answer follows the version too.
	h := hid.Hotkey{}
	if hk, err := hid.ParseHotkey("lshift+rshift+grave"); err == nil {
		h = hk
	}
	hive := buildHive(t, baseReg("WinNT"))
	s, err := ReadHiveFile(hive)
	if err != nil {
		t.Fatal(err)
	}
	for _, sw := range []string{"win7", "win10"} {
		b, _ := os.ReadFile("testdata/SOFTWARE-" + sw)
		if s.Version, err = ReadVersion(bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
		r := Check(s, CheckOptions{Hotkey: &h})
		if r.Hotkey.PS2.Fires != (sw == "win10") || r.Hotkey.USB.Fires != (sw == "win10") {
			t.Errorf("%s: %s fires %+v", sw, h, r.Hotkey)
		}
	}
}

// TestPreflightImageVersion: preflight reads SOFTWARE from the image next to SYSTEM.
func TestPreflightImageVersion(t *testing.T) {
	hive := buildHive(t, baseReg("WinNT"), armReg(t, ArmOptions{}))
	img := ntfsImage(t, map[string]string{"SYSTEM": hive, "SOFTWARE": "testdata/SOFTWARE-win7"})
	r, err := Preflight(context.Background(), img, PreflightOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Windows == nil || r.Windows.Family() != "Windows 7" || r.VersionUnknown != "" || !r.OK {
		t.Fatalf("windows %+v (%s), problems %q", r.Windows, r.VersionUnknown, problemIDs(r))
	}
}

// FuzzReadVersion: arbitrary bytes in a SOFTWARE fixture never panic the reader, and what it
// returns prints as valid UTF-8.
func FuzzReadVersion(f *testing.F) {
	for _, n := range []string{"win7", "win10", "server2019"} {
		b, err := os.ReadFile("testdata/SOFTWARE-" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ReadVersion(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		if s := v.String(); !utf8.ValidString(s) || len(s) > 2000 {
			t.Fatalf("line %q", s)
		}
		_ = v.Family()
	})
}

// FuzzVersionValues: any value strings give a bounded, printable line and a sane build.
func FuzzVersionValues(f *testing.F) {
	f.Add("Windows 10 Pro", "Professional", "22H2", "19045", "Client")
	f.Add("", "ServerStandard", "", "99999999999999999999", "Server Core")
	f.Fuzz(func(t *testing.T, product, edition, display, build, inst string) {
		v := &WindowsVersion{ProductName: cleanString(product), EditionID: cleanString(edition), DisplayVersion: cleanString(display),
			CurrentBuild: cleanString(build), InstallationType: cleanString(inst)}
		if b := v.Build(); b < 0 || b >= 1<<24 {
			t.Fatalf("build %d", b)
		}
		if s := v.String(); len(s) > 4000 || strings.ContainsAny(s, "\n\r\x00") {
			t.Fatalf("line %q", s)
		}
	})
}
