//! Validation findings particular to point-in-time plans, on the same sample of entities:
//!
//! - `W104`: a timed source has no row before any sampled cutoff (within its widest
//!   window), so every feature from it is empty: the cutoffs are outside its time range.
//! - `W124`: a windowed feature's window holds no source row for most sampled rows.
//! - `W103`: an as-of value's source has several rows at the latest time before a sampled
//!   cutoff; the documented tie-break chose one.
//! - `W105`: sampled rows whose label window (a label from the future) ends after the
//!   label source's latest time: their future is not observed yet.
//!
//! The first two count each timed source's rows per window with a plan of `COUNT(*)`
//! features rendered as the recipe's own (same joins, same windows, same sample); the ties
//! are counted per as-of source, from the source's sampled rows and the sampled query's
//! pairs where it can (one query joining them otherwise).

use crate::compile::analyze::{FeatureHome, Plan, PlannedFeature, Source};
use crate::compile::point_in_time::{PlanTime, Window};
use crate::diagnostic::{Code, Diagnostic};
use crate::run::keyhash::key_hash_udf;
use crate::run::sample::{runtime_error, sampled_rows, table_reference};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Int64Type, IntervalMonthDayNano, TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::ScalarValue;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::functions_aggregate::expr_fn::{count, max};
use datafusion::logical_expr::{Expr, JoinType, cast, col, ident, lit};
use datafusion::prelude::{DataFrame, SessionContext};
use futures::StreamExt;
use sqlparser::ast::Expr as SqlExpr;

/// `W105` when sampled rows have a label window that ends after the label source's latest
/// time (over the whole table): a label of "nothing happened" there may only mean that the
/// data ends. `cutoffs` is the sample's cutoff column. Nothing when the schedule drops
/// such rows.
pub async fn immature_labels(
    ctx: &SessionContext,
    plan: &Plan,
    cutoffs: &ArrayRef,
) -> Result<Option<Diagnostic>, Diagnostic> {
    let Some(label) = &plan.label.future else {
        return Ok(None);
    };
    if plan
        .spine
        .schedule
        .as_ref()
        .is_some_and(|s| s.drop_immature)
    {
        return Ok(None);
    }
    let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
    let latest = ctx
        .table(table_reference(&label.table))
        .await
        .map_err(runtime_error)?
        .aggregate(
            vec![],
            vec![cast(max(ident(&label.time.column)), micros.clone()).alias("latest")],
        )
        .map_err(runtime_error)?
        .collect()
        .await
        .map_err(runtime_error)?;
    let horizon: Option<i64> = latest
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| b.column(0).as_primitive::<TimestampMicrosecondType>())
        .filter(|column| column.is_valid(0))
        .map(|column| column.value(0));
    let cutoffs = arrow::compute::cast(cutoffs, &micros).map_err(|e| runtime_error(e.into()))?;
    let cutoffs = cutoffs.as_primitive::<TimestampMicrosecondType>();
    let end = span_micros(label.end().seconds);
    let immature = cutoffs
        .iter()
        .flatten()
        .filter(|c| horizon.is_none_or(|h| c.saturating_add(end) > h))
        .count();
    if immature == 0 {
        return Ok(None);
    }
    let latest = match horizon.and_then(chrono::DateTime::from_timestamp_micros) {
        Some(at) => format!(
            "`{}` of `{}` ends at {}",
            label.time.column,
            label.table,
            at.naive_utc()
        ),
        None => format!(
            "`{}` has no row with a `{}`",
            label.table, label.time.column
        ),
    };
    Ok(Some(
        Diagnostic::new(
            Code::W105,
            format!(
                "{immature} of {} sampled rows have a label window ({} after the cutoff) that ends after the data: {latest}; their future is not observed yet, so their label may only say that the data ends",
                cutoffs.len(),
                label.end(),
            ),
        )
        .hint("end the schedule earlier (`until`), or set `\"drop_immature\": true` to leave these rows out"),
    ))
}

/// A window holding no row for more than this share of the sampled rows is reported.
const MOSTLY_EMPTY: f64 = 0.5;

