//! Where a materialized table lands, and how it is published so that no reader ever sees
//! it half-written.
//!
//! **A local folder.** The table lands in `WAREHOUSE/DOMAIN/TABLE/`. It is written into a
//! hidden staging folder beside it (`.TABLE.writing-UUID`) and renamed into place only
//! when complete, so a failed run leaves nothing half-written, and a replaced table is
//! swapped, not overwritten in place (the old one moves to `.TABLE.replaced-UUID` until
//! the new one is there). Leftovers of a crashed run carry only these two names;
//! [`clean_leftovers`] removes them.
//!
//! **An object store** (`s3://…`, `gs://…`, `az://…`). A store has no rename, so a table is
//! never rewritten in place. Each materialization writes its files under a run prefix of
//! its own, `WAREHOUSE/DOMAIN/TABLE/run-UUID/`, and publishes it with one write of the
//! pointer object `WAREHOUSE/DOMAIN/TABLE/_LATEST`:
//! `{"current": "run-…", "previous": "run-…" | null, "rows": N}` (a store replaces an
//! object whole, so a reader gets the old pointer or the new one). **The reader contract**:
//! read the run `_LATEST` names (or the `location` the materialization returns), never
//! `TABLE/` as a whole, which holds the previous run too. After a publish, the run the
//! pointer no longer names is deleted; the previous run stays, so a reader that began on
//! it finishes. A run never published (a failed or stopped materialization) is deleted
//! when its [`Staged`] is dropped, or later by [`clean_leftovers`].

use crate::catalog::storage::{Location, ObjectPrefix, store_message};
use crate::compile::analyze::{name_problem, shown_name};
use crate::diagnostic::{Code, Diagnostic};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a materialized table landed and how many rows it has.
#[derive(Debug, Clone, PartialEq)]
pub struct Materialized {
    /// The table's folder of Parquet files (on an object store, the run's URL).
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
}

/// The staging folder's name mark: hidden, and never a table's own name.
const WRITING: &str = ".writing-";
/// The name mark of a replaced table waiting to be removed.
const REPLACED: &str = ".replaced-";
/// The name prefix of a run on an object store.
const RUN: &str = "run-";
/// The pointer object naming a table's published run on an object store.
pub const LATEST: &str = "_LATEST";

/// A table being written, not yet in place: what DataFusion writes to, and how it is
/// published. Dropped without [`Staged::publish`], what was written is removed.
#[derive(Debug)]
pub struct Staged {
    place: Place,
    rows: u64,
}

#[derive(Debug)]
enum Place {
    /// A hidden folder beside the table's folder.
    Folder { staging: PathBuf, target: PathBuf },
    /// A run prefix under the table's prefix.
    Run {
        table: ObjectPrefix,
        run: String,
        published: bool,
    },
}

impl Staged {
    /// A new staging place for `DOMAIN/TABLE` in `warehouse` (a path or an object store's
    /// URL); a local staging folder is created here.
    pub fn prepare(warehouse: &Path, domain: &str, table: &str) -> Result<Staged, Diagnostic> {
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
        let location = Location::parse(warehouse).map_err(|why| {
            Diagnostic::new(
                Code::E053,
                format!("cannot write into {}: {why}", warehouse.display()),
            )
        })?;
        let place = match location {
            Location::Local(warehouse) => {
                let parent = warehouse.join(domain);
                std::fs::create_dir_all(&parent).map_err(|e| write_error("create", &parent, e))?;
                let target = parent.join(table);
                let staging = parent.join(format!(".{table}{WRITING}{}", uuid::Uuid::new_v4()));
                std::fs::create_dir(&staging).map_err(|e| write_error("create", &staging, e))?;
                Place::Folder { staging, target }
            }
            Location::Object(warehouse) => Place::Run {
                table: warehouse.child(domain).child(table),
                run: format!("{RUN}{}", uuid::Uuid::new_v4()),
                published: false,
            },
        };
        Ok(Staged { place, rows: 0 })
    }

    /// The URL DataFusion writes the table's files under (ending in `/`).
    pub fn output_url(&self) -> String {
        match &self.place {
            Place::Folder { staging, .. } => format!("{}/", staging.display()),
            Place::Run { table, run, .. } => format!("{}/", table.child(run).url()),
        }
    }

