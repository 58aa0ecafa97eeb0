//! Validation: run a compiled recipe on a sample of entities in DataFusion and summarise it.
//!
//! - The query runs over the catalog's Parquet files and views, read-only (DDL, DML and
//!   statements refused), under a memory limit, with explicit `target_partitions`.
//! - **Entity sampling, not `LIMIT`** ([`sample`](mod@crate::run::sample)): each sampled
//!   entity's features are exactly those of the full CTAS (a float sum's last bit aside,
//!   as `sample` says), and the cost follows the sample. The restriction is pushed into
//!   the Parquet scans (late materialization): a scan decodes the key columns of every row
//!   but the other columns only for sampled rows.
//! - `estimated_row_count` is the full CTAS's row count, computed cheaply: the spine's key
//!   scan (which sampling needs anyway) gives it, and when a row-level source fans the join
//!   out, one count over the spine and that source's keys adds the fan-out.
//! - Label distribution, null fractions and warnings come from one pass over the sample.
//! - **Lean**: at most 20 label classes (the rest under `__other__`), 50 high-null columns
//!   and 30 warnings; a final `W190` says what was cut. The same input gives the same JSON.
//!
//! - **Leakage**: each feature is scored alone against the label on the sampled rows
//!   ([`leakage`](mod@crate::run::leakage)); `W125` names those at or above the threshold.

use crate::catalog::Catalog;
use crate::compile::analyze::Plan;
use crate::contract::job::ValidationSummary;
use crate::contract::recipe::LabelType;
use crate::diagnostic::{Code, Diagnostic, FeatureField, RecipePath};
use crate::run::deadline::within_time_limit;
use crate::run::keyhash::key_hash_udf;
use crate::run::leakage::{Leak, Target};
use crate::run::pool::reserve_in_pool;
use crate::run::sample::{KeyCounts, key_scan, sampled_rows, table_reference};
use crate::run::timed_checks;
use crate::types::{TypeFamily, parse_type_name};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::functions_aggregate::expr_fn::{count, sum};
use datafusion::logical_expr::{JoinType, col, ident, lit};
use datafusion::prelude::{DataFrame, SessionContext, coalesce};
use futures::StreamExt;
use serde_json::{Number, Value};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::run::sample::{
    FEATURES_PER_QUERY, Sample, ValidateOptions, runtime_error, sample, session,
};

/// Caps that keep a summary small.
const MAX_CLASSES: usize = 20;
/// The summary lists at most this many high-null columns, the most NULL first.
pub const MAX_HIGH_NULL_COLUMNS: usize = 50;
const MAX_WARNINGS: usize = 30;
/// The minority share under which a label is imbalanced.
const IMBALANCE_SHARE: f64 = 0.05;

/// What a validation run produced.
#[derive(Debug, Clone)]
pub struct Validation {
    /// The summary, unless the run failed.
    pub summary: Option<ValidationSummary>,
    /// Every finding: compile warnings given in, validation warnings, runtime errors.
    pub diagnostics: Vec<Diagnostic>,
    /// The spine's number of distinct keys.
    pub spine_keys: u64,
    /// The number of keys in the sample.
    pub sampled_keys: u64,
    /// The features the leakage screen flagged (each also a `W125` in `diagnostics`).
    pub leaks: Vec<Leak>,
    /// The sampled rows (grain, features, label: [`sample`]'s), when one query gave them
    /// all (a recipe of at most [`ValidateOptions::features_per_query`] features), so that
    /// showing or writing them does not run the sample again.
    pub rows: Option<RecordBatch>,
}