/// The point-in-time findings of a plan on the sample (`threshold` as the key scan chose it).
/// `counted` is the sampled rows of [`with_counts`]`(plan, counts)` when the caller ran
/// that query anyway (validation does, for a recipe that fits one query): the windows'
/// rows are then read from it instead of counted by a query of their own.
pub async fn findings(
    ctx: &SessionContext,
    plan: &Plan,
    threshold: Option<i64>,
    counted: Option<(&WindowCounts, &RecordBatch)>,
) -> Result<Vec<Diagnostic>, Diagnostic> {
    let Some(time) = &plan.point_in_time else {
        return Ok(Vec::new());
    };
    let mut findings = match counted {
        Some((counts, rows)) => window_findings(plan, counts, rows),
        None => match window_counts(plan) {
            Some(counts) => {
                let counting = counting_plan(plan, &counts, false);
                let rows = sampled_rows(ctx, &counting, threshold).await?;
                window_findings(plan, &counts, &rows)
            }
            None => Vec::new(),
        },
    };
    // The sampled query's rows hold the sampled (entity, cutoff) pairs: the spine's rows
    // of the sampled entities, as the tie check's own query would read them again.
    let pairs = counted.map(|(_, rows)| rows);
    for s in 0..plan.sources.len() {
        if features_of(plan, s).any(|f| f.as_of) {
            findings.extend(as_of_ties(ctx, plan, time, s, threshold, pairs).await?);
        }
    }
    Ok(findings)
}

/// One `COUNT(*)` per (timed source, window) its features use, plus its widest.
struct WindowCount {
    source: usize,
    window: Option<Window>,
}

/// The `COUNT(*)` per (timed source, window) that `W104` and `W124` read, and the names of
/// their columns (apart from the plan's own).
pub struct WindowCounts {
    counts: Vec<WindowCount>,
    names: Vec<String>,
}

/// The window counts a plan's findings need; `None` without a windowed or timed feature.
pub fn window_counts(plan: &Plan) -> Option<WindowCounts> {
    plan.point_in_time.as_ref()?;
    let mut counts: Vec<WindowCount> = Vec::new();
    for (s, source) in plan.sources.iter().enumerate() {
        if source.time.is_none() {
            continue;
        }
        let windows: Vec<Option<Window>> = features_of(plan, s).map(|f| f.window).collect();
        if windows.is_empty() {
            continue;
        }
        let widest = if windows.iter().any(Option::is_none) {
            None
        } else {
            windows.iter().flatten().max().copied()
        };
        let mut wanted = vec![widest];
        wanted.extend(windows.iter().filter(|w| w.is_some()).copied());
        wanted.dedup();
        for window in wanted {
            if !counts.iter().any(|c| c.source == s && c.window == window) {
                counts.push(WindowCount { source: s, window });
            }
        }
    }
    if counts.is_empty() {
        return None;
    }
    let taken: Vec<String> = plan
        .grain
        .iter()
        .chain(plan.features.iter().map(|f| &f.name))
        .chain(std::iter::once(&plan.label.name))
        .map(|n| n.to_ascii_lowercase())
        .collect();
    let names = (0..counts.len())
        .map(|i| {
            crate::sql::fresh_name(&format!("featurecraft_window_rows_{i}"), |key| {
                taken.iter().any(|t| t == key)
            })
        })
        .collect();
    Some(WindowCounts { counts, names })
}

/// The plan with its window counts as more features, after its own: one sampled query
/// gives both.
pub fn with_counts(plan: &Plan, counts: &WindowCounts) -> Plan {
    counting_plan(plan, counts, true)
}

