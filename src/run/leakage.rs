//! The leakage screen: does one feature, alone, already predict the label?
//!
//! AutoML tools judge a table by this first (DataRobot flags single-feature importance
//! from 0.85 and drops it from 0.975, H2O Driverless AI flags a one-feature AUC of 0.95,
//! EvalML's target-leakage check warns at 0.95). Over the validation sample, each feature
//! gets one score in [0, 1], and `W125` flags those at or above the threshold (0.95 by
//! default):
//! - **binary label**: the ROC AUC of the feature as a score against the label, in the
//!   Mann–Whitney form (average ranks, ties count half), as max(AUC, 1 − AUC), over the
//!   rows where both are non-NULL (and the feature not NaN);
//! - **multiclass label**: one-vs-rest, the AUC of each class present against the others,
//!   the largest reported with its class;
//! - **regression label**: |Spearman ρ|, the Pearson correlation of average ranks;
//! - **numbers, dates and times** are scored as they are (dates and times by their epoch);
//!   **text and booleans** with at most [`MAX_CATEGORIES`] distinct values in the sample
//!   are scored by each value's share of the class (its mean label, for regression) on the
//!   scored rows: the best any model can do with that column alone; text with more
//!   distinct values is not scored: an identifier is unique, not a leak;
//! - not scored below [`MIN_ROWS`] usable rows, with a constant label or feature, or
//!   without [`MIN_CLASS_ROWS`] rows of each side of a class comparison (one class against
//!   the other, or against the rest): a lone positive among 45 rows ranks in the outer
//!   5 % of a feature one time in ten, which is an AUC of 0.95 by chance.
//!
//! The scores equal scikit-learn's `roc_auc_score` and scipy's `spearmanr` on the same rows
//! (tests/leakage.rs checks this against both). The cost is a sort per feature.

use crate::contract::recipe::LabelType;
use crate::types::TypeFamily;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use std::cmp::Ordering;
use std::collections::HashMap;

/// The score from which a feature is flagged, unless the caller sets another.
pub const DEFAULT_LEAK_THRESHOLD: f64 = 0.95;
/// Fewer usable rows than this are not scored: chance alone gives high scores.
const MIN_ROWS: usize = 25;
/// A class compared with fewer rows than this on either side is not scored.
const MIN_CLASS_ROWS: usize = 5;
/// A text or boolean feature with more distinct sampled values is not scored.
const MAX_CATEGORIES: usize = 50;

/// What a score measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// max(AUC, 1 − AUC) against a binary label, or one class against the rest.
    Auc,
    /// |Spearman ρ| against a numeric label.
    Spearman,
}

/// One feature's score against the label.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    /// What was measured.
    pub measure: Measure,
    /// In [0, 1]: 1 is a perfect predictor.
    pub value: f64,
    /// The rows scored (feature and label both present).
    pub rows: usize,
    /// For a multiclass label, the class scored against the rest.
    pub class: Option<String>,
}

impl Score {
    /// `AUC 0.997`, `|Spearman ρ| 0.991`, `one-vs-rest AUC 0.990 for class `b``.
    pub fn describe(&self) -> String {
        match (&self.measure, &self.class) {
            (Measure::Auc, None) => format!("AUC {:.3}", self.value),
            (Measure::Auc, Some(class)) => {
                format!("one-vs-rest AUC {:.3} for class `{class}`", self.value)
            }
            (Measure::Spearman, _) => format!("|Spearman ρ| {:.3}", self.value),
        }
    }
}

/// A feature the screen flagged.
#[derive(Debug, Clone, PartialEq)]
pub struct Leak {
    /// The feature's name.
    pub feature: String,
    /// Its score.
    pub score: Score,
}

/// The label as the screen reads it.
pub enum Target {
    /// Each row's class index (binary or multiclass), `None` where NULL.
    Classes {
        /// Per row.
        rows: Vec<Option<u32>>,
        /// The class names, by index.
        names: Vec<String>,
    },
    /// Each row's value, `None` where NULL or not finite.
    Numbers(Vec<Option<f64>>),
}

