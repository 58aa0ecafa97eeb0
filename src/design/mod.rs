//! The built-in crew: designs a recipe from the catalog (Deep Feature Synthesis in SQL).
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

use crate::catalog::{Catalog, Table};
use crate::compile::dialect::Dialect;
use crate::compile::fragment::{inspect, parse_fragment};
use crate::compile::relationships::Hop;
use crate::compile::{CompileOptions, compile_recipe};
pub use crate::contract::design::DesignRequest;
use crate::contract::recipe::{
    DerivedColumn, FeatureRecipe, FeatureSpec, LabelSpec, LabelType, PointInTime, Relationship,
    TimeColumns,
};
use crate::diagnostic::{Code, Diagnostic, LabelField, PointInTimeField, RecipePath};
use crate::run::{RecipeRun, RunOptions, run_recipe};
use crate::sql::call;
use crate::types::TypeFamily;
use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};

use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{CaseWhen, Expr, Value};
use std::collections::{BTreeMap, HashMap};

mod names;
mod profile;
mod relationships;
mod stacked;

use names::{Names, column_expr, sanitize};
use profile::{ColumnProfile, profile};
use stacked::{ChildColumn, count_distinct, count_star};
pub use stacked::{Primitive, Primitives};

/// How the designer profiles and prunes.
#[derive(Debug, Clone)]
pub struct DesignOptions {
    /// Compile and validation settings (sample size, null threshold, memory limit).
    pub run: RunOptions,
    /// Rows read from the start of each table to profile its columns.
    pub profile_rows: usize,
    /// Most frequent values of a text column counted as features.
    pub top_values: usize,
    /// A text column with more distinct sampled values than this is not aggregated by value.
    pub max_categories: usize,
    /// The designed recipe's `target_table`.
    pub target_table: String,
}

impl Default for DesignOptions {
    fn default() -> Self {
        DesignOptions {
            run: RunOptions::default(),
            profile_rows: 20_000,
            top_values: 3,
            max_categories: 20,
            target_table: "designed_features".into(),
        }
    }
}

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

