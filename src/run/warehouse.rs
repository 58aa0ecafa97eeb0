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
//!
//! **A Delta Lake table** (`--table-format delta`, local or in a store): the files are
//! written under `WAREHOUSE/DOMAIN/TABLE/run-UUID/`, invisible to Delta readers, and the
//! publish is one commit to the table's log that removes every file of the version before
//! and adds the new ones ([`crate::catalog::delta`]): a reader sees the old version or the
//! new one, older versions stay readable by version (time travel) until a `VACUUM`. A
//! commit that finds another writer's commit of the same version first fails, naming it.

use crate::catalog::delta;
use crate::catalog::storage::{Location, ObjectPrefix, store_message};
use crate::compile::analyze::{name_problem, shown_name};
use crate::contract::job::TableFormat;
use crate::diagnostic::{Code, Diagnostic};
use datafusion::arrow::datatypes::{DataType, Schema};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a materialized table landed and how many rows it has.
#[derive(Debug, Clone, PartialEq)]
pub struct Materialized {
    /// The table's folder of Parquet files (on an object store, the run's URL), or the
    /// Delta table's folder or URL.
    pub path: PathBuf,
    /// Rows written.
    pub rows: u64,
    /// How it was written.
    pub format: TableFormat,
    /// The Delta version committed (`None` for Parquet).
    pub version: Option<u64>,
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
    /// A run folder inside a Delta table, committed by the publish.
    Delta {
        table: ObjectPrefix,
        /// The table as it is shown: its local path or its URL.
        shown: PathBuf,
        run: String,
        committed: bool,
    },
}

impl Staged {
    /// A new staging place for `DOMAIN/TABLE` in `warehouse` (a path or an object store's
    /// URL) in `format`; a local staging folder is created here.
    pub fn prepare(
        warehouse: &Path,
        domain: &str,
        table: &str,
        format: TableFormat,
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
        let location = Location::parse(warehouse).map_err(|why| {
            Diagnostic::new(
                Code::E053,
                format!("cannot write into {}: {why}", warehouse.display()),
            )
        })?;
        let run = format!("{RUN}{}", uuid::Uuid::new_v4());
        let place = match (location, format) {
            (Location::Local(warehouse), TableFormat::Delta) => {
                let shown = warehouse.join(domain).join(table);
                let table = ObjectPrefix::local(&shown).map_err(|why| {
                    Diagnostic::new(
                        Code::E053,
                        format!("cannot write into {}: {why}", shown.display()),
                    )
                })?;
                Place::Delta {
                    table,
                    shown,
                    run,
                    committed: false,
                }
            }
            (Location::Object(warehouse), TableFormat::Delta) => {
                let table = warehouse.child(domain).child(table);
                Place::Delta {
                    shown: PathBuf::from(table.url()),
                    table,
                    run,
                    committed: false,
                }
            }
            (Location::Local(warehouse), TableFormat::Parquet) => {
                let parent = warehouse.join(domain);
                std::fs::create_dir_all(&parent).map_err(|e| write_error("create", &parent, e))?;
                let target = parent.join(table);
                let staging = parent.join(format!(".{table}{WRITING}{}", uuid::Uuid::new_v4()));
                std::fs::create_dir(&staging).map_err(|e| write_error("create", &staging, e))?;
                Place::Folder { staging, target }
            }
            (Location::Object(warehouse), TableFormat::Parquet) => Place::Run {
                table: warehouse.child(domain).child(table),
                run,
                published: false,
            },
        };
        Ok(Staged { place, rows: 0 })
    }

    /// The URL DataFusion writes the table's files under (ending in `/`).
    pub fn output_url(&self) -> String {
        match &self.place {
            Place::Folder { staging, .. } => format!("{}/", staging.display()),
            Place::Run { table, run, .. } | Place::Delta { table, run, .. } => {
                format!("{}/", table.child(run).url())
            }
        }
    }

    /// How the table is written.
    pub fn format(&self) -> TableFormat {
        match &self.place {
            Place::Delta { .. } => TableFormat::Delta,
            Place::Folder { .. } | Place::Run { .. } => TableFormat::Parquet,
        }
    }

    /// The object store written to, with the URL a session registers it under.
    pub fn store(&self) -> Option<(&url::Url, &Arc<dyn ObjectStore>)> {
        match &self.place {
            Place::Folder { .. } => None,
            Place::Run { table, .. } | Place::Delta { table, .. } => {
                Some((table.base(), table.store()))
            }
        }
    }

