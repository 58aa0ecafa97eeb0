//! `COUNT`, `SUM`, `AVG`, `MIN` and `MAX` over runs of one group, for input clustered by
//! its key.
//!
//! In `run::clustered`'s partial aggregation a batch's rows of one key come together (an
//! events file holds each customer's rows in a run of about twenty). DataFusion's grouped
//! accumulators update each row's group in memory: a load, an operation and a store per
//! row, and a branch per row where a filter or NULLs choose the rows. Here a run's count is
//! the set bits of its range of the chosen rows' bitmap, and a run's sum (least, greatest
//! value) is folded in a register and stored once. The values are folded in the same order,
//! from the same starting value, with the same operation as DataFusion's, so a float sum
//! keeps its last bit; the states (types, nullability, early emission, the probe's per-row
//! states) are DataFusion 55's.

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowNativeTypeOp, AsArray, BooleanArray, BooleanBufferBuilder, Int64Array,
    PrimitiveArray,
};
use datafusion::arrow::buffer::{BooleanBuffer, NullBuffer};
use datafusion::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Schema, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    TimestampSecondType, UInt64Type,
};
use datafusion::arrow::util::bit_iterator::BitIndexIterator;
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_expr::aggregate::AggregateFunctionExpr;
use std::cmp::Ordering;
use std::sync::Arc;

/// One group's rows `start..end` of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Run {
    group: usize,
    start: usize,
    end: usize,
}

/// A batch's rows as runs of one group, in row order.
#[derive(Debug, Default)]
pub(crate) struct Runs(Vec<Run>);

impl Runs {
    /// The runs of `groups` (each row's group), replacing the previous batch's.
    pub(crate) fn find(&mut self, groups: &[usize]) {
        self.0.clear();
        let mut start = 0;
        while let Some(&group) = groups.get(start) {
            let mut end = start + 1;
            while groups.get(end) == Some(&group) {
                end += 1;
            }
            self.0.push(Run { group, start, end });
            start = end;
        }
    }

    fn of(groups: &[usize]) -> Self {
        let mut runs = Self::default();
        runs.find(groups);
        runs
    }

    pub(crate) fn size(&self) -> usize {
        self.0.capacity() * size_of::<Run>()
    }
}

/// A grouped accumulator that also takes a batch as runs of one group.
pub(crate) trait RunsAccumulator: GroupsAccumulator {
    /// As `update_batch`, with the rows' groups given as `runs`.
    fn update_runs(
        &mut self,
        values: &[ArrayRef],
        runs: &Runs,
        filter: Option<&BooleanArray>,
        total_groups: usize,
    ) -> Result<()>;
}

