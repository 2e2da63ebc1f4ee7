#!/usr/bin/env bash
# The Arm q8_0 kernel and its q4_0 tiles (native/kernels/q8_gemm_neon.cpp, "q8-neon-dot") checked on this x86
# machine: builds native/kernels/check/q8_neon_check.cpp with Debian's cross compiler and runs it
# under qemu's user-mode emulator (its default CPU, "max", has the dot-product extension), on the
# UNet's mat-mul shapes (scripts/bench/shapes.mjs) and every tile size. About 20 s.
#
#   apt-get install -y --no-install-recommends g++-aarch64-linux-gnu qemu-user
#
# Exits 0 when every shape matches, 1 when one does not or the build fails, and 0 with a line
# "skipped: ..." when the cross compiler or qemu is missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cxx="${JSD_AARCH64_CXX:-aarch64-linux-gnu-g++}"
qemu="${JSD_QEMU_AARCH64:-qemu-aarch64}"
sysroot="${JSD_AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}"
for tool in "$cxx" "$qemu"; do
  if ! command -v "$tool" >/dev/null; then
    echo "skipped: $tool is not installed (apt-get install g++-aarch64-linux-gnu qemu-user)"
    exit 0
  fi
done

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
start=$(date +%s)
"$cxx" -std=c++17 -O2 -march=armv8.2-a+dotprod -Wall -Wextra -Werror -Inative \
  native/kernels/check/q8_neon_check.cpp native/kernels/q8_gemm_neon.cpp native/kernels/q8_layout.cpp \
  -o "$out/q8_neon_check"
built=$(date +%s)
echo "built with $cxx in $((built - start)) s"

# name:m:k of each shape in the bench's list, the one source of the UNet's shapes.
mapfile -t shapes < <(node --input-type=module -e '
  import { MATMUL_SHAPES } from "./scripts/bench/shapes.mjs";
  for (const s of MATMUL_SHAPES) console.log(`${s.short}:${s.m}:${s.k}`);
')
if [ ${#shapes[@]} -eq 0 ]; then
  echo "check-arm-kernel: could not read scripts/bench/shapes.mjs (is node installed?)" >&2
  exit 1
fi
"$qemu" -L "$sysroot" "$out/q8_neon_check" "${shapes[@]}"
echo "ran under $qemu in $(($(date +%s) - built)) s"
