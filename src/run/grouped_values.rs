//! A grouped aggregate's values in one buffer, put together by group only when emitted.
//!
//! An aggregate that needs every value of a group (`MEDIAN`: `run::median`) or every
//! distinct one (`COUNT(DISTINCT)` of numbers: `run::distinct`) would otherwise keep a
//! vector per group (a million customers' vectors grown push by push) or one hash set of
//! (group, value) pairs (each insert a cache miss once the set outgrows the caches, and a
//! rehash that holds it twice). A source's rows of one key mostly arrive together, so
//! [`GroupedValues`] appends the values as they come, described by runs of one group, and
//! sorts them into groups once, by a stable counting sort: each group's values stay in
//! arrival order.

use datafusion::arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, ListArray, PrimitiveArray,
};
use datafusion::arrow::buffer::{OffsetBuffer, ScalarBuffer};
use datafusion::arrow::datatypes::{ArrowNativeType, DataType, Field};
use datafusion::common::{Result, internal_err};
use datafusion::logical_expr::EmitTo;
use std::sync::Arc;

/// Whether an aggregate's optional filter keeps `row` (a NULL filter value drops it).
pub(super) fn kept(filter: Option<&BooleanArray>, row: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(row) && f.value(row))
}

/// Stored values of one group, consecutive in [`GroupedValues::values`].
#[derive(Debug, Clone, Copy)]
struct Run {
    group: u32,
    len: u32,
}

/// The values an aggregate took, in arrival order, and the group of each (see the module
/// docs). `aggregate` names the function in errors.
#[derive(Debug)]
pub(super) struct GroupedValues<T> {
    aggregate: &'static str,
    /// The values taken, in arrival order.
    values: Vec<T>,
    /// `values` as runs of one group, in order.
    runs: Vec<Run>,
    /// Groups seen (DataFusion's `total_num_groups`).
    groups: usize,
}

impl<T: ArrowNativeType> GroupedValues<T> {
    pub(super) fn new(aggregate: &'static str) -> Self {
        Self {
            aggregate,
            values: Vec::new(),
            runs: Vec::new(),
            groups: 0,
        }
    }

    /// Values stored.
    pub(super) fn len(&self) -> usize {
        self.values.len()
    }

    /// Bytes held, for the memory pool.
    pub(super) fn size(&self) -> usize {
        self.values.capacity() * size_of::<T>() + self.runs.capacity() * size_of::<Run>()
    }

    /// Notes DataFusion's `total_num_groups`; groups are stored as `u32`, so more are
    /// refused, not wrapped.
    fn see_groups(&mut self, total_num_groups: usize) -> Result<()> {
        if u32::try_from(total_num_groups).is_err() {
            return internal_err!(
                "{}: {total_num_groups} groups, more than it can number",
                self.aggregate
            );
        }
        self.groups = self.groups.max(total_num_groups);
        Ok(())
    }

    /// Appends `values` to `group`'s.
    #[inline]
    fn extend(&mut self, group: u32, values: &[T]) {
        if values.is_empty() {
            return;
        }
        self.values.extend_from_slice(values);
        let len = values.len() as u32;
        match self.runs.last_mut() {
            Some(run) if run.group == group && run.len.checked_add(len).is_some() => run.len += len,
            _ => self.runs.push(Run { group, len }),
        }
    }

    /// A batch's values (`GroupsAccumulator::update_batch`): each row's value, unless it
    /// is NULL or the filter drops it, appended to its group's.
    pub(super) fn update<P: ArrowPrimitiveType<Native = T>>(
        &mut self,
        values: &PrimitiveArray<P>,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.see_groups(total_num_groups)?;
        let nulls = values.nulls().filter(|n| n.null_count() > 0);
        let rows = values.values();
        let mut start = 0;
        // Each run of one group's rows at once when every row is taken.
        while let Some(&group) = group_indices.get(start) {
            let mut end = start + 1;
            while group_indices.get(end) == Some(&group) {
                end += 1;
            }
            if nulls.is_none() && opt_filter.is_none() {
                self.extend(group as u32, &rows[start..end]);
            } else {
                for row in start..end {
                    if nulls.is_none_or(|n| n.is_valid(row)) && kept(opt_filter, row) {
                        self.extend(group as u32, &rows[row..=row]);
                    }
                }
            }
            start = end;
        }
        Ok(())
    }

