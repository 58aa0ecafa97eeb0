//! `MIN` and `MAX` of strings and binaries that are cheap per group.
//!
//! DataFusion 55 keeps each group's extreme string in an allocation of its own (freed one
//! by one when the groups are emitted) and, for every batch, builds a hash map sized to the
//! batch to find each group's best value in it. With a million customers that was a quarter
//! of a materialization's profile in malloc and free (`MAX(to_plan)` over 2.2M plan
//! changes at L). featurecraft's sessions replace `min` and `max` by the same functions
//! (everything delegated to DataFusion's), except that a grouped MIN or MAX of a string or
//! binary gets [`ExtremeBytes`]: each group holds the number of its extreme in one table of
//! values (`distinct::ByteValues`, each value stored once), a row is compared with its
//! group's extreme in place, and only a row that wins is looked up in the table. Values no
//! group holds any more are dropped once they outnumber the groups (the groups' values are
//! numbered again in a fresh table), so the table stays within about twice the groups'
//! values however often extremes change.

use crate::run::distinct::{ByteValues, NULL_NUMBER};
use crate::run::grouped_values::kept;
use crate::run::own_groups::{OwnGroups, with_own_groups};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
use datafusion::arrow::compute::{not, nullif};
use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::functions_aggregate::min_max::{Max, Min};
use datafusion::logical_expr::function::AccumulatorArgs;
use datafusion::logical_expr::{AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator};

/// DataFusion's `min`, with [`ExtremeBytes`] for strings and binaries. Registering it in a
/// session replaces the built-in `min`.
pub fn min_udaf() -> AggregateUDF {
    with_own_groups(Min::new(), Keep::Smallest)
}

/// DataFusion's `max`, with [`ExtremeBytes`] for strings and binaries. Registering it in a
/// session replaces the built-in `max`.
pub fn max_udaf() -> AggregateUDF {
    with_own_groups(Max::new(), Keep::Largest)
}

/// Which value of a group an extreme keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Keep {
    Smallest,
    Largest,
}

impl std::fmt::Display for Keep {
    /// The aggregate's SQL name, for error messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Keep::Smallest => "MIN",
            Keep::Largest => "MAX",
        })
    }
}

/// Whether [`ExtremeBytes`] takes this argument type.
fn compact_bytes_type(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
    )
}

impl OwnGroups for Keep {
    /// A grouped MIN or MAX of a string or binary.
    fn takes(&self, _inner: &dyn AggregateUDFImpl, args: &AccumulatorArgs) -> bool {
        compact_bytes_type(args.return_field.data_type())
    }

    fn create(&self, args: &AccumulatorArgs) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(ExtremeBytes::new(
            args.return_field.data_type(),
            *self,
        )))
    }
}

/// Values the table may hold before it is checked for values no group holds.
const COMPACT_FLOOR: usize = 1 << 16;

/// Grouped MIN or MAX of strings or binaries (see the module docs). Its state, between the
/// partial and the final aggregation, is DataFusion's: each group's extreme.
struct ExtremeBytes {
    keep: Keep,
    data_type: DataType,
    values: ByteValues,
    /// Each group's extreme, by number; [`NULL_NUMBER`] while it has none.
    extremes: Vec<u32>,
}

impl std::fmt::Debug for ExtremeBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtremeBytes")
            .field("keep", &self.keep)
            .field("data_type", &self.data_type)
            .field("values", &self.values.len())
            .field("groups", &self.extremes.len())
            .finish()
    }
}

impl ExtremeBytes {
    fn new(data_type: &DataType, keep: Keep) -> Self {
        ExtremeBytes {
            keep,
            data_type: data_type.clone(),
            values: ByteValues::new(data_type),
            extremes: Vec::new(),
        }
    }

