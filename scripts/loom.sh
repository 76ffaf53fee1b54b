#!/bin/sh
# Model-checks the gate (src/gate.rs) and the shim's store
# (preload/src/store.rs) with loom. Each model sets its own preemption bound;
# LOOM_MAX_PREEMPTIONS overrides it for a deeper (slower) search.
set -eu
cd "$(dirname "$0")/.."
export RUSTFLAGS="--cfg zreap_loom"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}/loom"
cargo test --release -p zreap --lib loom
cargo test --release -p zreap-preload --lib loom
