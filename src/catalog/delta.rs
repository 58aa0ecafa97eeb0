//! Delta Lake tables: the part of the transaction log featurecraft reads and writes.
//!
//! A Delta table is a folder (or prefix) of Parquet files and a log, `_delta_log/`, of
//! numbered JSON commits (`00000000000000000000.json`, …). A commit's actions say which
//! files it adds and removes; the table at version N is the files added and not removed by
//! the commits 0…N. A writer commits version N+1 by creating its file only if no other
//! writer did first (an atomic create: the store's `If-None-Match: *`, the file system's
//! no-clobber link), so a commit is all or nothing and readers see one version or the next.
//!
//! What is read: unpartitioned tables whose protocol needs no reader feature beyond
//! `timestampNtz` (reader versions 1 and 3), without checkpoints (a log of JSON commits
//! only). Anything else (deletion vectors, column mapping, partitions, a checkpoint) is
//! refused by name rather than read wrong. What is written: unpartitioned tables of
//! primitive columns, each materialization one commit that overwrites the table.

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The log folder's name.
pub const LOG: &str = "_delta_log";

/// Reader features featurecraft reads correctly.
const READER_FEATURES: [&str; 1] = ["timestampNtz"];

/// A Delta table at one version.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The version read.
    pub version: u64,
    /// Its data files (paths relative to the table, as the log writes them) and sizes.
    pub files: BTreeMap<String, u64>,
    /// Its schema, as the log states it.
    pub schema: Schema,
    /// The schema as the log wrote it (a commit that keeps it needs no new metadata).
    pub schema_string: String,
    /// The table's id (kept by an overwrite).
    pub id: String,
    /// Whether the protocol has timestamps without a time zone.
    pub timestamp_ntz: bool,
}

/// The version numbers of the commits under `table/_delta_log/`, in order (empty: not a
/// Delta table), or why the log cannot be read.
async fn commits(store: &Arc<dyn ObjectStore>, table: &ObjectPath) -> Result<Vec<u64>, String> {
    let log = table.clone().join(LOG);
    let mut listing = store.list(Some(&log));
    let mut versions = Vec::new();
    while let Some(object) = listing.next().await {
        let object = object.map_err(|e| crate::catalog::storage::store_message(&e))?;
        let Some(name) = object.location.filename() else {
            continue;
        };
        if name == "_last_checkpoint" || name.contains(".checkpoint") {
            return Err(
                "the log has a checkpoint, which featurecraft does not read yet: give a table whose log is JSON commits only".to_string(),
            );
        }
        if let Some(number) = name.strip_suffix(".json")
            && number.len() == 20
            && let Ok(version) = number.parse::<u64>()
        {
            versions.push(version);
        }
    }
    versions.sort_unstable();
    if versions.first().is_some_and(|first| *first != 0)
        || versions.windows(2).any(|pair| pair[1] != pair[0] + 1)
    {
        return Err("the log's commits are not numbered 0, 1, 2, … without a gap".to_string());
    }
    Ok(versions)
}

/// The table at `table` at its latest version; `None` when there is no log.
pub async fn snapshot(
    store: &Arc<dyn ObjectStore>,
    table: &ObjectPath,
) -> Result<Option<Snapshot>, String> {
    let versions = commits(store, table).await?;
    let Some(&latest) = versions.last() else {
        return Ok(None);
    };
    let mut files = BTreeMap::new();
    let mut metadata: Option<Value> = None;
    let mut timestamp_ntz = false;
    for version in versions {
        for action in read_commit(store, table, version).await? {
            if let Some(add) = action.get("add") {
                let (path, size) = file_of(add, version)?;
                files.insert(path, size);
            } else if let Some(remove) = action.get("remove") {
                let (path, _) = file_of(remove, version)?;
                files.remove(&path);
            } else if let Some(meta) = action.get("metaData") {
                metadata = Some(meta.clone());
            } else if let Some(protocol) = action.get("protocol") {
                timestamp_ntz = check_protocol(protocol)?;
            }
        }
    }
    let metadata = metadata.ok_or("the log has no metaData action")?;
    if metadata["partitionColumns"]
        .as_array()
        .is_some_and(|columns| !columns.is_empty())
    {
        return Err("the table is partitioned, which featurecraft does not read yet".to_string());
    }
    let schema_string = metadata["schemaString"]
        .as_str()
        .ok_or("the table's metaData has no schemaString")?
        .to_string();
    Ok(Some(Snapshot {
        version: latest,
        files,
        schema: arrow_schema(&schema_string)?,
        schema_string,
        id: metadata["id"].as_str().unwrap_or_default().to_string(),
        timestamp_ntz,
    }))
}