    /// Offers each row's value to its group: `rows` are the values (NULL skipped), the
    /// aggregate's filter says which rows count.
    fn offer_all<'a>(
        &mut self,
        rows: impl Iterator<Item = Option<&'a [u8]>>,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<()> {
        for (index, (value, &group)) in rows.zip(group_indices).enumerate() {
            let Some(value) = value else { continue };
            if !kept(opt_filter, index) {
                continue;
            }
            let Some(&current) = self.extremes.get(group) else {
                return exec_err!("{} of strings: no group {group}", self.keep);
            };
            let wins = current == NULL_NUMBER || {
                let old = self.values.value(current)?;
                match self.keep {
                    Keep::Smallest => value < old,
                    Keep::Largest => value > old,
                }
            };
            if wins {
                self.extremes[group] = self.values.number(value)?;
            }
        }
        Ok(())
    }

    /// Offers the values of `array` to their groups (see [`Self::offer_all`]).
    fn offer(
        &mut self,
        array: &ArrayRef,
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        if array.data_type() != &self.data_type {
            return exec_err!(
                "{} of {} was given {}",
                self.keep,
                self.data_type,
                array.data_type()
            );
        }
        self.extremes.resize(total_num_groups, NULL_NUMBER);
        match array.data_type() {
            DataType::Utf8 => {
                let rows = array
                    .as_string::<i32>()
                    .iter()
                    .map(|v| v.map(str::as_bytes));
                self.offer_all(rows, group_indices, opt_filter)?
            }
            DataType::LargeUtf8 => {
                let rows = array
                    .as_string::<i64>()
                    .iter()
                    .map(|v| v.map(str::as_bytes));
                self.offer_all(rows, group_indices, opt_filter)?
            }
            DataType::Utf8View => {
                let rows = array.as_string_view().iter().map(|v| v.map(str::as_bytes));
                self.offer_all(rows, group_indices, opt_filter)?
            }
            DataType::Binary => {
                self.offer_all(array.as_binary::<i32>().iter(), group_indices, opt_filter)?
            }
            DataType::LargeBinary => {
                self.offer_all(array.as_binary::<i64>().iter(), group_indices, opt_filter)?
            }
            DataType::BinaryView => {
                self.offer_all(array.as_binary_view().iter(), group_indices, opt_filter)?
            }
            other => return exec_err!("{other} is not a string or binary type"),
        }
        self.drop_stale_values()
    }

    /// Numbers the groups' extremes again in a fresh table once the table holds more than
    /// twice as many values as there are groups: the values that stopped being an extreme
    /// are dropped. Each renumbering follows at least as many new values as groups.
    fn drop_stale_values(&mut self) -> Result<()> {
        if self.values.len() <= COMPACT_FLOOR.max(2 * self.extremes.len()) {
            return Ok(());
        }
        let mut fresh = ByteValues::new(&self.data_type);
        for number in self.extremes.iter_mut().filter(|n| **n != NULL_NUMBER) {
            *number = fresh.number(self.values.value(*number)?)?;
        }
        self.values = fresh;
        Ok(())
    }

    /// The extremes of the groups `emit_to` names, as an array of the argument's type.
    fn emit(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let numbers = emit_to.take_needed(&mut self.extremes);
        let array = self.values.values(&numbers)?;
        if self.extremes.is_empty() {
            self.values = ByteValues::new(&self.data_type);
        }
        Ok(array)
    }
}

