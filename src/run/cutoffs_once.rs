//! A point-in-time query's cutoff pairs, computed once in a local DataFusion session.
//!
//! DataFusion 55 inlines a CTE wherever it is read, so the distinct (entity key, cutoff)
//! pairs were computed again by every timed source that joins `cutoffs` (four times in the
//! benchmark's recipe at L: a `DISTINCT` over 2.7M spine rows each time, whose aggregations
//! also took shares of the memory pool). A local run instead runs the pairs' CTE (the
//! `SELECT DISTINCT`: `featurecraft_cutoff_pairs`, or `cutoffs` itself without windows),
//! with the CTEs it reads, as a query of its own, holds its rows in memory (reserved
//! against the memory limit, so a spine too large fails with `E051`), and runs the recipe's
//! query with that CTE's body replaced by `SELECT * FROM` them; `cutoffs` still adds the
//! window starts in the query (one subtraction per pair, rather than three more columns
//! held). Both queries are parts of the analyzed AST, and the rows are the CTE's own: the
//! printed CTAS computes the same table. At L the query took 6.6 s this way against
//! 9.3–10.3 s inlined (collected in the same session).
//!
//! A schedule's generated rows (`featurecraft_schedule`), which its pairs merely project,
//! are held instead whenever the pairs read them: the spine reads them too, so they would
//! otherwise be generated twice (the schedule source scanned and grouped each time).
//!
//! A run on a cluster keeps the inlined form (its executors cannot read this process's
//! memory); so does a query whose `cutoffs` only one source reads (nothing to share).

use crate::catalog::plan_query;
use crate::compile::ast::{quoted, select, table_factor};
use crate::compile::cte::{CUTOFFS_CTE, SCHEDULE_CTE};
use crate::compile::dialect::Dialect;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::common::Result;
use datafusion::datasource::MemTable;
use datafusion::execution::SessionState;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::prelude::{DataFrame, SessionContext};
use sqlparser::ast::{
    Cte, ObjectName, Query, SelectItem, SetExpr, TableFactor, TableWithJoins,
    WildcardAdditionalOptions, visit_relations,
};
use std::ops::ControlFlow;
use std::sync::Arc;

/// Marks a session whose queries run on a cluster, where a table held in this process's
/// memory cannot be read.
#[derive(Debug)]
pub(crate) struct OnCluster;

/// The `cutoffs` rows a query reads, registered in its session; dropping it removes the
/// table and frees its memory reservation. Keep it until the query has run.
pub(crate) struct HeldCutoffs {
    ctx: SessionContext,
    table: String,
    _reservation: MemoryReservation,
}

impl Drop for HeldCutoffs {
    fn drop(&mut self) {
        // The table is the session's own and registered above: nothing to report.
        let _ = self.ctx.deregister_table(self.table.as_str());
    }
}

/// Runs the distinct pairs of `query`'s `cutoffs` now and points their CTE at the rows,
/// when the session runs locally and more than one source reads `cutoffs`; `None` leaves
/// `query` as it was.
pub(crate) async fn run_cutoffs_once(
    ctx: &SessionContext,
    state: &SessionState,
    query: &mut Query,
) -> Result<Option<HeldCutoffs>> {
    if state.config().get_extension::<OnCluster>().is_some() {
        return Ok(None);
    }
    let shared = readers(query) >= 2;
    let Some(with) = query.with.as_mut() else {
        return Ok(None);
    };
    let Some(at) = with
        .cte_tables
        .iter()
        .position(|c| c.alias.name.value == CUTOFFS_CTE)
    else {
        return Ok(None);
    };
    // The pairs are held, not the window starts `cutoffs` adds to them: those are one
    // subtraction per pair, and would triple what is held (two columns and three starts).
    let at = match pairs_read_by(&with.cte_tables[at]) {
        Some(pairs) => match with
            .cte_tables
            .iter()
            .position(|c| c.alias.name.value == pairs)
        {
            Some(pairs_at) => pairs_at,
            None => return Ok(None),
        },
        None => at,
    };
    // A schedule's rows, which the pairs merely project, are held instead: the spine
    // reads them too, and would otherwise generate them again.
    let is_schedule = |cte: &Cte| cte.alias.name.value == SCHEDULE_CTE;
    let reads_schedule = is_schedule(&with.cte_tables[at])
        || pairs_read_by(&with.cte_tables[at]).is_some_and(|name| name == SCHEDULE_CTE);
    let at = match with.cte_tables.iter().position(is_schedule) {
        Some(schedule_at) if reads_schedule => schedule_at,
        _ if shared => at,
        _ => return Ok(None),
    };
    let held_cte = with.cte_tables[at].alias.name.value.clone();
    let caps = Dialect::DataFusion.capabilities();
    let every_column = || vec![SelectItem::Wildcard(WildcardAdditionalOptions::default())];
    let from = |name: &str| table_factor(ObjectName::from(vec![quoted(name, &caps)]));

    // The pairs' CTE and the ones before it (the spine), read whole.
    let mut alone = select(every_column(), from(&held_cte), vec![], None, None);
    let mut before = with.clone();
    before.cte_tables.truncate(at + 1);
    alone.with = Some(before);
    let plan = plan_query(state, alone).await?;
    let batches = DataFrame::new(state.clone(), plan).collect().await?;

    let Some(schema) = batches.first().map(|b| b.schema()) else {
        // No pair at all: the inlined CTE is as cheap as anything.
        return Ok(None);
    };
    // The rows are copied into one batch of their own: the query's batches can be slices
    // of larger buffers (an aggregation's output), which each would count whole.
    let rows = concat_batches(&schema, &batches)?;
    drop(batches);
    let reservation =
        MemoryConsumer::new("featurecraft cutoffs").register(&state.runtime_env().memory_pool);
    reservation.try_grow(rows.get_array_memory_size())?;

    // Slices of it, in batches of the session's size, spread over its partitions.
    let partitions = state.config().target_partitions().max(1);
    let batch_size = state.config().batch_size().max(1);
    let per_partition = rows.num_rows().div_ceil(partitions).max(1);
    let mut parts: Vec<Vec<RecordBatch>> = (0..rows.num_rows())
        .step_by(per_partition)
        .map(|first| {
            let end = (first + per_partition).min(rows.num_rows());
            (first..end)
                .step_by(batch_size)
                .map(|at| rows.slice(at, batch_size.min(end - at)))
                .collect()
        })
        .collect();
    if parts.is_empty() {
        parts.push(Vec::new());
    }
    let table = fresh_table_name(ctx)?;
    ctx.register_table(table.as_str(), Arc::new(MemTable::try_new(schema, parts)?))?;
    *with.cte_tables[at].query = select(every_column(), from(&table), vec![], None, None);
    Ok(Some(HeldCutoffs {
        ctx: ctx.clone(),
        table,
        _reservation: reservation,
    }))
}

