//! `featurecraft_latest(value, time, tie, …)`: the value of the row with the greatest
//! `(time, tie, …)`, the as-of values of a point-in-time plan in DataFusion.
//!
//! Elsewhere an as-of value is the first row of `ROW_NUMBER() OVER (PARTITION BY pair ORDER
//! BY time DESC, ties DESC NULLS LAST)`. DataFusion 55 computes that window by sorting every
//! joined row, which cost most of an as-of source's time (4.4 s of 3.4M joined rows at
//! benchmark scale L). This aggregate gives the same row in one pass with a grouped
//! accumulator: per group, the greatest ordering seen and its value, both as Arrow's row
//! format, whose byte order is the ordering's (NULL smallest, so last when descending;
//! strings by their bytes; floats in total order, as DataFusion sorts them).
//!
//! The value is the winning row's even when it is NULL. Its state, between the partial and
//! the final aggregation, is the ordering's and the value's row bytes (Binary).

use crate::compile::functions::LATEST;
use crate::run::grouped_values::kept;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use std::sync::Arc;

/// The `featurecraft_latest` aggregate, registered in every featurecraft session.
pub fn latest_udaf() -> AggregateUDF {
    AggregateUDF::new_from_impl(Latest {
        signature: Signature::variadic_any(Volatility::Immutable),
    })
}

/// The aggregate's definition (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Latest {
    signature: Signature,
}

impl AggregateUDFImpl for Latest {
    fn name(&self) -> &str {
        LATEST
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [value, _, ..] => Ok(value.clone()),
            _ => exec_err!("{LATEST} takes a value and at least one ordering column"),
        }
    }

    fn is_nullable(&self) -> bool {
        true
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format!("{}[order]", args.name),
                DataType::Binary,
                true,
            )),
            Arc::new(Field::new(
                format!("{}[value]", args.name),
                DataType::Binary,
                true,
            )),
        ])
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(LatestOne {
            groups: LatestGroups::new(args.expr_fields)?,
        }))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(LatestGroups::new(args.expr_fields)?))
    }
}

/// Per group, the greatest ordering seen and its row's value.
#[derive(Debug)]
struct LatestGroups {
    /// The ordering columns (time, ties) as row bytes, NULL smallest.
    order: RowConverter,
    /// The value as row bytes.
    value: RowConverter,
    /// The value's type, which the row format does not keep for a dictionary (its rows
    /// read back as the dictionary's values).
    value_type: DataType,
    /// The value NULL, as row bytes: what a group with no row gives.
    null_value: Vec<u8>,
    /// The groups' best rows, each its ordering's bytes followed by its value's, where its
    /// slot says. One buffer instead of a vector per group: no allocation per new best,
    /// and half the memory at millions of groups (less to spill).
    arena: Vec<u8>,
    /// Per group, where its best row is in `arena`.
    slots: Vec<Slot>,
    /// Bytes of `arena` that no slot points at any more (replaced bests).
    garbage: usize,
    /// Per group, the row of the batch being read that beats its best (`u32::MAX`: none).
    pending: Vec<u32>,
}

/// Where a group's best row is in the arena; an empty ordering is no row yet (row bytes
/// are never empty).
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    start: usize,
    order_len: u32,
    value_len: u32,
}

impl Slot {
    fn order<'a>(&self, arena: &'a [u8]) -> Option<&'a [u8]> {
        (self.order_len > 0).then(|| &arena[self.start..self.start + self.order_len as usize])
    }

    fn value<'a>(&self, arena: &'a [u8]) -> Option<&'a [u8]> {
        let at = self.start + self.order_len as usize;
        (self.order_len > 0).then(|| &arena[at..at + self.value_len as usize])
    }

    fn len(&self) -> usize {
        self.order_len as usize + self.value_len as usize
    }
}

/// Some groups' best rows, taken out of the accumulator: an arena and a slot per group.
struct Taken {
    arena: Vec<u8>,
    slots: Vec<Slot>,
}

