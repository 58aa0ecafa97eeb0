//! An executor's stores, confined: the local file system, and each object store a plan
//! names (`s3://bucket/…`, built from the executor's environment on first use: see
//! [`crate::catalog::storage`]). Given roots (folders or object-store prefixes), each store
//! serves only paths under them, reading under any of them and writing only under the
//! writable ones. A plan that names another path (a `COPY … TO` elsewhere, a scan of
//! `/etc`, another bucket) fails its task with an error naming the path and the roots.
//!
//! Every table scan and every table write of DataFusion goes through these stores;
//! Ballista's own shuffle files in the executor's work folder do not (they never come from
//! a plan). Paths are compared by their parts, as given (`..` is not a part an object-store
//! path can hold); a symbolic link inside a root is followed where it points.

use crate::catalog::storage::{Location, ObjectPrefix};
use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The roots an executor's tasks may touch: folders, or object-store prefixes given as URLs.
#[derive(Debug, Clone, Default)]
pub struct Roots {
    /// Read only (the catalogs).
    pub read: Vec<PathBuf>,
    /// Read and written (the warehouses).
    pub write: Vec<PathBuf>,
}

impl Roots {
    /// Whether no root is given (the executor is then not confined).
    pub fn is_empty(&self) -> bool {
        self.read.is_empty() && self.write.is_empty()
    }

    /// The roots with local folders as absolute paths, each checked to be a folder (a
    /// warehouse that does not exist yet is created: the executor writes there); an object
    /// store's URL stays as given, checked to name a store.
    pub fn resolved(&self) -> std::result::Result<Roots, String> {
        let resolve =
            |flag: &str, roots: &[PathBuf]| -> std::result::Result<Vec<PathBuf>, String> {
                roots
                    .iter()
                    .map(|root| {
                        let shown = || format!("`{flag}` {}", root.display());
                        match Location::parse(root).map_err(|e| format!("{}: {e}", shown()))? {
                            Location::Object(_) => return Ok(root.clone()),
                            Location::Local(path) if flag == "--warehouse" => {
                                std::fs::create_dir_all(&path).map_err(|e| {
                                    format!("cannot create `--warehouse` {}: {e}", root.display())
                                })?
                            }
                            Location::Local(_) => {}
                        }
                        let canonical = root
                            .canonicalize()
                            .map_err(|e| format!("{}: {e}", shown()))?;
                        if !canonical.is_dir() {
                            return Err(format!("{}: not a folder", shown()));
                        }
                        Ok(canonical)
                    })
                    .collect()
            };
        Ok(Roots {
            read: resolve("--catalog", &self.read)?,
            write: resolve("--warehouse", &self.write)?,
        })
    }
}

/// A store (the local file system, or an object store) that serves only paths under its
/// roots.
#[derive(Debug)]
pub struct ConfinedFiles {
    inner: Arc<dyn ObjectStore>,
    read: Vec<Path>,
    write: Vec<Path>,
    /// What a path is shown after: `/` locally, `s3://bucket/` in a store.
    base: String,
    described: String,
}

impl ConfinedFiles {
    /// The local file system confined to the folders of `roots` (absolute, as
    /// [`Roots::resolved`] gives them; its object-store prefixes are not local).
    pub fn new(roots: &Roots) -> std::result::Result<ConfinedFiles, String> {
        let as_path = |root: &PathBuf| match Location::parse(root) {
            Ok(Location::Object(_)) => None,
            _ => Some(
                Path::from_absolute_path(root)
                    .map_err(|e| format!("{} cannot be a root: {e}", root.display())),
            ),
        };
        let write: Vec<Path> = roots
            .write
            .iter()
            .filter_map(as_path)
            .collect::<std::result::Result<_, _>>()?;
        let read: Vec<Path> = roots
            .read
            .iter()
            .filter_map(as_path)
            .collect::<std::result::Result<_, _>>()?;
        Ok(ConfinedFiles::over(
            Arc::new(LocalFileSystem::new()),
            read,
            write,
            "/",
            roots,
        ))
    }

