//! The man pages in `man/`: `mandoc -T lint` finds nothing at warning level;
//! every exported function has a page with the sections a C programmer looks
//! for; each page's ERRORS list is exactly the errnos that the function's doc
//! comment in `capi/src/lib.rs` names (plus ENOTRECOVERABLE, which every call
//! may return) and holds every errno a C test checks directly with
//! `CHECK_ERR(zfunction(...), E...)`; and each EXAMPLES program compiles with
//! `-Wall -Werror` and links against libzreap.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use zreap_testsupport as support;

const FUNCTION_SECTIONS: [&str; 9] =
    ["NAME", "LIBRARY", "SYNOPSIS", "DESCRIPTION", "RETURN VALUES", "NOTES", "EXAMPLES", "ERRORS", "SEE ALSO"];

struct Page {
    path: PathBuf,
    text: String,
}

impl Page {
    /// The `.Nm` names in NAME.
    fn names(&self) -> Vec<String> {
        self.section("NAME")
            .lines()
            .filter_map(|l| l.strip_prefix(".Nm "))
            .map(|n| n.trim_end_matches(" ,").to_string())
            .collect()
    }

    /// The lines of section `name`, empty when there is none.
    fn section(&self, name: &str) -> String {
        let heading = format!(".Sh {name}\n");
        let Some(start) = self.text.find(&heading) else { return String::new() };
        let body = &self.text[start + heading.len()..];
        body[..body.find("\n.Sh ").map_or(body.len(), |i| i + 1)].to_string()
    }

    /// The errnos listed in ERRORS (`.It Bq Er EXXX`).
    fn errors(&self) -> BTreeSet<String> {
        self.section("ERRORS").lines().filter_map(|l| l.strip_prefix(".It Bq Er ")).map(String::from).collect()
    }

    /// The first literal block of EXAMPLES, unescaped.
    fn example(&self) -> Option<String> {
        let examples = self.section("EXAMPLES");
        let start = examples.find(".Bd -literal")?;
        let body = &examples[start..];
        let body = &body[body.find('\n')? + 1..];
        Some(body[..body.find("\n.Ed")? + 1].replace("\\e", "\\").replace("\\&", ""))
    }
}

fn pages() -> Vec<Page> {
    let mut pages: Vec<Page> = std::fs::read_dir(support::repo().join("man"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|path| Page { text: std::fs::read_to_string(&path).unwrap(), path })
        .collect();
    pages.sort_by(|a, b| a.path.cmp(&b.path));
    assert!(pages.len() >= 10, "man/ holds {} pages", pages.len());
    pages
}

fn function_pages() -> Vec<Page> {
    pages().into_iter().filter(|p| p.path.extension().is_some_and(|x| x == "3")).collect()
}

/// Every errno name the system headers define.
fn errno_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for header in ["/usr/include/asm-generic/errno-base.h", "/usr/include/asm-generic/errno.h"] {
        let text = std::fs::read_to_string(header).unwrap_or_else(|e| panic!("read {header}: {e}"));
        names.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("#define"))
                .filter_map(|l| l.split_whitespace().next())
                .map(String::from),
        );
    }
    names
}

fn errno_words(text: &str, errnos: &BTreeSet<String>) -> BTreeSet<String> {
    text.split(|c: char| !c.is_ascii_alphanumeric()).filter(|w| errnos.contains(*w)).map(String::from).collect()
}

/// Each exported function of `capi/src/lib.rs` with the errnos its doc comment names.
fn documented_errors() -> BTreeMap<String, BTreeSet<String>> {
    let source = std::fs::read_to_string(support::repo().join("capi/src/lib.rs")).unwrap();
    let errnos = errno_names();
    let mut doc = String::new();
    let mut found = BTreeMap::new();
    for line in source.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix("///") {
            doc.push_str(text);
            doc.push('\n');
        } else if let Some(rest) =
            line.strip_prefix("pub extern \"C\" fn ").or(line.strip_prefix("pub unsafe extern \"C\" fn "))
        {
            let name = rest.split('(').next().unwrap().to_string();
            found.insert(name, errno_words(&doc, &errnos));
            doc.clear();
        } else if !line.starts_with("#[") {
            doc.clear();
        }
    }
    assert!(found.len() >= 13, "exports found in lib.rs: {found:?}");
    found
}

