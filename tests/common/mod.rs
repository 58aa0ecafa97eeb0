//! Helpers shared by the integration tests.
#![allow(dead_code)]

use featurecraft::Catalog;
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The bundled retail catalog (Parquet files and views).
pub async fn retail() -> Catalog {
    Catalog::load(&fixtures().join("retail"))
        .await
        .expect("the bundled catalog loads")
}

/// The same catalog described as JSON (schemas only).
pub fn retail_json() -> Catalog {
    let text = std::fs::read_to_string(fixtures().join("retail_catalog.json"))
        .expect("JSON catalog exists");
    Catalog::from_json(&text).expect("JSON catalog parses")
}

/// `(file stem, text)` of every recipe in `fixtures/recipes/<kind>`, sorted by name.
pub fn recipes(kind: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(fixtures().join("recipes").join(kind))
        .expect("recipe folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let stem = p.file_stem().unwrap().to_string_lossy().into_owned();
            (stem, std::fs::read_to_string(&p).expect("recipe text"))
        })
        .collect();
    out.sort();
    out
}

/// Copies a directory tree (a catalog, say) into `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target)
        } else {
            std::fs::copy(&path, &target).map(|_| ()).unwrap()
        }
    }
}

/// Writes `tables` as Parquet files (`NAME.parquet`) into a directory catalog.
pub fn tiny_catalog(
    dir: &Path,
    tables: &[(&str, Vec<(&str, datafusion::arrow::array::ArrayRef)>)],
) {
    for (name, columns) in tables {
        let batch = datafusion::arrow::array::RecordBatch::try_from_iter(columns.clone()).unwrap();
        let file = std::fs::File::create(dir.join(format!("{name}.parquet"))).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
}

/// An Int64 column.
pub fn ints(values: impl IntoIterator<Item = Option<i64>>) -> datafusion::arrow::array::ArrayRef {
    std::sync::Arc::new(datafusion::arrow::array::Int64Array::from_iter(values))
}
