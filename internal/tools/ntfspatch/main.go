// Command ntfspatch damages an NTFS volume file (a raw volume made by mkntfs) at explicit,
// computed offsets, to build crashkey's hostile-image fixtures (disk/testdata/mkhostile.sh).
// It parses only what it needs (boot sector, MFT records, attribute headers, run lists),
// independently of crashkey's disk package and of go-ntfs.
//
//	ntfspatch index VOL BYTES   the root directory's $I30 index allocation claims BYTES
//	                            (one run of BYTES/cluster clusters from its first cluster)
//	ntfspatch fill VOL BYTES    as index, and fill every cluster of that run with a copy of
//	                            the first index block: a structurally valid, huge index
//	ntfspatch nobitmap VOL      rename the root directory's $I30 $BITMAP (to $I3X), so that
//	                            no bitmap says which index blocks are in use
//	ntfspatch bitmapall VOL     mark every block of the root's $I30 index in use (its
//	                            resident $BITMAP all ones)
//	ntfspatch fixup VOL NAME    break the update-sequence fixup of the MFT record of NAME
//	                            (a file or directory, by its name)
//	ntfspatch runpast VOL NAME  point the first data run of NAME past the end of the volume
//
// Each prints what it changed, with the byte offsets.
package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"unicode/utf16"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "ntfspatch:", err)
		os.Exit(1)
	}
}

type volume struct {
	f           *os.File
	size        int64
	clusterSize int64
	mftOff      int64
	recSize     int64
}

var le = binary.LittleEndian

func open(path string) (*volume, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	boot := make([]byte, 512)
	if _, err := f.ReadAt(boot, 0); err != nil {
		return nil, err
	}
	if string(boot[3:11]) != "NTFS    " {
		return nil, errors.New("not an NTFS boot sector")
	}
	bps := int64(le.Uint16(boot[0x0B:]))
	spc := int64(boot[0x0D])
	if boot[0x0D] >= 0xF0 {
		spc = 1 << (256 - int(boot[0x0D]))
	}
	v := &volume{f: f, clusterSize: bps * spc}
	v.size = int64(le.Uint64(boot[0x28:])) * bps
	v.mftOff = int64(le.Uint64(boot[0x30:])) * v.clusterSize
	if c := int8(boot[0x40]); c < 0 {
		v.recSize = 1 << uint(-c)
	} else {
		v.recSize = int64(c) * v.clusterSize
	}
	return v, nil
}

// record reads MFT record n with its fixups undone.
func (v *volume) record(n int64) ([]byte, int64, error) {
	off := v.mftOff + n*v.recSize
	b := make([]byte, v.recSize)
	if _, err := v.f.ReadAt(b, off); err != nil {
		return nil, 0, err
	}
	if string(b[:4]) != "FILE" {
		return nil, off, fmt.Errorf("record %d at byte %d has no FILE signature", n, off)
	}
	usa, cnt := int(le.Uint16(b[4:])), int(le.Uint16(b[6:]))
	for i := 1; i < cnt; i++ {
		end := i*512 - 2
		if b[end] != b[usa] || b[end+1] != b[usa+1] {
			return nil, off, fmt.Errorf("record %d: fixup mismatch in sector %d", n, i)
		}
		b[end], b[end+1] = b[usa+2*i], b[usa+2*i+1]
	}
	return b, off, nil
}

// write stores record b at off, redoing its fixups.
func (v *volume) write(b []byte, off int64) error {
	usa, cnt := int(le.Uint16(b[4:])), int(le.Uint16(b[6:]))
	out := append([]byte(nil), b...)
	for i := 1; i < cnt; i++ {
		end := i*512 - 2
		out[usa+2*i], out[usa+2*i+1] = out[end], out[end+1]
		out[end], out[end+1] = out[usa], out[usa+1]
	}
	_, err := v.f.WriteAt(out, off)
	return err
}

type attr struct {
	off  int // in the record
	typ  uint32
	name string
}

