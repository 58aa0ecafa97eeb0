//! One aggregation of the rows repartitioned by key, where a scan's rows lie spread by it.
//!
//! DataFusion aggregates a source in two phases: each partition groups its own rows
//! (partial), then the groups' states are repartitioned by key and merged (final). Where a
//! fact table is a log in time order, each of its row groups holds nearly every entity: the
//! partial phase sees a new group in nearly every row, stops aggregating and passes each
//! row on as its states (`datafusion.execution.skip_partial_aggregation_probe_*`), and the
//! repartition then moves every row's states (22 columns for the 50-feature recipe's 5
//! input columns of `events`) to a final phase that merges them state by state.
//!
//! [`OnePhase`] plans such a grouping as one aggregation of the rows repartitioned by the
//! key (`AggregateMode::SinglePartitioned`, which `run::keyed_final` runs), when the key is
//! one integer column of a scanned table whose row-group statistics say its rows are spread
//! by it ([`ColumnSpread`]): at least the share of rows at which DataFusion's partial phase
//! stops (`…_probe_ratio_threshold`, 0.8 by default) may hold a key new to their row group.
//! A table clustered by the key keeps both phases, where the partial phase shrinks the rows
//! to one per entity before they move; so does a key reached through a join or computed.
//! The statistics choose the plan, never the rows: the rows and values are the same
//! either way, but for a float sum's last bit, which depends on the order its rows are
//! added in and was not fixed on a log in time order before either (README).
//!
//! Measured at L with the fact tables in time order (interleaved runs of the release
//! binary): materialize churn 2.42 → 1.89 s, the 50-feature recipe 4.52 → 3.59 s, the
//! other shapes 3.19 → 2.65 s; on the generated layout unchanged (BENCHMARKS.md, the
//! twentieth pass).

use crate::catalog::{ColumnSpread, ColumnSpreads};
use crate::run::clustered::one_integer_key;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{HashMap, Result};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::coop::CooperativeExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use object_store::path::Path as ObjectPath;
use std::sync::Arc;

/// The physical optimizer rule (see the module docs), knowing how the catalog's files lie.
#[derive(Debug, Default)]
pub struct OnePhase {
    /// Each Parquet file's table's spreads, by the file's location in its store.
    spreads: HashMap<ObjectPath, Arc<ColumnSpreads>>,
}

impl OnePhase {
    /// The rule over files whose tables' spreads are `spreads`
    /// (`Catalog::spreads_by_location`).
    pub fn new(spreads: impl IntoIterator<Item = (ObjectPath, Arc<ColumnSpreads>)>) -> Self {
        Self {
            spreads: spreads.into_iter().collect(),
        }
    }

    /// `plan` as one aggregation of the rows repartitioned by key, when it is a final
    /// phase over the repartitioned states of a partial one by one integer key whose
    /// scanned rows are spread by it.
    fn one_phase(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        share_threshold: f64,
    ) -> Result<Option<Arc<dyn ExecutionPlan>>> {
        let Some(last) = plan.downcast_ref::<AggregateExec>() else {
            return Ok(None);
        };
        let Some(repartition) = last.input().downcast_ref::<RepartitionExec>() else {
            return Ok(None);
        };
        let (Partitioning::Hash(_, partitions), Some(first)) = (
            repartition.partitioning(),
            repartition.input().downcast_ref::<AggregateExec>(),
        ) else {
            return Ok(None);
        };
        if *last.mode() != AggregateMode::FinalPartitioned
            || *first.mode() != AggregateMode::Partial
            || one_integer_key(first, &first.input().schema())?.is_none()
        {
            return Ok(None);
        }
        let key = Arc::clone(&first.group_expr().expr()[0].0);
        let Some(column) = key.downcast_ref::<Column>() else {
            return Ok(None);
        };
        let spread = self
            .scanned_spread(first.input(), column.index())
            .and_then(|s| s.new_value_share());
        if !spread.is_some_and(|share| share >= share_threshold) {
            return Ok(None);
        }
        let rows = Arc::new(RepartitionExec::try_new(
            Arc::clone(first.input()),
            Partitioning::Hash(vec![key], *partitions),
        )?);
        let one = AggregateExec::try_new(
            AggregateMode::SinglePartitioned,
            first.group_expr().clone(),
            first.aggr_expr().to_vec(),
            first.filter_expr().to_vec(),
            rows,
            first.input_schema(),
        )?;
        // The same output as the two phases', or the plan is left as it is.
        Ok((one.schema() == last.schema()).then(|| Arc::new(one) as Arc<dyn ExecutionPlan>))
    }

