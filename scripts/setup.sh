#!/usr/bin/env bash
# Installs what zreap's build and tests need on a fresh Debian/Ubuntu machine:
# a C compiler, a C++ compiler and clang (the header is checked with all of
# them), make (the preload shim is tested on a make -j4 build; the Makefile
# installs zreap), valgrind and gcc's ASan/UBSan runtime (the C tests run under
# both: capi/tests/c_sanitized.rs), and what the install, man-page and example
# tests run: pkg-config, binutils (readelf, nm), mandoc and libuv1-dev.
# Idempotent: installs nothing when everything is present.
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v make >/dev/null 2>&1 || need+=(make)
command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
# The sanitizer runtimes come with the compiler's support library package.
if command -v gcc >/dev/null 2>&1 &&
  ! echo 'int main(void) { return 0; }' | gcc -fsanitize=address,undefined -x c - -o /dev/null 2>/dev/null; then
  need+=("libgcc-$(gcc -dumpversion | cut -d. -f1)-dev")
fi
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v readelf >/dev/null 2>&1 || need+=(binutils)
command -v mandoc >/dev/null 2>&1 || need+=(mandoc)
[ -e /usr/include/uv.h ] || need+=(libuv1-dev)
if ((${#need[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "setup: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
