package vm

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/go-libvirt"
	"github.com/digitalocean/go-libvirt/libvirttest"
)

// go-libvirt's own mock speaks libvirt's RPC protocol over a pipe and answers
// ConnectListAllDomains with two domains, "aaaaaaa-1" and "aaaaaaa-2".
func TestListDomainsMock(t *testing.T) {
	names, err := listDomains(context.Background(), func() (*libvirt.Libvirt, error) {
		l := libvirt.NewWithDialer(libvirttest.New())
		return l, l.Connect()
	}, 5*time.Second)
	if err != nil || strings.Join(names, ",") != "aaaaaaa-1,aaaaaaa-2" {
		t.Errorf("names %q, %v", names, err)
	}
}

func TestListDomainsBounded(t *testing.T) {
	start := time.Now()
	_, err := listDomains(context.Background(), func() (*libvirt.Libvirt, error) {
		time.Sleep(2 * time.Second) // a libvirtd that never answers
		return nil, errors.New("late")
	}, 200*time.Millisecond)
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("err %v after %v", err, time.Since(start))
	}
	if _, err := ListDomains(context.Background(), "not a uri", time.Second); err == nil {
		t.Error("a bad URI is accepted")
	}
}
