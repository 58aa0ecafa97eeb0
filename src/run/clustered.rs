//! Partial aggregation by an integer key, numbered without hashing while keys are dense.
//!
//! Every source of a recipe is grouped by the entity key, an id, and sources are usually
//! written clustered by it: an events file holds each customer's rows together. DataFusion's
//! partial aggregation numbers each row's key through a hash table; with a million
//! customers the table outgrows the CPU's caches and each group's first insert is a cache
//! miss (the lookups of a run of equal keys hit). That was the largest single cost of
//! materializing the churn bench recipe at L (14 % of its CPU, over the events source's
//! 18.5 M rows). [`ClusteredKeys`] replaces a partial `AggregateExec` grouped by one
//! integer column with [`ClusteredPartialAggregateExec`], which numbers keys the same way
//! (in the order first seen) by their offset from the smallest key while the keys span at
//! most 4 values per group (plus 65 536): ids in order are numbered in order, in memory
//! read and written in order. Keys spread wider go to a hash map, and back to offsets once
//! the groups fill their span; a row whose key is the previous row's takes its group from
//! neither. Measured at L (interleaved runs of the release binary): churn materialize
//! 1.294 → 1.196 s, the 50-feature recipe 2.563 → 2.454 s; the previous row's group alone,
//! with the map, gave 1.294 → 1.271 s. The final phase numbers its keys the same way
//! (`run::keyed_final`).
//!
//! The rest is DataFusion 55's partial aggregation, followed to the letter so that the
//! final phase sees the same input: the aggregates' grouped accumulators (DataFusion's, or
//! for `COUNT`, `SUM`, `AVG`, `MIN` and `MAX` featurecraft's over each batch's runs of one
//! key, `run::runs`, with DataFusion's states), groups emitted in the order first seen in
//! `batch_size` slices, every state emitted early when the memory pool refuses more (a
//! partial aggregation may emit a group twice), and the switch to passing each row's state
//! through once nearly every row is a new group
//! (`datafusion.execution.skip_partial_aggregation_probe_*`). The rule is in featurecraft's
//! local sessions; a cluster's scheduler plans with Ballista's rules.

use crate::run::own_execution::{OwnExecution, WithOwnExecution};
use crate::run::runs::{self, Runs, RunsAccumulator};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int32Array, Int64Array, PrimitiveArray, RecordBatch,
    UInt32Array, UInt64Array,
};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Int32Type, Int64Type, Schema, SchemaRef, UInt32Type, UInt64Type,
};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{DataFusionError, HashMap, Result, internal_err};
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode, aggregate_expressions};
use datafusion::physical_plan::metrics::{BaselineMetrics, ExecutionPlanMetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, InputOrderMode};
use futures::StreamExt;
use std::collections::VecDeque;
use std::sync::Arc;

/// The physical optimizer rule (see the module docs).
#[derive(Debug, Default)]
pub struct ClusteredKeys;

impl PhysicalOptimizerRule for ClusteredKeys {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        ClusteredPartialAggregateExec::replace_in(plan)
    }

    fn name(&self) -> &str {
        "featurecraft_clustered_keys"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// The integer types a key may have here; each is numbered as an `i64` (losslessly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyType {
    Int32,
    Int64,
    UInt32,
    UInt64,
}

impl KeyType {
    pub(crate) fn of(data_type: &DataType) -> Option<Self> {
        match data_type {
            DataType::Int32 => Some(Self::Int32),
            DataType::Int64 => Some(Self::Int64),
            DataType::UInt32 => Some(Self::UInt32),
            DataType::UInt64 => Some(Self::UInt64),
            _ => None,
        }
    }
}

/// The key's type when `aggregate` runs over unordered input, grouped by one column of an
/// integer type (its type in `input`, the schema the key is evaluated against), with no
/// grouping sets or limit, and every aggregate has a grouped accumulator and no ordering:
/// what featurecraft's partial and final aggregation nodes execute.
pub(crate) fn one_integer_key(
    aggregate: &AggregateExec,
    input: &Schema,
) -> Result<Option<KeyType>> {
    let group_by = aggregate.group_expr();
    if *aggregate.input_order_mode() != InputOrderMode::Linear
        || aggregate.limit_options().is_some()
        || !group_by.is_single()
        || group_by.expr().len() != 1
        || aggregate
            .aggr_expr()
            .iter()
            .any(|a| !a.order_bys().is_empty() || !a.groups_accumulator_supported())
    {
        return Ok(None);
    }
    Ok(KeyType::of(&group_by.expr()[0].0.data_type(input)?))
}

/// A partial `AggregateExec` grouped by one integer column, run with the previous row's
/// group kept (see the module docs). Its schema, properties and expressions are the
/// replaced node's.
pub(crate) type ClusteredPartialAggregateExec = WithOwnExecution<ClusteredPartial>;

/// How [`ClusteredPartialAggregateExec`] executes: the key's type is all it adds.
#[derive(Debug)]
pub(crate) struct ClusteredPartial {
    key: KeyType,
}

impl OwnExecution for ClusteredPartial {
    const NAME: &'static str = "ClusteredPartialAggregateExec";

