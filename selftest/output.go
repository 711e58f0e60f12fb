package selftest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/crashkey/crashkey/internal/atomicfile"
)

func seconds(d time.Duration) float64 { return math.Round(d.Seconds()*10) / 10 }

// MarshalJSON writes the timings in seconds (boot_s, arm_s, crash_s, total_s).
func (t Timings) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Boot  float64 `json:"boot_s"`
		Arm   float64 `json:"arm_s"`
		Crash float64 `json:"crash_s"`
		Total float64 `json:"total_s"`
	}{seconds(t.Boot), seconds(t.Arm), seconds(t.Crash), seconds(t.Total)})
}

// MarshalJSON writes the duration in seconds (duration_s).
func (r Result) MarshalJSON() ([]byte, error) {
	type plain Result
	return json.Marshal(struct {
		plain
		Duration float64 `json:"duration_s"`
	}{plain(r), seconds(r.Duration)})
}

// cell returns the cell for keyboard k and trigger t, or nil.
func (r *Result) cell(k, t string) *Cell {
	for i := range r.Cells {
		if string(r.Cells[i].Keyboard) == k && r.Cells[i].Trigger == t {
			return &r.Cells[i]
		}
	}
	return nil
}

// WriteText writes r as a matrix (keyboards down, triggers across; each cell its outcome and
// total time), then one line per cell that did not pass, then the verdict.
func WriteText(w io.Writer, r *Result) error {
	var kbds, trigs []string
	seen := map[string]bool{}
	for _, c := range r.Cells {
		if k := "k" + string(c.Keyboard); !seen[k] {
			seen[k] = true
			kbds = append(kbds, string(c.Keyboard))
		}
		if t := "t" + c.Trigger; !seen[t] {
			seen[t] = true
			trigs = append(trigs, c.Trigger)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "image: %s (accel %s)\n", r.Image, r.Accel)
	tw := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprint(tw, "KEYBOARD")
	for _, t := range trigs {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(t))
	}
	fmt.Fprintln(tw)
	for _, k := range kbds {
		fmt.Fprint(tw, k)
		for _, t := range trigs {
			if c := r.cell(k, t); c != nil {
				fmt.Fprintf(tw, "\t%s %.1fs", c.Outcome, seconds(c.Timings.Total))
			} else {
				fmt.Fprint(tw, "\tnot run")
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, c := range r.Cells {
		if !c.Passed {
			fmt.Fprintf(&b, "%s × %s: %s\n", c.Keyboard, c.Trigger, oneLine(c.Summary))
		}
	}
	verdict := "certified: every cell crashed with the expected bug check and a valid dump"
	if !r.Passed {
		verdict = "NOT certified: see the cells above"
	}
	if r.Error != "" {
		verdict = "NOT certified: stopped: " + oneLine(r.Error)
	}
	fmt.Fprintf(&b, "%s (%.1fs)\n", verdict, seconds(r.Duration))
	_, err := io.WriteString(w, b.String())
	return err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// JUnit XML (the schema Jenkins, GitLab and GitHub test reporters read).
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	Error     *junitFailure `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func junitTime(d time.Duration) string { return fmt.Sprintf("%.3f", d.Seconds()) }

// JUnit returns r as JUnit XML: one test suite for the image, one test case per cell (name
// "KEYBOARD/TRIGGER", class "crashkey.selftest"), a failure for each cell that did not pass.
func JUnit(r *Result) ([]byte, error) {
	s := junitSuite{
		Name:  "crashkey selftest " + r.Image,
		Tests: len(r.Cells),
		Time:  junitTime(r.Duration),
		Properties: []junitProperty{
			{"image", r.Image}, {"accel", r.Accel},
		},
	}
	for _, c := range r.Cells {
		jc := junitCase{
			Name:      string(c.Keyboard) + "/" + c.Trigger,
			Classname: "crashkey.selftest",
			Time:      junitTime(c.Timings.Total),
			SystemOut: fmt.Sprintf("outcome: %s\nsummary: %s\nboot %.1fs, arm %.1fs, crash+dump %.1fs\n",
				c.Outcome, oneLine(c.Summary), seconds(c.Timings.Boot), seconds(c.Timings.Arm), seconds(c.Timings.Crash)),
		}
		if !c.Passed {
			s.Failures++
			jc.Failure = &junitFailure{Message: oneLine(c.Summary), Type: c.Outcome, Text: c.Summary}
		}
		s.Cases = append(s.Cases, jc)
	}
	if r.Error != "" {
		// The matrix stopped (no agent, interrupted): one errored case says why, so that a CI
		// report never shows a stopped run as an empty, green suite.
		s.Tests++
		s.Errors++
		s.Cases = append(s.Cases, junitCase{Name: "selftest", Classname: "crashkey.selftest", Time: junitTime(0),
			Error: &junitFailure{Message: oneLine(r.Error), Type: "stopped", Text: r.Error}})
	}
	doc := junitSuites{Name: "crashkey selftest", Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Time: s.Time, Suites: []junitSuite{s}}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("junit: %w", err)
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

// WriteJUnit writes r's JUnit XML to path atomically (a reader never sees half a file).
func WriteJUnit(path string, r *Result) error {
	b, err := JUnit(r)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("junit: %w", err)
	}
	return nil
}