/// featurecraft's accumulator over runs for `aggregate` (over rows of `input`), where it
/// has one: `COUNT` of one argument, `SUM` of a 64-bit integer or float, `AVG` of a float,
/// `MIN` and `MAX` of an integer, float, date or timestamp (none DISTINCT). The function is
/// known by its name: featurecraft's sessions register DataFusion's `count`, `sum`, `avg`,
/// `min` and `max` under them (with featurecraft's DISTINCT counts and string extremes,
/// which stay on the other path here).
pub(crate) fn accumulator_for(
    aggregate: &AggregateFunctionExpr,
    input: &Schema,
) -> Result<Option<Box<dyn RunsAccumulator>>> {
    let state = aggregate.state_fields()?;
    let state: Vec<&DataType> = state.iter().map(|f| f.data_type()).collect();
    let expressions = aggregate.expressions();
    let [argument] = expressions.as_slice() else {
        return Ok(None);
    };
    if aggregate.is_distinct() {
        return Ok(None);
    }
    let argument = argument.data_type(input)?;
    let field = aggregate.field();
    let returns = field.data_type();
    let name = aggregate.fun().name();
    if name == "avg" {
        let float = &DataType::Float64;
        return Ok(
            (state == [&DataType::UInt64, float] && returns == float && argument == *float)
                .then(|| Box::new(AvgRuns::default()) as Box<dyn RunsAccumulator>),
        );
    }
    if state.len() != 1 {
        return Ok(None);
    }
    if name == "count" {
        return Ok(
            (*returns == DataType::Int64 && *state[0] == DataType::Int64)
                .then(|| Box::new(CountRuns::default()) as Box<dyn RunsAccumulator>),
        );
    }
    // The others' state is their result, of their argument's type.
    if state[0] != returns || argument != *returns {
        return Ok(None);
    }
    /// DataFusion 55's folds: `SUM` adds wrapping from 0; `MAX` (`MIN`) takes a value that
    /// is greater (less) or not comparable (NaN), from the type's least (greatest) value.
    macro_rules! fold {
        ($type:ty, $native:ty) => {
            match name {
                "sum" => FoldRuns::<$type, _>::boxed(
                    returns,
                    <$native>::default(),
                    |value: &mut $native, row: $native| *value = value.add_wrapping(row),
                ),
                "max" => FoldRuns::<$type, _>::boxed(
                    returns,
                    <$native>::MIN,
                    |value: &mut $native, row: $native| {
                        if !matches!(
                            row.partial_cmp(value),
                            Some(Ordering::Less | Ordering::Equal)
                        ) {
                            *value = row;
                        }
                    },
                ),
                "min" => FoldRuns::<$type, _>::boxed(
                    returns,
                    <$native>::MAX,
                    |value: &mut $native, row: $native| {
                        if !matches!(
                            row.partial_cmp(value),
                            Some(Ordering::Greater | Ordering::Equal)
                        ) {
                            *value = row;
                        }
                    },
                ),
                _ => return Ok(None),
            }
        };
    }
    let extreme = matches!(name, "min" | "max");
    Ok(Some(match returns {
        DataType::Int64 => fold!(Int64Type, i64),
        DataType::UInt64 => fold!(UInt64Type, u64),
        DataType::Float64 => fold!(Float64Type, f64),
        DataType::Int32 if extreme => fold!(Int32Type, i32),
        DataType::Float32 if extreme => fold!(Float32Type, f32),
        DataType::Date32 if extreme => fold!(Date32Type, i32),
        DataType::Timestamp(unit, _) if extreme => match unit {
            TimeUnit::Second => fold!(TimestampSecondType, i64),
            TimeUnit::Millisecond => fold!(TimestampMillisecondType, i64),
            TimeUnit::Microsecond => fold!(TimestampMicrosecondType, i64),
            TimeUnit::Nanosecond => fold!(TimestampNanosecondType, i64),
        },
        _ => return Ok(None),
    }))
}

/// The rows an aggregate takes: its filter TRUE (not FALSE or NULL) and its value not
/// NULL. `None` when that is every row.
fn chosen(values: &dyn Array, filter: Option<&BooleanArray>) -> Option<BooleanBuffer> {
    let filter = filter.map(|f| match f.nulls() {
        Some(nulls) => f.values() & nulls.inner(),
        None => f.values().clone(),
    });
    let nulls = values.logical_nulls().filter(|n| n.null_count() > 0);
    match (filter, nulls) {
        (None, None) => None,
        (Some(filter), None) => Some(filter),
        (None, Some(nulls)) => Some(nulls.into_inner()),
        (Some(filter), Some(nulls)) => Some(&filter & nulls.inner()),
    }
}

/// The rows of `run` that `chosen` takes, as offsets from the run's start, in order. A run
/// of up to 64 rows (nearly all: a key's rows in one batch) is read as one word of bits.
#[inline]
fn taken<'a>(chosen: &'a BooleanBuffer, run: &Run) -> Taken<'a> {
    let offset = chosen.offset() + run.start;
    let len = run.end - run.start;
    if len > 64 {
        return Taken::Long(BitIndexIterator::new(chosen.values(), offset, len));
    }
    let bytes = chosen.values();
    let first = offset / 8;
    let shift = offset % 8;
    let bits = match bytes.get(first..first + 8) {
        // Eight bytes from the run's first: the whole run unless it ends in a ninth.
        Some(eight) if len + shift <= 64 => {
            let mut word = [0u8; 8];
            word.copy_from_slice(eight);
            u64::from_le_bytes(word) >> shift
        }
        // Near the bitmap's end, or nine bytes.
        _ => {
            let last = (offset + len).div_ceil(8);
            let mut word = [0u8; 16];
            word[..last - first].copy_from_slice(&bytes[first..last]);
            (u128::from_le_bytes(word) >> shift) as u64
        }
    };
    Taken::Word(if len == 64 {
        bits
    } else {
        bits & ((1 << len) - 1)
    })
}

