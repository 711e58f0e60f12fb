package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sfdiskImage writes a sparse disk of size bytes with the sfdisk script and returns it.
func sfdiskImage(tb testing.TB, size int64, script string) string {
	tb.Helper()
	needTool(tb, "sfdisk")
	p := filepath.Join(tb.TempDir(), "disk.img")
	if err := os.Truncate(createEmpty(tb, p), size); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command("sfdisk", "-q", p)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("sfdisk: %v\n%s", err, out)
	}
	return p
}

func createEmpty(tb testing.TB, p string) string {
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	f.Close()
	return p
}

func patch(tb testing.TB, p string, off int64, b []byte) {
	tb.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		tb.Fatal(err)
	}
}

func partsOf(tb testing.TB, p string) ([]part, string, error) {
	tb.Helper()
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	return readPartitions(f, st.Size())
}

const gptScript = `label: gpt
unit: sectors
start=2048, size=2048, type=E3C9E316-0B5C-4DB8-817D-F92DF00215AE
start=4096, size=8192, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name="Basic data partition"
`

const mbrScript = `label: dos
unit: sectors
start=2048, size=2048, type=7
start=4096, size=20480, type=f
start=6144, size=2048, type=7
start=10240, size=2048, type=83
start=14336, size=4096, type=7
`

func TestPartitionTables(t *testing.T) {
	type want struct {
		index   int
		start   int64
		logical bool
	}
	tests := []struct {
		name   string
		script string
		size   int64
		fix    func(t *testing.T, p string)
		scheme string
		parts  []want
		err    string
	}{
		{name: "gpt", script: gptScript, size: 8 << 20, scheme: SchemeGPT,
			parts: []want{{1, 2048 * 512, false}, {2, 4096 * 512, false}}},
		{name: "gpt primary header damaged, backup used", script: gptScript, size: 8 << 20, scheme: SchemeGPT,
			fix:   func(t *testing.T, p string) { patch(t, p, 512+24, []byte{9}) },
			parts: []want{{1, 2048 * 512, false}, {2, 4096 * 512, false}}},
		{name: "gpt primary entries damaged, backup used", script: gptScript, size: 8 << 20, scheme: SchemeGPT,
			fix:   func(t *testing.T, p string) { patch(t, p, 1024+32, []byte{0xFF}) },
			parts: []want{{1, 2048 * 512, false}, {2, 4096 * 512, false}}},
		{name: "gpt both headers damaged", script: gptScript, size: 8 << 20,
			fix: func(t *testing.T, p string) {
				patch(t, p, 512, []byte("XXX PART"))
				patch(t, p, 8<<20-512, []byte("XXX PART"))
			},
			err: "backup GPT"},
		{name: "gpt partition past the end (truncated image)", script: gptScript, size: 8 << 20,
			fix: func(t *testing.T, p string) { os.Truncate(p, 5<<20) },
			err: "ends past the end"},
		{name: "mbr with logical partitions", script: mbrScript, size: 16 << 20, scheme: SchemeMBR,
			parts: []want{{1, 2048 * 512, false}, {2, 4096 * 512, false}, {5, 6144 * 512, true}, {6, 10240 * 512, true}, {7, 14336 * 512, true}}},
		{name: "mbr partition past the end", script: mbrScript, size: 16 << 20,
			fix: func(t *testing.T, p string) { os.Truncate(p, 8<<20) },
			err: "ends past the end"},
		{name: "ebr chain loop", script: mbrScript, size: 16 << 20,
			fix: func(t *testing.T, p string) {
				// Point the second logical's "next" link back at the first EBR.
				b := make([]byte, 4)
				f, _ := os.Open(p)
				f.ReadAt(b, 4096*512+446+16+8) // first EBR's link: offset of the second EBR
				f.Close()
				second := int64(binary.LittleEndian.Uint32(b))
				binary.LittleEndian.PutUint32(b, 0)
				patch(t, p, (4096+second)*512+446+16+8, []byte{0, 0, 0, 0})
				patch(t, p, (4096+second)*512+446+16+4, []byte{5})
				// a zero offset ends the chain, so make it loop to itself instead
				binary.LittleEndian.PutUint32(b, uint32(second))
				patch(t, p, (4096+second)*512+446+16+8, b)
			},
			err: "loops"},
		{name: "no boot signature", script: "", size: 1 << 20, err: "no boot signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p string
			if tt.script == "" {
				p = createEmpty(t, filepath.Join(t.TempDir(), "empty.img"))
				os.Truncate(p, tt.size)
			} else {
				p = sfdiskImage(t, tt.size, tt.script)
			}
			if tt.fix != nil {
				tt.fix(t, p)
			}
			parts, scheme, err := partsOf(t, p)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want one containing %q (parts %+v)", err, tt.err, parts)
				}
				if !errors.Is(err, ErrPartitionTable) {
					t.Errorf("err %v does not wrap ErrPartitionTable", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if scheme != tt.scheme || len(parts) != len(tt.parts) {
				t.Fatalf("scheme %s, parts %+v; want %s %+v", scheme, parts, tt.scheme, tt.parts)
			}
			for i, w := range tt.parts {
				if parts[i].index != w.index || parts[i].start != w.start || parts[i].logical != w.logical {
					t.Errorf("part %d = %+v, want %+v", i, parts[i], w)
				}
			}
		})
	}
}

