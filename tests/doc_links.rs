//! The docs hold together: every relative link in README.md, BENCHMARKS.md
//! and docs/*.md points at a file that exists and, with `#anchor`, at a
//! heading of that file (GitHub's anchors); every doc in docs/ is on the
//! README's map and links back to the README. Plain std, no network.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md, BENCHMARKS.md and every docs/*.md, as (path, text).
fn docs() -> Vec<(PathBuf, String)> {
    let mut paths = vec![root().join("README.md"), root().join("BENCHMARKS.md")];
    let mut in_docs: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    in_docs.sort();
    paths.extend(in_docs);
    paths
        .into_iter()
        .map(|p| {
            let text = fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, text)
        })
        .collect()
}

/// The lines outside fenced code blocks, with their line numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut inside = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
            continue;
        }
        if !inside {
            out.push((i + 1, line));
        }
    }
    out
}

/// GitHub's anchor for a heading: lower case, only letters, digits, `-`
/// and `_` kept, spaces made `-`; a repeated one gets `-1`, `-2`, ...
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    for (_, line) in prose(text) {
        let Some(title) = line.strip_prefix('#') else {
            continue;
        };
        let title = title.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let base: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

/// The targets of the inline links `[text](target)` of a line, outside
/// `code spans`.
fn link_targets(line: &str) -> Vec<String> {
    let mut plain = String::new();
    for (i, part) in line.split('`').enumerate() {
        if i % 2 == 0 {
            plain.push_str(part);
        }
    }
    let mut out = Vec::new();
    let mut rest = plain.as_str();
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        out.push(after[..end].to_string());
        rest = &after[end..];
    }
    out
}

#[test]
fn every_relative_link_resolves_to_a_file_and_a_heading() {
    let mut broken = Vec::new();
    for (path, text) in docs() {
        let dir = path.parent().unwrap();
        for (n, line) in prose(&text) {
            for target in link_targets(line) {
                if target.starts_with("http://")
                    || target.starts_with("https://")
                    || target.starts_with("mailto:")
                {
                    continue;
                }
                let (file, anchor) = match target.split_once('#') {
                    Some((f, a)) => (f, Some(a)),
                    None => (target.as_str(), None),
                };
                let file: PathBuf = if file.is_empty() {
                    path.clone()
                } else {
                    dir.join(file)
                };
                let at = format!("{}:{n}: ({target})", rel(&path));
                if !file.exists() {
                    broken.push(format!("{at}: no file {}", file.display()));
                    continue;
                }
                if let Some(anchor) = anchor {
                    let Ok(target_text) = fs::read_to_string(&file) else {
                        broken.push(format!("{at}: an anchor into a file that is not text"));
                        continue;
                    };
                    if !anchors(&target_text).contains(anchor) {
                        broken.push(format!("{at}: no heading #{anchor} in {}", rel(&file)));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_doc_is_on_the_readme_map_and_links_back() {
    let all = docs();
    let readme = &all[0].1;
    for (path, text) in &all[1..] {
        let name = rel(path);
        assert!(
            readme.contains(&format!("]({name})")),
            "README.md's map of the docs does not link {name}"
        );
        let back = if name.starts_with("docs/") {
            "](../README.md)"
        } else {
            "](README.md)"
        };
        let opening: String = text.lines().take(6).collect::<Vec<_>>().join("\n");
        assert!(
            opening.contains(back),
            "{name} does not say what it is for and link back to the README at its top"
        );
    }
}

/// The slugger and the link reader, on the cases the docs use.
#[test]
fn anchors_and_links_are_read_as_github_does() {
    let a = anchors(
        "# Re-injection into Janus's event bus\n## `http` and `http-<name>` (HTTP backends)\n\
         ```sh\n# not a heading\n```\n## Try it, test it (fresh Debian 12)\n## Series\n## Series\n",
    );
    for want in [
        "re-injection-into-januss-event-bus",
        "http-and-http-name-http-backends",
        "try-it-test-it-fresh-debian-12",
        "series",
        "series-1",
    ] {
        assert!(a.contains(want), "{want} not in {a:?}");
    }
    assert!(!a.contains("not-a-heading"));
    assert_eq!(
        link_targets("see [a](x.md#b) and `[c](not-a-link)`, ![d](e.png)"),
        ["x.md#b", "e.png"]
    );
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}
