//! Materialization: run an approved recipe's full query in DataFusion and write it as Parquet.
//!
//! The table lands in `WAREHOUSE/DOMAIN/TABLE/`. It is written into a temporary folder
//! beside it and renamed into place only when complete, so a failed run leaves nothing
//! half-written, and a replaced table is swapped, not overwritten in place.

use crate::analyze::{Plan, is_portable};
use crate::catalog::{Catalog, read_only};
use crate::diagnostic::{Code, Diagnostic};
use crate::dialect::Dialect;
use crate::render::build_query;
use crate::validate::{ValidateOptions, runtime_error, session};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::dataframe::DataFrameWriteOptions;
use std::path::{Path, PathBuf};

/// Where a materialized table landed and how many rows it has.
#[derive(Debug, Clone, PartialEq)]
pub struct Materialized {
    pub path: PathBuf,
    pub rows: u64,
}

/// Runs the plan's full query and writes `warehouse/domain/table/` atomically.
pub async fn materialize(
    plan: &Plan,
    catalog: &Catalog,
    warehouse: &Path,
    domain: &str,
    table: &str,
    options: &ValidateOptions,
) -> Result<Materialized, Diagnostic> {
    for (what, name) in [("domain", domain), ("target table", table)] {
        if !is_portable(name) {
            return Err(Diagnostic::new(
                Code::E003,
                format!(
                    "{what} `{name}` is not a portable name (letters, digits and `_`): it cannot name a folder"
                ),
            ));
        }
    }
    let io = |what: &str, path: &Path, e: std::io::Error| {
        Diagnostic::new(Code::E052, format!("cannot {what} {}: {e}", path.display()))
    };
    let parent = warehouse.join(domain);
    std::fs::create_dir_all(&parent).map_err(|e| io("create", &parent, e))?;
    let target = parent.join(table);
    let staging = parent.join(format!(".{table}.writing-{}", uuid::Uuid::new_v4()));

    let ctx = session(catalog, options).await?;
    let query = build_query(plan, &Dialect::DataFusion.capabilities(), None)
        .map_err(|mut e| e.remove(0))?;
    let written = async {
        let frame = ctx
            .sql_with_options(&query.to_string(), read_only())
            .await?;
        let staging_url = format!("{}/", staging.display());
        frame
            .write_parquet(&staging_url, DataFrameWriteOptions::new(), None)
            .await
    }
    .await;
    let counts = match written {
        Ok(counts) => counts,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(runtime_error(e));
        }
    };
    let rows = counts
        .iter()
        .filter_map(|b| {
            b.column(0)
                .as_primitive_opt::<UInt64Type>()
                .map(|a| a.values().iter().sum::<u64>())
        })
        .sum();
    if !staging.exists() {
        std::fs::create_dir_all(&staging).map_err(|e| io("create", &staging, e))?;
    }

    // Swap into place: the old table (if any) moves aside first and goes only once the new one is there.
    let previous = parent.join(format!(".{table}.replaced-{}", uuid::Uuid::new_v4()));
    let had_previous = target.exists();
    if had_previous {
        std::fs::rename(&target, &previous).map_err(|e| io("move aside", &target, e))?;
    }
    if let Err(e) = std::fs::rename(&staging, &target) {
        if had_previous {
            let _ = std::fs::rename(&previous, &target);
        }
        let _ = std::fs::remove_dir_all(&staging);
        return Err(io("move into place", &target, e));
    }
    if had_previous {
        let _ = std::fs::remove_dir_all(&previous);
    }
    Ok(Materialized { path: target, rows })
}
