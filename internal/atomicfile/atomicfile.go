// Package atomicfile writes files so that readers see the old file or the whole new one, never
// a part: the content goes to a temporary file in the same directory, which is renamed into
// place only when everything succeeded, and removed otherwise.
package atomicfile

import (
	"io"
	"os"
	"path/filepath"
)

// TempPattern is the pattern of the temporary file names (for os.CreateTemp): short and of
// fixed length, so that it fits NAME_MAX (255 bytes) whatever the final name is.
const TempPattern = ".crashkey-*.tmp"

// Write creates or replaces path with what fill writes, atomically, with permissions perm.
func Write(path string, perm os.FileMode, fill func(w io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), TempPattern)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if err = fill(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// WriteFile is os.WriteFile, atomically.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	return Write(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
