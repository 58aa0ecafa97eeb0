//! Analysis: from a recipe and a catalog to a [`Plan`] and its diagnostics.
//!
//! This is where a recipe gets its meaning (DESIGN.md §3):
//! - every fragment is parsed alone and its names are resolved against the catalog;
//! - the **spine** (the rows of the training table) is the label's table, grouped by the
//!   grain when the label derivation aggregates;
//! - every other `source_table` becomes one CTE, grouped by the grain when its features
//!   aggregate, row-level otherwise; row-level features on the spine's table live in the spine;
//! - an entity with no rows in a source gets each aggregate feature's value over no rows
//!   (`COUNT` → 0, other aggregates NULL), evaluated per expression;
//! - output names are checked, leakage and declared types are warned about.
//!
//! All diagnostics of a recipe are collected in one pass; a plan is returned only when no
//! error was found.
//!
//! One module per concern, each adding methods to the one `Analyzer` pass: `resolve`
//! (names against the catalog), `label` (the spine), `sources` (features into source CTEs),
//! `time` (point in time), `names` (output names), `derived` (derived columns), `future`
//! (labels from a window after the cutoff, schedules). This file holds the plan's types
//! and the entry point.

use crate::catalog::{Catalog, Table};
use crate::compile::fragment::{self, ColumnRef, FragmentFacts};
use crate::compile::point_in_time::{
    PlanTime, SourceTime, TieColumn, TimeType, Window, parse_window,
};
use crate::compile::relationships::{self, Hop, Link};
use crate::contract::recipe::{FeatureRecipe, LabelType, PointInTime};
use crate::diagnostic::{
    Code, Diagnostic, FeatureField, LabelField, PointInTimeField, RecipePath, Replaces, Severity,
    did_you_mean, suggestions,
};
use crate::types::{TypeFamily, parse_type_name};
use sqlparser::ast::{Expr, Ident};
use std::collections::{BTreeMap, BTreeSet, HashMap};

mod derived;
mod future;
mod label;
mod names;
mod resolve;
mod sources;
mod time;

pub use derived::{DerivedChild, DerivedTable, DerivedValue};
pub use future::{FutureLabel, PlanSchedule};
use label::planned_label;
pub use names::{name_problem, shown_name};
use resolve::lookup;
use time::Timing;

/// The most features a recipe may have unless the caller allows more: compile and
/// validation cost grow with the features, and a service must bound what one request costs.
/// Far above what a training table needs (the built-in crew proposes a few hundred).
pub const MAX_FEATURES: usize = 10_000;

/// The longest output, table or domain name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// Knobs of the analysis.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// Strict mode: suspected label leakage (`W010`) is an error instead of a warning.
    pub strict: bool,
    /// A recipe with more features is refused (`E005`) before any fragment is parsed.
    pub max_features: usize,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            strict: false,
            max_features: MAX_FEATURES,
        }
    }
}

/// What analysis produced: the plan (when the recipe has no error) and every finding.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The plan, when the recipe has no error.
    pub plan: Option<Plan>,
    /// Every finding, in recipe order.
    pub diagnostics: Vec<Diagnostic>,
}

/// A checked recipe, ready to render in any dialect or to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The table the CTAS creates, split into its parts.
    pub target_table: Vec<String>,
    /// The grain columns as the spine table spells them; also their output names.
    pub grain: Vec<String>,
    /// Where the training rows come from.
    pub spine: Spine,
    /// One CTE per non-spine source (and one for the spine table's aggregate features).
    pub sources: Vec<Source>,
    /// The features in recipe order.
    pub features: Vec<PlannedFeature>,
    /// The label column.
    pub label: PlannedLabel,
    /// Point-in-time facts, in a recipe with `point_in_time`.
    pub point_in_time: Option<PlanTime>,
    /// Tables read through a CTE that adds the recipe's derived columns.
    pub derived: Vec<DerivedTable>,
}

impl Plan {
    /// The plan of some of the features (by index, in that order): the same spine, label
    /// and sources, so the same rows; grouped sources left without features are not read.
    pub fn with_features(&self, indices: &[usize]) -> Plan {
        Plan {
            target_table: self.target_table.clone(),
            grain: self.grain.clone(),
            spine: self.spine.clone(),
            sources: self.sources.clone(),
            features: indices
                .iter()
                .filter_map(|&i| self.features.get(i).cloned())
                .collect(),
            label: self.label.clone(),
            point_in_time: self.point_in_time.clone(),
            derived: self.derived.clone(),
        }
    }

