//! A catalog folder's entries, local or in an object store, and the reads the layout
//! rules need: each Parquet footer (read once per load, with how its integer columns'
//! values lie in its row groups) and each view's text.
//!
//! A local folder is read three levels deep (`DOMAIN/TABLE/FILE`), as the layout reaches;
//! an object-store prefix is listed once (at most [`MAX_OBJECTS`] objects) and its keys
//! split at `/` into the same folders. Hidden entries (`.NAME`, `_NAME`) are skipped in
//! both, so the two read the same layout alike.

use super::storage::{ObjectPrefix, store_message};
use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::arrow::async_reader::MetadataFetch;
use parquet::file::metadata::ParquetMetaDataReader;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The most objects a catalog prefix may hold: a prefix past it is most likely not a
/// catalog's (a bucket's root), and listing it would take long.
pub const MAX_OBJECTS: usize = 100_000;

/// The largest view file read from a store (a view is one query).
const MAX_VIEW_BYTES: u64 = 1 << 20;

/// How many bytes at a Parquet object's end are fetched first: its footer, in one request
/// for most files.
const FOOTER_PREFETCH: usize = 64 * 1024;

/// How deep the layout reaches: `DOMAIN/TABLE/FILE`.
const DEPTH: usize = 3;

/// Why a catalog could not be loaded: what is wrong and in which file.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogError {
    /// The file or folder the problem is in (for an object store, its URL).
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "catalog {}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for CatalogError {}

pub(super) fn catalog_error(path: &Path, message: impl Into<String>) -> CatalogError {
    CatalogError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// One data file of a catalog table.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataFile {
    /// A file on this machine.
    Local(PathBuf),
    /// An object in the catalog's store, as listed: an approval binds to its size and ETag.
    Object {
        /// Its URL (`s3://bucket/prefix/orders.parquet`).
        url: String,
        /// Its path in the store (`prefix/orders.parquet`).
        key: String,
        /// Its size in bytes.
        size: u64,
        /// Its ETag, when the store gives one.
        e_tag: Option<String>,
    },
}

impl DataFile {
    /// The file as messages and `catalog --sources` show it: a path or a URL.
    pub fn shown(&self) -> String {
        match self {
            DataFile::Local(path) => path.display().to_string(),
            DataFile::Object { url, .. } => url.clone(),
        }
    }

    /// The file as the `path` of a [`CatalogError`].
    pub(super) fn place(&self) -> PathBuf {
        match self {
            DataFile::Local(path) => path.clone(),
            DataFile::Object { url, .. } => PathBuf::from(url),
        }
    }

    pub(super) fn name(&self) -> &str {
        match self {
            DataFile::Local(path) => path.file_name().and_then(|n| n.to_str()).unwrap_or(""),
            DataFile::Object { key, .. } => key.rsplit('/').next().unwrap_or(key),
        }
    }
}

/// An entry of a catalog folder: what the layout rules look at.
#[derive(Debug, Clone)]
pub(super) enum Entry {
    /// A folder (at the deepest level, its entries are not read).
    Folder {
        /// Its name.
        name: String,
        /// Where it is, for messages.
        place: PathBuf,
        /// Its entries, by name.
        entries: Vec<Entry>,
    },
    /// A file.
    File(DataFile),
    /// A Delta Lake table: a folder with a `_delta_log/`, read at its latest version.
    Delta {
        /// Its name.
        name: String,
        /// Where it is, for messages (and, locally, its path).
        place: PathBuf,
        /// The table's prefix in its store (the local file system's, locally).
        table: ObjectPrefix,
    },
}

impl Entry {
    /// The table name the entry gives: a folder's name, a file's name without its extension.
    pub(super) fn stem(&self) -> String {
        match self {
            Entry::Folder { name, .. } | Entry::Delta { name, .. } => name.clone(),
            Entry::File(file) => Path::new(file.name())
                .file_stem()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        }
    }
}

