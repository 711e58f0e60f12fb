package harness

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/crashkey/crashkey/internal/atomicfile"
)

// ModulePath is the Go module that holds the guest's /init.
const ModulePath = "github.com/crashkey/crashkey"

// guestPackage is the /init's package, relative to the module root.
const guestPackage = "./e2e/guest"

// BuildOptions configures Build. The zero value is ready to use from anywhere inside the
// repository.
type BuildOptions struct {
	// CacheDir holds the kernel and the built initramfs. Default:
	// ${CRASHKEY_CACHE:-$HOME/.cache/crashkey}/guest (the kernel script uses the same).
	CacheDir string
	// RepoRoot is the module root (the directory with go.mod for ModulePath). Default: found by
	// walking up from the working directory.
	RepoRoot string
	// KernelDir, when set, is used instead of running scripts/guest/kernel.sh. It must hold
	// vmlinuz, modules.order and modules/*.ko (the kernel script's layout).
	KernelDir string
	// Init, when set, is a prebuilt static /init used instead of `go build ./e2e/guest`.
	Init string
	// Ntfscp is the host's ntfs-3g ntfscp, copied with its shared libraries into the
	// initramfs as /bin/ntfscp (the stand-in Windows guest's SMSS step runs it). Default: found
	// in PATH or /usr/sbin; Build fails when there is none.
	Ntfscp string
	// QemuGA is the host's qemu-ga (package qemu-guest-agent), copied with its libraries into
	// the initramfs as /bin/qemu-ga (Config.Agent starts it). Default: found in PATH or
	// /usr/sbin.
	QemuGA string
	// Go is the go command (default "go").
	Go string
	// Log receives the scripts' and the compiler's diagnostics (default: discarded).
	Log io.Writer
}

// Artifacts are what Start boots.
type Artifacts struct {
	// Kernel is the bzImage (vmlinuz) path.
	Kernel string
	// Initramfs is the gzip-compressed cpio (newc) archive with /init and the modules.
	Initramfs string
	// KernelVersion is the Debian kernel release, e.g. "6.1.0-56-amd64".
	KernelVersion string
}

// Build gets the kernel (scripts/guest/kernel.sh, cached), builds the guest's static /init and
// packs an initramfs into the cache directory. The initramfs file name carries a hash of its
// contents, so repeated builds reuse it and concurrent builds never see a half-written file.
// Build never writes into the repository.
func Build(ctx context.Context, opts BuildOptions) (*Artifacts, error) {
	if opts.Go == "" {
		opts.Go = "go"
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.CacheDir == "" {
		base := os.Getenv("CRASHKEY_CACHE")
		if base == "" {
			home, err := os.UserHomeDir()
			if err != nil {
				return nil, fmt.Errorf("build: no cache directory: set CRASHKEY_CACHE or HOME: %w", err)
			}
			base = filepath.Join(home, ".cache", "crashkey")
		}
		opts.CacheDir = filepath.Join(base, "guest")
	}
	if opts.RepoRoot == "" && (opts.KernelDir == "" || opts.Init == "") {
		root, err := FindRepoRoot("")
		if err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
		opts.RepoRoot = root
	}
	if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("build: cache: %w", err)
	}

	kdir := opts.KernelDir
	if kdir == "" {
		var err error
		if kdir, err = runKernelScript(ctx, opts); err != nil {
			return nil, err
		}
	}
	version, _ := os.ReadFile(filepath.Join(kdir, "version"))
	kernel := filepath.Join(kdir, "vmlinuz")
	if _, err := os.Stat(kernel); err != nil {
		return nil, fmt.Errorf("build: kernel: %w (run scripts/guest/kernel.sh)", err)
	}

	initPath := opts.Init
	if initPath == "" {
		tmp, err := os.MkdirTemp(opts.CacheDir, ".init-")
		if err != nil {
			return nil, fmt.Errorf("build: %w", err)
		}
		defer os.RemoveAll(tmp)
		initPath = filepath.Join(tmp, "init")
		cmd := exec.CommandContext(ctx, opts.Go, "build", "-trimpath", "-ldflags=-s -w", "-o", initPath, guestPackage)
		cmd.Dir = opts.RepoRoot
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
		var stderr bytes.Buffer
		cmd.Stdout = opts.Log
		cmd.Stderr = io.MultiWriter(opts.Log, &stderr)
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("build: go build %s: %w: %s", guestPackage, err, strings.TrimSpace(stderr.String()))
		}
	}

	ntfscp, err := findNtfscp(opts.Ntfscp)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	extra, err := binaryFiles(ntfscp, ntfscpGuestPath)
	if err != nil {
		return nil, fmt.Errorf("build: ntfscp: %w", err)
	}
	agent, err := agentFiles(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	extra = uniqueFiles(append(extra, agent...))
	files, err := initramfsFiles(initPath, kdir, extra)
	if err != nil {
		return nil, fmt.Errorf("build: %w", err)
	}
	var archive bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&archive, gzip.BestSpeed)
	if err := writeCpio(zw, files); err != nil {
		return nil, fmt.Errorf("build: initramfs: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("build: initramfs: %w", err)
	}
	sum := sha256.Sum256(archive.Bytes())
	out := filepath.Join(opts.CacheDir, "initramfs-"+hex.EncodeToString(sum[:8])+".cpio.gz")
	if _, err := os.Stat(out); err != nil {
		if err := atomicfile.WriteFile(out, archive.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("build: initramfs: %w", err)
		}
	} else {
		now := time.Now()
		_ = os.Chtimes(out, now, now) // mark it used, for pruneInitramfs
	}
	pruneInitramfs(opts.CacheDir, out, 7*24*time.Hour)
	return &Artifacts{Kernel: kernel, Initramfs: out, KernelVersion: strings.TrimSpace(string(version))}, nil
}

