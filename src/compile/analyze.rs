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
pub use derived::{DerivedChild, DerivedTable, DerivedValue};
pub use future::{FutureLabel, PlanSchedule};

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

/// The label as planned: its name, path, resolved expression, type and positive class.
fn planned_label(recipe: &FeatureRecipe, expr: Expr) -> PlannedLabel {
    PlannedLabel {
        name: recipe.label.name.clone(),
        path: label_path(recipe),
        expr,
        label_type: recipe.label.label_type,
        positive_class: recipe
            .label
            .positive_class_value
            .as_ref()
            .and_then(|v| match v {
                serde_json::Value::Null => None,
                serde_json::Value::String(s) => Some(s.clone()),
                other => Some(other.to_string()),
            }),
        future: None,
    }
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

    /// Every feature's table and expression, resolved: what each reads and whether it
    /// aggregates, with its expression kept apart so planning can move it.
    /// `key` is what every source must carry and may read outside an aggregate: the grain,
    /// or in a point-in-time recipe the entity key.
    fn resolve_features(
        &mut self,
        recipe: &FeatureRecipe,
        key: &[String],
        links: &[Link],
    ) -> (Vec<Resolved>, Vec<Expr>) {
        let mut grain_checked: BTreeSet<String> = BTreeSet::new();
        let mut resolved = Vec::new();
        let mut resolved_exprs = Vec::new();
        let texts: Vec<&str> = recipe
            .features
            .iter()
            .map(|f| f.expression.as_str())
            .collect();
        let mut parsed_exprs =
            fragment::parse_fragments(&texts, |i| RecipePath::feature(i, FeatureField::Expression))
                .into_iter();
        self.feature_cutoff = recipe
            .point_in_time
            .as_ref()
            .map(|p| p.cutoff_column.trim().to_string());
        for (i, feature) in recipe.features.iter().enumerate() {
            let table_path = RecipePath::feature(i, FeatureField::SourceTable);
            let table = self.resolve_table(&feature.source_table, &table_path);
            let expr_path = RecipePath::feature(i, FeatureField::Expression);
            let parsed = match parsed_exprs.next() {
                Some(Ok(expr)) => Some(expr),
                Some(Err(d)) => {
                    self.push(d);
                    None
                }
                None => None,
            };
            let (Some(table), Some(expr)) = (table, parsed) else {
                continue;
            };
            // Without the cutoff in the grain (`E024`) the entity key is not known.
            if grain_checked.insert(table.name.to_ascii_lowercase()) && key_known(recipe) {
                self.reach_key(table, key, links, &table_path);
            }
            if let Some((r, expr)) = self.resolve_expr(i, table, expr, key, &expr_path) {
                resolved.push(r);
                resolved_exprs.push(expr);
            }
        }
        self.feature_cutoff = None;
        (resolved, resolved_exprs)
    }

    /// Where each feature is computed (the spine, or a source's CTE), with its portable
    /// expression, its value over no rows, and the leakage, type and mixing checks.
    fn plan_features(
        &mut self,
        recipe: &FeatureRecipe,
        options: &AnalyzeOptions,
        (resolved, resolved_exprs): (&[Resolved], Vec<Expr>),
        spine_is: &SpineFacts,
        timing: Option<&Timing>,
        key: &[String],
    ) -> Option<(Vec<Source>, Vec<PlannedFeature>)> {
        let (grain, label_grouped, label_reads) =
            (spine_is.grain, spine_is.grouped, spine_is.reads);
        // A source is grouped when any of its (non-spine) features aggregates.
        let grouped_tables: BTreeSet<String> = resolved
            .iter()
            .filter(|r| r.facts.aggregates)
            .map(|r| r.table.to_ascii_lowercase())
            .collect();
        let mut sources: Vec<Source> = Vec::new();
        let mut features = Vec::new();
        let spine_key = &spine_is.key;
        for (r, expr) in resolved.iter().zip(resolved_exprs) {
            let feature = &recipe.features[r.index];
            let path = RecipePath::feature(r.index, FeatureField::Expression);
            let on_spine = r.table.to_ascii_lowercase() == *spine_key;
            let aggregate = r.facts.aggregates;

            if label_grouped && on_spine && !aggregate && !r.bare_non_grain.is_empty() {
                self.push(
                    Diagnostic::new(
                        Code::E030,
                        format!(
                            "feature `{}` reads `{}` row by row, but the spine is grouped by the grain because the label aggregates",
                            feature.name, r.bare_non_grain[0]
                        ),
                    )
                    .at(path.clone())
                    .hint("aggregate the column (e.g. `MAX(...)`) or make the label row-level"),
                );
                continue;
            }

            let home = if on_spine && (!aggregate || label_grouped) {
                FeatureHome::Spine
            } else {
                let table = self.catalog.table(&r.table)?;
                let index = match sources
                    .iter()
                    .position(|s| s.table.eq_ignore_ascii_case(&table.name))
                {
                    Some(index) => index,
                    None => {
                        let path = self
                            .paths
                            .get(&table.name.to_ascii_lowercase())
                            .cloned()
                            .unwrap_or_default();
                        let holder = match path.last() {
                            Some(hop) => self.catalog.table(&hop.table)?,
                            None => table,
                        };
                        let source_grain = key
                            .iter()
                            .map(|g| {
                                holder
                                    .column(g)
                                    .map(|c| c.name.clone())
                                    .unwrap_or_else(|| g.clone())
                            })
                            .collect();
                        let (time, path_times) = match timing {
                            Some(timing) if !path.is_empty() => {
                                self.path_times(timing, table, &path, r.index, options.strict)
                            }
                            Some(timing) => (
                                self.source_time(timing, table, r.index, options.strict),
                                Vec::new(),
                            ),
                            None => (None, Vec::new()),
                        };
                        sources.push(Source {
                            cte_name: cte_name(&table.name, &sources),
                            table: table.name.clone(),
                            grain: source_grain,
                            grouped: grouped_tables.contains(&table.name.to_ascii_lowercase()),
                            time,
                            path,
                            path_times,
                        });
                        sources.len() - 1
                    }
                };
                if !sources[index].path.is_empty() && !aggregate {
                    self.push(
                        Diagnostic::new(
                            Code::E027,
                            format!(
                                "feature `{}` is row-level, but `{}` reaches the entity key through a relationship: each entity has many of its rows",
                                feature.name, table.name
                            ),
                        )
                        .at(path.clone())
                        .hint("aggregate it (e.g. `SUM(col)`, `COUNT(*)`)"),
                    );
                    continue;
                }
                // A timed source computes its as-of values apart from its aggregates.
                if sources[index].grouped
                    && sources[index].time.is_none()
                    && !aggregate
                    && !r.bare_non_grain.is_empty()
                {
                    self.mixed_source(recipe, resolved, &table.name, &path);
                    continue;
                }
                FeatureHome::Source(index)
            };

            if on_spine {
                self.report_leakage(feature, r, label_reads, &path, options.strict);
            }

            let table = self.catalog.table(&r.table)?;
            let expr = crate::compile::infer::make_portable(expr, table);
            if let Some(declared) = &feature.data_type {
                self.check_declared_type(declared, &expr, table, r.index);
            }

            let empty_value = match home {
                FeatureHome::Source(_) if aggregate => {
                    let spine_grain = |name: &str| {
                        recipe
                            .entity_grain
                            .iter()
                            .position(|g| g.eq_ignore_ascii_case(name))
                            .map(|i| {
                                Expr::CompoundIdentifier(vec![
                                    Ident::new(SPINE_CTE),
                                    Ident::new(grain[i].clone()),
                                ])
                            })
                    };
                    fragment::empty_set_value(&expr, &spine_grain)
                }
                _ => None,
            };
            let float_to_text = crate::compile::infer::float_to_text_casts(&expr, table);
            let window = match &feature.window {
                Some(text) => self.check_window(text, r.index, home, &sources, recipe, timing),
                None => None,
            };
            let as_of =
                !aggregate && matches!(home, FeatureHome::Source(s) if sources[s].time.is_some());
            let timed_aggregate =
                aggregate && matches!(home, FeatureHome::Source(s) if sources[s].time.is_some());
            if r.reads_cutoff && !timed_aggregate {
                let cutoff = recipe
                    .point_in_time
                    .as_ref()
                    .map_or("", |p| p.cutoff_column.as_str());
                self.push(
                    Diagnostic::new(
                        Code::E021,
                        format!(
                            "feature `{}` reads the cutoff `{cutoff}`, which only an aggregate feature of a timed source can read (its rows are joined to each cutoff)",
                            feature.name
                        ),
                    )
                    .at(path.clone())
                    .hint(format!(
                        "aggregate a timed source's rows, e.g. `CAST({cutoff} AS DATE) - CAST(MAX(t) AS DATE)` for the days since the latest row"
                    )),
                );
                continue;
            }
            features.push(PlannedFeature {
                name: feature.name.clone(),
                path,
                expr,
                home,
                empty_value,
                declared_type: feature.data_type.clone(),
                float_to_text,
                window,
                as_of,
                reads_cutoff: r.reads_cutoff,
            });
        }

        Some((sources, features))
    }

    /// The point-in-time facts of the recipe, checked against the spine and the catalog:
    /// the cutoff is one of the grain and a date or timestamp there (`E024`), each time
    /// column exists and is a date or timestamp (`E025`). `None` when one of them is wrong.
    fn check_point_in_time(
        &mut self,
        recipe: &FeatureRecipe,
        pit: &PointInTime,
        spine: &Table,
        grain: &[String],
    ) -> Option<Timing> {
        let cutoff_path = RecipePath::PointInTime(Some(PointInTimeField::CutoffColumn));
        let mut ok = true;
        let cutoff_at = recipe
            .entity_grain
            .iter()
            .position(|g| g.eq_ignore_ascii_case(&pit.cutoff_column));
        let cutoff = match cutoff_at {
            None => {
                self.push(
                    Diagnostic::new(
                        Code::E024,
                        format!(
                            "cutoff column `{}` is not one of `entity_grain` ({})",
                            pit.cutoff_column,
                            recipe.entity_grain.join(", ")
                        ),
                    )
                    .at(cutoff_path.clone())
                    .suggest(
                        Replaces::Name,
                        &pit.cutoff_column,
                        suggestions(
                            &pit.cutoff_column,
                            recipe.entity_grain.iter().map(String::as_str),
                        ),
                    )
                    .hint("each training row is (entity, cutoff): add the cutoff column to `entity_grain`"),
                );
                return None;
            }
            Some(i) => grain[i].clone(),
        };
        if recipe.entity_grain.len() < 2 {
            self.push(
                Diagnostic::new(
                    Code::E024,
                    format!("`entity_grain` holds only the cutoff column `{cutoff}`: sources need an entity key to join on"),
                )
                .at(cutoff_path.clone())
                .hint("add the entity's key, e.g. `[\"customer_id\", \"cutoff_time\"]`"),
            );
            ok = false;
        }
        let generated = pit.schedule.is_some();
        let cutoff_type = spine.column(&cutoff).filter(|_| !generated).and_then(|c| {
            let found = TimeType::of(&c.data_type);
            if found.is_none() {
                self.push(
                    Diagnostic::new(
                        Code::E024,
                        format!(
                            "cutoff column `{cutoff}` of `{}` is {}, not a date or timestamp",
                            spine.name,
                            TypeFamily::of(&c.data_type).name()
                        ),
                    )
                    .at(cutoff_path.clone())
                    .hint("cast it in a view of the spine, or name the column that holds the prediction time"),
                );
            }
            found
        });
        let key = entity_key(recipe);
        let mut tables = Vec::new();
        for (name, column) in &pit.time_columns.0 {
            let path =
                RecipePath::PointInTime(Some(PointInTimeField::TimeColumns(Some(name.clone()))));
            let Some(table) = self.resolve_table(name, &path) else {
                ok = false;
                continue;
            };
            let time = match column {
                None => None,
                Some(column) => match self.time_column(table, column, &key, &path) {
                    Some(time) => Some(time),
                    None => {
                        ok = false;
                        continue;
                    }
                },
            };
            tables.push((table.name.to_ascii_lowercase(), time));
        }
        // Generated cutoffs have the type of the schedule source's time column.
        let cutoff_type = match generated {
            false => cutoff_type?,
            true => {
                let lower = spine.name.to_ascii_lowercase();
                tables
                    .iter()
                    .find(|(t, _)| *t == lower)
                    .and_then(|(_, time)| time.as_ref())
                    .map_or(TimeType::Timestamp, |time| time.time_type)
            }
        };
        ok.then_some(Timing {
            plan: PlanTime {
                cutoff,
                cutoff_type,
                include_cutoff: pit.includes_cutoff(),
            },
            tables,
        })
    }

    /// A source's time column: present, and a date or a timestamp (`E025`).
    fn time_column(
        &mut self,
        table: &Table,
        column: &str,
        key: &[String],
        path: &RecipePath,
    ) -> Option<SourceTime> {
        let Some(found) = table.column(column) else {
            self.push(
                Diagnostic::new(
                    Code::E025,
                    format!("time column `{column}` is not a column of `{}`", table.name),
                )
                .at(path.clone())
                .suggest(
                    Replaces::Name,
                    column,
                    suggestions(column, table.columns.iter().map(|c| c.name.as_str())),
                ),
            );
            return None;
        };
        match TimeType::of(&found.data_type) {
            Some(time_type) => Some(SourceTime {
                column: found.name.clone(),
                time_type,
                tie_break: tie_break(table, &found.name, key),
            }),
            None => {
                let times: Vec<&str> = table
                    .columns
                    .iter()
                    .filter(|c| TimeType::of(&c.data_type).is_some())
                    .map(|c| c.name.as_str())
                    .collect();
                let mut d = Diagnostic::new(
                    Code::E025,
                    format!(
                        "time column `{}` of `{}` is {}, not a date or timestamp",
                        found.name,
                        table.name,
                        TypeFamily::of(&found.data_type).name()
                    ),
                )
                .at(path.clone());
                if !times.is_empty() {
                    d = d.hint(format!("`{}` has {}", table.name, times.join(", ")));
                }
                self.push(d);
                None
            }
        }
    }

    /// A source's time column in a point-in-time recipe; `W012` (an error in strict mode)
    /// for a source that is neither timed nor declared static.
    fn source_time(
        &mut self,
        timing: &Timing,
        table: &Table,
        feature: usize,
        strict: bool,
    ) -> Option<SourceTime> {
        let lower = table.name.to_ascii_lowercase();
        match timing.tables.iter().find(|(t, _)| *t == lower) {
            Some((_, time)) => time.clone(),
            None => {
                let mut d = Diagnostic::new(
                    Code::W012,
                    format!(
                        "source `{}` is not bounded by the cutoff: it has no time column in `point_in_time.time_columns`, so its rows after a row's cutoff count too and may leak",
                        table.name
                    ),
                )
                .at(RecipePath::feature(feature, FeatureField::SourceTable))
                .hint(format!(
                    "declare its time column (`\"{}\": \"<column>\"`), or `null` if its rows do not change over time",
                    table.name
                ));
                if strict {
                    d.severity = Severity::Error;
                }
                self.push(d);
                None
            }
        }
    }

    /// The times bounding a source reached through relationships: the time column of the
    /// source and of each table on its path that has one (0 the source, n the n-th hop),
    /// and the first of them, which its windows count back from. `W012` when the source is
    /// not listed in `time_columns` and no table of its path is timed.
    fn path_times(
        &mut self,
        timing: &Timing,
        table: &Table,
        path: &[Hop],
        feature: usize,
        strict: bool,
    ) -> (Option<SourceTime>, Vec<(usize, SourceTime)>) {
        let entry = |name: &str| {
            let lower = name.to_ascii_lowercase();
            timing
                .tables
                .iter()
                .find(|(t, _)| *t == lower)
                .map(|(_, time)| time.clone())
        };
        let mut times: Vec<(usize, SourceTime)> = Vec::new();
        let own = entry(&table.name);
        if let Some(Some(time)) = &own {
            times.push((0, time.clone()));
        }
        for (n, hop) in path.iter().enumerate() {
            if let Some(Some(time)) = entry(&hop.table) {
                times.push((n + 1, time));
            }
        }
        if times.is_empty() && own.is_none() {
            // Neither timed nor declared static, and nothing on its path bounds it.
            return (self.source_time(timing, table, feature, strict), Vec::new());
        }
        (times.first().map(|(_, t)| t.clone()), times)
    }

    /// A feature's `window`: it parses, and its source is timed (`E026`).
    fn check_window(
        &mut self,
        text: &str,
        index: usize,
        home: FeatureHome,
        sources: &[Source],
        recipe: &FeatureRecipe,
        timing: Option<&Timing>,
    ) -> Option<Window> {
        let path = RecipePath::feature(index, FeatureField::Window);
        let window = match parse_window(text) {
            Ok(window) => window,
            Err(e) => {
                self.push(Diagnostic::new(Code::E026, e.message).at(path).hint(e.hint));
                return None;
            }
        };
        let problem = if recipe.point_in_time.is_none() {
            Some(
                "`window` needs `point_in_time`: without a cutoff there is no span before it"
                    .to_string(),
            )
        } else {
            match home {
                FeatureHome::Spine => Some(
                    "this feature reads the spine's own row, which has no rows before the cutoff to window"
                        .to_string(),
                ),
                // A wrong cutoff or time column was reported: whether this source is
                // timed is not known.
                FeatureHome::Source(_) if timing.is_none() => return None,
                FeatureHome::Source(s) if sources[s].time.is_none() => Some(format!(
                    "source `{}` has no time column, so its rows cannot be windowed",
                    sources[s].table
                )),
                FeatureHome::Source(_) => None,
            }
        };
        match problem {
            Some(why) => {
                self.push(
                    Diagnostic::new(Code::E026, why)
                        .at(path)
                        .hint("name the source's time column in `point_in_time.time_columns`, or drop `window`"),
                );
                None
            }
            None => Some(window),
        }
    }

    /// `W014` for each table of `time_columns` that no feature reads.
    fn report_unused_time_columns(&mut self, recipe: &FeatureRecipe, pit: &PointInTime) {
        for (name, _) in &pit.time_columns.0 {
            let Some(table) = self.catalog.table(name) else {
                continue;
            };
            let read = recipe.features.iter().any(|f| {
                self.catalog
                    .table(f.source_table.trim())
                    .is_some_and(|t| t.name == table.name)
            }) || [
                recipe.label.source_table.as_deref(),
                pit.schedule.as_ref().map(|s| s.source_table.as_str()),
            ]
            .into_iter()
            .flatten()
            .any(|name| {
                self.catalog
                    .table(name.trim())
                    .is_some_and(|t| t.name == table.name)
            }) || self
                .paths
                .values()
                .flatten()
                .any(|hop| hop.table == table.name)
                || recipe.derived_columns.iter().any(|d| {
                    self.catalog
                        .table(d.source_table.trim())
                        .is_some_and(|t| t.name == table.name)
                });
            if !read {
                self.push(
                    Diagnostic::new(
                        Code::W014,
                        format!(
                            "`point_in_time.time_columns` names `{name}`, which no feature reads"
                        ),
                    )
                    .at(RecipePath::PointInTime(Some(
                        PointInTimeField::TimeColumns(Some(name.clone())),
                    )))
                    .hint("remove it, or check the feature's `source_table` for a typo"),
                );
            }
        }
    }

    /// `W010` (an error in strict mode) when a feature of the label's table reads a column
    /// the label is computed from.
    fn report_leakage(
        &mut self,
        feature: &crate::contract::recipe::FeatureSpec,
        r: &Resolved,
        label_reads: &BTreeSet<String>,
        path: &RecipePath,
        strict: bool,
    ) {
        let leaked: Vec<&String> = r
            .reads
            .iter()
            .filter(|c| label_reads.contains(*c))
            .collect();
        if let Some(column) = leaked.first() {
            let span = r
                .facts
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(column))
                .and_then(|c| c.span);
            let mut d = Diagnostic::new(
                Code::W010,
                format!(
                    "possible label leakage: feature `{}` reads `{column}`, which the label is computed from",
                    feature.name
                ),
            )
            .at(path.clone())
            .with_span(span)
            .hint("a feature must not know the answer; drop it or read a column known before the label");
            if strict {
                d.severity = Severity::Error;
            }
            self.push(d);
        }
    }

    fn mixed_source(
        &mut self,
        recipe: &FeatureRecipe,
        resolved: &[Resolved],
        table: &str,
        path: &RecipePath,
    ) {
        let (aggregated, row_level): (Vec<&Resolved>, Vec<&Resolved>) = resolved
            .iter()
            .filter(|r| r.table.eq_ignore_ascii_case(table))
            .partition(|r| r.facts.aggregates);
        let name = |r: Option<&&Resolved>| {
            r.map(|r| recipe.features[r.index].name.clone())
                .unwrap_or_default()
        };
        self.push(
            Diagnostic::new(
                Code::E030,
                format!(
                    "source `{table}` mixes aggregate features (`{}`) with row-level features (`{}`); its CTE either groups by the grain or keeps every row",
                    name(aggregated.first()),
                    name(row_level.first())
                ),
            )
            .at(path.clone())
            .hint("aggregate the row-level feature (e.g. `MAX(col)`), or read it from a view that is unique on the grain"),
        );
    }

    /// The target table is `name` or `domain.name`: materialization writes
    /// `WAREHOUSE/DOMAIN/NAME`, so a third part would be dropped on the way.
    fn check_target(&mut self, target: &str) -> Option<Vec<String>> {
        let parts: Vec<String> = target.split('.').map(str::to_string).collect();
        let problem = if parts.len() > 2 {
            Some(format!(
                "has {} parts: a training table is `name` or `domain.name` (written to WAREHOUSE/DOMAIN/NAME)",
                parts.len()
            ))
        } else {
            parts.iter().find_map(|p| {
                name_problem(p).map(|why| format!("has a part `{}` that {why}", shown_name(p)))
            })
        };
        if let Some(why) = problem {
            self.push(
                Diagnostic::new(
                    Code::E003,
                    format!("target table `{}` {why}", shown_name(target)),
                )
                .at(RecipePath::Field("target_table".into()))
                .hint("use `name` or `domain.name` made of letters, digits and `_`"),
            );
            return None;
        }
        Some(parts)
    }

    /// Output names: portable, at most 128 characters, unique ignoring case; the grain non-empty.
    fn check_names(&mut self, recipe: &FeatureRecipe) {
        if recipe.entity_grain.is_empty() {
            self.push(
                Diagnostic::new(
                    Code::E002,
                    "`entity_grain` is empty: name the columns that identify one row",
                )
                .at(RecipePath::Field("entity_grain".into()))
                .hint("e.g. `[\"customer_id\"]`"),
            );
        }
        // Lower-cased name → the path that first used it.
        let mut seen: HashMap<String, String> = HashMap::new();
        let mut check = |me: &mut Self, name: &str, path: RecipePath, what: &str| {
            if let Some(reason) = name_problem(name) {
                me.push(
                    Diagnostic::new(
                        Code::E003,
                        format!("{what} name `{}` {reason}", shown_name(name)),
                    )
                    .at(path.clone()),
                );
                return;
            }
            let lower = name.to_ascii_lowercase();
            if let Some(first) = seen.get(&lower) {
                me.push(
                    Diagnostic::new(
                        Code::E004,
                        format!("output name `{name}` is already used by {first}"),
                    )
                    .at(path.clone())
                    .hint("output names must be unique, ignoring case"),
                );
            } else {
                seen.insert(lower, format!("`{path}`"));
            }
        };
        for (i, g) in recipe.entity_grain.iter().enumerate() {
            check(self, g, RecipePath::Grain(i), "grain column");
        }
        for (i, f) in recipe.features.iter().enumerate() {
            check(
                self,
                &f.name,
                RecipePath::feature(i, FeatureField::Name),
                "feature",
            );
        }
        check(
            self,
            &recipe.label.name,
            RecipePath::Label(LabelField::Name),
            "label",
        );
    }

    fn resolve_table(&mut self, name: &str, path: &RecipePath) -> Option<&'c Table> {
        let catalog = self.catalog;
        match catalog.table(name.trim()) {
            Some(table) => Some(table),
            None => {
                let names: Vec<&str> = catalog.tables().map(|t| t.name.as_str()).collect();
                let mut found = suggestions(name, names.iter().copied());
                // `orders` may live in a domain: suggest `retail.orders`.
                for t in catalog.tables() {
                    if let Some((_, bare)) = t.name.split_once('.')
                        && bare.eq_ignore_ascii_case(name)
                        && !found.contains(&t.name)
                    {
                        found.insert(0, t.name.clone());
                    }
                }
                let d = Diagnostic::new(
                    Code::E020,
                    format!("unknown table `{name}`: it is not in the catalog"),
                )
                .at(path.clone());
                self.push(d.suggest(Replaces::Name, name, found));
                None
            }
        }
    }

    /// A source holds the entity key, or reaches it through one shortest path of the
    /// recipe's relationships (recorded in `paths`); otherwise `E023` (or `E027` when
    /// several paths tie).
    fn reach_key(&mut self, table: &Table, key: &[String], links: &[Link], at: &RecipePath) {
        if links.is_empty() || relationships::holds(table, key) {
            self.check_grain_in(table, key, at);
            return;
        }
        match relationships::path(links, self.catalog, &table.name, key) {
            Ok(Some(hops)) => {
                self.paths.insert(table.name.to_ascii_lowercase(), hops);
            }
            Ok(None) => self.check_grain_in(table, key, at),
            Err(candidates) => self.push(
                Diagnostic::new(
                    Code::E027,
                    format!(
                        "source `{}` reaches ({}) by more than one path of the same length: {candidates}",
                        table.name,
                        key.join(", ")
                    ),
                )
                .at(at.clone())
                .hint("keep only the relationships of the path you mean"),
            ),
        }
    }

    fn check_grain_in(&mut self, table: &Table, grain: &[String], path: &RecipePath) {
        for g in grain {
            if table.column(g).is_none() {
                let hint = did_you_mean(&suggestions(
                    g,
                    table.columns.iter().map(|c| c.name.as_str()),
                ));
                self.push(
                    Diagnostic::new(
                        Code::E023,
                        format!("source `{}` has no grain column `{g}`: every source must carry the whole grain", table.name),
                    )
                    .at(path.clone())
                    .hints(hint)
                    .hint("declare how it reaches the grain in `relationships` (`{\"child\": \"t.fk\", \"parent\": \"p.key\"}`), or give it a view in the catalog (a `.sql` file selecting the grain)"),
                );
            }
        }
    }

    /// Checks a feature's expression: forbidden constructs, columns, aggregate mixing.
    fn resolve_expr(
        &mut self,
        index: usize,
        table: &Table,
        mut expr: Expr,
        grain: &[String],
        path: &RecipePath,
    ) -> Option<(Resolved, Expr)> {
        let found = self.resolve_fragment(table, &mut expr, grain, path, Role::Feature)?;
        let resolved = Resolved {
            index,
            table: table.name.clone(),
            facts: found.facts,
            bare_non_grain: found.bare_non_grain,
            reads: found.reads,
            reads_cutoff: found.reads_cutoff,
        };
        Some((resolved, expr))
    }

    /// Checks a fragment (a feature's expression or the label's derivation) against its
    /// table: forbidden constructs, calls that change between runs, each column (unknown
    /// ones reported as the role says), and an aggregate mixed with a bare column. On
    /// success the columns are rewritten to the catalog's spelling.
    fn resolve_fragment(
        &mut self,
        table: &Table,
        expr: &mut Expr,
        grain: &[String],
        path: &RecipePath,
        role: Role,
    ) -> Option<FragmentColumns> {
        let facts = fragment::inspect(expr);
        self.report_non_deterministic(&facts, path);
        let mut ok = self.report_forbidden(&facts, path);
        let mut bare_non_grain = Vec::new();
        let mut reads = BTreeSet::new();
        // The row's cutoff, read by name where the table has no column of that name.
        let cutoff = match role {
            Role::Feature => self.feature_cutoff.clone(),
            Role::Label => None,
        };
        let is_cutoff = |column: &ColumnRef| {
            column.qualifier.is_none()
                && table.column(&column.name).is_none()
                && cutoff
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&column.name))
        };
        let mut reads_cutoff = false;
        for column in &facts.columns {
            if is_cutoff(column) {
                reads_cutoff = true;
                continue;
            }
            let found = match role {
                Role::Feature => self.resolve_column(table, column, path),
                Role::Label => self.resolve_label_column(table, column, path),
            };
            match found {
                Some(name) => {
                    let is_grain = grain.iter().any(|g| g.eq_ignore_ascii_case(&name));
                    if !column.in_aggregate && !is_grain && !bare_non_grain.contains(&name) {
                        bare_non_grain.push(name.clone());
                    }
                    reads.insert(name);
                }
                None => ok = false,
            }
        }
        if facts.aggregates
            && let Some(first) = bare_non_grain.first()
        {
            let span = facts
                .columns
                .iter()
                .find(|c| !c.in_aggregate && c.name.eq_ignore_ascii_case(first))
                .and_then(|c| c.span);
            let what = match role {
                Role::Feature => "an aggregate expression; the source is grouped by the grain",
                Role::Label => "an aggregate label",
            };
            self.push(
                Diagnostic::new(
                    Code::E030,
                    format!("`{first}` is read outside any aggregate in {what}"),
                )
                .at(path.clone())
                .with_span(span)
                .hint(format!("wrap it in an aggregate, e.g. `MAX({first})`")),
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        fragment::rewrite_columns(expr, |qualifier, ident| {
            table
                .column(&ident.value)
                .map(|c| c.name.clone())
                .or_else(|| {
                    cutoff
                        .clone()
                        .filter(|c| qualifier.is_none() && c.eq_ignore_ascii_case(&ident.value))
                })
        });
        Some(FragmentColumns {
            facts,
            reads,
            bare_non_grain,
            reads_cutoff,
        })
    }

    /// A column the label reads must be in the label's table (`E031`).
    fn resolve_label_column(
        &mut self,
        table: &Table,
        column: &ColumnRef,
        path: &RecipePath,
    ) -> Option<String> {
        if let Some(found) = lookup(table, column) {
            return Some(found.name.clone());
        }
        let elsewhere = self.tables_with_column(&column.name);
        let mut d = Diagnostic::new(
            Code::E031,
            format!(
                "the label reads `{}`, which is not a column of the label's table `{}`",
                column.name, table.name
            ),
        )
        .at(path.clone())
        .with_span(column.span)
        .suggest(
            Replaces::Name,
            &column.name,
            suggestions(&column.name, table.columns.iter().map(|c| c.name.as_str())),
        );
        if !elsewhere.is_empty() {
            d = d.hint(format!(
                "`{}` is in {}; the label comes from one table: derive it in a view, or qualify `label.column`",
                column.name,
                elsewhere.join(", ")
            ));
        }
        self.push(d);
        None
    }

    /// `W013` for each call whose value changes from run to run.
    fn report_non_deterministic(&mut self, facts: &FragmentFacts, path: &RecipePath) {
        for (name, span) in &facts.non_deterministic {
            self.push(
                Diagnostic::new(
                    Code::W013,
                    format!("`{name}` changes from one run to the next: the table cannot be reproduced, and validation sees other values than materialization"),
                )
                .at(path.clone())
                .with_span(*span)
                .hint("compare with a fixed date, or a cutoff column of the spine (point-in-time recipes), instead of the clock"),
            );
        }
    }

    fn report_forbidden(&mut self, facts: &FragmentFacts, path: &RecipePath) -> bool {
        for forbidden in &facts.forbidden {
            self.push(
                Diagnostic::new(
                    Code::E012,
                    format!("{} is not allowed in a recipe fragment", forbidden.what),
                )
                .at(path.clone())
                .with_span(forbidden.span)
                .hint(forbidden.hint),
            );
        }
        facts.forbidden.is_empty()
    }

    /// Resolves one column reference against `table`; reports E021 when it is not there.
    fn resolve_column(
        &mut self,
        table: &Table,
        column: &ColumnRef,
        path: &RecipePath,
    ) -> Option<String> {
        if let Some(qualifier) = &column.qualifier {
            let bare_table = table.name.rsplit('.').next().unwrap_or(&table.name);
            if !qualifier.eq_ignore_ascii_case(&table.name)
                && !qualifier.eq_ignore_ascii_case(bare_table)
            {
                self.push(
                    Diagnostic::new(
                        Code::E021,
                        format!("`{qualifier}.{}` reads table `{qualifier}`, but this fragment reads only `{}`", column.name, table.name),
                    )
                    .at(path.clone())
                    .with_span(column.span)
                    .hint(format!("write `{}` alone, or read it through a view that joins the tables", column.name)),
                );
                return None;
            }
        }
        let found = lookup(table, column);
        if let Some(found) = found {
            return Some(found.name.clone());
        }
        let mut d = Diagnostic::new(
            Code::E021,
            format!("unknown column `{}` in table `{}`", column.name, table.name),
        )
        .at(path.clone())
        .with_span(column.span)
        .suggest(
            Replaces::Name,
            &column.name,
            suggestions(&column.name, table.columns.iter().map(|c| c.name.as_str())),
        );
        let elsewhere = self.tables_with_column(&column.name);
        if !elsewhere.is_empty() {
            d = d.hint(format!(
                "`{}` exists in {}",
                column.name,
                elsewhere.join(", ")
            ));
        }
        self.push(d);
        None
    }

    /// Finds the spine and checks the label. Returns (table, expression, grouped, columns the label reads).
    fn plan_label(
        &mut self,
        recipe: &FeatureRecipe,
        features: &[Resolved],
    ) -> Option<(String, Expr, bool, BTreeSet<String>)> {
        let label = &recipe.label;
        let grain = &recipe.entity_grain;
        let column_ref = match &label.column {
            Some(text) => Some(self.parse_label_column(text)?),
            None => None,
        };
        let derivation = match &label.derivation {
            Some(text) => Some((
                fragment::parse_fragment(text, RecipePath::Label(LabelField::Derivation))
                    .map_err(|d| self.push(d))
                    .ok()?,
                RecipePath::Label(LabelField::Derivation),
            )),
            None => None,
        };

        // Which table?
        let table: &Table = match &column_ref {
            Some((Some(qualifier), column)) => {
                let table =
                    self.resolve_table(qualifier, &RecipePath::Label(LabelField::Column))?;
                if table.column(column).is_none() {
                    self.push(
                        Diagnostic::new(
                            Code::E021,
                            format!("unknown column `{column}` in table `{}`", table.name),
                        )
                        .at(RecipePath::Label(LabelField::Column))
                        .suggest(
                            Replaces::Name,
                            column,
                            suggestions(column, table.columns.iter().map(|c| c.name.as_str())),
                        ),
                    );
                    return None;
                }
                table
            }
            _ => {
                let needed: Vec<String> = match (&column_ref, &derivation) {
                    (Some((None, column)), _) => vec![column.clone()],
                    (None, Some((expr, _))) => fragment::inspect(expr)
                        .columns
                        .into_iter()
                        .map(|c| c.name)
                        .collect(),
                    _ => Vec::new(),
                };
                self.find_label_table(&needed, grain, features, recipe)?
            }
        };
        let table_path = if label.column.is_some() {
            RecipePath::Label(LabelField::Column)
        } else {
            RecipePath::Label(LabelField::Derivation)
        };
        if grain.iter().any(|g| table.column(g).is_none()) {
            self.check_grain_in(table, grain, &table_path);
            return None;
        }

        let mut reads = BTreeSet::new();
        if let Some((_, column)) = &column_ref
            && let Some(c) = table.column(column)
        {
            reads.insert(c.name.clone());
        }
        let (mut expr, path) = match derivation {
            Some(d) => d,
            None => {
                let (_, column) = column_ref?;
                (
                    Expr::Identifier(Ident::new(column)),
                    RecipePath::Label(LabelField::Column),
                )
            }
        };
        let found = self.resolve_fragment(table, &mut expr, grain, &path, Role::Label)?;
        reads.extend(found.reads);
        let expr = crate::compile::infer::make_portable(expr, table);
        Some((table.name.clone(), expr, found.facts.aggregates, reads))
    }

    /// The spine of a windowed label read from a spine table: `label.column` written
    /// `table.column` names it; otherwise it is the one table holding the grain (the
    /// recipe's sources first, then the catalog). Its rows are the cutoffs; the label comes
    /// from their future, so the spine's columns are not the label's.
    fn plan_windowed_spine(
        &mut self,
        recipe: &FeatureRecipe,
        features: &[Resolved],
    ) -> Option<(String, Expr, bool, BTreeSet<String>)> {
        let grain = &recipe.entity_grain;
        let table: &Table = match &recipe.label.column {
            Some(text) => match self.parse_label_column(text)? {
                (Some(qualifier), _) => {
                    self.resolve_table(&qualifier, &RecipePath::Label(LabelField::Column))?
                }
                (None, column) => self.find_label_table(&[column], grain, features, recipe)?,
            },
            None => self.find_label_table(&[], grain, features, recipe)?,
        };
        if grain.iter().any(|g| table.column(g).is_none()) {
            self.check_grain_in(table, grain, &RecipePath::Label(LabelField::Column));
            return None;
        }
        let placeholder = Expr::Identifier(Ident::new(recipe.label.name.clone()));
        Some((table.name.clone(), placeholder, false, BTreeSet::new()))
    }

    /// Up to three tables that have a column of this name, quoted for a hint.
    fn tables_with_column(&self, name: &str) -> Vec<String> {
        self.catalog
            .tables()
            .filter(|t| t.column(name).is_some())
            .map(|t| format!("`{}`", t.name))
            .take(3)
            .collect()
    }

    /// Parses `label.column` as `column` or `table.column` (`domain.table.column`).
    fn parse_label_column(&mut self, text: &str) -> Option<(Option<String>, String)> {
        let expr = fragment::parse_fragment(text, RecipePath::Label(LabelField::Column))
            .map_err(|d| self.push(d))
            .ok()?;
        match expr {
            Expr::Identifier(ident) => Some((None, ident.value)),
            Expr::CompoundIdentifier(mut parts) if parts.len() <= 3 => {
                let column = parts.pop()?.value;
                let table = parts
                    .into_iter()
                    .map(|p| p.value)
                    .collect::<Vec<_>>()
                    .join(".");
                Some((Some(table), column))
            }
            _ => {
                self.push(
                    Diagnostic::new(Code::E001, format!("`label.column` must name a column (`column` or `table.column`), found `{text}`"))
                        .at(RecipePath::Label(LabelField::Column))
                        .hint("put an expression in `label.derivation`"),
                );
                None
            }
        }
    }

    /// The one table holding `columns` and the grain: the recipe's sources first, then the catalog.
    fn find_label_table(
        &mut self,
        columns: &[String],
        grain: &[String],
        features: &[Resolved],
        recipe: &FeatureRecipe,
    ) -> Option<&'c Table> {
        let catalog: &'c Catalog = self.catalog;
        let fits = |t: &Table| columns.iter().chain(grain).all(|c| t.column(c).is_some());
        let mut from_recipe: Vec<&Table> = Vec::new();
        for r in features {
            if let Some(t) = catalog.table(&r.table)
                && fits(t)
                && !from_recipe.iter().any(|x| x.name == t.name)
            {
                from_recipe.push(t);
            }
        }
        let candidates: Vec<&Table> = if from_recipe.is_empty() {
            catalog.tables().filter(|t| fits(t)).collect()
        } else {
            from_recipe
        };
        let path = if recipe.label.column.is_some() {
            RecipePath::Label(LabelField::Column)
        } else {
            RecipePath::Label(LabelField::Derivation)
        };
        let wanted = columns
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match candidates.as_slice() {
            [one] => Some(*one),
            [] => {
                let hint = columns.first().and_then(|c| {
                    let names: BTreeSet<&str> = catalog
                        .tables()
                        .flat_map(|t| t.columns.iter().map(|c| c.name.as_str()))
                        .collect();
                    did_you_mean(&suggestions(c, names))
                });
                self.push(
                    Diagnostic::new(
                        Code::E022,
                        format!(
                            "no table has the label's column(s) {wanted} together with the grain"
                        ),
                    )
                    .at(path.clone())
                    .hints(hint),
                );
                None
            }
            many => {
                let names: Vec<String> = many.iter().map(|t| format!("`{}`", t.name)).collect();
                self.push(
                    Diagnostic::new(
                        Code::E022,
                        format!(
                            "the label's table is ambiguous: {} all have {wanted} and the grain",
                            names.join(", ")
                        ),
                    )
                    .at(path.clone())
                    .hint(format!(
                        "qualify it, e.g. `{}.{}`",
                        many[0].name,
                        columns.first().cloned().unwrap_or_default()
                    )),
                );
                None
            }
        }
    }

    /// W011: the declared `data_type` against the expression's type, where the catalog tells it.
    fn check_declared_type(&mut self, declared: &str, expr: &Expr, table: &Table, index: usize) {
        let path = RecipePath::feature(index, FeatureField::DataType);
        let Some(declared_type) = parse_type_name(declared) else {
            self.push(
                Diagnostic::new(Code::W011, format!("unknown data_type `{declared}`; it cannot be checked"))
                    .at(path.clone())
                    .hint("use int64, float64, string, bool, date, timestamp, decimal(p,s) or a common SQL spelling"),
            );
            return;
        };
        let Some(family) = crate::compile::infer::family_of(expr, table) else {
            return;
        };
        let declared_family = TypeFamily::of(&declared_type);
        if family != declared_family && family != TypeFamily::Other {
            self.push(
                Diagnostic::new(
                    Code::W011,
                    format!(
                        "declared data_type `{declared}` ({}) but the expression is {}",
                        declared_family.name(),
                        family.name()
                    ),
                )
                .at(path.clone()),
            );
        }
    }
}

