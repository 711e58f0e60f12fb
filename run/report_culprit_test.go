package run

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/dump/analyze"
)

func TestReportCulpritLine(t *testing.T) {
	off := analyze.Hex(0x1234)
	rep := &Report{Target: "qmp unix:/x", Trigger: "keys", Outcome: OutcomeDumpOK, Summary: "ok",
		Culprit: &analyze.Culprit{Module: "mydriver.sys", Offset: &off, Evidence: "bug-check parameter 4 is mydriver.sys+0x1234"}}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "culprit:  probably caused by mydriver.sys (mydriver.sys+0x1234)\n") {
		t.Errorf("text report:\n%s", b.String())
	}
	j, err := json.Marshal(rep)
	if err != nil || !strings.Contains(string(j), `"culprit":{"module":"mydriver.sys","offset":"0x1234","evidence":"bug-check parameter 4 is mydriver.sys+0x1234","microsoft":false}`) {
		t.Errorf("json %s %v", j, err)
	}
}
