//! Outer joins on a side grouped by the join key, run as lookups.
//!
//! A recipe's table is its spine left-joined to each source's CTE, and each source is
//! grouped by the entity key: the joined side has every key once. DataFusion's hash join
//! does not know that. It builds on one side and probes with the other, and whichever side
//! is preserved, it copies every column of both (`take`) into each output batch; in a chain
//! of joins the spine's and every earlier source's columns are copied again at every join
//! (in the churn bench recipe's profile at L, building the joined batches was 6 % of the
//! CPU, the joins' own work about 10 %).
//!
//! [`LookupJoins`] replaces a partitioned `LEFT` (or `RIGHT`) hash join on one integer
//! column whose non-preserved side is grouped by that column with [`LookupJoinExec`]: per
//! partition, the grouped side's rows are gathered and indexed by key (by offset while the
//! keys are dense, as [`crate::run::clustered`] numbers them, else in a map), then each batch
//! of the preserved side is passed through as it is, beside the grouped side's columns taken
//! at the matching rows (NULL where no key matches; a NULL key matches nothing, as in SQL).
//! The preserved side's columns are not copied and its rows keep their order. Grouped means
//! the side's plan ends in an aggregation that outputs each value of that column once
//! (final or single, one grouping column, no grouping sets), seen through projections,
//! filters, sorts and repartitions; a key found twice anyway stops the query with an
//! internal error rather than dropping a row. A dynamic filter the replaced join had pushed
//! into a scan stays empty and filters nothing. The rule is in featurecraft's local
//! sessions; a cluster's scheduler plans with Ballista's rules.

use crate::run::clustered::{Dense, KeyType};
use crate::run::keyed_final::KeyedFinalAggregateExec;
use crate::run::own_execution::{OwnExecution, WithOwnExecution};
use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanBufferBuilder, RecordBatch,
    RecordBatchOptions, UInt32Array, new_empty_array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::compute::{concat, take};
use datafusion::arrow::datatypes::{Int32Type, Int64Type, SchemaRef, UInt32Type, UInt64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::utils::memory::RecordBatchMemoryCounter;
use datafusion::common::{
    HashMap, JoinType, NullEquality, Result, internal_datafusion_err, internal_err,
};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::{StreamExt, TryStreamExt};
use std::sync::Arc;

/// The physical optimizer rule (see the module docs).
#[derive(Debug, Default)]
pub struct LookupJoins;

impl PhysicalOptimizerRule for LookupJoins {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        LookupJoinExec::replace_in(plan)
    }

    fn name(&self) -> &str {
        "featurecraft_lookup_joins"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Where an output column of the join comes from.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// The preserved side's column.
    Kept(usize),
    /// The grouped side's column, taken at each row's match.
    Looked(usize),
}

/// A hash join run as lookups into its grouped side (see the module docs). Its schema,
/// properties, children and input requirements are the replaced join's.
pub(crate) type LookupJoinExec = WithOwnExecution<Lookups>;

/// How [`LookupJoinExec`] executes: which side is which, and where each column comes from.
#[derive(Debug)]
pub(crate) struct Lookups {
    /// Whether the preserved side is the join's left child (a `LEFT` join).
    kept_is_left: bool,
    kept_key: usize,
    looked_key: usize,
    key: KeyType,
    columns: Vec<Origin>,
}

impl Lookups {
    /// The preserved and the grouped child of `join`.
    fn sides<'a>(
        &self,
        join: &'a Arc<dyn ExecutionPlan>,
    ) -> (&'a Arc<dyn ExecutionPlan>, &'a Arc<dyn ExecutionPlan>) {
        let children = join.children();
        let (left, right) = (children[0], children[1]);
        if self.kept_is_left {
            (left, right)
        } else {
            (right, left)
        }
    }
}

impl OwnExecution for Lookups {
    const NAME: &'static str = "LookupJoinExec";

