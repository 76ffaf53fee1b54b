#!/usr/bin/env bash
# Runs the cargo-fuzz targets of fuzz/ one after the other (docs/fuzzing.md).
# Usage: scripts/fuzz.sh [SECONDS [TARGET...]]; default 600 s for each of
# settings, procfs and c_api. Needs cargo-fuzz; RUSTC_BOOTSTRAP lets the stable
# toolchain take the sanitizer flags cargo-fuzz passes.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
targets=("$@")
((${#targets[@]})) || targets=(settings procfs c_api)
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for t in "${targets[@]}"; do
  # -print_funcs=0: no symbolizer child, which c_api would see as left over.
  args=(-max_total_time="$secs" -print_final_stats=1 -print_funcs=0)
  [ -f "fuzz/dicts/$t.dict" ] && args+=(-dict="fuzz/dicts/$t.dict")
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- "${args[@]}"
done
