//! Propose: profiles the catalog's tables and proposes features from them, before any
//! check (Deep Feature Synthesis at depth 1, and depth 2 through a parent's children).
//! Deterministic for a catalog: the profile reads the first rows on one partition.

use super::column::{
    Category, DesignWindow, Since, aggregated, as_of_worthy, days_since, feature, identifier_like,
    key_category, row_value,
};
use super::names::{Names, column_expr, sanitize};
use super::options::DesignOptions;
use super::profile::{ColumnProfile, profile};
use super::relationships::discover;
use super::stacked::{self, ChildColumn, Primitive, Primitives, count_star};
use crate::catalog::{Catalog, Column, Table};
use crate::compile::dialect::Dialect;
use crate::compile::fragment::{inspect, parse_fragment};
use crate::compile::relationships::{Hop, Link};
use crate::contract::design::DesignRequest;
use crate::contract::recipe::{DerivedColumn, FeatureSpec, LabelSpec, PointInTime, Relationship};
use crate::diagnostic::{
    Code, Diagnostic, LabelField, PointInTimeField, RecipePath, did_you_mean, suggestions,
};
use crate::types::TypeFamily;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;
use sqlparser::ast::Expr;
use std::collections::BTreeMap;

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
    // One partition: a `LIMIT` over a view that joins then gives the same first rows on
    // every run and machine (several partitions race to fill it), so the profile, and the
    // design, is the same whatever the thread count.
    let one_partition = crate::run::sample::ValidateOptions {
        target_partitions: 1,
        ..options.run.validate.clone()
    };
    let mut proposer = Proposer {
        catalog,
        options,
        pit,
        // A schedule generates the rows: its source is read like any timed table.
        generated: pit.is_some_and(|p| p.schedule.is_some()),
        // Sources join on the entity key: the grain without the cutoff in a point-in-time
        // design.
        key: grain
            .iter()
            .filter(|g| pit.is_none_or(|p| !g.eq_ignore_ascii_case(&p.cutoff_column)))
            .cloned()
            .collect(),
        grain,
        spine,
        label_columns,
        windows,
        primitives,
        ctx: crate::run::sample::session(catalog, &one_partition)
            .await
            .map_err(|d| vec![d])?,
        profiles: BTreeMap::new(),
        proposal: Proposal::default(),
        names: Names::default(),
    };
    proposer.profile_tables().await?;
    let links = proposer.links(&request.relationships)?;
    let tables = proposer.reachable(&links);
    let children = if depth >= 2 {
        proposer.stackable(&tables, &links)
    } else {
        Vec::new()
    };
    for (table, hops) in tables {
        proposer.table_features(table, &hops).await?;
    }
    for (parent, child, link) in children {
        proposer.stacked_features(parent, child, link);
    }
    Ok(proposer.proposal)
}

/// What the proposal is built from: the request read once, the profiles, and what has been
/// proposed so far.
struct Proposer<'c> {
    catalog: &'c Catalog,
    options: &'c DesignOptions,
    pit: Option<&'c PointInTime>,
    /// A schedule generates the spine's rows.
    generated: bool,
    spine: &'c Table,
    /// The grain as the spine spells it.
    grain: Vec<String>,
    /// The entity key sources join on: the grain without the cutoff.
    key: Vec<String>,
    /// The columns the label reads: never features.
    label_columns: Vec<String>,
    windows: Vec<DesignWindow>,
    primitives: Primitives,
    /// A one-partition session over the catalog, for profiling.
    ctx: SessionContext,
    profiles: BTreeMap<String, Vec<ColumnProfile>>,
    proposal: Proposal,
    names: Names,
}

impl<'c> Proposer<'c> {
    fn holds_key(&self, table: &Table) -> bool {
        self.key.iter().all(|g| table.column(g).is_some())
    }

