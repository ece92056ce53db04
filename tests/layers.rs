//! The crate's structure, read from its source with `syn`:
//!
//! - every module imports only modules below it in the module map at the
//!   top of `src/lib.rs` (so there are no circles, and a reader can
//!   understand any module from what lies below it), whatever form the
//!   import takes: `crate::a::b`, `use crate::{a, b}`, `super::super::a`,
//!   a path inside a macro's arguments, `$crate::a` in a macro's body;
//! - the module map lists exactly the modules `src/lib.rs` declares;
//! - `unsafe` stays denied everywhere but in the two modules allowed it.
//!
//! Code under `#[cfg(test)]` may use anything. The check runs on a copy of
//! the source tree too, with upward imports written into it, to show that it
//! fails when it must.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use syn::visit::{self, Visit};

/// Where `unsafe` may be allowed: the outer attributes of these `mod` items
/// of `src/lib.rs`, and nowhere else.
const UNSAFE_ALLOWED: &[&str] = &["entry", "ffi"];

/// Every problem found in the source tree under `src`, one line each.
fn problems(src: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let lib = parse(&src.join("lib.rs"));
    let layers = match layers(&lib) {
        Ok(l) => l,
        Err(e) => return vec![e],
    };
    let macros = exported_macros(src);
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    for file in &files {
        let rel = file.strip_prefix(src).unwrap();
        let ast = parse(file);
        let module = module_path(rel);
        let mut v = Uses {
            module: module.clone(),
            found: Vec::new(),
            allows: Vec::new(),
            items: Vec::new(),
            seen: HashSet::new(),
        };
        v.visit_file(&ast);
        for site in &v.allows {
            let site = format!("{}: {site}", rel.display());
            let pinned = UNSAFE_ALLOWED
                .iter()
                .any(|m| site == format!("lib.rs: mod {m}"));
            if !pinned {
                out.push(format!("{site}: allows unsafe_code"));
            }
        }
        let Some(top) = module.first() else {
            continue; // lib.rs: declarations and attributes only (checked above)
        };
        let Some(level) = layers.iter().position(|m| m == top) else {
            out.push(format!(
                "{}: module {top} is not in lib.rs's module map",
                rel.display()
            ));
            continue;
        };
        for (path, used) in v.found {
            let used = macros.get(&used).cloned().unwrap_or(used);
            if used == *top {
                continue;
            }
            match layers.iter().position(|m| *m == used) {
                Some(l) if l > level => {}
                Some(_) => out.push(format!(
                    "{}: {top} uses {path}, and {used} is not below {top}",
                    rel.display()
                )),
                None => out.push(format!(
                    "{}: {top} uses {path}, and {used} is not a module of lib.rs",
                    rel.display()
                )),
            }
        }
    }
    let denied = lib.attrs.iter().any(|a| {
        matches!(a.style, syn::AttrStyle::Inner(_))
            && (a.path().is_ident("deny") || a.path().is_ident("forbid"))
            && mentions_unsafe_code(a)
    });
    if !denied {
        out.push("lib.rs: no #![deny(unsafe_code)]".into());
    }
    out
}