    /// Whether an error message is about the staging place (a write failed, not a read).
    pub fn is_named_in(&self, message: &str) -> bool {
        match &self.place {
            Place::Folder { .. } => message.contains(WRITING),
            Place::Run { run, .. } | Place::Delta { run, .. } => message.contains(run.as_str()),
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
                if target.join(delta::LOG).exists() {
                    return Err(is_delta_table(&target.display().to_string()));
                }
                publish_folder(staging, target)?;
                Ok(Materialized {
                    path: target.clone(),
                    rows,
                    format: TableFormat::Parquet,
                    version: None,
                })
            }
            Place::Delta {
                table,
                shown,
                run,
                committed,
            } => {
                let version = commit_delta(table, run, rows).await?;
                *committed = true;
                Ok(Materialized {
                    path: shown.clone(),
                    rows,
                    format: TableFormat::Delta,
                    version: Some(version),
                })
            }
            Place::Run {
                table,
                run,
                published,
            } => {
                let pointer = table.prefix().clone().join(LATEST);
                if has_delta_log(table).await {
                    return Err(is_delta_table(&table.url()));
                }
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
                // The run the pointer named as previous is named no more. The pointer is
                // read from the store: only a run's name is deleted, never what else a
                // rewritten pointer could name (`""` is the whole table).
                if let Some(gone) = before
                    .and_then(|p| p.previous)
                    .filter(|p| p != run && is_run_name(p))
                {
                    let _ = delete_prefix(table.store(), &table.child(&gone)).await;
                }
                Ok(Materialized {
                    path: PathBuf::from(table.child(run).url()),
                    rows,
                    format: TableFormat::Parquet,
                    version: None,
                })
            }
        }
    }
}

/// Commits the files written under `table/run/` as the next version of the Delta table at
/// `table` (version 0 when there is none); the version committed.
async fn commit_delta(table: &ObjectPrefix, run: &str, rows: u64) -> Result<u64, Diagnostic> {
    let failed = |why: String| {
        Diagnostic::new(
            Code::E053,
            format!("cannot commit the Delta table {}: {why}", table.url()),
        )
    };
    let before = delta::snapshot(table.store(), table.prefix())
        .await
        .map_err(failed)?;
    if before.is_none() && holds_a_table(table).await {
        return Err(failed(
            "it holds a Parquet table, not a Delta table: materialize it with `--table-format parquet`, or give the Delta table another name".to_string(),
        ));
    }
    let written = table.child(run);
    let files: Vec<object_store::ObjectMeta> = table
        .store()
        .list(Some(written.prefix()))
        .try_collect()
        .await
        .map_err(|e| failed(store_message(&e)))?;
    let mut added = Vec::with_capacity(files.len());
    let mut schema = None;
    for file in files {
        let name = file.location.filename().unwrap_or_default().to_string();
        if schema.is_none() {
            schema = Some(file_schema(table, &file).await.map_err(failed)?);
        }
        added.push((format!("{run}/{name}"), file.size));
    }
    let schema = schema.ok_or_else(|| failed("the run wrote no file".to_string()))?;
    let overwrite = delta::Overwrite {
        schema_string: delta::schema_string(&schema).map_err(failed)?,
        timestamp_ntz: schema
            .fields()
            .iter()
            .any(|f| matches!(f.data_type(), DataType::Timestamp(_, None))),
        added,
        rows,
    };
    delta::commit_overwrite(table.store(), table.prefix(), before.as_ref(), &overwrite)
        .await
        .map_err(|e| match e {
            delta::CommitError::Conflict(version) => failed(format!(
                "another writer committed version {version} first; nothing was committed (run it again)"
            )),
            delta::CommitError::Store(why) => failed(why),
        })
}

/// The Arrow schema of a Parquet file in the store (from its footer).
async fn file_schema(
    table: &ObjectPrefix,
    file: &object_store::ObjectMeta,
) -> Result<Schema, String> {
    let url = table.url_of(&file.location);
    let mut reader = crate::catalog::listing::Reader::new(Some(Arc::clone(table.store())));
    let data = crate::catalog::DataFile::Object {
        url,
        key: file.location.to_string(),
        size: file.size,
        e_tag: None,
    };
    reader
        .footer(&data)
        .await
        .map(|(schema, _, _)| schema.as_ref().clone())
        .map_err(|e| e.message)
}

