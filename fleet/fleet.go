// Package fleet runs one crashkey job on many guests at once: targets named by repeated
// libvirt URIs and domain globs, or listed in a file; a bounded number at a time; each with
// its own deadline, so that one unreachable host never stalls the rest; results reported as
// each target finishes, and a summary whose exit code is the worst outcome.
//
// It is the layer above run: the job for one target is any function (status, send, nmi,
// watch, run), and cancelling the context (Ctrl-C) reaches every running job, whose own
// guarantees (vm.Target.Send releases the keys it pressed) hold before Run returns.
package fleet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/crashkey/crashkey/vm"
)

// Target is one guest of a fleet.
type Target struct {
	// Addr is where the guest is.
	Addr vm.Address `json:"-"`
	// Disk is the guest's disk image, when the targets file gives one (run only).
	Disk string `json:"disk,omitempty"`
	// Name names the target in reports: "qmp ADDR" or "DOMAIN@URI".
	Name string `json:"target"`
	// Err, when set, is why the target could not even be listed (a host that did not answer
	// while its domain glob was expanded); Run reports it without running the job.
	Err error `json:"-"`
}

// NameOf is the report name of an address: "qmp unix:/run/a.qmp" or "win11@qemu+ssh://h/system"
// (the URI without any password).
func NameOf(a vm.Address) string {
	if a.QMP != "" {
		return "qmp " + a.QMP
	}
	uri := vm.RedactURI(a.LibvirtURI) // a URI that does not parse may still hold a password
	if u, err := vm.ParseLibvirtURI(a.LibvirtURI); err == nil {
		uri = vm.RedactURI(u.String())
	}
	return a.Domain + "@" + uri
}

// IsGlob reports whether a domain name is a shell-style pattern (*, ? or [).
func IsGlob(s string) bool { return strings.ContainsAny(s, "*?[") }

// Spec is what the command line names: QMP sockets, libvirt URIs × domain names or globs,
// and the lines of a targets file.
type Spec struct {
	QMP      []string
	Libvirt  []string
	Domains  []string
	FromFile []Target
}

// ParseTargets reads a targets file: one target per line, "#" starts a comment.
//
//	unix:/run/win11.qmp                       # a QMP socket (tcp:HOST:PORT too)
//	qemu+ssh://admin@host7/system win-ci-*    # a libvirt URI and a domain name or glob
//	qemu:///system win11 disk=/var/lib/libvirt/images/win11.qcow2
//
// disk=PATH gives the target's disk image (for run; libvirt targets find theirs otherwise).
func ParseTargets(r io.Reader) ([]Target, error) {
	var out []Target
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		var t Target
		var rest []string
		switch {
		case strings.Contains(fields[0], "://"):
			if len(fields) < 2 || strings.HasPrefix(fields[1], "disk=") {
				return nil, fmt.Errorf("targets line %d: a libvirt URI needs a domain name or glob after it", n)
			}
			t.Addr = vm.Address{LibvirtURI: fields[0], Domain: fields[1]}
			rest = fields[2:]
		default:
			if _, _, err := vm.ParseQMPAddress(fields[0]); err != nil {
				return nil, fmt.Errorf("targets line %d: %w (a line is a QMP socket, or a libvirt URI and a domain)", n, err)
			}
			t.Addr = vm.Address{QMP: fields[0]}
			rest = fields[1:]
		}
		for _, f := range rest {
			v, ok := strings.CutPrefix(f, "disk=")
			if !ok || v == "" {
				return nil, fmt.Errorf("targets line %d: %q: want disk=PATH", n, f)
			}
			t.Disk = v
		}
		t.Name = NameOf(t.Addr)
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	return out, nil
}

