//! Prune: what the crew drops from a proposal, and why — features the compiler rejects,
//! features the validation finds useless or leaking (with what shares a leak's source),
//! features equal to an earlier one on every sampled row, and, with `max_features`, the
//! least informative by their association with the label on the sample (|Pearson r|, the
//! correlation ratio, Cramér's V: the statistics are here, with their only user).

use super::options::DesignOptions;
use super::propose::Proposal;
use crate::catalog::Catalog;
use crate::compile::dialect::Dialect;
use crate::compile::fragment::{inspect, parse_fragment};
use crate::compile::{CompileOptions, Compiled, compile_recipe};
use crate::contract::design::DesignRequest;
use crate::contract::recipe::{FeatureRecipe, FeatureSpec};
use crate::diagnostic::{Code, Diagnostic, RecipePath};
use crate::run::RecipeRun;
use crate::types::TypeFamily;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use std::collections::{BTreeMap, HashMap};

/// The features the compiler rejects, by index, with its first error: a feature's own
/// error, or one of the derived column it reads (which takes every feature reading it
/// along). An error elsewhere is the request's, and ends the design.
pub(super) fn rejected_by_compiler(
    compiled: &Compiled,
    recipe: &FeatureRecipe,
    proposal: &Proposal,
) -> Result<BTreeMap<usize, String>, Vec<Diagnostic>> {
    let mut rejected: BTreeMap<usize, String> = BTreeMap::new();
    for d in compiled.diagnostics.iter().filter(|d| d.is_error()) {
        let why = || format!("does not compile: {}", d.summary_line());
        let path = d.path.as_deref();
        if let Some(i) = path.and_then(RecipePath::feature_index) {
            rejected.entry(i).or_insert_with(why);
            continue;
        }
        let Some(column) = path
            .and_then(|p| match p {
                RecipePath::DerivedColumn(i, _) => Some(*i),
                _ => None,
            })
            .and_then(|i| recipe.derived_columns.get(i))
        else {
            return Err(vec![d.clone()]);
        };
        for (i, f) in recipe.features.iter().enumerate() {
            if proposal
                .uses
                .get(&f.name)
                .is_some_and(|&u| proposal.derived[u].0 == *column)
            {
                rejected.entry(i).or_insert_with(why);
            }
        }
    }
    Ok(rejected)
}

