package disk

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crashkey/crashkey/internal/sourcetest"
)

// readDump opens img from src, finds \Windows\MEMORY.DMP through a directory walk and
// returns the sha256 of its bytes.
func readDump(src Source) (string, error) {
	img, err := OpenSource(src, Options{})
	if err != nil {
		return "", err
	}
	defer img.Close()
	fs, err := img.WindowsVolume()
	if err != nil {
		return "", err
	}
	var dump *DirEntry
	err = fs.ReadDirFunc(`Windows`, func(e DirEntry) error {
		if strings.EqualFold(e.Name, "MEMORY.DMP") {
			dump = &e
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if dump == nil {
		return "", errors.New("no MEMORY.DMP listed")
	}
	fl, err := fs.OpenEntry(*dump)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(fl, 0, fl.Size())); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TestSourceErrorsStayIOErrors breaks the source (a qcow2 and a raw image) after every
// number of reads: each failure is reported as the source's error (a SourceError naming
// the source), never as a corrupt image, a missing volume or a missing file; short reads
// change nothing.
func TestSourceErrorsStayIOErrors(t *testing.T) {
	needTool(t, "qemu-img")
	raw := filepath.Join(t.TempDir(), "gpt.raw")
	run(t, "qemu-img", "convert", "-O", "raw", "testdata/gpt.qcow2", raw)
	for _, name := range []string{"testdata/gpt.qcow2", raw} {
		t.Run(filepath.Base(name), func(t *testing.T) {
			whole := sourcetest.Open(t, name)
			want, err := readDump(whole)
			if err != nil {
				t.Fatal(err)
			}
			short := sourcetest.Open(t, name)
			short.Short = 700
			if got, err := readDump(short); err != nil || got != want {
				t.Errorf("short reads: sha256 %s, %v; want %s", got, err, want)
			}
			for _, cut := range sourcetest.Cuts(whole.Reads()) {
				s := sourcetest.Open(t, name)
				s.FailAfter = cut
				_, err := readDump(s)
				var se *SourceError
				switch {
				case err == nil:
					t.Errorf("cut after %d of %d reads: no error", cut, whole.Reads())
				case !errors.Is(err, sourcetest.ErrStream) || !errors.As(err, &se) || errors.Is(err, ErrCorruptImage) ||
					errors.Is(err, ErrNoVolume) || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), s.Name()):
					t.Errorf("cut after %d of %d reads: err = %v; want the stream's error naming the source, not corruption", cut, whole.Reads(), err)
				}
			}
		})
	}
}
