//! Helpers shared by the integration tests.
#![allow(
    dead_code,
    reason = "each test crate uses its own part of these helpers"
)]

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
pub fn tiny_catalog(dir: &Path, tables: &[(&str, Vec<(&str, arrow::array::ArrayRef)>)]) {
    for (name, columns) in tables {
        let batch = arrow::array::RecordBatch::try_from_iter(columns.clone()).unwrap();
        let file = std::fs::File::create(dir.join(format!("{name}.parquet"))).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();
    }
}

/// A timestamp column (microseconds since 1970, no time zone), no NULLs.
pub fn micros(values: impl IntoIterator<Item = i64>) -> arrow::array::ArrayRef {
    std::sync::Arc::new(arrow::array::TimestampMicrosecondArray::from_iter_values(
        values,
    ))
}

/// An Int64 column.
pub fn ints(values: impl IntoIterator<Item = Option<i64>>) -> arrow::array::ArrayRef {
    std::sync::Arc::new(arrow::array::Int64Array::from_iter(values))
}

/// Every row of a recipe's table in DataFusion (the whole spine sampled), as text keyed by
/// its first `key_columns` columns joined with `|`; NULL prints as `NULL`.
pub async fn table_by_key(
    catalog: &Catalog,
    text: &str,
    key_columns: usize,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    let compiled = featurecraft::compile(
        text,
        catalog,
        &featurecraft::CompileOptions::for_dialect(featurecraft::Dialect::DataFusion),
    );
    let plan = compiled
        .plan
        .unwrap_or_else(|| panic!("compiles: {:#?}", compiled.diagnostics));
    let options = featurecraft::run::validate::ValidateOptions {
        sample_size: 1_000_000,
        ..Default::default()
    };
    let rows = featurecraft::run::validate::sample(&plan, catalog, &options)
        .await
        .unwrap()
        .rows;
    rows_by_key(&rows, key_columns)
}

/// Rows as text keyed by their first `key_columns` columns joined with `|`; NULL prints as
/// `NULL`. A key seen twice fails the test.
pub fn rows_by_key(
    rows: &arrow::array::RecordBatch,
    key_columns: usize,
) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let format = FormatOptions::default().with_null("NULL");
    let formatters: Vec<ArrayFormatter> = rows
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &format).unwrap())
        .collect();
    let names: Vec<String> = rows
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let mut out = std::collections::BTreeMap::new();
    for row in 0..rows.num_rows() {
        let values = names
            .iter()
            .zip(&formatters)
            .map(|(n, f)| (n.clone(), f.value(row).to_string()))
            .collect();
        let key = formatters[..key_columns]
            .iter()
            .map(|f| f.value(row).to_string())
            .collect::<Vec<_>>()
            .join("|");
        assert!(out.insert(key.clone(), values).is_none(), "{key} twice");
    }
    out
}

/// Checks `expected` (`column=value` pairs, separated by spaces) against the row of `key`
/// in a table of [`table_by_key`].
pub fn expect_row(
    table: &std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    key: &str,
    expected: &str,
) {
    let row = table
        .get(key)
        .unwrap_or_else(|| panic!("no row {key}: {:?}", table.keys()));
    for pair in expected.split_whitespace() {
        let (name, value) = pair.split_once('=').unwrap();
        assert_eq!(row[name], value, "{key}: {name} in {row:?}");
    }
}

/// The dialect a bad recipe fixture is compiled in: the generic one, except for those about
/// one dialect's limits, which name it (`E040_bigquery_…`, `E041_postgres_…`).
pub fn bad_fixture_dialect(stem: &str) -> featurecraft::Dialect {
    featurecraft::Dialect::ALL
        .into_iter()
        .find(|d| *d != featurecraft::Dialect::Generic && stem.contains(d.name()))
        .unwrap_or(featurecraft::Dialect::Generic)
}

/// The rows of a materialized table folder as sorted lines of text.
pub async fn table_rows(folder: &Path) -> Vec<Vec<String>> {
    let ctx = datafusion::prelude::SessionContext::new();
    let frame = ctx
        .read_parquet(
            format!("{}/", folder.display()),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await
        .unwrap();
    sorted_rows(&frame.collect().await.unwrap())
}

/// Rows as text (NULL as `NULL`), sorted.
pub fn sorted_rows(batches: &[arrow::array::RecordBatch]) -> Vec<Vec<String>> {
    use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
    let format = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &format).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            rows.push(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string())
                    .collect(),
            );
        }
    }
    rows.sort();
    rows
}

/// Equal values, or two floats within 1e-9 (relative): a sum's last bits may depend on the
/// order its partial sums meet.
pub fn same_value(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

pub fn good_recipes() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixtures().join("recipes/good"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
}
