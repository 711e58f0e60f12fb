#!/usr/bin/env bash
# Builds the disk of the stand-in Windows guest (package e2e/standin): a GPT disk with one
# Microsoft basic data partition holding an NTFS volume with
#   Windows\System32\config\SOFTWARE registry/testdata/SOFTWARE-server2019 (-win10 with --client)
#   Windows\System32\config\SYSTEM   hivex's minimal hive + the keys Windows has (Select,
#                                    ProductOptions, Memory Management\PagingFiles, the keyboard
#                                    services) + `crashkey arm --control-set 1 ...` merged with
#                                    hivexregedit
#   pagefile.sys                     zero-filled, --pagefile-mib MiB (the dump lands here)
#   Windows\Minidump\                empty (small dumps are moved here at the next boot)
#   Windows\MEMORY.DMP               only with --memory-dmp FILE (an older dump)
# and room for MEMORY.DMP (the volume is 2 x pagefile + 16 MiB unless --volume-mib is given).
#
#   scripts/guest/standin-disk.sh OUT [--hotkey SPEC | --ctrl-scroll | --unarmed] [--driver LIST]
#       [--dump-type kernel|complete|automatic|active|small|none] [--client] [--no-autoreboot]
#       [--no-overwrite] [--pagefile-mib N] [--volume-mib N] [--fragmented] [--memory-dmp FILE]
#       [--dedicated-mib N] [--format qcow2|raw|volume]
#
#   --hotkey SPEC      any crashkey hotkey spec ("lshift+rshift+d", "0x02/0x3d"); default and
#   --ctrl-scroll      --ctrl-scroll: Parameters\CrashOnCtrlScroll=1 (Right Ctrl + Scroll Lock)
#   --unarmed          no `crashkey arm` at all: no crash hotkey, no CrashControl values (no dump);
#                      arm it through the guest agent (crashkey arm --apply --reboot)
#   --driver LIST      drivers to arm: i8042prt, kbdhid, hyperkbd, all (default i8042prt,kbdhid);
#                      the i8042prt and kbdhid services exist either way, as on Windows
#   --dump-type T      CrashControl (default kernel); none sets CrashDumpEnabled=0
#   --client           ProductType WinNT (client: built-in default hotkey); default ServerNT
#   --fragmented       write the first 2 MiB of pagefile.sys in 256 KiB pieces between the pieces
#                      of another file (Windows\Temp\spacer.tmp), so it lies on the disk in
#                      several extents
#   --dedicated-mib N  also create DedicatedDump.sys (N MiB, zero-filled) and set
#                      CrashControl\DedicatedDumpFile=C:\DedicatedDump.sys: the dump goes there
#   --format F         qcow2 (default for *.qcow2), raw (a raw GPT disk: *.raw, *.img) or
#                      volume (the bare NTFS volume, no partition table: *.ntfs, *.vol)
#
# Environment: CRASHKEY (a built crashkey binary; default: go build ./cmd/crashkey),
# NTFSHELPER (a built disk/testdata/ntfshelper.c; default: built with gcc).
# Deterministic contents: the same options give the same hive and files (mkntfs runs with -T,
# so the volume's serial and GUIDs are fixed; ntfs-3g still stamps file times with the current
# time). Writes only OUT, atomically (a temporary file beside it, then rename). About a second.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
die() { echo "standin-disk: $*" >&2; exit 2; }
usage() { sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; -*) die "the first argument is the output file, got $1" ;; esac
out="$1"; shift
hotkey=(); drivers="i8042prt,kbdhid"; dumptype=kernel; product=ServerNT
autoreboot=(); overwrite=1; unarmed=0; pf_mib=32; vol_mib=""; memdmp=""; format=""; fragmented=0; ded_mib=0
while [ $# -gt 0 ]; do
  case "$1" in
    --hotkey) [ $# -ge 2 ] || die "--hotkey needs a spec"; hotkey=(--hotkey "$2"); shift ;;
    --ctrl-scroll) hotkey=() ;;
    --unarmed) unarmed=1 ;;
    --driver) [ $# -ge 2 ] || die "--driver needs a list"; drivers="$2"; shift ;;
    --dump-type) [ $# -ge 2 ] || die "--dump-type needs a type"; dumptype="$2"; shift ;;
    --client) product=WinNT ;;
    --no-autoreboot) autoreboot=(--no-autoreboot) ;;
    --no-overwrite) overwrite=0 ;;
    --fragmented) fragmented=1 ;;
    --dedicated-mib) [ $# -ge 2 ] || die "--dedicated-mib needs a number"; ded_mib="$2"; shift ;;
    --pagefile-mib) [ $# -ge 2 ] || die "--pagefile-mib needs a number"; pf_mib="$2"; shift ;;
    --volume-mib) [ $# -ge 2 ] || die "--volume-mib needs a number"; vol_mib="$2"; shift ;;
    --memory-dmp) [ $# -ge 2 ] || die "--memory-dmp needs a file"; memdmp="$2"; shift ;;
    --format) [ $# -ge 2 ] || die "--format needs qcow2, raw or volume"; format="$2"; shift ;;
    -h|--help) usage ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
  shift