#[test]
fn mandoc_lint_finds_nothing() {
    let paths: Vec<PathBuf> = pages().into_iter().map(|p| p.path).collect();
    let out = support::run_with_deadline(
        Command::new("mandoc").args(["-T", "lint", "-W", "warning"]).args(&paths),
        Duration::from_secs(60),
    );
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.is_empty(), "mandoc -T lint ({:?}):\n{report}", out.status);
}

#[test]
fn every_function_has_a_page_with_every_section() {
    let documented: BTreeSet<String> = function_pages().iter().flat_map(Page::names).collect();
    for function in documented_errors().keys() {
        assert!(documented.contains(function), "no man page names {function}");
    }
    for page in function_pages() {
        for section in FUNCTION_SECTIONS {
            assert!(page.text.contains(&format!("\n.Sh {section}\n")), "{}: no {section} section", page.path.display());
        }
        assert!(page.section("LIBRARY").contains("lzreap") && page.section("LIBRARY").contains("pkg-config"));
    }
    let all: Vec<String> = pages().iter().map(|p| p.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for page in ["zreap.1", "zreap.7"] {
        assert!(all.iter().any(|p| p == page), "no {page}");
    }
}

#[test]
fn errors_sections_match_the_c_api() {
    let documented = documented_errors();
    let errnos = errno_names();
    let mut provoked: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(support::repo().join("c-tests")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for call in text.split("CHECK_ERR(").skip(1) {
            let Some(name) = call.trim_start().split('(').next().filter(|n| documented.contains_key(*n)) else {
                continue;
            };
            let args = &call[..call.find(';').unwrap_or(call.len())];
            let last = args.rsplit(',').next().unwrap_or("");
            provoked.entry(name.to_string()).or_default().extend(errno_words(last, &errnos));
        }
    }
    assert!(provoked.len() >= 5, "CHECK_ERR calls found: {provoked:?}");

    for page in function_pages() {
        let names = page.names();
        let mut expected: BTreeSet<String> =
            names.iter().filter_map(|n| documented.get(n)).flatten().cloned().collect();
        expected.insert("ENOTRECOVERABLE".into());
        assert_eq!(
            page.errors(),
            expected,
            "{}: ERRORS against the doc comments of {names:?} in capi/src/lib.rs",
            page.path.display()
        );
        for name in &names {
            for errno in provoked.get(name).into_iter().flatten() {
                assert!(page.errors().contains(errno), "{}: c-tests provoke {errno} from {name}", page.path.display());
            }
        }
    }
}

#[test]
fn examples_compile() {
    let dir = std::env::temp_dir().join(format!("zreap-man-examples-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lib_dir = support::profile_dir();
    let mut compiled = 0;
    for page in function_pages() {
        let stem = page.path.file_stem().unwrap().to_string_lossy().into_owned();
        let code = page.example().unwrap_or_else(|| panic!("{}: no literal block in EXAMPLES", page.path.display()));
        let source = dir.join(format!("{stem}.c"));
        std::fs::write(&source, code).unwrap();
        let out = support::run_with_deadline(
            Command::new(support::c_compiler())
                .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I"])
                .arg(support::repo().join("include"))
                .arg(&source)
                .arg("-o")
                .arg(dir.join(&stem))
                .arg(format!("-L{}", lib_dir.display()))
                .arg("-lzreap"),
            Duration::from_secs(60),
        );
        assert!(
            out.status.success(),
            "{}: EXAMPLES does not compile:\n{}",
            page.path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        compiled += 1;
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(compiled >= 8);
}

#[test]
fn pages_name_only_existing_pages_of_zreap() {
    let present: BTreeSet<String> = pages()
        .iter()
        .flat_map(|p| {
            p.names().into_iter().map(move |n| format!("{n}.{}", p.path.extension().unwrap().to_string_lossy()))
        })
        .collect();
    for page in pages() {
        for line in page.text.lines().filter_map(|l| l.strip_prefix(".Xr ")) {
            let mut words = line.split_whitespace();
            let (name, section) = (words.next().unwrap(), words.next().unwrap_or(""));
            if name.starts_with('z') {
                let target = format!("{name}.{section}");
                assert!(
                    present.contains(&target),
                    "{}: .Xr {name} {section} has no page",
                    Path::new(&page.path).display()
                );
            }
        }
    }
}
