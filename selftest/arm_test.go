package selftest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/live/livetest"
	"github.com/crashkey/crashkey/qemuboot"
	"github.com/crashkey/crashkey/vm/qmptest"
)

// TestAgentArmer arms a fake Windows registry behind a qmptest agent for each keyboard: the
// keyboard's driver (and only it) gets CrashOnCtrlScroll, the guest is rebooted once and no
// file is left in it.
func TestAgentArmer(t *testing.T) {
	for _, tt := range []struct {
		kbd       qemuboot.Keyboard
		armed, no string
	}{{qemuboot.PS2, "i8042prt", "kbdhid"}, {qemuboot.USB, "kbdhid", "i8042prt"}, {qemuboot.Virtio, "kbdhid", "i8042prt"}} {
		t.Run(string(tt.kbd), func(t *testing.T) {
			t.Parallel()
			win := livetest.NewWindows()
			ag := qmptest.NewAgent(t)
			ag.Update(func(s *qmptest.Server) { s.Program = win.Program(s); s.RebootFor = 2 * time.Second })
			qmp := qmptest.New(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := AgentArmer(10*time.Second)(ctx, qmp.Addr, ag.Addr, tt.kbd); err != nil {
				t.Fatal(err)
			}
			query := func(driver string) string {
				var out string
				ag.Update(func(s *qmptest.Server) {
					_, out, _ = win.Program(s)("reg.exe", []string{"query", `HKLM\SYSTEM\CurrentControlSet\Services\` + driver + `\Parameters`})
				})
				return out
			}
			if q := query(tt.armed); !strings.Contains(q, "CrashOnCtrlScroll") || !strings.Contains(q, "0x1") {
				t.Errorf("%s not armed: %q", tt.armed, q)
			}
			if q := query(tt.no); strings.Contains(q, "CrashOnCtrlScroll") {
				t.Errorf("%s armed too: %q", tt.no, q)
			}
			ag.Update(func(s *qmptest.Server) {
				if s.Reboots != 1 || len(s.Files) != 0 {
					t.Errorf("%d reboots, %d files left in the guest: want 1, 0", s.Reboots, len(s.Files))
				}
			})
		})
	}
}