/// Whether `file` is named `*.EXTENSION`, the extension in any case.
pub(super) fn has_extension(file: &DataFile, extension: &str) -> bool {
    extension_is(file.name(), extension)
}

fn extension_is(name: &str, extension: &str) -> bool {
    Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case(extension))
}

/// Whether a file under a catalog folder is one the catalog reads: `.parquet` data or a
/// `.sql` view, the extension in any case (`NAME.SQL` too). The loader and the approval's
/// catalog identity both ask this, so no file is read that is not hashed.
pub fn is_catalog_file(path: &Path) -> bool {
    path.is_file() && is_catalog_name(path.file_name().and_then(|n| n.to_str()).unwrap_or(""))
}

/// Whether a file named `name` is one the catalog reads (see [`is_catalog_file`]).
pub fn is_catalog_name(name: &str) -> bool {
    extension_is(name, "parquet") || extension_is(name, "sql")
}

/// Whether a name is hidden from the catalog (`.git`, `_SUCCESS`, `_delta_log`).
pub(super) fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// The entries of the local folder `dir`, by name, `depth` levels deep.
pub(super) fn local_entries(dir: &Path, depth: usize) -> Result<Vec<Entry>, CatalogError> {
    let reader = std::fs::read_dir(dir)
        .map_err(|e| catalog_error(dir, format!("cannot read directory: {e}")))?;
    let mut paths = Vec::new();
    for entry in reader {
        let entry = entry.map_err(|e| catalog_error(dir, format!("cannot read directory: {e}")))?;
        if !is_hidden(&entry.file_name().to_string_lossy()) {
            paths.push(entry.path());
        }
    }
    paths.sort();
    let mut entries = Vec::with_capacity(paths.len());
    for path in paths {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.join(super::delta::LOG).is_dir() {
            let table = ObjectPrefix::local(&path)
                .map_err(|e| catalog_error(&path, format!("cannot read the Delta table: {e}")))?;
            entries.push(Entry::Delta {
                name,
                place: path,
                table,
            });
        } else if path.is_dir() {
            let inner = if depth > 1 {
                local_entries(&path, depth - 1)?
            } else {
                Vec::new()
            };
            entries.push(Entry::Folder {
                name,
                place: path,
                entries: inner,
            });
        } else if path.is_file() {
            entries.push(Entry::File(DataFile::Local(path)));
        }
    }
    Ok(entries)
}

/// What one listing of a catalog prefix found.
#[derive(Debug, Default)]
pub struct Objects {
    /// Every object but the hidden ones (a path part starting with `.` or `_`) and those of
    /// Delta tables, each with its path below the prefix split at `/`.
    pub files: Vec<(Vec<String>, DataFile)>,
    /// Each Delta table (a folder with a `_delta_log/`, by its path parts) and the latest
    /// version its log's file names give.
    pub delta: BTreeMap<Vec<String>, u64>,
}

/// The objects under `prefix`, listed once (see [`Objects`]).
pub async fn list_objects(prefix: &ObjectPrefix) -> Result<Objects, CatalogError> {
    let here = PathBuf::from(prefix.url());
    let mut listing = prefix.store().list(Some(prefix.prefix()));
    let mut found = Objects::default();
    let mut listed = 0usize;
    while let Some(object) = listing.next().await {
        let object = object
            .map_err(|e| catalog_error(&here, format!("cannot list: {}", store_message(&e))))?;
        listed += 1;
        if listed > MAX_OBJECTS {
            return Err(catalog_error(
                &here,
                format!(
                    "the prefix holds more than {MAX_OBJECTS} objects: give the catalog's own prefix"
                ),
            ));
        }
        let Some(parts) = prefix.relative(&object.location) else {
            continue;
        };
        if let Some(at) = parts.iter().position(|p| p == super::delta::LOG)
            && !parts[..at].iter().any(|p| is_hidden(p))
        {
            let version = parts
                .last()
                .and_then(|name| name.strip_suffix(".json"))
                .filter(|number| number.len() == 20)
                .and_then(|number| number.parse::<u64>().ok());
            let latest = found.delta.entry(parts[..at].to_vec()).or_insert(0);
            *latest = (*latest).max(version.unwrap_or(0));
            continue;
        }
        if parts.is_empty() || parts.iter().any(|p| is_hidden(p)) {
            continue;
        }
        let file = DataFile::Object {
            url: prefix.url_of(&object.location),
            key: object.location.to_string(),
            size: object.size,
            e_tag: object.e_tag.clone(),
        };
        found.files.push((parts, file));
    }
    if listed == 0 {
        return Err(catalog_error(
            &here,
            "no objects under this prefix (check the bucket and the prefix)",
        ));
    }
    // A Delta table's data files are the log's to name, not the listing's.
    let delta: Vec<Vec<String>> = found.delta.keys().cloned().collect();
    found
        .files
        .retain(|(parts, _)| !delta.iter().any(|table| parts.starts_with(table)));
    Ok(found)
}

