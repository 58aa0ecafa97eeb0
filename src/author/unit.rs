//! A recipe's unit tests (`NAME.test.json` beside the recipe), as dbt's and SQLMesh's: given
//! rows per table, expected output rows for chosen grain keys. The recipe runs in DataFusion
//! over exactly the given rows, held in memory (a table without given rows is empty; a
//! column left out is NULL; types come from the catalog).
//!
//! ```json
//! {"tests": [{
//!   "name": "counts only purchases",
//!   "given": {
//!     "customers": [{"customer_id": 1, "plan": "basic"}],
//!     "events": [{"customer_id": 1, "event_type": "purchase", "amount": 10.5}],
//!     "orders": {"file": "orders_small.csv"}
//!   },
//!   "expected": [{"customer_id": 1, "n_purchases": 1}]
//! }]}
//! ```
//!
//! An expected row names every grain column (to find its row) and the columns to check;
//! columns it leaves out are not checked. Numbers match within a relative 1e-9, timestamps
//! are written `2025-01-31T12:00:00` (or with a space), dates `2025-01-31`.

use crate::catalog::{Catalog, nullable};
use crate::compile::dialect::Dialect;
use crate::compile::render::build_query;
use crate::compile::{CompileOptions, compile_recipe};
use crate::contract::recipe::FeatureRecipe;
use crate::diagnostic::{did_you_mean, suggestions};
use crate::run::sample::{ValidateOptions, session};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One unit test of a recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitTest {
    /// What it checks, in the author's words.
    pub name: String,
    /// Rows per table, by table name.
    pub given: BTreeMap<String, Given>,
    /// Expected output rows: the grain columns and the columns to check.
    pub expected: Vec<Map<String, Value>>,
}

/// A table's given rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Given {
    /// Written in the test file, one object per row.
    Rows(Vec<Map<String, Value>>),
    /// A CSV (with a header) or Parquet file, relative to the test file.
    File(PathBuf),
}

/// One expected value that the output does not have.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// The grain key of the row, `customer_id=1`.
    pub key: String,
    /// The column, or `None` when the output has no row for the key.
    pub column: Option<String>,
    /// The expected value, as JSON.
    pub expected: Value,
    /// The output's value, as JSON.
    pub actual: Value,
}

/// The unit tests of a test file: `{"tests": [...]}`, a list, or one test object.
pub fn parse_tests(text: &str) -> Result<Vec<UnitTest>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let tests = match value {
        Value::Object(mut object) if object.contains_key("tests") => {
            if let Some(extra) = object.keys().find(|k| *k != "tests") {
                return Err(format!("unknown field `{extra}` (a test file has `tests`)"));
            }
            match object.remove("tests") {
                Some(Value::Array(tests)) => tests,
                _ => return Err("`tests` must be a list of tests".into()),
            }
        }
        Value::Array(tests) => tests,
        single @ Value::Object(_) => vec![single],
        _ => return Err("a test file holds a test object or a list of them".into()),
    };
    tests
        .into_iter()
        .enumerate()
        .map(|(i, test)| parse_test(i, test).map_err(|e| format!("tests[{i}]: {e}")))
        .collect()
}

fn parse_test(index: usize, test: Value) -> Result<UnitTest, String> {
    let Value::Object(mut object) = test else {
        return Err("a test is an object with `given` and `expected`".into());
    };
    for key in object.keys() {
        if !["name", "given", "expected"].contains(&key.as_str()) {
            let hint = did_you_mean(&suggestions(key, ["name", "given", "expected"]))
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return Err(format!("unknown field `{key}`{hint}"));
        }
    }
    let name = match object.remove("name") {
        Some(Value::String(name)) => name,
        None => format!("test {}", index + 1),
        Some(_) => return Err("`name` must be a string".into()),
    };
    let mut given = BTreeMap::new();
    match object.remove("given") {
        Some(Value::Object(tables)) => {
            for (table, rows) in tables {
                let rows = match rows {
                    Value::Array(rows) => Given::Rows(objects(rows, &format!("given.{table}"))?),
                    Value::Object(file) => match (file.get("file"), file.len()) {
                        (Some(Value::String(path)), 1) => Given::File(PathBuf::from(path)),
                        _ => {
                            return Err(format!(
                                "given.{table}: a list of rows, or {{\"file\": \"rows.csv\"}}"
                            ));
                        }
                    },
                    _ => {
                        return Err(format!(
                            "given.{table}: a list of rows, or {{\"file\": \"rows.csv\"}}"
                        ));
                    }
                };
                given.insert(table, rows);
            }
        }
        None => {}
        Some(_) => return Err("`given` maps table names to rows".into()),
    }
    let expected = match object.remove("expected") {
        Some(Value::Array(rows)) if !rows.is_empty() => objects(rows, "expected")?,
        _ => return Err("`expected` must be a non-empty list of rows".into()),
    };
    Ok(UnitTest {
        name,
        given,
        expected,
    })
}

