//go:build !amd64

package main

import "errors"

func publishVMCoreInfo(uint64, bool) (*winRegion, error) {
	return nil, errors.New("vmcoreinfo: the stand-in publishes a dump header only on amd64")
}
