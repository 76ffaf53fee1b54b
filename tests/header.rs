//! The checked-in `include/zreap.h` is what build.rs generates. Outside CI,
//! build.rs rewrites the checked-in copy, so drift shows up in `git status`;
//! in CI (`CI` set) it leaves the copy alone and this test catches drift.

#[test]
fn header_is_current() {
    let generated = std::fs::read_to_string(env!("ZREAP_GENERATED_HEADER")).expect("generated header");
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/zreap.h")).expect("include/zreap.h");
    assert!(generated == checked_in, "include/zreap.h is stale: build without CI set to regenerate it, then commit it");
}