impl GroupsAccumulator for ExtremeBytes {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let [array] = values else {
            return exec_err!("{} takes one argument, got {}", self.keep, values.len());
        };
        self.offer(array, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.emit(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)?])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let [state] = values else {
            return exec_err!("{} state has one column, got {}", self.keep, values.len());
        };
        self.offer(state, group_indices, None, total_num_groups)
    }

    /// Each row as a group of its own: its value, NULL where the filter drops it.
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let [array] = values else {
            return exec_err!("{} takes one argument, got {}", self.keep, values.len());
        };
        let Some(filter) = opt_filter else {
            return Ok(vec![array.clone()]);
        };
        let counted: BooleanArray = (0..filter.len())
            .map(|i| Some(kept(Some(filter), i)))
            .collect();
        Ok(vec![nullif(array, &not(&counted)?)?])
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.values.size() + self.extremes.capacity() * size_of::<u32>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{
        BinaryArray, Int64Array, LargeStringArray, RecordBatch, StringArray, StringViewArray,
    };
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use std::sync::Arc;

    /// `n` rows over `groups` groups, in 4 partitions: strings of 0–30 characters (as Utf8,
    /// LargeUtf8, Utf8View and Binary), NULL now and then, and a flag to filter on.
    fn table(n: usize, groups: i64) -> Arc<MemTable> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut keys = Vec::new();
        let mut text = Vec::new();
        for _ in 0..n {
            let r = next();
            keys.push((r % groups as u64) as i64);
            text.push((r % 11 != 0).then(|| {
                let len = (r >> 8) as usize % 31;
                (0..len)
                    .map(|i| char::from(b'a' + ((r >> (i % 50)) % 26) as u8))
                    .collect::<String>()
            }));
        }
        let strings = StringArray::from(text.clone());
        let batch = RecordBatch::try_from_iter([
            ("k", Arc::new(Int64Array::from(keys)) as ArrayRef),
            ("s", Arc::new(strings.clone()) as ArrayRef),
            (
                "large",
                Arc::new(LargeStringArray::from(text.clone())) as ArrayRef,
            ),
            (
                "view",
                Arc::new(StringViewArray::from(text.clone())) as ArrayRef,
            ),
            (
                "bin",
                Arc::new(BinaryArray::from_iter(
                    text.iter().map(|t| t.as_ref().map(|s| s.as_bytes())),
                )) as ArrayRef,
            ),
        ])
        .unwrap();
        let quarter = n / 4;
        let partitions = (0..4)
            .map(|p| vec![batch.slice(p * quarter, if p == 3 { n - 3 * quarter } else { quarter })])
            .collect();
        Arc::new(MemTable::try_new(batch.schema(), partitions).unwrap())
    }

    /// The query's rows, sorted, as text.
    async fn rows(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let text = pretty_format_batches(&batches).unwrap().to_string();
        let mut lines: Vec<&str> = text.lines().collect();
        lines.sort_unstable();
        lines.join("\n")
    }

    fn context(ours: bool, batch_size: usize) -> SessionContext {
        let ctx = SessionContext::new_with_config(
            SessionConfig::new()
                .with_target_partitions(3)
                .with_batch_size(batch_size),
        );
        if ours {
            ctx.register_udaf(min_udaf());
            ctx.register_udaf(max_udaf());
        }
        ctx
    }

    #[tokio::test]
    async fn every_string_type_gives_datafusion_s_extremes() {
        let sql = "SELECT k, MIN(s), MAX(s), MIN(large), MAX(large), MIN(view), MAX(view), \
                   MIN(bin), MAX(bin), MAX(s) FILTER (WHERE length(s) < 5), \
                   MIN(view) FILTER (WHERE k % 2 = 0) FROM t GROUP BY k";
        // Few groups with many rows each, and many groups of a row or two (past the table's
        // floor, so that stale values are dropped while groups keep theirs).
        for (n, groups, batch_size) in [(20_000, 7, 1000), (300_000, 200_000, 4096)] {
            let (theirs, ours) = (context(false, batch_size), context(true, batch_size));
            for ctx in [&theirs, &ours] {
                ctx.register_table("t", table(n, groups)).unwrap();
            }
            let expected = rows(&theirs, sql).await;
            assert_eq!(
                rows(&ours, sql).await,
                expected,
                "{n} rows, {groups} groups"
            );
        }
    }

    #[test]
    fn stale_values_are_dropped_and_every_group_keeps_its_extreme() {
        let mut acc = ExtremeBytes::new(&DataType::Utf8, Keep::Largest);
        let groups = 10;
        // Rising values: every row wins, so the table gains a value per row.
        for round in 0..20_000u32 {
            let values: ArrayRef = Arc::new(StringArray::from_iter_values(
                (0..groups).map(|g| format!("{g}-{round:08}")),
            ));
            let group_indices: Vec<usize> = (0..groups).collect();
            acc.update_batch(&[values], &group_indices, None, groups)
                .unwrap();
            assert!(
                acc.values.len() <= COMPACT_FLOOR + groups,
                "{}",
                acc.values.len()
            );
        }
        let out = acc.evaluate(EmitTo::All).unwrap();
        let out = out.as_string::<i32>();
        for g in 0..groups {
            assert_eq!(out.value(g), format!("{g}-{:08}", 19_999));
        }
        assert_eq!(acc.values.len(), 0);
    }

    #[test]
    fn a_group_without_a_value_is_null_and_emitting_the_first_keeps_the_rest() {
        let mut acc = ExtremeBytes::new(&DataType::Utf8View, Keep::Smallest);
        let values: ArrayRef = Arc::new(StringViewArray::from(vec![
            Some("pear"),
            None,
            Some("apple, a longer value than twelve bytes"),
            Some("fig"),
        ]));
        acc.update_batch(&[values], &[0, 1, 2, 0], None, 4).unwrap();
        let first = acc.evaluate(EmitTo::First(2)).unwrap();
        let first = first.as_string_view();
        assert_eq!((first.value(0), first.is_null(1)), ("fig", true));
        let rest = acc.evaluate(EmitTo::All).unwrap();
        let rest = rest.as_string_view();
        assert_eq!(rest.value(0), "apple, a longer value than twelve bytes");
        assert!(rest.is_null(1));
    }
}