/// `W104` and `W124`, from the rows each window holds per sampled spine row (`rows`, a
/// sampled query's, with the counts' columns).
fn window_findings(plan: &Plan, counts: &WindowCounts, rows: &RecordBatch) -> Vec<Diagnostic> {
    let WindowCounts { counts, names } = counts;
    let total = rows.num_rows();
    if total == 0 {
        return Vec::new();
    }
    // The share of sampled rows each window holds no row for (columns read by name).
    let empty_share: Vec<f64> = (0..counts.len())
        .map(|i| {
            let Some(column) = rows.column_by_name(&names[i]) else {
                return 0.0;
            };
            let empty = match arrow::compute::cast(column, &DataType::Int64) {
                Ok(values) => values
                    .as_primitive::<Int64Type>()
                    .iter()
                    .filter(|v| v.unwrap_or(0) == 0)
                    .count(),
                Err(_) => 0,
            };
            empty as f64 / total as f64
        })
        .collect();
    let mut findings = Vec::new();
    let mut silent_sources = Vec::new();
    for (i, c) in counts.iter().enumerate() {
        let source = &plan.sources[c.source];
        let first = features_of(plan, c.source).next();
        // The widest window comes first for each source.
        let is_widest = counts.iter().position(|x| x.source == c.source) == Some(i);
        if is_widest && empty_share[i] >= 1.0 {
            silent_sources.push(c.source);
            let within = c.window.map(|w| format!(" within {w}")).unwrap_or_default();
            let mut d = Diagnostic::new(
                Code::W104,
                format!(
                    "`{}` has no row before any of the {total} sampled cutoffs{within}: every feature from it is empty; the cutoffs may be outside its time range",
                    source.table
                ),
            );
            if let Some(f) = first {
                d = d.at(f.path.clone());
            }
            findings.push(d.hint(
                "compare the cutoffs with the source's times, or check `point_in_time.time_columns`",
            ));
        }
    }
    for (s, f) in plan
        .features
        .iter()
        .filter_map(|f| match f.home {
            FeatureHome::Source(s) => Some((s, f)),
            FeatureHome::Spine => None,
        })
        .filter(|(s, f)| f.window.is_some() && !silent_sources.contains(s))
    {
        let Some(i) = counts
            .iter()
            .position(|c| c.source == s && c.window == f.window)
        else {
            continue;
        };
        if empty_share[i] > MOSTLY_EMPTY {
            let window = f.window.map(|w| w.to_string()).unwrap_or_default();
            findings.push(
                Diagnostic::new(
                    Code::W124,
                    format!(
                        "feature `{}`: its {window} window holds no row of `{}` for {:.1} % of the sampled rows",
                        f.name,
                        plan.sources[s].table,
                        empty_share[i] * 100.0
                    ),
                )
                .at(f.path.clone())
                .hint("a wider window may carry more signal"),
            );
        }
    }
    findings
}

/// The features computed by source `s`.
fn features_of(plan: &Plan, s: usize) -> impl Iterator<Item = &PlannedFeature> {
    plan.features
        .iter()
        .filter(move |f| f.home == FeatureHome::Source(s))
}

/// The plan's spine and sources with one `COUNT(*)` feature per window count (after its
/// own features with `keep_features`, instead of them without), each counted timed source
/// grouped (an as-of source's rows are counted too, its as-of values then a part of their
/// own, as in a recipe that mixes both).
fn counting_plan(plan: &Plan, counts: &WindowCounts, keep_features: bool) -> Plan {
    let WindowCounts { counts, names } = counts;
    let count_star = match crate::compile::fragment::parse_fragment(
        "COUNT(*)",
        crate::diagnostic::RecipePath::PointInTime(None),
    ) {
        Ok(expr) => expr,
        Err(_) => SqlExpr::value(sqlparser::ast::Value::Null),
    };
    let zero = SqlExpr::value(sqlparser::ast::Value::Number("0".into(), false));
    let sources: Vec<Source> = plan
        .sources
        .iter()
        .enumerate()
        .map(|(i, s)| Source {
            grouped: s.grouped || counts.iter().any(|c| c.source == i),
            ..s.clone()
        })
        .collect();
    let own = if keep_features {
        plan.features.clone()
    } else {
        Vec::new()
    };
    let features = own
        .into_iter()
        .chain(counts.iter().enumerate().map(|(i, c)| PlannedFeature {
            name: names[i].clone(),
            path: crate::diagnostic::RecipePath::PointInTime(None),
            expr: count_star.clone(),
            home: FeatureHome::Source(c.source),
            empty_value: Some(zero.clone()),
            declared_type: None,
            float_to_text: Vec::new(),
            window: c.window,
            as_of: false,
            reads_cutoff: false,
        }))
        .collect();
    Plan {
        sources,
        features,
        ..plan.clone()
    }
}