fn parse(file: &Path) -> syn::File {
    let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

/// The module map of `src/lib.rs` (the first ```text block of its inner
/// doc comment, one module per line, its name first), top to bottom;
/// an error unless it names exactly the modules lib.rs declares.
fn layers(lib: &syn::File) -> Result<Vec<String>, String> {
    let doc: Vec<String> = lib
        .attrs
        .iter()
        .filter(|a| matches!(a.style, syn::AttrStyle::Inner(_)) && a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => Some(s.value()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let map: Vec<String> = doc
        .iter()
        .skip_while(|l| l.trim() != "```text")
        .skip(1)
        .take_while(|l| l.trim() != "```")
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    if map.is_empty() {
        return Err("lib.rs: no module map (a ```text block in its doc comment)".into());
    }
    let mut declared: Vec<String> = lib
        .items
        .iter()
        .filter_map(|i| match i {
            syn::Item::Mod(m) => Some(m.ident.to_string()),
            _ => None,
        })
        .collect();
    let mut listed = map.clone();
    declared.sort();
    listed.sort();
    if declared != listed {
        return Err(format!(
            "lib.rs: the module map lists {listed:?}, lib.rs declares {declared:?}"
        ));
    }
    Ok(map)
}

/// `#[macro_export]` macros live at the crate root (`crate::jlog!`): each
/// name, with the module that defines it.
fn exported_macros(src: &Path) -> BTreeMap<String, String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut out = BTreeMap::new();
    for file in files {
        let module = module_path(file.strip_prefix(src).unwrap());
        for item in parse(&file).items {
            if let syn::Item::Macro(m) = item
                && m.attrs.iter().any(|a| a.path().is_ident("macro_export"))
                && let (Some(name), Some(top)) = (m.ident, module.first())
            {
                out.insert(name.to_string(), top.clone());
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module a file under src/ is: `sinks/spool/mod.rs` is
/// `[sinks, spool]`, `sinks/file.rs` is `[sinks, file]`, lib.rs is `[]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
        parts.pop();
    }
    parts
}

/// What one file refers to in the crate, outside `#[cfg(test)]`: each path
/// as written, with the top-level name it reaches (a module of lib.rs, or
/// an exported macro).
struct Uses {
    /// The module being read (inline modules pushed onto the file's).
    module: Vec<String>,
    found: Vec<(String, String)>,
    /// The items whose attributes allow unsafe code, e.g. `mod entry`.
    allows: Vec<String>,
    /// The items being read, innermost last.
    items: Vec<String>,
    /// Attributes already looked at (an item's are seen twice).
    seen: HashSet<*const syn::Attribute>,
}

impl Uses {
    /// The top-level name a path reaches in this crate, if it is a path
    /// into the crate (`crate::`, `super::`, `self::`, `$crate::`).
    fn reach(&mut self, segments: &[String]) {
        if segments.len() < 2 {
            return; // `self`, `crate`, `super` alone: not a path into a module
        }
        let written = segments.join("::");
        let (base, rest): (Vec<String>, &[String]) = match segments.first().map(String::as_str) {
            Some("crate") => (Vec::new(), &segments[1..]),
            Some("self") => (self.module.clone(), &segments[1..]),
            Some("super") => {
                let ups = segments.iter().take_while(|s| *s == "super").count();
                if ups > self.module.len() {
                    self.found.push((written, "<above the crate>".into()));
                    return;
                }
                (
                    self.module[..self.module.len() - ups].to_vec(),
                    &segments[ups..],
                )
            }
            _ => return,
        };
        let top = match base.first() {
            Some(top) => top.clone(),
            None => match rest.first() {
                Some(name) if name != "*" => name.clone(),
                // `use crate::*`, `use super::*` at the top: everything.
                _ => "*".into(),
            },
        };
        self.found.push((written, top));
    }

    /// Paths inside a macro's tokens: `crate :: a`, `super :: a`, and
    /// `$crate :: a` (in a `macro_rules!` body: the defining crate).
    fn tokens(&mut self, tokens: TokenStream) {
        let list: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < list.len() {
            match &list[i] {
                TokenTree::Group(g) => {
                    self.tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(id)
                    if matches!(id.to_string().as_str(), "crate" | "super" | "self") =>
                {
                    let mut segments = vec![id.to_string()];
                    let mut j = i + 1;
                    while j + 2 < list.len()
                        && is_punct(&list[j], ':')
                        && is_punct(&list[j + 1], ':')
                    {
                        match &list[j + 2] {
                            TokenTree::Ident(next) => segments.push(next.to_string()),
                            TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => {
                                // `crate::{a, b}` inside a macro: each name.
                                for t in g.stream() {
                                    if let TokenTree::Ident(name) = t {
                                        let mut s = segments.clone();
                                        s.push(name.to_string());
                                        self.reach(&s);
                                    }
                                }
                                j += 3;
                                break;
                            }
                            _ => break,
                        }
                        j += 3;
                    }
                    // `self` alone is a method receiver; `crate` alone is nothing.
                    if segments.len() > 1 {
                        self.reach(&segments);
                    }
                    i = j.max(i + 1);
                }
                _ => i += 1,
            }
        }
    }

    fn allows(&mut self, attrs: &[syn::Attribute]) {
        for a in attrs {
            if !self.seen.insert(a as *const syn::Attribute) {
                continue;
            }
            let loosens = ["allow", "expect", "warn", "cfg_attr"]
                .iter()
                .any(|p| a.path().is_ident(p));
            if loosens && mentions_unsafe_code(a) {
                self.allows.push(if self.items.is_empty() {
                    "the whole file".into()
                } else {
                    self.items.join(" > ")
                });
            }
        }
    }
}

fn is_punct(t: &TokenTree, c: char) -> bool {
    matches!(t, TokenTree::Punct(p) if p.as_char() == c)
}

fn mentions_unsafe_code(a: &syn::Attribute) -> bool {
    fn walk(t: TokenStream) -> bool {
        t.into_iter().any(|t| match t {
            TokenTree::Ident(i) => i == "unsafe_code",
            TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    match &a.meta {
        syn::Meta::List(l) => walk(l.tokens.clone()),
        _ => false,
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && matches!(&a.meta, syn::Meta::List(l) if l.tokens.to_string() == "test")
    })
}

/// The flattened paths of a `use` tree: `crate::{a, b::c}` is
/// `crate::a` and `crate::b::c`.
fn use_paths(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(&p.tree, prefix, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let mut p = prefix.clone();
            p.push(n.ident.to_string());
            out.push(p);
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            p.push(r.ident.to_string());
            out.push(p);
        }
        syn::UseTree::Glob(_) => {
            let mut p = prefix.clone();
            p.push("*".into());
            out.push(p);
        }
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_paths(t, prefix, out);
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_file(&mut self, f: &'ast syn::File) {
        self.allows(&f.attrs);
        for item in &f.items {
            self.visit_item(item);
        }
    }

    fn visit_item(&mut self, item: &'ast syn::Item) {
        let (attrs, what): (&[syn::Attribute], String) = match item {
            syn::Item::Mod(m) => (&m.attrs, format!("mod {}", m.ident)),
            syn::Item::Fn(f) => (&f.attrs, format!("fn {}", f.sig.ident)),
            syn::Item::Impl(i) => (&i.attrs, "impl".into()),
            syn::Item::Use(u) => (&u.attrs, "use".into()),
            syn::Item::Const(c) => (&c.attrs, format!("const {}", c.ident)),
            syn::Item::Static(s) => (&s.attrs, format!("static {}", s.ident)),
            syn::Item::Struct(s) => (&s.attrs, format!("struct {}", s.ident)),
            syn::Item::Enum(e) => (&e.attrs, format!("enum {}", e.ident)),
            syn::Item::Trait(t) => (&t.attrs, format!("trait {}", t.ident)),
            syn::Item::Type(t) => (&t.attrs, format!("type {}", t.ident)),
            syn::Item::Macro(m) => (&m.attrs, "macro".into()),
            syn::Item::ForeignMod(f) => (&f.attrs, "extern".into()),
            _ => (&[], "item".into()),
        };
        if is_test_only(attrs) {
            return;
        }
        self.items.push(what);
        self.allows(attrs);
        match item {
            syn::Item::Mod(m) => {
                if let Some((_, items)) = &m.content {
                    self.module.push(m.ident.to_string());
                    for i in items {
                        self.visit_item(i);
                    }
                    self.module.pop();
                }
            }
            syn::Item::Use(u) => {
                let mut paths = Vec::new();
                use_paths(&u.tree, &mut Vec::new(), &mut paths);
                for p in paths {
                    self.reach(&p);
                }
            }
            syn::Item::Macro(m) if m.mac.path.is_ident("macro_rules") => {
                // `$crate::a` in the body: the defining crate's module `a`.
                self.tokens(dollar_crate(m.mac.tokens.clone()));
            }
            other => visit::visit_item(self, other),
        }
        self.items.pop();
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        let attrs = match item {
            syn::ImplItem::Fn(f) => &f.attrs,
            syn::ImplItem::Const(c) => &c.attrs,
            syn::ImplItem::Type(t) => &t.attrs,
            _ => return visit::visit_impl_item(self, item),
        };
        if !is_test_only(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        // Attributes of items were looked at in visit_item; these are the
        // ones on statements, expressions, fields...
        self.allows(std::slice::from_ref(a));
    }

    /// `pub(crate)`, `pub(super)`: visibility, not a use.
    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.leading_colon.is_none() {
            let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
            self.reach(&segments);
        }
        visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        self.visit_path(&m.path);
        self.tokens(m.tokens.clone());
    }
}

/// A `macro_rules!` body with `$crate` written as `crate` (the rest kept).
fn dollar_crate(tokens: TokenStream) -> TokenStream {
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(t) = iter.next() {
        match t {
            TokenTree::Punct(p)
                if p.as_char() == '$'
                    && matches!(iter.peek(), Some(TokenTree::Ident(i)) if i == "crate") =>
            {
                continue;
            }
            TokenTree::Group(g) => {
                let mut ng = proc_macro2::Group::new(g.delimiter(), dollar_crate(g.stream()));
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            other => out.push(other),
        }
    }
    out.into_iter().collect()
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_import_points_down_and_unsafe_stays_in_entry_and_ffi() {
    let found = problems(&src());
    assert!(
        found.is_empty(),
        "the crate's structure:\n{}",
        found.join("\n")
    );
}

/// A copy of src/ with `files` written into it (path under src/, text).
fn mutated(files: &[(&str, &str)]) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        fs::create_dir_all(to).unwrap();
        for e in fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dest = to.join(p.file_name().unwrap());
            if p.is_dir() {
                copy(&p, &dest);
            } else {
                fs::copy(&p, &dest).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&src(), dir.path());
    for (path, text) in files {
        fs::write(dir.path().join(path), text).unwrap();
    }
    dir
}

/// The check fails on every form an upward import can take (the tracker is
/// below the worker), and only on those.
#[test]
fn the_check_fails_on_upward_imports_of_every_form() {
    let tree = mutated(&[
        ("tracker/probe_grouped.rs", "use crate::{janus, worker};\n"),
        (
            "tracker/probe_super.rs",
            "fn probe() -> i64 { super::super::worker::now_us() }\n",
        ),
        (
            "tracker/probe_string.rs",
            "fn probe() -> (&'static str, fn() -> i64) { (\"http://\", crate::worker::now_us) }\n",
        ),
        (
            "tracker/probe_macro.rs",
            "fn probe() -> String { format!(\"{}\", crate::worker::now_us()) }\n",
        ),
        (
            "tracker/probe_dollar.rs",
            "macro_rules! probe {\n    () => {\n        $crate::worker::now_us()\n    };\n}\n",
        ),
        (
            "tracker/probe_test_only.rs",
            "#[cfg(test)]\nmod tests {\n    use crate::worker;\n}\n",
        ),
    ]);
    assert_eq!(
        problems(tree.path()),
        [
            "tracker/probe_dollar.rs: tracker uses crate::worker::now_us, and worker is not below tracker",
            "tracker/probe_grouped.rs: tracker uses crate::worker, and worker is not below tracker",
            "tracker/probe_macro.rs: tracker uses crate::worker::now_us, and worker is not below tracker",
            "tracker/probe_string.rs: tracker uses crate::worker::now_us, and worker is not below tracker",
            "tracker/probe_super.rs: tracker uses super::super::worker::now_us, and worker is not below tracker",
        ]
    );
}

/// The module map is lib.rs's own: a module declared but not on the map
/// fails, and so does `unsafe` allowed anywhere but in `entry` and `ffi`.
#[test]
fn the_check_fails_on_an_unmapped_module_or_unsafe_allowed_elsewhere() {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let tree = mutated(&[("lib.rs", &format!("{lib}pub mod probe;\n"))]);
    let found = problems(tree.path());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("lib.rs: the module map lists"),
        "{found:?}"
    );

    let tree = mutated(&[
        (
            "tracker/probe_unsafe.rs",
            "#[allow(unsafe_code)]\nfn probe() {}\n",
        ),
        (
            "janus/probe_unsafe.rs",
            "fn probe() -> u8 {\n    #[allow(unsafe_code)]\n    let x = 1;\n    x\n}\n",
        ),
        (
            "lib.rs",
            &lib.replace("#![deny(unsafe_code)]", "#![warn(unsafe_code)]"),
        ),
    ]);
    assert_eq!(
        problems(tree.path()),
        [
            "janus/probe_unsafe.rs: fn probe: allows unsafe_code",
            "lib.rs: the whole file: allows unsafe_code",
            "tracker/probe_unsafe.rs: fn probe: allows unsafe_code",
            "lib.rs: no #![deny(unsafe_code)]",
        ]
    );
}
