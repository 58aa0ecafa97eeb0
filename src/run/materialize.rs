//! Materialization: run an approved recipe's full query in DataFusion and write it as Parquet.
//!
//! The table lands in `WAREHOUSE/DOMAIN/TABLE/`. It is written into a hidden staging folder
//! beside it (`.TABLE.writing-UUID`) and renamed into place only when complete, so a failed
//! run leaves nothing half-written, and a replaced table is swapped, not overwritten in
//! place (the old one moves to `.TABLE.replaced-UUID` until the new one is there). A caller
//! that must check something between the write and the swap (the service re-checks the
//! approved catalog) calls [`stage`] and [`Staged::publish`] itself. Leftovers of a crashed
//! run carry only these two names; [`clean_leftovers`] removes them.

use crate::catalog::{Catalog, object_store_refusal, plan_query};
use crate::compile::analyze::{Plan, name_problem, shown_name};
use crate::compile::dialect::Dialect;
use crate::compile::render::build_query;
use crate::diagnostic::{Code, Diagnostic};
use crate::run::cutoffs_once::run_cutoffs_once;
use crate::run::deadline::within_time_limit;
use crate::run::sample::{ValidateOptions, runtime_error, session};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::dataframe::DataFrameWriteOptions;
use std::path::{Path, PathBuf};

/// Where a materialized table landed and how many rows it has.
#[derive(Debug, Clone, PartialEq)]
pub struct Materialized {
    /// The table's folder of Parquet files.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
}

/// Runs the plan's full query and writes `warehouse/domain/table/` atomically.
pub async fn materialize(
    plan: &Plan,
    catalog: &Catalog,
    warehouse: &Path,
    domain: &str,
    table: &str,
    options: &ValidateOptions,
) -> Result<Materialized, Diagnostic> {
    stage(plan, catalog, warehouse, domain, table, options)
        .await?
        .publish()
}

/// A table written to its staging folder, not yet in place. Dropped without
/// [`Staged::publish`], it removes the staging folder.
#[derive(Debug)]
pub struct Staged {
    staging: PathBuf,
    target: PathBuf,
    rows: u64,
}

/// The staging folder's name prefix for `table`: hidden, and never a table's own name.
const WRITING: &str = ".writing-";
/// The name prefix of a replaced table waiting to be removed.
const REPLACED: &str = ".replaced-";

/// Runs the plan's full query into a staging folder beside `warehouse/domain/table/`.
pub async fn stage(
    plan: &Plan,
    catalog: &Catalog,
    warehouse: &Path,
    domain: &str,
    table: &str,
    options: &ValidateOptions,
) -> Result<Staged, Diagnostic> {
    for (what, name) in [("domain", domain), ("target table", table)] {
        if let Some(why) = name_problem(name) {
            return Err(Diagnostic::new(
                Code::E003,
                format!(
                    "{what} `{}` {why}: it cannot name a folder",
                    shown_name(name)
                ),
            ));
        }
    }
    if let Some(refusal) = object_store_refusal(warehouse, "writes tables into") {
        return Err(Diagnostic::new(
            Code::E053,
            format!("cannot write into {}: {refusal}", warehouse.display()),
        ));
    }
    let parent = warehouse.join(domain);
    std::fs::create_dir_all(&parent).map_err(|e| write_error("create", &parent, e))?;
    let target = parent.join(table);
    let staging = parent.join(format!(".{table}{WRITING}{}", uuid::Uuid::new_v4()));
    std::fs::create_dir(&staging).map_err(|e| write_error("create", &staging, e))?;
    // From here on the staging folder goes when `staged` is dropped unpublished.
    let mut staged = Staged {
        staging,
        target,
        rows: 0,
    };

    let mut query = build_query(plan, &Dialect::DataFusion.capabilities(), None)
        .map_err(|mut e| e.remove(0))?;
    let staging_url = format!("{}/", staged.staging.display());
    // On a time limit the cluster's job is cancelled before the staging folder goes.
    let counts = within_time_limit(options.time_limit, async {
        let ctx = session(catalog, options).await?;
        let written = async {
            let state = crate::run::sample::state_for(&ctx, plan);
            let held = run_cutoffs_once(&ctx, &state, &mut query).await?;
            let plan = plan_query(&state, query).await?;
            let frame = datafusion::prelude::DataFrame::new(state, plan);
            let written = frame
                .write_parquet(&staging_url, DataFrameWriteOptions::new(), None)
                .await;
            drop(held);
            written
        }
        .await;
        written.map_err(|e| {
            let diagnostic = runtime_error(e);
            // A failure naming the staging folder happened while writing, not reading; so
            // did a full disk, which the local object store reports without the path.
            if diagnostic.message.contains(WRITING) || is_out_of_room(&diagnostic.message) {
                Diagnostic::new(
                    Code::E053,
                    format!(
                        "cannot write the table into {}: {}",
                        staged.staging.display(),
                        diagnostic.message
                    ),
                )
            } else {
                diagnostic
            }
        })
    })
    .await
    .map_err(whole_table)?
    .map_err(whole_table)?;
    staged.rows = counts
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_primitive_opt::<UInt64Type>()
                .map(|a| a.values().iter().sum::<u64>())
        })
        .sum();
    Ok(staged)
}

