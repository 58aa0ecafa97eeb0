//! The built-in crew: designs a recipe from the catalog (Deep Feature Synthesis in SQL).
//!
//! The parts, in the order they run: [`propose`] (profiles the tables, proposes each
//! column's features through `column`), `prune` (what the compiler, the validation and
//! the statistics drop) and `recipe` (the recipe and its notes); `mod` runs the loop.
//!
//! Given a spine table, its grain and a label, [`design`] proposes features the way Deep
//! Feature Synthesis does at depth 1, but as SQL fragments any dialect can run:
//! - the spine's own columns as row-level features, except the grain, the label's column,
//!   every column the label derivation reads, and identifier-like columns;
//! - a static table with one row per entity (its key unique: the profiled rows, then the
//!   whole table's keys) gives that row's values: numbers and booleans as they are,
//!   categories as the value, times as recency; never aggregates of one row;
//! - for every other table or view holding all grain columns: `COUNT(*)`; per numeric
//!   column `SUM`, `AVG`, `MIN`, `MAX`, `STDDEV_SAMP`; per low-cardinality text column
//!   `COUNT(DISTINCT …)` and a count of each of its most frequent values; per boolean column
//!   the share of true values; per date or timestamp column the whole days from the
//!   entity's latest and earliest value to each row's cutoff (point in time: a timed
//!   table's feature reads the cutoff) or to the latest in the data (recency, as
//!   Featuretools' `TimeSinceLast`/`TimeSinceFirst`, not calendar time). The spine's own
//!   dates are recency the same way.
//!
//! Columns are profiled on the first rows of each table (a `LIMIT` scan on one partition,
//! so the same rows on every run: Parquet row groups are read only as far as needed),
//! never in full. A column is identifier-like when its name says so (`id`, `…_id`,
//! `…_key`, `…_uuid`) or when nearly all its sampled integer or text values are distinct.
//!
//! Then the crew loop: the proposal is compiled (features that do not compile are dropped),
//! validated on a sample, and features that come back all-NULL, constant, NULL above the
//! null threshold, or flagged by the leakage screen (with what shares the leak's source)
//! are dropped; then features with an earlier feature's value on every sampled row (a view
//! that copies a table). With `max_features`, the most informative are kept, ranked by
//! their association with the label on the sample: |Pearson correlation| for numbers
//! against a numeric label, the correlation ratio for text against a numeric label or
//! numbers against classes, and Cramér's V for text against classes. The pruned recipe is
//! validated again. The recipe's `notes` say what was generated, what was left out and why.

use crate::catalog::Catalog;
use crate::compile::dialect::Dialect;
use crate::compile::{CompileOptions, compile_recipe};
use crate::contract::answer::{DesignReport, DroppedFeature};
pub use crate::contract::design::DesignRequest;
use crate::contract::recipe::{FeatureRecipe, FeatureSpec, LabelType};
use crate::diagnostic::Diagnostic;
use crate::run::{RecipeRun, run_recipe};

mod column;
mod names;
mod options;
mod profile;
mod propose;
mod prune;
mod recipe;
mod relationships;
mod stacked;

pub use options::DesignOptions;
pub use propose::{Proposal, propose};
use prune::{
    duplicates, keep, pruned_by_validation, ranked_out, rejected_by_compiler, sampled_features,
};
use recipe::{notes, recipe_with};
pub use stacked::{Primitive, Primitives};

/// A designed recipe and what its last validation said.
#[derive(Debug, Clone)]
pub struct Design {
    /// The recipe the crew kept.
    pub recipe: FeatureRecipe,
    /// The final compile and validation of `recipe`.
    pub run: RecipeRun,
    /// Features proposed before any pruning.
    pub considered: usize,
    /// Features dropped, with the reason.
    pub dropped: Vec<(String, String)>,
}

impl Design {
    /// What the crew considered and dropped, as `featurecraft design --dropped` writes it.
    pub fn report(&self) -> DesignReport {
        DesignReport {
            considered: self.considered,
            dropped: self
                .dropped
                .iter()
                .map(|(name, reason)| DroppedFeature {
                    name: name.clone(),
                    reason: reason.clone(),
                })
                .collect(),
        }
    }
}

/// Designs, checks and prunes a recipe for `request` over `catalog`, all of it within the
/// run's time limit (`E054` past it).
pub async fn design(
    request: &DesignRequest,
    catalog: &Catalog,
    options: &DesignOptions,
) -> Result<Design, Vec<Diagnostic>> {
    // One limit for the whole design, not one per validation it runs.
    let limit = options.run.validate.time_limit;
    let mut unbounded = options.clone();
    unbounded.run.validate.time_limit = None;
    crate::run::deadline::within_time_limit(limit, design_unbounded(request, catalog, &unbounded))
        .await
        .map_err(|stopped| vec![stopped])?
}

