//! Final aggregation by an integer key, numbered as the partial phase numbers it.
//!
//! A source's aggregation ends in a final phase that merges each partition's states by the
//! entity key. DataFusion 55 numbers every state's key through a hash table; with a million
//! customers each group's first probe is a cache miss. Where an entity's rows are spread
//! over every row group (a log in time order), the partial phase stops aggregating and
//! passes each row on, and that numbering was 16 % of the churn bench recipe's CPU at L (9 %
//! of the 50-feature recipe's). [`KeyedFinals`] replaces a final `AggregateExec` grouped by
//! one integer column with [`KeyedFinalAggregateExec`], which numbers keys as
//! `run::clustered` does (by offset from the smallest key while they are dense, a map while
//! they are not, a run of one key from the previous row's group), with room for the gaps a
//! hash partition of ids leaves. Keys in no order go to the map at first and back to
//! offsets once the groups fill their span. The rest is DataFusion's final phase: its
//! grouped accumulators merge each batch's states in the same order, groups are emitted at
//! the end in the order first seen, in `batch_size` slices. The rows and values are
//! DataFusion's, bit for bit. Measured at L with the fact tables in time order
//! (interleaved runs of the release binary): churn materialize 2.50 → 2.29 s, the
//! 50-feature recipe 5.34 → 5.03 s; on the generated layout 1.07 → 1.04 s and 2.00 →
//! 2.02 s. A first version that kept the map once keys had left the offsets (as the
//! partial phase did) gave nothing: the map's probes cost what DataFusion's did.
//!
//! An aggregation in one phase (`Single`, `SinglePartitioned`: the rows of a log in time
//! order repartitioned by key, `run::one_phase`) runs here too, its accumulators updated
//! with each batch's rows (and each aggregate's filter) as DataFusion's would be.
//!
//! When the memory pool refuses the groups, they go out as states ahead of the rest of the
//! input (after a partial aggregation, for rows) into DataFusion's own final aggregation,
//! which spills (or fails) as it would have from the start; its spill counts are this
//! node's.

use crate::run::clustered::{Inputs, KeyGroups, KeyType, one_integer_key};
use crate::run::own_execution::{OwnExecution, WithOwnExecution};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DataFusionError, Result, internal_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{
    AggregateExec, AggregateInputMode, AggregateMode, AggregateOutputMode, aggregate_expressions,
};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet, MetricBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::StreamExt;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// The physical optimizer rule (see the module docs).
#[derive(Debug, Default)]
pub struct KeyedFinals;