/// The entries under `prefix`, listed once, by name, [`DEPTH`] levels deep.
pub(super) async fn object_entries(prefix: &ObjectPrefix) -> Result<Vec<Entry>, CatalogError> {
    let mut root = Folder::default();
    let found = list_objects(prefix).await?;
    for (parts, file) in found.files {
        root.insert(&parts, file);
    }
    for parts in found.delta.keys() {
        root.insert_delta(parts);
    }
    Ok(root.into_entries(prefix, DEPTH))
}

/// A folder of an object listing while it is built.
#[derive(Default)]
struct Folder {
    folders: BTreeMap<String, Folder>,
    files: BTreeMap<String, DataFile>,
    /// The Delta tables in it, by name.
    delta: std::collections::BTreeSet<String>,
}

impl Folder {
    fn insert(&mut self, parts: &[String], file: DataFile) {
        match parts {
            [] => {}
            [name] => {
                self.files.insert(name.clone(), file);
            }
            [folder, rest @ ..] => self
                .folders
                .entry(folder.clone())
                .or_default()
                .insert(rest, file),
        }
    }

    fn insert_delta(&mut self, parts: &[String]) {
        match parts {
            [] => {}
            [name] => {
                self.delta.insert(name.clone());
            }
            [folder, rest @ ..] => self
                .folders
                .entry(folder.clone())
                .or_default()
                .insert_delta(rest),
        }
    }

    /// The entries by name (a folder before a file of the same name, which a store's
    /// folder marker object would be; a Delta table before both), `depth` levels deep.
    fn into_entries(self, at: &ObjectPrefix, depth: usize) -> Vec<Entry> {
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        for (name, file) in self.files {
            entries.insert(name, Entry::File(file));
        }
        for (name, folder) in self.folders {
            let inside = at.child(&name);
            let place = inside.url();
            let inner = if depth > 1 {
                folder.into_entries(&inside, depth - 1)
            } else {
                Vec::new()
            };
            entries.insert(
                name.clone(),
                Entry::Folder {
                    name,
                    place: PathBuf::from(place),
                    entries: inner,
                },
            );
        }
        for name in self.delta {
            let table = at.child(&name);
            entries.insert(
                name.clone(),
                Entry::Delta {
                    name,
                    place: PathBuf::from(table.url()),
                    table,
                },
            );
        }
        entries.into_values().collect()
    }
}

/// How a signed integer column's values lie in a Parquet table's row groups, from their
/// statistics (no data is read): together (a table clustered or sorted by the column, each
/// row group holding a few of its values) or spread (a log in time order, each row group
/// holding nearly every value). A grouping by the column is planned by it
/// (`run::one_phase`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnSpread {
    /// The rows counted.
    pub rows: u64,
    /// At most how many of those rows hold a value not seen before in their row group:
    /// each row group counts its rows or its span of values (largest − smallest + 1),
    /// whichever is fewer.
    pub new_in_row_group: u64,
    /// The smallest value.
    pub min: i64,
    /// The largest value.
    pub max: i64,
}

