package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// SoftwareHivePath is where the SOFTWARE hive lives inside the Windows volume.
const SoftwareHivePath = `Windows\System32\config\SOFTWARE`

// currentVersionKey is the key of the SOFTWARE hive that names the Windows version.
const currentVersionKey = `Microsoft\Windows NT\CurrentVersion`

// Windows builds that decide what preflight expects.
const (
	// BuildWindows8 is Windows 8 / Server 2012: an NMI bug-checks with 0x80 without
	// CrashControl\NMICrashDump from here on.
	BuildWindows8 = 9200
	// BuildWindows10 is the first Windows 10 build (1507): only client builds from here on
	// can have the keyboard drivers' built-in default hotkey.
	BuildWindows10 = 10240
	// BuildWindows11 is the first Windows 11 build (21H2).
	BuildWindows11 = 22000
)

// WindowsVersion is what the SOFTWARE hive's Microsoft\Windows NT\CurrentVersion says about
// the installed Windows. Absent values are empty (or nil).
type WindowsVersion struct {
	// ProductName is as stored ("Windows 10 Pro"; Windows 11 still stores "Windows 10 …").
	ProductName string `json:"productName,omitempty"`
	// EditionID: "Professional", "Enterprise", "ServerStandard", …
	EditionID string `json:"editionID,omitempty"`
	// DisplayVersion ("22H2", Windows 10 20H2 and later) or ReleaseId ("1909", earlier
	// Windows 10).
	DisplayVersion string `json:"displayVersion,omitempty"`
	ReleaseID      string `json:"releaseId,omitempty"`
	// CurrentVersion is the NT version ("6.1" Windows 7, "6.3" Windows 8.1 and, frozen, all
	// later ones).
	CurrentVersion string `json:"currentVersion,omitempty"`
	// CurrentBuild and CurrentBuildNumber are the build number as stored ("19045").
	CurrentBuild       string `json:"currentBuild,omitempty"`
	CurrentBuildNumber string `json:"currentBuildNumber,omitempty"`
	// UBR is the update build revision (the number after the build's dot).
	UBR *uint32 `json:"ubr,omitempty"`
	// InstallationType: "Client", "Server", "Server Core" (Windows 7 / 2008 R2 and later).
	InstallationType string `json:"installationType,omitempty"`
	// Anomalies lists values that exist but could not be used.
	Anomalies []string `json:"anomalies,omitempty"`
	// Hive describes the SOFTWARE hive file (and its log replay).
	Hive *HiveInfo `json:"hive,omitempty"`
}

// Build is the build number (CurrentBuildNumber, else CurrentBuild); 0 when unknown.
func (v *WindowsVersion) Build() int {
	if v == nil {
		return 0
	}
	for _, s := range []string{v.CurrentBuildNumber, v.CurrentBuild} {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 && n < 1<<24 {
			return n
		}
	}
	return 0
}

// Server reports a server installation (InstallationType or EditionID say so).
func (v *WindowsVersion) Server() bool {
	if v == nil {
		return false
	}
	if v.InstallationType != "" {
		return strings.HasPrefix(strings.ToLower(v.InstallationType), "server")
	}
	return strings.Contains(strings.ToLower(v.EditionID), "server")
}

// Release is "22H2" or "1909" (DisplayVersion, else ReleaseId), or "".
func (v *WindowsVersion) Release() string {
	if v.DisplayVersion != "" {
		return v.DisplayVersion
	}
	return v.ReleaseID
}

// Family names the Windows release the build belongs to ("Windows 7", "Windows 11",
// "Windows Server 2019"), or "" when the build is unknown.
func (v *WindowsVersion) Family() string {
	b := v.Build()
	if b == 0 {
		return ""
	}
	if v.Server() {
		for _, s := range []struct {
			from int
			name string
		}{{26100, "Windows Server 2025"}, {20348, "Windows Server 2022"}, {17763, "Windows Server 2019"}, {14393, "Windows Server 2016"},
			{9600, "Windows Server 2012 R2"}, {9200, "Windows Server 2012"}, {7600, "Windows Server 2008 R2"}, {6000, "Windows Server 2008"}} {
			if b >= s.from {
				return s.name
			}
		}
		return "Windows Server 2003 or earlier"
	}
	for _, c := range []struct {
		from int
		name string
	}{{BuildWindows11, "Windows 11"}, {BuildWindows10, "Windows 10"}, {9600, "Windows 8.1"}, {BuildWindows8, "Windows 8"}, {7600, "Windows 7"}, {6000, "Windows Vista"}} {
		if b >= c.from {
			return c.name
		}
	}
	return "Windows XP or earlier"
}