/// Validates a plan on the catalog's data. `compile_warnings` are carried into the summary.
pub async fn validate(
    plan: &Plan,
    catalog: &Catalog,
    options: &ValidateOptions,
    compile_warnings: &[Diagnostic],
) -> Validation {
    let mut diagnostics: Vec<Diagnostic> = compile_warnings.to_vec();
    let outcome = within_time_limit(options.time_limit, run(plan, catalog, options)).await;
    match outcome.and_then(|run| run) {
        Ok(outcome) => {
            diagnostics.extend(outcome.findings);
            let summary = summarise(
                outcome.estimated_rows,
                outcome.label_distribution,
                outcome.high_null,
                &diagnostics,
            );
            Validation {
                summary: Some(summary),
                diagnostics,
                spine_keys: outcome.spine_keys,
                sampled_keys: outcome.sampled_keys,
                leaks: outcome.leaks,
                rows: outcome.rows,
            }
        }
        Err(error) => {
            diagnostics.push(error);
            Validation {
                summary: None,
                diagnostics,
                spine_keys: 0,
                sampled_keys: 0,
                leaks: Vec::new(),
                rows: None,
            }
        }
    }
}

struct Outcome {
    estimated_rows: u64,
    spine_keys: u64,
    sampled_keys: u64,
    label_distribution: serde_json::Map<String, Value>,
    high_null: Vec<(String, f64)>,
    findings: Vec<Diagnostic>,
    leaks: Vec<Leak>,
    rows: Option<RecordBatch>,
}

/// The recipe's features in groups of at most `per_query`, each group's features sharing
/// as few sources as possible (in recipe order within a source).
fn feature_groups(plan: &Plan, per_query: usize) -> Vec<Vec<usize>> {
    let per_query = per_query.max(1);
    let mut order: Vec<usize> = (0..plan.features.len()).collect();
    if order.len() <= per_query {
        return vec![order];
    }
    order.sort_by_key(|&i| match plan.features[i].home {
        crate::compile::analyze::FeatureHome::Spine => 0,
        crate::compile::analyze::FeatureHome::Source(s) => s + 1,
    });
    order.chunks(per_query).map(<[usize]>::to_vec).collect()
}

