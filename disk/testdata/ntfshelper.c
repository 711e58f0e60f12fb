/*
 * ntfshelper: the few NTFS edits that ntfs-3g's command-line tools lack when FUSE is not
 * available (CI containers). Used only by mkfixtures.sh to build crashkey's test images.
 *
 *   ntfshelper mkdir  VOLUME PATH [compressed]  create a directory (optionally with the
 *                                               compressed attribute, so files created in
 *                                               it are LZNT1-compressed)
 *   ntfshelper rm     VOLUME PATH               delete a file
 *   ntfshelper pwrite VOLUME PATH SRC OFFSET    write the bytes of SRC at OFFSET of PATH
 *                                               (created if missing); writing past the end
 *                                               leaves a sparse hole
 *   ntfshelper mkfiles VOLUME DIR N PREFIX      create N empty files DIR/PREFIXnnnnnnn.dmp
 *                                               in one mount (large-directory fixtures)
 *
 * VOLUME is a file holding one bare NTFS file system; PATH uses '/' separators.
 * Build: gcc -O2 -o ntfshelper ntfshelper.c -lntfs-3g
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <ntfs-3g/types.h>
#include <ntfs-3g/volume.h>
#include <ntfs-3g/inode.h>
#include <ntfs-3g/dir.h>
#include <ntfs-3g/attrib.h>
#include <ntfs-3g/unistr.h>

static void die(const char *what) {
	fprintf(stderr, "ntfshelper: %s: %s\n", what, strerror(errno));
	exit(1);
}

/* split "a/b/c" into parent "/a/b" and name "c" */
static ntfs_inode *parent_of(ntfs_volume *vol, const char *path, ntfschar **uname, int *ulen) {
	char *p = strdup(path), *slash = strrchr(p, '/');
	const char *name = p, *dir = "/";
	if (slash) {
		*slash = 0;
		name = slash + 1;
		if (*p) dir = p;
	}
	ntfs_inode *d = ntfs_pathname_to_inode(vol, NULL, dir);
	if (!d) die("open parent directory");
	*uname = NULL;
	*ulen = ntfs_mbstoucs(name, uname);
	if (*ulen < 0) die("convert name");
	return d;
}

int main(int argc, char **argv) {
	if (argc < 4) {
		fprintf(stderr, "usage: ntfshelper mkdir|rm|pwrite VOLUME PATH [...]\n");
		return 2;
	}
	const char *cmd = argv[1], *dev = argv[2], *path = argv[3];
	ntfs_volume *vol = ntfs_mount(dev, 0);
	if (!vol) die("mount");
	ntfschar *uname;
	int ulen;
	if (!strcmp(cmd, "mkdir")) {
		ntfs_inode *d = parent_of(vol, path, &uname, &ulen);
		ntfs_inode *ni = ntfs_create(d, const_cpu_to_le32(0), uname, ulen, S_IFDIR);
		if (!ni) die("create directory");
		if (argc > 4 && !strcmp(argv[4], "compressed")) {
			ni->flags |= FILE_ATTR_COMPRESSED;
			NInoSetDirty(ni);
		}
		if (ntfs_inode_close(ni)) die("close directory");
		if (ntfs_inode_close(d)) die("close parent");
	} else if (!strcmp(cmd, "rm")) {
		ntfs_inode *d = parent_of(vol, path, &uname, &ulen);
		ntfs_inode *ni = ntfs_pathname_to_inode(vol, NULL, path);
		if (!ni) die("open file");
		if (ntfs_delete(vol, path, ni, d, uname, ulen)) die("delete");
	} else if (!strcmp(cmd, "pwrite") && argc == 6) {
		FILE *src = fopen(argv[4], "rb");
		if (!src) die("open source");
		long long off = atoll(argv[5]);
		ntfs_inode *ni = ntfs_pathname_to_inode(vol, NULL, path);
		if (!ni) {
			ntfs_inode *d = parent_of(vol, path, &uname, &ulen);
			ni = ntfs_create(d, const_cpu_to_le32(0), uname, ulen, S_IFREG);
			if (!ni) die("create file");
			if (ntfs_inode_close(d)) die("close parent");
		}
		ntfs_attr *na = ntfs_attr_open(ni, AT_DATA, AT_UNNAMED, 0);
		if (!na) die("open data");
		static char buf[1 << 16];
		size_t n;
		while ((n = fread(buf, 1, sizeof buf, src)) > 0) {
			if (ntfs_attr_pwrite(na, off, n, buf) != (s64)n) die("write");
			off += n;
		}
		ntfs_attr_close(na);
		if (ntfs_inode_close(ni)) die("close file");
		fclose(src);
	} else if (!strcmp(cmd, "mkfiles") && argc == 6) {
		ntfs_inode *d = ntfs_pathname_to_inode(vol, NULL, path);
		if (!d) die("open directory");
		long n = atol(argv[4]);
		char name[256];
		for (long i = 0; i < n; i++) {
			snprintf(name, sizeof name, "%s%07ld.dmp", argv[5], i);
			uname = NULL;
			ulen = ntfs_mbstoucs(name, &uname);
			if (ulen < 0) die("convert name");
			ntfs_inode *ni = ntfs_create(d, const_cpu_to_le32(0), uname, ulen, S_IFREG);
			if (!ni) die("create file");
			if (ntfs_inode_close(ni)) die("close file");
			free(uname);
		}
		if (ntfs_inode_close(d)) die("close directory");
	} else {
		fprintf(stderr, "ntfshelper: unknown command %s\n", cmd);
		return 2;
	}
	if (ntfs_umount(vol, FALSE)) die("unmount");
	return 0;
}