impl Target {
    /// The label column read for its type; `None` when it cannot be scored against.
    pub fn of(label: &ArrayRef, label_type: LabelType) -> Option<Target> {
        match label_type {
            LabelType::Regression => {
                let floats = cast(label, &DataType::Float64).ok()?;
                let floats = floats.as_primitive::<Float64Type>();
                Some(Target::Numbers(
                    (0..floats.len())
                        .map(|i| {
                            Some(floats.value(i)).filter(|v| floats.is_valid(i) && v.is_finite())
                        })
                        .collect(),
                ))
            }
            LabelType::Binary | LabelType::Multiclass => {
                let text = cast(label, &DataType::Utf8).ok()?;
                let text = text.as_string::<i32>();
                let mut names: Vec<String> = Vec::new();
                let mut index: HashMap<&str, u32> = HashMap::new();
                let rows = (0..text.len())
                    .map(|i| {
                        if text.is_null(i) {
                            return None;
                        }
                        let value = text.value(i);
                        Some(*index.entry(value).or_insert_with(|| {
                            names.push(value.to_string());
                            (names.len() - 1) as u32
                        }))
                    })
                    .collect();
                // A binary label with other than two classes is the label checks' concern.
                (label_type == LabelType::Multiclass || names.len() <= 2)
                    .then_some(Target::Classes { rows, names })
            }
        }
    }
}

/// A feature's values as the screen ranks them.
enum Values {
    Floats(Vec<Option<f64>>),
    Integers(Vec<Option<i64>>),
    /// Each row's value index among at most [`MAX_CATEGORIES`] values.
    Categories(Vec<Option<u32>>),
}

impl Values {
    fn of(feature: &ArrayRef) -> Option<Values> {
        let integers = |array: &ArrayRef| {
            let ints = cast(array, &DataType::Int64).ok()?;
            let ints = ints.as_primitive::<Int64Type>();
            Some(Values::Integers(
                (0..ints.len())
                    .map(|i| ints.is_valid(i).then(|| ints.value(i)))
                    .collect(),
            ))
        };
        match TypeFamily::of(feature.data_type()) {
            TypeFamily::Integer | TypeFamily::Date | TypeFamily::Timestamp => integers(feature),
            TypeFamily::Float | TypeFamily::Decimal => {
                let floats = cast(feature, &DataType::Float64).ok()?;
                let floats = floats.as_primitive::<Float64Type>();
                Some(Values::Floats(
                    (0..floats.len())
                        .map(|i| {
                            Some(floats.value(i)).filter(|v| floats.is_valid(i) && !v.is_nan())
                        })
                        .collect(),
                ))
            }
            TypeFamily::String | TypeFamily::Boolean => {
                let text = cast(feature, &DataType::Utf8).ok()?;
                let text = text.as_string::<i32>();
                let mut index: HashMap<&str, u32> = HashMap::new();
                let mut codes = Vec::with_capacity(text.len());
                for i in 0..text.len() {
                    if text.is_null(i) {
                        codes.push(None);
                        continue;
                    }
                    let next = index.len() as u32;
                    codes.push(Some(*index.entry(text.value(i)).or_insert(next)));
                    if index.len() > MAX_CATEGORIES {
                        return None;
                    }
                }
                Some(Values::Categories(codes))
            }
            TypeFamily::Other => None,
        }
    }

    fn is_present(&self, row: usize) -> bool {
        match self {
            Values::Floats(v) => v[row].is_some(),
            Values::Integers(v) => v[row].is_some(),
            Values::Categories(v) => v[row].is_some(),
        }
    }
}

