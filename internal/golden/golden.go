// Package golden compares test output with golden files, and rewrites them when the tests run
// with -update (go test ./pkg -run TestX -update). It is imported by tests only.
package golden

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// Check compares got with the file at path (relative to the test's package directory), or,
// with -update, writes got there (creating directories).
func Check(t testing.TB, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (create it with: go test -run '%s' -update)", err, t.Name())
	}
	if string(want) != string(got) {
		t.Errorf("%s differs (go test -run '%s' -update rewrites it if the change is intended):\n--- want\n%s\n--- got\n%s", path, t.Name(), want, got)
	}
}

// CheckString is Check for text.
func CheckString(t testing.TB, path, got string) {
	t.Helper()
	Check(t, path, []byte(got))
}