fn objects(rows: Vec<Value>, at: &str) -> Result<Vec<Map<String, Value>>, String> {
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| match row {
            Value::Object(row) => Ok(row),
            _ => Err(format!("{at}[{i}]: a row is an object of column → value")),
        })
        .collect()
}

/// Runs one unit test: the recipe over exactly the given rows, then each expected row
/// against the output. `Err` says why the test could not run (a given table or column
/// the catalog lacks, a recipe that does not compile over them).
pub async fn run(
    recipe: &FeatureRecipe,
    catalog: &Catalog,
    test: &UnitTest,
    beside: &Path,
) -> Result<Vec<Mismatch>, String> {
    let mut rows = BTreeMap::new();
    for (name, given) in &test.given {
        let Some(table) = catalog.table(name) else {
            let names: Vec<&str> = catalog.tables().map(|t| t.name.as_str()).collect();
            let hint = did_you_mean(&suggestions(name, names))
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            return Err(format!(
                "given rows for `{name}`, which the catalog does not have{hint}"
            ));
        };
        let schema = nullable(&table.arrow_schema());
        let batch = match given {
            Given::Rows(given) => rows_batch(&table.name, &schema, given)?,
            Given::File(file) => file_batch(&table.name, &schema, &beside.join(file)).await?,
        };
        rows.insert(table.name.clone(), batch);
    }
    let catalog = catalog.with_rows(&rows);
    let compiled = compile_recipe(
        recipe,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let failed = compiled.has_errors();
    let Some(plan) = compiled.plan.as_ref().filter(|_| !failed) else {
        return Err(format!(
            "the recipe does not compile over the given tables:\n{}",
            compiled.report("recipe")
        ));
    };
    let options = ValidateOptions {
        memory_limit: 512 << 20,
        target_partitions: 1,
        ..ValidateOptions::default()
    };
    let ctx = session(&catalog, &options)
        .await
        .map_err(|d| d.message.clone())?;
    let query = build_query(plan, &Dialect::DataFusion.capabilities(), None)
        .map_err(|d| d.first().map(|d| d.message.clone()).unwrap_or_default())?;
    let batches = async {
        let plan = crate::catalog::plan_query(&ctx.state(), query).await?;
        ctx.execute_logical_plan(plan).await?.collect().await
    }
    .await
    .map_err(|e| format!("the recipe failed over the given rows: {e}"))?;
    let actual = json_rows(&batches)?;
    compare(&recipe.entity_grain, &test.expected, &actual)
}

/// Inline rows as a batch of the table's (nullable) schema; an unknown column is refused.
fn rows_batch(
    table: &str,
    schema: &SchemaRef,
    rows: &[Map<String, Value>],
) -> Result<RecordBatch, String> {
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for (i, row) in rows.iter().enumerate() {
        for key in row.keys() {
            if !columns.iter().any(|c| c.eq_ignore_ascii_case(key)) {
                let hint = did_you_mean(&suggestions(key, columns.iter().copied()))
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                return Err(format!(
                    "given.{table}[{i}]: `{key}` is not a column of {table}{hint}"
                ));
            }
        }
    }
    // Column names as the catalog spells them, so `Amount` finds `amount`.
    let rows: Vec<Map<String, Value>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|(key, value)| {
                    let name = columns
                        .iter()
                        .find(|c| c.eq_ignore_ascii_case(key))
                        .map_or(key.clone(), |c| c.to_string());
                    (name, value.clone())
                })
                .collect()
        })
        .collect();
    let mut decoder = arrow::json::ReaderBuilder::new(schema.clone())
        .build_decoder()
        .map_err(|e| format!("given.{table}: {e}"))?;
    decoder
        .serialize(&rows)
        .map_err(|e| format!("given.{table}: {e}"))?;
    match decoder.flush() {
        Ok(Some(batch)) => Ok(batch),
        Ok(None) => Ok(RecordBatch::new_empty(schema.clone())),
        Err(e) => Err(format!("given.{table}: {e}")),
    }
}