/// The actions of commit `version`, one JSON object per line.
async fn read_commit(
    store: &Arc<dyn ObjectStore>,
    table: &ObjectPath,
    version: u64,
) -> Result<Vec<Value>, String> {
    let path = commit_path(table, version);
    let bytes = async { store.get(&path).await?.bytes().await }
        .await
        .map_err(|e| {
            format!(
                "commit {version}: {}",
                crate::catalog::storage::store_message(&e)
            )
        })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| format!("commit {version} is not UTF-8"))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            serde_json::from_str(line)
                .map_err(|e| format!("commit {version} has a line that is not JSON: {e}"))
        })
        .collect()
}

/// The folders (first path parts) of every file any commit adds or removes: what a version
/// of the table may read, so what a clean-up keeps.
pub async fn referenced_folders(
    store: &Arc<dyn ObjectStore>,
    table: &ObjectPath,
) -> Result<BTreeSet<String>, String> {
    let mut folders = BTreeSet::new();
    for version in commits(store, table).await? {
        for action in read_commit(store, table, version).await? {
            for kind in ["add", "remove"] {
                if let Some(path) = action[kind]["path"].as_str()
                    && let Some((folder, _)) = percent_decode(path).split_once('/')
                {
                    folders.insert(folder.to_string());
                }
            }
        }
    }
    Ok(folders)
}

