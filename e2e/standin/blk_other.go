//go:build !linux

package standin

// flushBuffers is a no-op where the stand-in does not run (it is Linux-only).
func flushBuffers(string) {}