    /// The grain columns sources join on, as the spine spells them: the whole grain, or
    /// in a point-in-time plan the grain without the cutoff (the entity key).
    pub fn entity_key(&self) -> Vec<String> {
        match &self.point_in_time {
            Some(time) => self
                .grain
                .iter()
                .filter(|g| **g != time.cutoff)
                .cloned()
                .collect(),
            None => self.grain.clone(),
        }
    }
}

/// The spine: the label's table, one output row per spine row.
#[derive(Debug, Clone, PartialEq)]
pub struct Spine {
    /// The catalog name of the label's table.
    pub table: String,
    /// Grouped by the grain (the label derivation aggregates).
    pub grouped: bool,
    /// The rows are generated by a schedule over `table`'s entities instead of read.
    pub schedule: Option<PlanSchedule>,
}

/// A source table's CTE.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// The CTE's name (`src_orders`), unique within the query.
    pub cte_name: String,
    /// The catalog name of the table or view.
    pub table: String,
    /// The columns it joins the spine on ([`Plan::entity_key`]) as this table spells them
    /// (the last table of `path` when it has one).
    pub grain: Vec<String>,
    /// For a table without the entity key: the tables it is joined through to reach it,
    /// from the recipe's relationships. Empty for a table holding the key.
    pub path: Vec<Hop>,
    /// Grouped by the grain (its features aggregate) or one row per source row.
    pub grouped: bool,
    /// In a point-in-time plan, for a source with a `path`: every table of the path with a
    /// time column (0 the source itself, n the n-th hop), each bounded by the cutoff; `time`
    /// is the first. Empty for a source without a path.
    pub path_times: Vec<(usize, SourceTime)>,
    /// In a point-in-time plan, the source's time column: its rows count up to each spine
    /// row's cutoff, and its row-level features are as-of values. `None` for a source
    /// read whole (declared static, or not bounded: `W012`).
    pub time: Option<SourceTime>,
}

/// Where a feature is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureHome {
    /// In the spine CTE (row-level features of the spine's own table).
    Spine,
    /// In `Plan::sources[i]`.
    Source(usize),
}

/// A feature ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFeature {
    /// The output column.
    pub name: String,
    /// The recipe path of its expression, for diagnostics at render time.
    pub path: RecipePath,
    /// The expression with column names resolved to the catalog's spelling.
    pub expr: Expr,
    /// The CTE that computes it.
    pub home: FeatureHome,
    /// For aggregate features of a source: the value when the entity has no rows there,
    /// already in terms of spine columns; `None` when that value is NULL.
    pub empty_value: Option<Expr>,
    /// The author's declared type, when given.
    pub declared_type: Option<String>,
    /// Where the expression casts a float to text, which not every dialect renders faithfully.
    pub float_to_text: Vec<sqlparser::tokenizer::Span>,
    /// Only the source's rows within this span before the cutoff count (point in time).
    pub window: Option<Window>,
    /// A row-level feature of a timed source: the value in the entity's latest row before
    /// the cutoff (point in time). A timed source may mix these with aggregates.
    pub as_of: bool,
    /// An aggregate feature of a timed source that reads the row's cutoff by the cutoff
    /// column's name (`CAST(cutoff AS DATE) - CAST(MAX(t) AS DATE)`): the renderer reads
    /// it from the cutoff pairs.
    pub reads_cutoff: bool,
}

/// The label ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedLabel {
    /// The output column.
    pub name: String,
    /// The recipe path of its derivation (or column), for diagnostics.
    pub path: RecipePath,
    /// The label expression over the spine table, resolved.
    pub expr: Expr,
    /// How the label is summarised.
    pub label_type: LabelType,
    /// `positive_class_value` as the label distribution keys it (`1`, `yes`, `true`).
    pub positive_class: Option<String>,
    /// The label is computed from a window after each row's cutoff (`expr` is then unused).
    pub future: Option<FutureLabel>,
}

