//! The recipe authors' workflow: `featurecraft test` checks recipes the way dbt and SQLMesh
//! check models. For each recipe `NAME.json`:
//! - its compiled SQL per dialect against `__snapshots__/NAME.DIALECT.sql`, and its
//!   validation summary against `__snapshots__/NAME.validation.json` (when the catalog has
//!   data), each difference shown as a unified diff ([`snapshots`]);
//! - its unit tests in `NAME.test.json`, given rows in, expected rows out ([`mod@unit`]).
//!
//! `featurecraft fix` applies the fixes a finding names one clear candidate for ([`fix`]);
//! `featurecraft diff` shows what a new version of a recipe changes, down to the values
//! ([`diff`]).

pub mod diff;
pub mod fix;
pub mod snapshots;
pub mod unit;

use crate::catalog::Catalog;
use crate::compile::dialect::Dialect;
use crate::compile::{CompileOptions, compile};
use crate::contract::recipe::parse_recipe;
use crate::run::sample::ValidateOptions;
use crate::run::{RunOptions, run_recipe};
use snapshots::Snapshot;
use std::path::{Path, PathBuf};

/// How `test` runs.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// The dialects whose SQL is snapshotted.
    pub dialects: Vec<Dialect>,
    /// Write snapshots instead of comparing them.
    pub update: bool,
    /// The validation whose summary is snapshotted.
    pub validate: ValidateOptions,
}

/// How one check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// As expected.
    Passed,
    /// Not as expected (`detail` says how).
    Failed,
    /// No snapshot yet: one waits in `FILE.new` for review; the run fails until accepted.
    New,
    /// `--update` wrote the snapshot.
    Updated,
}

impl Status {
    /// The word reports and JSON use.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::New => "new",
            Status::Updated => "updated",
        }
    }

    /// Whether the run fails because of it.
    pub fn fails(self) -> bool {
        matches!(self, Status::Failed | Status::New)
    }
}

/// One check of one recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckResult {
    /// The recipe file.
    pub recipe: PathBuf,
    /// What was checked: `snapshot duckdb`, `validation`, `unit: NAME`.
    pub check: String,
    /// How it ended.
    pub status: Status,
    /// The diff, the mismatches or the reason; empty when it passed.
    pub detail: String,
}

