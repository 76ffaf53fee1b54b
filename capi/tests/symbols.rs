//! `libzreap.so` exports the C API and nothing else: every defined dynamic
//! symbol starts with `z` and carries the version node `ZREAP_0` (as the
//! default version, `@@`), every function of the contract is there, and the
//! library's soname is `libzreap.so.0`.

use std::path::Path;
use std::process::Command;
use zreap_testsupport as support;

/// Every function of the C API.
const FUNCTIONS: [&str; 13] = [
    "zreap_install",
    "zreap_uninstall",
    "zreap_all",
    "zwait",
    "zreap_fd",
    "zspawn_options_init",
    "zspawn",
    "zfork",
    "zdaemon_options_init",
    "zdaemonize",
    "zdaemon_ready",
    "zreap_stats_get",
    "zreap_version",
];

/// The output of a binutils tool run on `library`.
fn tool(program: &str, args: &[&str], library: &Path) -> String {
    let out = Command::new(program).args(args).arg(library).output().unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(out.status.success(), "{program} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The defined dynamic symbols with their versions (`nm -D --defined-only`):
/// `name@@VERSION`, `name@VERSION` or a bare name.
fn exported(library: &Path) -> Vec<String> {
    let text = tool("nm", &["-D", "--defined-only"], library);
    text.lines().filter_map(|l| l.split_whitespace().nth(2)).map(String::from).collect()
}

fn library() -> std::path::PathBuf {
    support::profile_dir().join("libzreap.so")
}

#[test]
fn only_the_c_api_is_exported_with_version_zreap_0() {
    let symbols = exported(&library());
    let foreign: Vec<&String> = symbols.iter().filter(|s| !s.starts_with('z') && *s != "ZREAP_0").collect();
    assert!(foreign.is_empty(), "libzreap.so exports more than the C API: {foreign:?}");
    let unversioned: Vec<&String> =
        symbols.iter().filter(|s| s.starts_with('z') && !s.ends_with("@@ZREAP_0")).collect();
    assert!(unversioned.is_empty(), "exports without the default version ZREAP_0: {unversioned:?}");
    for function in FUNCTIONS {
        let versioned = format!("{function}@@ZREAP_0");
        assert!(symbols.contains(&versioned), "{versioned} is not exported; got {symbols:?}");
    }
    assert_eq!(symbols.iter().filter(|s| s.starts_with('z')).count(), FUNCTIONS.len(), "{symbols:?}");
}

#[test]
fn readelf_shows_the_soname_and_the_version_node() {
    let dynamic = tool("readelf", &["-d"], &library());
    assert!(dynamic.contains("Library soname: [libzreap.so.0]"), "no soname libzreap.so.0:\n{dynamic}");
    let syms = tool("readelf", &["--dyn-syms", "--wide"], &library());
    for function in FUNCTIONS {
        assert!(
            syms.lines().any(|l| l.split_whitespace().last() == Some(&format!("{function}@@ZREAP_0"))),
            "readelf --dyn-syms has no {function}@@ZREAP_0:\n{syms}"
        );
    }
}

#[test]
fn the_soname_link_sits_next_to_the_library() {
    let link = support::profile_dir().join("libzreap.so.0");
    assert_eq!(std::fs::read_link(&link).expect("capi/build.rs makes libzreap.so.0"), Path::new("libzreap.so"));
}