async fn run(
    plan: &Plan,
    catalog: &Catalog,
    options: &ValidateOptions,
) -> Result<Outcome, Diagnostic> {
    let ctx = session(catalog, options).await?;
    let mut findings = Vec::new();
    let grain_list = plan.grain.join(", ");
    let keys = key_scan(&ctx, plan, options).await?;
    let (spine_rows, threshold) = (keys.spine_rows, keys.threshold);

    // 3. Fan-out of row-level sources, and the full row count.
    let (estimated_rows, fanned) =
        row_level_fan_out(&ctx, plan, threshold, spine_rows, &grain_list).await?;
    findings.extend(fanned);

    // 4. One pass over the sample, a group of features at a time (each group's query has
    // the same rows, the label among them).
    let mut by_feature: Vec<Vec<Diagnostic>> = vec![Vec::new(); plan.features.len()];
    let mut null_by_feature: Vec<Option<f64>> = vec![None; plan.features.len()];
    let mut leaks: Vec<Option<Leak>> = vec![None; plan.features.len()];
    let mut label_outcome = None;
    let groups = feature_groups(plan, options.features_per_query);
    // A recipe that fits one query counts the rows of its point-in-time windows (for their
    // findings) in that query too, rather than read every timed source again.
    let counts = (groups.len() == 1)
        .then(|| timed_checks::window_counts(plan))
        .flatten();
    let mut counted = None;
    let mut cutoffs = None;
    let mut whole_sample = None;
    for group in &groups {
        let rows_of_group = match &counts {
            Some(counts) => {
                let rows =
                    sampled_rows(&ctx, &timed_checks::with_counts(plan, counts), threshold).await?;
                counted = Some(rows.clone());
                rows
            }
            None if groups.len() == 1 => sampled_rows(&ctx, plan, threshold).await?,
            None => sampled_rows(&ctx, &plan.with_features(group), threshold).await?,
        };
        let sample = &rows_of_group;
        let label = sample.column(sample.num_columns() - 1).clone();
        let rows = sample.num_rows();
        let target = Target::of(&label, plan.label.label_type);
        for (position, &i) in group.iter().enumerate() {
            let feature = &plan.features[i];
            let column = sample.column(plan.grain.len() + position);
            null_by_feature[i] = null_fraction(column);
            by_feature[i] = feature_findings(feature, column, rows);
            let score = target
                .as_ref()
                .and_then(|t| crate::run::leakage::score(column, t))
                .filter(|s| s.value >= options.leak_threshold);
            if let Some(score) = score {
                by_feature[i].push(leak_warning(feature, &score));
                leaks[i] = Some(Leak {
                    feature: feature.name.clone(),
                    score,
                });
            }
        }
        if groups.len() == 1 {
            whole_sample = Some(without_counts(plan, sample)?);
        }
        if label_outcome.is_none() {
            label_outcome = Some((label, rows));
            if let Some(time) = &plan.point_in_time
                && let Some(at) = plan.grain.iter().position(|g| *g == time.cutoff)
            {
                cutoffs = Some(sample.column(at).clone());
            }
        }
    }
    findings.extend(
        timed_checks::findings(&ctx, plan, threshold, counts.as_ref().zip(counted.as_ref()))
            .await?,
    );
    if let Some(cutoffs) = &cutoffs {
        findings.extend(timed_checks::immature_labels(&ctx, plan, cutoffs).await?);
    }
    let KeyCounts {
        spine_keys,
        duplicate_keys,
        duplicate_rows,
    } = keys.counts().await?;
    if duplicate_keys > 0 {
        // First, as the key scan's finding (the findings are ordered by code below).
        findings.insert(
            0,
            Diagnostic::new(
                Code::W101,
                format!(
                    "{duplicate_rows} spine rows share {duplicate_keys} keys of ({grain_list}) in `{}`; each is a separate training row",
                    plan.spine.table
                ),
            ),
        );
    }
    // A spine smaller than the sample is validated whole: nothing to warn about.
    let sampled_keys = spine_keys.min(options.sample_size as u64);
    let Some((label, sampled_rows)) = label_outcome else {
        return Err(Diagnostic::new(
            Code::E050,
            "the sampled query returned nothing",
        ));
    };
    let estimated_rows = estimated_rows.unwrap_or(if threshold.is_none() {
        sampled_rows as u64
    } else {
        spine_rows
    });
    let (label_distribution, label_findings) = label_summary(&label, plan);
    findings.extend(label_findings);
    findings.extend(by_feature.into_iter().flatten());
    let high_null = high_null_columns(plan, null_by_feature, &label, options.null_threshold);

    findings.sort_by_key(|d| d.code);
    Ok(Outcome {
        estimated_rows,
        spine_keys,
        sampled_keys,
        label_distribution,
        high_null,
        findings,
        leaks: leaks.into_iter().flatten().collect(),
        rows: whole_sample,
    })
}

/// The sampled rows of the plan's own query (grain, features, label) from a single query's,
/// which may carry the windows' counts between the features and the label.
fn without_counts(plan: &Plan, rows: &RecordBatch) -> Result<RecordBatch, Diagnostic> {
    let kept = plan.grain.len() + plan.features.len();
    let columns: Vec<usize> = (0..kept).chain([rows.num_columns() - 1]).collect();
    rows.project(&columns).map_err(|e| runtime_error(e.into()))
}