    /// `inner` confined to `read` and `write` (what it writes it may read too).
    fn over(
        inner: Arc<dyn ObjectStore>,
        mut read: Vec<Path>,
        write: Vec<Path>,
        base: &str,
        roots: &Roots,
    ) -> ConfinedFiles {
        read.extend(write.iter().cloned());
        let described = format!(
            "reads under {} and writes under {}",
            list(&roots.read, &roots.write),
            list(&roots.write, &[])
        );
        ConfinedFiles {
            inner,
            read,
            write,
            base: base.to_string(),
            described,
        }
    }

    fn check(&self, location: &Path, writes: bool) -> Result<()> {
        let roots = if writes { &self.write } else { &self.read };
        if roots.iter().any(|root| location.prefix_matches(root)) {
            return Ok(());
        }
        Err(outside(location, &self.base, &self.described))
    }
}

/// The refusal of a path outside the roots.
fn outside(location: &Path, base: &str, described: &str) -> object_store::Error {
    object_store::Error::PermissionDenied {
        path: location.to_string(),
        source: format!(
            "this executor {described}: {base}{location} is outside them (a plan may only touch the catalog and the warehouse)"
        )
        .into(),
    }
}

/// The stores a cluster process reads and writes through (an executor's tasks; the
/// scheduler, which lists what it plans): the local file system, and each object store a
/// plan names, built from the process's environment on first use and kept. With roots,
/// each serves only its part of them ([`ConfinedFiles`]).
#[derive(Debug)]
pub struct ClusterStores {
    local: Arc<dyn ObjectStore>,
    /// The roots, resolved (`None`: not confined).
    roots: Option<Roots>,
    /// Each object store by its root URL (`s3://bucket`).
    objects: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl ClusterStores {
    /// The stores of a process confined to `roots` (resolved), or not confined (`None`).
    pub fn new(roots: Option<Roots>) -> std::result::Result<ClusterStores, String> {
        let Some(roots) = roots else {
            return Ok(ClusterStores::unconfined());
        };
        Ok(ClusterStores {
            local: Arc::new(ConfinedFiles::new(&roots)?),
            roots: Some(roots),
            objects: Mutex::new(HashMap::new()),
        })
    }

    /// The stores of a process not confined to roots.
    pub fn unconfined() -> ClusterStores {
        ClusterStores {
            local: Arc::new(LocalFileSystem::new()),
            roots: None,
            objects: Mutex::new(HashMap::new()),
        }
    }

    /// The object store at `base` (`s3://bucket`), confined to the roots under it.
    fn object_store(&self, base: &str) -> std::result::Result<Arc<dyn ObjectStore>, String> {
        let Location::Object(store) = Location::parse(std::path::Path::new(base))? else {
            return Err(format!("{base} is not an object store"));
        };
        let Some(roots) = &self.roots else {
            return Ok(Arc::clone(store.store()));
        };
        let under = |list: &[PathBuf]| -> Vec<Path> {
            list.iter()
                .filter_map(|root| match Location::parse(root) {
                    Ok(Location::Object(prefix)) if same_store(&prefix, &store) => {
                        Some(prefix.prefix().clone())
                    }
                    _ => None,
                })
                .collect()
        };
        Ok(Arc::new(ConfinedFiles::over(
            Arc::clone(store.store()),
            under(&roots.read),
            under(&roots.write),
            &format!("{base}/"),
            roots,
        )))
    }
}

fn same_store(a: &ObjectPrefix, b: &ObjectPrefix) -> bool {
    a.base() == b.base()
}

impl ObjectStoreRegistry for ClusterStores {
    fn register_store(
        &self,
        url: &url::Url,
        store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        objects.insert(store_key(url), store)
    }