    /// A batch of states (`GroupsAccumulator::merge_batch`): each row's list of values
    /// appended to its group's; a NULL list adds nothing.
    pub(super) fn merge<P: ArrowPrimitiveType<Native = T>>(
        &mut self,
        states: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let Some(lists) = states.first().and_then(|v| v.as_list_opt::<i32>()) else {
            return internal_err!("{}: a state is a list of values", self.aggregate);
        };
        let Some(items) = lists.values().as_primitive_opt::<P>() else {
            return internal_err!(
                "{}: a state lists {}, not {}",
                self.aggregate,
                lists.values().data_type(),
                P::DATA_TYPE
            );
        };
        self.see_groups(total_num_groups)?;
        let offsets = lists.value_offsets();
        for (row, &group) in group_indices.iter().enumerate() {
            if lists.is_null(row) {
                continue;
            }
            let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
            self.extend(group as u32, &items.values()[start..end]);
        }
        Ok(())
    }

    /// The emitted groups' values, each group's together in arrival order, and where each
    /// group starts (`groups + 1` offsets); the groups left are numbered from 0 again.
    pub(super) fn take(&mut self, emit_to: EmitTo) -> (Vec<T>, Vec<usize>) {
        let emitted = match emit_to {
            EmitTo::All => self.groups,
            EmitTo::First(n) => n.min(self.groups),
        };
        let mut offsets = vec![0usize; emitted + 1];
        for run in self.runs.iter().filter(|r| (r.group as usize) < emitted) {
            offsets[run.group as usize + 1] += run.len as usize;
        }
        for g in 0..emitted {
            offsets[g + 1] += offsets[g];
        }
        let mut sorted = vec![T::default(); offsets[emitted]];
        let mut next = offsets.clone();
        let (mut kept_values, mut kept_runs) = (Vec::new(), Vec::new());
        let mut start = 0;
        for run in &self.runs {
            let values = &self.values[start..start + run.len as usize];
            start += run.len as usize;
            let group = run.group as usize;
            if group < emitted {
                sorted[next[group]..next[group] + values.len()].copy_from_slice(values);
                next[group] += values.len();
            } else {
                kept_values.extend_from_slice(values);
                kept_runs.push(Run {
                    group: (group - emitted) as u32,
                    len: run.len,
                });
            }
        }
        self.values = kept_values;
        self.runs = kept_runs;
        self.groups -= emitted;
        (sorted, offsets)
    }

    /// Groups' values (as [`GroupedValues::take`] gives them) as a state: a list of values
    /// of `data_type` (`P`'s, with its parameters) per group.
    pub(super) fn lists<P: ArrowPrimitiveType<Native = T>>(
        &self,
        values: Vec<T>,
        offsets: Vec<usize>,
        data_type: &DataType,
    ) -> Result<ArrayRef> {
        if !PrimitiveArray::<P>::is_compatible(data_type) {
            return internal_err!(
                "{}: {data_type} values are not {}",
                self.aggregate,
                P::DATA_TYPE
            );
        }
        let Ok(offsets) = offsets
            .into_iter()
            .map(i32::try_from)
            .collect::<std::result::Result<Vec<_>, _>>()
        else {
            return internal_err!(
                "{}: a state of more values than a list holds",
                self.aggregate
            );
        };
        let items = PrimitiveArray::<P>::new(ScalarBuffer::from(values), None)
            .with_data_type(data_type.clone());
        Ok(Arc::new(ListArray::try_new(
            Arc::new(Field::new_list_field(data_type.clone(), true)),
            OffsetBuffer::new(ScalarBuffer::from(offsets)),
            Arc::new(items),
            None,
        )?))
    }

