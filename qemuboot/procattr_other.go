//go:build !linux

package qemuboot

import "os/exec"

func killWithParent(cmd *exec.Cmd) {}