/// The recipe files under `paths`: a file is taken as given; a folder gives its `.json`
/// files, recursively, except unit-test files (`*.test.json`) and `__snapshots__`; each
/// folder is entered once and each recipe listed once (a symlink cycle ends).
pub fn recipes_under(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut walk = Walk::default();
    for path in paths {
        if path.is_file() {
            walk.recipe(path.clone());
        } else if path.is_dir() {
            walk.collect(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        } else {
            return Err(format!("{}: no such file or folder", path.display()));
        }
    }
    Ok(walk.found)
}

/// A walk over folders that enters each folder once and lists each recipe once, by their
/// canonical paths: a symlink back up the tree (`self -> .`) is not followed again.
#[derive(Default)]
struct Walk {
    found: Vec<PathBuf>,
    seen_dirs: std::collections::HashSet<PathBuf>,
    seen_files: std::collections::HashSet<PathBuf>,
}

impl Walk {
    fn recipe(&mut self, path: PathBuf) {
        let canonical = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if self.seen_files.insert(canonical) {
            self.found.push(path);
        }
    }

    fn collect(&mut self, dir: &Path) -> std::io::Result<()> {
        if !self.seen_dirs.insert(std::fs::canonicalize(dir)?) {
            return Ok(());
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        entries.sort();
        for path in entries {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') || name == "__snapshots__" {
                continue;
            }
            if path.is_dir() {
                self.collect(&path)?;
            } else if name.ends_with(".json") && !name.ends_with(".test.json") {
                self.recipe(path);
            }
        }
        Ok(())
    }
}

/// Every check of one recipe file.
pub async fn test_recipe(
    path: &Path,
    catalog: &Catalog,
    options: &TestOptions,
) -> Vec<CheckResult> {
    let result = |check: String, status: Status, detail: String| CheckResult {
        recipe: path.to_path_buf(),
        check,
        status,
        detail,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return vec![result("read".into(), Status::Failed, e.to_string())],
    };
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("recipe")
        .to_string();
    let beside = path.parent().unwrap_or(Path::new("."));
    let snapshot_dir = beside.join("__snapshots__");
    let name = path.display().to_string();
    let mut results = Vec::new();

    for dialect in &options.dialects {
        let check = format!("snapshot {}", dialect.name());
        let compiled = compile(&text, catalog, &CompileOptions::for_dialect(*dialect));
        let sql = match compiled.sql.as_ref().filter(|_| !compiled.has_errors()) {
            Some(sql) => format!("{sql};\n"),
            None => {
                results.push(result(check, Status::Failed, compiled.report(&name)));
                continue;
            }
        };
        let file = snapshot_dir.join(format!("{stem}.{}.sql", dialect.name()));
        results.push(snapshot_result(check, &file, &sql, options.update, &result));
    }

    let parsed = parse_recipe(&text);
    let Some(recipe) = parsed.recipe else {
        // The snapshots above already report why the recipe does not parse.
        return results;
    };
    if catalog.root().is_some() {
        let run = run_recipe(
            &recipe,
            catalog,
            &RunOptions {
                dialect: Dialect::DataFusion,
                strict: false,
                validate: options.validate.clone(),
            },
        )
        .await;
        let check = "validation".to_string();
        match (&run.validation, run.error_paragraph()) {
            (Some(summary), None) => {
                let json = serde_json::to_string_pretty(summary).unwrap_or_default() + "\n";
                let file = snapshot_dir.join(format!("{stem}.validation.json"));
                results.push(snapshot_result(
                    check,
                    &file,
                    &json,
                    options.update,
                    &result,
                ));
            }
            (_, reason) => results.push(result(
                check,
                Status::Failed,
                reason.unwrap_or_else(|| "validation produced no summary".into()),
            )),
        }
    }

    let tests_file = beside.join(format!("{stem}.test.json"));
    if tests_file.is_file() {
        let tests = std::fs::read_to_string(&tests_file)
            .map_err(|e| e.to_string())
            .and_then(|text| unit::parse_tests(&text));
        match tests {
            Err(e) => results.push(result(
                format!("unit tests ({})", tests_file.display()),
                Status::Failed,
                e,
            )),
            Ok(tests) => {
                for test in tests {
                    let check = format!("unit: {}", test.name);
                    match unit::run(&recipe, catalog, &test, beside).await {
                        Ok(mismatches) if mismatches.is_empty() => {
                            results.push(result(check, Status::Passed, String::new()))
                        }
                        Ok(mismatches) => {
                            results.push(result(check, Status::Failed, side_by_side(&mismatches)))
                        }
                        Err(e) => results.push(result(check, Status::Failed, e)),
                    }
                }
            }
        }
    }
    results
}

fn snapshot_result(
    check: String,
    file: &Path,
    current: &str,
    update: bool,
    result: &dyn Fn(String, Status, String) -> CheckResult,
) -> CheckResult {
    match snapshots::check(file, current, update) {
        Ok(Snapshot::Matches) => result(check, Status::Passed, String::new()),
        Ok(Snapshot::Written) => result(check, Status::Updated, file.display().to_string()),
        Ok(Snapshot::Differs(diff)) => result(check, Status::Failed, diff),
        Ok(Snapshot::New(pending)) => result(
            check,
            Status::New,
            format!(
                "no snapshot yet: written to {} (review it, then rename it to {} or run with --update)",
                pending.display(),
                file.display()
            ),
        ),
        Err(e) => result(
            check,
            Status::Failed,
            format!("cannot use the snapshot {}: {e}", file.display()),
        ),
    }
}

/// Mismatches as a table: the row's key, the column, what was expected, what came out.
fn side_by_side(mismatches: &[unit::Mismatch]) -> String {
    let rows: Vec<[String; 3]> = mismatches
        .iter()
        .map(|m| match &m.column {
            Some(column) => [
                format!("{}  {column}", m.key),
                unit::shown(&m.expected),
                unit::shown(&m.actual),
            ],
            None => [m.key.clone(), "a row".into(), "no row".into()],
        })
        .collect();
    let width = |i: usize, head: &str| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([head.len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1) = (width(0, "row  column"), width(1, "expected"));
    let mut out = format!("{:w0$}  {:w1$}  actual\n", "row  column", "expected");
    for [a, b, c] in rows {
        out.push_str(&format!("{a:w0$}  {b:w1$}  {c}\n"));
    }
    out
}