    /// The spread of column `index` of `plan`'s rows in the table it scans, when `plan`
    /// passes a scanned column on as it is (through projections, filters, repartitions).
    fn scanned_spread(&self, plan: &Arc<dyn ExecutionPlan>, index: usize) -> Option<ColumnSpread> {
        if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
            let column = projection
                .expr()
                .get(index)?
                .expr
                .downcast_ref::<Column>()?;
            return self.scanned_spread(projection.input(), column.index());
        }
        let schema = plan.schema();
        let name = schema.fields().get(index)?.name();
        if let Some(scan) = plan.downcast_ref::<DataSourceExec>() {
            let files = scan.data_source().downcast_ref::<FileScanConfig>()?;
            let file = files.file_groups.iter().flat_map(|g| g.iter()).next()?;
            return self
                .spreads
                .get(&file.object_meta.location)?
                .get(name)
                .copied();
        }
        let passes_columns_on =
            plan.is::<FilterExec>() || plan.is::<RepartitionExec>() || plan.is::<CooperativeExec>();
        match plan.children().as_slice() {
            [input] if passes_columns_on => {
                let index = input.schema().index_of(name).ok()?;
                self.scanned_spread(input, index)
            }
            _ => None,
        }
    }
}

impl PhysicalOptimizerRule for OnePhase {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.spreads.is_empty() {
            return Ok(plan);
        }
        let threshold = config
            .execution
            .skip_partial_aggregation_probe_ratio_threshold;
        plan.transform_up(|node| {
            Ok(match self.one_phase(&node, threshold)? {
                Some(one) => Transformed::yes(one),
                None => Transformed::no(node),
            })
        })
        .data()
    }

    fn name(&self) -> &str {
        "featurecraft_one_phase"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, TableSource};
    use crate::run::clustered::ClusteredKeys;
    use crate::run::clustered::tests::{Capped, planned_and_printed, rows_table};
    use crate::run::keyed_final::{HANDED_OVER, KeyedFinal, KeyedFinals};
    use crate::run::own_execution::OwnExecution;
    use crate::run::sample::register_functions;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::execution::memory_pool::UnboundedMemoryPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
    use std::path::Path;

    /// `dir/NAME.parquet`: 6 000 rows (`k`, `kind`, `x`) in row groups of 500, the keys from
    /// `key_of`, the values quarters (their sums exact in any order), every 7th NULL.
    async fn write_table(dir: &Path, name: &str, key_of: fn(i64) -> Option<i64>) {
        let table = rows_table(&DataType::Int64, key_of, |i| {
            (i % 7 != 0).then_some((i % 40) as f64 * 0.25 - 3.0)
        });
        let batches = SessionContext::new()
            .read_table(table)
            .expect("read")
            .collect()
            .await
            .expect("collected");
        let file = std::fs::File::create(dir.join(format!("{name}.parquet"))).expect("created");
        let properties = parquet::file::properties::WriterProperties::builder()
            .set_max_row_group_row_count(Some(500))
            .build();
        let mut writer =
            parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), Some(properties))
                .expect("a writer");
        for batch in &batches {
            writer.write(batch).expect("written");
        }
        writer.close().expect("closed");
    }

    /// A catalog of `clustered` (each key's 4 rows together, in key order) and `spread`
    /// (1 500 keys in no order, each row group holding nearly every key; every 29th NULL).
    async fn catalog(dir: &Path) -> Catalog {
        write_table(dir, "clustered", |i| Some(i / 4)).await;
        write_table(dir, "spread", |i| {
            (i % 29 != 0).then_some(i * 7_919 % 1_500)
        })
        .await;
        Catalog::load(dir).await.expect("a catalog")
    }

    /// A session of 2 partitions reading the catalog's tables, with featurecraft's
    /// aggregation rules (this one first, as in a run's session) or without any.
    fn session(catalog: &Catalog, with_rules: bool, capped: Option<Capped>) -> SessionContext {
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(capped) = capped {
            runtime = runtime.with_memory_pool(Arc::new(capped));
        }
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(
                SessionConfig::new()
                    .with_target_partitions(2)
                    .with_batch_size(300),
            )
            .with_runtime_env(runtime.build_arc().expect("a runtime"));
        if with_rules {
            state = state
                .with_physical_optimizer_rule(Arc::new(OnePhase::new(
                    catalog.spreads_by_location(),
                )))
                .with_physical_optimizer_rule(Arc::new(ClusteredKeys))
                .with_physical_optimizer_rule(Arc::new(KeyedFinals));
        }
        let ctx = SessionContext::new_with_state(state.build());
        register_functions(&ctx);
        ctx
    }

    /// The query's rows (printed), its plan, and the groups its final aggregations handed
    /// over to DataFusion's.
    async fn run(ctx: &SessionContext, dir: &Path, sql: &str) -> (String, String, usize) {
        for name in ["clustered", "spread"] {
            let path = dir.join(format!("{name}.parquet"));
            ctx.register_parquet(name, path.to_string_lossy(), ParquetReadOptions::default())
                .await
                .expect("registered");
        }
        let (plan, rows) = planned_and_printed(ctx, sql).await;
        let mut handed_over = 0;
        plan.apply(|node| {
            if let Some(metrics) = node.metrics() {
                handed_over += metrics.sum_by_name(HANDED_OVER).map_or(0, |v| v.as_usize());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("walked");
        let plan = displayable(plan.as_ref()).indent(false).to_string();
        (rows, plan, handed_over)
    }

    /// Every kind of aggregate the recipes use, a filtered one among them.
    fn aggregates(table: &str) -> String {
        format!(
            "SELECT k, COUNT(*) AS n, COUNT(x) AS n_x, SUM(x) AS s, AVG(x) AS a, \
             MIN(kind) AS lo, MAX(x) AS hi, COUNT(DISTINCT kind) AS kinds, \
             COUNT(DISTINCT x) AS xs, MEDIAN(x) AS mid, \
             SUM(x) FILTER (WHERE kind = 'a') AS s_a, COUNT(*) FILTER (WHERE x > 0) AS n_pos \
             FROM {table} GROUP BY k ORDER BY k"
        )
    }

    #[tokio::test]
    async fn a_table_spread_by_the_key_is_aggregated_in_one_phase_and_a_clustered_one_in_two() {
        let dir = tempfile::tempdir().expect("a directory");
        let catalog = catalog(dir.path()).await;
        let share = |name: &str| match &catalog.table(name).expect("a table").source {
            TableSource::Parquet { spreads, .. } => spreads["k"].new_value_share(),
            other => panic!("{other:?}"),
        };
        assert_eq!(share("clustered"), Some(0.25));
        assert_eq!(share("spread"), Some(1.0));
        for (table, one_phase) in [("spread", true), ("clustered", false)] {
            let sql = aggregates(table);
            let (plain, plain_plan, _) =
                run(&session(&catalog, false, None), dir.path(), &sql).await;
            let (ours, plan, handed_over) =
                run(&session(&catalog, true, None), dir.path(), &sql).await;
            assert_eq!(ours, plain, "{table}");
            assert_eq!(handed_over, 0);
            assert!(plain_plan.contains("mode=Partial"), "{plain_plan}");
            assert_eq!(plan.contains("mode=Partial"), !one_phase, "{plan}");
            let single = format!(
                "{}, as AggregateExec: mode=SinglePartitioned",
                KeyedFinal::NAME
            );
            assert_eq!(plan.contains(&single), one_phase, "{plan}");
            // The 1 500 keys (and NULL where some are), and the header.
            let keys = if one_phase { 1_501 } else { 1_500 };
            assert_eq!(
                ours.lines().filter(|l| l.starts_with("| ")).count(),
                keys + 1
            );
        }
    }

    #[tokio::test]
    async fn refused_memory_hands_the_groups_and_the_rest_of_the_rows_to_datafusion() {
        let dir = tempfile::tempdir().expect("a directory");
        let catalog = catalog(dir.path()).await;
        let sql = aggregates("spread");
        let (plain, _, _) = run(&session(&catalog, false, None), dir.path(), &sql).await;
        let capped = Capped {
            capped: vec![(KeyedFinal::NAME, 16_000)],
            pool: UnboundedMemoryPool::default(),
        };
        let (ours, plan, handed_over) =
            run(&session(&catalog, true, Some(capped)), dir.path(), &sql).await;
        assert!(plan.contains("mode=SinglePartitioned"), "{plan}");
        assert_eq!(ours, plain);
        assert!(handed_over > 0, "nothing handed over");
    }

    #[tokio::test]
    async fn other_plans_keep_both_phases() {
        let dir = tempfile::tempdir().expect("a directory");
        let catalog = catalog(dir.path()).await;
        for sql in [
            // A key computed from the column: its spread is not the column's.
            "SELECT k % 10 AS k10, COUNT(*) AS n FROM spread GROUP BY k % 10 ORDER BY k10",
            // Two keys.
            "SELECT k, kind, COUNT(*) AS n FROM spread GROUP BY k, kind ORDER BY k, kind",
            // A key through a join.
            "SELECT s.k, COUNT(*) AS n FROM spread s JOIN clustered c ON s.x = c.x \
             GROUP BY s.k ORDER BY s.k",
        ] {
            let (plain, _, _) = run(&session(&catalog, false, None), dir.path(), sql).await;
            let (ours, plan, _) = run(&session(&catalog, true, None), dir.path(), sql).await;
            assert!(!plan.contains("mode=SinglePartitioned"), "{sql}: {plan}");
            assert_eq!(ours, plain, "{sql}");
        }
    }
}