/// Whether an error says the output has no room or cannot be written at all (the kernel's
/// words for ENOSPC, EDQUOT and EROFS, as the standard library prints them).
fn is_out_of_room(message: &str) -> bool {
    [
        "No space left on device",
        "Disk quota exceeded",
        "Read-only file system",
    ]
    .iter()
    .any(|words| message.contains(words))
}

/// `diagnostic` with hints for a run of the whole table: validation's advice to sample
/// fewer entities means nothing to a materialization, which reads them all.
fn whole_table(mut diagnostic: Diagnostic) -> Diagnostic {
    let hint = match diagnostic.code {
        Code::E051 => {
            "raise the memory limit (`memory_limit`): a materialization holds the rows of every entity, not only the validated ones"
        }
        Code::E054 => {
            "raise the time limit (`time_limit`), or run it again if a cluster lost an executor"
        }
        _ => return diagnostic,
    };
    diagnostic.hints = vec![hint.to_string()];
    diagnostic
}

impl Staged {
    /// Rows written.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Swaps the staged table into place: the old table (if any) moves aside first and goes
    /// only once the new one is there.
    pub fn publish(self) -> Result<Materialized, Diagnostic> {
        let parent = self.target.parent().unwrap_or(Path::new("."));
        let name = self
            .target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let previous = parent.join(format!(".{name}{REPLACED}{}", uuid::Uuid::new_v4()));
        let had_previous = self.target.exists();
        if had_previous {
            std::fs::rename(&self.target, &previous)
                .map_err(|e| write_error("move aside", &self.target, e))?;
        }
        if let Err(e) = std::fs::rename(&self.staging, &self.target) {
            if had_previous {
                let _ = std::fs::rename(&previous, &self.target);
            }
            return Err(write_error("move into place", &self.target, e));
        }
        if had_previous {
            let _ = std::fs::remove_dir_all(&previous);
        }
        Ok(Materialized {
            path: self.target.clone(),
            rows: self.rows,
        })
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // After a publish the staging folder is the table and no longer exists here. After
        // a failed write a writer task may still be closing a file in it, which makes one
        // removal fail (the folder is not empty): a few tries, a moment apart.
        for pause_ms in [0, 20, 50, 100, 250] {
            std::thread::sleep(std::time::Duration::from_millis(pause_ms));
            match std::fs::remove_dir_all(&self.staging) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) => {}
            }
        }
    }
}

/// What [`clean_leftovers`] did with one folder a crashed run left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// A staging folder or a replaced table, removed.
    Removed(PathBuf),
    /// A replaced table whose replacement never arrived (a crash between the two renames of
    /// a publish), moved back to its name: the table it was.
    Restored(PathBuf),
}

/// Tidies what crashed runs left in `warehouse`, one level below each domain: staging
/// folders (`.TABLE.writing-…`) are removed; a replaced table (`.TABLE.replaced-…`) is
/// removed when `TABLE` is there, and otherwise moved back to `TABLE` (the newest, when
/// several wait), since the crash came between moving it aside and moving the new one in.
/// Only featurecraft's own hidden names are touched.
pub fn clean_leftovers(warehouse: &Path) -> Vec<Leftover> {
    let mut done = Vec::new();
    let Ok(domains) = std::fs::read_dir(warehouse) else {
        return done;
    };
    for domain in domains.flatten().filter(|d| d.path().is_dir()) {
        let Ok(entries) = std::fs::read_dir(domain.path()) else {
            continue;
        };
        // (table, is a replaced table, modified, path), replaced tables newest first.
        let mut ours: Vec<(String, bool, std::time::SystemTime, PathBuf)> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                let rest = name.strip_prefix('.')?;
                [WRITING, REPLACED].iter().find_map(|mark| {
                    let (table, id) = rest.split_once(mark)?;
                    (name_problem(table).is_none() && uuid::Uuid::parse_str(id).is_ok()).then(
                        || {
                            let modified = entry
                                .metadata()
                                .and_then(|m| m.modified())
                                .unwrap_or(std::time::UNIX_EPOCH);
                            (table.to_string(), *mark == REPLACED, modified, entry.path())
                        },
                    )
                })
            })
            .collect();
        ours.sort_by(|a, b| b.2.cmp(&a.2).then(a.3.cmp(&b.3)));
        for (table, replaced, _, path) in ours {
            let target = domain.path().join(&table);
            if replaced && !target.exists() && std::fs::rename(&path, &target).is_ok() {
                done.push(Leftover::Restored(target));
            } else if std::fs::remove_dir_all(&path).is_ok() {
                done.push(Leftover::Removed(path));
            }
        }
    }
    done
}