impl ColumnSpread {
    /// The most distinct values a span can hold per row (ids with gaps); past it the
    /// values are not dense enough for a span to bound how many a row group holds.
    const DENSE_SPAN_PER_ROW: u64 = 4;

    /// One row group's, from its statistics.
    fn of_row_group(rows: u64, min: i64, max: i64) -> ColumnSpread {
        let span = u64::try_from(i128::from(max) - i128::from(min) + 1).unwrap_or(u64::MAX);
        ColumnSpread {
            rows,
            new_in_row_group: rows.min(span),
            min,
            max,
        }
    }

    /// The spread of the rows of both.
    fn and(self, other: ColumnSpread) -> ColumnSpread {
        ColumnSpread {
            rows: self.rows.saturating_add(other.rows),
            new_in_row_group: self.new_in_row_group.saturating_add(other.new_in_row_group),
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        }
    }

    /// The share of rows that may hold a value new to their row group (0 to 1), when the
    /// values are dense enough to tell: their span at most
    /// [`Self::DENSE_SPAN_PER_ROW`] values a row. Ids spread thinner (large random
    /// or time-based ids) say nothing by their span.
    pub fn new_value_share(&self) -> Option<f64> {
        let span = i128::from(self.max) - i128::from(self.min) + 1;
        let dense = span <= i128::from(self.rows) * i128::from(Self::DENSE_SPAN_PER_ROW);
        (self.rows > 0 && dense).then(|| self.new_in_row_group as f64 / self.rows as f64)
    }
}

/// Each signed integer column's [`ColumnSpread`] in a file or table, by column name: only
/// columns whose every row group states its smallest and largest value.
pub type ColumnSpreads = BTreeMap<String, ColumnSpread>;

/// A table's spreads, its files' so far (`None` before the first) with one more file's:
/// the columns every file knows.
pub(crate) fn with_file_spreads(
    table: Option<ColumnSpreads>,
    file: &ColumnSpreads,
) -> ColumnSpreads {
    match table {
        None => file.clone(),
        Some(table) => table
            .iter()
            .filter_map(|(name, x)| Some((name.clone(), x.and(*file.get(name)?))))
            .collect(),
    }
}

/// A Parquet file's [`ColumnSpreads`], from its footer.
fn column_spreads(metadata: &parquet::file::metadata::ParquetMetaData) -> ColumnSpreads {
    use parquet::basic::ConvertedType;
    use parquet::file::statistics::Statistics;
    let mut spreads = ColumnSpreads::new();
    let Some(first) = metadata.row_groups().first() else {
        return spreads;
    };
    for (index, column) in first.columns().iter().enumerate() {
        // Top-level columns only, and no unsigned ones (their statistics order differs),
        // whether a writer marked them by logical or by converted type.
        let path = column.column_path().parts();
        let descr = column.column_descr();
        let unsigned = matches!(
            descr.logical_type_ref(),
            Some(parquet::basic::LogicalType::Integer(int)) if !int.is_signed
        ) || matches!(
            descr.converted_type(),
            ConvertedType::UINT_8
                | ConvertedType::UINT_16
                | ConvertedType::UINT_32
                | ConvertedType::UINT_64
        );
        if path.len() != 1 || unsigned {
            continue;
        }
        let mut spread: Option<ColumnSpread> = None;
        for row_group in metadata.row_groups() {
            let rows = u64::try_from(row_group.num_rows()).unwrap_or(0);
            let range = match row_group.columns().get(index).and_then(|c| c.statistics()) {
                Some(Statistics::Int32(s)) => s
                    .min_opt()
                    .zip(s.max_opt())
                    .map(|(a, b)| (i64::from(*a), i64::from(*b))),
                Some(Statistics::Int64(s)) => s.min_opt().copied().zip(s.max_opt().copied()),
                _ => None,
            };
            let Some((min, max)) = range else {
                spread = None;
                break;
            };
            let group = ColumnSpread::of_row_group(rows, min, max);
            spread = Some(spread.map_or(group, |s| s.and(group)));
        }
        if let Some(spread) = spread {
            spreads.insert(path[0].clone(), spread);
        }
    }
    spreads
}