/// A file action's path (percent-decoded, as the protocol writes paths as URIs) and size.
fn file_of(action: &Value, version: u64) -> Result<(String, u64), String> {
    let path = action["path"]
        .as_str()
        .ok_or_else(|| format!("commit {version}: a file action without a path"))?;
    if action.get("deletionVector").is_some_and(|dv| !dv.is_null()) {
        return Err(
            "the table has deletion vectors, which featurecraft does not read yet".to_string(),
        );
    }
    if path.contains("://") || path.starts_with('/') {
        return Err(format!(
            "commit {version}: the file `{path}` is outside the table (an absolute path)"
        ));
    }
    let decoded = percent_decode(path);
    if decoded
        .split('/')
        .any(|part| part == ".." || part.is_empty())
    {
        return Err(format!(
            "commit {version}: the file path `{path}` is not under the table"
        ));
    }
    Ok((decoded, action["size"].as_u64().unwrap_or(0)))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether featurecraft reads a table of this protocol; `Ok(true)` when it has timestamps
/// without a time zone.
fn check_protocol(protocol: &Value) -> Result<bool, String> {
    let reader = protocol["minReaderVersion"].as_u64().unwrap_or(1);
    let features: Vec<&str> = protocol["readerFeatures"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    match reader {
        1 => Ok(false),
        3 => match features.iter().find(|f| !READER_FEATURES.contains(f)) {
            Some(feature) => Err(format!(
                "the table needs the reader feature `{feature}`, which featurecraft does not read yet"
            )),
            None => Ok(features.contains(&"timestampNtz")),
        },
        other => Err(format!(
            "the table needs Delta reader version {other}, which featurecraft does not read (it reads 1, and 3 with timestampNtz)"
        )),
    }
}

/// The path of commit `version` in `table`'s log.
pub fn commit_path(table: &ObjectPath, version: u64) -> ObjectPath {
    table.clone().join(LOG).join(format!("{version:020}.json"))
}

/// Arrow's schema for a Delta schema string (primitive columns).
pub fn arrow_schema(schema_string: &str) -> Result<Schema, String> {
    let schema: Value = serde_json::from_str(schema_string)
        .map_err(|e| format!("the schemaString is not JSON: {e}"))?;
    let fields = schema["fields"]
        .as_array()
        .ok_or("the schemaString has no fields")?;
    let mut arrow = Vec::with_capacity(fields.len());
    for field in fields {
        let name = field["name"].as_str().ok_or("a column without a name")?;
        let data_type = match &field["type"] {
            Value::String(name) => primitive(name),
            _ => None,
        }
        .ok_or_else(|| {
            format!(
                "column `{name}` has the type {}, which featurecraft does not read yet",
                field["type"]
            )
        })?;
        arrow.push(Field::new(
            name,
            data_type,
            field["nullable"].as_bool().unwrap_or(true),
        ));
    }
    Ok(Schema::new(arrow))
}

fn primitive(name: &str) -> Option<DataType> {
    Some(match name {
        "string" => DataType::Utf8,
        "long" => DataType::Int64,
        "integer" => DataType::Int32,
        "short" => DataType::Int16,
        "byte" => DataType::Int8,
        "float" => DataType::Float32,
        "double" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "binary" => DataType::Binary,
        "date" => DataType::Date32,
        "timestamp" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        "timestamp_ntz" => DataType::Timestamp(TimeUnit::Microsecond, None),
        decimal if decimal.starts_with("decimal(") => {
            let inner = decimal.strip_prefix("decimal(")?.strip_suffix(')')?;
            let (precision, scale) = inner.split_once(',')?;
            DataType::Decimal128(precision.trim().parse().ok()?, scale.trim().parse().ok()?)
        }
        _ => return None,
    })
}

/// The Delta type of an Arrow column, as a written table states it.
fn delta_type(data_type: &DataType) -> Option<String> {
    Some(
        match data_type {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string",
            DataType::Int64 | DataType::UInt32 => "long",
            DataType::Int32 | DataType::UInt16 => "integer",
            DataType::Int16 | DataType::UInt8 => "short",
            DataType::Int8 => "byte",
            DataType::Float32 => "float",
            DataType::Float64 => "double",
            DataType::Boolean => "boolean",
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary",
            DataType::Date32 | DataType::Date64 => "date",
            DataType::Timestamp(_, Some(_)) => "timestamp",
            DataType::Timestamp(_, None) => "timestamp_ntz",
            DataType::Decimal128(precision, scale) => {
                return Some(format!("decimal({precision},{scale})"));
            }
            _ => return None,
        }
        .to_string(),
    )
}

/// The Delta schema string of an Arrow schema, or the column Delta has no type for.
pub fn schema_string(schema: &Schema) -> Result<String, String> {
    let mut fields = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let data_type = delta_type(field.data_type()).ok_or_else(|| {
            format!(
                "column `{}` has the type {}, which a Delta table cannot hold as it is",
                field.name(),
                field.data_type()
            )
        })?;
        fields.push(json!({
            "name": field.name(),
            "type": data_type,
            "nullable": field.is_nullable(),
            "metadata": {},
        }));
    }
    Ok(json!({"type": "struct", "fields": fields}).to_string())
}

/// What one overwrite commits.
#[derive(Debug, Clone)]
pub struct Overwrite {
    /// The table's schema as Delta writes it.
    pub schema_string: String,
    /// Whether a column is a timestamp without a time zone.
    pub timestamp_ntz: bool,
    /// The new files (relative paths) and their sizes.
    pub added: Vec<(String, u64)>,
    /// Rows written, for the commit's metrics.
    pub rows: u64,
}

/// Commits `overwrite` as the version after `before` (or version 0): every file of
/// `before` removed, the new ones added, the metadata and protocol when they change.
/// `Err` names what went wrong; another writer's commit of the same version first is
/// `Conflict`.
pub async fn commit_overwrite(
    store: &Arc<dyn ObjectStore>,
    table: &ObjectPath,
    before: Option<&Snapshot>,
    overwrite: &Overwrite,
) -> Result<u64, CommitError> {
    let now = chrono::Utc::now().timestamp_millis();
    let version = before.map_or(0, |b| b.version + 1);
    let mut lines = vec![json!({"commitInfo": {
        "timestamp": now,
        "operation": "WRITE",
        "operationParameters": {"mode": "Overwrite"},
        "engineInfo": format!("featurecraft-{}", env!("CARGO_PKG_VERSION")),
        "operationMetrics": {
            "num_added_files": overwrite.added.len(),
            "num_removed_files": before.map_or(0, |b| b.files.len()),
            "num_added_rows": overwrite.rows,
        },
    }})];
    if before.is_none_or(|b| overwrite.timestamp_ntz && !b.timestamp_ntz) {
        lines.push(if overwrite.timestamp_ntz {
            json!({"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
                "readerFeatures": ["timestampNtz"], "writerFeatures": ["timestampNtz"]}})
        } else {
            json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}})
        });
    }
    if before.is_none_or(|b| b.schema_string != overwrite.schema_string) {
        let id = before.map_or_else(|| uuid::Uuid::new_v4().to_string(), |b| b.id.clone());
        lines.push(json!({"metaData": {
            "id": id,
            "format": {"provider": "parquet", "options": {}},
            "schemaString": overwrite.schema_string,
            "partitionColumns": [],
            "configuration": {},
            "createdTime": now,
        }}));
    }
    if let Some(before) = before {
        for (path, size) in &before.files {
            lines.push(json!({"remove": {
                "path": path,
                "deletionTimestamp": now,
                "dataChange": true,
                "extendedFileMetadata": true,
                "partitionValues": {},
                "size": size,
            }}));
        }
    }
    for (path, size) in &overwrite.added {
        lines.push(json!({"add": {
            "path": path,
            "partitionValues": {},
            "size": size,
            "modificationTime": now,
            "dataChange": true,
        }}));
    }
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let path = commit_path(table, version);
    let created = store
        .put_opts(
            &path,
            PutPayload::from(text.into_bytes()),
            PutOptions::from(PutMode::Create),
        )
        .await;
    match created {
        Ok(_) => Ok(version),
        Err(object_store::Error::AlreadyExists { .. }) => Err(CommitError::Conflict(version)),
        Err(e) => Err(CommitError::Store(crate::catalog::storage::store_message(
            &e,
        ))),
    }
}