impl PhysicalOptimizerRule for KeyedFinals {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        KeyedFinalAggregateExec::replace_in(plan)
    }

    fn name(&self) -> &str {
        "featurecraft_keyed_finals"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// A final `AggregateExec` grouped by one integer column, its keys numbered without
/// hashing while they are dense (see the module docs).
pub(crate) type KeyedFinalAggregateExec = WithOwnExecution<KeyedFinal>;

/// How [`KeyedFinalAggregateExec`] executes: the key's type is all it adds.
#[derive(Debug)]
pub(crate) struct KeyedFinal {
    key: KeyType,
}

impl OwnExecution for KeyedFinal {
    const NAME: &'static str = "KeyedFinalAggregateExec";

    /// When `plan` is an aggregation DataFusion runs as this node does: final or in one
    /// phase, over unordered input, one group column of an integer type, no grouping sets
    /// or limit, every aggregate with a grouped accumulator and no ordering.
    fn try_new(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
        let Some(aggregate) = plan.downcast_ref::<AggregateExec>() else {
            return Ok(None);
        };
        if aggregate.mode().output_mode() != AggregateOutputMode::Final
            || aggregate.schema().fields().len() != 1 + aggregate.aggr_expr().len()
        {
            return Ok(None);
        }
        // What the key is evaluated against: the states (a final phase's input; its
        // `input_schema` is the partial phase's) or the rows.
        let key = one_integer_key(aggregate, &aggregate.input().schema())?;
        Ok(key.map(|key| Self { key }))
    }

    fn execute(
        &self,
        plan: &Arc<dyn ExecutionPlan>,
        partition: usize,
        context: Arc<TaskContext>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<SendableRecordBatchStream> {
        let Some(aggregate) = plan.downcast_ref::<AggregateExec>() else {
            return internal_err!("{} wraps an AggregateExec", Self::NAME);
        };
        let schema = aggregate.schema();
        let input = aggregate.input().execute(partition, Arc::clone(&context))?;
        let accumulators = aggregate
            .aggr_expr()
            .iter()
            .map(|a| a.create_groups_accumulator())
            .collect::<Result<Vec<_>>>()?;
        // Rows are aggregated with each aggregate's filter; states merged without.
        let rows = aggregate.mode().input_mode() == AggregateInputMode::Raw;
        let filters = match rows {
            true => aggregate.filter_expr().to_vec(),
            false => vec![None; aggregate.aggr_expr().len()],
        };
        // As DataFusion's final phase: it can spill where the session may write files.
        let can_spill = context.runtime_env().disk_manager.tmp_files_enabled();
        let merging = Merging {
            input,
            schema: Arc::clone(&schema),
            key_type: self.key,
            key: Arc::clone(&aggregate.group_expr().expr()[0].0),
            rows,
            inputs: Inputs::new(
                aggregate_expressions(aggregate.aggr_expr(), aggregate.mode(), 1)?,
                &filters,
            ),
            accumulators,
            groups: KeyGroups::spread(FINAL_SPREAD),
            reservation: MemoryConsumer::new(format!("{}[{partition}]", Self::NAME))
                .with_can_spill(can_spill)
                .register(context.memory_pool()),
            batch_size: context.session_config().batch_size().max(1),
            output: VecDeque::new(),
            emitted: 0,
            finished: false,
            handed: None,
            plan: Arc::clone(plan),
            context,
            partition,
            metrics: metrics.clone(),
            baseline: BaselineMetrics::new(metrics, partition),
        };
        let stream = futures::stream::unfold(merging, |mut merging| async move {
            merging.next().await.map(|item| (item, merging))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.boxed(),
        )))
    }
}

/// How much further apart a final phase's keys may be than a partial phase's and still be
/// numbered by offset: up to 8 slots a group (32 bytes, what a hash table's entry costs),
/// room for one of 8 hash partitions of ids. More partitions than that leave the offsets
/// for the map, as DataFusion would hash them, rather than hold 4 bytes per id per
/// partition.
const FINAL_SPREAD: usize = 2;

/// The metric that counts the groups handed to DataFusion's final aggregation.
pub(crate) const HANDED_OVER: &str = "handed_over_groups";

/// One partition's final aggregation.
struct Merging {
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    key_type: KeyType,
    key: Arc<dyn PhysicalExpr>,
    /// Whether the input is rows (one phase) rather than a partial phase's states.
    rows: bool,
    /// Each aggregate's state columns in the input, or its arguments and filter in the
    /// rows.
    inputs: Inputs,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    groups: KeyGroups,
    reservation: MemoryReservation,
    batch_size: usize,
    /// Batches ready to be returned.
    output: VecDeque<RecordBatch>,
    /// The memory of the emitted groups in `output` (slices of one batch), counted until
    /// the last slice is returned.
    emitted: usize,
    finished: bool,
    /// DataFusion's final aggregation, once the pool refused this one's groups.
    handed: Option<(SendableRecordBatchStream, Arc<dyn ExecutionPlan>)>,
    /// What handing over needs: the replaced node, where it runs, and its metrics.
    plan: Arc<dyn ExecutionPlan>,
    context: Arc<TaskContext>,
    partition: usize,
    metrics: ExecutionPlanMetricsSet,
    baseline: BaselineMetrics,
}

impl Merging {
    async fn next(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            if let Some((stream, aggregate)) = &mut self.handed {
                let next = stream.next().await;
                match &next {
                    Some(Ok(batch)) => self.baseline.record_output(batch.num_rows()),
                    Some(Err(_)) => {}
                    None => {
                        let aggregate = Arc::clone(aggregate);
                        self.count_spills(&aggregate);
                        self.handed = None;
                        self.finished = true;
                    }
                }
                return next;
            }
            if let Some(batch) = self.output.pop_front() {
                if self.output.is_empty() {
                    self.emitted = 0;
                    self.reservation.free();
                }
                self.baseline.record_output(batch.num_rows());
                return Some(Ok(batch));
            }
            if self.finished {
                return None;
            }
            let input = self.input.next().await;
            let step = {
                let time = self.baseline.elapsed_compute().clone();
                let _timer = time.timer();
                match input {
                    Some(Ok(batch)) => self.merge(&batch),
                    Some(Err(e)) => Err(e),
                    None => {
                        self.finished = true;
                        self.emit().map(|()| true)
                    }
                }
            };
            match step {
                Ok(true) => {}
                // Refused: DataFusion's final aggregation takes over.
                Ok(false) => {
                    if let Err(e) = self.hand_over() {
                        self.finished = true;
                        return Some(Err(e));
                    }
                }
                Err(e) => {
                    self.finished = true;
                    self.output.clear();
                    return Some(Err(e));
                }
            }
        }
    }

    /// Merges a batch of states (or rows) into the groups; false when the pool refuses
    /// them.
    fn merge(&mut self, batch: &RecordBatch) -> Result<bool> {
        let keys = self.key.evaluate(batch)?.into_array(batch.num_rows())?;
        self.groups.number_keys(&keys, self.key_type)?;
        let total = self.groups.len();
        let evaluated = self.inputs.evaluate(batch)?;
        for (i, accumulator) in self.accumulators.iter_mut().enumerate() {
            let (values, filter) = self.inputs.of(i, &evaluated)?;
            match self.rows {
                true => accumulator.update_batch(&values, self.groups.rows(), filter, total)?,
                false => accumulator.merge_batch(&values, self.groups.rows(), total)?,
            }
        }
        match self.reservation.try_resize(self.size()) {
            Ok(()) => Ok(true),
            Err(DataFusionError::ResourcesExhausted(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every group's key and value, in `batch_size` slices.
    fn emit(&mut self) -> Result<()> {
        if self.groups.len() == 0 {
            return Ok(());
        }
        let mut columns = vec![self.groups.take_keys(self.key_type)];
        for accumulator in &mut self.accumulators {
            columns.push(accumulator.evaluate(EmitTo::All)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let length = self.batch_size.min(batch.num_rows() - offset);
            self.output.push_back(batch.slice(offset, length));
            offset += length;
        }
        self.emitted = batch.get_array_memory_size();
        // The values exist already: counted if the pool has room, and the groups' memory
        // given back either way.
        if self.reservation.try_resize(self.size()).is_err() {
            self.reservation.try_resize(self.size() - self.emitted)?;
        }
        Ok(())
    }

    /// The groups so far as states, then the rest of the input (through DataFusion's
    /// partial aggregation, when it is rows), into DataFusion's final aggregation of the
    /// replaced node's expressions.
    fn hand_over(&mut self) -> Result<()> {
        let Some(aggregate) = self.plan.downcast_ref::<AggregateExec>() else {
            return internal_err!("{} wraps an AggregateExec", KeyedFinal::NAME);
        };
        let empty = RecordBatchStreamAdapter::new(self.input.schema(), futures::stream::empty());
        let rest = std::mem::replace(&mut self.input, Box::pin(empty));
        let (rest, mode, group_by) = match self.rows {
            true => {
                let partial = AggregateExec::try_new(
                    AggregateMode::Partial,
                    aggregate.group_expr().clone(),
                    aggregate.aggr_expr().to_vec(),
                    aggregate.filter_expr().to_vec(),
                    Arc::new(Once::exec(rest)?),
                    aggregate.input_schema(),
                )?;
                let states = partial.execute(0, Arc::clone(&self.context))?;
                (
                    states,
                    AggregateMode::Final,
                    aggregate.group_expr().as_final(),
                )
            }
            false => (rest, *aggregate.mode(), aggregate.group_expr().clone()),
        };
        let states_schema = rest.schema();
        let mut columns = vec![self.groups.take_keys(self.key_type)];
        for accumulator in &mut self.accumulators {
            columns.extend(accumulator.state(EmitTo::All)?);
        }
        let states = RecordBatch::try_new(Arc::clone(&states_schema), columns)?;
        MetricBuilder::new(&self.metrics)
            .counter(HANDED_OVER, self.partition)
            .add(states.num_rows());
        self.reservation.free();
        let slices: Vec<Result<RecordBatch>> = (0..states.num_rows())
            .step_by(self.batch_size)
            .map(|offset| Ok(states.slice(offset, self.batch_size.min(states.num_rows() - offset))))
            .collect();
        let input =
            RecordBatchStreamAdapter::new(states_schema, futures::stream::iter(slices).chain(rest));
        let handed: Arc<dyn ExecutionPlan> = Arc::new(AggregateExec::try_new(
            mode,
            group_by,
            aggregate.aggr_expr().to_vec(),
            aggregate.filter_expr().to_vec(),
            Arc::new(Once::exec(Box::pin(input))?),
            aggregate.input_schema(),
        )?);
        let stream = handed.execute(0, Arc::clone(&self.context))?;
        self.handed = Some((stream, handed));
        Ok(())
    }

    /// The spills of the aggregation handed over to, as this node's.
    fn count_spills(&self, handed: &Arc<dyn ExecutionPlan>) {
        let Some(metrics) = handed.metrics() else {
            return;
        };
        let counted = MetricBuilder::new(&self.metrics);
        let partition = self.partition;
        counted
            .clone()
            .spill_count(partition)
            .add(metrics.spill_count().unwrap_or(0));
        counted
            .clone()
            .spilled_bytes(partition)
            .add(metrics.spilled_bytes().unwrap_or(0));
        counted
            .spilled_rows(partition)
            .add(metrics.spilled_rows().unwrap_or(0));
    }

    fn size(&self) -> usize {
        self.emitted
            + self.groups.size()
            + self.accumulators.iter().map(|a| a.size()).sum::<usize>()
    }
}

/// A stream executed once, as a plan's one partition.
struct Once {
    schema: SchemaRef,
    stream: Mutex<Option<SendableRecordBatchStream>>,
}

impl Once {
    /// A plan of one partition that is `stream`, executed once.
    fn exec(stream: SendableRecordBatchStream) -> Result<StreamingTableExec> {
        let schema = stream.schema();
        let once = Self {
            schema: Arc::clone(&schema),
            stream: Mutex::new(Some(stream)),
        };
        StreamingTableExec::try_new(schema, vec![Arc::new(once)], None, [], false, None)
    }
}

impl std::fmt::Debug for Once {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Once")
    }
}

impl PartitionStream for Once {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _context: Arc<TaskContext>) -> SendableRecordBatchStream {
        let taken = self.stream.lock().ok().and_then(|mut s| s.take());
        taken.unwrap_or_else(|| {
            Box::pin(RecordBatchStreamAdapter::new(
                Arc::clone(&self.schema),
                futures::stream::once(async {
                    internal_err!("a stream handed to DataFusion's aggregation was read twice")
                }),
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::clustered::ClusteredKeys;
    use crate::run::clustered::tests::{Capped, planned_and_printed, rows_table};
    use crate::run::sample::register_functions;
    use datafusion::arrow::datatypes::DataType;
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::execution::memory_pool::UnboundedMemoryPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::physical_plan::displayable;
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// 6 000 rows in three partitions, each key's rows far apart (as in a log in time
    /// order), every 29th key NULL, every 7th value NULL. The values are quarters, so that
    /// their sums are exact in any order: DataFusion's own rows then do not depend on the
    /// order in which the partitions deliver their states.
    fn table(key: &DataType) -> Arc<MemTable> {
        rows_table(
            key,
            |i| (i % 29 != 0).then_some(i * 7_919 % 1_500),
            |i| (i % 7 != 0).then_some((i % 40) as f64 * 0.25 - 3.0),
        )
    }

    /// A session with or without featurecraft's aggregation rules; `config` sets
    /// DataFusion options, `capped` caps some consumers' memory.
    fn session(
        with_rules: bool,
        config: &[(&str, &str)],
        capped: Option<Capped>,
    ) -> SessionContext {
        let mut session_config = SessionConfig::new()
            .with_target_partitions(3)
            .with_batch_size(300);
        for (key, value) in config {
            session_config = session_config.set_str(key, value);
        }
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(capped) = capped {
            runtime = runtime.with_memory_pool(Arc::new(capped));
        }
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(session_config)
            .with_runtime_env(runtime.build_arc().expect("a runtime"));
        if with_rules {
            state = state
                .with_physical_optimizer_rule(Arc::new(ClusteredKeys))
                .with_physical_optimizer_rule(Arc::new(KeyedFinals));
        }
        let ctx = SessionContext::new_with_state(state.build());
        register_functions(&ctx);
        ctx
    }

    /// The spills of this node and the groups it handed over.
    #[derive(Debug, Default, PartialEq)]
    struct Counts {
        spills: usize,
        handed_over: usize,
    }

    /// The query's rows (printed), its plan, and what its final aggregations counted.
    async fn run(ctx: &SessionContext, key: &DataType, sql: &str) -> (String, String, Counts) {
        ctx.register_table("t", table(key)).expect("registered");
        let (plan, rows) = planned_and_printed(ctx, sql).await;
        let mut counts = Counts::default();
        plan.apply(|node| {
            if node.name() == KeyedFinal::NAME
                && let Some(metrics) = node.metrics()
            {
                counts.spills += metrics.spill_count().unwrap_or(0);
                counts.handed_over += metrics.sum_by_name(HANDED_OVER).map_or(0, |v| v.as_usize());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("walked");
        let plan = displayable(plan.as_ref()).indent(false).to_string();
        (rows, plan, counts)
    }

    const AGGREGATES: &str = "SELECT k, COUNT(*) AS n, COUNT(x) AS n_x, SUM(x) AS s, \
        AVG(x) AS a, MIN(kind) AS lo, MAX(x) AS hi, COUNT(DISTINCT kind) AS kinds, \
        COUNT(DISTINCT x) AS xs, MEDIAN(x) AS mid, SUM(x) FILTER (WHERE kind = 'a') AS s_a \
        FROM t GROUP BY k ORDER BY k";

    /// Partial aggregation stopped after 500 rows: each later row reaches the final
    /// phase as its own state.
    const PASS_ROWS_ON: [(&str, &str); 2] = [
        (
            "datafusion.execution.skip_partial_aggregation_probe_rows_threshold",
            "500",
        ),
        (
            "datafusion.execution.skip_partial_aggregation_probe_ratio_threshold",
            "0.1",
        ),
    ];

    #[tokio::test]
    async fn every_integer_key_gives_datafusions_rows() {
        for key in [DataType::Int64, DataType::Int32, DataType::UInt64] {
            for config in [&[][..], &PASS_ROWS_ON[..]] {
                let (plain, plain_plan, _) =
                    run(&session(false, config, None), &key, AGGREGATES).await;
                let (ours, plan, counts) =
                    run(&session(true, config, None), &key, AGGREGATES).await;
                assert_eq!(ours, plain, "{key} {config:?}");
                assert!(!plain_plan.contains(KeyedFinal::NAME), "{plain_plan}");
                assert_eq!(plan.matches(KeyedFinal::NAME).count(), 1, "{plan}");
                assert_eq!(counts, Counts::default());
                // The 1 500 keys and NULL, and the header.
                assert_eq!(ours.lines().filter(|l| l.starts_with("| ")).count(), 1_502);
            }
        }
    }

    #[tokio::test]
    async fn refused_memory_hands_the_groups_to_datafusions_final_aggregation() {
        let (plain, _, _) = run(&session(false, &[], None), &DataType::Int64, AGGREGATES).await;
        // Only this node capped: DataFusion's final aggregation takes the groups so far
        // and the rest of the input, and finishes in memory.
        let ours_capped = Capped {
            capped: vec![(KeyedFinal::NAME, 16_000)],
            pool: UnboundedMemoryPool::default(),
        };
        let (handed, plan, counts) = run(
            &session(true, &PASS_ROWS_ON, Some(ours_capped)),
            &DataType::Int64,
            AGGREGATES,
        )
        .await;
        assert!(plan.contains(KeyedFinal::NAME), "{plan}");
        assert_eq!(handed, plain);
        assert_eq!(counts.spills, 0);
        assert!(counts.handed_over > 0, "nothing handed over");
        // DataFusion's capped too, with room to merge its spills back but not to hold
        // every group: it spills, and its spills are this node's.
        let both_capped = Capped {
            capped: vec![
                (KeyedFinal::NAME, 16_000),
                ("FinalHashAggregateStream", 150_000),
            ],
            pool: UnboundedMemoryPool::default(),
        };
        let (spilled, _, counts) = run(
            &session(true, &PASS_ROWS_ON, Some(both_capped)),
            &DataType::Int64,
            AGGREGATES,
        )
        .await;
        assert_eq!(spilled, plain);
        assert!(counts.spills > 0 && counts.handed_over > 0, "{counts:?}");
    }

    #[tokio::test]
    async fn other_aggregations_are_left_to_datafusion() {
        for sql in [
            // A string key.
            "SELECT kind, COUNT(*) AS n FROM t GROUP BY kind ORDER BY kind",
            // Two keys.
            "SELECT k, kind, COUNT(*) AS n FROM t GROUP BY k, kind ORDER BY k, kind",
            // An aggregate with an ordering of its own.
            "SELECT k, ARRAY_AGG(x ORDER BY x) AS xs FROM t GROUP BY k ORDER BY k",
            // No grouping.
            "SELECT COUNT(*) AS n FROM t",
        ] {
            let (plain, _, _) = run(&session(false, &[], None), &DataType::Int64, sql).await;
            let (ours, plan, _) = run(&session(true, &[], None), &DataType::Int64, sql).await;
            assert!(!plan.contains(KeyedFinal::NAME), "{sql}: {plan}");
            assert_eq!(ours, plain, "{sql}");
        }
    }
}
