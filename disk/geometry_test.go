package disk

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

var geometryOnce sync.Once

// geometry builds the images of testdata/mkgeometry.sh once and returns their directory.
func geometry(tb testing.TB) string {
	tb.Helper()
	dir := filepath.Join(scratch(tb), "geometry")
	var out []byte
	var err error
	geometryOnce.Do(func() { out, err = exec.Command("bash", "testdata/mkgeometry.sh", dir).CombinedOutput() })
	if err != nil {
		tb.Fatalf("mkgeometry.sh: %v\n%s", err, out)
	}
	return dir
}

// TestGeometry reads every file of volumes with 2 MiB and 128 KiB clusters and of 4Kn disks
// (GPT with 4096-byte LBAs, NTFS with 4096-byte sectors) and compares it with what ntfscat
// read from the raw volume; the extents of each file on the virtual disk hold the same bytes.
func TestGeometry(t *testing.T) {
	dir := geometry(t)
	b, err := os.ReadFile(filepath.Join(dir, "manifest.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 16 {
		t.Fatalf("manifest has %d lines", len(lines))
	}
	for _, l := range lines {
		f := strings.Split(l, "\t")
		image, path, sum := f[0], f[2], f[4]
		size, _ := strconv.ParseInt(f[3], 10, 64)
		cs, _ := strconv.ParseInt(f[5], 10, 64)
		t.Run(image+"/"+path, func(t *testing.T) {
			im := openFixtureAt(t, filepath.Join(dir, image))
			fs, err := im.Volume(1)
			if err != nil {
				t.Fatal(err)
			}
			if fs.ClusterSize() != cs || fs.Volume().TypeName != "Microsoft basic data" {
				t.Errorf("cluster size %d, type %q; want %d, Microsoft basic data", fs.ClusterSize(), fs.Volume().TypeName, cs)
			}
			fl, err := fs.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if fl.Size() != size || sha(t, fl, size) != sum {
				t.Fatalf("%s: %d bytes, sha256 differs from ntfscat's", path, fl.Size())
			}
			ext, err := fl.Extents()
			if size < 4096 {
				return // resident
			}
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, size)
			if _, err := fl.ReadAt(want, 0); err != nil {
				t.Fatal(err)
			}
			for _, e := range ext {
				got := make([]byte, e.Length)
				if _, err := io.ReadFull(io.NewSectionReader(im, e.DiskOffset, e.Length), got); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want[e.FileOffset:e.FileOffset+e.Length]) {
					t.Fatalf("extent %+v does not hold the file's bytes", e)
				}
			}
		})
	}
}

func openFixtureAt(tb testing.TB, p string) *Image {
	tb.Helper()
	im, err := Open(p, Options{})
	if err != nil {
		tb.Fatalf("Open(%s): %v", p, err)
	}
	tb.Cleanup(func() { im.Close() })
	return im
}