impl Taken {
    /// The slots' rows copied into an arena of their own.
    fn copied(arena: &[u8], slots: &[Slot]) -> Taken {
        let mut taken = Taken {
            arena: Vec::with_capacity(slots.iter().map(Slot::len).sum()),
            slots: Vec::with_capacity(slots.len()),
        };
        for slot in slots {
            let start = taken.arena.len();
            if slot.order_len > 0 {
                taken
                    .arena
                    .extend_from_slice(&arena[slot.start..slot.start + slot.len()]);
            }
            taken.slots.push(Slot { start, ..*slot });
        }
        taken
    }
}

impl LatestGroups {
    fn new(fields: &[FieldRef]) -> Result<Self> {
        let [value, order @ ..] = fields else {
            return exec_err!("{LATEST} takes a value and at least one ordering column");
        };
        if order.is_empty() {
            return exec_err!("{LATEST} takes a value and at least one ordering column");
        }
        let order = RowConverter::new(
            order
                .iter()
                .map(|f| SortField::new(f.data_type().clone()))
                .collect(),
        )?;
        let value_type = value.data_type().clone();
        let value = RowConverter::new(vec![SortField::new(value_type.clone())])?;
        let null = arrow::array::new_null_array(&value_type, 1);
        let null_value = value.convert_columns(&[null])?.row(0).as_ref().to_vec();
        Ok(LatestGroups {
            order,
            value,
            value_type,
            null_value,
            arena: Vec::new(),
            slots: Vec::new(),
            garbage: 0,
            pending: Vec::new(),
        })
    }

    fn resize(&mut self, total_num_groups: usize) {
        if self.slots.len() < total_num_groups {
            self.slots.resize(total_num_groups, Slot::default());
            self.pending.resize(total_num_groups, u32::MAX);
        }
    }

    /// For each group, the row among those `keep` keeps whose ordering (`order(row)`) beats
    /// the group's best and every other such row of the batch: `(group, row)` pairs.
    fn winners<'o>(
        &mut self,
        group_indices: &[usize],
        keep: impl Fn(usize) -> bool,
        order: impl Fn(usize) -> &'o [u8],
    ) -> Result<Vec<(usize, usize)>> {
        if u32::try_from(group_indices.len()).is_err() {
            return exec_err!("{LATEST}: a batch of more than 4G rows");
        }
        let mut touched = Vec::new();
        for (row, &group) in group_indices.iter().enumerate() {
            if !keep(row) {
                continue;
            }
            let candidate = order(row);
            let pending = self.pending[group];
            let better = if pending != u32::MAX {
                candidate > order(pending as usize)
            } else {
                self.slots[group]
                    .order(&self.arena)
                    .is_none_or(|best| candidate > best)
            };
            if better {
                if pending == u32::MAX {
                    touched.push(group);
                }
                self.pending[group] = row as u32;
            }
        }
        Ok(touched
            .into_iter()
            .map(|group| {
                let row = std::mem::replace(&mut self.pending[group], u32::MAX);
                (group, row as usize)
            })
            .collect())
    }

    /// Makes `(order, value)` the group's best row.
    fn set(&mut self, group: usize, order: &[u8], value: &[u8]) -> Result<()> {
        let (Ok(order_len), Ok(value_len)) =
            (u32::try_from(order.len()), u32::try_from(value.len()))
        else {
            return exec_err!("{LATEST}: a value or ordering of more than 4 GiB");
        };
        let old = self.slots[group];
        self.garbage += old.len();
        self.slots[group] = Slot {
            start: self.arena.len(),
            order_len,
            value_len,
        };
        self.arena.extend_from_slice(order);
        self.arena.extend_from_slice(value);
        Ok(())
    }

    /// Drops the replaced rows once they are most of the arena.
    fn compact(&mut self) {
        if self.garbage > (1 << 20) && self.garbage * 2 > self.arena.len() {
            let Taken { arena, slots } = Taken::copied(&self.arena, &self.slots);
            (self.arena, self.slots, self.garbage) = (arena, slots, 0);
        }
    }

    /// The arguments' ordering and value as row bytes.
    fn rows(&self, values: &[ArrayRef]) -> Result<(Rows, Rows)> {
        let Some((value, order)) = values.split_first() else {
            return exec_err!("{LATEST} takes a value and at least one ordering column");
        };
        let order = self.order.convert_columns(order)?;
        let value = self.value.convert_columns(std::slice::from_ref(value))?;
        Ok((order, value))
    }

    /// The groups `emit_to` takes, removed.
    fn take(&mut self, emit_to: EmitTo) -> Taken {
        let _ = emit_to.take_needed(&mut self.pending);
        match emit_to {
            EmitTo::All => {
                self.garbage = 0;
                Taken {
                    arena: std::mem::take(&mut self.arena),
                    slots: std::mem::take(&mut self.slots),
                }
            }
            EmitTo::First(n) => {
                let n = n.min(self.slots.len());
                let taken = Taken::copied(&self.arena, &self.slots[..n]);
                let kept = Taken::copied(&self.arena, &self.slots[n..]);
                (self.arena, self.slots, self.garbage) = (kept.arena, kept.slots, 0);
                taken
            }
        }
    }

    /// The values of some groups (NULL for a group with no row).
    fn values(&self, taken: &Taken) -> Result<ArrayRef> {
        let parser = self.value.parser();
        let rows = taken
            .slots
            .iter()
            .map(|slot| parser.parse(slot.value(&taken.arena).unwrap_or(&self.null_value)));
        let mut columns = self.value.convert_rows(rows)?;
        match columns.pop() {
            Some(column) if column.data_type() == &self.value_type => Ok(column),
            Some(column) => Ok(cast(&column, &self.value_type)?),
            None => exec_err!("{LATEST}: no value column"),
        }
    }

    /// The state of some groups: their ordering's and value's bytes, NULL for none.
    fn state_of(taken: &Taken) -> Vec<ArrayRef> {
        let order: BinaryArray = taken
            .slots
            .iter()
            .map(|slot| slot.order(&taken.arena))
            .collect();
        let value: BinaryArray = taken
            .slots
            .iter()
            .map(|slot| slot.value(&taken.arena))
            .collect();
        vec![Arc::new(order), Arc::new(value)]
    }
}