    /// The object store written to, with the URL a session registers it under.
    pub fn store(&self) -> Option<(&url::Url, &Arc<dyn ObjectStore>)> {
        match &self.place {
            Place::Folder { .. } => None,
            Place::Run { table, .. } => Some((table.base(), table.store())),
        }
    }

    /// Whether an error message is about the staging place (a write failed, not a read).
    pub fn is_named_in(&self, message: &str) -> bool {
        match &self.place {
            Place::Folder { .. } => message.contains(WRITING),
            Place::Run { run, .. } => message.contains(run.as_str()),
        }
    }

    /// Rows written.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Records how many rows were written.
    pub fn set_rows(&mut self, rows: u64) {
        self.rows = rows;
    }

    /// Puts the staged table in place. A local table is swapped in: the old table (if any)
    /// moves aside first and goes only once the new one is there. On an object store the
    /// pointer is written, then the run it no longer names is deleted.
    pub async fn publish(mut self) -> Result<Materialized, Diagnostic> {
        let rows = self.rows;
        match &mut self.place {
            Place::Folder { staging, target } => {
                publish_folder(staging, target)?;
                Ok(Materialized {
                    path: target.clone(),
                    rows,
                })
            }
            Place::Run {
                table,
                run,
                published,
            } => {
                let pointer = table.prefix().clone().join(LATEST);
                let before = read_pointer(table).await?;
                let written = serde_json::json!({
                    "current": run,
                    "previous": before.as_ref().map(|p| p.current.clone()),
                    "rows": rows,
                });
                table
                    .store()
                    .put(&pointer, PutPayload::from(written.to_string().into_bytes()))
                    .await
                    .map_err(|e| object_error("write", &table.url_of(&pointer), &e))?;
                *published = true;
                // The run the pointer named as previous is named no more.
                if let Some(gone) = before.and_then(|p| p.previous).filter(|p| p != run) {
                    let _ = delete_prefix(table.store(), &table.child(&gone)).await;
                }
                Ok(Materialized {
                    path: PathBuf::from(table.child(run).url()),
                    rows,
                })
            }
        }
    }
}

/// Swaps `staging` into place at `target` by two renames.
fn publish_folder(staging: &Path, target: &Path) -> Result<(), Diagnostic> {
    let parent = target.parent().unwrap_or(Path::new("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let previous = parent.join(format!(".{name}{REPLACED}{}", uuid::Uuid::new_v4()));
    let had_previous = target.exists();
    if had_previous {
        std::fs::rename(target, &previous).map_err(|e| write_error("move aside", target, e))?;
    }
    if let Err(e) = std::fs::rename(staging, target) {
        if had_previous {
            let _ = std::fs::rename(&previous, target);
        }
        return Err(write_error("move into place", target, e));
    }
    if had_previous {
        let _ = std::fs::remove_dir_all(&previous);
    }
    Ok(())
}

impl Drop for Staged {
    fn drop(&mut self) {
        match &self.place {
            Place::Folder { staging, .. } => remove_staging(staging),
            Place::Run {
                table,
                run,
                published: false,
            } => {
                // Deleting takes requests: on the runtime that wrote the run, when there is
                // one still; otherwise `clean_leftovers` finds the run later.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let run = table.child(run);
                    runtime.spawn(async move {
                        let _ = delete_prefix(run.store(), &run).await;
                    });
                }
            }
            Place::Run { .. } => {}
        }
    }
}

/// Removes a local staging folder. After a publish it is the table and no longer exists
/// here. After a failed write a writer task may still be closing a file in it, which makes
/// one removal fail (the folder is not empty): a few tries, a moment apart.
fn remove_staging(staging: &Path) {
    for pause_ms in [0, 20, 50, 100, 250] {
        std::thread::sleep(std::time::Duration::from_millis(pause_ms));
        match std::fs::remove_dir_all(staging) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(_) => {}
        }
    }
}

/// A table's pointer object on a store.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
struct Pointer {
    current: String,
    previous: Option<String>,
}

