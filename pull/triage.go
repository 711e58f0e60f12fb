package pull

import (
	"encoding/binary"
	"io"
)

// Secondary data after a triage dump (the "tagged blobs" bug-check callbacks add) is a
// DUMP_BLOB_FILE_HEADER followed by DUMP_BLOB_HEADERs, each followed by its data; there is
// no overall count, so the list ends at the first header that is not one.
const (
	blobFileHeaderSize = 16 // Signature1 'Dump', Signature2 'Blob', HeaderSize, BuildNumber
	blobHeaderSize     = 32 // HeaderSize, Tag (GUID), DataSize, PrePad, PostPad
	maxBlobs           = 4096
)

// triageLength returns how long the Minidump file Windows makes of a triage dump that starts
// at offset 0 of r (a pagefile or dedicated dump file of fileSize bytes) is: the dump
// (sizeOfDump) plus its secondary data, found by walking the blob headers, never past
// required (RequiredDumpSpace, when set) or fileSize. secondary reports whether secondary
// data was found; unreadable reports a "DumpBlob" tag whose headers could not be walked (the
// dump alone is taken then).
func triageLength(r io.ReaderAt, sizeOfDump, required, fileSize int64) (n int64, secondary, unreadable bool) {
	limit := fileSize
	if required > 0 && required < limit {
		limit = required
	}
	if sizeOfDump >= limit || limit-sizeOfDump < blobFileHeaderSize {
		return min(sizeOfDump, fileSize), false, false
	}
	var fh [blobFileHeaderSize]byte
	if _, err := r.ReadAt(fh[:], sizeOfDump); err != nil || string(fh[:8]) != "DumpBlob" {
		return sizeOfDump, false, false
	}
	if binary.LittleEndian.Uint32(fh[8:]) != blobFileHeaderSize {
		return sizeOfDump, false, true
	}
	end := sizeOfDump + blobFileHeaderSize
	var bh [blobHeaderSize]byte
	for i := 0; i < maxBlobs && limit-end >= blobHeaderSize; i++ {
		if _, err := r.ReadAt(bh[:], end); err != nil {
			break
		}
		hs := int64(binary.LittleEndian.Uint32(bh[0:]))
		data := int64(binary.LittleEndian.Uint32(bh[20:]))
		pre := int64(binary.LittleEndian.Uint32(bh[24:]))
		post := int64(binary.LittleEndian.Uint32(bh[28:]))
		if hs != blobHeaderSize {
			break
		}
		next := end + hs + pre + data + post // each term < 2^32: no overflow
		if next > limit {
			break // a blob that does not fit is not part of the file
		}
		end = next
	}
	return end, true, false
}
