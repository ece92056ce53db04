//! The crate's structure: every module imports only modules below it in
//! [`LAYERS`] (the list in `src/lib.rs`), so there are no circles and a
//! reader can understand any module from what lies below it.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

/// Top to bottom. A module may use `crate::<m>` only for an `m` below it.
const LAYERS: &[&str] = &[
    "entry",
    "instance",
    "admin",
    "running",
    "exporter",
    "worker",
    "intake",
    "crash_state",
    "sinks",
    "error",
    "bus",
    "counters",
    "output",
    "tracker",
    "config",
    "janus",
    "reason",
    "durable",
    "faults",
    "sync",
    "log",
    "ffi",
];

/// What `path` (a file under src/) refers to as `crate::<module>`, outside
/// its `#[cfg(test)]` part.
fn uses(path: &Path) -> BTreeSet<String> {
    let text = fs::read_to_string(path).unwrap();
    let code: String = without_test_modules(&text)
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let before = &code[..i];
        if before.ends_with('$') || before.ends_with("_lifecycleevh::") {
            continue; // `$crate::` inside a macro refers to the defining module
        }
        let rest = &code[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        match name.as_str() {
            "" => {}
            // #[macro_export] puts the logging macro at the crate root.
            "jlog" => {
                found.insert("log".to_string());
            }
            _ => {
                found.insert(name);
            }
        }
    }
    found
}

/// The text without its `#[cfg(test)] mod tests { ... }` blocks (braces
/// counted; the JSON inside test strings is balanced too).
fn without_test_modules(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..i]);
        let after = &rest[i..];
        let Some(open) = after.find(['{', ';']) else {
            return out;
        };
        if after.as_bytes()[open] == b';' {
            rest = &after[open + 1..];
            continue;
        }
        let mut depth = 0;
        let mut end = after.len();
        for (j, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .to_string();
    first.trim_end_matches(".rs").to_string()
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn every_import_points_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for file in &all {
        let module = module_of(&src, file);
        if module == "lib" {
            continue;
        }
        let Some(level) = LAYERS.iter().position(|m| *m == module) else {
            panic!("{}: module {module} is not in LAYERS", file.display());
        };
        for used in uses(file) {
            if used == module {
                continue;
            }
            match LAYERS.iter().position(|m| *m == used) {
                Some(l) if l > level => {}
                _ => wrong.push(format!("{} uses crate::{used}", file.display())),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports pointing up:\n{}",
        wrong.join("\n")
    );
}
