package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/internal/hivetest"
)

const (
	armedHive = "../../registry/testdata/SYSTEM-crashcontrol"
	emptyHive = "../../registry/testdata/hivex-minimal"
)

// diskImage copies one of package disk's fixture images to a temporary directory (a QEMU
// holding the shared fixture would make it read as "in use") and returns its path.
func diskImage(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../disk/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPreflightGolden(t *testing.T) {
	gptImage := diskImage(t, "gpt.qcow2")
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"hive-ok", []string{"preflight", armedHive}, ExitOK},
		{"hive-custom-hotkey", []string{"preflight", armedHive, "--hotkey", "lshift+rshift+d"}, ExitNo},
		{"image-json", []string{"preflight", gptImage, "--dump1keys", "rctrl", "--dump2key", "125", "--memory", "2048", "--json"}, ExitOK},
		{"hive-layout-de", []string{"preflight", armedHive, "--layout", "de", "--hotkey", "lshift+rshift+z"}, ExitNo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCrashkey(t, tc.args...)
			if code != tc.code || errOut != "" {
				t.Fatalf("exit %d (want %d), stderr %q", code, tc.code, errOut)
			}
			checkGolden(t, "preflight/"+tc.name+".golden", strings.ReplaceAll(out, gptImage, "IMAGE"))
		})
	}
}

// TestPreflightWindowsVersion: with the SOFTWARE hive of a Windows 7 client beside the
// SYSTEM hive, preflight shows the version, goes by its InstallationType (the fixture has no
// ProductType) and says that an NMI needs NMICrashDump there.
func TestPreflightWindowsVersion(t *testing.T) {
	dir := t.TempDir()
	for src, dst := range map[string]string{armedHive: "SYSTEM", "../../registry/testdata/SOFTWARE-win7": "SOFTWARE"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, dst), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	hive := filepath.Join(dir, "SYSTEM")
	out, errOut, code := runCrashkey(t, "preflight", hive)
	if code != ExitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
	}
	checkGolden(t, "preflight/hive-win7.golden", strings.ReplaceAll(out, hive, "HIVE"))
	out, _, code = runCrashkey(t, "preflight", "--json", hive)
	var r struct {
		Client         bool   `json:"client"`
		BuiltinDefault bool   `json:"builtinDefault"`
		WindowsSummary string `json:"windowsSummary"`
		WindowsBuild   int    `json:"windowsBuild"`
		Windows        struct {
			ProductName, InstallationType string
		} `json:"windows"`
		Dump struct{ NMI string } `json:"dump"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != ExitOK {
		t.Fatalf("exit %d, %v", code, err)
	}
	if !r.Client || r.BuiltinDefault || r.WindowsBuild != 7601 || r.Windows.ProductName != "Windows 7 Professional" ||
		!strings.HasPrefix(r.WindowsSummary, "Windows 7 (") || !strings.Contains(r.Dump.NMI, "NMICrashDump=1") {
		t.Errorf("report %+v", r)
	}
}

// TestPreflightNoWindows: an image with no \Windows volume is a "no" (exit 1), as for
// pull --list; with --partition naming a volume without the hive it is bad input.
func TestPreflightNoWindows(t *testing.T) {
	img := diskImage(t, "tiny.qcow2")
	for _, args := range [][]string{{"preflight", img}, {"preflight", "--json", img}, {"pull", "--list", img}} {
		out, errOut, code := runCrashkey(t, args...)
		if code != ExitNo || out != "" || !strings.Contains(errOut, `has a \Windows directory`) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
	if _, _, code := runCrashkey(t, "preflight", img, "--partition", "1"); code != ExitUsage {
		t.Errorf("--partition 1: exit %d", code)
	}
}

func TestPreflightJSONContract(t *testing.T) {
	out, _, code := runCrashkey(t, "preflight", "--json", armedHive, "--hotkey", "lshift+rshift+d")
	if code != ExitNo {
		t.Fatalf("exit %d", code)
	}
	var r struct {
		OK      bool   `json:"ok"`
		Fix     string `json:"fix"`
		Drivers []struct {
			Driver, Hotkey, Registry, Source string
			Armed                            bool
		} `json:"drivers"`
		Hotkey struct {
			PS2, USB struct {
				Fires  bool
				Reason string
			}
		} `json:"hotkey"`
		Problems []struct{ ID, Severity, Message, Fix string } `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.OK || r.Hotkey.PS2.Fires || r.Hotkey.USB.Fires || !strings.HasPrefix(r.Fix, "crashkey arm --hotkey shift+shift_r+d --dump-type active >") {
		t.Errorf("report: %+v", r)
	}
	if len(r.Drivers) != 3 || r.Drivers[1].Driver != "kbdhid" || r.Drivers[1].Registry != "0x02/0x7d" || r.Drivers[1].Source != "CrashOnCtrlScroll" {
		t.Errorf("drivers: %+v", r.Drivers)
	}
	if len(r.Problems) < 2 || r.Problems[0].ID != "hotkey-ps2" || r.Problems[0].Fix != r.Fix {
		t.Errorf("problems: %+v", r.Problems)
	}
}