// volumeBytes reads a whole bare NTFS volume out of a fixture through the reader itself.
func volumeBytes(tb testing.TB, name string) []byte {
	tb.Helper()
	im := openFixture(tb, name, Options{})
	b := make([]byte, im.Size())
	if _, err := im.ReadAt(b, 0); err != nil {
		tb.Fatal(err)
	}
	return b
}

// mftOffset returns the byte offset of MFT record rec in a bare NTFS volume.
func mftOffset(vol []byte, rec int64) int64 {
	bps := int64(binary.LittleEndian.Uint16(vol[11:]))
	spc := int64(vol[13])
	mftLCN := int64(binary.LittleEndian.Uint64(vol[48:]))
	return mftLCN*bps*spc + rec*1024
}

func TestCorruptNTFS(t *testing.T) {
	base := volumeBytes(t, "overlay.qcow2")
	tests := []struct {
		name  string
		fix   func(v []byte)
		check func(t *testing.T, im *Image)
	}{
		{"boot sector cluster size zeroed", func(v []byte) { v[13] = 0 }, func(t *testing.T, im *Image) {
			if _, err := im.WindowsVolume(); err == nil {
				t.Fatal("no error")
			}
		}},
		{"root directory record magic broken", func(v []byte) { copy(v[mftOffset(v, 5):], "BAAD") }, func(t *testing.T, im *Image) {
			if _, err := im.WindowsVolume(); err == nil {
				t.Fatal("no error")
			}
		}},
		{"file record fixup broken", func(v []byte) {
			off := mftOffset(v, 65)
			v[off+510] ^= 0xFF // the update sequence number at the end of the first sector
		}, func(t *testing.T, im *Image) {
			fs, err := im.WindowsVolume()
			if err != nil {
				return
			}
			if _, err := fs.Open(`Windows\MEMORY.DMP`); err == nil {
				t.Fatal("no error")
			}
		}},
		{"run list points past the volume", func(v []byte) {
			off := mftOffset(v, 65)
			// find the $DATA attribute (type 0x80) and corrupt its run list
			a := off + int64(binary.LittleEndian.Uint16(v[off+20:]))
			for i := 0; i < 16 && binary.LittleEndian.Uint32(v[a:]) != 0x80; i++ {
				a += int64(binary.LittleEndian.Uint32(v[a+4:]))
			}
			rl := a + int64(binary.LittleEndian.Uint16(v[a+32:]))
			copy(v[rl:], []byte{0x41, 0x20, 0xFF, 0xFF, 0xFF, 0x7F, 0})
		}, func(t *testing.T, im *Image) {
			fs, err := im.WindowsVolume()
			if err != nil {
				t.Fatal(err)
			}
			f, err := fs.Open(`Windows\MEMORY.DMP`)
			if err != nil {
				return
			}
			if _, err := f.Extents(); err == nil {
				t.Error("Extents: no error")
			}
			_, err = io.Copy(io.Discard, io.NewSectionReader(f, 0, f.Size()))
			if err == nil {
				t.Error("read: no error")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := bytes.Clone(base)
			tt.fix(v)
			done := make(chan struct{})
			go func() {
				defer close(done)
				im, err := openReader(bytes.NewReader(v), int64(len(v)), "corrupt.img", Options{})
				if err != nil {
					return // an error is a fine answer
				}
				defer im.Close()
				tt.check(t, im)
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("hung")
			}
		})
	}
}

func TestCorruptQcow2(t *testing.T) {
	orig, err := os.ReadFile("testdata/gpt.qcow2")
	if err != nil {
		t.Fatal(err)
	}
	be := binary.BigEndian
	l1Off := int64(be.Uint64(orig[40:]))
	tests := []struct {
		name string
		fix  func(b []byte) []byte
		want string // in the error of Open or of reading the Windows volume
	}{
		{"truncated to the header", func(b []byte) []byte { return b[:300] }, "L1 table"},
		{"truncated to 30%", func(b []byte) []byte { return b[:len(b)*3/10] }, ""},
		{"truncated to 70%", func(b []byte) []byte { return b[:len(b)*7/10] }, ""},
		{"cluster bits 40", func(b []byte) []byte { be.PutUint32(b[20:], 40); return b }, "cluster_bits"},
		{"huge L1 table", func(b []byte) []byte { be.PutUint32(b[36:], 0xFFFFFFF0); return b }, "L1 table"},
		{"L1 offset past the end", func(b []byte) []byte { be.PutUint64(b[40:], 1<<40); return b }, "past the end"},
		{"L1 offset unaligned", func(b []byte) []byte { be.PutUint64(b[40:], uint64(l1Off+8)); return b }, "aligned"},
		{"virtual size absurd", func(b []byte) []byte { be.PutUint64(b[24:], 1<<62); return b }, "absurd"},
		{"bad L2 table pointer", func(b []byte) []byte { be.PutUint64(b[l1Off:], 0x8000000000000000|1<<40); return b }, ""},
		{"bad version", func(b []byte) []byte { be.PutUint32(b[4:], 7); return b }, "version"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.fix(bytes.Clone(orig))
			p := filepath.Join(t.TempDir(), "bad.qcow2")
			os.WriteFile(p, b, 0o644)
			im, err := Open(p, Options{})
			if err == nil {
				defer im.Close()
				var fs *FS
				fs, err = im.WindowsVolume()
				if err == nil {
					var f *File
					f, err = fs.Open(`Windows\MEMORY.DMP`)
					if err == nil {
						_, err = io.Copy(io.Discard, io.NewSectionReader(f, 0, f.Size()))
					}
				}
				if err == nil { // the damage may lie elsewhere: read the whole disk
					_, err = io.Copy(io.Discard, io.NewSectionReader(im, 0, im.Size()))
				}
			}
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestStaleIndexEntry changes the sequence number an index entry expects, as happens when
// a file is deleted and its record reused: the name must no longer resolve.
func TestStaleIndexEntry(t *testing.T) {
	v := volumeBytes(t, "overlay.qcow2")
	name := []byte{'M', 0, 'E', 0, 'M', 0, 'O', 0, 'R', 0, 'Y', 0, '.', 0, 'D', 0, 'M', 0, 'P', 0}
	mft := mftOffset(v, 0)
	region := v[mft : mft+128*1024]
	// Record 64 (\Windows, whose resident index lists MEMORY.DMP) comes before the file's
	// own record, so the first occurrence of the name is in the index entry: 0x10 bytes of
	// entry header and 0x42 bytes of $FILE_NAME precede it.
	i := bytes.Index(region, name)
	if i < 0x52 {
		t.Fatal("no index entry for MEMORY.DMP in the first MFT records")
	}
	entry := mft + int64(i) - 0x52
	seq := binary.LittleEndian.Uint16(v[entry+6:])
	if seq == 0 {
		t.Fatalf("index entry at %d has sequence number 0", entry)
	}
	im, err := openReader(bytes.NewReader(v), int64(len(v)), "ok.img", Options{})
	if err != nil {
		t.Fatal(err)
	}
	fs, _ := im.WindowsVolume()
	if _, err := fs.Open(`Windows\MEMORY.DMP`); err != nil {
		t.Fatalf("before the change: %v", err)
	}
	binary.LittleEndian.PutUint16(v[entry+6:], seq+1)
	im, err = openReader(bytes.NewReader(v), int64(len(v)), "stale.img", Options{})
	if err != nil {
		t.Fatal(err)
	}
	fs, _ = im.WindowsVolume()
	_, err = fs.Open(`Windows\MEMORY.DMP`)
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "sequence number") {
		t.Fatalf("err = %v, want ErrNotFound for a stale entry", err)
	}
}