/// The full row count when row-level sources fan the spine out (`None` when none does, or
/// when the whole spine is sampled), and each such source's fan-out warning. As-of values
/// (row-level features of a timed source) take one row per spine row.
///
/// With a sample, each source's keys are checked once over the whole table: a source
/// without a repeated key fans out nowhere, so only a source with one is counted again on
/// the sample (for its warning) and joined to the spine (for the row count; checking each
/// source alone is far cheaper than reading the spine again, which a schedule would
/// generate again). Without a sample, each source is counted once, whole.
async fn row_level_fan_out(
    ctx: &SessionContext,
    plan: &Plan,
    threshold: Option<i64>,
    spine_rows: u64,
    grain_list: &str,
) -> Result<(Option<u64>, Vec<Diagnostic>), Diagnostic> {
    let row_level: Vec<&crate::compile::analyze::Source> = plan
        .sources
        .iter()
        .filter(|s| !s.grouped && s.time.is_none())
        .collect();
    let mut may_fan_out = Vec::new();
    for &source in &row_level {
        if threshold.is_none()
            || has_duplicate_keys(ctx, &source.table, &source.grain, None).await?
        {
            may_fan_out.push(source);
        }
    }
    let estimated_rows = match threshold {
        Some(_) if row_level.is_empty() => None,
        Some(_) if may_fan_out.is_empty() => Some(spine_rows),
        Some(_) => Some(fanned_out_rows(ctx, plan, &may_fan_out).await?),
        None => None,
    };
    let mut findings = Vec::new();
    for source in &may_fan_out {
        findings.extend(fan_out(ctx, source, threshold, grain_list).await?);
    }
    Ok((estimated_rows, findings))
}

/// `W125`: a feature that alone predicts the label.
fn leak_warning(
    feature: &crate::compile::analyze::PlannedFeature,
    score: &crate::run::leakage::Score,
) -> Diagnostic {
    Diagnostic::new(
        Code::W125,
        format!(
            "feature `{}` alone predicts the label ({} on {} rows): likely target leakage",
            feature.name,
            score.describe(),
            score.rows
        ),
    )
    .at(feature.path.clone())
}

/// The features, then the label, NULL in more than `threshold` of the sampled rows, with
/// their fraction.
fn high_null_columns(
    plan: &Plan,
    null_by_feature: Vec<Option<f64>>,
    label: &ArrayRef,
    threshold: f64,
) -> Vec<(String, f64)> {
    let mut high_null: Vec<(String, f64)> = plan
        .features
        .iter()
        .zip(null_by_feature)
        .filter_map(|(feature, fraction)| {
            fraction
                .filter(|f| *f > threshold)
                .map(|f| (feature.name.clone(), f))
        })
        .collect();
    if let Some(fraction) = null_fraction(label)
        && fraction > threshold
    {
        high_null.push((plan.label.name.clone(), fraction));
    }
    high_null
}

/// The warnings about one feature's sampled column: all NULL, constant, a computed type
/// other than the declared one.
fn feature_findings(
    feature: &crate::compile::analyze::PlannedFeature,
    column: &ArrayRef,
    rows: usize,
) -> Vec<Diagnostic> {
    let mut findings = Vec::new();
    let path = &feature.path;
    if rows > 0 && column.null_count() == rows {
        findings.push(
            Diagnostic::new(
                Code::W121,
                format!(
                    "feature `{}` is NULL in all {rows} sampled rows",
                    feature.name
                ),
            )
            .at(path.clone()),
        );
    } else if is_constant(column) {
        findings.push(
            Diagnostic::new(
                Code::W120,
                format!(
                    "feature `{}` has one value in all {rows} sampled rows",
                    feature.name
                ),
            )
            .at(path.clone()),
        );
    }
    if let Some(declared) = feature.declared_type.as_deref().and_then(parse_type_name) {
        let computed = TypeFamily::of(column.data_type());
        let expected = TypeFamily::of(&declared);
        if computed != expected {
            findings.push(
                Diagnostic::new(
                    Code::W122,
                    format!(
                        "feature `{}` is computed as {} ({}) but declared {}",
                        feature.name,
                        column.data_type(),
                        computed.name(),
                        expected.name()
                    ),
                )
                .at(match path.feature_index() {
                    Some(index) => RecipePath::feature(index, FeatureField::DataType),
                    None => path.clone(),
                }),
            );
        }
    }
    findings
}