/// What a Parquet footer says: the Arrow schema, the row count, the integer columns'
/// spreads.
type Footer = (SchemaRef, u64, Arc<ColumnSpreads>);

/// Reads a catalog's files: each Parquet footer once per load, and views' text.
pub(crate) struct Reader {
    store: Option<Arc<dyn ObjectStore>>,
    footers: HashMap<DataFile, Footer>,
}

impl Reader {
    /// A reader of local files, and of objects in `store` when there is one.
    pub(crate) fn new(store: Option<Arc<dyn ObjectStore>>) -> Reader {
        Reader {
            store,
            footers: HashMap::new(),
        }
    }

    /// A Parquet file's Arrow schema, row count and integer columns' spreads, from its
    /// footer (no data is read).
    pub(crate) async fn footer(&mut self, file: &DataFile) -> Result<Footer, CatalogError> {
        if let Some(read) = self.footers.get(file) {
            return Ok(read.clone());
        }
        let metadata = match file {
            DataFile::Local(path) => {
                let opened = std::fs::File::open(path)
                    .map_err(|e| catalog_error(path, format!("cannot open: {e}")))?;
                ArrowReaderMetadata::load(&opened, ArrowReaderOptions::new())
            }
            DataFile::Object { key, size, .. } => {
                let ranges = ObjectRanges {
                    store: self.object_store(file)?,
                    path: ObjectPath::from(key.as_str()),
                };
                match ParquetMetaDataReader::new()
                    .with_prefetch_hint(Some(FOOTER_PREFETCH))
                    .load_and_finish(ranges, *size)
                    .await
                {
                    Ok(metadata) => {
                        ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new())
                    }
                    Err(e) => Err(e),
                }
            }
        }
        .map_err(|e| catalog_error(&file.place(), format!("not a readable Parquet file: {e}")))?;
        let rows = metadata.metadata().file_metadata().num_rows();
        let read = (
            metadata.schema().clone(),
            u64::try_from(rows).unwrap_or(0),
            Arc::new(column_spreads(metadata.metadata())),
        );
        self.footers.insert(file.clone(), read.clone());
        Ok(read)
    }

    /// A view file's text.
    pub(super) async fn text(&self, file: &DataFile) -> Result<String, CatalogError> {
        let cannot_read = |e: String| catalog_error(&file.place(), format!("cannot read: {e}"));
        match file {
            DataFile::Local(path) => {
                std::fs::read_to_string(path).map_err(|e| cannot_read(e.to_string()))
            }
            DataFile::Object { key, size, .. } => {
                if *size > MAX_VIEW_BYTES {
                    return Err(cannot_read(format!(
                        "a view file holds one query, and this one is {size} bytes (the limit is {MAX_VIEW_BYTES})"
                    )));
                }
                let store = self.object_store(file)?;
                let bytes = async {
                    store
                        .get(&ObjectPath::from(key.as_str()))
                        .await?
                        .bytes()
                        .await
                }
                .await
                .map_err(|e| cannot_read(store_message(&e)))?;
                String::from_utf8(bytes.to_vec()).map_err(|_| cannot_read("not UTF-8 text".into()))
            }
        }
    }

    fn object_store(&self, file: &DataFile) -> Result<Arc<dyn ObjectStore>, CatalogError> {
        self.store
            .clone()
            .ok_or_else(|| catalog_error(&file.place(), "an object outside the catalog's store"))
    }
}

/// Byte ranges of one object, as the Parquet footer reader asks for them.
struct ObjectRanges {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
}