/// The features a validation says to drop, by index, with the reason: a leak the screen
/// flagged and what shares its source, NULL everywhere, constant, or NULL above the
/// threshold. A leak's source is the columns it reads: every feature of its table reading
/// one of them goes too; a leak reading no column (`COUNT(*)`) is the table's rows
/// themselves (a table of the label's own cutoffs), so every feature of that table goes,
/// except on the spine, whose rows are the entities.
pub(super) fn pruned_by_validation(
    run: &RecipeRun,
    summary: &crate::contract::job::ValidationSummary,
    features: &[FeatureSpec],
    request: &DesignRequest,
) -> BTreeMap<usize, String> {
    let spine = request.spine.as_str();
    let mut pruned: BTreeMap<usize, String> = BTreeMap::new();
    // The columns a feature reads, but the grain's (the entity key, the cutoff): every
    // feature of a table may read those.
    let columns_of = |f: &FeatureSpec| -> Vec<String> {
        parse_fragment(&f.expression, RecipePath::Field("design".into()))
            .map(|e| {
                inspect(&e)
                    .columns
                    .into_iter()
                    .map(|c| c.name.to_ascii_lowercase())
                    .filter(|c| {
                        !request
                            .entity_grain
                            .iter()
                            .any(|g| g.eq_ignore_ascii_case(c))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    for leak in &run.leaks {
        let Some(i) = features.iter().position(|f| f.name == leak.feature) else {
            continue;
        };
        let score = leak.score.describe();
        pruned.insert(i, format!("leakage: {score}"));
        let table = &features[i].source_table;
        let read = columns_of(&features[i]);
        if read.is_empty() && table == spine {
            continue;
        }
        for (j, f) in features.iter().enumerate() {
            if j == i || f.source_table != *table {
                continue;
            }
            let shared = columns_of(f).into_iter().find(|c| read.contains(c));
            let reason = match shared {
                _ if read.is_empty() => format!(
                    "leakage: its table `{table}` has rows that predict the label (`{}`, {score})",
                    leak.feature
                ),
                Some(column) => format!(
                    "leakage: reads `{column}` as `{}` does ({score})",
                    leak.feature
                ),
                None => continue,
            };
            pruned.entry(j).or_insert(reason);
        }
    }
    for d in &run.diagnostics {
        let reason = match d.code {
            Code::W121 => "NULL in every sampled row",
            Code::W120 => "one value in every sampled row",
            _ => continue,
        };
        if let Some(i) = d.path.as_deref().and_then(RecipePath::feature_index) {
            pruned.entry(i).or_insert_with(|| reason.to_string());
        }
    }
    for (i, f) in features.iter().enumerate() {
        if let Some(fraction) = summary.high_null_columns.get(&f.name) {
            pruned.entry(i).or_insert_with(|| {
                format!(
                    "NULL in {}% of sampled rows, above the null threshold",
                    fraction
                        .as_f64()
                        .map_or(0.0, |f| (f * 1000.0).round() / 10.0)
                )
            });
        }
    }
    pruned
}

/// `features` without those in `drop`, each dropped one recorded with its reason.
pub(super) fn keep(
    features: Vec<FeatureSpec>,
    drop: &BTreeMap<usize, String>,
    dropped: &mut Vec<(String, String)>,
) -> Vec<FeatureSpec> {
    features
        .into_iter()
        .enumerate()
        .filter_map(|(i, f)| match drop.get(&i) {
            Some(reason) => {
                dropped.push((f.name, reason.clone()));
                None
            }
            None => Some(f),
        })
        .collect()
}

/// The sampled values of a recipe's features, in recipe order, and of its label.
pub(super) struct Sampled {
    pub(super) columns: Vec<ArrayRef>,
    pub(super) label: ArrayRef,
}

/// Runs the validation sample of `recipe` and keeps its feature and label columns.
pub(super) async fn sampled_features(
    recipe: &FeatureRecipe,
    catalog: &Catalog,
    options: &DesignOptions,
) -> Result<Sampled, Vec<Diagnostic>> {
    if recipe.features.is_empty() {
        return Ok(Sampled {
            columns: Vec::new(),
            label: arrow::array::new_null_array(&DataType::Null, 0),
        });
    }
    let compiled = compile_recipe(
        recipe,
        catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let Some(plan) = compiled
        .plan
        .filter(|_| !compiled.diagnostics.iter().any(|d| d.is_error()))
    else {
        return Err(compiled.diagnostics);
    };
    let sample = crate::run::validate::sample(&plan, catalog, &options.run.validate)
        .await
        .map_err(|d| vec![d])?;
    let rows = sample.rows;
    Ok(Sampled {
        columns: (0..recipe.features.len())
            .map(|i| rows.column(plan.grain.len() + i).clone())
            .collect(),
        label: rows.column(rows.num_columns() - 1).clone(),
    })
}

/// Each feature whose sampled values equal an earlier kept feature's on every row, with
/// the reason naming that one. NULL equals NULL; numbers (booleans as 0/1, times by their
/// epoch) are equal within 1e-9 of their size, since one average summed in another order
/// may differ in its last bit; other values as text.
pub(super) fn duplicates(
    columns: &[ArrayRef],
    features: &[FeatureSpec],
) -> BTreeMap<usize, String> {
    enum Values {
        Numbers(Vec<Option<f64>>),
        Text(Vec<Option<String>>),
    }
    let values: Vec<Option<Values>> = columns
        .iter()
        .map(|c| {
            as_numbers(c)
                .map(Values::Numbers)
                .or_else(|| as_text(c).map(Values::Text))
        })
        .collect();
    let same = |a: &Values, b: &Values| match (a, b) {
        (Values::Numbers(a), Values::Numbers(b)) => a.iter().zip(b).all(|pair| match pair {
            (None, None) => true,
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => false,
        }),
        (Values::Text(a), Values::Text(b)) => a == b,
        _ => false,
    };
    let mut copies = BTreeMap::new();
    let mut kept: Vec<usize> = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let Some(v) = v else {
            continue;
        };
        let original = kept
            .iter()
            .find(|&&k| values[k].as_ref().is_some_and(|w| same(w, v)));
        match original {
            Some(&k) => {
                copies.insert(
                    i,
                    format!(
                        "duplicate of `{}`: the same value on every sampled row",
                        features[k].name
                    ),
                );
            }
            None => kept.push(i),
        }
    }
    copies
}

/// The features past the `limit` most informative, ranked by their association with the
/// label on the sample (ties keep recipe order), with the reason; and the note saying how.
pub(super) fn ranked_out(
    sampled: &Sampled,
    limit: usize,
    label_is_classes: bool,
) -> (BTreeMap<usize, String>, String) {
    let scores: Vec<f64> = sampled
        .columns
        .iter()
        .map(|c| association(c, &sampled.label, label_is_classes))
        .collect();
    let rows = sampled.label.len();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
    let cut = order
        .iter()
        .skip(limit)
        .map(|&i| {
            let reason = format!(
                "less informative: association {:.3} with the label, below the {limit} kept",
                scores[i]
            );
            (i, reason)
        })
        .collect();
    let note = format!(
        " Kept the {limit} most informative of {} by association with the label on {rows} sampled rows (|Pearson r| for numbers against a numeric label, the correlation ratio for text or for classes, Cramér's V for text against classes).",
        order.len()
    );
    (cut, note)
}

/// Association between a feature and the label, in [0, 1]; 0 when it cannot be measured.
fn association(feature: &ArrayRef, label: &ArrayRef, label_is_classes: bool) -> f64 {
    let numbers = as_numbers(feature);
    let score = match (numbers, label_is_classes) {
        (Some(x), false) => as_numbers(label).map(|y| pearson(&x, &y).abs()),
        (Some(x), true) => as_text(label).map(|classes| correlation_ratio(&classes, &x)),
        (None, false) => match (as_text(feature), as_numbers(label)) {
            (Some(groups), Some(y)) => Some(correlation_ratio(&groups, &y)),
            _ => None,
        },
        (None, true) => match (as_text(feature), as_text(label)) {
            (Some(a), Some(b)) => Some(cramers_v(&a, &b)),
            _ => None,
        },
    };
    score.filter(|s| s.is_finite()).unwrap_or(0.0)
}

fn as_numbers(array: &ArrayRef) -> Option<Vec<Option<f64>>> {
    let numeric = match TypeFamily::of(array.data_type()) {
        TypeFamily::Integer | TypeFamily::Float | TypeFamily::Decimal | TypeFamily::Boolean => {
            cast(array, &DataType::Float64).ok()?
        }
        TypeFamily::Date | TypeFamily::Timestamp => {
            cast(&cast(array, &DataType::Int64).ok()?, &DataType::Float64).ok()?
        }
        _ => return None,
    };
    let values = numeric.as_primitive::<Float64Type>();
    Some(
        (0..values.len())
            .map(|i| (!values.is_null(i)).then(|| values.value(i)))
            .collect(),
    )
}

fn as_text(array: &ArrayRef) -> Option<Vec<Option<String>>> {
    let text = cast(array, &DataType::Utf8).ok()?;
    let text = text.as_string::<i32>();
    Some(
        (0..text.len())
            .map(|i| (!text.is_null(i)).then(|| text.value(i).to_string()))
            .collect(),
    )
}

fn pearson(x: &[Option<f64>], y: &[Option<f64>]) -> f64 {
    let pairs: Vec<(f64, f64)> = x
        .iter()
        .zip(y)
        .filter_map(|(a, b)| Some(((*a)?, (*b)?)))
        .collect();
    let n = pairs.len() as f64;
    if n < 3.0 {
        return 0.0;
    }
    let (mx, my) = (
        pairs.iter().map(|p| p.0).sum::<f64>() / n,
        pairs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in &pairs {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        0.0
    } else {
        sxy / (sxx * syy).sqrt()
    }
}

/// η: the share of the values' spread explained by the groups, as a correlation.
fn correlation_ratio(groups: &[Option<String>], values: &[Option<f64>]) -> f64 {
    let mut by_group: HashMap<&str, (f64, f64)> = HashMap::new();
    let mut all = Vec::new();
    for (g, v) in groups.iter().zip(values) {
        if let (Some(g), Some(v)) = (g, v) {
            let entry = by_group.entry(g.as_str()).or_insert((0.0, 0.0));
            entry.0 += 1.0;
            entry.1 += v;
            all.push(*v);
        }
    }
    if all.len() < 3 {
        return 0.0;
    }
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    let total: f64 = all.iter().map(|v| (v - mean) * (v - mean)).sum();
    let between: f64 = by_group
        .values()
        .map(|(n, s)| n * (s / n - mean) * (s / n - mean))
        .sum();
    if total == 0.0 {
        0.0
    } else {
        (between / total).sqrt()
    }
}

/// Cramér's V between two categorical columns.
fn cramers_v(a: &[Option<String>], b: &[Option<String>]) -> f64 {
    let mut table: HashMap<(&str, &str), f64> = HashMap::new();
    let (mut rows, mut cols): (HashMap<&str, f64>, HashMap<&str, f64>) = Default::default();
    let mut n = 0.0;
    for (x, y) in a.iter().zip(b) {
        if let (Some(x), Some(y)) = (x, y) {
            *table.entry((x.as_str(), y.as_str())).or_default() += 1.0;
            *rows.entry(x.as_str()).or_default() += 1.0;
            *cols.entry(y.as_str()).or_default() += 1.0;
            n += 1.0;
        }
    }
    let k = rows.len().min(cols.len()) as f64;
    if n < 3.0 || k < 2.0 {
        return 0.0;
    }
    let mut chi2 = 0.0;
    for (x, nx) in &rows {
        for (y, ny) in &cols {
            let expected = nx * ny / n;
            let observed = table.get(&(*x, *y)).copied().unwrap_or(0.0);
            chi2 += (observed - expected) * (observed - expected) / expected;
        }
    }
    (chi2 / (n * (k - 1.0))).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn association_measures_behave() {
        let x: Vec<Option<f64>> = (0..10).map(|i| Some(i as f64)).collect();
        let y: Vec<Option<f64>> = (0..10).map(|i| Some(2.0 * i as f64 + 1.0)).collect();
        assert!((pearson(&x, &y) - 1.0).abs() < 1e-12);
        let groups: Vec<Option<String>> = (0..10)
            .map(|i| Some(if i < 5 { "a" } else { "b" }.to_string()))
            .collect();
        let split: Vec<Option<f64>> = (0..10)
            .map(|i| Some(if i < 5 { 0.0 } else { 1.0 }))
            .collect();
        assert!((correlation_ratio(&groups, &split) - 1.0).abs() < 1e-12);
        assert!((cramers_v(&groups, &groups) - 1.0).abs() < 1e-12);
        let noise: Vec<Option<String>> = (0..10)
            .map(|i| Some(if i % 2 == 0 { "u" } else { "v" }.to_string()))
            .collect();
        assert!(cramers_v(&groups, &noise) < 0.5);
    }
}