done
[[ "$pf_mib" =~ ^[0-9]+$ ]] && [ "$pf_mib" -ge 1 ] && [ "$pf_mib" -le 4096 ] || die "--pagefile-mib $pf_mib: use 1..4096"
[[ "$ded_mib" =~ ^[0-9]+$ ]] && [ "$ded_mib" -le 4096 ] || die "--dedicated-mib $ded_mib: use 1..4096"
dedicated=()
[ "$ded_mib" = 0 ] || dedicated=(--dedicated-dump-file 'C:\DedicatedDump.sys')
[ -n "$vol_mib" ] || vol_mib=$((2 * pf_mib + 2 * ded_mib + 16))
[[ "$vol_mib" =~ ^[0-9]+$ ]] && [ "$vol_mib" -ge $((pf_mib + ded_mib + 8)) ] || die "--volume-mib $vol_mib: use at least the pagefile (and dedicated dump file) + 8 MiB"
if [ -z "$format" ]; then
  case "$out" in
    *.qcow2) format=qcow2 ;; *.raw|*.img) format=raw ;; *.ntfs|*.vol) format=volume ;;
    *) die "cannot tell the format from $out: pass --format qcow2, raw or volume" ;;
  esac
fi
case "$format" in qcow2|raw|volume) ;; *) die "--format $format: use qcow2, raw or volume" ;; esac
[ -z "$memdmp" ] || [ -f "$memdmp" ] || die "--memory-dmp $memdmp: no such file"
nodump=0
if [ "$dumptype" = none ]; then nodump=1; dumptype=kernel; fi

for t in hivexregedit mkntfs ntfscp sfdisk qemu-img iconv; do
  command -v "$t" >/dev/null || die "$t is missing; run scripts/deps.sh"
done
outdir="$(cd "$(dirname "$out")" && pwd)" || die "the directory of $out does not exist"
work="$(mktemp -d)"
tmp=""
trap 'rm -rf "$work"; [ -z "$tmp" ] || rm -f "$tmp"' EXIT

ck="${CRASHKEY:-}"
if [ -z "$ck" ]; then
  (cd "$root" && go build -o "$work/crashkey" ./cmd/crashkey) || die "go build ./cmd/crashkey failed"
  ck="$work/crashkey"
fi
H="${NTFSHELPER:-}"
if [ -z "$H" ]; then
  command -v gcc >/dev/null || die "gcc is missing; run scripts/deps.sh"
  . "$root/disk/testdata/fixturelib.sh"
  build_ntfshelper "$work" || die "building ntfshelper failed (ntfs-3g-dev missing? run scripts/deps.sh)"
  H="$work/ntfshelper"
fi

# ---- SYSTEM hive ---------------------------------------------------------------------------
# multisz STRING...: a REG_MULTI_SZ as .reg hex(7) data (UTF-16LE, NUL after each, NUL at end)
multisz() {
  local s hex=""
  for s in "$@"; do hex+="$(printf '%s\0' "$s" | iconv -f UTF-8 -t UTF-16LE | od -An -v -tx1 | tr -s ' \n' ',,')"; done
  hex+=",00,00,"
  hex="$(echo "$hex" | sed 's/^,*//; s/,,*/,/g; s/,$//')"
  printf 'hex(7):%s' "$hex"
}
pagingfiles="$(multisz "C:\\pagefile.sys $pf_mib $pf_mib")"
existing="$(multisz '\??\C:\pagefile.sys')"
# What every Windows SYSTEM hive has and crashkey arm does not write: the control-set selector,
# the product type, the paging file, and the two keyboard services (installed even when not armed).
cat >"$work/base.reg" <<REG
Windows Registry Editor Version 5.00

[HKEY_LOCAL_MACHINE\\SYSTEM\\Select]
"Current"=dword:00000001
"Default"=dword:00000001
"Failed"=dword:00000000
"LastKnownGood"=dword:00000001

[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001]

[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control]

[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\ProductOptions]
"ProductType"="$product"

[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\Session Manager]

[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\Session Manager\\Memory Management]
"PagingFiles"=$pagingfiles
"ExistingPageFiles"=$existing

[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services]

[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\i8042prt]
"Start"=dword:00000001
"Type"=dword:00000001

[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Services\\kbdhid]
"Start"=dword:00000003
"Type"=dword:00000001
REG
"$ck" arm --control-set 1 "${hotkey[@]}" --driver "$drivers" --dump-type "$dumptype" "${autoreboot[@]}" "${dedicated[@]}" --format reg >"$work/arm.reg" ||
  die "crashkey arm refused the options (see above)"