/// `W102` when a row-level source has more rows than keys among the sampled entities:
/// joining it multiplies their training rows.
async fn fan_out(
    ctx: &SessionContext,
    source: &crate::compile::analyze::Source,
    threshold: Option<i64>,
    grain_list: &str,
) -> Result<Option<Diagnostic>, Diagnostic> {
    let frame = ctx
        .table(table_reference(&source.table))
        .await
        .map_err(runtime_error)?;
    let frame = match threshold {
        Some(t) => frame
            .filter(
                key_hash_udf()
                    .call(source.grain.iter().map(ident).collect())
                    .lt_eq(lit(t)),
            )
            .map_err(runtime_error)?,
        None => frame,
    };
    let stats = frame
        .aggregate(
            source.grain.iter().map(ident).collect(),
            vec![count(lit(1)).alias("n")],
        )
        .map_err(runtime_error)?
        .aggregate(
            vec![],
            vec![sum(col("n")).alias("rows"), count(lit(1)).alias("keys")],
        )
        .map_err(runtime_error)?
        .collect()
        .await
        .map_err(runtime_error)?;
    if let Some(batch) = stats.first().filter(|b| b.num_rows() == 1) {
        let rows = batch.column(0).as_primitive::<Int64Type>();
        let rows = if rows.is_null(0) { 0 } else { rows.value(0) };
        let keys = batch.column(1).as_primitive::<Int64Type>().value(0);
        if rows > keys {
            return Ok(Some(Diagnostic::new(
                Code::W102,
                format!(
                    "row-level source `{}` has {rows} rows for {keys} keys of ({grain_list}) in the sample: the join fans out",
                    source.table
                ),
            )));
        }
    }
    Ok(None)
}

/// Σ over spine rows of Π over the `repeating` sources (row-level sources with a key held
/// by several rows) of max(1, rows of that key): the full CTAS's row count.
async fn fanned_out_rows(
    ctx: &SessionContext,
    plan: &Plan,
    repeating: &[&crate::compile::analyze::Source],
) -> Result<u64, Diagnostic> {
    let key = |i: usize| format!("__k{i}");
    let spine = crate::run::sample::spine_frame(ctx, plan).await?;
    // Sources join on the entity key (the grain, unless the plan is point-in-time).
    let entity_key = plan.entity_key();
    let spine_keys = || -> Vec<_> {
        entity_key
            .iter()
            .enumerate()
            .map(|(i, g)| ident(g).alias(key(i)))
            .collect()
    };
    let mut frame = if plan.spine.grouped {
        spine
            .aggregate(plan.grain.iter().map(ident).collect(), vec![])
            .map_err(runtime_error)?
            .select(spine_keys())
    } else {
        spine.select(spine_keys())
    }
    .map_err(runtime_error)?;
    let mut factor = lit(1i64);
    for (s, source) in repeating.iter().enumerate() {
        let source_key = |i: usize| format!("__s{s}_k{i}");
        let counts = ctx
            .table(table_reference(&source.table))
            .await
            .map_err(runtime_error)?
            .aggregate(
                source
                    .grain
                    .iter()
                    .enumerate()
                    .map(|(i, g)| ident(g).alias(source_key(i)))
                    .collect(),
                vec![count(lit(1)).alias(format!("__n{s}"))],
            )
            .map_err(runtime_error)?;
        let left: Vec<String> = (0..entity_key.len()).map(key).collect();
        let right: Vec<String> = (0..entity_key.len()).map(source_key).collect();
        let left: Vec<&str> = left.iter().map(String::as_str).collect();
        let right: Vec<&str> = right.iter().map(String::as_str).collect();
        frame = frame
            .join(counts, JoinType::Left, &left, &right, None)
            .map_err(runtime_error)?;
        factor = factor * coalesce(vec![ident(format!("__n{s}")), lit(1i64)]);
    }
    let batches = frame
        .aggregate(vec![], vec![sum(factor).alias("rows")])
        .map_err(runtime_error)?
        .collect()
        .await
        .map_err(runtime_error)?;
    let value = batches
        .first()
        .map(|b| b.column(0).as_primitive::<Int64Type>())
        .filter(|a| !a.is_empty() && a.is_valid(0));
    Ok(value.map(|a| a.value(0).max(0) as u64).unwrap_or(0))
}