func TestPreflightUsageErrors(t *testing.T) {
	gptImage, noHiveDisk := diskImage(t, "gpt.qcow2"), diskImage(t, "base.qcow2")
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"missing image", []string{"preflight", filepath.Join(t.TempDir(), "win.qcow2")}, ExitUsage, "no such file or directory"},
		{"no argument", []string{"preflight"}, ExitUsage, "no image: give IMAGE, or --libvirt URI --domain NAME"},
		{"image and libvirt", []string{"preflight", armedHive, "--libvirt", "qemu:///system", "--domain", "w"}, ExitUsage, "not both"},
		{"bad libvirt uri", []string{"preflight", "--libvirt", "qemu+ssh://h/system?keyfil=x", "--domain", "w"}, ExitUsage, "unknown parameter keyfil="},
		{"not a SYSTEM hive", []string{"preflight", emptyHive}, ExitUsage, "not a SYSTEM hive: no Select key"},
		{"no SYSTEM on the volume", []string{"preflight", noHiveDisk}, ExitUsage, "no SYSTEM hive"},
		{"no such partition", []string{"preflight", gptImage, "--partition", "7"}, ExitUsage, "no such volume"},
		{"bad hotkey", []string{"preflight", armedHive, "--hotkey", "rctrl+lshift"}, ExitUsage, "is a modifier"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runCrashkey(t, tc.args...)
			if code != tc.code || out != "" {
				t.Fatalf("exit %d, stdout %q; want exit %d and no output", code, out, tc.code)
			}
			if !strings.HasPrefix(errOut, "crashkey: ") || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, tc.msg) {
				t.Errorf("stderr %q: want one line saying %q", errOut, tc.msg)
			}
		})
	}
}

// armedHiveFile merges the .reg of "crashkey arm ARGS --control-set 1" into a fresh server
// hive with Debian's hivexregedit and returns the hive's path.
func armedHiveFile(t *testing.T, armArgs ...string) string {
	t.Helper()
	hx, err := exec.LookPath("hivexregedit")
	if err != nil {
		t.Fatal("hivexregedit is missing: run scripts/deps.sh")
	}
	dir := t.TempDir()
	hive := filepath.Join(dir, "SYSTEM")
	src, err := os.ReadFile(emptyHive)
	if err != nil {
		t.Fatal(err)
	}
	base := "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\Select]\r\n\"Current\"=dword:00000001\r\n\r\n" +
		"[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001]\r\n\r\n[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control]\r\n\r\n" +
		"[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\ProductOptions]\r\n\"ProductType\"=\"ServerNT\"\r\n\r\n"
	if err := os.WriteFile(hive, src, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "base.reg"), []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	regFile := filepath.Join(dir, "arm.reg")
	if _, errOut, code := runCrashkey(t, append(append([]string{"arm"}, armArgs...), "--control-set", "1", "-o", regFile)...); code != 0 {
		t.Fatalf("arm: exit %d: %s", code, errOut)
	}
	for _, f := range []string{"base.reg", "arm.reg"} {
		if out, err := exec.Command(hx, "--merge", "--prefix", `HKEY_LOCAL_MACHINE\SYSTEM`, hive, filepath.Join(dir, f)).CombinedOutput(); err != nil {
			t.Fatalf("hivexregedit --merge %s: %v\n%s", f, err, out)
		}
	}
	return hive
}

// TestArmPreflightRoundTrip: crashkey arm's .reg for an offline control set, merged into a
// hive with Debian's hivexregedit, makes crashkey preflight answer yes for that hotkey.
func TestArmPreflightRoundTrip(t *testing.T) {
	hive := armedHiveFile(t, "--hotkey", "rctrl+space", "--dedicated-dump-file", `C:\dd.sys`)
	out, errOut, code := runCrashkey(t, "preflight", hive, "--hotkey", "rctrl+space")
	if code != ExitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errOut, out)
	}
	for _, want := range []string{"PS/2 (i8042prt): fires", "USB  (kbdhid): fires", "DedicatedDumpFile C:\\dd.sys", "verdict: ready"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if _, _, code := runCrashkey(t, "preflight", hive); code != ExitOK {
		t.Errorf("without --hotkey: exit %d", code)
	}
	if _, _, code := runCrashkey(t, "preflight", hive, "--hotkey", "rctrl+scroll"); code != ExitNo {
		t.Errorf("asking for RCtrl+ScrollLock on a guest armed for RCtrl+Space: exit %d, want 1", code)
	}
}

// freeCell copies the armed fixture with the key (nk) or value (vk) cell named name marked
// unallocated.
func freeCell(t *testing.T, sig, name string) string {
	t.Helper()
	b, err := os.ReadFile(armedHive)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = hivetest.FreeCell(b, sig, name); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "SYSTEM")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPreflightDamagedHive: damage the checks do not need is a warning (exit 0), damage of
// a keyboard driver's keys makes its hotkey unknown (exit 1), and only a hive whose Select
// key is unreadable fails the command (exit 3).
func TestPreflightDamagedHive(t *testing.T) {
	for _, tc := range []struct {
		name, sig, cell string
		code            int
		out, errOut     string
	}{
		{"elsewhere", "vk", "LogEvent", ExitOK, "warning hive-damage: some values of Control\\CrashControl cannot be read", ""},
		{"kbdhid", "nk", "kbdhid", ExitNo, "error   hotkey-damaged: whether kbdhid has a crash hotkey is unknown", ""},
		{"select", "nk", "Select", ExitFailed, "", "is not allocated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hive := freeCell(t, tc.sig, tc.cell)
			out, errOut, code := runCrashkey(t, "preflight", hive)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.errOut) || (tc.errOut == "") != (errOut == "") {
				t.Fatalf("exit %d (want %d), stderr %q\n%s", code, tc.code, errOut, out)
			}
			if tc.name == "elsewhere" {
				checkGolden(t, "preflight/hive-damaged.golden", strings.ReplaceAll(out, hive, "HIVE"))
			}
		})
	}
}