/// Analyzes `recipe` against `catalog`.
pub fn analyze(recipe: &FeatureRecipe, catalog: &Catalog, options: &AnalyzeOptions) -> Analysis {
    crate::sql::with_expression_stack(|| analyze_here(recipe, catalog, options))
}

fn analyze_here(recipe: &FeatureRecipe, catalog: &Catalog, options: &AnalyzeOptions) -> Analysis {
    let mut a = Analyzer {
        catalog,
        diagnostics: Vec::new(),
        paths: BTreeMap::new(),
        feature_cutoff: None,
    };
    if recipe.derived_columns.is_empty() {
        let plan = a.run(recipe, options);
        return a.finish(plan);
    }
    if recipe.derived_columns.len() > options.max_features {
        a.push(
            Diagnostic::new(
                Code::E005,
                format!(
                    "the recipe has {} derived columns; the limit is {}",
                    recipe.derived_columns.len(),
                    options.max_features
                ),
            )
            .at(RecipePath::Field("derived_columns".into())),
        );
        return a.finish(None);
    }
    // Features see the tables with their derived columns; the relationships are reported
    // once, by the run below.
    let links = relationships::check(&recipe.relationships, catalog, &mut Vec::new());
    let (tables, derived) = a.derive(recipe, &links);
    let grown = catalog.with_tables_replaced(&tables);
    let mut b = Analyzer {
        catalog: &grown,
        diagnostics: a.diagnostics,
        paths: a.paths,
        feature_cutoff: None,
    };
    let plan = b.run(recipe, options).map(|plan| {
        let mut plan = Plan { derived, ..plan };
        b.check_derived_in_time(recipe, &mut plan, options.strict);
        plan
    });
    b.finish(plan)
}

impl Analyzer<'_> {
    /// The analysis: the plan only when nothing was an error.
    fn finish(self, plan: Option<Plan>) -> Analysis {
        let has_error = self.diagnostics.iter().any(Diagnostic::is_error);
        Analysis {
            plan: if has_error { None } else { plan },
            diagnostics: self.diagnostics,
        }
    }
}

/// Whose fragment is resolved: it decides how a column outside the table is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Feature,
    Label,
}

/// What checking a fragment's columns against its table found.
struct FragmentColumns {
    facts: FragmentFacts,
    /// Every column read, in the catalog's spelling.
    reads: BTreeSet<String>,
    /// Columns read outside aggregates that are not grain columns.
    bare_non_grain: Vec<String>,
    /// The fragment reads the row's cutoff (a point-in-time feature of a source that has
    /// no column of the cutoff's name).
    reads_cutoff: bool,
}

/// What the label decided about the spine, as feature planning needs it.
struct SpineFacts<'a> {
    /// The spine table's name, lower case.
    key: String,
    /// The grain as the spine spells it.
    grain: &'a [String],
    /// The spine is grouped by the grain (the label aggregates).
    grouped: bool,
    /// The columns the label reads (leakage).
    reads: &'a BTreeSet<String>,
}

/// What resolving a feature learned, before planning (its expression is kept apart, so
/// planning can move it instead of cloning it).
struct Resolved {
    index: usize,
    table: String,
    facts: FragmentFacts,
    /// Resolved names of columns read outside aggregates that are not grain columns.
    bare_non_grain: Vec<String>,
    /// Resolved names of every column read.
    reads: BTreeSet<String>,
    /// It reads the row's cutoff.
    reads_cutoff: bool,
}

struct Analyzer<'c> {
    catalog: &'c Catalog,
    diagnostics: Vec<Diagnostic>,
    /// The join path of each source table (lower case) that reaches the entity key
    /// through the recipe's relationships.
    paths: BTreeMap<String, Vec<Hop>>,
    /// While the features resolve in a point-in-time recipe: the cutoff column, which a
    /// feature may read where its source has no column of that name.
    feature_cutoff: Option<String>,
}