/// Whether some key holds more than one row of `table` (the whole table, its key
/// columns only; the first `limit` rows when given).
///
/// The keys' hashes are sorted first: equal keys have equal hashes, so no two equal
/// hashes means no repeated key, the usual answer for a table of entities, for a sort of
/// one number a row (grouping the point-in-time bench's million customers took 80 ms of
/// its 0.68 s validation; with the hashes sorted it took 0.694 s against 0.743 s). Equal
/// hashes (a repeated key, or two keys of one hash), a key the hash does not take, or
/// memory the pool refuses leave the answer to grouping the keys, which can spill.
pub(crate) async fn has_duplicate_keys(
    ctx: &SessionContext,
    table: &str,
    key: &[String],
    limit: Option<usize>,
) -> Result<bool, Diagnostic> {
    let frame = ctx
        .table(table_reference(table))
        .await
        .map_err(runtime_error)?;
    let frame = match limit {
        Some(rows) => frame.limit(0, Some(rows)).map_err(runtime_error)?,
        None => frame,
    };
    if hashes_all_differ(ctx, frame.clone(), key).await == Some(true) {
        return Ok(false);
    }
    let found = frame
        .aggregate(
            key.iter().map(ident).collect(),
            vec![count(lit(1)).alias("__n")],
        )
        .map_err(runtime_error)?
        .filter(col("__n").gt(lit(1i64)))
        .map_err(runtime_error)?
        .limit(0, Some(1))
        .map_err(runtime_error)?
        .collect()
        .await
        .map_err(runtime_error)?;
    Ok(found.iter().any(|b| b.num_rows() > 0))
}

/// Whether the `featurecraft_key_hash`es of `key` in `frame` all differ, sorted in memory
/// the pool grants; `None` when that cannot be told (a key the hash does not take, a
/// failed read, memory refused).
async fn hashes_all_differ(ctx: &SessionContext, frame: DataFrame, key: &[String]) -> Option<bool> {
    let hashes = frame
        .select(vec![key_hash_udf().call(key.iter().map(ident).collect())])
        .ok()?;
    let mut stream = hashes.execute_stream().await.ok()?;
    let reservation =
        MemoryConsumer::new("featurecraft key hashes").register(&ctx.runtime_env().memory_pool);
    let mut all: Vec<i64> = Vec::new();
    while let Some(batch) = stream.next().await {
        let batch = batch.ok()?;
        reserve_in_pool(&mut all, batch.num_rows(), &reservation).ok()?;
        all.extend_from_slice(batch.column(0).as_primitive_opt::<Int64Type>()?.values());
    }
    all.sort_unstable();
    Some(all.windows(2).all(|pair| pair[0] != pair[1]))
}

