// Command gosha256 prints the SHA-256 of a file computed with Go's crypto/sha256, reading it
// in 4 MiB blocks: the hash-alone peer of scripts/bench/pull.sh (the floor of a verified copy
// is max(plain copy, hash alone)).
//
//	gosha256 FILE
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gosha256 FILE")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "gosha256:", err)
		os.Exit(1)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 4<<20)); err != nil {
		fmt.Fprintln(os.Stderr, "gosha256:", err)
		os.Exit(1)
	}
	fmt.Println(hex.EncodeToString(h.Sum(nil)))
}
