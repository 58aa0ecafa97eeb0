//! An executor's files, confined: the object store its tasks read and write local files
//! through serves only paths under the roots it was given, reading under any of them and
//! writing only under the writable ones. A plan that names another path (a `COPY … TO`
//! elsewhere, a scan of `/etc`) fails its task with an error naming the path and the roots.
//!
//! Every table scan and every table write of DataFusion goes through this store; Ballista's
//! own shuffle files in the executor's work folder do not (they never come from a plan).
//! Paths are compared by their parts, as given (`..` is not a part an object-store path can
//! hold); a symbolic link inside a root is followed where it points.

use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use std::fmt;
use std::path::PathBuf;

/// The roots an executor's tasks may touch.
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

    /// The roots as absolute paths, each checked to be a folder (a warehouse that does not
    /// exist yet is created: the executor writes there).
    pub fn resolved(&self) -> std::result::Result<Roots, String> {
        for root in &self.write {
            std::fs::create_dir_all(root)
                .map_err(|e| format!("cannot create `--warehouse` {}: {e}", root.display()))?;
        }
        let resolve =
            |flag: &str, roots: &[PathBuf]| -> std::result::Result<Vec<PathBuf>, String> {
                roots
                    .iter()
                    .map(|root| {
                        let canonical = root
                            .canonicalize()
                            .map_err(|e| format!("`{flag}` {}: {e}", root.display()))?;
                        if !canonical.is_dir() {
                            return Err(format!("`{flag}` {}: not a folder", root.display()));
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

/// A local file system that serves only paths under its roots.
#[derive(Debug)]
pub struct ConfinedFiles {
    inner: LocalFileSystem,
    read: Vec<Path>,
    write: Vec<Path>,
    described: String,
}

impl ConfinedFiles {
    /// A store for `roots` (absolute folders, as [`Roots::resolved`] gives them).
    pub fn new(roots: &Roots) -> std::result::Result<ConfinedFiles, String> {
        let as_path = |root: &PathBuf| {
            Path::from_absolute_path(root)
                .map_err(|e| format!("{} cannot be a root: {e}", root.display()))
        };
        let write: Vec<Path> = roots
            .write
            .iter()
            .map(as_path)
            .collect::<std::result::Result<_, _>>()?;
        let mut read: Vec<Path> = roots
            .read
            .iter()
            .map(as_path)
            .collect::<std::result::Result<_, _>>()?;
        read.extend(write.iter().cloned());
        let described = format!(
            "reads under {} and writes under {}",
            list(&roots.read, &roots.write),
            list(&roots.write, &[])
        );
        Ok(ConfinedFiles {
            inner: LocalFileSystem::new(),
            read,
            write,
            described,
        })
    }

    fn check(&self, location: &Path, writes: bool) -> Result<()> {
        let roots = if writes { &self.write } else { &self.read };
        if roots.iter().any(|root| location.prefix_matches(root)) {
            return Ok(());
        }
        Err(object_store::Error::PermissionDenied {
            path: location.to_string(),
            source: format!(
                "this executor {}: /{location} is outside them (a plan may only touch the catalog and the warehouse)",
                self.described
            )
            .into(),
        })
    }
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
        let described = self.described.clone();
        let checked = locations
            .map(move |location| {
                let location = location?;
                if write.iter().any(|root| location.prefix_matches(root)) {
                    Ok(location)
                } else {
                    Err(object_store::Error::PermissionDenied {
                        path: location.to_string(),
                        source: format!("this executor {described}: /{location} is outside them")
                            .into(),
                    })
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
