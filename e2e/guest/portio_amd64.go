package main

// x86 port I/O (portio_amd64.s), usable after ioperm(2) grants the ports.

func outl(port uint16, val uint32)
func outw(port uint16, val uint16)
func inb(port uint16) uint8