/// Whether the table's prefix holds a Delta log.
async fn has_delta_log(table: &ObjectPrefix) -> bool {
    let log = table.prefix().clone().join(delta::LOG);
    let mut listing = table.store().list(Some(&log));
    matches!(listing.next().await, Some(Ok(_)))
}

/// Whether anything is under the table's prefix but featurecraft's own runs.
async fn holds_a_table(table: &ObjectPrefix) -> bool {
    match table
        .store()
        .list_with_delimiter(Some(table.prefix()))
        .await
    {
        Ok(listing) => {
            !listing.objects.is_empty()
                || listing
                    .common_prefixes
                    .iter()
                    .any(|p| !p.filename().is_some_and(|name| name.starts_with(RUN)))
        }
        Err(_) => false,
    }
}

/// The refusal to publish Parquet over a Delta table.
fn is_delta_table(shown: &str) -> Diagnostic {
    Diagnostic::new(
        Code::E053,
        format!("{shown} is a Delta table: nothing was published over it"),
    )
    .hint("materialize it with `--table-format delta` (a new version of it), or give the Parquet table another name")
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
            }
            | Place::Delta {
                table,
                run,
                committed: false,
                ..
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
            Place::Run { .. } | Place::Delta { .. } => {}
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

/// Whether `name` is a run's (`run-UUID`): the only names featurecraft deletes in a table.
fn is_run_name(name: &str) -> bool {
    name.strip_prefix(RUN)
        .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok())
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
            // A Delta table keeps every run a commit names (older versions stay readable).
            let kept: Vec<String> = if has_delta_log(&table).await {
                match delta::referenced_folders(table.store(), table.prefix()).await {
                    Ok(folders) => folders.into_iter().collect(),
                    Err(_) => continue,
                }
            } else {
                let Ok(pointer) = read_pointer(&table).await else {
                    continue;
                };
                pointer
                    .map(|p| {
                        [Some(p.current), p.previous]
                            .into_iter()
                            .flatten()
                            .collect()
                    })
                    .unwrap_or_default()
            };
            for run in child_prefixes(&table).await {
                if is_run_name(&run) && !kept.contains(&run) {
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

    /// The pointer is read from the store, so whatever it names as previous may be
    /// anything: a publish deletes only a run's name, and a pointer that is not JSON is
    /// an error naming it, with the table as it was.
    #[test]
    fn a_rewritten_pointer_deletes_nothing_but_runs() {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let table = ObjectPrefix::local(&dir.path().join("retail/churn")).unwrap();
        let put = |path: &str, text: &str| {
            let path = ObjectPath::from(format!("{}/{path}", table.prefix()));
            runtime
                .block_on(table.store().put(&path, PutPayload::from(text.to_string())))
                .unwrap();
        };
        put("keep.txt", "another tool's file");
        put("run-x/part-0.parquet", "not a run of ours: no UUID");
        let publish = |run: &str| {
            let staged = Staged {
                place: Place::Run {
                    table: table.clone(),
                    run: run.to_string(),
                    published: false,
                },
                rows: 1,
            };
            runtime.block_on(staged.publish())
        };
        for previous in ["", ".", "..", "keep.txt", "run-x"] {
            put(
                LATEST,
                &serde_json::json!({"current": "run-a", "previous": previous}).to_string(),
            );
            let run = format!("{RUN}{}", uuid::Uuid::new_v4());
            put(&format!("{run}/part-0.parquet"), "rows");
            publish(&run).unwrap_or_else(|e| panic!("{previous:?}: {}", e.message));
            assert!(
                dir.path().join("retail/churn/keep.txt").exists(),
                "{previous:?}"
            );
            assert!(
                dir.path()
                    .join("retail/churn/run-x/part-0.parquet")
                    .exists(),
                "{previous:?}"
            );
            assert!(dir.path().join(format!("retail/churn/{run}")).exists());
        }
        put(LATEST, "not json");
        let refused = publish(&format!("{RUN}{}", uuid::Uuid::new_v4())).unwrap_err();
        assert!(
            refused.message.contains(LATEST) && refused.message.contains("pointer"),
            "{}",
            refused.message
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("retail/churn").join(LATEST)).unwrap(),
            "not json"
        );
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
