#!/usr/bin/env bash
# The main job with an embedded default: plan the default crash hotkey (CrashOnCtrlScroll:
# Right Ctrl held, Scroll Lock pressed twice) and run the Windows keyboard drivers' model on
# what a PS/2 and a USB guest receive.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d)/crashkey
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/crashkey

echo "# hotkey and key events"
"$bin" plan --format json | sed -n '2,4p'
echo "# PS/2 bytes (i8042prt)"
ps2=$("$bin" plan --format set1)
echo "$ps2"
"$bin" simulate --driver i8042prt --crash-on-ctrl-scroll 1 --set1 "$ps2"
echo "# USB boot reports (kbdhid)"
usb=$("$bin" plan --format usb | paste -sd ';')
echo "$usb" | tr ';' '\n'
"$bin" simulate --driver kbdhid --crash-on-ctrl-scroll 1 --usb "$usb"