impl MetadataFetch for ObjectRanges {
    fn fetch(
        &mut self,
        range: std::ops::Range<u64>,
    ) -> futures::future::BoxFuture<'_, parquet::errors::Result<bytes::Bytes>> {
        Box::pin(async move {
            self.store
                .get_range(&self.path, range)
                .await
                .map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, UInt64Array};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::{EnabledStatistics, WriterProperties};
    use parquet::schema::types::ColumnPath;

    /// The spreads of 6 000 rows written in row groups of 500: `clustered` (4 rows a value,
    /// in order), `scattered` (1 500 values in no order, every 29th NULL), `short` (the same
    /// as a 32-bit integer), `sparse` (ids 1 000 003 apart), `unsigned` and `hidden` (no
    /// statistics).
    fn spreads() -> ColumnSpreads {
        let rows = 0..6_000_i64;
        let scattered = || {
            rows.clone()
                .map(|i| (i % 29 != 0).then_some(i * 7_919 % 1_500))
        };
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "clustered",
                Arc::new(Int64Array::from_iter_values(rows.clone().map(|i| i / 4))),
            ),
            ("scattered", Arc::new(Int64Array::from_iter(scattered()))),
            (
                "short",
                Arc::new(Int32Array::from_iter(
                    scattered().map(|k| k.map(|k| k as i32 - 700)),
                )),
            ),
            (
                "sparse",
                Arc::new(Int64Array::from_iter_values(
                    rows.clone().map(|i| i * 1_000_003),
                )),
            ),
            (
                "unsigned",
                Arc::new(UInt64Array::from_iter_values(
                    rows.clone().map(|i| i as u64),
                )),
            ),
            (
                "hidden",
                Arc::new(Int64Array::from_iter_values(rows.clone())),
            ),
        ];
        let batch = RecordBatch::try_from_iter(columns).expect("a batch");
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(500))
            .set_column_statistics_enabled(ColumnPath::from("hidden"), EnabledStatistics::None)
            .build();
        let mut bytes = Vec::new();
        let mut writer =
            ArrowWriter::try_new(&mut bytes, batch.schema(), Some(properties)).expect("a writer");
        writer.write(&batch).expect("written");
        writer.close().expect("closed");
        let metadata = ParquetMetaDataReader::new()
            .parse_and_finish(&bytes::Bytes::from(bytes))
            .expect("a footer");
        column_spreads(&metadata)
    }

    #[test]
    fn spreads_come_from_row_group_statistics() {
        let spreads = spreads();
        let names: Vec<&str> = spreads.keys().map(String::as_str).collect();
        assert_eq!(names, ["clustered", "scattered", "short", "sparse"]);
        let clustered = spreads["clustered"];
        assert_eq!(
            (clustered.rows, clustered.min, clustered.max),
            (6_000, 0, 1_499)
        );
        // Each row group of 500 rows spans 125 values.
        assert_eq!(clustered.new_in_row_group, 1_500);
        assert_eq!(clustered.new_value_share(), Some(0.25));
        // Every row group spans nearly all 1 500 values: each row may be new.
        for name in ["scattered", "short"] {
            assert_eq!(spreads[name].new_in_row_group, 6_000, "{name}");
            assert_eq!(spreads[name].new_value_share(), Some(1.0), "{name}");
        }
        assert_eq!((spreads["short"].min, spreads["short"].max), (-700, 799));
        // A span of 6 billion over 6 000 rows says nothing of how many values there are.
        assert_eq!(spreads["sparse"].new_value_share(), None);
    }

    #[test]
    fn a_tables_spreads_are_its_files_over_the_columns_all_know() {
        let spreads = spreads();
        let mut one = ColumnSpreads::new();
        one.insert("clustered".into(), spreads["clustered"]);
        one.insert("scattered".into(), spreads["scattered"]);
        let mut other = ColumnSpreads::new();
        other.insert("clustered".into(), spreads["scattered"]);
        let table = with_file_spreads(Some(with_file_spreads(None, &one)), &other);
        assert_eq!(table.keys().collect::<Vec<_>>(), ["clustered"]);
        let both = table["clustered"];
        assert_eq!((both.rows, both.new_in_row_group), (12_000, 7_500));
        assert_eq!((both.min, both.max), (0, 1_499));
        assert_eq!(both.new_value_share(), Some(0.625));
    }
}