impl GroupsAccumulator for LatestGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.resize(total_num_groups);
        let (order, value) = self.rows(values)?;
        let winners = self.winners(
            group_indices,
            |row| kept(opt_filter, row),
            |row| order.row(row).data(),
        )?;
        for (group, row) in winners {
            self.set(group, order.row(row).data(), value.row(row).data())?;
        }
        self.compact();
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = self.take(emit_to);
        self.values(&taken)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(Self::state_of(&self.take(emit_to)))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        let [order, value] = values else {
            return exec_err!("{LATEST}: a state is an ordering and a value");
        };
        self.resize(total_num_groups);
        let (order, value) = (order.as_binary::<i32>(), value.as_binary::<i32>());
        // The states' bytes are compared and kept as they are, without a conversion. A
        // state row without an ordering is a group that had no row: it changes nothing.
        let winners = self.winners(
            group_indices,
            |row| order.is_valid(row) && value.is_valid(row),
            |row| order.value(row),
        )?;
        for (group, row) in winners {
            self.set(group, order.value(row), value.value(row))?;
        }
        self.compact();
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let (order, value) = self.rows(values)?;
        let orders: BinaryArray = (0..order.num_rows())
            .map(|i| kept(opt_filter, i).then(|| order.row(i).data()))
            .collect();
        let values: BinaryArray = (0..value.num_rows())
            .map(|i| kept(opt_filter, i).then(|| value.row(i).data()))
            .collect();
        Ok(vec![Arc::new(orders), Arc::new(values)])
    }

    fn size(&self) -> usize {
        self.arena.capacity()
            + self.slots.capacity() * size_of::<Slot>()
            + self.pending.capacity() * size_of::<u32>()
            + self.order.size()
            + self.value.size()
    }
}

/// The ungrouped form: one group.
#[derive(Debug)]
struct LatestOne {
    groups: LatestGroups,
}

impl LatestOne {
    /// The one group's best row (no row when nothing was read), copied.
    fn one(&self) -> Taken {
        match self.groups.slots.first() {
            Some(slot) => Taken::copied(&self.groups.arena, std::slice::from_ref(slot)),
            None => Taken {
                arena: Vec::new(),
                slots: vec![Slot::default()],
            },
        }
    }
}

