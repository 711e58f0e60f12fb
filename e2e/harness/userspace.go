package harness

import (
	"context"
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

// Where the initramfs holds the guest agent's pieces.
const (
	qemuGAGuestPath   = "bin/qemu-ga"
	regGuestPath      = "bin/reg"
	shutdownGuestPath = "sbin/shutdown"
	regPackage        = "github.com/crashkey/crashkey/e2e/cmd/reg"
)

// agentFiles are Debian's qemu-ga with its libraries (bin/qemu-ga) and the stand-in's small
// userland for it (e2e/cmd/reg, one binary under several names): bin/reg (reg.exe import and
// query), bin/rm and bin/cat (what crashkey runs on a Linux guest through guest-exec), and
// sbin/shutdown (qemu-ga's guest-shutdown runs "/sbin/shutdown -r +0 …": sync, then reboot).
func agentFiles(ctx context.Context, opts BuildOptions) ([]cpioFile, error) {
	ga := opts.QemuGA
	if ga == "" {
		var err error
		if ga, err = exec.LookPath("qemu-ga"); err != nil {
			ga = "/usr/sbin/qemu-ga"
		}
	}
	if _, err := os.Stat(ga); err != nil {
		return nil, fmt.Errorf("qemu-ga not found (%v): the stand-in guest runs Debian's qemu-ga; install qemu-guest-agent (bash scripts/deps.sh)", err)
	}
	files, err := binaryFiles(ga, qemuGAGuestPath)
	if err != nil {
		return nil, fmt.Errorf("qemu-ga: %w", err)
	}
	tmp, err := os.MkdirTemp(opts.CacheDir, ".reg-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "reg")
	cmd := exec.CommandContext(ctx, opts.Go, "build", "-trimpath", "-ldflags=-s -w", "-o", out, regPackage)
	cmd.Dir = opts.RepoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w: %s", regPackage, err, strings.TrimSpace(string(b)))
	}
	reg, err := os.ReadFile(out)
	if err != nil {
		return nil, err
	}
	for _, name := range []string{regGuestPath, "bin/rm", "bin/cat", "bin/sh", "bin/notmyfault", shutdownGuestPath} {
		files = append(files, cpioFile{Name: name, Mode: modeFile | 0o755, Data: reg})
	}
	// guest-get-osinfo reads it: crashkey takes an agent that cannot say for Windows.
	osRelease := "ID=crashkey-standin\nNAME=\"crashkey stand-in guest\"\nPRETTY_NAME=\"crashkey stand-in guest\"\n"
	files = append(files, cpioFile{Name: "etc/os-release", Mode: modeFile | 0o644, Data: []byte(osRelease)})
	return files, nil
}

// uniqueFiles drops the later of two entries with the same name (libraries two binaries share).
func uniqueFiles(files []cpioFile) []cpioFile {
	seen := map[string]bool{}
	out := files[:0:0]
	for _, f := range files {
		if !seen[f.Name] {
			seen[f.Name] = true
			out = append(out, f)
		}
	}
	return out
}
