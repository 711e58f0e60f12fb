// Package disk reads files out of a Windows guest's disk image without ever writing to it.
//
// The layers are: an image file (raw or qcow2, with compressed clusters and backing chains,
// via github.com/lima-vm/go-qcow2reader) → the virtual disk as an [io.ReaderAt] → its
// partitions (GPT, MBR with extended/logical partitions, or a bare file system; parsed here,
// not by go-diskfs) → NTFS volumes (via www.velocidex.com/golang/go-ntfs) → files as
// [io.ReaderAt].
//
//	img, err := disk.Open("win.qcow2", disk.Options{})
//	if err != nil { … }
//	defer img.Close()
//	fs, err := img.WindowsVolume()               // the NTFS volume that holds \Windows
//	f, err := fs.Open(`Windows\MEMORY.DMP`)      // case-insensitive, '\' or '/', no drive letter
//	io.Copy(w, io.NewSectionReader(f, 0, f.Size()))
//
// Untrusted sizes are bounded before anything is allocated, and a panic inside go-ntfs is
// turned into an error that names the image and the path. [File.Extents] tells where each
// part of a file lies on the virtual disk, so a caller can write into a file's sectors
// without going through the file system (the way Windows writes a crash dump into
// pagefile.sys).
//
// An image held open by a running QEMU (which keeps OFD locks on it) is refused unless
// [Options.ForceShare] is set, because a running guest's image may be inconsistent.
package disk
