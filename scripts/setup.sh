#!/usr/bin/env bash
# Installs what zreap's build and tests need on a fresh Debian/Ubuntu machine:
# a C compiler (gcc's libgcc_eh.a is linked into the preload shim), a C++
# compiler and clang (the header is checked with all of them), make (the
# preload shim is tested on a make -j4 build and benchmarked on a make -j2
# one; the Makefile installs zreap), valgrind and gcc's ASan/UBSan runtime (the
# C tests run under both: capi/tests/c_sanitized.rs; zreap-bench counts the
# shim's instructions with valgrind), what the install, man-page and example
# tests run (pkg-config, binutils for readelf and nm, mandoc, libuv1-dev),
# strace, gdb and ltrace (tracers run under the shim; strace also counts
# zreap-bench's system calls per exit), libglib2.0-dev (zreap-bench's GLib
# peer; libuv1-dev is its libuv peer), and python3 with CPython's own test
# suite (run under the shim).
# Idempotent: installs nothing when everything is present.
set -euo pipefail
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
updated=""
install() {
  (($#)) || return 0
  echo "setup: installing $*" >&2
  [ -n "$updated" ] || { $sudo apt-get update -qq; updated=1; }
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v g++ >/dev/null 2>&1 || need+=(g++)
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v readelf >/dev/null 2>&1 || need+=(binutils)
[ -e /usr/include/uv.h ] || need+=(libuv1-dev)
[ -e /usr/include/glib-2.0/glib.h ] || need+=(libglib2.0-dev)
for tool in make valgrind mandoc strace gdb ltrace python3; do
  command -v "$tool" >/dev/null 2>&1 || need+=("$tool")
done
install "${need[@]}"
# The sanitizer runtimes come with the compiler's support library package.
if ! echo 'int main(void) { return 0; }' | gcc -fsanitize=address,undefined -x c - -o /dev/null 2>/dev/null; then
  install "libgcc-$(gcc -dumpversion | cut -d. -f1)-dev"
fi
# CPython's test package, for the python3 found first on PATH.
if ! python3 -c 'import test.regrtest' >/dev/null 2>&1; then
  install "libpython$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')-testsuite"
fi
command -v cargo >/dev/null 2>&1 || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