    /// When `plan` is a partitioned outer hash join this node runs as DataFusion would:
    /// `LEFT` or `RIGHT`, on one integer column equal on both sides, NULLs equal to nothing,
    /// no filter or limit, the non-preserved side grouped by its key.
    fn try_new(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
        let Some(join) = plan.downcast_ref::<HashJoinExec>() else {
            return Ok(None);
        };
        let kept_is_left = match join.join_type() {
            JoinType::Left => true,
            JoinType::Right => false,
            _ => return Ok(None),
        };
        if *join.partition_mode() != PartitionMode::Partitioned
            || join.filter().is_some()
            || join.null_equality() != NullEquality::NullEqualsNothing
            || join.null_aware
            || join.fetch().is_some()
            || join.on().len() != 1
        {
            return Ok(None);
        }
        let (left_key, right_key) = &join.on()[0];
        let (Some(left_key), Some(right_key)) = (column_index(left_key), column_index(right_key))
        else {
            return Ok(None);
        };
        let (kept, looked, kept_key, looked_key) = if kept_is_left {
            (join.left(), join.right(), left_key, right_key)
        } else {
            (join.right(), join.left(), right_key, left_key)
        };
        let kept_type = kept.schema().field(kept_key).data_type().clone();
        let looked_type = looked.schema().field(looked_key).data_type().clone();
        let Some(key) = KeyType::of(&looked_type) else {
            return Ok(None);
        };
        if kept_type != looked_type || !grouped_by(looked, looked_key) {
            return Ok(None);
        }
        // The join's columns before its projection: the left child's, then the right's.
        let left_width = join.left().schema().fields().len();
        let right_width = join.right().schema().fields().len();
        let side = |index: usize| match (index < left_width, kept_is_left) {
            (true, true) => Origin::Kept(index),
            (true, false) => Origin::Looked(index),
            (false, true) => Origin::Looked(index - left_width),
            (false, false) => Origin::Kept(index - left_width),
        };
        let columns: Vec<Origin> = match &join.projection {
            Some(projection) => projection.iter().map(|&i| side(i)).collect(),
            None => (0..left_width + right_width).map(side).collect(),
        };
        if columns.len() != join.schema().fields().len() {
            return Ok(None);
        }
        Ok(Some(Self {
            kept_is_left,
            kept_key,
            looked_key,
            key,
            columns,
        }))
    }

    fn execute(
        &self,
        join: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<SendableRecordBatchStream> {
        let (kept, looked) = self.sides(join);
        let kept = Arc::clone(kept);
        let mut looked_rows = looked.execute(partition, Arc::clone(&context))?;
        let looked_schema = looked.schema();
        let schema = join.schema();
        let reservation = MemoryConsumer::new(format!("{}[{partition}]", Self::NAME))
            .register(context.memory_pool());
        let baseline = BaselineMetrics::new(metrics, partition);
        let (key, kept_key, looked_key) = (self.key, self.kept_key, self.looked_key);
        let columns = self.columns.clone();
        let output_schema = Arc::clone(&schema);
        let joined = async move {
            // The grouped side first, whole, as DataFusion's hash join builds its side.
            let looked = gathered(&mut looked_rows, &looked_schema, &reservation).await?;
            drop(looked_rows);
            let index = KeyIndex::new(looked.column(looked_key), key)?;
            reservation.try_resize(looked.get_array_memory_size() + index.size())?;
            let lookup = Lookup {
                schema: output_schema,
                looked,
                index,
                key,
                kept_key,
                columns,
                baseline,
                _reservation: reservation,
            };
            let kept_rows = kept.execute(partition, context)?;
            Ok::<_, datafusion::common::DataFusionError>(
                kept_rows.map(move |batch| lookup.join(&batch?)),
            )
        };
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::once(joined).try_flatten(),
        )))
    }
}

/// The rows of `stream` in one batch, their memory reserved in `reservation`.
///
/// A grouped side arrives as slices of its aggregation's one output batch: the memory held
/// is counted once per buffer, not once per slice (at 1M keys in 64 Ki-row slices, counting
/// each slice's whole buffers reserved ten times what was held, and a table that fit in
/// 900 MB stopped at a 1 GB limit). The batch is put together a column at a time, each
/// column's slices let go once copied, so the side is held twice over one column at most.
async fn gathered(
    stream: &mut SendableRecordBatchStream,
    schema: &SchemaRef,
    reservation: &MemoryReservation,
) -> Result<RecordBatch> {
    let mut held = RecordBatchMemoryCounter::new();
    let mut columns = vec![Vec::new(); schema.fields().len()];
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        reservation.try_grow(held.count_batch(&batch))?;
        rows += batch.num_rows();
        for (pieces, column) in columns.iter_mut().zip(batch.into_parts().1) {
            pieces.push(column);
        }
    }
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(pieces, field)| match pieces.as_slice() {
            [] => Ok(new_empty_array(field.data_type())),
            [whole] => Ok(Arc::clone(whole)),
            _ => {
                let pieces: Vec<&dyn Array> = pieces.iter().map(|p| p.as_ref()).collect();
                Ok(concat(&pieces)?)
            }
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    Ok(RecordBatch::try_new_with_options(
        Arc::clone(schema),
        columns,
        &options,
    )?)
}