func attrs(b []byte) []attr {
	var out []attr
	for off := int(le.Uint16(b[0x14:])); off+16 <= len(b); {
		typ := le.Uint32(b[off:])
		if typ == 0xFFFFFFFF {
			break
		}
		n := int(le.Uint32(b[off+4:]))
		if n < 16 || off+n > len(b) {
			break
		}
		nl, no := int(b[off+9]), int(le.Uint16(b[off+10:]))
		out = append(out, attr{off, typ, utf16At(b[off+no:], nl)})
		off += n
	}
	return out
}

func utf16At(b []byte, n int) string {
	u := make([]uint16, n)
	for i := range u {
		u[i] = le.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// find returns the number of the record whose $FILE_NAME is name (in any directory).
func (v *volume) find(name string) (int64, error) {
	for n := int64(16); n < 4096; n++ {
		b, _, err := v.record(n)
		if err != nil {
			continue
		}
		for _, a := range attrs(b) {
			if a.typ != 0x30 || b[a.off+8] != 0 {
				continue
			}
			c := b[a.off+int(le.Uint16(b[a.off+0x14:])):]
			if strings.EqualFold(utf16At(c[0x42:], int(c[0x40])), name) {
				return n, nil
			}
		}
	}
	return 0, fmt.Errorf("no record named %q", name)
}

// encodeRun writes one mapping pair (length clusters at lcn, relative to 0) and the end
// marker into dst.
func encodeRun(dst []byte, length, lcn int64) (int, error) {
	lb := bytesFor(length, false)
	ob := bytesFor(lcn, true)
	need := 1 + lb + ob + 1
	if need > len(dst) {
		return 0, fmt.Errorf("the run needs %d bytes, the attribute has %d", need, len(dst))
	}
	dst[0] = byte(ob<<4 | lb)
	for i := 0; i < lb; i++ {
		dst[1+i] = byte(length >> (8 * i))
	}
	for i := 0; i < ob; i++ {
		dst[1+lb+i] = byte(lcn >> (8 * i))
	}
	for i := 1 + lb + ob; i < len(dst); i++ {
		dst[i] = 0
	}
	return need, nil
}

func bytesFor(x int64, signed bool) int {
	for n := 1; n < 8; n++ {
		lim := int64(1) << (8 * n)
		if signed {
			lim >>= 1
		}
		if x < lim {
			return n
		}
	}
	return 8
}

// firstLCN decodes the first run's cluster number of a non-resident attribute.
func firstLCN(b []byte, a attr) int64 {
	p := a.off + int(le.Uint16(b[a.off+0x20:]))
	h := b[p]
	lb, ob := int(h&0xF), int(h>>4)
	var lcn int64
	for i := ob - 1; i >= 0; i-- {
		lcn = lcn<<8 | int64(b[p+1+lb+i])
	}
	return lcn
}

func run(args []string) error {
	if len(args) != 3 && !(len(args) == 2 && (args[0] == "nobitmap" || args[0] == "bitmapall")) {
		return errors.New("usage: ntfspatch index|fill|fixup|runpast VOL ARG | nobitmap VOL")
	}
	v, err := open(args[1])
	if err != nil {
		return err
	}
	defer v.f.Close()
	switch args[0] {
	case "bitmapall":
		b, off, err := v.record(5)
		if err != nil {
			return err
		}
		for _, a := range attrs(b) {
			if a.typ == 0xB0 && a.name == "$I30" && b[a.off+8] == 0 {
				c := a.off + int(le.Uint16(b[a.off+0x14:]))
				n := int(le.Uint32(b[a.off+0x10:]))
				for i := 0; i < n; i++ {
					b[c+i] = 0xFF
				}
				fmt.Printf("root $I30 $BITMAP (record 5 at byte %d, %d bytes at +%d) all ones\n", off, n, c)
				return v.write(b, off)
			}
		}
		return errors.New("the root directory has no resident $I30 bitmap")
	case "nobitmap":
		b, off, err := v.record(5)
		if err != nil {
			return err
		}
		for _, a := range attrs(b) {
			if a.typ == 0xB0 && a.name == "$I30" {
				p := a.off + int(le.Uint16(b[a.off+10:]))
				le.PutUint16(b[p+6:], 'X')
				fmt.Printf("root $I30 $BITMAP (record 5 at byte %d, attribute at +%d) renamed $I3X\n", off, a.off)
				return v.write(b, off)
			}
		}
		return errors.New("the root directory has no $I30 bitmap")
	case "index", "fill":
		size, err := strconv.ParseInt(args[2], 0, 64)
		if err != nil {
			return err
		}
		b, off, err := v.record(5)
		if err != nil {
			return err
		}
		for _, a := range attrs(b) {
			if a.typ != 0xA0 || a.name != "$I30" {
				continue
			}
			clusters := (size + v.clusterSize - 1) / v.clusterSize
			lcn := firstLCN(b, a)
			mp := a.off + int(le.Uint16(b[a.off+0x20:]))
			end := a.off + int(le.Uint32(b[a.off+4:]))
			if _, err := encodeRun(b[mp:end], clusters, lcn); err != nil {
				return err
			}
			le.PutUint64(b[a.off+0x18:], uint64(clusters-1))
			for _, f := range []int{0x28, 0x30, 0x38} {
				le.PutUint64(b[a.off+f:], uint64(clusters*v.clusterSize))
			}
			fmt.Printf("root $I30 index allocation (record 5 at byte %d, attribute at +%d): %d clusters from LCN %d, %d bytes\n", off, a.off, clusters, lcn, clusters*v.clusterSize)
			if err := v.write(b, off); err != nil {
				return err
			}
			if args[0] != "fill" {
				return nil
			}
			blk := make([]byte, v.clusterSize)
			if _, err := v.f.ReadAt(blk, lcn*v.clusterSize); err != nil {
				return err
			}
			for c := int64(1); c < clusters; c++ {
				if _, err := v.f.WriteAt(blk, (lcn+c)*v.clusterSize); err != nil {
					return err
				}
			}
			fmt.Printf("clusters %d-%d filled with copies of the index block at byte %d\n", lcn+1, lcn+clusters-1, lcn*v.clusterSize)
			return nil
		}
		return errors.New("the root directory has no $I30 index allocation")
	case "fixup":
		n, err := v.find(args[2])
		if err != nil {
			return err
		}
		off := v.mftOff + n*v.recSize + 510
		var two [2]byte
		if _, err := v.f.ReadAt(two[:], off); err != nil {
			return err
		}
		two[0] ^= 0xFF
		fmt.Printf("record %d (%s): sector-end bytes at byte %d no longer match the update sequence number\n", n, args[2], off)
		_, err = v.f.WriteAt(two[:], off)
		return err
	case "runpast":
		n, err := v.find(args[2])
		if err != nil {
			return err
		}
		b, off, err := v.record(n)
		if err != nil {
			return err
		}
		for _, a := range attrs(b) {
			if a.typ != 0x80 || a.name != "" || b[a.off+8] == 0 {
				continue
			}
			mp := a.off + int(le.Uint16(b[a.off+0x20:]))
			end := a.off + int(le.Uint32(b[a.off+4:]))
			h := b[mp]
			length := int64(0)
			for i := int(h&0xF) - 1; i >= 0; i-- {
				length = length<<8 | int64(b[mp+1+i])
			}
			past := v.size/v.clusterSize + 1000
			if _, err := encodeRun(b[mp:end], length, past); err != nil {
				return err
			}
			last := int64(le.Uint64(b[a.off+0x18:]))
			if last+1 > length { // keep the run list covering the whole attribute
				le.PutUint64(b[a.off+0x18:], uint64(length-1))
				for _, f := range []int{0x28, 0x30, 0x38} {
					if int64(le.Uint64(b[a.off+f:])) > length*v.clusterSize {
						le.PutUint64(b[a.off+f:], uint64(length*v.clusterSize))
					}
				}
			}
			fmt.Printf("record %d (%s) at byte %d: $DATA run of %d clusters now at LCN %d, past the %d-cluster volume\n", n, args[2], off, length, past, v.size/v.clusterSize)
			return v.write(b, off)
		}
		return fmt.Errorf("%s has no non-resident $DATA", args[2])
	}
	return fmt.Errorf("unknown patch %q", args[0])
}
