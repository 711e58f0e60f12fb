#include "textflag.h"

// func outl(port uint16, val uint32)
TEXT ·outl(SB), NOSPLIT, $0-8
	MOVW port+0(FP), DX
	MOVL val+4(FP), AX
	OUTL
	RET

// func outw(port uint16, val uint16)
TEXT ·outw(SB), NOSPLIT, $0-4
	MOVW port+0(FP), DX
	MOVW val+2(FP), AX
	OUTW
	RET

// func inb(port uint16) uint8
TEXT ·inb(SB), NOSPLIT, $0-9
	MOVW port+0(FP), DX
	XORL AX, AX
	INB
	MOVB AX, ret+8(FP)
	RET
