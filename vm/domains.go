package vm

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/digitalocean/go-libvirt"
)

// ListDomains returns the names of every domain (running or not) at a libvirt URI, sorted,
// giving up after timeout. It is used for shell completion, where an answer must come fast
// or not at all, and to expand a fleet's domain patterns. Every transport of DialLibvirt works
// (a timeout of 0 means 10 s).
func ListDomains(ctx context.Context, uri string, timeout time.Duration) ([]string, error) {
	u, err := ParseLibvirtURI(uri)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	names, err := listDomains(ctx, func() (*libvirt.Libvirt, error) { return dialLibvirt(ctx, u, &byteCounter{}) }, timeout)
	if err != nil {
		return nil, fmt.Errorf("libvirt %s: list domains: %w", RedactURI(uri), err)
	}
	return names, nil
}

// listDomains connects with connect and lists the domains' names, sorted.
func listDomains(ctx context.Context, connect func() (*libvirt.Libvirt, error), timeout time.Duration) ([]string, error) {
	var l *libvirt.Libvirt
	done := make(chan struct{})
	var names []string
	err := withDeadline(ctx, timeout, func() error {
		defer close(done)
		var err error
		if l, err = connect(); err != nil {
			return err
		}
		start := time.Now()
		doms, _, err := l.ConnectListAllDomains(1, 0)
		lvCall("ConnectListAllDomains", start, err, slog.Int("domains", len(doms)))
		for _, d := range doms {
			names = append(names, d.Name)
		}
		return err
	}, func() {})
	// Disconnect once the call has returned, even when it was given up on.
	go func() {
		<-done
		if l != nil {
			_ = l.Disconnect()
		}
	}()
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}
