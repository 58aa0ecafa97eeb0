//! The import rules of ARCHITECTURE.md, checked over the source: no path from a stage to a
//! later one, none to a later module of the same stage, none through the root's re-exports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The rows of the markdown table that follows `marker` in ARCHITECTURE.md, cells trimmed.
fn table_after(text: &str, marker: &str) -> Vec<Vec<String>> {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in ARCHITECTURE.md"));
    text[start..]
        .lines()
        .skip(1)
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// Where a module sits: its stage's rank and its position within the stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    rank: usize,
    order: usize,
}

struct Layout {
    /// `catalog`, `compile`, `compile::render`, … → its place.
    places: BTreeMap<String, Place>,
}

impl Layout {
    fn read() -> Layout {
        let text = std::fs::read_to_string(root().join("ARCHITECTURE.md")).unwrap();
        let mut places = BTreeMap::new();
        let mut stage_rank = BTreeMap::new();
        for row in table_after(&text, "<!-- stages:") {
            let rank: usize = row[0].parse().expect("a rank");
            stage_rank.insert(row[1].clone(), rank);
            // A stage of several files orders them as listed; a folder's modules are
            // ordered by the second table.
            for (order, file) in row[2].split(',').enumerate() {
                let name = file
                    .trim()
                    .trim_matches('`')
                    .trim_end_matches('/')
                    .trim_end_matches(".rs");
                places.insert(name.to_string(), Place { rank, order });
            }
        }
        for row in table_after(&text, "<!-- modules:") {
            let rank = stage_rank[&row[0]];
            for (order, module) in row[1].split(',').map(str::trim).enumerate() {
                let key = if module == "mod" {
                    row[0].clone()
                } else {
                    format!("{}::{module}", row[0])
                };
                places.insert(key, Place { rank, order });
            }
        }
        Layout { places }
    }

    /// The place of a module path (`compile::render::Rendered` → `compile::render`).
    fn place_of(&self, path: &str) -> Option<(String, Place)> {
        let parts: Vec<&str> = path.split("::").collect();
        (1..=parts.len().min(2)).rev().find_map(|n| {
            let key = parts[..n].join("::");
            self.places.get(&key).map(|p| (key, *p))
        })
    }
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module a file is (`src/compile/render.rs` → `compile::render`, `src/run/mod.rs` → `run`).
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(root().join("src")).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The paths a file's code and docs name after `crate::` (and `super::`, made absolute).
/// Unit tests (from `#[cfg(test)]` on) are left out: their `super::` is the file itself.
fn paths_named(text: &str, module: &str) -> Vec<String> {
    let text = text.split("#[cfg(test)]").next().unwrap_or(text);
    let parent: Vec<&str> = module.split("::").collect();
    let mut found = Vec::new();
    for (prefix, base) in [
        ("crate::", String::new()),
        ("super::", {
            parent[..parent.len().saturating_sub(1)].join("::")
        }),
    ] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let before = rest[..at].chars().last();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '{')
                .collect();
            let path = path.trim_end_matches("::").trim_end_matches("::{");
            let absolute = if base.is_empty() {
                path.to_string()
            } else {
                format!("{base}::{path}")
            };
            found.push(absolute);
        }
    }
    found
}

#[test]
fn no_module_imports_a_later_stage_or_a_later_module_of_its_own() {
    let layout = Layout::read();
    let mut files = Vec::new();
    sources(&root().join("src"), &mut files);
    files.sort();
    let mut problems = Vec::new();
    let mut checked = 0;
    for file in &files {
        let module = module_of(file);
        if module == "lib" || module.starts_with("cli") {
            continue;
        }
        // A file in a module's folder (`compile/analyze/derived.rs`) is part of that module.
        let (home, here) = layout
            .place_of(&module)
            .unwrap_or_else(|| panic!("{module} is in no row of ARCHITECTURE.md"));
        let text = std::fs::read_to_string(file).unwrap();
        for path in paths_named(&text, &module) {
            let first = path.split("::").next().unwrap_or("");
            if first.is_empty() || first.starts_with('{') || first.starts_with(char::is_uppercase) {
                problems.push(format!(
                    "{module}: `crate::{path}` goes through the root's re-exports"
                ));
                continue;
            }
            let Some((target, there)) = layout.place_of(&path) else {
                problems.push(format!(
                    "{module}: `{path}` is in no row of ARCHITECTURE.md"
                ));
                continue;
            };
            checked += 1;
            if target == module || target == home {
                continue;
            }
            if there >= here {
                problems.push(format!(
                    "{module} (rank {}, #{}) names `{path}`, in {target} (rank {}, #{})",
                    here.rank, here.order, there.rank, there.order
                ));
            }
        }
    }
    assert!(checked > 100, "the walk found the paths ({checked})");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_source_file_has_its_place() {
    let layout = Layout::read();
    let mut files = Vec::new();
    sources(&root().join("src"), &mut files);
    for file in files {
        let module = module_of(&file);
        if module == "lib" || module.starts_with("cli") {
            continue;
        }
        assert!(
            layout.place_of(&module).is_some(),
            "{module} is in no row of ARCHITECTURE.md"
        );
    }
}