/// A CSV or Parquet file's rows as a batch of the table's schema: columns matched by name
/// and cast to the catalog's types, columns the file lacks NULL, an unknown column refused.
async fn file_batch(table: &str, schema: &SchemaRef, path: &Path) -> Result<RecordBatch, String> {
    use datafusion::prelude::{CsvReadOptions, ParquetReadOptions, SessionContext, cast, col, lit};
    let at = format!("given.{table} ({})", path.display());
    if !path.is_file() {
        return Err(format!("{at}: no such file"));
    }
    let ctx = SessionContext::new();
    let location = path.display().to_string();
    let frame = match path.extension().and_then(|e| e.to_str()) {
        Some("csv") => ctx.read_csv(location, CsvReadOptions::new()).await,
        Some("parquet") => {
            ctx.read_parquet(location, ParquetReadOptions::default())
                .await
        }
        _ => {
            return Err(format!(
                "{at}: a given file is .csv (with a header) or .parquet"
            ));
        }
    }
    .map_err(|e| format!("{at}: {e}"))?;
    let present: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let columns: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    if let Some(unknown) = present
        .iter()
        .find(|p| !columns.iter().any(|c| c.eq_ignore_ascii_case(p)))
    {
        let hint = did_you_mean(&suggestions(unknown, columns.iter().copied()))
            .map(|h| format!(" ({h})"))
            .unwrap_or_default();
        return Err(format!(
            "{at}: `{unknown}` is not a column of {table}{hint}"
        ));
    }
    let mut projection = Vec::new();
    for field in schema.fields() {
        let expr = match present
            .iter()
            .find(|p| p.eq_ignore_ascii_case(field.name()))
        {
            Some(name) => cast(
                col(format!("\"{}\"", name.replace('"', "\"\""))),
                field.data_type().clone(),
            ),
            None => cast(
                lit(datafusion::scalar::ScalarValue::Null),
                field.data_type().clone(),
            ),
        };
        projection.push(expr.alias(field.name()));
    }
    let batches = frame
        .select(projection)
        .map_err(|e| format!("{at}: {e}"))?
        .collect()
        .await
        .map_err(|e| format!("{at}: {e}"))?;
    // Rebuilt in the table's schema: the casts give its types, the schema its names.
    let batches = batches
        .iter()
        .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{at}: {e}"))?;
    arrow::compute::concat_batches(schema, &batches).map_err(|e| format!("{at}: {e}"))
}

/// The output rows as JSON objects (NULL as `null`).
pub(crate) fn json_rows(batches: &[RecordBatch]) -> Result<Vec<Map<String, Value>>, String> {
    let mut buffer = Vec::new();
    {
        let mut writer = arrow::json::WriterBuilder::new()
            .with_explicit_nulls(true)
            .build::<_, arrow::json::writer::JsonArray>(&mut buffer);
        for batch in batches {
            writer.write(batch).map_err(|e| e.to_string())?;
        }
        writer.finish().map_err(|e| e.to_string())?;
    }
    if buffer.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buffer).map_err(|e| e.to_string())
}

/// Each expected row against the output row with its grain key.
fn compare(
    grain: &[String],
    expected: &[Map<String, Value>],
    actual: &[Map<String, Value>],
) -> Result<Vec<Mismatch>, String> {
    let output_columns: Vec<&str> = actual
        .first()
        .map(|row| row.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let mut mismatches = Vec::new();
    for (i, want) in expected.iter().enumerate() {
        let mut key = Vec::new();
        for column in grain {
            match lookup(want, column) {
                Some(value) => key.push((column.as_str(), value)),
                None => {
                    return Err(format!(
                        "expected[{i}] lacks the grain column `{column}`: an expected row names its grain key"
                    ));
                }
            }
        }
        let key_text = key
            .iter()
            .map(|(c, v)| format!("{c}={}", shown(v)))
            .collect::<Vec<_>>()
            .join(", ");
        let Some(row) = actual.iter().find(|row| {
            key.iter()
                .all(|(c, v)| lookup(row, c).is_some_and(|a| same(v, a)))
        }) else {
            mismatches.push(Mismatch {
                key: key_text,
                column: None,
                expected: Value::Object(want.clone()),
                actual: Value::Null,
            });
            continue;
        };
        for (column, value) in want {
            if grain.iter().any(|g| g.eq_ignore_ascii_case(column)) {
                continue;
            }
            let Some(got) = lookup(row, column) else {
                let hint = did_you_mean(&suggestions(column, output_columns.iter().copied()))
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                return Err(format!(
                    "expected[{i}]: the output has no column `{column}`{hint}"
                ));
            };
            if !same(value, got) {
                mismatches.push(Mismatch {
                    key: key_text.clone(),
                    column: Some(column.clone()),
                    expected: value.clone(),
                    actual: got.clone(),
                });
            }
        }
    }
    Ok(mismatches)
}

fn lookup<'a>(row: &'a Map<String, Value>, column: &str) -> Option<&'a Value> {
    row.get(column).or_else(|| {
        row.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(column))
            .map(|(_, v)| v)
    })
}

/// Equal as values: numbers within a relative 1e-9, a timestamp with `T` or a space.
pub(crate) fn same(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(a), Value::Number(b)) => match (a.as_f64(), b.as_f64()) {
            (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
            _ => a == b,
        },
        (Value::String(a), Value::String(b)) => a == b || a.replacen(' ', "T", 1) == *b,
        // A number written as text by the output (decimals) or the other way round.
        (Value::Number(a), Value::String(b)) | (Value::String(b), Value::Number(a)) => b
            .parse::<f64>()
            .ok()
            .zip(a.as_f64())
            .is_some_and(|(b, a)| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)),
        (a, b) => a == b,
    }
}

/// A value as the report shows it.
pub fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}