impl<'c> Analyzer<'c> {
    fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    fn run(&mut self, recipe: &FeatureRecipe, options: &AnalyzeOptions) -> Option<Plan> {
        if !self.within_feature_limit(recipe, options) {
            return None;
        }
        let target_table = self.check_target(&recipe.target_table);
        self.check_names(recipe);
        let key = entity_key(recipe);
        let links =
            relationships::check(&recipe.relationships, self.catalog, &mut self.diagnostics);
        let (resolved, resolved_exprs) = self.resolve_features(recipe, &key, &links);

        // The label decides the spine, unless a schedule generates the rows.
        let schedule = recipe
            .point_in_time
            .as_ref()
            .and_then(|pit| pit.schedule.as_ref());
        let (spine_table, label_expr, label_grouped, label_reads) = match schedule {
            Some(schedule) => {
                let Some(table) = self.catalog.table(schedule.source_table.trim()) else {
                    self.plan_schedule(recipe, schedule, None, &key);
                    return None;
                };
                let placeholder = Expr::Identifier(Ident::new(recipe.label.name.clone()));
                (table.name.clone(), placeholder, false, BTreeSet::new())
            }
            None if recipe.label.is_windowed() => self.plan_windowed_spine(recipe, &resolved)?,
            None => self.plan_label(recipe, &resolved)?,
        };
        let spine = self.catalog.table(&spine_table)?;
        let grain: Vec<String> = recipe
            .entity_grain
            .iter()
            .map(|g| {
                spine
                    .column(g)
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| g.clone())
            })
            .collect();
        // A wrong cutoff or time column is reported; the features are still checked.
        let timing = recipe
            .point_in_time
            .as_ref()
            .and_then(|pit| self.check_point_in_time(recipe, pit, spine, &grain));
        let future = self.plan_future_label(recipe, timing.as_ref(), &key, &links);
        let planned_schedule =
            schedule.and_then(|s| self.plan_schedule(recipe, s, timing.as_ref(), &key));
        let spine_is = SpineFacts {
            // A generated spine has no table of its own: every feature reads a source.
            key: if schedule.is_some() {
                String::new()
            } else {
                spine.name.to_ascii_lowercase()
            },
            grain: &grain,
            grouped: label_grouped,
            reads: &label_reads,
        };
        let (sources, features) = self.plan_features(
            recipe,
            options,
            (&resolved, resolved_exprs),
            &spine_is,
            timing.as_ref(),
            &key,
        )?;
        if let Some(pit) = &recipe.point_in_time {
            self.report_unused_time_columns(recipe, pit);
        }

        let target_table = target_table?;
        if self.diagnostics.iter().any(Diagnostic::is_error) {
            return None;
        }
        Some(Plan {
            target_table,
            grain,
            spine: Spine {
                table: spine.name.clone(),
                grouped: label_grouped,
                schedule: planned_schedule,
            },
            sources,
            features,
            label: PlannedLabel {
                future,
                ..planned_label(recipe, label_expr)
            },
            point_in_time: timing.map(|t| t.plan),
            derived: Vec::new(),
        })
    }

    /// `E005` when the recipe has more features than a compile accepts.
    fn within_feature_limit(&mut self, recipe: &FeatureRecipe, options: &AnalyzeOptions) -> bool {
        if recipe.features.len() <= options.max_features {
            return true;
        }
        self.push(
            Diagnostic::new(
                Code::E005,
                format!(
                    "the recipe has {} features; the limit is {}",
                    recipe.features.len(),
                    options.max_features
                ),
            )
            .at(RecipePath::Field("features".into()))
            .hint("split the training table into several recipes joined on the grain, or keep the features that matter"),
        );
        false
    }
}

/// The grain columns every source must carry and may read outside an aggregate: the whole
/// grain, or in a point-in-time recipe the grain without its cutoff column.
fn entity_key(recipe: &FeatureRecipe) -> Vec<String> {
    match &recipe.point_in_time {
        Some(pit) => recipe
            .entity_grain
            .iter()
            .filter(|g| !g.eq_ignore_ascii_case(&pit.cutoff_column))
            .cloned()
            .collect(),
        None => recipe.entity_grain.clone(),
    }
}

/// Whether the entity key is known: the recipe is not point-in-time, or its cutoff is one
/// of the grain.
fn key_known(recipe: &FeatureRecipe) -> bool {
    recipe.point_in_time.as_ref().is_none_or(|pit| {
        recipe
            .entity_grain
            .iter()
            .any(|g| g.eq_ignore_ascii_case(&pit.cutoff_column))
    })
}