/// The column a reference names: quoted names match exactly, bare ones ignoring case; a
/// qualifier must name the table itself.
fn lookup<'t>(table: &'t Table, column: &ColumnRef) -> Option<&'t crate::catalog::Column> {
    let bare_table = table.name.rsplit('.').next().unwrap_or(&table.name);
    let qualifier_ok = column
        .qualifier
        .as_ref()
        .is_none_or(|q| q.eq_ignore_ascii_case(&table.name) || q.eq_ignore_ascii_case(bare_table));
    if !qualifier_ok {
        return None;
    }
    if column.quoted {
        table.columns.iter().find(|c| c.name == column.name)
    } else {
        table.column(&column.name)
    }
}

/// The checked point-in-time facts: the plan's, and each listed table's time column
/// (`None` for a table declared static), by lower-case table name.
struct Timing {
    plan: PlanTime,
    tables: Vec<(String, Option<SourceTime>)>,
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

/// The columns of `table` that break ties between rows at the same `time` (as-of values):
/// all but the entity key and the time, in catalog order, of types every engine orders alike.
fn tie_break(table: &Table, time: &str, key: &[String]) -> Vec<TieColumn> {
    use crate::types::TypeFamily as F;
    table
        .columns
        .iter()
        .filter(|c| c.name != time && !key.iter().any(|k| k.eq_ignore_ascii_case(&c.name)))
        .filter_map(|c| match F::of(&c.data_type) {
            F::Other => None,
            family => Some(TieColumn {
                name: c.name.clone(),
                is_string: family == F::String,
            }),
        })
        .collect()
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

/// The spine CTE's name; source CTEs are named `src_…`, so they never clash with it.
pub const SPINE_CTE: &str = "spine";

fn cte_name(table: &str, taken: &[Source]) -> String {
    let base = format!("src_{}", table.replace('.', "_").to_ascii_lowercase());
    crate::sql::fresh_name(&base, |key| {
        taken.iter().any(|s| s.cte_name.eq_ignore_ascii_case(key))
    })
}

fn label_path(recipe: &FeatureRecipe) -> RecipePath {
    if recipe.label.expression.is_some() {
        RecipePath::Label(LabelField::Expression)
    } else if recipe.label.derivation.is_some() {
        RecipePath::Label(LabelField::Derivation)
    } else {
        RecipePath::Label(LabelField::Column)
    }
}

/// Why `name` cannot be an output column, table or domain name, if it cannot: it must be
/// portable and at most [`MAX_NAME_CHARS`] long. The one rule for recipes, jobs and the
/// warehouse folders materialization writes.
pub fn name_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        Some("is empty".to_string())
    } else if name.len() > MAX_NAME_CHARS {
        Some(format!(
            "is {} characters long; the limit is {MAX_NAME_CHARS}",
            name.chars().count()
        ))
    } else if !is_portable(name) {
        Some(
            "is not a portable identifier (letters, digits and `_`, not starting with a digit)"
                .to_string(),
        )
    } else {
        None
    }
}

/// A name for a message: cut to 64 characters, so a 5000-character name stays readable.
pub fn shown_name(name: &str) -> String {
    if name.chars().count() > 64 {
        format!("{}…", name.chars().take(64).collect::<String>())
    } else {
        name.to_string()
    }
}

/// `[A-Za-z_][A-Za-z0-9_]*`: a name every supported warehouse accepts.
pub fn is_portable(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