/// Folds the values of `run`'s rows that `chosen` takes (every row without it) into
/// `value`, in row order: how many it took. The one loop of the aggregates here.
#[inline]
fn fold_run<V: Copy>(
    values: &[V],
    chosen: Option<&BooleanBuffer>,
    run: &Run,
    value: &mut V,
    fold: impl Fn(&mut V, V),
) -> usize {
    let rows = &values[run.start..run.end];
    match chosen {
        None => {
            for &row in rows {
                fold(value, row);
            }
            rows.len()
        }
        Some(chosen) => {
            let mut count = 0;
            for i in taken(chosen, run) {
                fold(value, rows[i]);
                count += 1;
            }
            count
        }
    }
}

/// The iterator [`taken`] returns.
enum Taken<'a> {
    Word(u64),
    Long(BitIndexIterator<'a>),
}

impl Taken<'_> {
    fn count(self) -> usize {
        match self {
            Self::Word(bits) => bits.count_ones() as usize,
            Self::Long(rows) => rows.count(),
        }
    }
}

impl Iterator for Taken<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        match self {
            Self::Word(0) => None,
            Self::Word(bits) => {
                let row = bits.trailing_zeros() as usize;
                *bits &= *bits - 1;
                Some(row)
            }
            Self::Long(rows) => rows.next(),
        }
    }
}

/// The one argument of the aggregates here.
fn argument(values: &[ArrayRef]) -> Result<&ArrayRef> {
    match values {
        [value] => Ok(value),
        _ => internal_err!("one argument expected, {} given", values.len()),
    }
}

/// `COUNT(x)`: the rows whose `x` is not NULL, in a state of DataFusion's (`Int64`, never
/// NULL).
#[derive(Debug, Default)]
struct CountRuns {
    counts: Vec<i64>,
}

impl RunsAccumulator for CountRuns {
    fn update_runs(
        &mut self,
        values: &[ArrayRef],
        runs: &Runs,
        filter: Option<&BooleanArray>,
        total_groups: usize,
    ) -> Result<()> {
        self.counts.resize(total_groups, 0);
        let chosen = chosen(argument(values)?.as_ref(), filter);
        for run in &runs.0 {
            let rows = run.end - run.start;
            let counted = match &chosen {
                None => rows,
                Some(chosen) => taken(chosen, run).count(),
            };
            self.counts[run.group] += counted as i64;
        }
        Ok(())
    }
}

impl GroupsAccumulator for CountRuns {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.update_runs(
            values,
            &Runs::of(group_indices),
            opt_filter,
            total_num_groups,
        )
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::new(
            emit_to.take_needed(&mut self.counts).into(),
            None,
        )))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let Some(partial) = argument(values)?.as_primitive_opt::<Int64Type>() else {
            return internal_err!("a count's state is Int64");
        };
        self.counts.resize(total_num_groups, 0);
        for (&group, &count) in group_indices.iter().zip(partial.values()) {
            self.counts[group] += count;
        }
        Ok(())
    }

    /// Each row's own count: 1 where it is counted, else 0.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = argument(values)?;
        let counts = match chosen(values.as_ref(), opt_filter) {
            None => Int64Array::from_value(1, values.len()),
            Some(chosen) => chosen.iter().map(|c| Some(i64::from(c))).collect(),
        };
        Ok(vec![Arc::new(counts)])
    }

    fn size(&self) -> usize {
        self.counts.capacity() * size_of::<i64>()
    }
}

