package harness

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

var libvirtd struct {
	mu     sync.Mutex
	users  int
	script string
}

// UseLibvirtd makes sure the private libvirtd of scripts/guest/libvirtd.sh runs and returns a
// release function. Uses are counted within the process: the first runs "libvirtd.sh start",
// the last release runs "libvirtd.sh stop". The script counts its users too, so the daemon stops
// (and what the script changed is restored) only when no process uses it any more. Tests that
// run in parallel can each call it. repoRoot is the module root (FindRepoRoot); empty means
// FindRepoRoot("").
func UseLibvirtd(ctx context.Context, repoRoot string) (release func() error, err error) {
	if repoRoot == "" {
		if repoRoot, err = FindRepoRoot(""); err != nil {
			return nil, fmt.Errorf("libvirtd: %w", err)
		}
	}
	script := filepath.Join(repoRoot, "scripts", "guest", "libvirtd.sh")
	libvirtd.mu.Lock()
	defer libvirtd.mu.Unlock()
	if libvirtd.users == 0 {
		if out, err := exec.CommandContext(ctx, "bash", script, "start").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("libvirtd: %s start: %w: %s", script, err, strings.TrimSpace(string(out)))
		}
		libvirtd.script = script
	}
	libvirtd.users++
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			libvirtd.mu.Lock()
			defer libvirtd.mu.Unlock()
			libvirtd.users--
			if libvirtd.users > 0 {
				return
			}
			if out, e := exec.Command("bash", libvirtd.script, "stop").CombinedOutput(); e != nil {
				err = fmt.Errorf("libvirtd: %s stop: %w: %s", libvirtd.script, e, strings.TrimSpace(string(out)))
			}
		})
		return err
	}, nil
}