[ "$unarmed" = 0 ] || printf 'Windows Registry Editor Version 5.00\n\n' >"$work/arm.reg"
{
  printf 'Windows Registry Editor Version 5.00\n\n[HKEY_LOCAL_MACHINE\\SYSTEM\\ControlSet001\\Control\\CrashControl]\n'
  [ "$overwrite" = 1 ] || printf '"Overwrite"=dword:00000000\n'
  [ "$nodump" = 0 ] || printf '"CrashDumpEnabled"=dword:00000000\n'
} >"$work/extra.reg"
hive="$root/registry/testdata/hivex-minimal"
[ -f "$hive" ] || hive="$root/../shared/fixtures/hivex-minimal"
[ -f "$hive" ] || die "registry/testdata/hivex-minimal is missing"
cp "$hive" "$work/SYSTEM"
chmod u+w "$work/SYSTEM"
for r in base arm extra; do
  hivexregedit --merge --prefix 'HKEY_LOCAL_MACHINE\SYSTEM' "$work/SYSTEM" "$work/$r.reg" ||
    die "hivexregedit --merge $r.reg failed"
done

# ---- NTFS volume ---------------------------------------------------------------------------
start=2048 # partition start sector (1 MiB), also the volume's "hidden sectors"
vol="$work/volume.ntfs"
truncate -s "${vol_mib}M" "$vol"
mkntfs -T -F -Q -q -c 4096 -s 512 -p "$start" -H 255 -S 63 -L Windows "$vol" >/dev/null 2>&1 || die "mkntfs failed"
for d in Windows Windows/System32 Windows/System32/config Windows/Minidump; do "$H" mkdir "$vol" "$d"; done
ntfscp -q "$vol" "$work/SYSTEM" Windows/System32/config/SYSTEM
truncate -s "${pf_mib}M" "$work/pagefile.sys"
if [ "$fragmented" = 1 ]; then
  "$H" mkdir "$vol" Windows/Temp
  head -c 65536 /dev/zero >"$work/z64"
  head -c 262144 /dev/zero >"$work/z256k"
  pieces=$((pf_mib * 4 < 8 ? pf_mib * 4 : 8))
  for ((k = 0; k < pieces; k++)); do
    "$H" pwrite "$vol" pagefile.sys "$work/z256k" $((k * 262144))
    "$H" pwrite "$vol" Windows/Temp/spacer.tmp "$work/z64" $((k * 65536))
  done
  rest=$((pf_mib * 1048576 - pieces * 262144))
  if [ "$rest" -gt 0 ]; then
    head -c "$rest" /dev/zero >"$work/zrest"
    "$H" pwrite "$vol" pagefile.sys "$work/zrest" $((pieces * 262144))
  fi
else
  ntfscp -q "$vol" "$work/pagefile.sys" pagefile.sys
fi
[ -z "$memdmp" ] || ntfscp -q "$vol" "$memdmp" Windows/MEMORY.DMP
if [ "$ded_mib" != 0 ]; then
  truncate -s "${ded_mib}M" "$work/DedicatedDump.sys"
  ntfscp -q "$vol" "$work/DedicatedDump.sys" DedicatedDump.sys
fi
# the SOFTWARE hive that names the Windows version (registry/testdata/software/build.sh),
# copied last so that the other files keep their places on the volume
software="$root/registry/testdata/SOFTWARE-server2019"
[ "$product" = WinNT ] && software="$root/registry/testdata/SOFTWARE-win10"
ntfscp -q "$vol" "$software" Windows/System32/config/SOFTWARE
cmp -s "$work/SYSTEM" <(ntfscat "$vol" Windows/System32/config/SYSTEM) || die "the hive in the volume differs from the merged hive"

# ---- disk ----------------------------------------------------------------------------------
tmp="$(mktemp "$outdir/.$(basename "$out").tmpXXXXXX")"
case "$format" in
  volume) cp "$vol" "$tmp" ;;
  raw|qcow2)
    disk="$work/disk.raw"
    truncate -s $(( (vol_mib + 2) * 1024 * 1024 )) "$disk"
    sfdisk -q --no-reread --no-tell-kernel "$disk" <<SF || die "sfdisk failed"
label: gpt
label-id: 7A1C0DE5-5EED-4C0F-8A5E-000000000001
unit: sectors
first-lba: 2048
start=$start, size=$((vol_mib * 2048)), type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, uuid=7A1C0DE5-5EED-4C0F-8A5E-000000000002, name="Basic data partition"
SF
    dd if="$vol" of="$disk" bs=1M seek=1 conv=notrunc,sparse status=none
    if [ "$format" = raw ]; then
      cp --sparse=always "$disk" "$tmp"
    else
      qemu-img convert -q -f raw -O qcow2 "$disk" "$tmp"
    fi
    ;;
esac
chmod 0644 "$tmp"
mv -f "$tmp" "$out"
tmp=""
echo "standin-disk: wrote $out ($format; pagefile ${pf_mib} MiB, volume ${vol_mib} MiB, $product, dump type $([ "$nodump" = 1 ] && echo none || echo "$dumptype")$([ "$unarmed" = 1 ] && echo ", unarmed"))" >&2
