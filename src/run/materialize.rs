//! Materialization: run an approved recipe's full query in DataFusion and write it as
//! Parquet into the warehouse, published whole (see [`crate::run::warehouse`]). A caller
//! that must check something between the write and the publish (the service re-checks the
//! approved catalog) calls [`stage`] and [`Staged::publish`] itself.

use crate::catalog::{Catalog, plan_query};
use crate::compile::analyze::Plan;
use crate::compile::dialect::Dialect;
use crate::compile::render::build_query;
use crate::contract::job::TableFormat;
use crate::diagnostic::{Code, Diagnostic};
use crate::run::cutoffs_once::run_cutoffs_once;
use crate::run::deadline::within_time_limit;
use crate::run::sample::{ValidateOptions, runtime_error, session};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::UInt64Type;
use datafusion::dataframe::DataFrameWriteOptions;
use std::path::Path;

pub use crate::run::warehouse::{Leftover, Materialized, Staged, clean_leftovers};

/// Runs the plan's full query and writes `warehouse/domain/table/` atomically, in `format`.
pub async fn materialize(
    plan: &Plan,
    catalog: &Catalog,
    warehouse: &Path,
    format: TableFormat,
    domain: &str,
    table: &str,
    options: &ValidateOptions,
) -> Result<Materialized, Diagnostic> {
    stage(plan, catalog, warehouse, format, domain, table, options)
        .await?
        .publish()
        .await
}

/// Runs the plan's full query into a staging folder beside `warehouse/domain/table/`.
pub async fn stage(
    plan: &Plan,
    catalog: &Catalog,
    warehouse: &Path,
    format: TableFormat,
    domain: &str,
    table: &str,
    options: &ValidateOptions,
) -> Result<Staged, Diagnostic> {
    // From here on what was written goes when `staged` is dropped unpublished.
    let mut staged = Staged::prepare(warehouse, domain, table, format)?;
    let mut query = build_query(plan, &Dialect::DataFusion.capabilities(), None)
        .map_err(|mut e| e.remove(0))?;
    let output_url = staged.output_url();
    // On a time limit the cluster's job is cancelled before the staging folder goes.
    let counts = within_time_limit(options.time_limit, async {
        let ctx = session(catalog, options).await?;
        if let Some((url, store)) = staged.store() {
            ctx.runtime_env()
                .register_object_store(url, std::sync::Arc::clone(store));
        }
        let written = async {
            let state = crate::run::sample::state_for(&ctx, plan);
            let held = run_cutoffs_once(&ctx, &state, &mut query).await?;
            let plan = plan_query(&state, query).await?;
            let mut frame = datafusion::prelude::DataFrame::new(state, plan);
            if staged.format() == TableFormat::Delta {
                frame = as_delta_columns(frame)?;
            }
            let written = frame
                .write_parquet(&output_url, DataFrameWriteOptions::new(), None)
                .await;
            drop(held);
            written
        }
        .await;
        written.map_err(|e| {
            let cause = crate::catalog::storage::store_text(&e.find_root().to_string());
            // A failure naming the staging place happened while writing, not reading; so
            // did a full disk, which the local object store reports without the path.
            if staged.is_named_in(&cause) || is_out_of_room(&cause) {
                Diagnostic::new(
                    Code::E053,
                    format!("cannot write the table into {output_url}: {cause}"),
                )
            } else {
                runtime_error(e)
            }
        })
    })
    .await
    .map_err(whole_table)?
    .map_err(whole_table)?;
    staged.set_rows(
        counts
            .iter()
            .filter_map(|b| {
                b.column(0)
                    .as_primitive_opt::<UInt64Type>()
                    .map(|a| a.values().iter().sum::<u64>())
            })
            .sum(),
    );
    Ok(staged)
}

/// `frame` with the column types a Delta table holds: timestamps in microseconds (Delta's
/// unit); a column of a type Delta has none for is refused before anything runs.
fn as_delta_columns(
    frame: datafusion::prelude::DataFrame,
) -> datafusion::common::Result<datafusion::prelude::DataFrame> {
    use datafusion::arrow::datatypes::{DataType, TimeUnit};
    use datafusion::prelude::{cast, col};
    let schema = frame.schema().as_arrow().clone();
    crate::catalog::delta::schema_string(&schema)
        .map_err(datafusion::common::DataFusionError::Plan)?;
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            let column = col(datafusion::common::Column::from_name(field.name()));
            match field.data_type() {
                DataType::Timestamp(unit, zone) if *unit != TimeUnit::Microsecond => cast(
                    column,
                    DataType::Timestamp(TimeUnit::Microsecond, zone.clone()),
                )
                .alias(field.name()),
                _ => column,
            }
        })
        .collect::<Vec<_>>();
    frame.select(columns)
}

/// Whether an error says the output has no room or cannot be written at all (the kernel's
/// words for ENOSPC, EDQUOT and EROFS, as the standard library prints them).
fn is_out_of_room(message: &str) -> bool {
    [
        "No space left on device",
        "Disk quota exceeded",
        "Read-only file system",
    ]
    .iter()
    .any(|words| message.contains(words))
}

/// `diagnostic` with hints for a run of the whole table: validation's advice to sample
/// fewer entities means nothing to a materialization, which reads them all.
fn whole_table(mut diagnostic: Diagnostic) -> Diagnostic {
    let hint = match diagnostic.code {
        Code::E051 => {
            "raise the memory limit (`memory_limit`): a materialization holds the rows of every entity, not only the validated ones"
        }
        Code::E054 => {
            "raise the time limit (`time_limit`), or run it again if a cluster lost an executor"
        }
        _ => return diagnostic,
    };
    diagnostic.hints = vec![hint.to_string()];
    diagnostic
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_materialization_past_its_memory_limit_is_not_told_to_sample() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
        let catalog = Catalog::load(&root.join("retail")).await.unwrap();
        let text = std::fs::read_to_string(root.join("recipes/good/pit_churn.json")).unwrap();
        let options = crate::compile::CompileOptions::for_dialect(Dialect::DataFusion);
        let plan = crate::compile::compile(&text, &catalog, &options)
            .plan
            .expect("the recipe compiles");
        let warehouse = tempfile::tempdir().unwrap();
        let options = ValidateOptions {
            memory_limit: 64 * 1024,
            ..ValidateOptions::default()
        };
        let failed = materialize(
            &plan,
            &catalog,
            warehouse.path(),
            TableFormat::Parquet,
            "d",
            "t",
            &options,
        )
        .await;
        let Err(diagnostic) = failed else {
            panic!("64 KiB held the whole table");
        };
        assert_eq!(diagnostic.code, Code::E051, "{diagnostic:?}");
        assert_eq!(diagnostic.hints.len(), 1, "{diagnostic:?}");
        assert!(
            diagnostic.hints[0].contains("`memory_limit`"),
            "{diagnostic:?}"
        );
        assert!(!diagnostic.hints[0].contains("sample"), "{diagnostic:?}");
        // Nothing was published.
        assert!(!warehouse.path().join("d/t").exists());
    }
}