/// `W103`: sampled (entity, cutoff) pairs whose latest row before the cutoff in an as-of
/// source shares its time with another row. With the sampled query's rows (`pairs`) and a
/// sample, the source's sampled rows are read once and the pairs looked up in memory the
/// pool grants ([`ties_in_memory`]); otherwise, or when that cannot be done, one query
/// joins the spine's pairs to the rows ([`ties_by_query`]).
async fn as_of_ties(
    ctx: &SessionContext,
    plan: &Plan,
    time: &PlanTime,
    s: usize,
    threshold: Option<i64>,
    pairs: Option<&RecordBatch>,
) -> Result<Option<Diagnostic>, Diagnostic> {
    let source = &plan.sources[s];
    let Some(source_time) = &source.time else {
        return Ok(None);
    };
    let mut row_columns: Vec<Expr> = source
        .grain
        .iter()
        .enumerate()
        .map(|(i, k)| ident(k).alias(format!("__s{i}")))
        .collect();
    row_columns.push(as_timestamp(ident(&source_time.column)).alias("__t"));
    let rows = ctx
        .table(table_reference(&source.table))
        .await
        .and_then(|rows| sampled_by_key(rows, &source.grain, threshold))
        .and_then(|rows| rows.select(row_columns))
        .map_err(runtime_error)?;
    // Without a sample every source row would be held; the query's join is bounded by
    // the pool instead.
    let in_memory = match (pairs, threshold) {
        (Some(pairs), Some(_)) => ties_in_memory(ctx, plan, time, s, pairs, rows.clone()).await,
        _ => None,
    };
    let tied = match in_memory {
        Some(tied) => tied,
        None => ties_by_query(ctx, plan, time, s, threshold, rows).await?,
    };
    if tied == 0 {
        return Ok(None);
    }
    Ok(Some(tie_warning(plan, s, source_time, tied)))
}

/// `frame`'s rows whose `columns` hash within the sample (all of them without one).
fn sampled_by_key(
    frame: DataFrame,
    columns: &[String],
    threshold: Option<i64>,
) -> datafusion::common::Result<DataFrame> {
    match threshold {
        Some(t) => frame.filter(
            key_hash_udf()
                .call(columns.iter().map(ident).collect())
                .lt_eq(lit(t)),
        ),
        None => Ok(frame),
    }
}

/// A span of `seconds` in the microseconds times are compared in (the longest one past
/// `i64`).
fn span_micros(seconds: u64) -> i64 {
    i64::try_from(seconds)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000)
}

/// A time as the checks compare times: a timestamp in microseconds.
fn as_timestamp(e: Expr) -> Expr {
    cast(e, DataType::Timestamp(TimeUnit::Microsecond, None))
}

