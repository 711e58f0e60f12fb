package disk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"unicode/utf16"
)

// Partition-table schemes reported in [Volume.Scheme].
const (
	SchemeGPT  = "gpt"  // GUID partition table
	SchemeMBR  = "mbr"  // MS-DOS partition table, with extended/logical partitions
	SchemeNone = "none" // a bare file system without a partition table
)

// Limits that keep a corrupt table from costing time or memory.
const (
	maxGPTEntries   = 4096 // GPT allows more, but nothing real comes close
	maxGPTEntrySize = 4096 // bytes
	maxLogical      = 128  // logical partitions in one extended partition
	sectorSize      = 512  // MBR/EBR and the GPT probe
	ebrTypeExtended = 0x05 // CHS extended
	ebrTypeExtLBA   = 0x0F // LBA extended
	ebrTypeLinuxExt = 0x85 // Linux extended
	mbrTypeGPT      = 0xEE // protective MBR
	mbrTypeNTFS     = 0x07 // NTFS/exFAT/HPFS
	ntfsOEMOffset   = 3    // "NTFS    " in an NTFS boot sector
	bootSigOffset   = 510  // 0x55 0xAA
)

// GPT partition type GUIDs crashkey cares about.
const (
	GUIDBasicData = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7" // Microsoft basic data (NTFS, FAT)
	GUIDReserved  = "E3C9E316-0B5C-4DB8-817D-F92DF00215AE" // Microsoft reserved
	GUIDRecovery  = "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC" // Windows recovery environment
	GUIDESP       = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" // EFI system partition
)

var gptTypeNames = map[string]string{
	GUIDBasicData:                          "Microsoft basic data",
	GUIDReserved:                           "Microsoft reserved",
	GUIDRecovery:                           "Windows recovery",
	GUIDESP:                                "EFI system",
	"5808C8AA-7E8F-42E0-85D2-E1E90434CFB3": "Windows LDM metadata",
	"AF9B60A0-1431-4F62-BC68-3311714A69AD": "Windows LDM data",
	"E75CAF8F-F680-4CEE-AFA3-B001E56EFC2D": "Windows Storage Spaces",
	"21686148-6449-6E6F-744E-656564454649": "BIOS boot",
	"0FC63DAF-8483-4772-8E79-3D69D8477DE4": "Linux filesystem",
	"E6D6D379-F507-44C2-A23C-238F2A3DF928": "Linux LVM",
	"0657FD6D-A4AB-43C4-84E5-0933C84B4F4F": "Linux swap",
	"A19D880F-05FC-4D3B-A006-743F0F84911E": "Linux RAID",
	"4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709": "Linux root (x86-64)",
	"B921B045-1DF0-41C3-AF44-4C6F280D3FAE": "Linux root (ARM64)",
	"933AC7E1-2EB4-4F13-B844-0E14E2AEF915": "Linux home",
	"BC13C2FF-59E6-4262-A352-B275FD6F7172": "Linux extended boot",
	"CA7D7CCB-63ED-4C53-861C-1742536059CC": "Linux LUKS",
	"48465300-0000-11AA-AA11-00306543ECAC": "Apple HFS+",
	"516E7CB6-6ECF-11D6-8FF8-00022D09712B": "FreeBSD data",
}

var mbrTypeNames = map[byte]string{
	0x01: "FAT12", 0x04: "FAT16", 0x05: "extended", 0x06: "FAT16",
	0x07: "NTFS/exFAT", 0x0B: "FAT32", 0x0C: "FAT32 (LBA)", 0x0E: "FAT16 (LBA)",
	0x0F: "extended (LBA)", 0x11: "hidden FAT12", 0x12: "OEM service", 0x17: "hidden NTFS",
	0x1B: "hidden FAT32", 0x1C: "hidden FAT32 (LBA)", 0x27: "Windows recovery",
	0x42: "Windows dynamic (LDM)", 0x82: "Linux swap", 0x83: "Linux", 0x85: "Linux extended",
	0x8E: "Linux LVM", 0xA5: "FreeBSD", 0xEE: "GPT protective", 0xEF: "EFI system",
	0xFD: "Linux RAID",
}

// ErrPartitionTable is wrapped by every error about a corrupt partition table.
var ErrPartitionTable = errors.New("corrupt partition table")