/// The pointer of the table at `table`, if it was ever published.
async fn read_pointer(table: &ObjectPrefix) -> Result<Option<Pointer>, Diagnostic> {
    let path = table.prefix().clone().join(LATEST);
    let url = table.url_of(&path);
    let read = async { table.store().get(&path).await?.bytes().await }.await;
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(object_error("read", &url, &e)),
    };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        Diagnostic::new(
            Code::E053,
            format!("{url} is not featurecraft's pointer to a table's run: {e}"),
        )
        .hint("remove it, or give the table another name")
    })
}

/// Deletes every object under `prefix`.
async fn delete_prefix(
    store: &Arc<dyn ObjectStore>,
    prefix: &ObjectPrefix,
) -> object_store::Result<()> {
    let locations = store
        .list(Some(prefix.prefix()))
        .map_ok(|object| object.location)
        .boxed();
    store
        .delete_stream(locations)
        .try_collect::<Vec<ObjectPath>>()
        .await
        .map(drop)
}

/// What [`clean_leftovers`] did with one folder (or run) a crashed run left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// A staging folder, a replaced table or an unpublished run, removed.
    Removed(PathBuf),
    /// A replaced table whose replacement never arrived (a crash between the two renames of
    /// a publish), moved back to its name: the table it was.
    Restored(PathBuf),
}

/// Tidies what crashed runs left in `warehouse`, one level below each domain. Locally:
/// staging folders (`.TABLE.writing-…`) are removed; a replaced table (`.TABLE.replaced-…`)
/// is removed when `TABLE` is there, and otherwise moved back to `TABLE` (the newest, when
/// several wait), since the crash came between moving it aside and moving the new one in.
/// On an object store: the runs of each table that its pointer names neither as current
/// nor as previous. Only featurecraft's own names are touched. Run it when no
/// materialization into `warehouse` is under way (the service does at its start).
pub async fn clean_leftovers(warehouse: &Path) -> Vec<Leftover> {
    match Location::parse(warehouse) {
        Ok(Location::Local(warehouse)) => clean_local_leftovers(&warehouse),
        Ok(Location::Object(warehouse)) => clean_object_leftovers(&warehouse).await,
        Err(_) => Vec::new(),
    }
}

/// [`clean_leftovers`] in a local warehouse (no request to wait for).
pub fn clean_local_leftovers(warehouse: &Path) -> Vec<Leftover> {
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

/// [`clean_leftovers`] in a warehouse on an object store.
pub async fn clean_object_leftovers(warehouse: &ObjectPrefix) -> Vec<Leftover> {
    let mut done = Vec::new();
    for domain in child_prefixes(warehouse).await {
        for table in child_prefixes(&warehouse.child(&domain)).await {
            let table = warehouse.child(&domain).child(&table);
            let Ok(pointer) = read_pointer(&table).await else {
                continue;
            };
            let kept: Vec<String> = pointer
                .map(|p| {
                    [Some(p.current), p.previous]
                        .into_iter()
                        .flatten()
                        .collect()
                })
                .unwrap_or_default();
            for run in child_prefixes(&table).await {
                let is_run = run
                    .strip_prefix(RUN)
                    .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok());
                if is_run && !kept.contains(&run) {
                    let run = table.child(&run);
                    if delete_prefix(run.store(), &run).await.is_ok() {
                        done.push(Leftover::Removed(PathBuf::from(run.url())));
                    }
                }
            }
        }
    }
    done
}

/// The names of the "folders" directly under `prefix` (an empty list when it cannot be listed).
async fn child_prefixes(prefix: &ObjectPrefix) -> Vec<String> {
    match prefix
        .store()
        .list_with_delimiter(Some(prefix.prefix()))
        .await
    {
        Ok(listing) => listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn write_error(what: &str, path: &Path, e: std::io::Error) -> Diagnostic {
    Diagnostic::new(Code::E053, format!("cannot {what} {}: {e}", path.display()))
        .hint("check that the warehouse folder exists, is writable and has room")
}

fn object_error(what: &str, url: &str, e: &object_store::Error) -> Diagnostic {
    Diagnostic::new(
        Code::E053,
        format!("cannot {what} {url}: {}", store_message(e)),
    )
    .hint("check the store's credentials in the environment (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL) and that the bucket exists")
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
        let mut removed: Vec<PathBuf> = clean_local_leftovers(warehouse.path())
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
        let done = clean_local_leftovers(warehouse.path());
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
}