/// The tied pairs counted by one query: the spine's sampled pairs joined to the source's
/// sampled `rows` (`__s…`, `__t`), counted per time, each pair's latest time found and
/// joined back.
async fn ties_by_query(
    ctx: &SessionContext,
    plan: &Plan,
    time: &PlanTime,
    s: usize,
    threshold: Option<i64>,
    rows: DataFrame,
) -> Result<i64, Diagnostic> {
    let key = plan.entity_key();
    let spine = crate::run::sample::spine_frame(ctx, plan).await?;
    let mut pair: Vec<Expr> = key
        .iter()
        .enumerate()
        .map(|(i, k)| ident(k).alias(format!("__k{i}")))
        .collect();
    pair.push(as_timestamp(ident(&time.cutoff)).alias("__c"));
    let pairs = sampled_by_key(spine, &key, threshold)
        .map_err(runtime_error)?
        .select(pair)
        .map_err(runtime_error)?
        .distinct()
        .map_err(runtime_error)?;
    let left: Vec<String> = (0..key.len()).map(|i| format!("__k{i}")).collect();
    let right: Vec<String> = (0..key.len()).map(|i| format!("__s{i}")).collect();
    let left: Vec<&str> = left.iter().map(String::as_str).collect();
    let right: Vec<&str> = right.iter().map(String::as_str).collect();
    let condition = as_of_rows(plan, s, time);
    let pair_columns: Vec<Expr> = left.iter().map(|c| col(*c)).chain([col("__c")]).collect();
    let per_time = pairs
        .join(rows, JoinType::Inner, &left, &right, Some(condition))
        .map_err(runtime_error)?
        .aggregate(
            pair_columns.iter().cloned().chain([col("__t")]).collect(),
            vec![count(lit(1)).alias("__n")],
        )
        .map_err(runtime_error)?;
    let latest = per_time
        .clone()
        .aggregate(
            pair_columns.clone(),
            vec![max(col("__t")).alias("__latest")],
        )
        .map_err(runtime_error)?
        .select(
            left.iter()
                .enumerate()
                .map(|(i, c)| col(*c).alias(format!("__l{i}")))
                .chain([col("__c").alias("__lc"), col("__latest")])
                .collect::<Vec<_>>(),
        )
        .map_err(runtime_error)?;
    let mut join_left: Vec<String> = left.iter().map(|c| c.to_string()).collect();
    join_left.extend(["__c".to_string(), "__t".to_string()]);
    let mut join_right: Vec<String> = (0..key.len()).map(|i| format!("__l{i}")).collect();
    join_right.extend(["__lc".to_string(), "__latest".to_string()]);
    let join_left: Vec<&str> = join_left.iter().map(String::as_str).collect();
    let join_right: Vec<&str> = join_right.iter().map(String::as_str).collect();
    let batches = per_time
        .join(latest, JoinType::Inner, &join_left, &join_right, None)
        .map_err(runtime_error)?
        .filter(col("__n").gt(lit(1i64)))
        .map_err(runtime_error)?
        .aggregate(vec![], vec![count(lit(1)).alias("pairs")])
        .map_err(runtime_error)?
        .collect()
        .await
        .map_err(runtime_error)?;
    Ok(batches
        .first()
        .filter(|b| b.num_rows() == 1)
        .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
        .unwrap_or(0))
}

/// The rows an as-of value may read, joined to each (entity, cutoff) pair: before the cutoff
/// (`__t` against `__c`), and within the widest window of the source's as-of features when
/// every one has a window.
fn as_of_rows(plan: &Plan, s: usize, time: &PlanTime) -> Expr {
    let before = if time.include_cutoff {
        col("__t").lt_eq(col("__c"))
    } else {
        col("__t").lt(col("__c"))
    };
    match widest_as_of_window(plan, s) {
        None => before,
        Some(w) => {
            let start = col("__c")
                - lit(ScalarValue::IntervalMonthDayNano(Some(
                    IntervalMonthDayNano::new(
                        0,
                        0,
                        i64::try_from(w.seconds)
                            .unwrap_or(i64::MAX)
                            .saturating_mul(1_000_000_000),
                    ),
                )));
            let within = if time.include_cutoff {
                col("__t").gt(start)
            } else {
                col("__t").gt_eq(start)
            };
            before.and(within)
        }
    }
}

/// The widest window of source `s`'s as-of features; `None` when one has no window (it
/// reads every earlier row).
fn widest_as_of_window(plan: &Plan, s: usize) -> Option<Window> {
    let windows: Vec<Option<Window>> = features_of(plan, s)
        .filter(|f| f.as_of)
        .map(|f| f.window)
        .collect();
    if windows.iter().any(Option::is_none) {
        None
    } else {
        windows.iter().flatten().max().copied()
    }
}

