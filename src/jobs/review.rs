//! What a reviewer approves, bound to the data: the recipe, the SQL, and a SHA-256 of the
//! contents of every catalog file the SQL reads.
//!
//! The identity of a catalog is the content hash of each `.parquet` and `.sql` file under
//! it (hidden entries skipped, as the catalog skips them), not its size and modification
//! time: a file rewritten with other values, the same size and its old modification time
//! restored must not pass as the file that was reviewed. Hashing costs one read of the
//! catalog; a process keeps each file's hash with the file's inode, size, modification and
//! change times, and reuses it only while all of them are unchanged and the change time was
//! already a few seconds old when the file was hashed. The kernel sets the change time on
//! every write and on every `utime` call, and no program can set it back, so an unchanged
//! record means unchanged contents; a file changed within the clock's granularity of its
//! hashing is hashed again.
//!
//! A catalog in an object store is not read to be identified: each `.parquet` and `.sql`
//! object is known by its ETag and size as the listing gives them. A store gives an object
//! a new ETag whenever it is written (S3, GCS and Azure alike), so a rewritten object shows
//! as changed without reading it.

use crate::catalog::storage::{Location, ObjectPrefix};
use crate::catalog::{DataFile, delta, is_catalog_name};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Each catalog file (path relative to the catalog) and the SHA-256 of its contents.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatalogIdentity {
    files: BTreeMap<String, String>,
}

/// How long a file's change time must lie in the past for its hash to be kept.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// A file's identity on disk; equal stamps mean equal contents (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: (i64, i64),
    changed: (i64, i64),
}