/// The index of `expr` when it is a column.
fn column_index(expr: &Arc<dyn PhysicalExpr>) -> Option<usize> {
    expr.downcast_ref::<Column>().map(Column::index)
}

/// Whether `plan` outputs each value of its column `index` at most once: it ends in an
/// aggregation grouped by that column alone, seen through nodes that only drop, move or
/// reorder rows.
fn grouped_by(plan: &Arc<dyn ExecutionPlan>, index: usize) -> bool {
    if let Some(projection) = plan.downcast_ref::<ProjectionExec>() {
        return projection
            .expr()
            .get(index)
            .and_then(|p| column_index(&p.expr))
            .is_some_and(|inner| grouped_by(projection.input(), inner));
    }
    if let Some(keyed) = plan.downcast_ref::<KeyedFinalAggregateExec>() {
        return grouped_by(keyed.replaced(), index);
    }
    if let Some(aggregate) = plan.downcast_ref::<AggregateExec>() {
        let group_by = aggregate.group_expr();
        return matches!(
            aggregate.mode(),
            AggregateMode::Final
                | AggregateMode::FinalPartitioned
                | AggregateMode::Single
                | AggregateMode::SinglePartitioned
        ) && group_by.is_single()
            && group_by.expr().len() == 1
            && index == 0;
    }
    let passes_rows = plan
        .downcast_ref::<FilterExec>()
        .is_some_and(|f| f.projection().is_none())
        || plan.downcast_ref::<SortExec>().is_some()
        || plan.downcast_ref::<RepartitionExec>().is_some()
        || plan.name() == "CoalesceBatchesExec"
        || plan.name() == "CooperativeExec";
    passes_rows && plan.children().len() == 1 && grouped_by(plan.children()[0], index)
}

/// One partition's grouped side, indexed, and how an output batch is put together.
struct Lookup {
    schema: SchemaRef,
    looked: RecordBatch,
    index: KeyIndex,
    key: KeyType,
    kept_key: usize,
    columns: Vec<Origin>,
    baseline: BaselineMetrics,
    _reservation: MemoryReservation,
}

impl Lookup {
    /// `kept` beside the grouped side's columns at each of its rows' match.
    fn join(&self, kept: &RecordBatch) -> Result<RecordBatch> {
        let _timer = self.baseline.elapsed_compute().timer();
        let rows = self.index.rows_of(kept.column(self.kept_key), self.key)?;
        let columns = self
            .columns
            .iter()
            .map(|from| match *from {
                Origin::Kept(i) => Ok(Arc::clone(kept.column(i))),
                Origin::Looked(i) => Ok(take(self.looked.column(i), &rows, None)?),
            })
            .collect::<Result<Vec<ArrayRef>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(kept.num_rows()));
        let batch = RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options)?;
        self.baseline.record_output(batch.num_rows());
        Ok(batch)
    }
}

/// A grouped side's slot without a row.
const NO_ROW: u32 = u32::MAX;

/// Each key's row on the grouped side: by its offset from the smallest key while the keys
/// are dense (ids), else in a map.
enum KeyIndex {
    Dense { base: i64, rows: Vec<u32> },
    Map(HashMap<i64, u32>),
}

impl KeyIndex {
    fn new(keys: &ArrayRef, key: KeyType) -> Result<Self> {
        if keys.len() >= NO_ROW as usize {
            return internal_err!(
                "{}: {} grouped rows in one partition",
                Lookups::NAME,
                keys.len()
            );
        }
        let mut rows = Vec::with_capacity(keys.len() - keys.null_count());
        each_key(keys, key, |row, k| {
            if let Some(k) = k {
                rows.push((k, row as u32));
            }
        })?;
        let (Some(low), Some(high)) = (
            rows.iter().map(|&(k, _)| k).min(),
            rows.iter().map(|&(k, _)| k).max(),
        ) else {
            return Ok(Self::Map(HashMap::default()));
        };
        let twice =
            |k: i64| internal_err!("{}: key {k} is twice on its grouped side", Lookups::NAME);
        let span = usize::try_from(i128::from(high) - i128::from(low) + 1).unwrap_or(usize::MAX);
        if span <= Dense::limit(rows.len()) {
            let mut slots = vec![NO_ROW; span];
            for (k, row) in rows {
                let slot = &mut slots[(k - low) as usize];
                if *slot != NO_ROW {
                    return twice(k);
                }
                *slot = row;
            }
            Ok(Self::Dense {
                base: low,
                rows: slots,
            })
        } else {
            let mut map = HashMap::with_capacity(rows.len());
            for (k, row) in rows {
                if map.insert(k, row).is_some() {
                    return twice(k);
                }
            }
            Ok(Self::Map(map))
        }
    }