/// The tied pairs among the sampled query's rows (`pairs`: the entity key and the cutoff
/// by the grain's names), looked up in the source's sampled `rows` (`__s…`, `__t`) held in
/// memory: per key its times sorted, per distinct pair the latest time the as-of value may
/// read ([`as_of_rows`]' rule) and how many rows have it. `None` when it cannot be told
/// here (a column missing, keys that are not integers or strings on both sides or not
/// castable to the pairs' type, a failed read, memory refused): the caller then runs
/// [`ties_by_query`].
async fn ties_in_memory(
    ctx: &SessionContext,
    plan: &Plan,
    time: &PlanTime,
    s: usize,
    pairs: &RecordBatch,
    rows: DataFrame,
) -> Option<i64> {
    let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
    let key = plan.entity_key();
    let pair_keys: Vec<ArrayRef> = key
        .iter()
        .map(|k| pairs.column_by_name(k).cloned())
        .collect::<Option<_>>()?;
    // Keys compared by their bytes: integers or strings only (a float's zeros and NaNs
    // compare otherwise in a join), the source's of the same kind as the pairs'.
    let source_schema = rows.schema();
    let comparable = pair_keys.iter().enumerate().all(|(i, k)| {
        let source_type = source_schema.field(i).data_type();
        let text = |t: &DataType| match t {
            DataType::Dictionary(_, values) => values.is_string(),
            t => t.is_string(),
        };
        let pair_type = k.data_type();
        (pair_type.is_integer() && source_type.is_integer())
            || (text(pair_type) && text(source_type))
    });
    if !comparable {
        return None;
    }
    let cutoffs = arrow::compute::cast(pairs.column_by_name(&time.cutoff)?, &micros).ok()?;
    let cutoffs = cutoffs.as_primitive_opt::<TimestampMicrosecondType>()?;
    let converter = RowConverter::new(
        pair_keys
            .iter()
            .map(|k| SortField::new(k.data_type().clone()))
            .collect(),
    )
    .ok()?;

    // The source's sampled rows: keys in the pairs' types (an exact cast, or none), times.
    let strict = arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    let reservation =
        MemoryConsumer::new("featurecraft as-of ties").register(&ctx.runtime_env().memory_pool);
    let mut stream = rows.execute_stream().await.ok()?;
    let mut read: Vec<(Rows, ArrayRef)> = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.ok()?;
        let keys: Vec<ArrayRef> = (0..key.len())
            .map(|i| {
                arrow::compute::cast_with_options(
                    batch.column(i),
                    pair_keys[i].data_type(),
                    &strict,
                )
                .ok()
            })
            .collect::<Option<_>>()?;
        let times = arrow::compute::cast(batch.column(key.len()), &micros).ok()?;
        let keys = converter.convert_columns(&keys).ok()?;
        // The rows' bytes and times, and an entry (16 + 8 bytes) per row below.
        reservation
            .try_grow(keys.size() + times.get_array_memory_size() + 24 * batch.num_rows())
            .ok()?;
        read.push((keys, times));
    }
    let mut times: Vec<(&[u8], i64)> = Vec::new();
    for (keys, batch_times) in &read {
        let batch_times = batch_times.as_primitive_opt::<TimestampMicrosecondType>()?;
        for (row, t) in batch_times.iter().enumerate() {
            // A NULL key matches no pair (a pair with one is skipped below).
            if let Some(t) = t {
                times.push((keys.row(row).data(), t));
            }
        }
    }
    times.sort_unstable();

    let pair_rows = converter.convert_columns(&pair_keys).ok()?;
    let mut distinct: Vec<(&[u8], i64)> = (0..pairs.num_rows())
        .filter(|&row| pair_keys.iter().all(|k| k.is_valid(row)))
        .filter_map(|row| {
            Some((pair_rows.row(row).data(), cutoffs.value(row))).filter(|_| cutoffs.is_valid(row))
        })
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    let window = widest_as_of_window(plan, s).map(|w| span_micros(w.seconds));
    let tied = tied_pairs(&times, &distinct, time.include_cutoff, window);
    i64::try_from(tied).ok()
}