/// The label's distribution and its warnings (W110, W111, W112).
fn label_summary(
    label: &ArrayRef,
    plan: &Plan,
) -> (serde_json::Map<String, Value>, Vec<Diagnostic>) {
    let mut findings = Vec::new();
    let mut out = serde_json::Map::new();
    let rows = label.len();
    let nulls = label.null_count();
    let path = plan.label.path.clone();
    if nulls > 0 {
        findings.push(
            Diagnostic::new(
                Code::W112,
                format!("{nulls} of {rows} sampled labels are NULL"),
            )
            .at(path.clone()),
        );
    }
    if plan.label.label_type == LabelType::Regression {
        let mut values: Vec<f64> = match cast(label, &DataType::Float64) {
            Ok(floats) => floats
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .filter(|v| v.is_finite())
                .collect(),
            Err(_) => Vec::new(),
        };
        values.sort_by(f64::total_cmp);
        let number = |v: f64| {
            Number::from_f64(v)
                .map(Value::Number)
                .unwrap_or(Value::Null)
        };
        out.insert("count".into(), Value::from(values.len() as u64));
        out.insert("null".into(), Value::from(nulls as u64));
        if let (Some(min), Some(max)) = (values.first(), values.last()) {
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let p50 = values[(values.len() - 1) / 2];
            out.insert("min".into(), number(*min));
            out.insert("max".into(), number(*max));
            out.insert("mean".into(), number(round(mean, 6)));
            out.insert("p50".into(), number(p50));
        } else {
            for key in ["min", "max", "mean", "p50"] {
                out.insert(key.into(), Value::Null);
            }
        }
        return (out, findings);
    }

    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    if let Ok(text) = cast(label, &DataType::Utf8) {
        for value in text.as_string::<i32>().iter().flatten() {
            *counts.entry(value.to_string()).or_default() += 1;
        }
    }
    let labelled: u64 = counts.values().sum();
    let mut by_count: Vec<(&String, &u64)> = counts.iter().collect();
    by_count.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let kept: BTreeSet<&String> = by_count.iter().take(MAX_CLASSES).map(|(k, _)| *k).collect();
    let other: u64 = by_count.iter().skip(MAX_CLASSES).map(|(_, n)| **n).sum();
    for (key, n) in &counts {
        if kept.contains(key) {
            out.insert(key.clone(), Value::from(*n));
        }
    }
    if nulls > 0 {
        out.insert("null".into(), Value::from(nulls as u64));
    }
    if other > 0 {
        out.insert("__other__".into(), Value::from(other));
        findings.push(Diagnostic::new(
            Code::W190,
            format!(
                "…and {} more label classes summed under `__other__`",
                counts.len() - MAX_CLASSES
            ),
        ));
    }
    match by_count.as_slice() {
        [] => {}
        [(only, _)] => findings.push(
            Diagnostic::new(
                Code::W110,
                format!("the label has a single class (`{only}`) in the sample"),
            )
            .at(path.clone()),
        ),
        many => {
            let (minority, n) = many[many.len() - 1];
            let share = *n as f64 / labelled.max(1) as f64;
            if share < IMBALANCE_SHARE {
                let positive = plan.label.label_type == LabelType::Binary
                    && plan.label.positive_class.as_deref() == Some(minority.as_str());
                let which = if positive {
                    "positive class".to_string()
                } else {
                    format!("minority class `{minority}`")
                };
                findings.push(
                    Diagnostic::new(
                        Code::W111,
                        format!("{which} is {:.1} % of the sample", share * 100.0),
                    )
                    .at(path.clone()),
                );
            }
        }
    }
    (out, findings)
}

fn summarise(
    estimated_row_count: u64,
    label_distribution: serde_json::Map<String, Value>,
    mut high_null: Vec<(String, f64)>,
    diagnostics: &[Diagnostic],
) -> ValidationSummary {
    let mut warnings: Vec<String> = diagnostics
        .iter()
        .filter(|d| !d.is_error())
        .map(Diagnostic::summary_line)
        .collect();
    let mut cut = Vec::new();
    high_null.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if high_null.len() > MAX_HIGH_NULL_COLUMNS {
        cut.push(format!(
            "{} more high-null columns",
            high_null.len() - MAX_HIGH_NULL_COLUMNS
        ));
        high_null.truncate(MAX_HIGH_NULL_COLUMNS);
    }
    if warnings.len() > MAX_WARNINGS {
        cut.push(format!("{} more warnings", warnings.len() - MAX_WARNINGS));
        warnings.truncate(MAX_WARNINGS);
    }
    for line in &mut warnings {
        if line.len() > 300 {
            let mut end = 297;
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push('…');
        }
    }
    if !cut.is_empty() {
        warnings.push(format!(
            "{} {}: …and {}",
            Code::W190.as_str(),
            Code::W190.slug(),
            cut.join(", ")
        ));
    }
    let mut high_null_columns = serde_json::Map::new();
    for (name, fraction) in high_null {
        let value = Number::from_f64(round(fraction, 4))
            .map(Value::Number)
            .unwrap_or(Value::Null);
        high_null_columns.insert(name, value);
    }
    ValidationSummary {
        estimated_row_count,
        label_distribution,
        high_null_columns,
        warnings,
    }
}