// String is one line for people: "Windows 11 (ProductName "Windows 10 Pro", Professional),
// 23H2, build 22631.2861, Client".
func (v *WindowsVersion) String() string {
	var parts []string
	head := v.Family()
	switch {
	case head == "":
		head = "unknown build"
		if v.ProductName != "" {
			head = fmt.Sprintf("%q (build unknown)", v.ProductName)
		}
	case v.ProductName != "" && v.EditionID != "":
		head += fmt.Sprintf(" (%q, %s)", v.ProductName, v.EditionID)
	case v.ProductName != "":
		head += fmt.Sprintf(" (%q)", v.ProductName)
	case v.EditionID != "":
		head += " (" + v.EditionID + ")"
	}
	parts = append(parts, head)
	if r := v.Release(); r != "" {
		parts = append(parts, r)
	}
	if b := v.Build(); b != 0 {
		s := fmt.Sprintf("build %d", b)
		if v.UBR != nil {
			s += fmt.Sprintf(".%d", *v.UBR)
		}
		parts = append(parts, s)
	}
	if v.InstallationType != "" {
		parts = append(parts, v.InstallationType)
	}
	return strings.Join(parts, ", ")
}

// ReadVersion reads the Windows version from the SOFTWARE hive in the first size bytes of
// r, after replaying the transaction logs when the hive is dirty (as ReadHive does). Like
// ReadHive it never panics and stays bounded; a hive without the CurrentVersion key gives an
// error wrapping ErrNotSoftwareHive.
func ReadVersion(r io.ReaderAt, size int64, logs ...LogSource) (*WindowsVersion, error) {
	return withHive(r, size, logs, readVersion)
}

func readVersion(h *hive) (*WindowsVersion, error) {
	root, err := h.root()
	if err != nil {
		return nil, err
	}
	k, err := root.Open(currentVersionKey)
	if err != nil {
		return nil, err
	}
	if k == nil {
		return nil, fmt.Errorf("%w: no %s key", ErrNotSoftwareHive, currentVersionKey)
	}
	v := &WindowsVersion{}
	info := h.info
	v.Hive = &info
	for _, s := range []struct {
		name string
		dst  *string
	}{
		{"ProductName", &v.ProductName}, {"EditionID", &v.EditionID}, {"DisplayVersion", &v.DisplayVersion},
		{"ReleaseId", &v.ReleaseID}, {"CurrentVersion", &v.CurrentVersion}, {"CurrentBuild", &v.CurrentBuild},
		{"CurrentBuildNumber", &v.CurrentBuildNumber}, {"InstallationType", &v.InstallationType},
	} {
		val, err := k.Value(s.name)
		if err != nil {
			return nil, err
		}
		if val == nil {
			continue
		}
		if val.Type != regSZ && val.Type != regExpandSZ {
			v.Anomalies = append(v.Anomalies, fmt.Sprintf(`%s\%s has type %s, not a string; ignored`, currentVersionKey, s.name, typeName(val.Type)))
			continue
		}
		*s.dst = cleanString(utf16String(val.Data))
	}
	val, err := k.Value("UBR")
	if err != nil {
		return nil, err
	}
	if val != nil {
		if val.Type == regDWORD && len(val.Data) == 4 {
			x := binary.LittleEndian.Uint32(val.Data)
			v.UBR = &x
		} else {
			v.Anomalies = append(v.Anomalies, fmt.Sprintf(`%s\UBR has type %s and %d bytes, not a REG_DWORD; ignored`, currentVersionKey, typeName(val.Type), len(val.Data)))
		}
	}
	return v, nil
}

// cleanString keeps a registry string printable and short: control characters become '?',
// and more than 200 characters are cut.
func cleanString(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return strings.TrimSpace(s)
}

// ErrNotSoftwareHive: the hive is readable but has no Microsoft\Windows NT\CurrentVersion.
var ErrNotSoftwareHive = errors.New("not a SOFTWARE hive")