    /// Profiles every table. A table the crew would read must profile; any other only
    /// feeds discovery.
    async fn profile_tables(&mut self) -> Result<(), Vec<Diagnostic>> {
        let options = self.options;
        for table in self.catalog.tables() {
            match profile(&self.ctx, table, options.profile_rows, options.top_values).await {
                Ok(p) => {
                    self.profiles.insert(table.name.clone(), p);
                }
                Err(d) if table.name == self.spine.name || self.holds_key(table) => {
                    return Err(vec![d]);
                }
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// The links between tables: those the request declares (a declared relationship that
    /// does not hold is the request's error, at its path) and those discovered from the
    /// profiles; ambiguous ones are noted, not used.
    fn links(&mut self, declared: &[Relationship]) -> Result<Vec<Link>, Vec<Diagnostic>> {
        let mut problems = Vec::new();
        crate::compile::relationships::check(declared, self.catalog, &mut problems);
        if !problems.is_empty() {
            return Err(problems
                .into_iter()
                .map(|d| match d.path.as_deref().cloned() {
                    Some(at) => d.at(RecipePath::design(at)),
                    None => d,
                })
                .collect());
        }
        let found = discover(self.catalog, &self.profiles, declared);
        let links = crate::compile::relationships::check(&found.links, self.catalog, &mut problems);
        for (child, parents) in &found.ambiguous {
            self.proposal.relationships.push(format!(
                "{child} could point at {}: ambiguous, not used",
                parents.join(" or ")
            ));
        }
        Ok(links)
    }

    /// The tables the crew reads, each with its join path to the entity key: the spine,
    /// every table holding the key (no path), and every table with one path to it.
    fn reachable(&mut self, links: &[Link]) -> Vec<(&'c Table, Vec<Hop>)> {
        let mut tables: Vec<(&Table, Vec<Hop>)> = vec![(self.spine, Vec::new())];
        for table in self.catalog.tables().filter(|t| t.name != self.spine.name) {
            if self.holds_key(table) {
                tables.push((table, Vec::new()));
                continue;
            }
            match crate::compile::relationships::path(links, self.catalog, &table.name, &self.key) {
                Ok(Some(hops)) => tables.push((table, hops)),
                Ok(None) => {}
                Err(candidates) => self.proposal.left_out.push((
                    table.name.clone(),
                    format!("reaches the grain by several paths ({candidates})"),
                )),
            }
        }
        tables
    }

    /// A table the entity aggregates that is itself the parent of another table: its rows
    /// aggregate their children first (depth 2). Point in time: the parent's rows each
    /// aggregate their children as of the cutoff, so the parent needs its own time and
    /// the child a declared one.
    fn stackable<'l>(
        &mut self,
        tables: &[(&'c Table, Vec<Hop>)],
        links: &'l [Link],
    ) -> Vec<(&'c Table, &'c Table, &'l Link)>
    where
        'c: 'l,
    {
        let mut children = Vec::new();
        for (parent, hops) in tables.iter().filter(|(t, _)| t.name != self.spine.name) {
            for link in links.iter().filter(|l| {
                l.parent_table == parent.name
                    && l.child_table != self.spine.name
                    && l.child_table != parent.name
            }) {
                let Some(child) = self.catalog.table(&link.child_table) else {
                    continue;
                };
                let why_not = self.pit.and_then(|p| {
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
                    None => children.push((*parent, child, link)),
                    Some(why) => self.proposal.left_out.push((
                        format!("{} per {} row", child.name, parent.name),
                        format!("not stacked: {why}"),
                    )),
                }
            }
        }
        children
    }

    /// How a point-in-time design reads `table`; `None` (and a note) when it cannot.
    fn timing(&mut self, table: &Table, hops: &[Hop], on_spine: bool) -> Option<Timing> {
        let Some(p) = self.pit.filter(|_| !on_spine) else {
            return Some(Timing::Static);
        };
        // A table reached through a timed table (an order item through its order) is
        // bounded by it.
        let hop_timed = hops
            .iter()
            .any(|h| matches!(p.time_columns.get(&h.table), Some(Some(_))));
        match p.time_columns.get(&table.name) {
            Some(Some(column)) => Some(Timing::Timed(column.to_string())),
            Some(None) | None if hop_timed => Some(Timing::Bounded),
            Some(None) => Some(Timing::Static),
            None => {
                self.proposal.left_out.push((
                    table.name.clone(),
                    "not in point_in_time.time_columns, so not bounded by the cutoff".into(),
                ));
                None
            }
        }
    }

    /// The features of one table: the spine's row-level values, a one-row-per-entity
    /// table's values, or aggregates per entity (over each window, and as-of values of
    /// timed tables).
    async fn table_features(
        &mut self,
        table: &'c Table,
        hops: &[Hop],
    ) -> Result<(), Vec<Diagnostic>> {
        let on_spine = table.name == self.spine.name && !self.generated;
        if !hops.is_empty() {
            self.proposal.relationships.push(format!(
                "{} joined through {}",
                table.name,
                crate::compile::relationships::describe(&table.name, hops)
            ));
            self.proposal
                .paths
                .insert(table.name.clone(), path_relationships(&table.name, hops));
        }
        let Some(timing) = self.timing(table, hops, on_spine) else {
            return Ok(());
        };
        let Some(profiles) = self.profiles.get(&table.name).cloned() else {
            return Ok(());
        };
        // A static table with one row per entity (a profile table) gives that row's
        // values, never aggregates of one row.
        let one_row = !on_spine
            && hops.is_empty()
            && matches!(timing, Timing::Static)
            && one_row_per_entity(&self.ctx, table, &self.key, self.options.profile_rows).await?;
        let read = TableRead {
            table,
            on_spine,
            one_row,
            through_path: !hops.is_empty(),
            windows: match timing {
                Timing::Timed(_) | Timing::Bounded => self.windows.clone(),
                Timing::Static => Vec::new(),
            },
            timing,
        };
        if !on_spine && !one_row && self.primitives.has(Primitive::Count) {
            let short = sanitize(&table.name);
            for window in read.spans() {
                self.propose(
                    format!("count_{short}"),
                    count_star(),
                    table,
                    format!("rows in {} per entity", table.name),
                    window,
                );
            }
        }
        for (column, profile) in table.columns.iter().zip(&profiles) {
            if let Err(why) = self.column_features(&read, column, profile).await? {
                self.proposal
                    .left_out
                    .push((format!("{}.{}", table.name, column.name), why));
            }
        }
        Ok(())
    }

    /// The features of one column of a table the crew reads, or why it gives none.
    async fn column_features(
        &mut self,
        read: &TableRead<'c>,
        column: &Column,
        profile: &ColumnProfile,
    ) -> Result<Result<(), String>, Vec<Diagnostic>> {
        let table = read.table;
        let options = self.options;
        if self
            .grain
            .iter()
            .any(|g| g.eq_ignore_ascii_case(&column.name))
        {
            return Ok(if read.on_spine {
                Err("grain column".into())
            } else {
                Ok(())
            });
        }
        if self
            .label_columns
            .iter()
            .any(|l| l.eq_ignore_ascii_case(&column.name))
        {
            return Ok(Err("read by the label".into()));
        }
        let family = TypeFamily::of(&column.data_type);
        if let Some(why) = identifier_like(&column.name, family, profile, options) {
            return Ok(Err(why));
        }
        // Times are recency, not calendar time: days to the row's cutoff (point in
        // time: the spine's row and timed tables) or to the latest time in the data.
        let since = match (family, self.pit) {
            (TypeFamily::Date | TypeFamily::Timestamp, None) => {
                latest_date(&self.ctx, table, &column.name)
                    .await?
                    .map(Since::Latest)
            }
            (TypeFamily::Date | TypeFamily::Timestamp, Some(p))
                if read.on_spine || matches!(read.timing, Timing::Timed(_)) =>
            {
                Some(Since::Cutoff(p.cutoff_column.trim().to_string()))
            }
            _ => None,
        };
        if read.on_spine {
            return Ok(self.spine_feature(table, column, family, since.as_ref()));
        }
        if self.pit.is_some()
            && matches!(read.timing, Timing::Static | Timing::Bounded)
            && matches!(family, TypeFamily::Date | TypeFamily::Timestamp)
        {
            return Ok(Err(
                "a time in a static table may lie after the cutoff".into()
            ));
        }
        let kind = if key_category(&column.name, family, profile, options) {
            Category::Key
        } else {
            Category::Of(family)
        };
        if read.one_row {
            let (name, expr, description) =
                match row_value(table, column, profile, kind, since.as_ref(), options) {
                    Ok(value) => value,
                    Err(why) => return Ok(Err(why)),
                };
            self.propose(name, expr, table, description, None);
            return Ok(Ok(()));
        }
        Ok(self.aggregate_features(read, column, profile, kind, since.as_ref()))
    }

    /// A column of the spine's own row: its value, or a time as recency.
    fn spine_feature(
        &mut self,
        table: &Table,
        column: &Column,
        family: TypeFamily,
        since: Option<&Since>,
    ) -> Result<(), String> {
        if family == TypeFamily::Other {
            return Err(format!("type {} is not a feature type", column.data_type));
        }
        let c = column_expr(&column.name);
        let cname = sanitize(&column.name);
        let (name, expr, description) = match since {
            Some(since) => (
                format!("days_since_{cname}"),
                days_since(since, c),
                format!("days from the entity's {} {}", column.name, since.to()),
            ),
            None => (cname, c, format!("{} of the entity", column.name)),
        };
        self.propose(name, expr, table, description, None);
        Ok(())
    }

    /// A column aggregated per entity (over all history and each window), and, in a timed
    /// table the entity reaches directly, its value in the latest row before the cutoff.
    fn aggregate_features(
        &mut self,
        read: &TableRead<'c>,
        column: &Column,
        profile: &ColumnProfile,
        kind: Category,
        since: Option<&Since>,
    ) -> Result<(), String> {
        let table = read.table;
        let options = self.options;
        let family = TypeFamily::of(&column.data_type);
        let aggregates = aggregated(
            table,
            column,
            profile,
            kind,
            &self.primitives,
            since,
            options,
        );
        let outcome = match aggregates {
            Ok(proposed) => {
                for window in read.spans() {
                    for (name, expr, description) in &proposed {
                        self.propose(
                            name.clone(),
                            expr.clone(),
                            table,
                            description.clone(),
                            window,
                        );
                    }
                }
                Ok(())
            }
            Err(why) => Err(why),
        };
        // As-of values read one row per entity: not through a path, where an entity
        // has many rows.
        if let Timing::Timed(time) = &read.timing
            && !read.through_path
            && !column.name.eq_ignore_ascii_case(time)
            && as_of_worthy(family, profile, options)
        {
            self.propose(
                format!("last_{}_{}", sanitize(&table.name), sanitize(&column.name)),
                column_expr(&column.name),
                table,
                format!(
                    "{} in the entity's latest {} row before the cutoff",
                    column.name, table.name
                ),
                None,
            );
        }
        outcome
    }

    /// The depth-2 features of `parent` from `child`: each child value (derived column)
    /// aggregated per parent row, then per entity.
    fn stacked_features(&mut self, parent: &Table, child: &Table, link: &Link) {
        let Some(child_profiles) = self.profiles.get(&child.name) else {
            return;
        };
        let options = self.options;
        let mut columns = Vec::new();
        for (column, profile) in child.columns.iter().zip(child_profiles) {
            let family = TypeFamily::of(&column.data_type);
            let skipped = column.name == link.child_column
                || self
                    .key
                    .iter()
                    .any(|g| g.eq_ignore_ascii_case(&column.name))
                || self
                    .label_columns
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
        for value in stacked::child_values(&child.name, &columns, &self.primitives) {
            let Ok(expression) =
                crate::compile::print::expression_text(&value.expr, Dialect::Generic)
            else {
                continue;
            };
            let name = taken.claim(value.name.clone());
            let index = self.proposal.derived.len();
            self.proposal.derived.push((
                DerivedColumn {
                    table: parent.name.clone(),
                    name: name.clone(),
                    source_table: child.name.clone(),
                    expression,
                },
                relationship.clone(),
            ));
            for (feature_name, expr, description) in
                stacked::stacked_features(&parent.name, &value, &name, &self.primitives)
            {
                if let Some(f) = feature(
                    &mut self.names,
                    feature_name,
                    expr,
                    parent,
                    description,
                    None,
                ) {
                    self.proposal.uses.insert(f.name.clone(), index);
                    self.proposal.features.push(f);
                    stacked_here += 1;
                }
            }
        }
        if stacked_here > 0 {
            self.proposal.relationships.push(format!(
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

    /// Adds a feature with a unique name (none for a value no SQL string can hold).
    fn propose(
        &mut self,
        name: String,
        expr: Expr,
        table: &Table,
        description: String,
        window: Option<&DesignWindow>,
    ) {
        let proposed = feature(&mut self.names, name, expr, table, description, window);
        self.proposal.features.extend(proposed);
    }
}

/// How the crew reads one table: where it sits and over which windows.
struct TableRead<'c> {
    table: &'c Table,
    /// The spine's own row (not a schedule's source): row-level values.
    on_spine: bool,
    /// A static table with one row per entity: that row's values.
    one_row: bool,
    /// Reached through a join path: an entity has many rows, so no as-of values.
    through_path: bool,
    timing: Timing,
    /// The windows its aggregates are computed over, besides all history.
    windows: Vec<DesignWindow>,
}

impl TableRead<'_> {
    /// All history, then each window.
    fn spans(&self) -> impl Iterator<Item = Option<&DesignWindow>> + '_ {
        std::iter::once(None).chain(self.windows.iter().map(Some))
    }
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
        let names = catalog.tables().map(|t| t.name.as_str());
        vec![
            Diagnostic::new(Code::E020, format!("unknown spine table `{name}`"))
                .at(RecipePath::design(at))
                .hints(did_you_mean(&suggestions(name, names))),
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

/// Whether no two rows of a table share the entity key: the profiled rows first (a table
/// of events repeats its keys there), then, only if they do not, the whole table's keys.
async fn one_row_per_entity(
    ctx: &SessionContext,
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
    ctx: &SessionContext,
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