/// Which groups took a row, a bit each (the others' state is NULL), as DataFusion's
/// `NullState` keeps them.
#[derive(Debug)]
struct Seen(BooleanBufferBuilder);

impl Default for Seen {
    fn default() -> Self {
        Self(BooleanBufferBuilder::new(0))
    }
}

impl Seen {
    fn resize(&mut self, total_groups: usize) {
        if self.0.len() < total_groups {
            self.0.append_n(total_groups - self.0.len(), false);
        }
    }

    fn set(&mut self, group: usize) {
        self.0.set_bit(group, true);
    }

    /// The emitted groups' validity (`None`: all valid); the rest kept, renumbered from 0.
    fn take(&mut self, emit_to: EmitTo) -> Option<NullBuffer> {
        let all = self.0.finish();
        let taken = match emit_to {
            EmitTo::All => all,
            EmitTo::First(n) => {
                self.0.append_buffer(&all.slice(n, all.len() - n));
                all.slice(0, n)
            }
        };
        let nulls = NullBuffer::new(taken);
        (nulls.null_count() > 0).then_some(nulls)
    }

    fn size(&self) -> usize {
        self.0.capacity() / 8
    }
}

/// DataFusion's `PrimitiveGroupsAccumulator` (`SUM`, and `MIN`/`MAX` of numbers, dates and
/// times): each group's value folded over its rows' values from a starting value, NULL where
/// no row was taken.
struct FoldRuns<T: ArrowPrimitiveType, F> {
    values: Vec<T::Native>,
    seen: Seen,
    data_type: DataType,
    start: T::Native,
    fold: F,
}

impl<T: ArrowPrimitiveType, F> std::fmt::Debug for FoldRuns<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FoldRuns({}, {} groups)",
            self.data_type,
            self.values.len()
        )
    }
}

impl<T, F> FoldRuns<T, F>
where
    T: ArrowPrimitiveType,
    F: Fn(&mut T::Native, T::Native) + Send + Sync + 'static,
{
    fn boxed(data_type: &DataType, start: T::Native, fold: F) -> Box<dyn RunsAccumulator> {
        Box::new(Self {
            values: Vec::new(),
            seen: Seen::default(),
            data_type: data_type.clone(),
            start,
            fold,
        })
    }

    fn values<'a>(&self, values: &'a [ArrayRef]) -> Result<&'a PrimitiveArray<T>> {
        let argument = argument(values)?;
        match argument.as_primitive_opt::<T>() {
            Some(values) => Ok(values),
            None => internal_err!(
                "an aggregate of {} given {}",
                self.data_type,
                argument.data_type()
            ),
        }
    }
}

impl<T, F> RunsAccumulator for FoldRuns<T, F>
where
    T: ArrowPrimitiveType,
    F: Fn(&mut T::Native, T::Native) + Send + Sync + 'static,
{
    fn update_runs(
        &mut self,
        values: &[ArrayRef],
        runs: &Runs,
        filter: Option<&BooleanArray>,
        total_groups: usize,
    ) -> Result<()> {
        let values = self.values(values)?;
        self.values.resize(total_groups, self.start);
        self.seen.resize(total_groups);
        let chosen = chosen(values, filter);
        let values = values.values();
        for run in &runs.0 {
            let mut value = self.values[run.group];
            if fold_run(values, chosen.as_ref(), run, &mut value, &self.fold) > 0 {
                self.values[run.group] = value;
                self.seen.set(run.group);
            }
        }
        Ok(())
    }
}