/// The crew loop: propose, drop what does not compile, validate and drop what the data
/// says is useless or leaking, drop duplicates, keep the most informative, validate again.
async fn design_unbounded(
    request: &DesignRequest,
    catalog: &Catalog,
    options: &DesignOptions,
) -> Result<Design, Vec<Diagnostic>> {
    let proposal = propose(request, catalog, options).await?;
    let considered = proposal.features.len();
    let mut dropped: Vec<(String, String)> = Vec::new();
    // Every recipe the crew builds has the request's grain, label and point in time, and
    // the relationships of the paths its features use.
    let recipe_of = |features: Vec<FeatureSpec>, notes: String| {
        recipe_with(request, &options.target_table, &proposal, features, notes)
    };
    let notes_with = |dropped: &[(String, String)], ranking: &str| {
        notes(
            request,
            &proposal.relationships,
            &proposal.left_out,
            considered,
            dropped,
            ranking,
        )
    };

    // 1. Compile: a feature the compiler rejects is dropped with its first error.
    let recipe = recipe_of(proposal.features.clone(), String::new());
    let compiled = compile_recipe(
        &recipe,
        catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let rejected = rejected_by_compiler(&compiled, &recipe, &proposal)?;
    let mut features = keep(recipe.features, &rejected, &mut dropped);

    // 2. Validate on a sample and drop what the data says is useless or leaking. The
    // summary lists only the most-NULL columns: while it is full and something was
    // dropped, validate what is left again.
    let (run, validated) = loop {
        let recipe = recipe_of(features.clone(), String::new());
        let run = run_recipe(&recipe, catalog, &options.run).await;
        let validated = features.len();
        let Some(summary) = run.validation.as_ref().filter(|_| !run.has_errors()) else {
            // The data could not be read or the run failed: hand back the proposal and why.
            let notes = notes_with(&dropped, "");
            return Ok(Design {
                recipe: recipe_of(features, notes),
                run,
                considered,
                dropped,
            });
        };
        let pruned = pruned_by_validation(&run, summary, &features, request);
        let full = summary.high_null_columns.len() >= crate::run::validate::MAX_HIGH_NULL_COLUMNS;
        let any = !pruned.is_empty();
        features = keep(features, &pruned, &mut dropped);
        if !(full && any) {
            break (run, validated);
        }
    };

    // 3. Drop duplicates: a feature with an earlier one's value on every sampled row (a
    // view that copies a table gives every feature twice).
    let mut sampled = sampled_features(
        &recipe_of(features.clone(), String::new()),
        catalog,
        options,
    )
    .await?;
    let copies = duplicates(&sampled.columns, &features);
    sampled.columns = sampled
        .columns
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !copies.contains_key(i))
        .map(|(_, c)| c)
        .collect();
    features = keep(features, &copies, &mut dropped);

    // 4. Keep the most informative ones.
    let mut ranking_note = String::new();
    if let Some(limit) = request.max_features
        && features.len() > limit
    {
        let classes = request.label.label_type == LabelType::Multiclass;
        let (cut, note) = ranked_out(&sampled, limit, classes);
        features = keep(features, &cut, &mut dropped);
        ranking_note = note;
    }

    let notes = notes_with(&dropped, &ranking_note);
    let unchanged = features.len() == validated;
    let recipe = recipe_of(features, notes);
    // Validate what is left, unless nothing was dropped since the last validation (the
    // notes do not change what runs).
    let run = if unchanged {
        run
    } else {
        run_recipe(&recipe, catalog, &options.run).await
    };
    Ok(Design {
        recipe,
        run,
        considered,
        dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::names::{Names, column_expr, sanitize};
    use super::stacked::{count_distinct, count_star};
    use crate::sql::function_name;
    use sqlparser::ast::Expr;

    #[test]
    fn names_are_valid_and_unique() {
        let mut names = Names::default();
        assert_eq!(
            names.claim(sanitize("Sum Events-Amount")),
            "sum_events_amount"
        );
        assert_eq!(
            names.claim("sum_events_amount".into()),
            "sum_events_amount_2"
        );
        assert_eq!(names.claim(sanitize("9lives")), "f_9lives");
        assert!(crate::sql::is_bare_word(&names.claim("x".repeat(300))));
    }

    #[test]
    fn columns_are_quoted_only_when_they_must_be() {
        assert_eq!(column_expr("amount").to_string(), "amount");
        assert_eq!(column_expr("order").to_string(), "\"order\"");
        assert_eq!(column_expr("Amount").to_string(), "\"Amount\"");
    }

    #[test]
    fn the_compilers_function_names_are_lowercase() {
        let Expr::Function(f) = count_star() else {
            panic!()
        };
        assert_eq!(function_name(&f), "count");
        assert_eq!(count_star().to_string(), "COUNT(*)");
        assert_eq!(
            count_distinct(column_expr("x")).to_string(),
            "COUNT(DISTINCT x)"
        );
    }
}
