//go:build e2e

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crashkey/crashkey/dump"
	"github.com/crashkey/crashkey/e2e/harness"
)

// hdWaitPublished waits for the guest's "vmcoreinfo published …" line and returns it.
func hdWaitPublished(t *testing.T, ctx context.Context, g *harness.Guest) string {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	o, err := g.WaitFor(wctx, 0, func(o harness.Observation) bool { return o.Kind == "vmcoreinfo" })
	if err != nil {
		t.Fatalf("no vmcoreinfo line: %v", err)
	}
	if !strings.HasPrefix(o.Line, "vmcoreinfo published ") {
		t.Fatalf("the guest did not publish its header: %s", o.Line)
	}
	return o.Line
}

func TestHostDumpRaw(t *testing.T) {
	ctx := testCtx(t, 4*time.Minute)
	g := bootGuest(t, ctx, harness.Config{VMCoreInfo: true, PublishHeader: true})
	line := hdWaitPublished(t, ctx, g)
	t.Log(line)
	q := mustQMP(t, ctx, strings.TrimPrefix(g.QMPAddr(), "unix:"))
	out := filepath.Join(t.TempDir(), "x.dmp")
	if _, err := q.execute(ctx, "dump-guest-memory", map[string]any{"paging": false, "protocol": "file:" + out, "format": "win-dmp"}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	d, err := dump.Open(f, st.Size())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", d.Header())
}