/// Why a commit did not happen.
#[derive(Debug, Clone, PartialEq)]
pub enum CommitError {
    /// Another writer committed this version first.
    Conflict(u64),
    /// The store refused or failed the write.
    Store(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_go_to_delta_and_back() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("at", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("d", DataType::Date32, true),
            Field::new("m", DataType::Decimal128(12, 2), true),
        ]);
        let text = schema_string(&schema).unwrap();
        assert_eq!(arrow_schema(&text).unwrap(), schema);
        let refused = schema_string(&Schema::new(vec![Field::new(
            "l",
            DataType::List(Arc::new(Field::new("item", DataType::Int64, true))),
            true,
        )]))
        .unwrap_err();
        assert!(refused.contains("`l`"), "{refused}");
    }

    #[test]
    fn protocols_past_what_is_read_are_refused_by_name() {
        assert_eq!(check_protocol(&json!({"minReaderVersion": 1})), Ok(false));
        assert_eq!(
            check_protocol(&json!({"minReaderVersion": 3, "readerFeatures": ["timestampNtz"]})),
            Ok(true)
        );
        let refused =
            check_protocol(&json!({"minReaderVersion": 3, "readerFeatures": ["deletionVectors"]}))
                .unwrap_err();
        assert!(refused.contains("deletionVectors"), "{refused}");
        assert!(check_protocol(&json!({"minReaderVersion": 2})).is_err());
        assert_eq!(percent_decode("a%20b/c.parquet"), "a b/c.parquet");
    }

    /// A log is data from outside: a file action may not name anything outside its table.
    #[test]
    fn file_actions_outside_the_table_are_refused() {
        let file = |path: &str| file_of(&json!({"path": path, "size": 7}), 3);
        assert_eq!(
            file("run-1/part%200.parquet"),
            Ok(("run-1/part 0.parquet".to_string(), 7))
        );
        for hostile in [
            "/etc/passwd",
            "s3://other-bucket/secret.parquet",
            "file:///etc/passwd",
            "../other_table/part-0.parquet",
            "run-1/../../escape.parquet",
            "run-1/%2E%2E/%2E%2E/escape.parquet",
            "%2Fetc%2Fpasswd",
            "run-1//part-0.parquet",
        ] {
            let refused = file(hostile).unwrap_err();
            assert!(
                refused.contains("commit 3") && refused.contains(hostile),
                "{hostile}: {refused}"
            );
        }
        let without = file_of(&json!({"size": 7}), 3).unwrap_err();
        assert!(without.contains("without a path"), "{without}");
    }
}
