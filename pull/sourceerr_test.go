package pull

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/disk"
	"github.com/crashkey/crashkey/internal/sourcetest"
)

// TestSourceErrorsAreNotNoDump breaks the image's source after every number of reads
// during a pull (MEMORY.DMP, then the minidumps, then --list): each failure is the
// source's I/O error naming it, never "no dump found" nor a corrupt image.
func TestSourceErrorsAreNotNoDump(t *testing.T) {
	const image = "../disk/testdata/gpt.qcow2"
	ops := []struct {
		name string
		do   func(img *disk.Image, out string) error
	}{
		{"pull", func(img *disk.Image, out string) error {
			_, err := Pull(context.Background(), img, Options{OutDir: out})
			return err
		}},
		{"minidumps", func(img *disk.Image, out string) error {
			_, err := PullMinidumps(context.Background(), img, Options{OutDir: out})
			return err
		}},
		{"list", func(img *disk.Image, _ string) error {
			_, err := ListContext(context.Background(), img, Sources{})
			return err
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			try := func(src *sourcetest.Flaky) error {
				img, err := disk.OpenSource(src, disk.Options{})
				if err != nil {
					return err
				}
				defer img.Close()
				return op.do(img, t.TempDir())
			}
			whole := sourcetest.Open(t, image)
			if err := try(whole); err != nil {
				t.Fatal(err)
			}
			short := sourcetest.Open(t, image)
			short.Short = 1000
			if err := try(short); err != nil {
				t.Errorf("short reads: %v", err)
			}
			for _, cut := range sourcetest.Cuts(whole.Reads()) {
				s := sourcetest.Open(t, image)
				s.FailAfter = cut
				err := try(s)
				var se *disk.SourceError
				if err == nil || !errors.As(err, &se) || !errors.Is(err, sourcetest.ErrStream) || errors.Is(err, ErrNoDump) ||
					errors.Is(err, disk.ErrCorruptImage) || !strings.Contains(err.Error(), s.Name()) {
					t.Errorf("cut after %d of %d reads: err = %v; want the stream's I/O error naming the source", cut, whole.Reads(), err)
				}
			}
		})
	}
}
