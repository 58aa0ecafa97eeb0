//! Profiling a table for the crew: non-null counts, distinct values and the most frequent
//! values of each column, from the first rows only (Parquet row groups are read only as
//! far as needed), never the whole table.

use crate::catalog::Table;
use crate::diagnostic::Diagnostic;
use crate::types::TypeFamily;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use std::collections::HashMap;

/// What the profile learned about one column from the first rows of its table.
#[derive(Debug, Clone, Default)]
pub(crate) struct ColumnProfile {
    /// Non-null values among the profiled rows.
    pub(crate) non_null: usize,
    /// Distinct non-null values, every one of the profiled rows (at most `profile_rows`).
    pub(crate) distinct: usize,
    /// Most frequent values (text columns), most frequent first, ties by value.
    pub(crate) top: Vec<(String, usize)>,
}

/// Profiles the first `rows` rows of `table` (a `LIMIT` scan), keeping each text or
/// integer column's `top` most frequent values.
pub(crate) async fn profile(
    ctx: &datafusion::prelude::SessionContext,
    table: &Table,
    rows: usize,
    top: usize,
) -> Result<Vec<ColumnProfile>, Diagnostic> {
    let batches = ctx
        .table(crate::run::sample::table_reference(&table.name))
        .await
        .and_then(|f| f.limit(0, Some(rows)))
        .map_err(crate::run::sample::runtime_error)?
        .collect()
        .await
        .map_err(crate::run::sample::runtime_error)?;
    let mut profiles = Vec::with_capacity(table.columns.len());
    for (i, column) in table.columns.iter().enumerate() {
        let family = TypeFamily::of(&column.data_type);
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut p = ColumnProfile::default();
        for batch in &batches {
            let array = batch.column(i);
            p.non_null += array.len() - array.null_count();
            if !matches!(family, TypeFamily::String | TypeFamily::Integer) {
                continue;
            }
            let Ok(text) = cast(array, &DataType::Utf8) else {
                continue;
            };
            let text = text.as_string::<i32>();
            for row in 0..text.len() {
                if text.is_null(row) {
                    continue;
                }
                let value = text.value(row);
                if let Some(n) = counts.get_mut(value) {
                    *n += 1;
                } else {
                    counts.insert(value.to_string(), 1);
                }
            }
        }
        p.distinct = counts.len();
        if matches!(family, TypeFamily::String | TypeFamily::Integer) {
            let mut most: Vec<(String, usize)> = counts.into_iter().collect();
            most.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            most.truncate(top);
            p.top = most;
        }
        profiles.push(p);
    }
    Ok(profiles)
}