    fn row_of(&self, key: i64) -> Option<u32> {
        match self {
            Self::Dense { base, rows } => {
                let offset = usize::try_from(key.checked_sub(*base)?).ok()?;
                rows.get(offset).copied().filter(|&row| row != NO_ROW)
            }
            Self::Map(map) => map.get(&key).copied(),
        }
    }

    /// The grouped side's row of each key in `keys`, NULL where there is none.
    fn rows_of(&self, keys: &ArrayRef, key: KeyType) -> Result<UInt32Array> {
        let mut rows = Vec::with_capacity(keys.len());
        let mut matched = BooleanBufferBuilder::new(keys.len());
        let mut misses = 0;
        each_key(keys, key, |_, k| {
            let row = k.and_then(|k| self.row_of(k));
            rows.push(row.unwrap_or(0));
            matched.append(row.is_some());
            misses += usize::from(row.is_none());
        })?;
        let nulls = (misses > 0).then(|| NullBuffer::new(matched.finish()));
        Ok(UInt32Array::new(rows.into(), nulls))
    }

    fn size(&self) -> usize {
        match self {
            Self::Dense { rows, .. } => rows.capacity() * size_of::<u32>(),
            Self::Map(map) => map.capacity() * (size_of::<(i64, u32)>() + 1),
        }
    }
}