fn cache() -> &'static Mutex<HashMap<PathBuf, (Stamp, String)>> {
    static CACHE: std::sync::OnceLock<Mutex<HashMap<PathBuf, (Stamp, String)>>> =
        std::sync::OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl CatalogIdentity {
    /// The identity of the catalog at `root`: a directory, a JSON file, or an object
    /// store's prefix (see the module docs).
    pub async fn of_location(root: &Path) -> Result<CatalogIdentity, String> {
        match Location::parse(root).map_err(|e| format!("{}: {e}", root.display()))? {
            Location::Object(prefix) => Ok(CatalogIdentity {
                files: object_marks(&prefix).await?,
            }),
            Location::Local(path) => tokio::task::spawn_blocking(move || {
                CatalogIdentity::of(&path).map_err(|e| format!("{}: {e}", path.display()))
            })
            .await
            .map_err(|e| e.to_string())?,
        }
    }

    /// Hashes every data and view file of the catalog at `root` (a directory, or a JSON file).
    pub fn of(root: &Path) -> std::io::Result<CatalogIdentity> {
        let mut files = BTreeMap::new();
        for (relative, path) in catalog_files(root)? {
            let mark = if path.file_name().is_some_and(|n| n == delta::LOG) {
                delta_mark(local_delta_version(&path)?)
            } else {
                file_hash(&path)?
            };
            files.insert(delta_folder(relative), mark);
        }
        Ok(CatalogIdentity { files })
    }

    /// The identity as text, one `HASH PATH` line per file, sorted: what the job store keeps.
    pub fn to_text(&self) -> String {
        self.files
            .iter()
            .map(|(path, hash)| format!("{hash} {path}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Reads [`CatalogIdentity::to_text`] back; lines of another form are skipped.
    pub fn from_text(text: &str) -> CatalogIdentity {
        CatalogIdentity {
            files: text
                .lines()
                .filter_map(|line| line.split_once(' '))
                .map(|(hash, path)| (path.to_string(), hash.to_string()))
                .collect(),
        }
    }

    /// The files added, removed or changed since `before`, as `added x`, `changed y`, …
    pub fn changes_since(&self, before: &CatalogIdentity) -> Vec<String> {
        let mut changes = Vec::new();
        for (path, hash) in &self.files {
            match before.files.get(path) {
                None => changes.push(format!("added {path}")),
                Some(old) if old != hash => match (
                    old.strip_prefix(DELTA_VERSION),
                    hash.strip_prefix(DELTA_VERSION),
                ) {
                    (Some(was), Some(is)) => {
                        changes.push(format!("changed {path} (Delta version {was} → {is})"))
                    }
                    _ => changes.push(format!("changed {path}")),
                },
                _ => {}
            }
        }
        for path in before.files.keys() {
            if !self.files.contains_key(path) {
                changes.push(format!("removed {path}"));
            }
        }
        changes
    }
}

/// The files a catalog reads, by path relative to its root: every `.parquet` and `.sql`
/// file (the extension in any case, as the loader reads it) under a directory (hidden entries skipped, as the catalog skips them), or the JSON
/// file itself.
fn catalog_files(root: &Path) -> std::io::Result<Vec<(String, PathBuf)>> {
    if root.is_file() {
        let name = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(vec![(name, root.to_path_buf())]);
    }
    let mut files = Vec::new();
    let mut keep = |path: PathBuf| {
        let relative = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        files.push((relative, path));
    };
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let is_dir = entry.file_type()?.is_dir();
            if is_dir && path.join(delta::LOG).is_dir() {
                // A Delta table is known by its log (its version), not by its files.
                keep(path.join(delta::LOG));
            } else if is_dir {
                stack.push(path);
            } else if crate::catalog::is_catalog_file(&path) {
                keep(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Each catalog object's identity (path below the prefix → `etag=…;size=…`; a Delta
/// table's folder → its version), from one listing.
async fn object_marks(prefix: &ObjectPrefix) -> Result<BTreeMap<String, String>, String> {
    let objects = crate::catalog::list_objects(prefix)
        .await
        .map_err(|e| format!("{}: {}", e.path.display(), e.message))?;
    let delta = objects
        .delta
        .iter()
        .map(|(parts, version)| (parts.join("/"), delta_mark(*version)));
    Ok(objects
        .files
        .into_iter()
        .filter(|(parts, _)| parts.last().is_some_and(|name| is_catalog_name(name)))
        .filter_map(|(parts, file)| match file {
            DataFile::Object { size, e_tag, .. } => {
                let e_tag: String = e_tag
                    .unwrap_or_default()
                    .chars()
                    .filter(|c| !c.is_whitespace())
                    .collect();
                Some((parts.join("/"), format!("etag={e_tag};size={size}")))
            }
            DataFile::Local(_) => None,
        })
        .chain(delta)
        .collect())
}

/// A Delta table's identity: its version (its data files never change in place; a new
/// commit is a new version).
fn delta_mark(version: u64) -> String {
    format!("{DELTA_VERSION}{version}")
}

/// The name a Delta table's log entry is known by: its folder (`events/_delta_log` →
/// `events`), as the object listing names it.
fn delta_folder(relative: String) -> String {
    match relative.strip_suffix(&format!("/{}", delta::LOG)) {
        Some(folder) => folder.to_string(),
        None => relative,
    }
}

/// How a Delta table's identity starts.
const DELTA_VERSION: &str = "delta-version=";

/// The latest version of the Delta log in `log` (a local `_delta_log` folder), from its
/// commit files' names.
fn local_delta_version(log: &Path) -> std::io::Result<u64> {
    let mut latest = 0;
    for entry in std::fs::read_dir(log)? {
        let name = entry?.file_name();
        let name = name.to_string_lossy();
        if let Some(number) = name.strip_suffix(".json")
            && number.len() == 20
            && let Ok(version) = number.parse::<u64>()
        {
            latest = latest.max(version);
        }
    }
    Ok(latest)
}

/// What the catalog's files look like (on disk: inode, size, modification and change times
/// of each; in a store: each object's ETag and size), without reading them: equal stamps
/// mean the catalog has not changed, so a service can keep the catalog it loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogStamp {
    /// The files of a local catalog.
    Files(Vec<(String, Stamp)>),
    /// The objects of a catalog in a store.
    Objects(BTreeMap<String, String>),
}

impl CatalogStamp {
    /// Stamps the local catalog at `root`.
    pub fn of(root: &Path) -> std::io::Result<CatalogStamp> {
        catalog_files(root)?
            .into_iter()
            .map(|(relative, path)| Ok((relative, stamp(&std::fs::metadata(&path)?))))
            .collect::<std::io::Result<Vec<_>>>()
            .map(CatalogStamp::Files)
    }

    /// Stamps the catalog at `root`, local or in an object store.
    pub async fn of_location(root: &Path) -> Result<CatalogStamp, String> {
        match Location::parse(root).map_err(|e| format!("{}: {e}", root.display()))? {
            Location::Object(prefix) => object_marks(&prefix).await.map(CatalogStamp::Objects),
            Location::Local(path) => tokio::task::spawn_blocking(move || {
                CatalogStamp::of(&path).map_err(|e| format!("{}: {e}", path.display()))
            })
            .await
            .map_err(|e| e.to_string())?,
        }
    }
}

/// The SHA-256 of the recipe, the SQL and the catalog identity: what approval records.
pub fn review_hash(
    recipe: &crate::contract::recipe::FeatureRecipe,
    sql: &str,
    catalog: &CatalogIdentity,
) -> String {
    let mut hasher = Sha256::new();
    hasher.update(serde_json::to_vec(recipe).unwrap_or_default());
    hasher.update([0]);
    hasher.update(sql.as_bytes());
    hasher.update([0]);
    hasher.update(catalog.to_text().as_bytes());
    hex(&hasher.finalize())
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    Stamp {
        device: meta.dev(),
        inode: meta.ino(),
        size: meta.size(),
        modified: (meta.mtime(), meta.mtime_nsec()),
        changed: (meta.ctime(), meta.ctime_nsec()),
    }
}

fn file_hash(path: &Path) -> std::io::Result<String> {
    let before = stamp(&std::fs::metadata(path)?);
    if let Ok(cached) = cache().lock()
        && let Some((seen, hash)) = cached.get(path)
        && *seen == before
    {
        return Ok(hash.clone());
    }
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    let hash = hex(&hasher.finalize());
    let after = stamp(&file.metadata()?);
    let settled = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|now| now.as_secs() as i64 - before.changed.0 >= SETTLED.as_secs() as i64)
        .unwrap_or(false);
    if after == before
        && settled
        && let Ok(mut cached) = cache().lock()
    {
        cached.insert(path.to_path_buf(), (before, hash.clone()));
    }
    Ok(hash)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_size_and_modification_time_with_other_contents_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("orders.parquet");
        std::fs::write(&file, b"amount=1").unwrap();
        std::fs::write(dir.path().join("README.md"), b"ignored").unwrap();
        std::fs::write(dir.path().join(".hidden.sql"), b"ignored").unwrap();
        let before = CatalogIdentity::of(dir.path()).unwrap();
        assert_eq!(before.files.len(), 1);
        let modified = std::fs::metadata(&file).unwrap().modified().unwrap();
        std::fs::write(&file, b"amount=9").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(modified)
            .unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().modified().unwrap(),
            modified
        );
        let after = CatalogIdentity::of(dir.path()).unwrap();
        assert_eq!(after.changes_since(&before), ["changed orders.parquet"]);
        assert_eq!(CatalogIdentity::from_text(&before.to_text()), before);
    }
}