impl Accumulator for LatestOne {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = values.first().map_or(0, |v| v.len());
        GroupsAccumulator::update_batch(&mut self.groups, values, &vec![0; rows], None, 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let values = self.groups.values(&self.one())?;
        ScalarValue::try_from_array(&values, 0)
    }

    fn size(&self) -> usize {
        size_of::<Self>() + GroupsAccumulator::size(&self.groups)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        LatestGroups::state_of(&self.one())
            .iter()
            .map(|a| ScalarValue::try_from_array(a, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states.first().map_or(0, |s| s.len());
        GroupsAccumulator::merge_batch(&mut self.groups, states, &vec![0; rows], 1)
    }
}

#[cfg(test)]
mod tests {
    use super::latest_udaf;
    use datafusion::arrow::array::{Float64Array, Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::util::pretty::pretty_format_batches;
    use datafusion::datasource::MemTable;
    use datafusion::prelude::{SessionConfig, SessionContext};
    use std::sync::Arc;

    /// Rows with many ties on the time, NULLs in every column, and floats that sort
    /// specially (NaN, -0.0, 0.0), from a fixed pseudo-random sequence.
    fn rows(n: usize) -> RecordBatch {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |m: u64| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % m
        };
        let (mut g, mut t, mut s, mut f, mut v) = (vec![], vec![], vec![], vec![], vec![]);
        for _ in 0..n {
            g.push(next(200) as i64);
            t.push((next(10) != 0).then(|| next(4) as i64));
            s.push((next(6) != 0).then(|| ["a", "b", "B", "ab", ""][next(5) as usize]));
            f.push((next(6) != 0).then(|| [f64::NAN, -0.0, 0.0, 1.5, -2.0][next(5) as usize]));
            v.push((next(5) != 0).then(|| format!("v{}", next(1000))));
        }
        let schema = Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("t", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
            Field::new("f", DataType::Float64, true),
            Field::new("v", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(g)),
                Arc::new(Int64Array::from(t)),
                Arc::new(StringArray::from(s)),
                Arc::new(Float64Array::from(f)),
                Arc::new(StringArray::from(v)),
            ],
        )
        .unwrap()
    }

    /// A session over `rows` in four partitions of small batches, so partial states are
    /// merged, with `featurecraft_latest` registered; `skip_partial` makes the partial
    /// aggregation pass every row on as its own state.
    async fn session(skip_partial: bool) -> SessionContext {
        let mut config = SessionConfig::new()
            .with_target_partitions(4)
            .with_batch_size(16);
        if skip_partial {
            let options = config.options_mut();
            options
                .execution
                .skip_partial_aggregation_probe_rows_threshold = 1;
            options
                .execution
                .skip_partial_aggregation_probe_ratio_threshold = 0.0;
        }
        let ctx = SessionContext::new_with_config(config);
        ctx.register_udaf(latest_udaf());
        let batch = rows(3000);
        let chunks = (0..4).map(|p| vec![batch.slice(p * 750, 750)]).collect();
        let table = MemTable::try_new(batch.schema(), chunks).unwrap();
        ctx.register_table("x", Arc::new(table)).unwrap();
        ctx
    }

    async fn text(ctx: &SessionContext, sql: &str) -> String {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        pretty_format_batches(&batches).unwrap().to_string()
    }

    /// The first row of DataFusion's own ranking, descending with NULLs last: what the
    /// other dialects render for an as-of value.
    const RANKED: &str = "SELECT g, v FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g \
        ORDER BY t DESC NULLS LAST, s DESC NULLS LAST, f DESC NULLS LAST, v DESC NULLS LAST) AS r \
        FROM x) WHERE r = 1 ORDER BY g";
    const LATEST: &str = "SELECT g, featurecraft_latest(v, t, s, f, v) AS v FROM x \
        GROUP BY g ORDER BY g";

    #[tokio::test]
    async fn the_latest_value_is_the_first_row_of_the_descending_ranking() {
        for skip_partial in [false, true] {
            let ctx = session(skip_partial).await;
            let ranked = text(&ctx, RANKED).await;
            assert_eq!(ranked.lines().count(), 204, "200 groups:\n{ranked}");
            assert_eq!(
                text(&ctx, LATEST).await,
                ranked,
                "skip_partial {skip_partial}"
            );
        }
    }

    #[tokio::test]
    async fn ungrouped_and_filtered_it_agrees_too() {
        let ctx = session(false).await;
        let first = text(
            &ctx,
            "SELECT v FROM x WHERE g < 50 ORDER BY t DESC NULLS LAST, s DESC NULLS LAST, \
             f DESC NULLS LAST, v DESC NULLS LAST LIMIT 1",
        )
        .await;
        let latest = text(
            &ctx,
            "SELECT featurecraft_latest(v, t, s, f, v) AS v FROM x WHERE g < 50",
        )
        .await;
        assert_eq!(latest, first);
        // Over no rows: NULL, as the ranking's missing row reads through a LEFT JOIN.
        let none = text(
            &ctx,
            "SELECT featurecraft_latest(v, t) AS v FROM x WHERE g < 0",
        )
        .await;
        assert!(none.contains("|   |"), "{none}");
        // The value is the winning row's, NULL included: a NULL `v` with the greatest time.
        let null_wins = text(
            &ctx,
            "SELECT featurecraft_latest(v, t) AS v FROM \
             (SELECT CAST(NULL AS VARCHAR) AS v, 9 AS t UNION ALL SELECT 'old', 1)",
        )
        .await;
        assert!(null_wins.contains("|   |"), "{null_wins}");
    }

    #[tokio::test]
    async fn it_refuses_fewer_than_two_arguments() {
        let ctx = session(false).await;
        let error = match ctx.sql("SELECT featurecraft_latest(v) FROM x").await {
            Ok(frame) => frame.collect().await.err(),
            Err(e) => Some(e),
        };
        let message = error.expect("refused").to_string();
        assert!(
            message.contains("featurecraft_latest takes a value"),
            "{message}"
        );
    }

    /// A group whose best is replaced again and again leaves replaced rows in the arena
    /// until they are compacted away; emitting the first groups keeps the others' rows.
    #[test]
    fn replaced_rows_are_compacted_and_emitting_first_groups_keeps_the_rest() {
        use super::LatestGroups;
        use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray};
        use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
        let fields = [
            Arc::new(Field::new("v", DataType::Utf8, true)),
            Arc::new(Field::new("t", DataType::Int64, true)),
        ];
        let mut groups = LatestGroups::new(&fields).unwrap();
        let (count, per_batch, batches) = (1_000usize, 1_000usize, 300usize);
        let mut expected = vec![None; count];
        let mut largest_arena = 0;
        for b in 0..batches {
            let rows: Vec<usize> = (b * per_batch..(b + 1) * per_batch).collect();
            let group_of: Vec<usize> = rows.iter().map(|r| (r * 7) % count).collect();
            // Every third row is filtered out; the others' times grow, so each kept row wins.
            let keep: BooleanArray = rows.iter().map(|r| Some(r % 3 != 0)).collect();
            let values: ArrayRef = Arc::new(StringArray::from_iter_values(
                rows.iter().map(|r| format!("value of row {r}")),
            ));
            let times: ArrayRef =
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|&r| r as i64)));
            groups
                .update_batch(&[values, times], &group_of, Some(&keep), count)
                .unwrap();
            for (&r, &g) in rows.iter().zip(&group_of) {
                if r % 3 != 0 {
                    expected[g] = Some(format!("value of row {r}"));
                }
            }
            largest_arena = largest_arena.max(groups.arena.len());
        }
        // 200 000 rows of ~40 bytes won, one per group and batch: without compaction the arena
        // would hold them all (7 MB); it holds about the live groups' rows.
        assert!(largest_arena < 3 << 20, "{largest_arena} bytes");
        let first = groups.evaluate(EmitTo::First(10)).unwrap();
        let rest = groups.evaluate(EmitTo::All).unwrap();
        assert_eq!((first.len(), rest.len()), (10, count - 10));
        let got: Vec<Option<String>> = first
            .as_string::<i32>()
            .iter()
            .chain(rest.as_string::<i32>().iter())
            .map(|v| v.map(str::to_string))
            .collect();
        assert_eq!(got, expected);
    }
}
