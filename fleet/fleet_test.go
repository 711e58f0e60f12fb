package fleet

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crashkey/crashkey/vm"
)

func TestParseTargets(t *testing.T) {
	in := `# the CI fleet
unix:/run/win1.qmp disk=/img/win1.qcow2
tcp:127.0.0.1:4444
qemu+ssh://admin@host7/system win-ci-*   # every CI guest on host7
qemu:///system win11 disk=/var/lib/libvirt/images/win11.qcow2

`
	got, err := ParseTargets(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{
		{Addr: vm.Address{QMP: "unix:/run/win1.qmp"}, Disk: "/img/win1.qcow2", Name: "qmp unix:/run/win1.qmp"},
		{Addr: vm.Address{QMP: "tcp:127.0.0.1:4444"}, Name: "qmp tcp:127.0.0.1:4444"},
		{Addr: vm.Address{LibvirtURI: "qemu+ssh://admin@host7/system", Domain: "win-ci-*"}, Name: "win-ci-*@qemu+ssh://admin@host7/system"},
		{Addr: vm.Address{LibvirtURI: "qemu:///system", Domain: "win11"}, Disk: "/var/lib/libvirt/images/win11.qcow2", Name: "win11@qemu:///system"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"qemu:///system\n", "qemu:///system disk=/x\n", "unix:/a.qmp size=3\n", "host:1234\n"} {
		if _, err := ParseTargets(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "targets line 1") {
			t.Errorf("%q: error %v", bad, err)
		}
	}
}

func TestTargetsSpec(t *testing.T) {
	ts, err := Targets(context.Background(), Spec{
		QMP:     []string{"unix:/a.qmp"},
		Libvirt: []string{"qemu+tcp://h1/system", "qemu+tcp://h2/system"},
		Domains: []string{"w1", "w2"},
	}, vm.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tg := range ts {
		names = append(names, tg.Name)
	}
	want := "qmp unix:/a.qmp w1@qemu+tcp://h1/system w2@qemu+tcp://h1/system w1@qemu+tcp://h2/system w2@qemu+tcp://h2/system"
	if strings.Join(names, " ") != want {
		t.Errorf("targets %v, want %s", names, want)
	}
	if _, err := Targets(context.Background(), Spec{Domains: []string{"w1"}}, vm.Options{}); err == nil {
		t.Error("--domain without --libvirt: no error")
	}
	if _, err := Targets(context.Background(), Spec{Libvirt: []string{"qemu+tcp://h/system?bogus=1"}, Domains: []string{"w"}}, vm.Options{}); err == nil {
		t.Error("bad URI: no error")
	}
	// A glob on a daemon that cannot be reached becomes one target that carries the error.
	ts, err = Targets(context.Background(), Spec{Libvirt: []string{"qemu+tcp://127.0.0.1:1/system"}, Domains: []string{"win-*"}}, vm.Options{Timeout: 2 * time.Second})
	if err != nil || len(ts) != 1 || ts[0].Err == nil || !strings.Contains(ts[0].Err.Error(), "tcp") {
		t.Errorf("unreachable glob: %+v, %v", ts, err)
	}
}

func TestWorst(t *testing.T) {
	for _, tc := range []struct {
		codes []int
		want  int
	}{
		{nil, 0}, {[]int{0, 0}, 0}, {[]int{0, 1}, 1}, {[]int{1, 4, 0}, 4}, {[]int{6, 3}, 3}, {[]int{3, 2}, 2}, {[]int{2, 130, 0}, 130}, {[]int{5, 4, 6}, 6},
	} {
		if got := Worst(tc.codes...); got != tc.want {
			t.Errorf("Worst(%v) = %d, want %d", tc.codes, got, tc.want)
		}
	}
}

func targets(n int) []Target {
	var ts []Target
	for i := 0; i < n; i++ {
		a := vm.Address{QMP: "unix:/run/" + string(rune('a'+i)) + ".qmp"}
		ts = append(ts, Target{Addr: a, Name: NameOf(a)})
	}
	return ts
}

// TestRunBoundsAndDeadlines: at most Parallel jobs run at once; a job that never returns on
// its own is ended by its deadline and does not hold up the others; an unreachable target
// is reported without running the job; results come back in target order.
func TestRunBoundsAndDeadlines(t *testing.T) {
	ts := targets(7)
	ts[3].Err = errors.New("dial tcp 10.0.0.7:22: i/o timeout")
	var running, peak atomic.Int32
	job := func(ctx context.Context, tg Target) Result {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if tg.Name == ts[1].Name { // hangs until its deadline
			<-ctx.Done()
			return Result{Code: 3, Summary: "no answer"}
		}
		time.Sleep(20 * time.Millisecond)
		return Result{Code: 0, Summary: "ok"}
	}
	var order []string
	start := time.Now()
	rs := Run(context.Background(), ts, Options{Parallel: 2, Timeout: 300 * time.Millisecond}, job, func(r Result) { order = append(order, r.Target) })
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("took %v: the hung target held up the rest", el)
	}
	if p := peak.Load(); p > 2 {
		t.Errorf("%d jobs ran at once, Parallel is 2", p)
	}
	if len(order) != 7 {
		t.Errorf("done called %d times", len(order))
	}
	for i, r := range rs {
		if r.Target != ts[i].Name {
			t.Errorf("result %d is %s, want %s", i, r.Target, ts[i].Name)
		}
	}
	if rs[1].Code != 3 || rs[3].Code != 3 || !strings.Contains(rs[3].Summary, "unreachable: dial tcp") {
		t.Errorf("hung %+v, unreachable %+v", rs[1], rs[3])
	}
	if s := Summarize(rs); s.Code != 3 || s.OK != 5 || s.Failed != 2 || s.ByCode[3] != 2 {
		t.Errorf("summary %+v", s)
	}
}

// TestRunCancel: a cancelled fleet waits for every started job to return (their cleanup,
// such as releasing keys, has happened) and reports the targets never started as interrupted.
func TestRunCancel(t *testing.T) {
	ts := targets(5)
	ctx, cancel := context.WithCancel(context.Background())
	var cleaned atomic.Int32
	started := make(chan struct{}, 5)
	job := func(ctx context.Context, tg Target) Result {
		started <- struct{}{}
		<-ctx.Done()
		time.Sleep(30 * time.Millisecond) // the release after the cancellation
		cleaned.Add(1)
		return Result{Code: 130, Summary: "interrupted; keys released"}
	}
	go func() {
		<-started
		<-started
		cancel()
	}()
	rs := Run(ctx, ts, Options{Parallel: 2}, job, nil)
	if cleaned.Load() != 2 {
		t.Errorf("%d jobs cleaned up before Run returned, want the 2 started", cleaned.Load())
	}
	for _, r := range rs {
		if r.Code != 130 {
			t.Errorf("%s: exit %d after Ctrl-C, want 130", r.Target, r.Code)
		}
	}
}

// A target's report name never holds a password, not even from a URI crashkey refuses.
func TestNameOfHidesPasswords(t *testing.T) {
	for _, uri := range []string{
		"qemu+tcp://admin:hunter2@host7/system",          // refused by ParseLibvirtURI
		"qemu+ssh://admin@host7/system?password=hunter2", // unknown parameter
	} {
		n := NameOf(vm.Address{LibvirtURI: uri, Domain: "win11"})
		if strings.Contains(n, "hunter2") || !strings.HasPrefix(n, "win11@qemu+") || !strings.Contains(n, "host7") {
			t.Errorf("NameOf(%q) = %q", uri, n)
		}
	}
}
