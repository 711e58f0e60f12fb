package dump

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	gold "github.com/crashkey/crashkey/internal/golden"
)

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	gold.Check(t, filepath.Join("testdata", name+".golden"), got)
}

func TestReportGolden(t *testing.T) {
	nmi := baseSpec(TypeFull, true)
	nmi.BugCheck, nmi.Params = BugCheckNMIHardwareFailure, [4]uint64{0x4F4454, 0, 0, 0}
	nmi.Attributes = ptr(uint32(AttrLiveDumpGeneratedDump | AttrDumpIsGeneratedOffline))
	tests := []struct {
		name string
		data []byte
		opts CheckOptions
	}{
		{"bitmap-kernel-deep", writeDump(t, baseSpec(TypeBitmapKernel, true), nil), CheckOptions{Deep: true, ExpectBugCheck: ptr(uint32(0xE2))}},
		{"full32", writeDump(t, baseSpec(TypeFull, false), nil), CheckOptions{}},
		{"nmi-expect-e2", writeDump(t, nmi, nil), CheckOptions{ExpectBugCheck: ptr(uint32(0xE2))}},
		{"triage", triageDump(), CheckOptions{}},
		{"truncated", writeDump(t, baseSpec(TypeBitmapFull, true), nil)[:0x30000], CheckOptions{Deep: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := check(t, open(t, tt.data), tt.opts)
			var text bytes.Buffer
			if err := r.WriteText(&text, tt.name+".dmp"); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".txt", text.Bytes())
			js, err := json.MarshalIndent(r, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name+".json", append(js, '\n'))
			var back map[string]any
			if err := json.Unmarshal(js, &back); err != nil || back["verdict"] != r.Verdict.String() {
				t.Errorf("JSON round trip: %v, verdict %v", err, back["verdict"])
			}
		})
	}
}