    /// When `plan` is an aggregation this node runs as DataFusion would: partial, over
    /// unordered input, one group column of an integer type, no grouping sets or limit,
    /// every aggregate with a grouped accumulator and no ordering.
    fn try_new(plan: &Arc<dyn ExecutionPlan>) -> Result<Option<Self>> {
        let Some(aggregate) = plan.downcast_ref::<AggregateExec>() else {
            return Ok(None);
        };
        if *aggregate.mode() != AggregateMode::Partial {
            return Ok(None);
        }
        let Some(key) = one_integer_key(aggregate, &aggregate.input_schema())? else {
            return Ok(None);
        };
        let mut states = 0;
        for a in aggregate.aggr_expr() {
            states += a.state_fields()?.len();
        }
        if aggregate.schema().fields().len() != 1 + states {
            return Ok(None);
        }
        Ok(Some(Self { key }))
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
        let options = &context.session_config().options().execution;
        // As DataFusion: a ratio threshold of 1 or more can never be exceeded.
        let probe =
            (options.skip_partial_aggregation_probe_ratio_threshold < 1.0).then_some(Probe {
                rows_threshold: options.skip_partial_aggregation_probe_rows_threshold,
                ratio_threshold: options.skip_partial_aggregation_probe_ratio_threshold,
                rows: 0,
            });
        let accumulators = aggregate
            .aggr_expr()
            .iter()
            .map(|a| {
                Ok(match runs::accumulator_for(a, &aggregate.input_schema())? {
                    Some(by_runs) => Accumulator::Runs(by_runs),
                    None => Accumulator::Rows(a.create_groups_accumulator()?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let partial = Partial {
            input,
            schema: Arc::clone(&schema),
            key_type: self.key,
            key: Arc::clone(&aggregate.group_expr().expr()[0].0),
            inputs: Inputs::new(
                aggregate_expressions(aggregate.aggr_expr(), aggregate.mode(), 0)?,
                aggregate.filter_expr(),
            ),
            accumulators,
            groups: KeyGroups::default(),
            runs: Runs::default(),
            reservation: MemoryConsumer::new(format!("{}[{partition}]", Self::NAME))
                .with_can_spill(true)
                .register(context.memory_pool()),
            batch_size: context.session_config().batch_size().max(1),
            probe,
            skipping: false,
            output: VecDeque::new(),
            emitted: 0,
            finished: false,
            baseline: BaselineMetrics::new(metrics, partition),
        };
        let stream = futures::stream::unfold(partial, |mut partial| async move {
            partial.next().await.map(|item| (item, partial))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.boxed(),
        )))
    }
}

/// When to stop aggregating: DataFusion's probe, after `rows_threshold` input rows, of
/// whether groups are more than `ratio_threshold` of the rows.
struct Probe {
    rows_threshold: usize,
    ratio_threshold: f64,
    rows: usize,
}

/// The groups of one partition: each key's group number, in the order first seen.
pub(crate) struct KeyGroups {
    /// While the keys seen span few values per group (ids, mostly): each key's group at its
    /// offset, read and written in the keys' order; past that, `numbers`.
    dense: Option<Dense>,
    numbers: HashMap<i64, usize>,
    /// Each group's key (0 for the NULL key's group).
    keys: Vec<i64>,
    null_group: Option<usize>,
    /// The previous row's key and group.
    last: Option<(i64, usize)>,
    /// The current batch's group of each row.
    rows: Vec<usize>,
    /// How many times [`Dense::limit`]'s slots per group the keys may span while dense.
    spread: usize,
    /// The least and greatest key numbered.
    bounds: Option<(i64, i64)>,
}

impl Default for KeyGroups {
    fn default() -> Self {
        Self::spread(1)
    }
}

/// How many rows ahead [`KeyGroups`] prefetches a key's slot.
const PREFETCH_AHEAD: usize = 16;

/// A slot of [`Dense`] without a group.
const NO_GROUP: u32 = u32::MAX;

/// Keys numbered by their offset from `base`.
#[derive(Default)]
pub(crate) struct Dense {
    base: i64,
    groups: Vec<u32>,
}

impl Dense {
    /// Slots a dense numbering may have for `groups` groups: the keys of a source's
    /// partition are ids, a few values apart at most.
    pub(crate) fn limit(groups: usize) -> usize {
        4 * groups + (1 << 16)
    }

    /// The slot of `key`, the slots grown (doubling) to hold it unless that passes `limit`.
    fn slot(&mut self, key: i64, limit: usize) -> Option<usize> {
        let len = self.groups.len();
        if len == 0 {
            self.base = key;
        }
        let offset = key.checked_sub(self.base)?;
        let (grow, slot) = if offset >= 0 {
            let offset = usize::try_from(offset).ok()?;
            if offset < len {
                return Some(offset);
            }
            (offset + 1 - len, offset)
        } else {
            // Below the first slot: the slots move up.
            let below = usize::try_from(offset.unsigned_abs()).ok()?;
            (below, 0)
        };
        let mut by = grow.max(len);
        if len + by > limit {
            by = grow;
        }
        if len.checked_add(by)? > limit {
            return None;
        }
        if offset >= 0 {
            self.groups.resize(len + by, NO_GROUP);
            Some(slot)
        } else {
            let base = self.base.checked_sub(i64::try_from(by).ok()?)?;
            let mut groups = Vec::with_capacity(len + by);
            groups.resize(by, NO_GROUP);
            groups.extend_from_slice(&self.groups);
            self.groups = groups;
            self.base = base;
            Some(by - grow)
        }
    }
}

impl KeyGroups {
    /// Groups whose keys may be `spread` times as far apart as a partition of a source's
    /// ids are and still be numbered densely: one of `spread` hash partitions of them.
    pub(crate) fn spread(spread: usize) -> Self {
        Self {
            dense: Some(Dense::default()),
            numbers: HashMap::default(),
            keys: Vec::new(),
            null_group: None,
            last: None,
            rows: Vec::new(),
            spread: spread.max(1),
            bounds: None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The current batch's group of each row, as [`Self::number`] left them.
    pub(crate) fn rows(&self) -> &[usize] {
        &self.rows
    }

    /// Numbers the rows of `keys`, an array of `key_type`, into [`Self::rows`].
    pub(crate) fn number_keys(&mut self, keys: &ArrayRef, key_type: KeyType) -> Result<()> {
        let numbered = match key_type {
            KeyType::Int64 => keys
                .as_primitive_opt::<Int64Type>()
                .map(|keys| self.number(keys, |k| k)),
            KeyType::Int32 => keys
                .as_primitive_opt::<Int32Type>()
                .map(|keys| self.number(keys, i64::from)),
            KeyType::UInt32 => keys
                .as_primitive_opt::<UInt32Type>()
                .map(|keys| self.number(keys, i64::from)),
            // A bijection of u64 onto i64: equal keys stay equal, distinct stay distinct.
            KeyType::UInt64 => keys
                .as_primitive_opt::<UInt64Type>()
                .map(|keys| self.number(keys, |k| k as i64)),
        };
        match numbered {
            Some(()) => Ok(()),
            None => internal_err!("keys of {}, not {key_type:?}", keys.data_type()),
        }
    }

    fn group_of(&mut self, key: i64) -> usize {
        if let Some((last, group)) = self.last
            && last == key
        {
            return group;
        }
        let next = self.keys.len();
        let limit = Dense::limit((next + 1).saturating_mul(self.spread));
        let dense = match &mut self.dense {
            Some(dense) if next < NO_GROUP as usize => {
                dense.slot(key, limit).map(|slot| (dense, slot))
            }
            _ => None,
        };
        let group = match dense {
            Some((dense, slot)) => match dense.groups[slot] {
                NO_GROUP => {
                    dense.groups[slot] = next as u32;
                    next
                }
                group => group as usize,
            },
            None => {
                // Too spread out for slots: every group so far into the map.
                if let Some(dense) = self.dense.take() {
                    for (offset, &group) in dense.groups.iter().enumerate() {
                        if group != NO_GROUP {
                            self.numbers
                                .insert(dense.base + offset as i64, group as usize);
                        }
                    }
                }
                *self.numbers.entry(key).or_insert(next)
            }
        };
        if group == next {
            self.keys.push(key);
            self.bounds = Some(match self.bounds {
                Some((low, high)) => (low.min(key), high.max(key)),
                None => (key, key),
            });
            if self.dense.is_none() && self.keys.len().is_power_of_two() {
                self.densify();
            }
        }
        self.last = Some((key, group));
        group
    }

    /// Asks the CPU to bring `key`'s slot into the cache: keys in no order miss it, and
    /// `PREFETCH_AHEAD` rows later the load finds it there.
    fn prefetch(&self, key: i64) {
        #[cfg(target_arch = "x86_64")]
        if let Some(dense) = &self.dense
            && let Some(slot) = dense.groups.get(key.wrapping_sub(dense.base) as usize)
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            // SAFETY: SSE is part of every x86_64 target, and a prefetch is a hint that
            // never faults; the address is a slot's in any case.
            unsafe { _mm_prefetch::<_MM_HINT_T0>((slot as *const u32).cast()) };
        }
    }

    /// Back to slots from the map when the keys seen span few enough values for the
    /// groups there are: keys that arrive in no order (the final phase of a log in time
    /// order) span nearly all their values after the first few groups.
    fn densify(&mut self) {
        let Some((low, high)) = self.bounds else {
            return;
        };
        let span = high
            .checked_sub(low)
            .and_then(|span| usize::try_from(span).ok())
            .and_then(|span| span.checked_add(1));
        let groups = self.keys.len();
        let Some(span) = span.filter(|&span| {
            span <= Dense::limit(groups.saturating_mul(self.spread)) && groups < NO_GROUP as usize
        }) else {
            return;
        };
        let mut slots = vec![NO_GROUP; span];
        for (&key, &group) in &self.numbers {
            // Within the bounds, as every key numbered is.
            if let Some(slot) = slots.get_mut(key.abs_diff(low) as usize) {
                *slot = group as u32;
            }
        }
        self.dense = Some(Dense {
            base: low,
            groups: slots,
        });
        self.numbers = HashMap::default();
    }

    fn null_group(&mut self) -> usize {
        match self.null_group {
            Some(group) => group,
            None => {
                let group = self.keys.len();
                self.keys.push(0);
                self.null_group = Some(group);
                group
            }
        }
    }

    /// Numbers the rows of `keys` into `self.rows`.
    fn number<T: ArrowPrimitiveType>(
        &mut self,
        keys: &PrimitiveArray<T>,
        widen: impl Fn(T::Native) -> i64,
    ) {
        let mut rows = std::mem::take(&mut self.rows);
        rows.clear();
        rows.reserve(keys.len());
        if keys.null_count() == 0 {
            let values = keys.values();
            for (i, &k) in values.iter().enumerate() {
                if let Some(&ahead) = values.get(i + PREFETCH_AHEAD) {
                    self.prefetch(widen(ahead));
                }
                rows.push(self.group_of(widen(k)));
            }
        } else {
            for (i, &k) in keys.values().iter().enumerate() {
                let group = if keys.is_valid(i) {
                    self.group_of(widen(k))
                } else {
                    self.null_group()
                };
                rows.push(group);
            }
        }
        self.rows = rows;
    }

    /// Every group's key as an array of `key_type`, the groups forgotten.
    pub(crate) fn take_keys(&mut self, key_type: KeyType) -> ArrayRef {
        let keys = std::mem::take(&mut self.keys);
        let nulls = self
            .null_group
            .take()
            .map(|null| NullBuffer::from_iter((0..keys.len()).map(|group| group != null)));
        // Emitting is how memory is given back: the numbering's too.
        self.numbers = HashMap::default();
        self.dense = Some(Dense::default());
        self.last = None;
        self.bounds = None;
        // Each key was widened from `key_type`: narrowing it back is exact.
        match key_type {
            KeyType::Int64 => Arc::new(Int64Array::new(keys.into(), nulls)),
            KeyType::Int32 => Arc::new(Int32Array::new(
                keys.iter().map(|&k| k as i32).collect(),
                nulls,
            )),
            KeyType::UInt32 => Arc::new(UInt32Array::new(
                keys.iter().map(|&k| k as u32).collect(),
                nulls,
            )),
            KeyType::UInt64 => Arc::new(UInt64Array::new(
                keys.iter().map(|&k| k as u64).collect(),
                nulls,
            )),
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.dense
            .as_ref()
            .map_or(0, |d| d.groups.capacity() * size_of::<u32>())
            + self.numbers.capacity() * (size_of::<(i64, usize)>() + 1)
            + self.keys.capacity() * size_of::<i64>()
            + self.rows.capacity() * size_of::<usize>()
    }
}

/// One partition's partial aggregation.
struct Partial {
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    key_type: KeyType,
    key: Arc<dyn PhysicalExpr>,
    inputs: Inputs,
    accumulators: Vec<Accumulator>,
    groups: KeyGroups,
    /// The current batch's rows as runs of one group, for the accumulators that take them.
    runs: Runs,
    reservation: MemoryReservation,
    batch_size: usize,
    probe: Option<Probe>,
    /// Past the probe's threshold: each input row's state is passed through.
    skipping: bool,
    /// Batches ready to be returned.
    output: VecDeque<RecordBatch>,
    /// The memory of the emitted states in `output` (slices of one batch), counted in the
    /// reservation until the last slice is returned, as DataFusion counts its output.
    emitted: usize,
    finished: bool,
    baseline: BaselineMetrics,
}

impl Partial {
    async fn next(&mut self) -> Option<Result<RecordBatch>> {
        loop {
            if let Some(batch) = self.output.pop_front() {
                if self.output.is_empty() && self.emitted > 0 {
                    self.emitted = 0;
                    // Shrinking: never refused.
                    let _ = self.reservation.try_resize(self.size());
                }
                self.baseline.record_output(batch.num_rows());
                return Some(Ok(batch));
            }
            if self.finished {
                return None;
            }
            let input = self.input.next().await;
            let time = self.baseline.elapsed_compute().clone();
            let _timer = time.timer();
            let step = match input {
                Some(Ok(batch)) if self.skipping => self.pass_through(&batch),
                Some(Ok(batch)) => self.aggregate(&batch),
                Some(Err(e)) => Err(e),
                None => {
                    self.finished = true;
                    self.emit()
                }
            };
            if let Err(e) = step {
                self.finished = true;
                self.output.clear();
                return Some(Err(e));
            }
        }
    }

    fn aggregate(&mut self, batch: &RecordBatch) -> Result<()> {
        let keys = self.key.evaluate(batch)?.into_array(batch.num_rows())?;
        self.groups.number_keys(&keys, self.key_type)?;
        let total = self.groups.len();
        if self
            .accumulators
            .iter()
            .any(|a| matches!(a, Accumulator::Runs(_)))
        {
            self.runs.find(&self.groups.rows);
        }
        let evaluated = self.inputs.evaluate(batch)?;
        for (i, accumulator) in self.accumulators.iter_mut().enumerate() {
            let (values, filter) = self.inputs.of(i, &evaluated)?;
            match accumulator {
                Accumulator::Runs(a) => a.update_runs(&values, &self.runs, filter, total)?,
                Accumulator::Rows(a) => {
                    a.update_batch(&values, &self.groups.rows, filter, total)?
                }
            }
        }
        // DataFusion's probe: the rows so far against the groups now.
        if let Some(probe) = &mut self.probe {
            probe.rows += batch.num_rows();
            if probe.rows >= probe.rows_threshold
                && self.groups.len() as f64 / probe.rows as f64 > probe.ratio_threshold
            {
                self.skipping = true;
                return self.emit();
            }
        }
        // Past the memory pool's limit, every group's state goes out now.
        match self.reservation.try_resize(self.size()) {
            Err(DataFusionError::ResourcesExhausted(_)) => self.emit(),
            other => other,
        }
    }

    /// Each row's own state (the groups' are out already).
    fn pass_through(&mut self, batch: &RecordBatch) -> Result<()> {
        let mut columns = vec![self.key.evaluate(batch)?.into_array(batch.num_rows())?];
        let evaluated = self.inputs.evaluate(batch)?;
        for (i, accumulator) in self.accumulators.iter_mut().enumerate() {
            let (values, filter) = self.inputs.of(i, &evaluated)?;
            columns.extend(accumulator.groups().convert_to_state(&values, filter)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        if batch.num_rows() > 0 {
            self.output.push_back(batch);
        }
        Ok(())
    }

    /// Every group's key and states, in `batch_size` slices; the groups forgotten and their
    /// memory given back.
    fn emit(&mut self) -> Result<()> {
        if self.groups.len() == 0 {
            return Ok(());
        }
        let mut columns = vec![self.groups.take_keys(self.key_type)];
        for accumulator in &mut self.accumulators {
            columns.extend(accumulator.groups().state(EmitTo::All)?);
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), columns)?;
        let mut offset = 0;
        while offset < batch.num_rows() {
            let length = self.batch_size.min(batch.num_rows() - offset);
            self.output.push_back(batch.slice(offset, length));
            offset += length;
        }
        self.emitted = batch.get_array_memory_size();
        // The states exist already: counted if the pool has room (as DataFusion does with
        // its output), and the table's memory given back either way.
        if self.reservation.try_resize(self.size()).is_err() {
            self.reservation.try_resize(self.size() - self.emitted)?;
        }
        Ok(())
    }

    fn size(&self) -> usize {
        self.emitted
            + self.groups.size()
            + self.runs.size()
            + self
                .accumulators
                .iter()
                .map(Accumulator::size)
                .sum::<usize>()
    }
}

/// An aggregate's grouped accumulator: featurecraft's over runs of one group (`COUNT`,
/// `SUM`, `AVG`, `MIN`, `MAX`: `run::runs`), or DataFusion's.
enum Accumulator {
    Runs(Box<dyn RunsAccumulator>),
    Rows(Box<dyn GroupsAccumulator>),
}

impl Accumulator {
    fn groups(&mut self) -> &mut dyn GroupsAccumulator {
        match self {
            Self::Runs(a) => a.as_mut(),
            Self::Rows(a) => a.as_mut(),
        }
    }

    fn size(&self) -> usize {
        match self {
            Self::Runs(a) => a.size(),
            Self::Rows(a) => a.size(),
        }
    }
}

/// The aggregates' argument and filter expressions, each distinct one evaluated once per
/// batch: conditional aggregates share their predicate (`COUNT(*) FILTER (WHERE p)` beside
/// `SUM(x) FILTER (WHERE p)`) and counts their literal argument, which DataFusion evaluates
/// again for each aggregate (measured: see `BENCHMARKS.md`, tenth pass).
pub(crate) struct Inputs {
    distinct: Vec<Arc<dyn PhysicalExpr>>,
    /// Each aggregate's arguments, as places in `distinct`.
    arguments: Vec<Vec<usize>>,
    /// Each aggregate's filter, as a place in `distinct`.
    filters: Vec<Option<usize>>,
}

impl Inputs {
    /// Each aggregate's `arguments` and filter (`filters`, one per aggregate).
    pub(crate) fn new(
        arguments: Vec<Vec<Arc<dyn PhysicalExpr>>>,
        filters: &[Option<Arc<dyn PhysicalExpr>>],
    ) -> Self {
        let mut distinct: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        let mut place = |expr: &Arc<dyn PhysicalExpr>| match distinct.iter().position(|d| d == expr)
        {
            Some(i) => i,
            None => {
                distinct.push(Arc::clone(expr));
                distinct.len() - 1
            }
        };
        let arguments = arguments
            .iter()
            .map(|exprs| exprs.iter().map(&mut place).collect())
            .collect();
        let filters = filters.iter().map(|f| f.as_ref().map(&mut place)).collect();
        Self {
            distinct,
            arguments,
            filters,
        }
    }

    /// Every distinct expression's value over the batch.
    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.distinct
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
            .collect()
    }

    /// Aggregate `i`'s arguments and filter mask among the `evaluated` expressions.
    pub(crate) fn of<'a>(
        &self,
        i: usize,
        evaluated: &'a [ArrayRef],
    ) -> Result<(Vec<ArrayRef>, Option<&'a BooleanArray>)> {
        let (Some(arguments), Some(filter)) = (self.arguments.get(i), self.filters.get(i)) else {
            return internal_err!("no inputs for aggregate {i}");
        };
        let values = arguments
            .iter()
            .map(|&place| Arc::clone(&evaluated[place]))
            .collect();
        let filter = match filter.map(|place| &evaluated[place]) {
            None => None,
            Some(f) => match f.as_boolean_opt() {
                Some(mask) => Some(mask),
                None => {
                    return internal_err!(
                        "an aggregate's filter is {}, not boolean",
                        f.data_type()
                    );
                }
            },
        };
        Ok((values, filter))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::run::sample::register_functions;
    use datafusion::arrow::array::{Float64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::datasource::MemTable;
    use datafusion::execution::SessionStateBuilder;
    use datafusion::execution::memory_pool::{MemoryPool, UnboundedMemoryPool};
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::physical_plan::{collect, displayable};
    use datafusion::prelude::{SessionConfig, SessionContext};

    /// 6 000 rows in three partitions: keys in runs (1 to 9 rows long, as a file clustered
    /// by key), a key seen again after others, NULL keys and NULL values among them.
    fn table(key: DataType) -> Arc<MemTable> {
        // Row i's key: its run's number, runs of 1 + i % 9 rows; every 17th row a key from
        // far back, every 29th NULL.
        rows_table(
            &key,
            |i| (i % 29 != 0).then_some(if i % 17 == 0 { i / 40 } else { i / 5 }),
            |i| (i % 7 != 0).then_some(i as f64 * 0.37 - 100.0),
        )
    }

    /// 6 000 rows (i = 0..6 000) in three partitions of two batches: `k` of type `key`
    /// from `key_of(i)` (an `Int32` less 700, so negative too; a `UInt64` spread past
    /// `i64::MAX` and over 0), `kind` one of three strings or NULL, `x` from `x_of(i)`.
    /// `run::keyed_final`'s tests use it too.
    pub(crate) fn rows_table(
        key: &DataType,
        key_of: fn(i64) -> Option<i64>,
        x_of: fn(i64) -> Option<f64>,
    ) -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", key.clone(), true),
            Field::new("kind", DataType::Utf8, true),
            Field::new("x", DataType::Float64, true),
        ]));
        let batch = |from: i64| {
            let rows = from..from + 1000;
            let keys = rows.clone().map(key_of);
            let keys: ArrayRef = match key {
                DataType::Int32 => Arc::new(Int32Array::from_iter(
                    keys.map(|k| k.map(|k| k as i32 - 700)),
                )),
                DataType::UInt64 => {
                    Arc::new(UInt64Array::from_iter(keys.map(|k| {
                        k.map(|k| (k as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                    })))
                }
                _ => Arc::new(Int64Array::from_iter(keys)),
            };
            RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    keys,
                    Arc::new(StringArray::from_iter(rows.clone().map(|i| {
                        (i % 13 != 0).then(|| ["a", "b", "c"][(i % 3) as usize].to_string())
                    }))),
                    Arc::new(Float64Array::from_iter(rows.map(x_of))),
                ],
            )
            .expect("a valid batch")
        };
        let partitions = (0..3)
            .map(|p| vec![batch(2_000 * p), batch(2_000 * p + 1_000)])
            .collect();
        Arc::new(MemTable::try_new(schema, partitions).expect("a valid table"))
    }

    /// `sql` planned in `ctx`, and its rows run and printed (the tests of featurecraft's
    /// plan nodes compare these with DataFusion's own).
    pub(crate) async fn planned_and_printed(
        ctx: &SessionContext,
        sql: &str,
    ) -> (Arc<dyn ExecutionPlan>, String) {
        let plan = ctx
            .sql(sql)
            .await
            .expect("planned")
            .create_physical_plan()
            .await
            .expect("a physical plan");
        let batches = collect(Arc::clone(&plan), ctx.task_ctx())
            .await
            .expect("ran");
        let printed = pretty_format_batches(&batches)
            .expect("printed")
            .to_string();
        (plan, printed)
    }

    /// A memory pool that refuses the consumers named in `capped` more than their bytes,
    /// and lets every other have what it asks (`run::keyed_final`'s tests use it too).
    #[derive(Debug)]
    pub(crate) struct Capped {
        /// A part of consumers' names, and the bytes each of those may have.
        pub(crate) capped: Vec<(&'static str, usize)>,
        pub(crate) pool: UnboundedMemoryPool,
    }

    impl std::fmt::Display for Capped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "capped: {:?}", self.capped)
        }
    }

    impl MemoryPool for Capped {
        fn name(&self) -> &str {
            "capped"
        }

        fn grow(&self, reservation: &MemoryReservation, additional: usize) {
            self.pool.grow(reservation, additional);
        }

        fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
            self.pool.shrink(reservation, shrink);
        }

        fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
            let name = reservation.consumer().name();
            if self
                .capped
                .iter()
                .any(|(c, limit)| name.contains(c) && reservation.size() + additional > *limit)
            {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "{name}: {self}"
                )));
            }
            self.pool.try_grow(reservation, additional)
        }

        fn reserved(&self) -> usize {
            self.pool.reserved()
        }
    }

    /// A session with or without the rule; `config` sets DataFusion options, `memory` caps
    /// each partial aggregation's memory (in bytes).
    fn session(with_rule: bool, config: &[(&str, &str)], memory: Option<usize>) -> SessionContext {
        let mut session_config = SessionConfig::new()
            .with_target_partitions(3)
            .with_batch_size(300);
        for (key, value) in config {
            session_config = session_config.set_str(key, value);
        }
        let mut runtime = RuntimeEnvBuilder::new();
        if let Some(limit) = memory {
            runtime = runtime.with_memory_pool(Arc::new(Capped {
                capped: vec![("PartialAggregate", limit)],
                pool: UnboundedMemoryPool::default(),
            }));
        }
        let mut state = SessionStateBuilder::new()
            .with_default_features()
            .with_config(session_config)
            .with_runtime_env(runtime.build_arc().expect("a runtime"));
        if with_rule {
            state = state.with_physical_optimizer_rule(Arc::new(ClusteredKeys));
        }
        let ctx = SessionContext::new_with_state(state.build());
        register_functions(&ctx);
        ctx
    }

    /// The query's rows (printed), its plan, and the rows our node emitted.
    async fn run(ctx: &SessionContext, key: DataType, sql: &str) -> (String, String, usize) {
        ctx.register_table("t", table(key)).expect("registered");
        let (plan, rows) = planned_and_printed(ctx, sql).await;
        let mut emitted = 0;
        plan.apply(|node| {
            if node.name() == "ClusteredPartialAggregateExec" {
                emitted += node
                    .metrics()
                    .and_then(|m| m.output_rows())
                    .unwrap_or_default();
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .expect("walked");
        let plan = displayable(plan.as_ref()).indent(false).to_string();
        (rows, plan, emitted)
    }

    /// Printed rows in a fixed order.
    fn sorted(rows: &str) -> String {
        let mut lines: Vec<&str> = rows.lines().collect();
        lines.sort_unstable();
        lines.join("\n")
    }

    const AGGREGATES: &str = "SELECT k, COUNT(*) AS n, COUNT(x) AS n_x, SUM(x) AS s, \
        AVG(x) AS a, MIN(kind) AS lo, MAX(x) AS hi, COUNT(DISTINCT kind) AS kinds, \
        SUM(x) FILTER (WHERE kind = 'a') AS s_a, COUNT(1) FILTER (WHERE kind = 'a') AS n_a, \
        AVG(x) FILTER (WHERE kind = 'a') AS a_a, COUNT(1) FILTER (WHERE x > 2) AS n_big \
        FROM t GROUP BY k ORDER BY k";

    /// Each distinct argument and filter once, as the aggregates above name them.
    #[test]
    fn shared_arguments_and_filters_are_evaluated_once() {
        use datafusion::common::ScalarValue;
        use datafusion::logical_expr::Operator;
        use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
        let x: Arc<dyn PhysicalExpr> = Arc::new(Column::new("x", 1));
        let one: Arc<dyn PhysicalExpr> = Arc::new(Literal::new(ScalarValue::Int64(Some(1))));
        let kind_a: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::new(Column::new("kind", 2)),
            Operator::Eq,
            Arc::new(Literal::new(ScalarValue::from("a"))),
        ));
        let big: Arc<dyn PhysicalExpr> = Arc::new(BinaryExpr::new(
            Arc::clone(&x),
            Operator::Gt,
            Arc::new(Literal::new(ScalarValue::Int64(Some(2)))),
        ));
        let inputs = Inputs::new(
            vec![
                vec![Arc::clone(&x)],
                vec![Arc::clone(&one)],
                vec![Arc::clone(&x)],
                vec![Arc::clone(&one)],
                vec![Arc::clone(&one)],
            ],
            &[
                Some(Arc::clone(&kind_a)),
                Some(Arc::clone(&kind_a)),
                None,
                None,
                Some(big),
            ],
        );
        // x, 1, kind = 'a', x > 2: the arguments first.
        assert_eq!(inputs.distinct.len(), 4);
        assert_eq!(
            inputs.arguments,
            vec![vec![0], vec![1], vec![0], vec![1], vec![1]]
        );
        assert_eq!(inputs.filters, vec![Some(2), Some(2), None, None, Some(3)]);
    }

    #[tokio::test]
    async fn every_integer_key_gives_datafusions_rows() {
        for key in [DataType::Int64, DataType::Int32, DataType::UInt64] {
            let (plain, plain_plan, _) =
                run(&session(false, &[], None), key.clone(), AGGREGATES).await;
            let (ours, plan, emitted) =
                run(&session(true, &[], None), key.clone(), AGGREGATES).await;
            assert_eq!(ours, plain, "{key}");
            assert!(!plain_plan.contains("Clustered"), "{plain_plan}");
            assert_eq!(
                plan.matches("ClusteredPartialAggregateExec").count(),
                1,
                "{plan}"
            );
            // The groups of each partition, once each: at most the rows' keys (1 217 and
            // NULL) in each of the 3 partitions.
            assert!(emitted > 1_000 && emitted <= 3 * 1_218, "{key}: {emitted}");
        }
    }

    #[tokio::test]
    async fn under_memory_pressure_states_go_out_early_with_the_same_rows() {
        // Aggregates whose value does not depend on how the rows are split (a float sum's
        // last digits do, in DataFusion alone too).
        let sql = "SELECT k, COUNT(*) AS n, SUM(CAST(x * 100 AS BIGINT)) AS s, MIN(x) AS lo, \
            MAX(kind) AS hi, COUNT(DISTINCT kind) AS kinds FROM t GROUP BY k";
        let (plain, _, _) = run(&session(false, &[], None), DataType::Int64, sql).await;
        let (_, _, whole) = run(&session(true, &[], None), DataType::Int64, sql).await;
        // Room for a batch's row numbers (8 000 bytes) and fewer groups than a batch has:
        // each batch's groups go out after it, and a key of two batches (one from far back)
        // goes out twice.
        let (ours, _, emitted) = run(&session(true, &[], Some(12_000)), DataType::Int64, sql).await;
        assert_eq!(sorted(&ours), sorted(&plain));
        assert!(
            emitted > whole,
            "no early emission: {emitted} rows, {whole} without the cap"
        );
    }

    #[tokio::test]
    async fn past_the_probe_each_row_passes_as_its_own_state() {
        // Groups are about a fifth of the rows: past a 0.1 ratio after 500 rows, every
        // later row goes out as its own state.
        let probe = [
            (
                "datafusion.execution.skip_partial_aggregation_probe_rows_threshold",
                "500",
            ),
            (
                "datafusion.execution.skip_partial_aggregation_probe_ratio_threshold",
                "0.1",
            ),
        ];
        let (plain, _, _) = run(&session(false, &probe, None), DataType::Int64, AGGREGATES).await;
        let (ours, _, emitted) =
            run(&session(true, &probe, None), DataType::Int64, AGGREGATES).await;
        assert_eq!(ours, plain);
        // Each partition's second batch (1 000 rows) passes through; aggregated, the
        // partitions' groups are about 1 300.
        assert!(emitted > 3_000, "the rows did not pass through: {emitted}");
    }

    /// Every key's group is the one a map gives it, in the order keys are first seen,
    /// whether the numbering stays dense or leaves it.
    #[test]
    fn keys_are_numbered_in_the_order_first_seen() {
        let ascending: Vec<i64> = (0..5_000).map(|i| 1_000 + i / 3).collect();
        let descending: Vec<i64> = (0..5_000).rev().map(|i| i / 2 - 2_000).collect();
        // Two clusters far apart: dense, then the map.
        let apart: Vec<i64> = (0..3_000)
            .map(|i| if i % 2 == 0 { i / 4 } else { 1 << 40 })
            .collect();
        let extremes = vec![i64::MAX, 0, i64::MIN, i64::MAX, -1, i64::MIN + 1, 0];
        // Interleaved files: ids 8 apart, each id's rows together, keys seen again.
        let interleaved: Vec<i64> = (0..8_000).map(|i| (i % 8) + 8 * (i / 64)).collect();
        // In no order: the map first, slots again once the groups fill the keys' span.
        let shuffled: Vec<i64> = (0..200_000)
            .map(|i| i * 7_919 % 100_000 * 3 + 300)
            .collect();
        for keys in [
            ascending,
            descending,
            apart,
            extremes,
            interleaved,
            shuffled,
        ] {
            let mut groups = KeyGroups::default();
            groups.number(&Int64Array::from(keys.clone()), |k| k);
            let mut first_seen: std::collections::HashMap<i64, usize> = Default::default();
            let expected: Vec<usize> = keys
                .iter()
                .map(|&k| {
                    let next = first_seen.len();
                    *first_seen.entry(k).or_insert(next)
                })
                .collect();
            assert_eq!(groups.rows, expected, "{:?}", &keys[..7]);
            if keys[0] == 300 {
                assert!(groups.dense.is_some(), "still the map");
            }
            let taken = groups.take_keys(KeyType::Int64);
            let mut order: Vec<(usize, i64)> =
                first_seen.into_iter().map(|(k, g)| (g, k)).collect();
            order.sort_unstable();
            let in_order: Vec<i64> = order.into_iter().map(|(_, k)| k).collect();
            assert_eq!(
                taken.as_primitive::<Int64Type>().values().to_vec(),
                in_order
            );
            assert_eq!(groups.len(), 0);
        }
    }

    #[tokio::test]
    async fn other_aggregations_are_left_to_datafusion() {
        for sql in [
            // A string key.
            "SELECT kind, COUNT(*) AS n FROM t GROUP BY kind",
            // Two keys.
            "SELECT k, kind, COUNT(*) AS n FROM t GROUP BY k, kind",
            // Grouping sets.
            "SELECT k, kind, COUNT(*) AS n FROM t GROUP BY GROUPING SETS ((k), (kind))",
            // An aggregate with an ordering of its own.
            "SELECT k, ARRAY_AGG(x ORDER BY x) AS xs FROM t GROUP BY k",
            // No grouping.
            "SELECT COUNT(*) AS n FROM t",
        ] {
            let (plain, _, _) = run(&session(false, &[], None), DataType::Int64, sql).await;
            let (ours, plan, _) = run(&session(true, &[], None), DataType::Int64, sql).await;
            assert!(!plan.contains("Clustered"), "{sql}: {plan}");
            assert_eq!(sorted(&ours), sorted(&plain), "{sql}");
        }
    }
}