async fn design_unbounded(
    request: &DesignRequest,
    catalog: &Catalog,
    options: &DesignOptions,
) -> Result<Design, Vec<Diagnostic>> {
    let proposal = propose(request, catalog, options).await?;
    let considered = proposal.features.len();
    let mut dropped: Vec<(String, String)> = Vec::new();
    let mut features = proposal.features.clone();
    // Every recipe the crew builds has the request's grain, label and point in time, and
    // the relationships of the paths its features use.
    let recipe_of = |features: Vec<FeatureSpec>, notes: String| {
        recipe_with(request, options, &proposal, features, notes)
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
    let recipe = recipe_of(features.clone(), String::new());
    let compiled = compile_recipe(
        &recipe,
        catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let mut rejected: BTreeMap<usize, String> = BTreeMap::new();
    for d in compiled.diagnostics.iter().filter(|d| d.is_error()) {
        let why = || format!("does not compile: {}", d.summary_line());
        if let Some(i) = d.path.as_deref().and_then(RecipePath::feature_index) {
            rejected.entry(i).or_insert_with(why);
            continue;
        }
        // A derived column that does not compile takes the features reading it along.
        let Some(column) = d
            .path
            .as_deref()
            .and_then(derived_index)
            .and_then(|i| recipe.derived_columns.get(i))
        else {
            return Err(vec![d.clone()]);
        };
        for (i, f) in features.iter().enumerate() {
            if proposal
                .uses
                .get(&f.name)
                .is_some_and(|&u| proposal.derived[u].0 == *column)
            {
                rejected.entry(i).or_insert_with(why);
            }
        }
    }
    features = keep(features, &rejected, &mut dropped);

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
        let scores: Vec<f64> = sampled
            .columns
            .iter()
            .map(|c| association(c, &sampled.label, classes))
            .collect();
        let rows = sampled.label.len();
        let mut order: Vec<usize> = (0..features.len()).collect();
        order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
        let cut: BTreeMap<usize, String> = order[limit..]
            .iter()
            .map(|i| {
                (
                    *i,
                    format!(
                        "less informative: association {:.3} with the label, below the {limit} kept",
                        scores[*i]
                    ),
                )
            })
            .collect();
        features = keep(features, &cut, &mut dropped);
        ranking_note = format!(
            " Kept the {limit} most informative of {} by association with the label on {rows} sampled rows (|Pearson r| for numbers against a numeric label, the correlation ratio for text or for classes, Cramér's V for text against classes).",
            order.len()
        );
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

/// `i` of a path `derived_columns[i]…`.
fn derived_index(path: &RecipePath) -> Option<usize> {
    let text = path.to_string();
    let rest = text.strip_prefix("derived_columns[")?;
    rest[..rest.find(']')?].parse().ok()
}

/// The features a validation says to drop, by index, with the reason: a leak the screen
/// flagged and what shares its source, NULL everywhere, constant, or NULL above the
/// threshold. A leak's source is the columns it reads: every feature of its table reading
/// one of them goes too; a leak reading no column (`COUNT(*)`) is the table's rows
/// themselves (a table of the label's own cutoffs), so every feature of that table goes,
/// except on the spine, whose rows are the entities.
fn pruned_by_validation(
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

/// The features proposed from the catalog, before any check, and the columns left out.
#[derive(Debug, Clone, Default)]
pub struct Proposal {
    /// Every feature proposed, before the crew prunes.
    pub features: Vec<FeatureSpec>,
    /// `table.column` and why it gave no feature.
    pub left_out: Vec<(String, String)>,
    /// For each table without the grain that the crew reads: the relationships of its
    /// join path, as the recipe declares them.
    pub paths: BTreeMap<String, Vec<Relationship>>,
    /// What the crew found about relationships: the paths it joined through, and child
    /// columns it could not attach to one parent.
    pub relationships: Vec<String>,
    /// Derived columns of depth-2 features, each with the relationship it aggregates by.
    pub derived: Vec<(DerivedColumn, Relationship)>,
    /// Each depth-2 feature's derived column: feature name → index in `derived`.
    pub uses: BTreeMap<String, usize>,
}

/// The relationships along a join path, in the recipe's form.
fn path_relationships(from: &str, hops: &[Hop]) -> Vec<Relationship> {
    let mut previous = from.to_string();
    hops.iter()
        .map(|hop| {
            let r = Relationship {
                child: format!("{previous}.{}", hop.from),
                parent: format!("{}.{}", hop.table, hop.to),
            };
            previous = hop.table.clone();
            r
        })
        .collect()
}

/// Profiles the tables and proposes features (no validation): deterministic for a catalog.
pub async fn propose(
    request: &DesignRequest,
    catalog: &Catalog,
    options: &DesignOptions,
) -> Result<Proposal, Vec<Diagnostic>> {
    let (spine, grain) = spine_and_grain(request, catalog)?;
    let label_columns = label_columns(&request.label)?;
    let windows = design_windows(request)?;
    let primitives = Primitives::parse(&request.primitives)?;
    let depth = max_depth(request)?;
    let pit = request.point_in_time.as_ref();
    // A schedule generates the rows: its source is read like any timed table.
    let generated = pit.is_some_and(|p| p.schedule.is_some());
    // Sources join on the entity key: the grain without the cutoff in a point-in-time design.
    let key: Vec<String> = grain
        .iter()
        .filter(|g| pit.is_none_or(|p| !g.eq_ignore_ascii_case(&p.cutoff_column)))
        .cloned()
        .collect();
    // One partition: a `LIMIT` over a view that joins then gives the same first rows on
    // every run and machine (several partitions race to fill it), so the profile, and the
    // design, is the same whatever the thread count.
    let one_partition = crate::run::sample::ValidateOptions {
        target_partitions: 1,
        ..options.run.validate.clone()
    };
    let ctx = crate::run::sample::session(catalog, &one_partition)
        .await
        .map_err(|d| vec![d])?;

    let mut proposal = Proposal::default();
    let mut names = Names::default();
    let holds_key = |t: &Table| key.iter().all(|g| t.column(g).is_some());
    let mut profiles: BTreeMap<String, Vec<ColumnProfile>> = BTreeMap::new();
    for table in catalog.tables() {
        match profile(&ctx, table, options.profile_rows, options.top_values).await {
            Ok(p) => {
                profiles.insert(table.name.clone(), p);
            }
            // A table the crew would read must profile; any other only feeds discovery.
            Err(d) if table.name == spine.name || holds_key(table) => return Err(vec![d]),
            Err(_) => {}
        }
    }
    // A declared relationship that does not hold is the request's error, at its path.
    let mut problems = Vec::new();
    crate::compile::relationships::check(&request.relationships, catalog, &mut problems);
    if !problems.is_empty() {
        return Err(problems
            .into_iter()
            .map(|d| match d.path.as_deref().cloned() {
                Some(at) => d.at(RecipePath::design(at)),
                None => d,
            })
            .collect());
    }
    let found = relationships::discover(catalog, &profiles, &request.relationships);
    let links = crate::compile::relationships::check(&found.links, catalog, &mut problems);
    for (child, parents) in &found.ambiguous {
        proposal.relationships.push(format!(
            "{child} could point at {}: ambiguous, not used",
            parents.join(" or ")
        ));
    }
    let mut tables: Vec<(&Table, Vec<Hop>)> = vec![(spine, Vec::new())];
    let mut children: Vec<(&Table, &Table, &crate::compile::relationships::Link)> = Vec::new();
    for table in catalog.tables().filter(|t| t.name != spine.name) {
        if holds_key(table) {
            tables.push((table, Vec::new()));
            continue;
        }
        match crate::compile::relationships::path(&links, catalog, &table.name, &key) {
            Ok(Some(hops)) => tables.push((table, hops)),
            Ok(None) => {}
            Err(candidates) => proposal.left_out.push((
                table.name.clone(),
                format!("reaches the grain by several paths ({candidates})"),
            )),
        }
    }
    if depth >= 2 {
        // A table the entity aggregates that is itself the parent of another table:
        // its rows aggregate their children first (depth 2).
        for (parent, hops) in tables.iter().filter(|(t, _)| t.name != spine.name) {
            for link in links.iter().filter(|l| {
                l.parent_table == parent.name
                    && l.child_table != spine.name
                    && l.child_table != parent.name
            }) {
                let Some(child) = catalog.table(&link.child_table) else {
                    continue;
                };
                // Point in time: the parent's rows each aggregate their children as of the
                // cutoff, so the parent needs its own time and the child a declared one.
                let why_not = pit.and_then(|p| {
                    if !hops.is_empty()
                        || !matches!(p.time_columns.get(&parent.name), Some(Some(_)))
                    {
                        Some(format!("{} has no time column of its own", parent.name))
                    } else if p.time_columns.get(&child.name).is_none() {
                        Some(format!(
                            "{} is not in point_in_time.time_columns",
                            child.name
                        ))
                    } else {
                        None
                    }
                });
                match why_not {
                    None => children.push((parent, child, link)),
                    Some(why) => proposal.left_out.push((
                        format!("{} per {} row", child.name, parent.name),
                        format!("not stacked: {why}"),
                    )),
                }
            }
        }
    }
    for (table, hops) in tables {
        let on_spine = table.name == spine.name && !generated;
        if !hops.is_empty() {
            proposal.relationships.push(format!(
                "{} joined through {}",
                table.name,
                crate::compile::relationships::describe(&table.name, &hops)
            ));
            proposal
                .paths
                .insert(table.name.clone(), path_relationships(&table.name, &hops));
        }
        // A table reached through a timed table (an order item through its order) is
        // bounded by it.
        let hop_timed = |p: &PointInTime| {
            hops.iter()
                .any(|h| matches!(p.time_columns.get(&h.table), Some(Some(_))))
        };
        let timing = match pit {
            Some(p) if !on_spine => match p.time_columns.get(&table.name) {
                Some(Some(column)) => Timing::Timed(column.to_string()),
                Some(None) | None if hop_timed(p) => Timing::Bounded,
                Some(None) => Timing::Static,
                None => {
                    proposal.left_out.push((
                        table.name.clone(),
                        "not in point_in_time.time_columns, so not bounded by the cutoff".into(),
                    ));
                    continue;
                }
            },
            _ => Timing::Static,
        };
        let Some(profiles) = profiles.get(&table.name) else {
            continue;
        };
        let short = sanitize(&table.name);
        let windowed = |timing: &Timing| match timing {
            Timing::Timed(_) | Timing::Bounded => windows.as_slice(),
            Timing::Static => &[],
        };
        let spans = || std::iter::once(None).chain(windowed(&timing).iter().map(Some));
        // A static table with one row per entity (a profile table) gives that row's
        // values, never aggregates of one row.
        let one_row = !on_spine
            && hops.is_empty()
            && matches!(timing, Timing::Static)
            && one_row_per_entity(&ctx, table, &key, options.profile_rows).await?;
        if !on_spine && !one_row && primitives.has(Primitive::Count) {
            for window in spans() {
                proposal.features.extend(feature(
                    &mut names,
                    format!("count_{short}"),
                    count_star(),
                    table,
                    format!("rows in {} per entity", table.name),
                    window,
                ));
            }
        }
        for (column, profile) in table.columns.iter().zip(profiles) {
            let where_ = format!("{}.{}", table.name, column.name);
            let skip = |reason: &str, out: &mut Vec<(String, String)>| {
                out.push((where_.clone(), reason.to_string()))
            };
            if grain.iter().any(|g| g.eq_ignore_ascii_case(&column.name)) {
                if on_spine {
                    skip("grain column", &mut proposal.left_out);
                }
                continue;
            }
            if label_columns
                .iter()
                .any(|l| l.eq_ignore_ascii_case(&column.name))
            {
                skip("read by the label", &mut proposal.left_out);
                continue;
            }
            let family = TypeFamily::of(&column.data_type);
            if let Some(why) = identifier_like(&column.name, family, profile, options) {
                skip(&why, &mut proposal.left_out);
                continue;
            }
            let c = column_expr(&column.name);
            let cname = sanitize(&column.name);
            // Times are recency, not calendar time: days to the row's cutoff (point in
            // time: the spine's row and timed tables) or to the latest time in the data.
            let since = match (family, pit) {
                (TypeFamily::Date | TypeFamily::Timestamp, None) => {
                    latest_date(&ctx, table, &column.name)
                        .await?
                        .map(Since::Latest)
                }
                (TypeFamily::Date | TypeFamily::Timestamp, Some(p))
                    if on_spine || matches!(timing, Timing::Timed(_)) =>
                {
                    Some(Since::Cutoff(p.cutoff_column.trim().to_string()))
                }
                _ => None,
            };
            if on_spine {
                if family == TypeFamily::Other {
                    skip(
                        &format!("type {} is not a feature type", column.data_type),
                        &mut proposal.left_out,
                    );
                    continue;
                }
                let (name, expr, description) = match &since {
                    Some(since) => (
                        format!("days_since_{cname}"),
                        days_since(since, c),
                        format!("days from the entity's {} {}", column.name, since.to()),
                    ),
                    None => (cname.clone(), c, format!("{} of the entity", column.name)),
                };
                proposal
                    .features
                    .extend(feature(&mut names, name, expr, table, description, None));
                continue;
            }
            if pit.is_some()
                && matches!(timing, Timing::Static | Timing::Bounded)
                && matches!(family, TypeFamily::Date | TypeFamily::Timestamp)
            {
                skip(
                    "a time in a static table may lie after the cutoff",
                    &mut proposal.left_out,
                );
                continue;
            }
            let kind = if key_category(&column.name, family, profile, options) {
                Category::Key
            } else {
                Category::Of(family)
            };
            if one_row {
                match row_value(table, column, profile, kind, since.as_ref(), options) {
                    Ok((name, expr, description)) => proposal.features.extend(feature(
                        &mut names,
                        name,
                        expr,
                        table,
                        description,
                        None,
                    )),
                    Err(why) => skip(&why, &mut proposal.left_out),
                }
                continue;
            }
            let aggregates = aggregated(
                table,
                column,
                profile,
                kind,
                &primitives,
                since.as_ref(),
                options,
            );
            match aggregates {
                Ok(proposed) => {
                    for window in spans() {
                        for (name, expr, description) in &proposed {
                            proposal.features.extend(feature(
                                &mut names,
                                name.clone(),
                                expr.clone(),
                                table,
                                description.clone(),
                                window,
                            ));
                        }
                    }
                }
                Err(why) => skip(&why, &mut proposal.left_out),
            }
            // As-of values read one row per entity: not through a path, where an entity
            // has many rows.
            if let Timing::Timed(time) = &timing
                && hops.is_empty()
                && !column.name.eq_ignore_ascii_case(time)
                && as_of_worthy(family, profile, options)
            {
                proposal.features.extend(feature(
                    &mut names,
                    format!("last_{short}_{cname}"),
                    c,
                    table,
                    format!(
                        "{} in the entity's latest {} row before the cutoff",
                        column.name, table.name
                    ),
                    None,
                ));
            }
        }
    }
    for (parent, child, link) in children {
        let Some(child_profiles) = profiles.get(&child.name) else {
            continue;
        };
        let mut columns = Vec::new();
        for (column, profile) in child.columns.iter().zip(child_profiles) {
            let family = TypeFamily::of(&column.data_type);
            let skipped = column.name == link.child_column
                || key.iter().any(|g| g.eq_ignore_ascii_case(&column.name))
                || label_columns
                    .iter()
                    .any(|l| l.eq_ignore_ascii_case(&column.name))
                || identifier_like(&column.name, family, profile, options).is_some();
            if skipped {
                continue;
            }
            let kind = if key_category(&column.name, family, profile, options)
                || (family == TypeFamily::String && profile.distinct <= options.max_categories)
            {
                ChildColumn::Category
            } else if matches!(
                family,
                TypeFamily::Integer | TypeFamily::Float | TypeFamily::Decimal
            ) {
                ChildColumn::Measure
            } else {
                continue;
            };
            columns.push((column.name.clone(), kind, column_expr(&column.name)));
        }
        let relationship = Relationship {
            child: format!("{}.{}", child.name, link.child_column),
            parent: format!("{}.{}", parent.name, link.parent_column),
        };
        let mut taken = Names::default();
        for c in &parent.columns {
            taken.reserve(&c.name);
        }
        let mut stacked_here = 0;
        for value in stacked::child_values(&child.name, &columns, &primitives) {
            let Ok(expression) =
                crate::compile::print::expression_text(&value.expr, Dialect::Generic)
            else {
                continue;
            };
            let name = taken.claim(value.name.clone());
            let index = proposal.derived.len();
            proposal.derived.push((
                DerivedColumn {
                    table: parent.name.clone(),
                    name: name.clone(),
                    source_table: child.name.clone(),
                    expression,
                },
                relationship.clone(),
            ));
            for (feature_name, expr, description) in
                stacked::stacked_features(&parent.name, &value, &name, &primitives)
            {
                if let Some(f) = feature(&mut names, feature_name, expr, parent, description, None)
                {
                    proposal.uses.insert(f.name.clone(), index);
                    proposal.features.push(f);
                    stacked_here += 1;
                }
            }
        }
        if stacked_here > 0 {
            proposal.relationships.push(format!(
                "{} aggregated per {} row ({}.{} → {}.{}) for {stacked_here} depth-2 features",
                child.name,
                parent.name,
                child.name,
                link.child_column,
                parent.name,
                link.parent_column
            ));
        }
    }
    Ok(proposal)
}

/// The request's `max_depth`: 1 or 2 (the default).
fn max_depth(request: &DesignRequest) -> Result<u8, Vec<Diagnostic>> {
    match request.max_depth {
        None => Ok(2),
        Some(d @ (1 | 2)) => Ok(d),
        Some(other) => Err(vec![
            Diagnostic::new(
                Code::E001,
                format!("max_depth {other} is not supported: the crew stacks 1 or 2 aggregates"),
            )
            .at(RecipePath::design(RecipePath::Field("max_depth".into()))),
        ]),
    }
}

/// How a point-in-time design reads a table other than the spine.
enum Timing {
    /// By its time column: aggregates over all history before the cutoff and over each
    /// window, and as-of values.
    Timed(String),
    /// Whole (a static table, or a design without point in time): aggregates.
    Static,
    /// Through a timed table of its path (an order item through its order): aggregates over
    /// the rows whose path is before the cutoff and over each window, no as-of values.
    Bounded,
}

/// A window the crew computes aggregates over.
struct DesignWindow {
    /// As a recipe writes it (`30 days`).
    text: String,
    /// Appended to a feature's name (`30d`).
    suffix: String,
}

/// The request's windows, parsed; only meaningful with `point_in_time`.
fn design_windows(request: &DesignRequest) -> Result<Vec<DesignWindow>, Vec<Diagnostic>> {
    use crate::compile::point_in_time::parse_window;
    if !request.windows.is_empty() && request.point_in_time.is_none() {
        return Err(vec![
            Diagnostic::new(
                Code::E026,
                "`windows` needs `point_in_time`: there is no cutoff to count back from",
            )
            .at(RecipePath::design(RecipePath::Field("windows".into()))),
        ]);
    }
    let mut out: Vec<DesignWindow> = Vec::new();
    for (i, text) in request.windows.iter().enumerate() {
        let window = parse_window(text).map_err(|e| {
            vec![
                Diagnostic::new(Code::E026, e.message)
                    .at(RecipePath::design(RecipePath::ListItem("windows", i)))
                    .hint(e.hint),
            ]
        })?;
        let (count, unit) = window.in_unit();
        let (_, _, unit) = unit.names();
        let text = window.to_string();
        if !out.iter().any(|w| w.text == text) {
            out.push(DesignWindow {
                text,
                suffix: format!("{count}{unit}"),
            });
        }
    }
    Ok(out)
}

/// Whether a column of a timed table is worth its value in the latest row: a measurement
/// or a category, not free text.
fn as_of_worthy(family: TypeFamily, profile: &ColumnProfile, options: &DesignOptions) -> bool {
    match family {
        TypeFamily::Integer | TypeFamily::Float | TypeFamily::Decimal | TypeFamily::Boolean => true,
        TypeFamily::String => profile.distinct <= options.max_categories,
        _ => false,
    }
}

/// The design request's spine table and its grain, as the spine spells it. With a
/// schedule the spine is the schedule's source, which holds the entity key: its cutoff
/// column is generated, and keeps the request's spelling.
fn spine_and_grain<'c>(
    request: &DesignRequest,
    catalog: &'c Catalog,
) -> Result<(&'c Table, Vec<String>), Vec<Diagnostic>> {
    let schedule = request
        .point_in_time
        .as_ref()
        .and_then(|p| p.schedule.as_ref().map(|s| (p, s)));
    let (name, at) = match schedule {
        Some((_, s)) => (
            &s.source_table,
            RecipePath::PointInTime(Some(PointInTimeField::Schedule(Some(
                "source_table".into(),
            )))),
        ),
        None => (&request.spine, RecipePath::Field("spine".into())),
    };
    let spine = catalog.table(name.trim()).ok_or_else(|| {
        vec![
            Diagnostic::new(Code::E020, format!("unknown spine table `{name}`"))
                .at(RecipePath::design(at)),
        ]
    })?;
    if request.entity_grain.is_empty() {
        return Err(vec![
            Diagnostic::new(Code::E002, "entity_grain is empty")
                .at(RecipePath::design(RecipePath::Field("entity_grain".into()))),
        ]);
    }
    let mut grain = Vec::new();
    for g in &request.entity_grain {
        if let Some((pit, _)) = schedule
            && g.eq_ignore_ascii_case(&pit.cutoff_column)
        {
            grain.push(g.clone());
            continue;
        }
        match spine.column(g) {
            Some(c) => grain.push(c.name.clone()),
            None => {
                return Err(vec![
                    Diagnostic::new(
                        Code::E023,
                        format!("the spine `{}` has no grain column `{g}`", spine.name),
                    )
                    .at(RecipePath::design(RecipePath::Field("entity_grain".into()))),
                ]);
            }
        }
    }
    Ok((spine, grain))
}

/// How a column is aggregated: by its type, or as a category (a key with few values).
#[derive(Clone, Copy)]
enum Category {
    Key,
    Of(TypeFamily),
}

/// What a column of a table other than the spine proposes, aggregated per entity:
/// (name, expression, description) for each feature, or why the column gives none.
fn aggregated(
    table: &Table,
    column: &crate::catalog::Column,
    profile: &ColumnProfile,
    kind: Category,
    primitives: &Primitives,
    since: Option<&Since>,
    options: &DesignOptions,
) -> Result<Vec<(String, Expr, String)>, String> {
    let c = column_expr(&column.name);
    let short = sanitize(&table.name);
    let cname = sanitize(&column.name);
    let mut out = Vec::new();
    let family = match kind {
        Category::Key => TypeFamily::String,
        Category::Of(family) => family,
    };
    match family {
        TypeFamily::Integer | TypeFamily::Float | TypeFamily::Decimal => {
            for p in Primitive::MEASURE.iter().filter(|p| primitives.has(**p)) {
                out.push((
                    format!("{}_{short}_{cname}", p.prefix()),
                    p.of(Some(c.clone())),
                    format!("{} of {} per entity", p.sql(), column.name),
                ));
            }
        }
        TypeFamily::String => {
            if profile.distinct > options.max_categories {
                return Err(format!(
                    "text with more than {} distinct values in the profile",
                    options.max_categories
                ));
            }
            if primitives.has(Primitive::NumUnique) {
                out.push((
                    format!("n_distinct_{short}_{cname}"),
                    count_distinct(c.clone()),
                    format!("distinct {} per entity", column.name),
                ));
            }
            let number = TypeFamily::of(&column.data_type) == TypeFamily::Integer;
            for (value, _) in profile.top.iter().take(options.top_values) {
                let (literal, shown) = if number {
                    (Value::Number(value.clone(), false), value.clone())
                } else {
                    (
                        Value::SingleQuotedString(value.clone()),
                        format!("'{value}'"),
                    )
                };
                out.push((
                    format!("count_{short}_{cname}_{}", sanitize(value)),
                    count_when(Expr::BinaryOp {
                        left: Box::new(c.clone()),
                        op: sqlparser::ast::BinaryOperator::Eq,
                        right: Box::new(Expr::value(literal)),
                    }),
                    format!("rows with {} = {shown} per entity", column.name),
                ));
            }
        }
        TypeFamily::Boolean => out.push((
            format!("true_share_{short}_{cname}"),
            call("AVG", vec![share_of_true(c.clone())]),
            format!("share of rows with {} true", column.name),
        )),
        TypeFamily::Date | TypeFamily::Timestamp => {
            for (agg, what) in [("MAX", "latest"), ("MIN", "earliest")] {
                let time = call(agg, vec![c.clone()]);
                out.push(match since {
                    Some(since) => (
                        format!("days_since_{what}_{short}_{cname}"),
                        days_since(since, time),
                        format!(
                            "days from the entity's {what} {} {}",
                            column.name,
                            since.to()
                        ),
                    ),
                    None => (
                        format!("{what}_{short}_{cname}"),
                        time,
                        format!("{what} {} per entity", column.name),
                    ),
                });
            }
        }
        TypeFamily::Other => return Err(format!("type {} is not aggregated", column.data_type)),
    }
    Ok(out)
}

/// The value of a column in the entity's one row of `table`: numbers and booleans as they
/// are, a category as its value, a time as recency (days to `since`).
fn row_value(
    table: &Table,
    column: &crate::catalog::Column,
    profile: &ColumnProfile,
    kind: Category,
    since: Option<&Since>,
    options: &DesignOptions,
) -> Result<(String, Expr, String), String> {
    let c = column_expr(&column.name);
    let name = format!("{}_{}", sanitize(&table.name), sanitize(&column.name));
    let of_row = format!("{} of the entity's {} row", column.name, table.name);
    match kind {
        Category::Key => Ok((name, c, of_row)),
        Category::Of(
            TypeFamily::Integer | TypeFamily::Float | TypeFamily::Decimal | TypeFamily::Boolean,
        ) => Ok((name, c, of_row)),
        Category::Of(TypeFamily::String) if profile.distinct <= options.max_categories => {
            Ok((name, c, of_row))
        }
        Category::Of(TypeFamily::String) => Err(format!(
            "text with more than {} distinct values in the profile",
            options.max_categories
        )),
        Category::Of(TypeFamily::Date | TypeFamily::Timestamp) => match since {
            Some(since) => Ok((
                format!("days_since_{name}"),
                days_since(since, c),
                format!("days from {of_row} {}", since.to()),
            )),
            None => Err("a time with no value in the table".into()),
        },
        Category::Of(TypeFamily::Other) => {
            Err(format!("type {} is not a feature type", column.data_type))
        }
    }
}

/// What a time is measured from, so that a feature is recency, not calendar time.
enum Since {
    /// The latest value of the column in the data (`YYYY-MM-DD`), without point in time.
    Latest(String),
    /// Each row's cutoff (the cutoff column), in a point-in-time design.
    Cutoff(String),
}

impl Since {
    /// `to the cutoff`, `to the latest in the data (2025-12-30)`.
    fn to(&self) -> String {
        match self {
            Since::Latest(date) => format!("to the latest in the data ({date})"),
            Since::Cutoff(_) => "to the cutoff".into(),
        }
    }
}

/// `DATE 'date' - CAST(time AS DATE)` or `CAST(cutoff AS DATE) - CAST(time AS DATE)`:
/// whole days from `time` to the reference, which the compiler spells per dialect
/// (`DATEDIFF`, `DATE_DIFF(…, DAY)`, `-`).
fn days_since(since: &Since, time: Expr) -> Expr {
    let reference = match since {
        Since::Latest(date) => Expr::TypedString(sqlparser::ast::TypedString {
            data_type: sqlparser::ast::DataType::Date,
            value: sqlparser::ast::ValueWithSpan {
                value: Value::SingleQuotedString(date.clone()),
                span: sqlparser::tokenizer::Span::empty(),
            },
            uses_odbc_syntax: false,
        }),
        Since::Cutoff(cutoff) => {
            crate::sql::cast(column_expr(cutoff), sqlparser::ast::DataType::Date)
        }
    };
    Expr::BinaryOp {
        left: Box::new(reference),
        op: sqlparser::ast::BinaryOperator::Minus,
        right: Box::new(crate::sql::cast(time, sqlparser::ast::DataType::Date)),
    }
}

/// Whether no two rows of a table share the entity key: the profiled rows first (a table
/// of events repeats its keys there), then, only if they do not, the whole table's keys.
async fn one_row_per_entity(
    ctx: &datafusion::prelude::SessionContext,
    table: &Table,
    key: &[String],
    profile_rows: usize,
) -> Result<bool, Vec<Diagnostic>> {
    use crate::run::validate::has_duplicate_keys;
    let repeats = |limit| has_duplicate_keys(ctx, &table.name, key, limit);
    Ok(!repeats(Some(profile_rows)).await.map_err(|d| vec![d])?
        && !repeats(None).await.map_err(|d| vec![d])?)
}

/// The latest value of a date or timestamp column in the whole table, as `YYYY-MM-DD`;
/// `None` when the column holds no value.
async fn latest_date(
    ctx: &datafusion::prelude::SessionContext,
    table: &Table,
    column: &str,
) -> Result<Option<String>, Vec<Diagnostic>> {
    use datafusion::functions_aggregate::expr_fn::max;
    let error = |e| vec![crate::run::sample::runtime_error(e)];
    let batches = ctx
        .table(crate::run::sample::table_reference(&table.name))
        .await
        .map_err(error)?
        .aggregate(
            vec![],
            vec![max(datafusion::logical_expr::ident(column)).alias("latest")],
        )
        .map_err(error)?
        .collect()
        .await
        .map_err(error)?;
    let Some(batch) = batches.iter().find(|b| b.num_rows() > 0) else {
        return Ok(None);
    };
    let dates = cast(batch.column(0), &DataType::Date32).map_err(|e| error(e.into()))?;
    let dates = cast(&dates, &DataType::Utf8).map_err(|e| error(e.into()))?;
    let text = dates.as_string::<i32>();
    Ok((!text.is_null(0)).then(|| text.value(0).to_string()))
}

/// Below this many sampled values, near-uniqueness says nothing.
const NEAR_UNIQUE_MIN_VALUES: usize = 50;

/// Whether a column's name says it is a key (`id`, `…_id`, `…_key`, `…_uuid`).
fn key_named(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "id" || ["_id", "_key", "_uuid"].iter().any(|s| lower.ends_with(s))
}

/// Each value of a key column that is a category appears on this many profiled rows at
/// least, on average.
const CATEGORY_MIN_ROWS_PER_VALUE: usize = 5;

/// A key-named integer or text column with few distinct values (a product or category
/// code, a foreign key to a small table) is a category, not an identifier: at most
/// `max_categories` distinct profiled values, each on [`CATEGORY_MIN_ROWS_PER_VALUE`]
/// rows or more on average.
fn key_category(
    name: &str,
    family: TypeFamily,
    profile: &ColumnProfile,
    options: &DesignOptions,
) -> bool {
    key_named(name)
        && matches!(family, TypeFamily::String | TypeFamily::Integer)
        && profile.distinct > 0
        && profile.distinct <= options.max_categories
        && profile.non_null >= CATEGORY_MIN_ROWS_PER_VALUE * profile.distinct
}

/// Why a column is an identifier rather than a measurement, if it is one.
fn identifier_like(
    name: &str,
    family: TypeFamily,
    profile: &ColumnProfile,
    options: &DesignOptions,
) -> Option<String> {
    if key_named(name) {
        if key_category(name, family, profile, options) {
            return None;
        }
        return Some(format!(
            "identifier-like (its name, and {} distinct of {} profiled values)",
            profile.distinct, profile.non_null
        ));
    }
    let countable = matches!(family, TypeFamily::String | TypeFamily::Integer);
    if countable
        && profile.non_null >= NEAR_UNIQUE_MIN_VALUES
        && profile.distinct as f64 >= 0.95 * profile.non_null as f64
    {
        return Some(format!(
            "identifier-like ({} of {} profiled values distinct)",
            profile.distinct, profile.non_null
        ));
    }
    None
}

/// The columns the label reads: its `column` and every column of its derivation.
fn label_columns(label: &LabelSpec) -> Result<Vec<String>, Vec<Diagnostic>> {
    let mut columns = Vec::new();
    if let Some(column) = &label.column {
        columns.push(column.rsplit('.').next().unwrap_or(column).to_string());
    }
    if let Some(derivation) = &label.derivation {
        let expr = parse_fragment(
            derivation,
            RecipePath::design(RecipePath::Label(LabelField::Derivation)),
        )
        .map_err(|d| vec![d])?;
        columns.extend(inspect(&expr).columns.into_iter().map(|c| c.name));
    }
    Ok(columns)
}

/// A recipe of the request's grain, label and point in time with `features`, declaring
/// the relationships of the paths they use and the derived columns they read.
fn recipe_with(
    request: &DesignRequest,
    options: &DesignOptions,
    proposal: &Proposal,
    features: Vec<FeatureSpec>,
    notes: String,
) -> FeatureRecipe {
    let mut relationships: Vec<Relationship> = Vec::new();
    let mut used: Vec<usize> = Vec::new();
    for f in &features {
        let derived = proposal.uses.get(&f.name).map(|&d| &proposal.derived[d]);
        let reached = proposal.paths.get(&f.source_table).into_iter().flatten();
        for r in reached.chain(derived.map(|(_, r)| r)) {
            if !relationships.contains(r) {
                relationships.push(r.clone());
            }
        }
        if let Some(&d) = proposal.uses.get(&f.name)
            && !used.contains(&d)
        {
            used.push(d);
        }
    }
    used.sort_unstable();
    let derived_columns = used
        .into_iter()
        .map(|d| proposal.derived[d].0.clone())
        .collect();
    FeatureRecipe {
        target_table: options.target_table.clone(),
        entity_grain: request.entity_grain.clone(),
        label: request.label.clone(),
        point_in_time: point_in_time_for(request, &features, &relationships),
        relationships,
        derived_columns,
        features,
        notes,
    }
}

/// The request's point-in-time object, with the time columns of the tables the features
/// read and of the tables on their paths (so the recipe declares exactly what it used).
fn point_in_time_for(
    request: &DesignRequest,
    features: &[FeatureSpec],
    relationships: &[Relationship],
) -> Option<PointInTime> {
    let pit = request.point_in_time.as_ref()?;
    // The schedule's and the label's sources keep their time columns: the recipe needs them.
    let needed = |table: &str| {
        [
            pit.schedule.as_ref().map(|s| s.source_table.as_str()),
            request.label.source_table.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|t| t.trim().eq_ignore_ascii_case(table))
    };
    let generated = pit.schedule.is_some();
    let on_a_path = |table: &str| {
        relationships.iter().any(|r| {
            [&r.parent, &r.child].iter().any(|side| {
                Relationship::split(side).is_some_and(|(t, _)| t.eq_ignore_ascii_case(table))
            })
        })
    };
    let used = pit
        .time_columns
        .0
        .iter()
        .filter(|(table, _)| {
            needed(table)
                || on_a_path(table)
                || features.iter().any(|f| {
                    f.source_table.eq_ignore_ascii_case(table)
                        && (generated || !f.source_table.eq_ignore_ascii_case(&request.spine))
                })
        })
        .cloned()
        .collect();
    Some(PointInTime {
        time_columns: TimeColumns(used),
        ..pit.clone()
    })
}

/// `features` without those in `drop`, each dropped one recorded with its reason.
fn keep(
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

fn notes(
    request: &DesignRequest,
    relationships: &[String],
    left_out: &[(String, String)],
    considered: usize,
    dropped: &[(String, String)],
    ranking: &str,
) -> String {
    const SHOWN: usize = 40;
    let list = |items: &[(String, String)]| {
        let mut text: Vec<String> = items
            .iter()
            .take(SHOWN)
            .map(|(what, why)| format!("{what} ({why})"))
            .collect();
        if items.len() > SHOWN {
            text.push(format!("and {} more", items.len() - SHOWN));
        }
        text.join("; ")
    };
    let mut notes = match &request.point_in_time {
        None => format!(
            "Designed by featurecraft from the catalog: {considered} features considered, row-level from `{}` and aggregated per ({}) from every table holding the grain.",
            request.spine,
            request.entity_grain.join(", ")
        ),
        Some(pit) => {
            let key: Vec<&str> = request
                .entity_grain
                .iter()
                .filter(|g| !g.eq_ignore_ascii_case(&pit.cutoff_column))
                .map(String::as_str)
                .collect();
            let windows = if request.windows.is_empty() {
                String::new()
            } else {
                format!(" and within {}", request.windows.join(", "))
            };
            format!(
                "Designed by featurecraft from the catalog, point in time: {considered} features considered, row-level from `{}`, and per ({}) from every table holding it: aggregates of the rows before each `{}`{windows}, and the latest row's values (as-of) for timed tables.",
                request.spine,
                key.join(", "),
                pit.cutoff_column
            )
        }
    };
    if !relationships.is_empty() {
        notes.push_str(&format!(" Relationships: {}.", relationships.join("; ")));
    }
    if !left_out.is_empty() {
        notes.push_str(&format!(" Left out: {}.", list(left_out)));
    }
    let (pruned, ranked): (Vec<_>, Vec<_>) = dropped
        .iter()
        .cloned()
        .partition(|(_, why)| !why.starts_with("less informative"));
    if !pruned.is_empty() {
        notes.push_str(&format!(" Dropped after checking: {}.", list(&pruned)));
    }
    if !ranked.is_empty() {
        notes.push_str(ranking);
    }
    notes
}

/// A proposed feature, its expression printed by featurecraft's escaper (a profiled value
/// becomes a string literal); `None` for the rare value no SQL string can hold (a NUL).
/// A proposed feature with a unique name; with a window, the name and description say it.
fn feature(
    names: &mut Names,
    name: String,
    expr: Expr,
    table: &Table,
    description: String,
    window: Option<&DesignWindow>,
) -> Option<FeatureSpec> {
    let expression = crate::compile::print::expression_text(&expr, Dialect::Generic).ok()?;
    let (name, description) = match window {
        Some(w) => (
            format!("{name}_{}", w.suffix),
            format!("{description}, in the {} before the cutoff", w.text),
        ),
        None => (name, description),
    };
    Some(FeatureSpec {
        name: names.claim(name),
        expression,
        source_table: table.name.clone(),
        description,
        data_type: None,
        window: window.map(|w| w.text.clone()),
    })
}

/// `COUNT(CASE WHEN condition THEN 1 END)`.
fn count_when(condition: Expr) -> Expr {
    call(
        "COUNT",
        vec![case(
            condition,
            Expr::value(Value::Number("1".into(), false)),
            None,
        )],
    )
}

/// `CASE WHEN column THEN 1.0 ELSE 0.0 END`.
fn share_of_true(column: Expr) -> Expr {
    case(
        column,
        Expr::value(Value::Number("1.0".into(), false)),
        Some(Expr::value(Value::Number("0.0".into(), false))),
    )
}

fn case(condition: Expr, result: Expr, otherwise: Option<Expr>) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen { condition, result }],
        else_result: otherwise.map(Box::new),
    }
}

/// The sampled values of a recipe's features, in recipe order, and of its label.
struct Sampled {
    columns: Vec<ArrayRef>,
    label: ArrayRef,
}

/// Runs the validation sample of `recipe` and keeps its feature and label columns.
async fn sampled_features(
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
fn duplicates(columns: &[ArrayRef], features: &[FeatureSpec]) -> BTreeMap<usize, String> {
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
    use crate::sql::function_name;

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
