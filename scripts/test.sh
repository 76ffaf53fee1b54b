#!/usr/bin/env bash
# Every check and every test, on a fresh machine: installs what is missing
# (scripts/setup.sh), then formatting, lints, the API docs, the crate's
# packaging, the build (cargo test does not build the cdylib-only crates:
# libzreap.so and the shim), the tests of every crate, and the loom models. The README's test
# command and .ci/run are this script.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps -p zreap
cargo publish --dry-run -p zreap --allow-dirty
cargo build --workspace
cargo test --workspace
scripts/loom.sh
