//! ARCHITECTURE.md is the map of the source tree; these tests keep the map and the tree in step.
//!
//! - Every source file of `runtime/src` and `macros/src` is named (as a backticked path) in the
//!   code map, so a new module cannot land without its entry.
//! - Each crate's ```` ```layers <crate> ```` block lists its top-level modules, lowest layer
//!   first. A module may refer (`crate::…`, in `use` or in code) only to modules of *lower*
//!   layers, or to itself: lower layers never import higher ones, and there is no import cycle
//!   between top-level modules. Test modules (`#[cfg(test)] mod tests`) are exempt: tests may
//!   reach across layers to set things up.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn architecture() -> String {
    let path = repo().join("ARCHITECTURE.md");
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, as paths relative to the repository root, sorted.
fn sources(dir: &str) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let root = repo();
    let mut out = Vec::new();
    walk(&root, &root.join(dir), &mut out);
    out.sort();
    out
}

#[test]
fn every_module_is_in_the_code_map() {
    let map = architecture();
    let missing: Vec<String> = ["runtime/src", "macros/src"]
        .into_iter()
        .flat_map(sources)
        .filter(|file| !map.contains(&format!("`{file}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md's code map does not name these files; add an entry for each (what it \
         holds, its invariants, what it must not depend on): {missing:#?}"
    );
}

/// The top-level modules of a ```` ```layers <krate> ```` block, mapped to their layer index.
fn layers(map: &str, krate: &str) -> BTreeMap<String, usize> {
    let fence = format!("```layers {krate}");
    let start = map
        .find(&fence)
        .unwrap_or_else(|| panic!("ARCHITECTURE.md has no `{fence}` block"));
    let body = &map[start + fence.len()..];
    let body = &body[..body.find("```").expect("unterminated layers block")];
    let mut out = BTreeMap::new();
    for (layer, line) in body.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        // `N. name name …`, optionally followed by ` -- comment`.
        let line = line.split(" -- ").next().unwrap();
        for module in line.split_whitespace().skip(1) {
            let previous = out.insert(module.to_owned(), layer);
            assert!(
                previous.is_none(),
                "{module} is listed twice in the {krate} layers"
            );
        }
    }
    out
}

/// The top-level module a source file belongs to: its first path component under `src`, with
/// the `#[path = "…"]` renames of `lib.rs` applied. `None` for the crate root.
fn module_of(file: &str, src: &str, renames: &BTreeMap<String, String>) -> Option<String> {
    let rel = file.strip_prefix(src)?.trim_start_matches('/');
    if rel == "lib.rs" {
        return None;
    }
    if let Some(module) = renames.get(rel) {
        return Some(module.clone());
    }
    let first = rel.split('/').next().unwrap();
    Some(first.trim_end_matches(".rs").to_owned())
}

/// `#[path = "x.rs"] mod name;` in a crate root: file → module name.
fn path_renames(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut pending = None;
    for line in lib.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("#[path = \"") {
            pending = rest.split('"').next().map(str::to_owned);
        } else if let Some(file) = pending.take() {
            if let Some(name) = line.split_whitespace().skip_while(|w| *w != "mod").nth(1) {
                out.insert(file, name.trim_end_matches(';').to_owned());
            } else {
                pending = Some(file);
            }
        }
    }
    out
}

/// Items the crate root re-exports (`pub use registry::{Registry, default_registry};`), mapped
/// to the module that defines them, so that `crate::Registry` counts as a use of `registry`.
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for statement in code_of(lib).split(';') {
        let statement = statement.trim();
        let Some(path) = statement
            .strip_prefix("pub use ")
            .or_else(|| statement.strip_prefix("pub(crate) use "))
        else {
            continue;
        };
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        for item in items.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !item.is_empty() && item != "as" {
                out.insert(item.to_owned(), module.trim().to_owned());
            }
        }
    }
    out
}

/// The code of a file without comments and without its `#[cfg(test)] mod tests` block.
fn code_of(source: &str) -> String {
    let mut out = String::new();
    let mut lines = source.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim();
        if t == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|l| l.trim().starts_with("mod tests"))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap());
        out.push('\n');
    }
    out
}

/// The top-level modules a piece of code names through `crate::`.
fn referenced_modules(code: &str) -> BTreeSet<String> {
    fn ident(s: &str) -> &str {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        &s[..end]
    }
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        // `$crate::` and `promtrack_crate::` are not this crate's paths.
        let before = rest[..at].chars().next_back();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c == '$' || c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::c, d::{e, f}}`: the first segment of each top-level item.
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if item_start && !c.is_whitespace() => {
                        out.insert(ident(&group[i..]).to_owned());
                        item_start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

fn check_layers(krate: &str, src: &str) {
    let map = architecture();
    let order = layers(&map, krate);
    let lib = fs::read_to_string(repo().join(src).join("lib.rs")).unwrap();
    let renames = path_renames(&lib);
    let reexports = root_reexports(&lib);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for file in sources(src) {
        let Some(module) = module_of(&file, src, &renames) else {
            continue;
        };
        seen.insert(module.clone());
        let Some(&own) = order.get(&module) else {
            problems.push(format!(
                "{file}: module `{module}` is not in the `layers {krate}` block"
            ));
            continue;
        };
        let code = code_of(&fs::read_to_string(repo().join(&file)).unwrap());
        for target in referenced_modules(&code) {
            let target = reexports.get(&target).cloned().unwrap_or(target);
            if target == module {
                continue;
            }
            match order.get(&target) {
                // Items defined in the crate root itself, and other crates' items it re-exports.
                None => {}
                Some(&layer) if layer < own => {}
                Some(&layer) => problems.push(format!(
                    "{file}: `{module}` (layer {own}) refers to `crate::{target}` (layer \
                     {layer}); lower layers never import higher ones"
                )),
            }
        }
    }
    for module in order.keys().filter(|m| !seen.contains(*m)) {
        problems.push(format!(
            "the `layers {krate}` block lists `{module}`, which has no source file"
        ));
    }
    assert!(
        problems.is_empty(),
        "{krate}: the imports break ARCHITECTURE.md's layer order:\n{}",
        problems.join("\n")
    );
}

#[test]
fn runtime_modules_import_only_lower_layers() {
    check_layers("runtime", "runtime/src");
}

#[test]
fn macros_modules_import_only_lower_layers() {
    check_layers("macros", "macros/src");
}

#[test]
fn the_reference_parser_finds_grouped_and_inline_paths() {
    let code = "use crate::{a::X, b, c::{d, e}};\nlet x = crate::f::g();\n$crate::h;";
    let found: Vec<String> = referenced_modules(code).into_iter().collect();
    assert_eq!(found, ["a", "b", "c", "f"]);
    let code = code_of("use crate::a;\n// crate::b\n#[cfg(test)]\nmod tests {\n use crate::c;\n}");
    assert_eq!(
        referenced_modules(&code).into_iter().collect::<Vec<_>>(),
        ["a"]
    );
}
