package harness

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
)

// ntfscpGuestPath is where the initramfs holds ntfs-3g's ntfscp: the stand-in Windows guest's
// SMSS step (e2e/standin.MoveDumpAtBoot) runs it to create Windows\MEMORY.DMP, since the guest
// kernel has no NTFS driver.
const ntfscpGuestPath = "bin/ntfscp"

// libDirs are searched, in order, for a shared library a binary needs (Debian's multiarch
// layout first: the dynamic loader in the guest looks there without an ld.so.cache).
var libDirs = []string{"/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"}

// findNtfscp returns the host's ntfscp: path when given, else the one in PATH or in the sbin
// directories (ntfs-3g installs it in /usr/sbin, which a non-root PATH often lacks).
func findNtfscp(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("ntfscp: %w", err)
		}
		return path, nil
	}
	if p, err := exec.LookPath("ntfscp"); err == nil {
		return p, nil
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, "ntfscp")
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("ntfscp not found: the stand-in Windows guest needs ntfs-3g's ntfscp in its initramfs; install ntfs-3g (bash scripts/deps.sh)")
}

// binaryFiles returns bin as guestPath plus everything the dynamic loader needs to run it in
// the guest: the ELF interpreter at its own path and the DT_NEEDED libraries, recursively,
// under the directory they were found in (symbolic links resolved: the archive holds regular
// files). Parent directories are not listed (see withParents).
func binaryFiles(bin, guestPath string) ([]cpioFile, error) {
	data, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	files := []cpioFile{{Name: guestPath, Mode: modeFile | 0o755, Data: data}}
	seen := map[string]bool{}
	var walk func(path string) error
	walk = func(path string) error {
		f, err := elf.Open(path)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		defer f.Close()
		if f.Machine != elf.EM_X86_64 {
			return fmt.Errorf("%s: %s binary, the guest is x86-64", path, f.Machine)
		}
		var deps []string
		for _, p := range f.Progs {
			if p.Type != elf.PT_INTERP {
				continue
			}
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				return fmt.Errorf("%s: interpreter: %w", path, err)
			}
			deps = append(deps, strings.TrimRight(string(b), "\x00"))
		}
		needed, err := f.DynString(elf.DT_NEEDED)
		if err != nil {
			return fmt.Errorf("%s: dynamic section: %w", path, err)
		}
		for _, n := range needed {
			if strings.Contains(n, "/") {
				deps = append(deps, n)
				continue
			}
			found := ""
			for _, d := range libDirs {
				if _, err := os.Stat(filepath.Join(d, n)); err == nil {
					found = filepath.Join(d, n)
					break
				}
			}
			if found == "" {
				return fmt.Errorf("%s needs %s, which is in none of %s", path, n, strings.Join(libDirs, ", "))
			}
			deps = append(deps, found)
		}
		for _, dep := range deps {
			if seen[dep] {
				continue
			}
			seen[dep] = true
			b, err := os.ReadFile(dep) // follows links
			if err != nil {
				return fmt.Errorf("%s needs %s: %w", path, dep, err)
			}
			files = append(files, cpioFile{Name: strings.TrimPrefix(dep, "/"), Mode: modeFile | 0o755, Data: b})
			if err := walk(dep); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(bin); err != nil {
		return nil, err
	}
	return files, nil
}

// withParents returns files with a directory entry inserted before each file whose parent
// directories are not listed before it (the kernel unpacks the archive in order and cannot
// create a file in a missing directory); a directory listed twice is kept once.
func withParents(files []cpioFile) []cpioFile {
	have := map[string]bool{}
	out := make([]cpioFile, 0, len(files))
	for _, f := range files {
		var parents []string
		for d := path.Dir(f.Name); d != "." && d != "/" && !have[d]; d = path.Dir(d) {
			parents = append(parents, d)
		}
		for i := len(parents) - 1; i >= 0; i-- {
			have[parents[i]] = true
			out = append(out, cpioFile{Name: parents[i], Mode: modeDir | 0o755})
		}
		if f.Mode&0o170000 == modeDir {
			if have[f.Name] {
				continue
			}
			have[f.Name] = true
		}
		out = append(out, f)
	}
	return out
}