    /// [`GroupedValues::take`], of each group's values only the first `keep(values)` after
    /// `keep` has reordered them (a distinct count keeps each value once).
    pub(super) fn take_kept(
        &mut self,
        emit_to: EmitTo,
        mut keep: impl FnMut(&mut [T]) -> usize,
    ) -> (Vec<T>, Vec<usize>) {
        let (mut values, mut offsets) = self.take(emit_to);
        let mut written = 0;
        for group in 0..offsets.len() - 1 {
            let (start, end) = (offsets[group], offsets[group + 1]);
            let len = keep(&mut values[start..end]).min(end - start);
            values.copy_within(start..start + len, written);
            offsets[group] = written;
            written += len;
        }
        if let Some(last) = offsets.last_mut() {
            *last = written;
        }
        values.truncate(written);
        (values, offsets)
    }

    /// Puts every group's values together, keeping of each what `keep` keeps (as
    /// [`GroupedValues::take_kept`]); every group stays.
    pub(super) fn compact(&mut self, keep: impl FnMut(&mut [T]) -> usize) {
        let groups = self.groups;
        let (values, offsets) = self.take_kept(EmitTo::All, keep);
        self.groups = groups;
        for (group, range) in offsets.windows(2).enumerate() {
            let mut len = range[1] - range[0];
            while len > 0 {
                let run = len.min(u32::MAX as usize);
                self.runs.push(Run {
                    group: group as u32,
                    len: run as u32,
                });
                len -= run;
            }
        }
        self.values = values;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::Int64Type;

    #[test]
    fn values_come_out_by_group_in_arrival_order_and_the_rest_are_renumbered() {
        let mut grouped = GroupedValues::<i64>::new("TEST");
        let values = Int64Array::from(vec![Some(1), Some(2), None, Some(3), Some(4), Some(5)]);
        let filter = BooleanArray::from(vec![
            Some(true),
            Some(true),
            Some(true),
            None,
            Some(true),
            Some(true),
        ]);
        grouped
            .update(&values, &[2, 2, 0, 1, 0, 2], Some(&filter), 3)
            .unwrap();
        // A state of two rows: group 1 gets [6, 7], group 0 a NULL list.
        let lists = ListArray::new(
            Arc::new(Field::new_list_field(DataType::Int64, true)),
            OffsetBuffer::from_lengths([2, 0]),
            Arc::new(Int64Array::from(vec![6, 7])),
            Some(vec![true, false].into()),
        );
        grouped
            .merge::<Int64Type>(&[Arc::new(lists)], &[1, 0], 3)
            .unwrap();
        assert_eq!(grouped.len(), 6);
        let (values, offsets) = grouped.take(EmitTo::First(2));
        assert_eq!((values, offsets), (vec![4, 6, 7], vec![0, 1, 3]));
        // Group 2 is group 0 now.
        let (values, offsets) = grouped.take(EmitTo::All);
        assert_eq!((values, offsets), (vec![1, 2, 5], vec![0, 3]));
    }

    #[test]
    fn compacting_keeps_what_each_group_keeps_and_every_group() {
        let mut grouped = GroupedValues::<i64>::new("TEST");
        let values = Int64Array::from(vec![3, 1, 3, 9, 1, 9, 9]);
        grouped
            .update(&values, &[0, 0, 1, 2, 0, 2, 2], None, 4)
            .unwrap();
        grouped.compact(|values| {
            values.sort_unstable();
            let mut distinct = values.to_vec();
            distinct.dedup();
            values[..distinct.len()].copy_from_slice(&distinct);
            distinct.len()
        });
        assert_eq!(grouped.len(), 4);
        let (values, offsets) = grouped.take(EmitTo::All);
        assert_eq!((values, offsets), (vec![1, 3, 3, 9], vec![0, 2, 3, 4, 4]));
    }
}