// part is one partition found in a table, before the file system is probed.
type part struct {
	index    int // 1-based: GPT entry number; MBR primaries 1-4, logicals from 5
	start    int64
	size     int64
	scheme   string
	typ      string // GPT type GUID or MBR type byte as "0x07"
	typeName string
	name     string // GPT partition name
	logical  bool
}

// readPartitions finds the partitions of a disk of diskSize bytes. A disk whose first sector
// is an NTFS boot sector is one bare volume. A damaged GPT is an error (it never falls back to
// the protective MBR), and so is any partition that lies past the end of the disk.
func readPartitions(r io.ReaderAt, diskSize int64) ([]part, string, error) {
	if diskSize < sectorSize {
		return nil, "", fmt.Errorf("%w: the disk is only %d bytes long, too short for a partition table or a file system", ErrPartitionTable, diskSize)
	}
	mbr := make([]byte, sectorSize)
	if _, err := readFull(r, mbr, 0); err != nil {
		return nil, "", fmt.Errorf("read sector 0: %w", err)
	}
	if string(mbr[ntfsOEMOffset:ntfsOEMOffset+8]) == "NTFS    " {
		return []part{{index: 1, start: 0, size: diskSize, scheme: SchemeNone, typeName: "bare file system"}}, SchemeNone, nil
	}
	if mbr[bootSigOffset] != 0x55 || mbr[bootSigOffset+1] != 0xAA {
		return nil, "", fmt.Errorf("%w: sector 0 has no boot signature (55 AA) and is not an NTFS boot sector; the image is empty, not a disk, or not a raw/qcow2 image", ErrPartitionTable)
	}
	entries := mbrEntries(mbr)
	for _, e := range entries {
		if e.typ == mbrTypeGPT {
			// The GPT header is at LBA 1: byte 512 on disks with 512-byte logical blocks,
			// byte 4096 on 4Kn disks (4 KiB logical blocks, where every LBA counts 4 KiB).
			lbs := int64(sectorSize)
			if !hasGPTHeader(r, sectorSize) && hasGPTHeader(r, 4096) {
				lbs = 4096
			}
			parts, err := readGPT(r, diskSize, lbs)
			return parts, SchemeGPT, err
		}
	}
	parts, err := readMBR(r, diskSize, entries)
	return parts, SchemeMBR, err
}

type mbrEntry struct {
	typ         byte
	start, size uint32 // sectors
}

func mbrEntries(sector []byte) [4]mbrEntry {
	var es [4]mbrEntry
	for i := range es {
		e := sector[446+16*i:]
		es[i] = mbrEntry{typ: e[4], start: binary.LittleEndian.Uint32(e[8:]), size: binary.LittleEndian.Uint32(e[12:])}
	}
	return es
}

func isExtended(t byte) bool {
	return t == ebrTypeExtended || t == ebrTypeExtLBA || t == ebrTypeLinuxExt
}

func mbrPart(index int, e mbrEntry, base int64, diskSize int64, logical bool) (part, error) {
	start := base + int64(e.start)*sectorSize
	size := int64(e.size) * sectorSize
	if e.size == 0 {
		return part{}, fmt.Errorf("%w: partition %d has type 0x%02X but size 0", ErrPartitionTable, index, e.typ)
	}
	if start+size > diskSize {
		return part{}, fmt.Errorf("%w: partition %d (bytes %d-%d) ends past the end of the %d-byte disk; the image is truncated or the table is damaged", ErrPartitionTable, index, start, start+size, diskSize)
	}
	name, ok := mbrTypeNames[e.typ]
	if !ok {
		name = "unknown"
	}
	return part{index: index, start: start, size: size, scheme: SchemeMBR, typ: fmt.Sprintf("0x%02X", e.typ), typeName: name, logical: logical}, nil
}

func readMBR(r io.ReaderAt, diskSize int64, entries [4]mbrEntry) ([]part, error) {
	var parts []part
	extended := false
	for i, e := range entries {
		if e.typ == 0 {
			continue
		}
		p, err := mbrPart(i+1, e, 0, diskSize, false)
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
		if isExtended(e.typ) {
			if extended {
				return nil, fmt.Errorf("%w: more than one extended partition", ErrPartitionTable)
			}
			extended = true
			logicals, err := readEBRChain(r, diskSize, p)
			if err != nil {
				return nil, err
			}
			parts = append(parts, logicals...)
		}
	}
	return parts, nil
}

