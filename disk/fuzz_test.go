package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"testing"
)

// mbrSeed builds a small MBR disk: a primary NTFS partition and an extended partition
// with two logical partitions linked by EBRs.
func mbrSeed() []byte {
	d := make([]byte, 64<<10)
	entry := func(sector []byte, i int, typ byte, start, size uint32) {
		e := sector[446+16*i:]
		e[4] = typ
		binary.LittleEndian.PutUint32(e[8:], start)
		binary.LittleEndian.PutUint32(e[12:], size)
	}
	sig := func(off int) { d[off+510], d[off+511] = 0x55, 0xAA }
	entry(d, 0, 0x07, 1, 10)
	entry(d, 1, 0x0F, 20, 100)
	sig(0)
	ebr1 := d[20*512:]
	entry(ebr1, 0, 0x07, 2, 10)
	entry(ebr1, 1, 0x05, 30, 20)
	sig(20 * 512)
	ebr2 := d[50*512:]
	entry(ebr2, 0, 0x83, 2, 5)
	sig(50 * 512)
	return d
}

// gptSeed builds a small GPT disk with two partitions and valid checksums.
func gptSeed() []byte {
	d := make([]byte, 64<<10)
	d[446+4] = 0xEE
	binary.LittleEndian.PutUint32(d[446+8:], 1)
	binary.LittleEndian.PutUint32(d[446+12:], 127)
	d[510], d[511] = 0x55, 0xAA
	ents := d[1024 : 1024+128*128]
	for i, p := range []struct{ first, last uint64 }{{40, 59}, {60, 99}} {
		e := ents[i*128:]
		copy(e, []byte{0xA2, 0xA0, 0xD0, 0xEB, 0xE5, 0xB9, 0x33, 0x44, 0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7})
		e[16] = byte(i + 1)
		binary.LittleEndian.PutUint64(e[32:], p.first)
		binary.LittleEndian.PutUint64(e[40:], p.last)
		copy(e[56:], []byte{'d', 0, 'a', 0, 't', 0, 'a', 0})
	}
	h := d[512:]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x10000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], 1)
	binary.LittleEndian.PutUint64(h[32:], 127)
	binary.LittleEndian.PutUint64(h[40:], 34)
	binary.LittleEndian.PutUint64(h[48:], 100)
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	return d
}

func TestSeeds(t *testing.T) {
	parts, scheme, err := readPartitions(bytes.NewReader(mbrSeed()), 64<<10)
	if err != nil || scheme != SchemeMBR || len(parts) != 4 || parts[3].index != 6 || !parts[3].logical {
		t.Errorf("mbr seed: %v %s %+v", err, scheme, parts)
	}
	parts, scheme, err = readPartitions(bytes.NewReader(gptSeed()), 64<<10)
	if err != nil || scheme != SchemeGPT || len(parts) != 2 || parts[1].start != 60*512 || parts[0].name != "data" {
		t.Errorf("gpt seed: %v %s %+v", err, scheme, parts)
	}
}

func FuzzPartitions(f *testing.F) {
	f.Add(mbrSeed())
	f.Add(gptSeed())
	f.Add(make([]byte, 512))
	f.Fuzz(func(t *testing.T, data []byte) {
		parts, scheme, err := readPartitions(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if parts != nil {
				t.Fatalf("error %v with partitions %+v", err, parts)
			}
			return
		}
		if scheme == "" {
			t.Fatal("no scheme and no error")
		}
		for _, p := range parts {
			if p.start < 0 || p.size <= 0 || p.start+p.size > int64(len(data)) {
				t.Fatalf("partition %+v outside the %d-byte disk", p, len(data))
			}
		}
	})
}

func readSeed(f *testing.F, name string) []byte {
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzImage feeds whole qcow2 (or other) image files to the image layer, the partition
// reader and the volume probe.
func FuzzImage(f *testing.F) {
	// openReader gives no Resolver: a fuzzed image can never open a file of this machine.
	for _, n := range []string{"tiny.qcow2", "tinyc.qcow2", "tinyz.qcow2"} {
		f.Add(readSeed(f, n))
	}
	f.Add(gptSeed())
	f.Fuzz(func(t *testing.T, data []byte) {
		im, err := openReader(bytes.NewReader(data), int64(len(data)), "fuzz.img", Options{})
		if err != nil {
			if im != nil {
				t.Fatal("error with an image")
			}
			return
		}
		defer im.Close()
		if im.Size() < 0 {
			t.Fatalf("size %d", im.Size())
		}
		// The first 256 KiB, then a few reads spread over the disk.
		buf := make([]byte, 32<<10)
		for off := int64(0); off < im.Size() && off < 256<<10; off += int64(len(buf)) {
			if _, err := im.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
				break
			}
		}
		for i := int64(1); i < 8; i++ {
			_, _ = im.ReadAt(buf[:4096], im.Size()/8*i)
		}
		if fs, err := im.WindowsVolume(); err == nil {
			_, _ = fs.ReadDir("Windows")
		}
	})
}

var ntfsBase struct {
	once sync.Once
	vol  []byte
	mft  int64
}

// FuzzNTFS patches bytes into a real NTFS volume (mostly into its MFT) and reads it.
func FuzzNTFS(f *testing.F) {
	ntfsBase.once.Do(func() {
		ntfsBase.vol = volumeBytes(f, "overlay.qcow2")
		ntfsBase.mft = mftOffset(ntfsBase.vol, 0)
	})
	f.Add(uint32(5*1024+0x38), []byte{0xFF, 0xFF})
	f.Add(uint32(65*1024+0x100), []byte{0x41, 0x20, 0xFF})
	f.Add(uint32(0), []byte("NTFS"))
	f.Add(uint32(1), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		vol := bytes.Clone(ntfsBase.vol)
		var at int64
		switch off % 4 {
		case 0, 1: // the first 96 MFT records
			at = ntfsBase.mft + int64(off/4)%(96*1024)
		case 2: // the boot sector
			at = int64(off/4) % 512
		default: // anywhere
			at = int64(off/4) % int64(len(vol))
		}
		copy(vol[at:], patch)
		im, err := openReader(bytes.NewReader(vol), int64(len(vol)), "fuzz.img", Options{})
		if err != nil {
			return
		}
		defer im.Close()
		fs, err := im.WindowsVolume()
		if err != nil {
			return
		}
		ents, err := fs.ReadDir("Windows")
		if err != nil && ents != nil {
			t.Fatal("error with entries")
		}
		for _, p := range []string{`Windows\MEMORY.DMP`, `pagefile.sys`} {
			fl, err := fs.Open(p)
			if err != nil {
				continue
			}
			_, _ = fl.Extents()
			n := min(fl.Size(), 4<<20)
			_, _ = io.Copy(io.Discard, io.NewSectionReader(fl, 0, n))
		}
	})
}