/// How many `pairs` (key, cutoff) have several rows at the latest time an as-of value may
/// read: before the cutoff (or at it, `include_cutoff`) and, with a `window` (in the times'
/// unit), after the cutoff less the window (at it too, unless the cutoff is included), as
/// [`as_of_rows`] joins them. `times` are the source's (key, time) rows, sorted.
fn tied_pairs(
    times: &[(&[u8], i64)],
    pairs: &[(&[u8], i64)],
    include_cutoff: bool,
    window: Option<i64>,
) -> usize {
    pairs
        .iter()
        .filter(|(key, cutoff)| {
            let from = times.partition_point(|(k, _)| k < key);
            let to = from + times[from..].partition_point(|(k, _)| k == key);
            let of_key = &times[from..to];
            let before = of_key.partition_point(|(_, t)| {
                if include_cutoff {
                    t <= cutoff
                } else {
                    t < cutoff
                }
            });
            let Some(&(_, latest)) = before.checked_sub(1).map(|last| &of_key[last]) else {
                return false;
            };
            // The latest row is outside the window: so is every earlier one.
            let within = window.is_none_or(|w| {
                let start = cutoff.saturating_sub(w);
                if include_cutoff {
                    latest > start
                } else {
                    latest >= start
                }
            });
            let at_latest = before - of_key[..before].partition_point(|(_, t)| *t < latest);
            within && at_latest > 1
        })
        .count()
}

/// `W103`: `tied` sampled pairs have several rows at the latest time before the cutoff.
fn tie_warning(
    plan: &Plan,
    s: usize,
    source_time: &crate::compile::point_in_time::SourceTime,
    tied: i64,
) -> Diagnostic {
    let source = &plan.sources[s];
    let first = features_of(plan, s).find(|f| f.as_of);
    let tie_columns: Vec<&str> = source_time
        .tie_break
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let mut d = Diagnostic::new(
        Code::W103,
        format!(
            "`{}` has several rows at the latest `{}` before the cutoff for {tied} sampled (entity, cutoff) pairs: as-of values take the row first by ({}) descending",
            source.table,
            source_time.column,
            tie_columns.join(", ")
        ),
    );
    if let Some(f) = first {
        d = d.at(f.path.clone());
    }
    d.hint(
        "if the order of those columns means nothing, the as-of value of a tied row is arbitrary: aggregate instead (e.g. `MAX(col)` with a window)",
    )
}

#[cfg(test)]
mod tests {
    use super::tied_pairs;

    /// The rule read literally: the rows of the pair's key before (or at) the cutoff and
    /// within the window, their latest time, and whether two rows have it.
    fn tied_by_reading(
        times: &[(&[u8], i64)],
        (key, cutoff): (&[u8], i64),
        include_cutoff: bool,
        window: Option<i64>,
    ) -> bool {
        let readable: Vec<i64> = times
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, t)| *t)
            .filter(|t| {
                if include_cutoff {
                    *t <= cutoff
                } else {
                    *t < cutoff
                }
            })
            .filter(|t| {
                window.is_none_or(|w| {
                    if include_cutoff {
                        *t > cutoff - w
                    } else {
                        *t >= cutoff - w
                    }
                })
            })
            .collect();
        readable
            .iter()
            .max()
            .is_some_and(|latest| readable.iter().filter(|t| *t == latest).count() > 1)
    }

    #[test]
    fn tied_pairs_follow_the_as_of_rule_at_every_boundary() {
        // Two keys; times repeated at 10 and 20 (key a) and at 5 (key b); cutoffs on, just
        // before and just after each time, and windows ending on them.
        let (a, b, c): (&[u8], &[u8], &[u8]) = (b"a", b"b", b"c");
        let mut times = vec![
            (a, 10),
            (a, 20),
            (a, 10),
            (a, 20),
            (a, 15),
            (b, 5),
            (b, 5),
            (b, 30),
        ];
        times.sort_unstable();
        for include_cutoff in [false, true] {
            for window in [None, Some(5), Some(10), Some(15), Some(100)] {
                for key in [a, b, c] {
                    for cutoff in 0..=40 {
                        let expected =
                            tied_by_reading(&times, (key, cutoff), include_cutoff, window);
                        let got = tied_pairs(&times, &[(key, cutoff)], include_cutoff, window);
                        assert_eq!(
                            got,
                            usize::from(expected),
                            "key {key:?}, cutoff {cutoff}, window {window:?}, included {include_cutoff}"
                        );
                    }
                }
            }
        }
        // The pairs are counted, each once as given.
        let pairs = [(a, 11), (a, 21), (b, 6), (b, 31), (c, 50)];
        assert_eq!(tied_pairs(&times, &pairs, false, None), 3);
    }
}
