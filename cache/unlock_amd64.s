//go:build amd64 && !race

#include "textflag.h"

// func releaseZero(p *uint32)
TEXT ·releaseZero(SB), NOSPLIT|NOFRAME, $0-8
	MOVQ	p+0(FP), AX
	MOVL	$0, (AX)
	RET