/// The feature's score against the label, or `None` when it is not scored (see the
/// module's rules).
pub fn score(feature: &ArrayRef, target: &Target) -> Option<Score> {
    let values = Values::of(feature)?;
    match target {
        Target::Numbers(label) => {
            let rows: Vec<usize> = (0..label.len())
                .filter(|&r| label[r].is_some() && values.is_present(r))
                .collect();
            if rows.len() < MIN_ROWS {
                return None;
            }
            let y: Vec<f64> = rows.iter().filter_map(|&r| label[r]).collect();
            let x = numeric_scores(&values, &rows, |r| label[r].unwrap_or(0.0));
            let value = spearman(&x, &y)?.abs();
            Some(Score {
                measure: Measure::Spearman,
                value,
                rows: rows.len(),
                class: None,
            })
        }
        Target::Classes { rows: label, names } => {
            let rows: Vec<usize> = (0..label.len())
                .filter(|&r| label[r].is_some() && values.is_present(r))
                .collect();
            if rows.len() < MIN_ROWS {
                return None;
            }
            let mut counts = vec![0usize; names.len()];
            for &r in &rows {
                if let Some(c) = label[r] {
                    counts[c as usize] += 1;
                }
            }
            let present: Vec<u32> = (0..names.len() as u32)
                .filter(|&c| counts[c as usize] > 0)
                .collect();
            // Each side of a comparison needs enough rows: the class and the others.
            let enough = |c: u32| {
                counts[c as usize] >= MIN_CLASS_ROWS
                    && rows.len() - counts[c as usize] >= MIN_CLASS_ROWS
            };
            if present.len() < 2 {
                return None;
            }
            // Two classes: one AUC (symmetric). More: each class against the rest.
            let scored = if present.len() == 2 {
                &present[1..]
            } else {
                &present[..]
            };
            let mut best: Option<(f64, u32)> = None;
            for &class in scored.iter().filter(|&&c| enough(c)) {
                let positive: Vec<bool> = rows.iter().map(|&r| label[r] == Some(class)).collect();
                let is_positive = |r: usize| if label[r] == Some(class) { 1.0 } else { 0.0 };
                let x = numeric_scores(&values, &rows, is_positive);
                let Some(auc) = auc(&x, &positive) else {
                    continue;
                };
                let auc = auc.max(1.0 - auc);
                if best.is_none_or(|(b, _)| auc > b) {
                    best = Some((auc, class));
                }
            }
            let (value, class) = best?;
            Some(Score {
                measure: Measure::Auc,
                value,
                rows: rows.len(),
                class: (names.len() > 2).then(|| names[class as usize].clone()),
            })
        }
    }
}

/// The rows' scores as sortable numbers: the feature's own values, or for a category the
/// mean of `target` over the rows of its value.
fn numeric_scores(values: &Values, rows: &[usize], target: impl Fn(usize) -> f64) -> Ranked {
    match values {
        Values::Floats(v) => Ranked::Floats(rows.iter().filter_map(|&r| v[r]).collect()),
        Values::Integers(v) => Ranked::Integers(rows.iter().filter_map(|&r| v[r]).collect()),
        Values::Categories(codes) => {
            let mut sums: HashMap<u32, (f64, f64)> = HashMap::new();
            for &r in rows {
                if let Some(code) = codes[r] {
                    let entry = sums.entry(code).or_insert((0.0, 0.0));
                    entry.0 += target(r);
                    entry.1 += 1.0;
                }
            }
            Ranked::Floats(
                rows.iter()
                    .filter_map(|&r| codes[r])
                    .map(|code| {
                        let (sum, n) = sums[&code];
                        sum / n
                    })
                    .collect(),
            )
        }
    }
}

/// Values to rank, exact for integers (epoch nanoseconds do not fit an `f64`).
enum Ranked {
    Floats(Vec<f64>),
    Integers(Vec<i64>),
}

impl Ranked {
    fn ranks(&self) -> Vec<f64> {
        match self {
            Ranked::Floats(v) => average_ranks(v.len(), |a, b| v[a].total_cmp(&v[b])),
            Ranked::Integers(v) => average_ranks(v.len(), |a, b| v[a].cmp(&v[b])),
        }
    }
}

/// 1-based ranks, tied values sharing their average rank.
fn average_ranks(n: usize, compare: impl Fn(usize, usize) -> Ordering) -> Vec<f64> {
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| compare(a, b));
    let mut ranks = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && compare(order[start], order[end]) == Ordering::Equal {
            end += 1;
        }
        // Positions start..end hold ranks start+1..=end: their average.
        let rank = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = rank;
        }
        start = end;
    }
    ranks
}

