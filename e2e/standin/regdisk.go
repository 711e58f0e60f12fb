package standin

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"www.velocidex.com/golang/regparser"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/registry"
)

// RegStatePath is where the stand-in keeps the values "reg import" wrote, on its Windows
// volume: they survive a reboot (QEMU's system_reset keeps the disk), reg query shows them at
// once, and Load applies them at the next boot, as Windows' keyboard drivers and crash-dump
// stack read the registry only at boot.
const RegStatePath = `Windows\System32\config\crashkey-reg.json`

// SoftwareHivePath is where the SOFTWARE hive lives inside the Windows volume.
const SoftwareHivePath = `Windows\System32\config\SOFTWARE`

// maxHive and maxRegState bound what is read from the stand-in's volume.
const (
	maxHive     = 64 << 20
	maxRegState = 4 << 20
)

// Registry is the stand-in's live registry: the SYSTEM and SOFTWARE hives on its disk (as
// they were when it booted) with the values imported since (RegState, kept on the disk at
// RegStatePath) on top: what reg.exe query shows on Windows.
type Registry struct {
	// State are the imported values.
	State *RegState
	// ControlSet is N of the ControlSet00N that CurrentControlSet stands for.
	ControlSet int

	system, software *regparser.Registry
	dev              string
	volume           int
	scheme           string
}

// OpenRegistry reads the hives and the imported values from the stand-in disk at dev.
func OpenRegistry(dev string) (*Registry, error) {
	img, err := disk.Open(dev, disk.Options{})
	if err != nil {
		return nil, fmt.Errorf("standin: registry: %w", err)
	}
	defer img.Close()
	fs, err := img.WindowsVolume()
	if err != nil {
		return nil, fmt.Errorf("standin: registry: %s: %w", dev, err)
	}
	r := &Registry{ControlSet: 1, dev: dev, volume: fs.Volume().Index, scheme: img.Scheme()}
	sys, err := readVolumeFile(fs, registry.SystemHivePath, maxHive)
	if err != nil {
		return nil, fmt.Errorf("standin: registry: %w", err)
	}
	if r.system, err = regparser.NewRegistry(bytes.NewReader(sys)); err != nil {
		return nil, fmt.Errorf("standin: registry: %s: %w", registry.SystemHivePath, err)
	}
	if sw, err := readVolumeFile(fs, SoftwareHivePath, maxHive); err == nil {
		r.software, _ = regparser.NewRegistry(bytes.NewReader(sw))
	}
	if v, ok := r.hiveValues(`HKLM\SYSTEM\Select`, false)["current"]; ok {
		var n int
		if _, err := fmt.Sscanf(v.Data, "0x%x", &n); err == nil && n >= 1 && n <= 999 {
			r.ControlSet = n
		}
	}
	if r.State, err = loadVolumeState(fs); err != nil {
		return nil, fmt.Errorf("standin: registry: %w", err)
	}
	return r, nil
}