impl<T, F> GroupsAccumulator for FoldRuns<T, F>
where
    T: ArrowPrimitiveType,
    F: Fn(&mut T::Native, T::Native) + Send + Sync + 'static,
{
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.update_runs(
            values,
            &Runs::of(group_indices),
            opt_filter,
            total_num_groups,
        )
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let values = emit_to.take_needed(&mut self.values);
        let nulls = self.seen.take(emit_to);
        Ok(Arc::new(
            PrimitiveArray::<T>::new(values.into(), nulls).with_data_type(self.data_type.clone()),
        ))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.evaluate(emit_to)?])
    }

    /// As DataFusion: the partial states are folded in as values (NULL ones skipped).
    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.update_batch(values, group_indices, None, total_num_groups)
    }

    /// Each row's own state: its value folded into the starting value, NULL where it is
    /// not taken.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = self.values(values)?;
        let nulls = chosen(values, opt_filter).map(NullBuffer::new);
        let states = values.values().iter().map(|&row| {
            let mut state = self.start;
            (self.fold)(&mut state, row);
            state
        });
        Ok(vec![Arc::new(
            PrimitiveArray::<T>::new(states.collect(), nulls)
                .with_data_type(self.data_type.clone()),
        )])
    }

    fn size(&self) -> usize {
        self.values.capacity() * size_of::<T::Native>() + self.seen.size()
    }
}

/// `AVG(x)` of a float: DataFusion's state, each group's count of the values taken
/// (`UInt64`) and their sum (`Float64`, added from 0 in row order), both NULL where no row
/// was taken.
#[derive(Debug, Default)]
struct AvgRuns {
    counts: Vec<u64>,
    sums: Vec<f64>,
    seen: Seen,
}

impl AvgRuns {
    fn resize(&mut self, total_groups: usize) {
        self.counts.resize(total_groups, 0);
        self.sums.resize(total_groups, 0.0);
        self.seen.resize(total_groups);
    }
}

/// The one argument of `AVG`, as floats.
fn floats(values: &[ArrayRef]) -> Result<&PrimitiveArray<Float64Type>> {
    let argument = argument(values)?;
    match argument.as_primitive_opt::<Float64Type>() {
        Some(values) => Ok(values),
        None => internal_err!("an average of Float64 given {}", argument.data_type()),
    }
}

impl RunsAccumulator for AvgRuns {
    fn update_runs(
        &mut self,
        values: &[ArrayRef],
        runs: &Runs,
        filter: Option<&BooleanArray>,
        total_groups: usize,
    ) -> Result<()> {
        let values = floats(values)?;
        self.resize(total_groups);
        let chosen = chosen(values, filter);
        let values = values.values();
        for run in &runs.0 {
            let mut sum = self.sums[run.group];
            let count = fold_run(values, chosen.as_ref(), run, &mut sum, |sum, row| {
                *sum = sum.add_wrapping(row)
            });
            if count > 0 {
                self.sums[run.group] = sum;
                self.counts[run.group] += count as u64;
                self.seen.set(run.group);
            }
        }
        Ok(())
    }
}