/// The CTE of distinct pairs that `cutoffs` adds window starts to; `None` when `cutoffs`
/// is the `SELECT DISTINCT` itself.
fn pairs_read_by(cutoffs: &Cte) -> Option<String> {
    let SetExpr::Select(select) = cutoffs.query.body.as_ref() else {
        return None;
    };
    if select.distinct.is_some() {
        return None;
    }
    match select.from.as_slice() {
        [
            TableWithJoins {
                relation: TableFactor::Table { name, .. },
                joins,
            },
        ] if joins.is_empty() => match name.0.as_slice() {
            [part] => part.as_ident().map(|ident| ident.value.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// How many times the query reads `cutoffs` (once per timed source's join).
fn readers(query: &Query) -> usize {
    let mut count = 0;
    let _ = visit_relations(query, |name: &ObjectName| {
        if name.0.len() == 1
            && name.0[0]
                .as_ident()
                .is_some_and(|ident| ident.value == CUTOFFS_CTE)
        {
            count += 1;
        }
        ControlFlow::<()>::Continue(())
    });
    count
}

/// `featurecraft_cutoffs`, or `featurecraft_cutoffs_N` when the session has that table.
fn fresh_table_name(ctx: &SessionContext) -> Result<String> {
    crate::sql::try_fresh_name(crate::compile::cte::HELD_CUTOFFS_TABLE, |key| {
        ctx.table_exist(key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::compile::render::build_query;
    use crate::compile::{CompileOptions, compile};
    use crate::run::sample::{ValidateOptions, session};
    use datafusion::arrow::array::RecordBatch;
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use std::path::Path;

    async fn retail() -> Catalog {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/retail");
        Catalog::load(&root).await.unwrap()
    }

    async fn query_of(catalog: &Catalog, recipe: &str) -> Query {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/recipes/good")
            .join(recipe);
        query_of_text(catalog, &std::fs::read_to_string(path).unwrap())
    }

    /// A recipe on the bundled `churn_cutoffs` spine with these time columns and features.
    fn pit_recipe(time_columns: &str, features: &str) -> String {
        format!(
            r#"{{
                "target_table": "t",
                "entity_grain": ["customer_id", "cutoff_time"],
                "point_in_time": {{"cutoff_column": "cutoff_time", "time_columns": {{{time_columns}}}}},
                "label": {{"name": "churned_30d", "type": "binary", "column": "churned_30d", "positive_class_value": 1}},
                "features": [{features}]
            }}"#
        )
    }

    fn query_of_text(catalog: &Catalog, text: &str) -> Query {
        let compiled = compile(
            text,
            catalog,
            &CompileOptions::for_dialect(Dialect::DataFusion),
        );
        let plan = compiled.plan.expect("the recipe compiles");
        build_query(&plan, &Dialect::DataFusion.capabilities(), None).unwrap()
    }

    /// The query's rows, sorted as text, so two runs compare whatever their order; floats
    /// are rounded to 9 decimals, since a sum's last bits follow the order it added in.
    async fn sorted_text(state: &SessionState, query: Query) -> String {
        use datafusion::arrow::array::{Array, ArrayRef, AsArray};
        use datafusion::arrow::datatypes::{DataType, Float64Type};
        let plan = plan_query(state, query).await.unwrap();
        let batches: Vec<RecordBatch> =
            DataFrame::new(state.clone(), plan).collect().await.unwrap();
        let round = |column: &ArrayRef| -> ArrayRef {
            match column.data_type() {
                DataType::Float64 => Arc::new(
                    column
                        .as_primitive::<Float64Type>()
                        .unary::<_, Float64Type>(|v| (v * 1e9).round() / 1e9),
                ),
                _ => column.clone(),
            }
        };
        let batches: Vec<RecordBatch> = batches
            .iter()
            .map(|b| RecordBatch::try_new(b.schema(), b.columns().iter().map(round).collect()))
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines.join("\n")
    }

    #[tokio::test]
    async fn the_held_cutoffs_give_the_inlined_querys_rows_and_are_released() {
        let catalog = retail().await;
        let ctx = session(&catalog, &ValidateOptions::default())
            .await
            .unwrap();
        // Small batches: the aggregation's output is then many slices of its buffers.
        let mut state = ctx.state();
        state.config_mut().options_mut().execution.batch_size = "64".parse().unwrap();
        // Without windows `cutoffs` is the DISTINCT itself; with them it reads the pairs'.
        let no_window = pit_recipe(
            r#""events": "event_ts", "orders": "order_date""#,
            r#"{"name": "n_events", "source_table": "events", "expression": "COUNT(*)"},
               {"name": "spend", "source_table": "orders", "expression": "SUM(amount)"}"#,
        );
        let recipes = [
            ("pit_churn.json", query_of(&catalog, "pit_churn.json").await),
            (
                "pit_dates_include_cutoff.json",
                query_of(&catalog, "pit_dates_include_cutoff.json").await,
            ),
            ("no window", query_of_text(&catalog, &no_window)),
        ];
        for (recipe, inlined) in recipes {
            let mut held_query = inlined.clone();
            let held = run_cutoffs_once(&ctx, &state, &mut held_query)
                .await
                .unwrap()
                .expect("several timed sources read the cutoffs");
            assert_ne!(held_query, inlined, "{recipe}: the CTE reads the held rows");
            assert!(
                held_query.to_string().contains("featurecraft_cutoffs"),
                "{recipe}: {held_query}"
            );
            let pool = &state.runtime_env().memory_pool;
            // 2 694 pairs of a few columns: some hundred kilobytes, each slice counted once.
            let reserved = pool.reserved();
            assert!(
                reserved > 0 && reserved < 1 << 20,
                "{reserved} bytes reserved"
            );
            let with_held = sorted_text(&state, held_query).await;
            assert!(with_held.lines().count() > 1000, "{recipe}: rows");
            assert_eq!(with_held, sorted_text(&state, inlined).await, "{recipe}");
            drop(held);
            assert_eq!(pool.reserved(), 0, "the reservation goes with the rows");
            assert!(!ctx.table_exist("featurecraft_cutoffs").unwrap());
        }
    }

    #[tokio::test]
    async fn a_cluster_session_or_a_single_reader_keeps_the_inlined_cte() {
        let catalog = retail().await;
        let ctx = session(&catalog, &ValidateOptions::default())
            .await
            .unwrap();
        let one_source = pit_recipe(
            r#""events": "event_ts""#,
            r#"{"name": "n_7d", "source_table": "events", "expression": "COUNT(*)", "window": "7 days"},
               {"name": "n", "source_table": "events", "expression": "COUNT(*)"}"#,
        );
        let mut query = query_of_text(&catalog, &one_source);
        assert_eq!(readers(&query), 1, "{query}");
        let before = query.clone();
        let held = run_cutoffs_once(&ctx, &ctx.state(), &mut query)
            .await
            .unwrap();
        assert!(held.is_none());
        assert_eq!(query, before);

        let mut query = query_of(&catalog, "pit_churn.json").await;
        assert!(readers(&query) > 1);
        let before = query.clone();
        ctx.state_ref()
            .write()
            .config_mut()
            .set_extension(Arc::new(OnCluster));
        let held = run_cutoffs_once(&ctx, &ctx.state(), &mut query)
            .await
            .unwrap();
        assert!(held.is_none());
        assert_eq!(query, before);
    }

    #[tokio::test]
    async fn cutoffs_past_the_memory_limit_are_a_resources_error() {
        let catalog = retail().await;
        let options = ValidateOptions {
            memory_limit: 4 << 10,
            ..ValidateOptions::default()
        };
        let ctx = session(&catalog, &options).await.unwrap();
        let mut query = query_of(&catalog, "pit_churn.json").await;
        let error = run_cutoffs_once(&ctx, &ctx.state(), &mut query)
            .await
            .err()
            .expect("4 KiB cannot hold the cutoffs");
        assert!(
            matches!(
                error.find_root(),
                datafusion::common::DataFusionError::ResourcesExhausted(_)
            ),
            "{error}"
        );
    }
}