// readEBRChain walks the linked list of extended boot records inside ext. Each EBR's first
// entry is a logical partition relative to the EBR; the second links to the next EBR,
// relative to the start of the extended partition.
func readEBRChain(r io.ReaderAt, diskSize int64, ext part) ([]part, error) {
	var parts []part
	seen := map[int64]bool{}
	ebr := ext.start
	sector := make([]byte, sectorSize)
	for n := 0; ; n++ {
		if n >= maxLogical {
			return nil, fmt.Errorf("%w: more than %d logical partitions (a loop in the EBR chain?)", ErrPartitionTable, maxLogical)
		}
		if seen[ebr] {
			return nil, fmt.Errorf("%w: the EBR chain loops back to byte %d", ErrPartitionTable, ebr)
		}
		seen[ebr] = true
		if ebr < ext.start || ebr+sectorSize > ext.start+ext.size {
			return nil, fmt.Errorf("%w: an extended boot record at byte %d lies outside the extended partition", ErrPartitionTable, ebr)
		}
		if _, err := readFull(r, sector, ebr); err != nil {
			return nil, fmt.Errorf("read extended boot record at byte %d: %w", ebr, err)
		}
		if sector[bootSigOffset] != 0x55 || sector[bootSigOffset+1] != 0xAA {
			if n == 0 {
				return nil, nil // an empty extended partition
			}
			return nil, fmt.Errorf("%w: the extended boot record at byte %d has no 55 AA signature", ErrPartitionTable, ebr)
		}
		es := mbrEntries(sector)
		if es[0].typ != 0 {
			p, err := mbrPart(5+len(parts), es[0], ebr, diskSize, true)
			if err != nil {
				return nil, err
			}
			if p.start < ext.start || p.start+p.size > ext.start+ext.size {
				return nil, fmt.Errorf("%w: logical partition %d lies outside its extended partition", ErrPartitionTable, p.index)
			}
			parts = append(parts, p)
		}
		if es[1].typ == 0 || es[1].start == 0 {
			return parts, nil
		}
		ebr = ext.start + int64(es[1].start)*sectorSize
	}
}

// gptHeader holds the fields of a GPT header that crashkey uses.
type gptHeader struct {
	myLBA, altLBA, firstUsable, lastUsable uint64
	entriesLBA                             uint64
	numEntries, entrySize                  uint32
	entriesCRC                             uint32
}

// hasGPTHeader reports whether an "EFI PART" signature is at byte off.
func hasGPTHeader(r io.ReaderAt, off int64) bool {
	var sig [8]byte
	_, err := readFull(r, sig[:], off)
	return err == nil && string(sig[:]) == "EFI PART"
}

// readGPT reads the GPT of a disk with logical blocks of lbs bytes (512 or 4096).
func readGPT(r io.ReaderAt, diskSize, lbs int64) ([]part, error) {
	lastLBA := uint64(diskSize/lbs) - 1
	parts, perr := readGPTAt(r, diskSize, lbs, 1)
	if perr == nil {
		return parts, nil
	}
	var ioErr *readError
	if errors.As(perr, &ioErr) {
		return nil, perr
	}
	parts, berr := readGPTAt(r, diskSize, lbs, lastLBA)
	if berr == nil {
		return parts, nil
	}
	return nil, fmt.Errorf("%w (the backup GPT at the last sector is damaged too: %v); repair the table with sgdisk or gdisk on a copy of the image", perr, berr)
}