// Targets turns a Spec into the list of targets, in order. Domain globs are expanded by
// listing each daemon's domains (ListDomains); a daemon that cannot be listed becomes one
// target carrying the error, so that it is reported like any other failure. A glob that
// matches nothing on a reachable daemon is an error.
func Targets(ctx context.Context, s Spec, opts vm.Options) ([]Target, error) {
	var in []Target
	for _, q := range s.QMP {
		a := vm.Address{QMP: q}
		in = append(in, Target{Addr: a, Name: NameOf(a)})
	}
	if len(s.Libvirt) > 0 && len(s.Domains) == 0 {
		return nil, errors.New("a libvirt URI needs a domain name or glob (--domain NAME)")
	}
	if len(s.Domains) > 0 && len(s.Libvirt) == 0 {
		return nil, errors.New("--domain needs a libvirt URI (--libvirt URI)")
	}
	for _, u := range s.Libvirt {
		for _, d := range s.Domains {
			a := vm.Address{LibvirtURI: u, Domain: d}
			in = append(in, Target{Addr: a, Name: NameOf(a)})
		}
	}
	in = append(in, s.FromFile...)
	listed := map[string][]string{}
	listErr := map[string]error{}
	var out []Target
	seen := map[string]bool{}
	for _, t := range in {
		if err := t.Addr.Validate(); err != nil {
			return nil, fmt.Errorf("%s: %w", t.Name, err)
		}
		if t.Addr.LibvirtURI != "" {
			if _, err := vm.ParseLibvirtURI(t.Addr.LibvirtURI); err != nil {
				return nil, err
			}
		}
		if t.Addr.LibvirtURI == "" || !IsGlob(t.Addr.Domain) {
			if !seen[t.Name] {
				seen[t.Name] = true
				out = append(out, t)
			}
			continue
		}
		if _, err := path.Match(t.Addr.Domain, ""); err != nil {
			return nil, fmt.Errorf("--domain %q: bad pattern: %w", t.Addr.Domain, err)
		}
		uri := t.Addr.LibvirtURI
		if _, ok := listed[uri]; !ok && listErr[uri] == nil {
			names, err := vm.ListDomains(ctx, uri, opts.Timeout)
			if err != nil {
				listErr[uri] = err
			} else {
				listed[uri] = names
			}
		}
		if err := listErr[uri]; err != nil {
			t.Err = err
			out = append(out, t)
			continue
		}
		matched := 0
		for _, name := range listed[uri] {
			if ok, _ := path.Match(t.Addr.Domain, name); ok {
				matched++
				a := vm.Address{LibvirtURI: uri, Domain: name}
				nt := Target{Addr: a, Name: NameOf(a), Disk: t.Disk}
				if !seen[nt.Name] {
					seen[nt.Name] = true
					out = append(out, nt)
				}
			}
		}
		if matched == 0 {
			return nil, fmt.Errorf("--domain %q matches no domain on %s (it has: %s)", t.Addr.Domain, t.Name[strings.IndexByte(t.Name, '@')+1:], strings.Join(listed[uri], ", "))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no target")
	}
	return out, nil
}

// Result is the outcome of the job on one target.
type Result struct {
	Target string `json:"target"`
	// Code is the exit code the single-target command would have had.
	Code int `json:"exit_code"`
	// Summary says what happened in one line.
	Summary string `json:"summary"`
	// Error is the error, when the job failed.
	Error string `json:"error,omitempty"`
	// DurationMS is the time the job took on this target.
	DurationMS int64 `json:"duration_ms"`
	// Report is the command's own report for this target (its --json output), when any.
	Report any `json:"report,omitempty"`
}

// Job runs the command on one target within ctx (which carries the target's deadline).
type Job func(ctx context.Context, t Target) Result

// Options tune Run.
type Options struct {
	// Parallel bounds how many targets run at once (default 4).
	Parallel int
	// Timeout is each target's deadline (0: none beyond ctx's).
	Timeout time.Duration
	// Failed is the code of a target that could not be reached or listed (default 3).
	Failed int
}

// Run runs job on every target, at most opts.Parallel at a time, each under its own
// deadline, and calls done (never concurrently) as each finishes. It returns the results in
// the order of targets once every job has returned: after a cancellation too, so that what
// the jobs guarantee on cancellation (released keys) has happened.
func Run(ctx context.Context, targets []Target, opts Options, job Job, done func(Result)) []Result {
	if opts.Parallel <= 0 {
		opts.Parallel = 4
	}
	if opts.Failed == 0 {
		opts.Failed = 3
	}
	results := make([]Result, len(targets))
	sem := make(chan struct{}, opts.Parallel)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			var r Result
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
				switch {
				case t.Err != nil:
					r = Result{Code: opts.Failed, Summary: "unreachable: " + t.Err.Error(), Error: t.Err.Error()}
				case ctx.Err() != nil:
					r = Result{Code: 130, Summary: "not started: interrupted", Error: ctx.Err().Error()}
				default:
					tctx, cancel := ctx, context.CancelFunc(func() {})
					if opts.Timeout > 0 {
						tctx, cancel = context.WithTimeout(ctx, opts.Timeout)
					}
					r = job(tctx, t)
					cancel()
				}
			case <-ctx.Done():
				r = Result{Code: 130, Summary: "not started: interrupted", Error: ctx.Err().Error()}
			}
			r.Target = t.Name
			r.DurationMS = time.Since(start).Milliseconds()
			mu.Lock()
			results[i] = r
			if done != nil {
				done(r)
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return results
}

// severity orders exit codes from best to worst: 0 success; 1 "no"; run's 4 (no crash), 5 (no
// dump), 6 (bad dump); 3 failed; 2 bad input; 130 interrupted.
var severity = map[int]int{0: 0, 1: 1, 4: 2, 5: 3, 6: 4, 3: 5, 2: 6, 130: 7}

// Worst returns the worst of the exit codes (0 for none).
func Worst(codes ...int) int {
	w := 0
	for _, c := range codes {
		sc, ok := severity[c]
		if !ok {
			sc = 5
		}
		if sc > severity[w] {
			w = c
		}
	}
	return w
}

// Summary sums up a fleet's results.
type Summary struct {
	Targets int `json:"targets"`
	OK      int `json:"ok"`
	// Failed counts the targets with a non-zero exit code.
	Failed int `json:"failed"`
	// ByCode counts the targets per exit code.
	ByCode map[int]int `json:"by_exit_code"`
	// Code is the worst exit code: the fleet command's own.
	Code int `json:"exit_code"`
}

// Summarize counts the results.
func Summarize(rs []Result) Summary {
	s := Summary{Targets: len(rs), ByCode: map[int]int{}}
	var codes []int
	for _, r := range rs {
		s.ByCode[r.Code]++
		codes = append(codes, r.Code)
		if r.Code == 0 {
			s.OK++
		} else {
			s.Failed++
		}
	}
	s.Code = Worst(codes...)
	return s
}

// Codes returns the exit codes of a summary in increasing order (for printing).
func (s Summary) Codes() []int {
	var cs []int
	for c := range s.ByCode {
		cs = append(cs, c)
	}
	sort.Ints(cs)
	return cs
}