// pruneInitramfs removes initramfs archives in dir other than keep that were not built or used
// for maxAge, so that the cache does not grow with every change to the guest.
func pruneInitramfs(dir, keep string, maxAge time.Duration) {
	old, _ := filepath.Glob(filepath.Join(dir, "initramfs-*.cpio.gz"))
	for _, p := range old {
		if p == keep {
			continue
		}
		if st, err := os.Stat(p); err == nil && time.Since(st.ModTime()) > maxAge {
			os.Remove(p)
		}
	}
}

// runKernelScript runs scripts/guest/kernel.sh and returns the directory it prints last.
func runKernelScript(ctx context.Context, opts BuildOptions) (string, error) {
	script := filepath.Join(opts.RepoRoot, "scripts", "guest", "kernel.sh")
	cmd := exec.CommandContext(ctx, "bash", script)
	// The script appends /guest itself.
	cmd.Env = append(os.Environ(), "CRASHKEY_CACHE="+filepath.Dir(opts.CacheDir))
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(opts.Log, &stderr)
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build: %s: %w: %s", script, err, strings.TrimSpace(stderr.String()))
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	dir := strings.TrimSpace(lines[len(lines)-1])
	if dir == "" {
		return "", fmt.Errorf("build: %s printed no kernel directory", script)
	}
	return dir, nil
}

// initramfsFiles lists the archive's contents: the directories /init mounts on, /dev/console
// (the kernel opens it for init's stdio before devtmpfs exists), /tmp, /init, extra (user-space
// programs and their libraries) and the modules with their load order under
// /lib/modules/crashkey. Every file's parent directories are listed before it.
func initramfsFiles(initPath, kernelDir string, extra []cpioFile) ([]cpioFile, error) {
	initData, err := os.ReadFile(initPath)
	if err != nil {
		return nil, err
	}
	files := []cpioFile{
		{Name: "dev", Mode: modeDir | 0o755},
		{Name: "dev/console", Mode: modeChar | 0o600, RdevMajor: 5, RdevMinor: 1},
		{Name: "proc", Mode: modeDir | 0o755},
		{Name: "sys", Mode: modeDir | 0o755},
		{Name: "tmp", Mode: modeDir | 0o1777},
		{Name: "lib", Mode: modeDir | 0o755},
		{Name: "lib/modules", Mode: modeDir | 0o755},
		{Name: "lib/modules/crashkey", Mode: modeDir | 0o755},
		{Name: "init", Mode: modeFile | 0o755, Data: initData},
	}
	files = append(files, extra...)
	order, err := os.ReadFile(filepath.Join(kernelDir, "modules.order"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return withParents(files), nil
		}
		return nil, err
	}
	files = append(files, cpioFile{Name: "lib/modules/crashkey/modules.order", Mode: modeFile | 0o644, Data: order})
	sc := bufio.NewScanner(bytes.NewReader(order))
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		if strings.ContainsAny(name, "/\\") {
			return nil, fmt.Errorf("modules.order: bad module name %q", name)
		}
		data, err := os.ReadFile(filepath.Join(kernelDir, "modules", name))
		if err != nil {
			return nil, fmt.Errorf("module %s: %w (rerun scripts/guest/kernel.sh)", name, err)
		}
		files = append(files, cpioFile{Name: "lib/modules/crashkey/" + name, Mode: modeFile | 0o644, Data: data})
	}
	return withParents(files), sc.Err()
}

// FindRepoRoot walks up from dir (default: the working directory) to the directory whose go.mod
// declares ModulePath.
func FindRepoRoot(dir string) (string, error) {
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return "", err
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+ModulePath+"\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("repository root not found: no go.mod for %s above the working directory (run inside the crashkey repository or set BuildOptions.RepoRoot)", ModulePath)
		}
		dir = parent
	}
}