fn write_error(what: &str, path: &Path, e: std::io::Error) -> Diagnostic {
    Diagnostic::new(Code::E053, format!("cannot {what} {}: {e}", path.display()))
        .hint("check that the warehouse folder exists, is writable and has room")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_featurecraft_leftovers_are_cleaned() {
        let warehouse = tempfile::tempdir().unwrap();
        let domain = warehouse.path().join("retail");
        let id = uuid::Uuid::new_v4();
        let ours = [
            domain.join(format!(".churn{WRITING}{id}")),
            domain.join(format!(".churn{REPLACED}{id}")),
        ];
        let theirs = [
            domain.join("churn"),
            domain.join(".churn.writing-not-a-uuid"),
            domain.join(".git"),
        ];
        for dir in ours.iter().chain(&theirs) {
            std::fs::create_dir_all(dir.join("part")).unwrap();
        }
        let mut removed: Vec<PathBuf> = clean_leftovers(warehouse.path())
            .into_iter()
            .map(|l| match l {
                Leftover::Removed(path) => path,
                Leftover::Restored(path) => panic!("the table was there: {path:?}"),
            })
            .collect();
        removed.sort();
        let mut expected = ours.to_vec();
        expected.sort();
        assert_eq!(removed, expected);
        assert!(theirs.iter().all(|d| d.exists()));
    }

    /// A crash between a publish's two renames leaves the old table aside and no table:
    /// the clean-up moves it back (it used to remove both copies).
    #[test]
    fn a_table_moved_aside_by_a_crashed_publish_is_restored() {
        let warehouse = tempfile::tempdir().unwrap();
        let domain = warehouse.path().join("retail");
        let aside = domain.join(format!(".churn{REPLACED}{}", uuid::Uuid::new_v4()));
        let staging = domain.join(format!(".churn{WRITING}{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::write(aside.join("part-0.parquet"), "the reviewed table").unwrap();
        std::fs::create_dir_all(&staging).unwrap();
        let done = clean_leftovers(warehouse.path());
        assert!(
            done.contains(&Leftover::Restored(domain.join("churn"))),
            "{done:?}"
        );
        assert!(
            done.contains(&Leftover::Removed(staging.clone())),
            "{done:?}"
        );
        assert_eq!(
            std::fs::read_to_string(domain.join("churn/part-0.parquet")).unwrap(),
            "the reviewed table"
        );
        assert!(!aside.exists() && !staging.exists());
    }

    #[tokio::test]
    async fn a_materialization_past_its_memory_limit_is_not_told_to_sample() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let catalog = Catalog::load(&root.join("retail")).await.unwrap();
        let text = std::fs::read_to_string(root.join("recipes/good/pit_churn.json")).unwrap();
        let options = crate::compile::CompileOptions::for_dialect(Dialect::DataFusion);
        let plan = crate::compile::compile(&text, &catalog, &options)
            .plan
            .expect("the recipe compiles");
        let warehouse = tempfile::tempdir().unwrap();
        let options = ValidateOptions {
            memory_limit: 64 * 1024,
            ..ValidateOptions::default()
        };
        let failed = materialize(&plan, &catalog, warehouse.path(), "d", "t", &options).await;
        let Err(diagnostic) = failed else {
            panic!("64 KiB held the whole table");
        };
        assert_eq!(diagnostic.code, Code::E051, "{diagnostic:?}");
        assert_eq!(diagnostic.hints.len(), 1, "{diagnostic:?}");
        assert!(
            diagnostic.hints[0].contains("`memory_limit`"),
            "{diagnostic:?}"
        );
        assert!(!diagnostic.hints[0].contains("sample"), "{diagnostic:?}");
        // Nothing was published.
        assert!(!warehouse.path().join("d/t").exists());
    }
}
