package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// loadModules loads the .ko files in dir in the order listed in orderFile (one file name per
// line). A module that is already loaded is not an error.
func loadModules(dir, orderFile string) error {
	f, err := os.Open(orderFile)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil // an initramfs without modules: everything is built in
		}
		return err
	}
	defer f.Close()
	start := time.Now()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name := strings.TrimSpace(sc.Text())
		if name == "" || strings.HasPrefix(name, "#") {
			continue
		}
		if err := finitModule(filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("load %s: %w", name, err)
		}
		n++
	}
	if err := sc.Err(); err != nil {
		return err
	}
	logf("loaded %d modules in %v", n, time.Since(start).Round(time.Millisecond))
	return nil
}

// finitModule loads one module with finit_module(2) (system call 313 on amd64; Go's syscall
// package has no wrapper, x/sys/unix does).
func finitModule(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.FinitModule(fd, "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}
