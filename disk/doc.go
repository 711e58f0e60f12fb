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
// An image's bytes come from a [Source]: a local file or block device ([OpenFile], which
// refuses FIFOs, sockets and character devices without blocking) or any other reader, such
// as a remote libvirt volume that package vm provides ([OpenSource]). The backing files a
// qcow2 header names are opened by crashkey itself, never by go-qcow2reader, through a
// [Resolver]: [Open] uses [LocalResolver], which follows only what [BackingPolicy] allows
// (by default an image file next to the image, owned by its owner; never a device, FIFO,
// /proc, /sys or /dev path), and [Image.Chain] lists every file followed, with its identity,
// so that callers show it and never write over it.
//
// An image held open by a running QEMU (which keeps OFD locks on it), or whose backing file a
// running QEMU holds with write permission, is refused unless [Options.ForceShare] is set,
// because a running guest's image may be inconsistent. [Options.Context] ends every long
// walk soon after it is cancelled.
package disk