/// The Mann–Whitney AUC of `x` against `positive`; `None` without both classes.
fn auc(x: &Ranked, positive: &[bool]) -> Option<f64> {
    let ranks = x.ranks();
    let n_pos = positive.iter().filter(|p| **p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(r, _)| r)
        .sum();
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// Spearman's ρ: the Pearson correlation of average ranks; `None` when either is constant.
fn spearman(x: &Ranked, y: &[f64]) -> Option<f64> {
    let rx = x.ranks();
    let ry = average_ranks(y.len(), |a, b| y[a].total_cmp(&y[b]));
    let n = rx.len() as f64;
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    (sxx > 0.0 && syy > 0.0).then(|| (sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};
    use std::sync::Arc;

    fn classes(labels: &[&str]) -> Target {
        let array: ArrayRef = Arc::new(StringArray::from(labels.to_vec()));
        Target::of(&array, LabelType::Binary).unwrap()
    }

    #[test]
    fn ranks_average_ties() {
        let v = [3.0f64, 1.0, 3.0, 2.0];
        assert_eq!(
            average_ranks(4, |a, b| v[a].total_cmp(&v[b])),
            vec![3.5, 1.0, 3.5, 2.0]
        );
    }

    #[test]
    fn auc_counts_ties_half() {
        // Positives 1, 1; negatives 0, 1: pairs (1>0) twice, (1=1) twice → (2 + 1) / 4.
        let x = Ranked::Floats(vec![1.0, 1.0, 0.0, 1.0]);
        assert_eq!(auc(&x, &[true, true, false, false]), Some(0.75));
    }

    #[test]
    fn a_perfect_feature_scores_one_and_a_reversed_one_too() {
        let n = 40;
        let labels: Vec<&str> = (0..n).map(|i| if i < 20 { "0" } else { "1" }).collect();
        let up: ArrayRef = Arc::new(Int64Array::from((0..n as i64).collect::<Vec<_>>()));
        let down: ArrayRef = Arc::new(Int64Array::from((0..n as i64).rev().collect::<Vec<_>>()));
        let target = classes(&labels);
        assert_eq!(score(&up, &target).unwrap().value, 1.0);
        assert_eq!(score(&down, &target).unwrap().value, 1.0);
    }

    #[test]
    fn too_few_rows_one_class_or_an_identifier_are_not_scored() {
        let labels: Vec<&str> = (0..24)
            .map(|i| if i % 2 == 0 { "0" } else { "1" })
            .collect();
        let x: ArrayRef = Arc::new(Float64Array::from(
            (0..24).map(f64::from).collect::<Vec<_>>(),
        ));
        assert_eq!(score(&x, &classes(&labels)), None);
        let one: Vec<&str> = vec!["1"; 30];
        let x: ArrayRef = Arc::new(Float64Array::from(
            (0..30).map(f64::from).collect::<Vec<_>>(),
        ));
        assert_eq!(score(&x, &classes(&one)), None);
        let labels: Vec<&str> = (0..60).map(|i| if i < 30 { "0" } else { "1" }).collect();
        let ids: Vec<String> = (0..60).map(|i| format!("ref-{i:03}")).collect();
        let ids: ArrayRef = Arc::new(StringArray::from(ids));
        assert_eq!(score(&ids, &classes(&labels)), None);
    }

    #[test]
    fn a_class_with_too_few_rows_is_not_scored() {
        // One positive among 45 rows at the feature's top: AUC 1 by chance, not scored.
        let labels: Vec<&str> = (0..45).map(|i| if i == 44 { "1" } else { "0" }).collect();
        let x: ArrayRef = Arc::new(Float64Array::from(
            (0..45).map(f64::from).collect::<Vec<_>>(),
        ));
        assert_eq!(score(&x, &classes(&labels)), None);
        let labels: Vec<&str> = (0..45).map(|i| if i >= 40 { "1" } else { "0" }).collect();
        assert_eq!(score(&x, &classes(&labels)).map(|s| s.value), Some(1.0));
    }

    #[test]
    fn spearman_of_a_monotone_relation_is_one() {
        let x: ArrayRef = Arc::new(Float64Array::from(
            (0..30).map(f64::from).collect::<Vec<_>>(),
        ));
        let y = Target::Numbers((0..30).map(|i| Some(f64::from(i).powi(3))).collect());
        let s = score(&x, &y).unwrap();
        assert_eq!((s.measure, s.value), (Measure::Spearman, 1.0));
    }
}