// readVolumeFile reads a whole file of the volume, at most limit bytes.
func readVolumeFile(fs *disk.FS, path string, limit int64) ([]byte, error) {
	f, err := fs.Open(path)
	if err != nil {
		return nil, err
	}
	if f.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than %d", path, f.Size(), limit)
	}
	b := make([]byte, f.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// loadVolumeState reads RegStatePath from the volume; none is an empty state.
func loadVolumeState(fs *disk.FS) (*RegState, error) {
	b, err := readVolumeFile(fs, RegStatePath, maxRegState)
	if errors.Is(err, disk.ErrNotFound) {
		return &RegState{Keys: map[string]*RegStateKey{}}, nil
	}
	if err != nil {
		return nil, err
	}
	return parseRegState(b, RegStatePath)
}

// canon is the lower-case form of a key path under which the hives and the state are
// compared: HKLM\SYSTEM\CurrentControlSet is ControlSet00N.
func (r *Registry) canon(key string) string {
	k := strings.ToLower(normKey(key))
	if rest, ok := strings.CutPrefix(k, `hklm\system\currentcontrolset`); ok && (rest == "" || rest[0] == '\\') {
		k = fmt.Sprintf(`hklm\system\controlset%03d`, r.ControlSet) + rest
	}
	return k
}

// hiveKey finds key (canonical or not) in the SYSTEM or SOFTWARE hive.
func (r *Registry) hiveKey(key string) (nk *regparser.CM_KEY_NODE) {
	defer func() {
		if recover() != nil { // a damaged hive: the key is not readable
			nk = nil
		}
	}()
	k := r.canon(key)
	switch {
	case k == `hklm\system` || strings.HasPrefix(k, `hklm\system\`):
		return r.system.OpenKey(strings.TrimPrefix(strings.TrimPrefix(k, `hklm\system`), `\`))
	case r.software != nil && (k == `hklm\software` || strings.HasPrefix(k, `hklm\software\`)):
		return r.software.OpenKey(strings.TrimPrefix(strings.TrimPrefix(k, `hklm\software`), `\`))
	}
	return nil
}

// hiveValues are the values of key in the hives as reg.exe query prints them (lower-case
// name → value); hidden drops keys the state deleted.
func (r *Registry) hiveValues(key string, hidden bool) map[string]RegEntry {
	out := map[string]RegEntry{}
	if hidden && r.cleared(key) {
		return out
	}
	nk := r.hiveKey(key)
	if nk == nil {
		return out
	}
	func() {
		defer func() { _ = recover() }()
		for _, v := range nk.Values() {
			if e, ok := regEntry(v); ok {
				out[strings.ToLower(e.Name)] = e
			}
		}
	}()
	return out
}

// regEntry formats one hive value as reg.exe query does.
func regEntry(v *regparser.CM_KEY_VALUE) (RegEntry, bool) {
	d := v.ValueData()
	if d == nil || d.Error != nil {
		return RegEntry{}, false
	}
	e := RegEntry{Name: v.ValueName(), Type: v.TypeString()}
	if e.Name == "(default)" || e.Name == "@" {
		e.Name = ""
	}
	switch e.Type {
	case "REG_DWORD", "REG_DWORD_BIG_ENDIAN", "REG_QWORD":
		e.Data = fmt.Sprintf("0x%x", d.Uint64)
	case "REG_SZ", "REG_EXPAND_SZ":
		e.Data = d.String
	case "REG_MULTI_SZ":
		e.Data = strings.Join(d.MultiSz, `\0`)
	default:
		e.Data = strings.ToUpper(hex.EncodeToString(d.Data))
	}
	return e, true
}

// cleared reports that the state deleted key or one of its parents (its hive contents are gone).
func (r *Registry) cleared(key string) bool {
	k := r.canon(key)
	for _, sk := range r.State.Keys {
		c := r.canon(sk.Path)
		if sk.Cleared && (k == c || strings.HasPrefix(k, c+`\`)) {
			return true
		}
	}
	return false
}

// stateKeys are the state's entries for key, in import order of their paths' spellings.
func (r *Registry) stateKeys(key string) []*RegStateKey {
	k := r.canon(key)
	var out []*RegStateKey
	for _, sk := range r.State.Keys {
		if r.canon(sk.Path) == k {
			out = append(out, sk)
		}
	}
	return out
}

// Values are key's live values (lower-case name → value) and whether the key exists.
func (r *Registry) Values(key string) (map[string]RegEntry, bool) {
	vals := r.hiveValues(key, true)
	exists := !r.cleared(key) && r.hiveKey(key) != nil
	for _, sk := range r.stateKeys(key) {
		if !sk.Deleted {
			exists = true
		}
		for n, v := range sk.Values {
			if v.Deleted {
				delete(vals, n)
			} else {
				vals[n] = v
			}
		}
	}
	return vals, exists
}

// Query prints key as reg.exe query KEY does, or reports false when it does not exist.
func (r *Registry) Query(key string) (string, bool) {
	vals, ok := r.Values(key)
	if !ok {
		return "", false
	}
	return formatQuery(key, vals), true
}

// Import applies a .reg file as reg.exe import does: the values are in the live registry at
// once (Query), and in effect after the next boot (Load).
func (r *Registry) Import(reg []byte) error { return r.State.Import(reg) }

// Save writes the state to RegStatePath on the stand-in's volume with ntfs-3g's ntfscp
// (tmpDir holds the file ntfscp copies), and reads it back.
func (r *Registry) Save(ctx context.Context, ntfscp, tmpDir string) error {
	b, err := r.State.marshal()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(tmpDir, "crashkey-reg-*.json")
	if err != nil {
		return fmt.Errorf("standin: save registry: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("standin: save registry: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("standin: save registry: %w", err)
	}
	part := PartitionDevice(r.dev, r.scheme, r.volume)
	flushBuffers(part)
	flushBuffers(r.dev)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, ntfscp, "-f", part, tmp.Name(), winPath(RegStatePath))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("standin: save registry: %s -f %s %s %s: %w: %s", ntfscp, part, tmp.Name(), winPath(RegStatePath), err, strings.TrimSpace(out.String()))
	}
	flushBuffers(part)
	flushBuffers(r.dev)
	img, err := disk.Open(r.dev, disk.Options{Partition: r.volume})
	if err != nil {
		return fmt.Errorf("standin: save registry: read back: %w", err)
	}
	defer img.Close()
	fs, err := img.WindowsVolume()
	if err != nil {
		return fmt.Errorf("standin: save registry: read back: %w", err)
	}
	got, err := readVolumeFile(fs, RegStatePath, maxRegState)
	if err != nil || !bytes.Equal(got, b) {
		return fmt.Errorf("standin: save registry: %s reads back different (%v)", RegStatePath, err)
	}
	return nil
}

// applyState lays the imported values of st over s, the settings read from the SYSTEM hive
// at boot: what the keyboard drivers and the crash-dump stack then read.
func applyState(s *registry.Settings, st *RegState) {
	if st == nil || len(st.Keys) == 0 {
		return
	}
	r := &Registry{State: st, ControlSet: s.ControlSet}
	cs := fmt.Sprintf(`HKLM\SYSTEM\ControlSet%03d\`, s.ControlSet)
	dw := func(vals map[string]RegEntry, name string) *uint32 {
		v, ok := vals[name]
		if !ok || v.Type != "REG_DWORD" {
			return nil
		}
		var n uint32
		if _, err := fmt.Sscanf(v.Data, "0x%x", &n); err != nil {
			return nil
		}
		return &n
	}
	str := func(vals map[string]RegEntry, name string) *string {
		v, ok := vals[name]
		if !ok || (v.Type != "REG_SZ" && v.Type != "REG_EXPAND_SZ") {
			return nil
		}
		d := v.Data
		return &d
	}
	// touched reports that the state says something about key (so the hive's view of it is
	// replaced by the merged one).
	touched := func(key string) bool { return len(r.stateKeys(key)) > 0 || r.cleared(key) }
	// merged are the hive's values (from s) with the state on top: the state's Values use
	// the hive read by s only through the fields below, so start from them.
	for i := range s.Drivers {
		d := &s.Drivers[i]
		svc := cs + `Services\` + string(d.Driver)
		if touched(svc) || touched(svc+`\Parameters`) || touched(svc+`\crashdump`) {
			base := map[string]map[string]RegEntry{
				svc:                 entriesOf(map[string]*uint32{"start": d.Start}, nil),
				svc + `\Parameters`: entriesOf(map[string]*uint32{"crashonctrlscroll": d.CrashOnCtrlScroll}, nil),
				svc + `\crashdump`:  entriesOf(map[string]*uint32{"dump1keys": d.Dump1Keys, "dump2key": d.Dump2Key}, nil),
			}
			vals := map[string]map[string]RegEntry{}
			present := d.Present && !r.cleared(svc)
			for k, b := range base {
				vals[k] = r.overlay(k, b)
			}
			for _, sk := range r.stateKeys(svc) {
				if !sk.Deleted {
					present = true
				}
			}
			d.Present = present
			d.Start = dw(vals[svc], "start")
			d.CrashOnCtrlScroll = dw(vals[svc+`\Parameters`], "crashonctrlscroll")
			d.Dump1Keys = dw(vals[svc+`\crashdump`], "dump1keys")
			d.Dump2Key = dw(vals[svc+`\crashdump`], "dump2key")
		}
	}
	ccKey := cs + `Control\CrashControl`
	if touched(ccKey) {
		c := &s.CrashControl
		dws := map[string]**uint32{
			"crashdumpenabled": &c.CrashDumpEnabled, "filterpages": &c.FilterPages, "autoreboot": &c.AutoReboot,
			"overwrite": &c.Overwrite, "dumpfilesize": &c.DumpFileSize, "alwayskeepmemorydump": &c.AlwaysKeepMemoryDump,
			"nmicrashdump": &c.NMICrashDump,
		}
		strs := map[string]**string{"dumpfile": &c.DumpFile, "minidumpdir": &c.MinidumpDir, "dedicateddumpfile": &c.DedicatedDumpFile}
		b := map[string]*uint32{}
		for n, p := range dws {
			b[n] = *p
		}
		bs := map[string]*string{}
		for n, p := range strs {
			bs[n] = *p
		}
		vals := r.overlay(ccKey, entriesOf(b, bs))
		for n, p := range dws {
			*p = dw(vals, n)
		}
		for n, p := range strs {
			*p = str(vals, n)
		}
		present := c.Present && !r.cleared(ccKey)
		for _, sk := range r.stateKeys(ccKey) {
			if !sk.Deleted {
				present = true
			}
		}
		c.Present = present
	}
}

// overlay lays the state's values of key over base (the hive's), as Values does.
func (r *Registry) overlay(key string, base map[string]RegEntry) map[string]RegEntry {
	if r.cleared(key) {
		base = map[string]RegEntry{}
	}
	for _, sk := range r.stateKeys(key) {
		for n, v := range sk.Values {
			if v.Deleted {
				delete(base, n)
			} else {
				base[n] = v
			}
		}
	}
	return base
}

// entriesOf turns settings fields back into values as reg.exe query prints them.
func entriesOf(dwords map[string]*uint32, strs map[string]*string) map[string]RegEntry {
	out := map[string]RegEntry{}
	for n, p := range dwords {
		if p != nil {
			out[n] = RegEntry{Name: n, Type: "REG_DWORD", Data: fmt.Sprintf("0x%x", *p)}
		}
	}
	for n, p := range strs {
		if p != nil {
			out[n] = RegEntry{Name: n, Type: "REG_SZ", Data: *p}
		}
	}
	return out
}