    fn get_store(&self, url: &url::Url) -> datafusion::common::Result<Arc<dyn ObjectStore>> {
        if url.scheme() == "file" {
            return Ok(Arc::clone(&self.local));
        }
        let key = store_key(url);
        let mut objects = self.objects.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = objects.get(&key) {
            return Ok(Arc::clone(store));
        }
        let store = self
            .object_store(&key)
            .map_err(|e| datafusion::common::DataFusionError::Execution(format!("{key}: {e}")))?;
        objects.insert(key, Arc::clone(&store));
        Ok(store)
    }
}

/// A store's key: its scheme and authority (`s3://bucket`).
fn store_key(url: &url::Url) -> String {
    format!(
        "{}://{}",
        url.scheme(),
        &url[url::Position::BeforeHost..url::Position::AfterPort]
    )
}

/// `a` and `b` as one list of folders for a message (`nothing` when both are empty).
fn list(a: &[PathBuf], b: &[PathBuf]) -> String {
    let all: Vec<String> = a.iter().chain(b).map(|p| p.display().to_string()).collect();
    if all.is_empty() {
        "nothing".to_string()
    } else {
        all.join(", ")
    }
}

impl fmt::Display for ConfinedFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfinedFiles({})", self.described)
    }
}

#[async_trait::async_trait]
impl ObjectStore for ConfinedFiles {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.check(location, true)?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.check(location, true)?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check(location, false)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<Vec<bytes::Bytes>> {
        self.check(location, false)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        let write = self.write.clone();
        let base = self.base.clone();
        let described = self.described.clone();
        let checked = locations
            .map(move |location| {
                let location = location?;
                if write.iter().any(|root| location.prefix_matches(root)) {
                    Ok(location)
                } else {
                    Err(outside(&location, &base, &described))
                }
            })
            .boxed();
        self.inner.delete_stream(checked)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let root = Path::default();
        match self.check(prefix.unwrap_or(&root), false) {
            Ok(()) => self.inner.list(prefix),
            Err(e) => futures::stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        let root = Path::default();
        self.check(prefix.unwrap_or(&root), false)?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check(from, false)?;
        self.check(to, true)?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.check(from, true)?;
        self.check(to, true)?;
        self.inner.rename_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;

    #[tokio::test]
    async fn only_paths_under_the_roots_are_served() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = dir.path().join("catalog");
        let warehouse = dir.path().join("warehouse");
        let outside = dir.path().join("outside");
        for d in [&catalog, &warehouse, &outside] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(catalog.join("t.parquet"), b"PAR1").unwrap();
        std::fs::write(outside.join("secret.txt"), b"no").unwrap();
        let roots = Roots {
            read: vec![catalog.clone()],
            write: vec![warehouse.clone()],
        }
        .resolved()
        .unwrap();
        let store = ConfinedFiles::new(&roots).unwrap();
        let path = |p: PathBuf| Path::from_absolute_path(p.canonicalize().unwrap_or(p)).unwrap();
        assert!(store.get(&path(catalog.join("t.parquet"))).await.is_ok());
        let refused = store
            .get(&path(outside.join("secret.txt")))
            .await
            .unwrap_err();
        assert!(refused.to_string().contains("is outside them"), "{refused}");
        // The catalog is read only; the warehouse is written.
        let table = Path::from_absolute_path(roots.write[0].join("t.csv")).unwrap();
        assert!(store.put(&table, "a".into()).await.is_ok());
        let into_catalog = Path::from_absolute_path(roots.read[0].join("x.csv")).unwrap();
        assert!(store.put(&into_catalog, "a".into()).await.is_err());
        let escape = Path::from_absolute_path(outside.canonicalize().unwrap().join("x")).unwrap();
        assert!(store.put(&escape, "a".into()).await.is_err());
        assert!(store.copy(&table, &escape).await.is_err());
        assert!(store.rename(&table, &escape).await.is_err());
        assert!(store.list_with_delimiter(None).await.is_err());
        assert!(store.list(Some(&escape)).next().await.unwrap().is_err());
        assert!(store.delete(&escape).await.is_err());
        assert!(!std::fs::exists(outside.join("x")).unwrap());
    }
}