impl GroupsAccumulator for AvgRuns {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.update_runs(
            values,
            &Runs::of(group_indices),
            opt_filter,
            total_num_groups,
        )
    }

    /// Each group's sum over its count, as DataFusion divides them.
    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let counts = emit_to.take_needed(&mut self.counts);
        let sums = emit_to.take_needed(&mut self.sums);
        let nulls = self.seen.take(emit_to);
        let averages = sums
            .iter()
            .zip(&counts)
            .map(|(&sum, &count)| sum / count as f64);
        Ok(Arc::new(PrimitiveArray::<Float64Type>::new(
            averages.collect(),
            nulls,
        )))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let counts = emit_to.take_needed(&mut self.counts);
        let sums = emit_to.take_needed(&mut self.sums);
        let nulls = self.seen.take(emit_to);
        Ok(vec![
            Arc::new(PrimitiveArray::<UInt64Type>::new(
                counts.into(),
                nulls.clone(),
            )),
            Arc::new(PrimitiveArray::<Float64Type>::new(sums.into(), nulls)),
        ])
    }

    /// As DataFusion: the partial counts and sums added, NULL ones skipped.
    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let [counts, sums] = values else {
            return internal_err!("an average's state is a count and a sum");
        };
        let (Some(counts), Some(sums)) = (
            counts.as_primitive_opt::<UInt64Type>(),
            sums.as_primitive_opt::<Float64Type>(),
        ) else {
            return internal_err!("an average's state is UInt64 and Float64");
        };
        self.resize(total_num_groups);
        for (row, &group) in group_indices.iter().enumerate() {
            if counts.is_valid(row) {
                self.counts[group] += counts.value(row);
                self.seen.set(group);
            }
            if sums.is_valid(row) {
                self.sums[group] = self.sums[group].add_wrapping(sums.value(row));
                self.seen.set(group);
            }
        }
        Ok(())
    }

    /// Each row's own state: a count of 1 and its value (as DataFusion: not added to 0),
    /// both NULL where it is not taken.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let values = floats(values)?;
        let nulls = chosen(values, opt_filter).map(NullBuffer::new);
        Ok(vec![
            Arc::new(PrimitiveArray::<UInt64Type>::new(
                vec![1; values.len()].into(),
                nulls.clone(),
            )),
            Arc::new(PrimitiveArray::<Float64Type>::new(
                values.values().clone(),
                nulls,
            )),
        ])
    }

    fn size(&self) -> usize {
        self.counts.capacity() * size_of::<u64>()
            + self.sums.capacity() * size_of::<f64>()
            + self.seen.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        Date32Array, Float64Array, StringArray, TimestampMicrosecondArray, UInt64Array,
    };
    use datafusion::arrow::compute::concat;
    use datafusion::arrow::datatypes::Field;
    use datafusion::functions_aggregate::average::avg_udaf;
    use datafusion::functions_aggregate::count::count_udaf;
    use datafusion::functions_aggregate::min_max::{max_udaf, min_udaf};
    use datafusion::functions_aggregate::sum::sum_udaf;
    use datafusion::logical_expr::AggregateUDF;
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::aggregate::AggregateExprBuilder;
    use datafusion::physical_expr::expressions::Column;

    /// A fixed sequence of pseudo-random numbers.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) % n
        }
    }

    /// `n` values of `data_type`, about a fifth NULL, sliced from a longer array (so that
    /// they start at an offset).
    fn values(data_type: &DataType, n: usize, lcg: &mut Lcg) -> ArrayRef {
        let valid: Vec<bool> = (0..n + 3).map(|_| lcg.below(5) != 0).collect();
        let array: ArrayRef = match data_type {
            DataType::Int64 => Arc::new(Int64Array::from_iter(valid.iter().enumerate().map(
                |(i, &v)| {
                    // Large values: the sums wrap, as DataFusion's do.
                    v.then_some((i as i64 - 40).wrapping_mul(i64::MAX / 7))
                },
            ))),
            DataType::UInt64 => Arc::new(UInt64Array::from_iter(
                valid
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| v.then_some((i as u64) << 60)),
            )),
            DataType::Float64 => Arc::new(Float64Array::from_iter(valid.iter().enumerate().map(
                |(i, &v)| {
                    // Values whose sum's last bits depend on the order they are added in,
                    // -0.0, an infinity and now and then NaN.
                    v.then_some(match i % 97 {
                        0 => f64::NAN,
                        1 => f64::NEG_INFINITY,
                        _ => match i % 4 {
                            0 => 1e16,
                            1 => -0.0,
                            2 => 0.1 * i as f64,
                            _ => -1e16 + 3.3,
                        },
                    })
                },
            ))),
            DataType::Date32 => Arc::new(Date32Array::from_iter(
                valid
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| v.then_some((i as i32 * 7919) % 40_000 - 20_000)),
            )),
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => Arc::new(
                TimestampMicrosecondArray::from_iter(
                    valid
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| v.then_some((i as i64 * 104_729) % 9_000_000)),
                )
                .with_timezone("+02:00"),
            ),
            _ => Arc::new(StringArray::from_iter(
                valid
                    .iter()
                    .enumerate()
                    .map(|(i, &v)| v.then(|| format!("v{i}"))),
            )),
        };
        array.slice(3, n)
    }

    /// A filter of `n` rows with NULLs among them, sliced as the values are.
    fn filter(n: usize, lcg: &mut Lcg) -> BooleanArray {
        let filter: BooleanArray = (0..n + 5)
            .map(|_| match lcg.below(4) {
                0 => None,
                1 => Some(false),
                _ => Some(true),
            })
            .collect();
        filter.slice(5, n)
    }

    /// Each row's group for `n` rows: runs of 1 to 40 rows of one group, now and then a
    /// group seen before (as a clustered file gives them), or each row any group.
    fn groups(n: usize, total: &mut usize, clustered: bool, lcg: &mut Lcg) -> Vec<usize> {
        let mut groups = Vec::with_capacity(n);
        while groups.len() < n {
            let group = if *total > 0 && (!clustered || lcg.below(10) == 0) {
                lcg.below(*total as u64) as usize
            } else {
                *total += 1;
                *total - 1
            };
            // Now and then a run longer than a word of bits.
            let longest = if lcg.below(6) == 0 { 200 } else { 40 };
            let run = if clustered { 1 + lcg.below(longest) } else { 1 };
            for _ in 0..run.min((n - groups.len()) as u64) {
                groups.push(group);
            }
        }
        groups
    }

    /// `function` of a column `x` of `data_type`, and the schema of its input.
    fn aggregate(
        function: Arc<AggregateUDF>,
        data_type: &DataType,
        distinct: bool,
    ) -> (AggregateFunctionExpr, Schema) {
        let schema = Schema::new(vec![Field::new("x", data_type.clone(), true)]);
        let x: Arc<dyn PhysicalExpr> = Arc::new(Column::new("x", 0));
        let mut builder = AggregateExprBuilder::new(function, vec![x])
            .schema(Arc::new(schema.clone()))
            .alias("a");
        if distinct {
            builder = builder.distinct();
        }
        (builder.build().expect("an aggregate"), schema)
    }

    /// The same calls to ours and to DataFusion's accumulator give the same states, bit for
    /// bit: batches in runs and not, with and without a filter, states emitted in part and
    /// whole, partial states merged, and each row's own state.
    #[test]
    fn counts_sums_and_extremes_are_datafusions_bit_for_bit() {
        let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some("+02:00".into()));
        let cases = [
            (count_udaf(), DataType::Float64),
            (count_udaf(), DataType::Utf8),
            (sum_udaf(), DataType::Int64),
            (sum_udaf(), DataType::UInt64),
            (sum_udaf(), DataType::Float64),
            (avg_udaf(), DataType::Float64),
            (max_udaf(), DataType::Float64),
            (min_udaf(), DataType::Float64),
            (max_udaf(), DataType::Int64),
            (min_udaf(), DataType::Date32),
            (max_udaf(), timestamp.clone()),
        ];
        for (function, data_type) in cases {
            let name = format!("{}({data_type})", function.name());
            let (aggregate, input) = aggregate(function, &data_type, false);
            let mut ours = accumulator_for(&aggregate, &input)
                .expect("planned")
                .unwrap_or_else(|| panic!("{name}: no accumulator over runs"));
            let mut theirs = aggregate.create_groups_accumulator().expect("DataFusion's");
            let mut lcg = Lcg(7);
            let mut total = 0;
            let mut runs = Runs::default();
            for batch in 0..40 {
                let n = 1 + lcg.below(700) as usize;
                let rows = groups(n, &mut total, batch % 5 != 4, &mut lcg);
                let values = vec![values(&data_type, n, &mut lcg)];
                let filter = (batch % 3 != 0).then(|| filter(n, &mut lcg));
                if batch % 2 == 0 {
                    runs.find(&rows);
                    ours.update_runs(&values, &runs, filter.as_ref(), total)
                } else {
                    ours.update_batch(&values, &rows, filter.as_ref(), total)
                }
                .expect("ours updated");
                theirs
                    .update_batch(&values, &rows, filter.as_ref(), total)
                    .expect("theirs updated");
                assert_eq!(
                    ours.convert_to_state(&values, filter.as_ref())
                        .expect("ours"),
                    theirs
                        .convert_to_state(&values, filter.as_ref())
                        .expect("theirs"),
                    "{name}: each row's state, batch {batch}"
                );
                if batch % 7 == 6 {
                    let first = EmitTo::First(total / 3);
                    total -= total / 3;
                    assert_eq!(
                        ours.state(first).expect("ours"),
                        theirs.state(first).expect("theirs"),
                        "{name}: the first groups' states, batch {batch}"
                    );
                }
                if batch % 11 == 10 {
                    let states = theirs.state(EmitTo::All).expect("theirs");
                    assert_eq!(ours.state(EmitTo::All).expect("ours"), states, "{name}");
                    // Merged back, twice over: each group's state added to itself.
                    let rows: Vec<usize> = (0..total).chain(0..total).collect();
                    let twice: Vec<ArrayRef> = states
                        .iter()
                        .map(|s| concat(&[s.as_ref(), s.as_ref()]).expect("concatenated"))
                        .collect();
                    ours.merge_batch(&twice, &rows, total).expect("ours merged");
                    theirs
                        .merge_batch(&twice, &rows, total)
                        .expect("theirs merged");
                }
            }
            assert_eq!(
                ours.state(EmitTo::All).expect("ours"),
                theirs.state(EmitTo::All).expect("theirs"),
                "{name}: the last states"
            );
        }
    }

    #[test]
    fn other_aggregates_keep_datafusions_accumulator() {
        // MAX of a string, a DISTINCT count, a sum of a type not here.
        for (function, data_type, distinct) in [
            (max_udaf(), DataType::Utf8, false),
            (count_udaf(), DataType::Int64, true),
            (sum_udaf(), DataType::Decimal128(20, 2), false),
        ] {
            let (aggregate, input) = aggregate(function, &data_type, distinct);
            assert!(
                accumulator_for(&aggregate, &input)
                    .expect("planned")
                    .is_none(),
                "{aggregate:?}"
            );
        }
        // An argument not of the type of the state.
        let (sum, _) = aggregate(sum_udaf(), &DataType::Int64, false);
        let narrower = Schema::new(vec![Field::new("x", DataType::Int32, true)]);
        assert!(accumulator_for(&sum, &narrower).expect("planned").is_none());
    }

    #[test]
    fn a_runs_taken_rows_are_its_set_bits() {
        let mut lcg = Lcg(3);
        let bits: BooleanBuffer = (0..700).map(|_| lcg.below(3) == 0).collect();
        for slice in [0, 1, 7, 8, 13, 64, 65] {
            let chosen = bits.slice(slice, 700 - slice);
            let rows = chosen.len();
            // Runs from the first rows, and runs that end at the bitmap's last row.
            let runs = (0..80).flat_map(|start| {
                [1, 2, 7, 8, 9, 31, 57, 63, 64, 65, 100, 300].map(|len| (start, len))
            });
            let last = (1..=70).map(|len| (rows - len, len));
            for (start, len) in runs.chain(last) {
                let run = Run {
                    group: 0,
                    start,
                    end: start + len,
                };
                let expected: Vec<usize> = (0..len).filter(|&i| chosen.value(start + i)).collect();
                assert_eq!(
                    taken(&chosen, &run).collect::<Vec<_>>(),
                    expected,
                    "slice {slice}, rows {start}..{}",
                    start + len
                );
                assert_eq!(taken(&chosen, &run).count(), expected.len());
            }
        }
    }

    #[test]
    fn runs_are_each_groups_rows_together() {
        let mut runs = Runs::default();
        runs.find(&[4, 4, 1, 4, 4, 4, 0]);
        assert_eq!(
            runs.0,
            vec![
                Run {
                    group: 4,
                    start: 0,
                    end: 2
                },
                Run {
                    group: 1,
                    start: 2,
                    end: 3
                },
                Run {
                    group: 4,
                    start: 3,
                    end: 6
                },
                Run {
                    group: 0,
                    start: 6,
                    end: 7
                },
            ]
        );
        runs.find(&[]);
        assert!(runs.0.is_empty());
    }
}