/// Calls `f` with each row of `keys` and its key widened to `i64` (NULL as `None`).
fn each_key(keys: &ArrayRef, key: KeyType, f: impl FnMut(usize, Option<i64>)) -> Result<()> {
    fn each<T: ArrowPrimitiveType>(
        keys: &ArrayRef,
        widen: impl Fn(T::Native) -> i64,
        mut f: impl FnMut(usize, Option<i64>),
    ) -> Result<()> {
        let keys = keys.as_primitive_opt::<T>().ok_or_else(|| {
            internal_datafusion_err!("{}: a key column is {}", Lookups::NAME, keys.data_type())
        })?;
        if keys.null_count() == 0 {
            for (row, &k) in keys.values().iter().enumerate() {
                f(row, Some(widen(k)));
            }
        } else {
            for (row, k) in keys.iter().enumerate() {
                f(row, k.map(&widen));
            }
        }
        Ok(())
    }
    match key {
        KeyType::Int32 => each::<Int32Type>(keys, i64::from, f),
        KeyType::Int64 => each::<Int64Type>(keys, |k| k, f),
        KeyType::UInt32 => each::<UInt32Type>(keys, i64::from, f),
        // Reinterpreted, as `run::clustered` numbers them: equal keys stay equal.
        KeyType::UInt64 => each::<UInt64Type>(keys, |k| k as i64, f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::clustered::tests::planned_and_printed;
    use datafusion::arrow::array::{Float64Array, Int32Array, Int64Array, UInt64Array};
    use datafusion::arrow::compute::concat_batches;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// Key `i` as `key_type`: ids from 1 (`spread` apart), unsigned ones past `i64::MAX`.
    fn keys(key_type: &DataType, ids: impl Iterator<Item = Option<i64>>, spread: i64) -> ArrayRef {
        let ids = ids.map(move |i| i.map(|i| i * spread));
        match key_type {
            DataType::Int32 => Arc::new(Int32Array::from_iter(ids.map(|k| k.map(|k| k as i32)))),
            DataType::UInt64 => Arc::new(UInt64Array::from_iter(
                ids.map(|k| k.map(|k| (k as u64).wrapping_add(u64::MAX / 2))),
            )),
            _ => Arc::new(Int64Array::from_iter(ids)),
        }
    }

    /// A table of `(k, v)` in three partitions of two batches from `rows(partition, batch)`.
    fn table(
        key_type: &DataType,
        spread: i64,
        rows: impl Fn(i64) -> Vec<Option<i64>>,
    ) -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", key_type.clone(), true),
            Field::new("v", DataType::Float64, true),
        ]));
        let batch = |n: i64| {
            let ids = rows(n);
            let values = Float64Array::from_iter(
                ids.iter()
                    .enumerate()
                    .map(|(i, _)| (i % 11 != 0).then_some(n as f64 + i as f64 * 0.5)),
            );
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![keys(key_type, ids.into_iter(), spread), Arc::new(values)],
            )
            .expect("a valid batch")
        };
        let partitions = (0..3)
            .map(|p| vec![batch(2 * p), batch(2 * p + 1)])
            .collect();
        Arc::new(MemTable::try_new(schema, partitions).expect("a valid table"))
    }

    /// A spine with keys 1..=600 (every 37th NULL, every 50th twice) and two sources whose
    /// keys cover part of them, several rows a key, with NULL keys and keys not in the spine.
    fn session(key_type: &DataType, spread: i64, with_rule: bool) -> SessionContext {
        let config = SessionConfig::new()
            .with_target_partitions(3)
            .with_batch_size(64)
            // Partitioned joins, which the rule replaces, whatever the tables' sizes.
            .set_str(
                "datafusion.optimizer.hash_join_single_partition_threshold",
                "0",
            )
            .set_str(
                "datafusion.optimizer.hash_join_single_partition_threshold_rows",
                "0",
            );
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(config);
        if with_rule {
            // The final aggregations featurecraft runs its own way first, as its sessions
            // do: a side grouped by one of them is still a lookup.
            state = state
                .with_physical_optimizer_rule(Arc::new(crate::run::keyed_final::KeyedFinals))
                .with_physical_optimizer_rule(Arc::new(LookupJoins));
        }
        let ctx = SessionContext::new_with_state(state.build());
        let spine = table(key_type, spread, |n| {
            (n * 100 + 1..=n * 100 + 100)
                .flat_map(|i| {
                    let key = (i % 37 != 0).then_some(i);
                    if i % 50 == 0 {
                        vec![key, key]
                    } else {
                        vec![key]
                    }
                })
                .collect()
        });
        let events = table(key_type, spread, |n| {
            (0..150)
                .map(|i| {
                    let id = (n * 150 + i) / 2 % 700;
                    (i % 23 != 0).then_some(id)
                })
                .collect()
        });
        let orders = table(key_type, spread, |n| {
            (0..40).map(|i| Some(n * 97 + i * 3 + 2)).collect()
        });
        for (name, table) in [("spine", spine), ("events", events), ("orders", orders)] {
            ctx.register_table(name, table).expect("registered");
        }
        ctx
    }

    /// The query's rows, printed and sorted, and its plan.
    async fn run(ctx: &SessionContext, sql: &str) -> (String, String) {
        let (plan, printed) = planned_and_printed(ctx, sql).await;
        let mut lines: Vec<&str> = printed.lines().collect();
        lines.sort_unstable();
        let plan = displayable(plan.as_ref()).indent(false).to_string();
        (lines.join("\n"), plan)
    }

    const SOURCES: &str = "WITH e AS (SELECT k, COUNT(*) AS n, SUM(v) AS s FROM events GROUP BY k), \
        o AS (SELECT k, MAX(v) AS hi FROM orders WHERE v > 1 GROUP BY k) ";

    #[tokio::test]
    async fn joins_to_grouped_sources_give_datafusions_rows() {
        let queries = [
            // The spine joined to each source in turn, as a recipe's table is.
            "SELECT spine.k, spine.v, e.n, e.s, o.hi FROM spine \
             LEFT JOIN e ON spine.k = e.k LEFT JOIN o ON spine.k = o.k",
            // The grouped side written first, its key not selected.
            "SELECT spine.k, e.s, spine.v FROM e RIGHT JOIN spine ON e.k = spine.k",
            // Every column of both sides.
            "SELECT * FROM spine LEFT JOIN o ON o.k = spine.k",
        ];
        for (key_type, spread) in [
            (DataType::Int64, 1),
            (DataType::Int32, 1),
            (DataType::UInt64, 1),
            // Keys too far apart for slots: the map.
            (DataType::Int64, 1 << 40),
        ] {
            let with = session(&key_type, spread, true);
            let without = session(&key_type, spread, false);
            for query in queries {
                let sql = format!("{SOURCES}{query}");
                let (rows, plan) = run(&with, &sql).await;
                let (expected, datafusions) = run(&without, &sql).await;
                assert!(
                    plan.contains("LookupJoinExec") && plan.contains("KeyedFinalAggregateExec"),
                    "{key_type} {query}:\n{plan}"
                );
                assert!(!datafusions.contains("LookupJoinExec"));
                assert_eq!(rows, expected, "{key_type} spread {spread}: {query}");
                // Every spine row (600 keys, 12 of them twice) and the header.
                assert_eq!(
                    rows.lines().filter(|l| l.starts_with("| ")).count(),
                    612 + 1
                );
            }
        }
    }

    #[tokio::test]
    async fn a_side_not_grouped_by_the_key_alone_stays_a_hash_join() {
        let ctx = session(&DataType::Int64, 1, true);
        for query in [
            // Rows of a table: a key may repeat.
            "SELECT spine.k, events.v FROM spine LEFT JOIN events ON spine.k = events.k",
            // Grouped by the key and another column.
            "SELECT spine.k, g.n FROM spine LEFT JOIN \
             (SELECT k, v, COUNT(*) AS n FROM events GROUP BY k, v) g ON spine.k = g.k",
            // Grouped by another column, joined on an aggregate.
            "SELECT spine.k, g.v FROM spine LEFT JOIN \
             (SELECT v, MAX(k) AS k FROM events GROUP BY v) g ON spine.k = g.k",
            // The preserved side is the grouped one: an inner match may repeat its rows.
            "SELECT e.k, spine.v FROM (SELECT k, COUNT(*) AS n FROM events GROUP BY k) e \
             LEFT JOIN spine ON e.k = spine.k",
        ] {
            let (_, plan) = run(&ctx, query).await;
            assert!(plan.contains("HashJoinExec"), "{query}:\n{plan}");
            assert!(!plan.contains("LookupJoinExec"), "{query}:\n{plan}");
        }
    }

    #[tokio::test]
    async fn a_grouped_side_in_slices_is_counted_once() {
        use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};
        use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Float64, true),
        ]));
        let whole = |rows: i64| {
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(Int64Array::from_iter_values(0..rows)),
                    Arc::new(Float64Array::from_iter(
                        (0..rows).map(|i| (i % 7 != 0).then_some(i as f64 / 4.0)),
                    )),
                ],
            )
            .expect("a valid batch")
        };
        // An aggregation's output in 100 slices of 100 rows (160 KB held, 16 MB if each
        // slice counted its whole buffers), then a batch of its own.
        let output = whole(10_000);
        let own = whole(30);
        let mut batches: Vec<RecordBatch> = (0..100).map(|i| output.slice(i * 100, 100)).collect();
        batches.push(own.clone());
        let expected = concat_batches(&schema, &batches).expect("concatenated");
        let held = output.get_array_memory_size() + own.get_array_memory_size();
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 20));
        let reservation = MemoryConsumer::new("test").register(&pool);
        let mut stream: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&schema) as SchemaRef,
            futures::stream::iter(batches.into_iter().map(Ok)),
        ));
        drop((output, own));
        let one = gathered(&mut stream, &schema, &reservation)
            .await
            .expect("the slices fit in 1 MiB");
        assert_eq!(one, expected);
        // Each buffer counted once: no more than the two batches' buffers.
        assert!(
            reservation.size() > 0 && reservation.size() <= held,
            "{} > {held}",
            reservation.size()
        );
        // No rows at all: an empty batch of the schema.
        let mut empty: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&schema) as SchemaRef,
            futures::stream::empty(),
        ));
        let none = gathered(&mut empty, &schema, &reservation)
            .await
            .expect("gathered");
        assert_eq!((none.num_rows(), none.schema()), (0, Arc::clone(&schema)));
    }

    #[test]
    fn a_key_twice_on_the_grouped_side_is_an_error_not_a_lost_row() {
        for spread in [1, 1 << 40] {
            let keys = keys(
                &DataType::Int64,
                [Some(3), None, Some(4), None, Some(3)].into_iter(),
                spread,
            );
            let error = KeyIndex::new(&keys, KeyType::Int64)
                .err()
                .expect("a key twice is refused");
            assert!(error.to_string().contains("is twice"), "{error}");
        }
    }

    #[test]
    fn nulls_and_missing_keys_match_no_row() {
        let looked = keys(
            &DataType::Int32,
            [Some(5), None, Some(7), Some(6)].into_iter(),
            1,
        );
        let index = KeyIndex::new(&looked, KeyType::Int32).expect("indexed");
        let kept = keys(
            &DataType::Int32,
            [Some(7), None, Some(4), Some(5), Some(8), Some(6)].into_iter(),
            1,
        );
        let rows = index.rows_of(&kept, KeyType::Int32).expect("looked up");
        assert_eq!(
            rows.iter().collect::<Vec<_>>(),
            [Some(2), None, None, Some(0), None, Some(3)]
        );
    }
}