func readGPTAt(r io.ReaderAt, diskSize, lbs int64, lba uint64) ([]part, error) {
	where := "primary"
	if lba != 1 {
		where = "backup"
	}
	buf := make([]byte, lbs)
	if _, err := readFull(r, buf, int64(lba)*lbs); err != nil {
		return nil, fmt.Errorf("read %s GPT header: %w", where, err)
	}
	if string(buf[:8]) != "EFI PART" {
		return nil, fmt.Errorf("%w: the %s GPT header at sector %d has no \"EFI PART\" signature", ErrPartitionTable, where, lba)
	}
	hsize := binary.LittleEndian.Uint32(buf[12:])
	if hsize < 92 || int64(hsize) > lbs {
		return nil, fmt.Errorf("%w: the %s GPT header size %d is not within 92-%d", ErrPartitionTable, where, hsize, lbs)
	}
	want := binary.LittleEndian.Uint32(buf[16:])
	hdr := append([]byte(nil), buf[:hsize]...)
	binary.LittleEndian.PutUint32(hdr[16:], 0)
	if got := crc32.ChecksumIEEE(hdr); got != want {
		return nil, fmt.Errorf("%w: the %s GPT header checksum is 0x%08X, expected 0x%08X", ErrPartitionTable, where, got, want)
	}
	h := gptHeader{
		myLBA:       binary.LittleEndian.Uint64(buf[24:]),
		altLBA:      binary.LittleEndian.Uint64(buf[32:]),
		firstUsable: binary.LittleEndian.Uint64(buf[40:]),
		lastUsable:  binary.LittleEndian.Uint64(buf[48:]),
		entriesLBA:  binary.LittleEndian.Uint64(buf[72:]),
		numEntries:  binary.LittleEndian.Uint32(buf[80:]),
		entrySize:   binary.LittleEndian.Uint32(buf[84:]),
		entriesCRC:  binary.LittleEndian.Uint32(buf[88:]),
	}
	if h.myLBA != lba {
		return nil, fmt.Errorf("%w: the %s GPT header says it lives at sector %d, not %d", ErrPartitionTable, where, h.myLBA, lba)
	}
	if h.numEntries == 0 || h.numEntries > maxGPTEntries {
		return nil, fmt.Errorf("%w: the %s GPT header lists %d entries (expected 1-%d)", ErrPartitionTable, where, h.numEntries, maxGPTEntries)
	}
	if h.entrySize < 128 || h.entrySize > maxGPTEntrySize || h.entrySize%8 != 0 {
		return nil, fmt.Errorf("%w: the %s GPT entry size %d is not a multiple of 8 within 128-%d", ErrPartitionTable, where, h.entrySize, maxGPTEntrySize)
	}
	tableLen := int64(h.numEntries) * int64(h.entrySize)
	diskSectors := uint64(diskSize / lbs)
	if h.entriesLBA >= diskSectors || int64(h.entriesLBA)*lbs+tableLen > diskSize {
		return nil, fmt.Errorf("%w: the %s GPT entry array (sector %d, %d bytes) lies past the end of the disk", ErrPartitionTable, where, h.entriesLBA, tableLen)
	}
	table := make([]byte, tableLen)
	if _, err := readFull(r, table, int64(h.entriesLBA)*lbs); err != nil {
		return nil, fmt.Errorf("read %s GPT entries: %w", where, err)
	}
	if got := crc32.ChecksumIEEE(table); got != h.entriesCRC {
		return nil, fmt.Errorf("%w: the %s GPT entry array checksum is 0x%08X, expected 0x%08X", ErrPartitionTable, where, got, h.entriesCRC)
	}
	var parts []part
	for i := uint32(0); i < h.numEntries; i++ {
		e := table[int64(i)*int64(h.entrySize):]
		typ := e[:16]
		if bytes.Equal(typ, make([]byte, 16)) {
			continue
		}
		first := binary.LittleEndian.Uint64(e[32:])
		last := binary.LittleEndian.Uint64(e[40:])
		idx := int(i) + 1
		if first > last || last >= diskSectors {
			return nil, fmt.Errorf("%w: GPT partition %d (sectors %d-%d) ends past the end of the %d-sector disk or is reversed; the image is truncated or the table is damaged", ErrPartitionTable, idx, first, last, diskSectors)
		}
		guid := formatGUID(typ)
		name, ok := gptTypeNames[guid]
		if !ok {
			name = "unknown"
		}
		parts = append(parts, part{
			index: idx, start: int64(first) * lbs, size: int64(last-first+1) * lbs,
			scheme: SchemeGPT, typ: guid, typeName: name, name: utf16Name(e[56:128]),
		})
	}
	return parts, nil
}

// formatGUID renders a mixed-endian on-disk GUID in its usual upper-case text form.
func formatGUID(b []byte) string {
	return fmt.Sprintf("%08X-%04X-%04X-%X-%X",
		binary.LittleEndian.Uint32(b[0:]), binary.LittleEndian.Uint16(b[4:]),
		binary.LittleEndian.Uint16(b[6:]), b[8:10], b[10:16])
}

func utf16Name(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		c := binary.LittleEndian.Uint16(b[i:])
		if c == 0 {
			break
		}
		u = append(u, c)
	}
	return strings.TrimSpace(string(utf16.Decode(u)))
}

// readError marks an I/O error (as opposed to corrupt content).
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

// readFull reads len(p) bytes at off; a short read is an error.
func readFull(r io.ReaderAt, p []byte, off int64) (int, error) {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return n, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return n, &readError{err}
}