fn null_fraction(column: &ArrayRef) -> Option<f64> {
    (!column.is_empty()).then(|| column.null_count() as f64 / column.len() as f64)
}

/// One non-null value in every row (at least one row).
fn is_constant(column: &ArrayRef) -> bool {
    if column.is_empty() || column.null_count() > 0 {
        return false;
    }
    let first = column.slice(0, 1);
    match arrow::compute::kernels::cmp::not_distinct(column, &arrow::array::Scalar::new(first)) {
        Ok(same) => same.true_count() == column.len(),
        Err(_) => false,
    }
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::execution::memory_pool::GreedyMemoryPool;
    use datafusion::execution::runtime_env::RuntimeEnvBuilder;
    use datafusion::prelude::SessionConfig;
    use std::sync::Arc;

    /// A context of one table `t` holding `column` as `k`, with a memory pool of `pool` bytes.
    fn table_of(column: ArrayRef, pool: usize) -> SessionContext {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "k",
            column.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(Arc::clone(&schema), vec![column]).unwrap();
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(pool)))
            .build_arc()
            .unwrap();
        let ctx = SessionContext::new_with_config_rt(SessionConfig::new(), runtime);
        // Two batches: the hashes arrive in parts, as from a scan.
        let halves = vec![batch.slice(0, batch.num_rows() / 2), {
            let half = batch.num_rows() / 2;
            batch.slice(half, batch.num_rows() - half)
        }];
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, vec![halves]).unwrap()),
        )
        .unwrap();
        ctx
    }

    async fn repeats(column: ArrayRef, pool: usize) -> bool {
        let ctx = table_of(column, pool);
        has_duplicate_keys(&ctx, "t", &["k".to_string()], None)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_repeated_key_is_found_whatever_answers() {
        let ints = |keys: Vec<Option<i64>>| Arc::new(Int64Array::from(keys)) as ArrayRef;
        let texts = |keys: Vec<Option<&str>>| Arc::new(StringArray::from(keys)) as ArrayRef;
        let roomy = 1 << 30;
        // The hashes answer: all differ.
        assert!(!repeats(ints((0..10_000).map(Some).collect()), roomy).await);
        assert!(!repeats(ints(vec![Some(3), None, Some(1)]), roomy).await);
        assert!(!repeats(texts(vec![Some("a"), Some("b"), None]), roomy).await);
        // Equal hashes: grouping answers, NULLs one key as in a GROUP BY.
        assert!(repeats(ints(vec![Some(1), Some(2), Some(1)]), roomy).await);
        assert!(repeats(ints(vec![None, Some(2), None]), roomy).await);
        assert!(repeats(texts(vec![Some("a"), Some("b"), Some("a")]), roomy).await);
        // And for a key the hash may not take.
        let floats = |keys: Vec<f64>| Arc::new(Float64Array::from(keys)) as ArrayRef;
        assert!(!repeats(floats(vec![0.5, 1.5]), roomy).await);
        assert!(repeats(floats(vec![0.5, 1.5, 0.5]), roomy).await);
    }

    #[tokio::test]
    async fn the_hashes_alone_tell_distinct_keys_within_the_pool() {
        let keys = Arc::new(Int64Array::from_iter_values(0..10_000)) as ArrayRef;
        let ctx = table_of(Arc::clone(&keys), 1 << 30);
        let frame = ctx.table("t").await.unwrap();
        assert_eq!(
            hashes_all_differ(&ctx, frame.clone(), &["k".to_string()]).await,
            Some(true)
        );
        // 10 000 hashes are 80 000 bytes: a smaller pool leaves the answer to grouping.
        let small = table_of(keys, 1024);
        let frame = small.table("t").await.unwrap();
        assert_eq!(
            hashes_all_differ(&small, frame, &["k".to_string()]).await,
            None
        );
    }
}
