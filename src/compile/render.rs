//! Rendering: a [`Plan`] becomes a sqlparser AST, then text.
//!
//! No user text is pasted into SQL: names become quoted identifiers, fragments are the ASTs
//! the analyzer resolved, adjusted for the dialect (quoting, cast type names) from its row
//! of the capability table. A construct the dialect cannot express is an `E040` error.
//! The printed statement is pretty, deterministic, and parses back in its dialect to the
//! same AST (a test invariant).
//!
//! Shape of the query:
//! ```sql
//! CREATE TABLE "target" AS
//! WITH "spine" AS (SELECT grain, row-level features, label FROM label_table [GROUP BY grain]),
//!      "src_orders" AS (SELECT grain, features FROM orders [GROUP BY grain]), …
//! SELECT spine.grain, features in recipe order, spine.label
//! FROM "spine" LEFT JOIN "src_orders" ON spine.grain = src_orders.grain …
//! ```

use crate::compile::adapt::adapt;
use crate::compile::analyze::{FeatureHome, Plan, Source};
use crate::compile::ast::{
    aliased, aliased_table, column_of, cte, qualified, quoted, select, table_factor, table_name,
    unless_unmatched,
};
use crate::compile::cte::{CUTOFFS_CTE, SPINE_CTE};
use crate::compile::dialect::{Capabilities, Dialect};
use crate::compile::point_in_time::Window;
use crate::compile::print::PrintError;
use crate::diagnostic::{Code, Diagnostic, RecipePath};
use crate::sql::function_name;
use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::helpers::stmt_create_table::CreateTableBuilder;
use sqlparser::ast::{
    BinaryOperator, Cte, Expr, FunctionArguments, Join, JoinConstraint, JoinOperator, ObjectName,
    Query, SelectItem, Statement, With,
};
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// A rendered CTAS: the statement and its pretty text.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The `CREATE TABLE … AS` statement as built, what the text reads back as.
    pub statement: Statement,
    /// The statement printed by featurecraft's escaper, pretty.
    pub sql: String,
}

/// Extra restriction applied inside every CTE before it aggregates (used by sampling).
pub type CteFilter<'a> = &'a dyn Fn(&[Expr]) -> Option<Expr>;

/// Renders the plan's CTAS in `dialect`.
pub fn render(plan: &Plan, dialect: Dialect) -> Result<Rendered, Vec<Diagnostic>> {
    crate::sql::with_expression_stack(|| render_here(plan, dialect))
}

fn render_here(plan: &Plan, dialect: Dialect) -> Result<Rendered, Vec<Diagnostic>> {
    let caps = dialect.capabilities();
    let query = build_query_here(plan, &caps, None)?;
    let name = ObjectName::from(
        plan.target_table
            .iter()
            .map(|p| quoted(p, &caps))
            .collect::<Vec<_>>(),
    );
    let create = CreateTableBuilder::new(name)
        .or_replace(caps.create_or_replace)
        .query(Some(Box::new(query)))
        .build();
    let statement = Statement::CreateTable(create);
    // The statement's own Display puts everything on one line; this layout keeps the
    // query pretty. Either way the text must read back as `statement`.
    let layout = |printable: &Statement| match printable {
        Statement::CreateTable(create) => match &create.query {
            Some(query) => {
                let head = if create.or_replace {
                    "CREATE OR REPLACE TABLE"
                } else {
                    "CREATE TABLE"
                };
                format!("{head} {} AS\n{query:#}", create.name)
            }
            None => printable.to_string(),
        },
        other => other.to_string(),
    };
    let sql = crate::compile::print::statement_text(&statement, dialect, layout).map_err(|e| {
        vec![match e {
            PrintError::Unwritable(why) => Diagnostic::new(
                Code::E041,
                format!("the CTAS cannot be written safely in the {dialect} dialect: {why}"),
            )
            .hint("rename the column or change the literal; featurecraft never prints text it cannot escape"),
            PrintError::ReadsBack(why) => Diagnostic::new(Code::E042, why).hint(
                "this is a featurecraft bug: the SQL was withheld rather than printed unverified; please report the recipe",
            ),
        }]
    })?;
    Ok(Rendered { statement, sql })
}

/// Parses rendered SQL back in its dialect, for the round-trip invariant.
pub fn reparse(sql: &str, dialect: Dialect) -> Result<Vec<Statement>, String> {
    Parser::parse_sql(dialect.parser_dialect().as_ref(), sql).map_err(|e| e.to_string())
}

/// Builds the CTAS's query. `filter`, given the grain columns of a CTE's table, may return a
/// predicate that restricts the CTE's rows before grouping (entity sampling).
pub fn build_query(
    plan: &Plan,
    caps: &Capabilities,
    filter: Option<CteFilter>,
) -> Result<Query, Vec<Diagnostic>> {
    crate::sql::with_expression_stack(|| build_query_here(plan, caps, filter))
}

fn build_query_here(
    plan: &Plan,
    caps: &Capabilities,
    filter: Option<CteFilter>,
) -> Result<Query, Vec<Diagnostic>> {
    let mut builder = QueryBuilder {
        plan,
        caps,
        filter,
        errors: Vec::new(),
    };
    builder.refuse_float_text();
    builder.refuse_long_names();
    let mut ctes = builder.derived_ctes();
    let mut recursive = false;
    match (
        &plan.point_in_time,
        crate::compile::spine::is_rendered_here(plan),
    ) {
        (Some(time), true) => {
            let (spine, is_recursive) = builder.spine_chain(time);
            ctes.extend(spine);
            recursive = is_recursive;
        }
        _ => ctes.push(builder.spine_cte()),
    }
    let spine_at = ctes
        .iter()
        .position(|c| c.alias.name.value == SPINE_CTE)
        .unwrap_or(0);
    let (source_ctes, parts, part_of_feature) = builder.source_ctes();
    ctes.extend(source_ctes);
    builder.refuse_shadowed_tables(&ctes, spine_at);
    let items = builder.projection(&parts, &part_of_feature);
    let joins = builder.joins(&parts);
    let mut query = select(
        items,
        table_factor(ObjectName::from(vec![quoted(SPINE_CTE, caps)])),
        joins,
        None,
        None,
    );
    query.with = Some(With {
        with_token: AttachedToken::empty(),
        recursive,
        cte_tables: ctes,
    });
    if builder.errors.is_empty() {
        Ok(query)
    } else {
        Err(builder.errors)
    }
}

/// The query of a generated spine's rows alone (`WITH … SELECT grain FROM "spine"`): what
/// reading the spine means when a schedule generates it. `None` for a plan whose spine is a
/// table's rows.
pub fn spine_rows_query(
    plan: &Plan,
    caps: &Capabilities,
) -> Option<Result<Query, Vec<Diagnostic>>> {
    let time = plan.point_in_time.as_ref()?;
    plan.spine.schedule.as_ref()?;
    Some(crate::sql::with_expression_stack(|| {
        let mut builder = QueryBuilder {
            plan,
            caps,
            filter: None,
            errors: Vec::new(),
        };
        // The schedule's rows alone where no label decides which are kept.
        let mut errors = Vec::new();
        let rows_alone =
            crate::compile::spine::schedule_rows_ctes(plan, time, caps, &mut |e, p| {
                adapt(e, caps, p, &mut errors)
            });
        builder.errors.extend(errors);
        let (ctes, recursive) = match rows_alone {
            Some(rows) => rows,
            None => builder.spine_chain(time),
        };
        let query = crate::compile::spine::rows_query(ctes, recursive, &plan.grain, caps);
        if builder.errors.is_empty() {
            Ok(query)
        } else {
            Err(builder.errors)
        }
    }))
}

/// Builds the CTAS's query section by section, collecting every construct the dialect
/// cannot express.
struct QueryBuilder<'a> {
    plan: &'a Plan,
    caps: &'a Capabilities,
    filter: Option<CteFilter<'a>>,
    errors: Vec<Diagnostic>,
}

impl QueryBuilder<'_> {
    /// A fragment adapted to the dialect.
    fn fragment(&mut self, expr: &Expr, path: &RecipePath) -> Expr {
        adapt(expr, self.caps, path, &mut self.errors)
    }

    /// `E041` for each output name longer than the engine keeps: it would cut it short
    /// silently, and two names alike in their first bytes would collide.
    fn refuse_long_names(&mut self) {
        let Some(most) = self.caps.max_name_bytes else {
            return;
        };
        use crate::diagnostic::{FeatureField, LabelField, RecipePath};
        let names = self
            .plan
            .features
            .iter()
            .map(|f| {
                let at = match f.path.feature_index() {
                    Some(i) => RecipePath::feature(i, FeatureField::Name),
                    None => f.path.clone(),
                };
                (&f.name, at)
            })
            .chain(std::iter::once((
                &self.plan.label.name,
                RecipePath::Label(LabelField::Name),
            )));
        for (name, path) in names {
            if name.len() > most {
                self.errors.push(
                    Diagnostic::new(
                        Code::E041,
                        format!(
                            "the name `{name}` is {} bytes: the {} dialect keeps {most} and would cut it short",
                            name.len(),
                            self.caps.dialect.name()
                        ),
                    )
                    .at(path)
                    .hint(format!("shorten it to at most {most} bytes for this dialect")),
                );
            }
        }
    }

    /// `E040` for each cast of a float to text, where the engine prints floats otherwise.
    fn refuse_float_text(&mut self) {
        if self.caps.float_text_like_datafusion {
            return;
        }
        for f in &self.plan.features {
            for span in &f.float_to_text {
                self.errors.push(
                    Diagnostic::new(
                        Code::E040,
                        format!(
                            "casting a floating-point value to text cannot be expressed faithfully in the {} dialect",
                            self.caps.dialect.name()
                        ),
                    )
                    .at(f.path.clone())
                    .with_span(crate::diagnostic::Span::from_sql(*span))
                    .hint("engines format floats differently (9.0, 9, 1.0E10): keep the number, or CAST it to an integer before casting to text"),
                );
            }
        }
    }

    /// `E029` for each table the query reads by a bare name that one of its CTEs also has,
    /// where the engine would read the CTE instead: every table read outside the spine CTE,
    /// and the spine's table if a CTE before the spine CTE has its name. (The spine's table
    /// may be named `spine` or `cutoffs`: a CTE does not see itself or the CTEs after it.)
    fn refuse_shadowed_tables(&mut self, ctes: &[Cte], spine_at: usize) {
        let plan = self.plan;
        // Where to point: the first feature whose source reads the table, else the label.
        let reader = |table: &str| {
            plan.features
                .iter()
                .find(|f| match f.home {
                    FeatureHome::Source(i) => plan.sources.get(i).is_some_and(|s| {
                        s.table == table || s.path.iter().any(|h| h.table == table)
                    }),
                    FeatureHome::Spine => false,
                })
                .map_or_else(|| plan.label.path.clone(), |f| f.path.clone())
        };
        let outside_spine =
            plan.sources
                .iter()
                .flat_map(|s| std::iter::once(&s.table).chain(s.path.iter().map(|h| &h.table)))
                .chain(plan.derived.iter().flat_map(|d| {
                    std::iter::once(&d.table).chain(d.children.iter().map(|c| &c.table))
                }))
                .chain(plan.spine.schedule.iter().map(|s| &s.table))
                .chain(
                    plan.label.future.iter().flat_map(|l| {
                        std::iter::once(&l.table).chain(l.path.iter().map(|h| &h.table))
                    }),
                )
                .map(|table| (table, ctes));
        let spine = std::iter::once((&plan.spine.table, &ctes[..spine_at]));
        let mut refused: Vec<&str> = Vec::new();
        for (table, visible) in outside_spine.chain(spine) {
            let Some(cte) = visible
                .iter()
                .find(|c| c.alias.name.value.eq_ignore_ascii_case(table))
            else {
                continue;
            };
            if refused.iter().any(|r| r.eq_ignore_ascii_case(table)) {
                continue;
            }
            refused.push(table);
            self.errors.push(
                Diagnostic::new(
                    Code::E029,
                    format!(
                        "table `{table}` has the name of a CTE of the compiled query (`{}`): the query would read the CTE where it means the table",
                        cte.alias.name.value
                    ),
                )
                .at(reader(table))
                .hint("read the table through a catalog view of another name (a `.sql` file holding `SELECT * FROM …`), or rename it"),
            );
        }
    }

    /// `table` as a query reads it: the CTE with its derived columns when it has some.
    fn table_ref(&self, table: &str) -> ObjectName {
        // In a point-in-time plan a timed source joins its child aggregates per cutoff.
        let derived = match self.plan.point_in_time {
            None => self.plan.derived.iter().find(|d| d.table == table),
            Some(_) => None,
        };
        match derived {
            Some(derived) => ObjectName::from(vec![quoted(&derived.cte_name, self.caps)]),
            None => table_name(table, self.caps),
        }
    }

    /// For each table with derived columns that the query reads: one CTE per child table,
    /// grouped by its link column, and the table's CTE, its rows `LEFT JOIN`ed to them (a
    /// row without children takes each aggregate's value over no rows).
    fn derived_ctes(&mut self) -> Vec<Cte> {
        let (plan, caps) = (self.plan, self.caps);
        let mut ctes = Vec::new();
        if plan.point_in_time.is_some() {
            // Computed per (entity, cutoff) pair instead, after the cutoffs.
            return ctes;
        }
        for table in &plan.derived {
            let read = plan.spine.table == table.table
                || plan.sources.iter().any(|s| s.table == table.table);
            if !read {
                continue;
            }
            let mut items: Vec<SelectItem> = table
                .columns
                .iter()
                .map(|c| SelectItem::UnnamedExpr(column_of(DERIVED_ROWS, c, caps)))
                .collect();
            let mut joins = Vec::new();
            for (n, child) in table.children.iter().enumerate() {
                let link = Expr::Identifier(quoted(&child.column, caps));
                let mut child_items = vec![aliased(link.clone(), &child.link_name(), caps)];
                for value in &child.values {
                    let expr = self.fragment(&value.expr, &value.path);
                    child_items.push(aliased(expr, &value.name, caps));
                }
                ctes.push(cte(
                    &child.cte_name,
                    select(
                        child_items,
                        table_factor(table_name(&child.table, caps)),
                        vec![],
                        None,
                        Some(vec![link]),
                    ),
                    caps,
                ));
                let alias = format!("c{}", n + 1);
                let marker = column_of(&alias, &child.link_name(), caps);
                for value in &child.values {
                    let found = column_of(&alias, &value.name, caps);
                    let expr = match &value.empty_value {
                        None => found,
                        Some(empty) => unless_unmatched(
                            marker.clone(),
                            self.fragment(empty, &value.path),
                            found,
                        ),
                    };
                    items.push(aliased(expr, &value.name, caps));
                }
                let on = Expr::BinaryOp {
                    left: Box::new(column_of(DERIVED_ROWS, &child.key, caps)),
                    op: BinaryOperator::Eq,
                    right: Box::new(marker),
                };
                joins.push(Join {
                    relation: aliased_table(
                        ObjectName::from(vec![quoted(&child.cte_name, caps)]),
                        &alias,
                        caps,
                    ),
                    global: false,
                    join_operator: JoinOperator::Left(JoinConstraint::On(on)),
                });
            }
            ctes.push(cte(
                &table.cte_name,
                select(
                    items,
                    aliased_table(table_name(&table.table, caps), DERIVED_ROWS, caps),
                    joins,
                    None,
                    None,
                ),
                caps,
            ));
        }
        ctes
    }

    /// The grain columns as quoted identifiers.
    fn grain_exprs(&self, grain: &[String]) -> Vec<Expr> {
        grain
            .iter()
            .map(|g| Expr::Identifier(quoted(g, self.caps)))
            .collect()
    }

    /// The spine CTE: grain, the spine table's row-level features, and the label.
    fn spine_cte(&mut self) -> Cte {
        let (plan, caps) = (self.plan, self.caps);
        let spine_grain = self.grain_exprs(&plan.grain);
        let mut items: Vec<SelectItem> = spine_grain
            .iter()
            .cloned()
            .map(SelectItem::UnnamedExpr)
            .collect();
        for f in plan
            .features
            .iter()
            .filter(|f| f.home == FeatureHome::Spine)
        {
            let expr = self.fragment(&f.expr, &f.path);
            items.push(aliased(expr, &f.name, caps));
        }
        let label = self.fragment(&plan.label.expr, &plan.label.path);
        items.push(aliased(label, &plan.label.name, caps));
        cte(
            SPINE_CTE,
            select(
                items,
                table_factor(self.table_ref(&plan.spine.table)),
                vec![],
                self.filter
                    .and_then(|f| f(&self.grain_exprs(&plan.entity_key()))),
                plan.spine.grouped.then(|| spine_grain.clone()),
            ),
            caps,
        )
    }

    /// The spine of a plan with a schedule or a label from the future: the CTEs generating
    /// its rows and computing its label (see `spine`), and whether they need a recursive
    /// `WITH`.
    fn spine_chain(&mut self, time: &crate::compile::point_in_time::PlanTime) -> (Vec<Cte>, bool) {
        let (plan, caps) = (self.plan, self.caps);
        let rows = crate::compile::spine::SPINE_ROWS;
        let mut spine_items = Vec::new();
        for f in plan
            .features
            .iter()
            .filter(|f| f.home == FeatureHome::Spine)
        {
            let expr = self.fragment(&qualified(&f.expr, rows, caps), &f.path);
            spine_items.push(aliased(expr, &f.name, caps));
        }
        let mut errors = Vec::new();
        let chain = crate::compile::spine::spine_ctes(
            plan,
            time,
            caps,
            self.filter,
            spine_items,
            &mut |e, p| adapt(e, caps, p, &mut errors),
        );
        self.errors.extend(errors);
        chain
    }

    /// One CTE per source; in dialects that split them, one more per distinct aggregate;
    /// in a point-in-time plan, the cutoff pairs first when a source is timed.
    /// Returns the CTEs, the parts they are joined as, and each feature's part.
    fn source_ctes(&mut self) -> (Vec<Cte>, Vec<Part>, Vec<usize>) {
        let plan = self.plan;
        let mut ctes = Vec::new();
        let mut parts: Vec<Part> = Vec::new();
        let mut part_of_feature: Vec<usize> = vec![usize::MAX; plan.features.len()];
        let mut taken: Vec<String> = std::iter::once(SPINE_CTE.to_string())
            .chain(plan.sources.iter().map(|s| s.cte_name.clone()))
            .collect();
        let mut cutoffs_at = None;
        let starts = plan
            .point_in_time
            .as_ref()
            .map(|time| crate::compile::timed::WindowStarts::new(plan, time));
        if let Some(time) = &plan.point_in_time
            && plan.sources.iter().any(|s| s.time.is_some())
        {
            // The cutoffs CTE goes here, once the parts have said which window starts it carries.
            cutoffs_at = Some((ctes.len(), time));
            taken.push(CUTOFFS_CTE.to_string());
            // The child aggregates of each timed source's rows, per pair.
            let caps = self.caps;
            let mut errors = Vec::new();
            for table in &plan.derived {
                let Some(source) = plan.sources.iter().find(|s| s.table == table.table) else {
                    continue;
                };
                for child in &table.children {
                    ctes.push(crate::compile::timed::derived_child_cte(
                        plan,
                        time,
                        caps,
                        source,
                        child,
                        &mut |expr, path| adapt(expr, caps, path, &mut errors),
                    ));
                }
            }
            self.errors.extend(errors);
        }
        for (index, source) in plan.sources.iter().enumerate() {
            let source_parts = self.source_parts(index, source);
            // A part with no feature is dropped, unless it is an untimed row-level source's
            // only one (such a source still joins, and fans out, with no feature of its own).
            // A grouped source without features (in a plan of some of a recipe's features) is
            // left out.
            let only_one = source_parts.len() == 1;
            let mut n = 0;
            for (key, members) in source_parts {
                if members.is_empty() && (!only_one || source.grouped || source.time.is_some()) {
                    continue;
                }
                let cte_name = if key == PartKey::default() {
                    source.cte_name.clone()
                } else {
                    n += 1;
                    let suffix = if key.distinct.is_some() {
                        "distinct"
                    } else if key.as_of {
                        "as_of"
                    } else {
                        "window"
                    };
                    let mut name = format!("{}_{suffix}_{n}", source.cte_name);
                    // Another source's CTE may already have this name (a table `x_distinct_1`).
                    while taken.iter().any(|t| t.eq_ignore_ascii_case(&name)) {
                        n += 1;
                        name = format!("{}_{suffix}_{n}", source.cte_name);
                    }
                    name
                };
                for &i in &members {
                    part_of_feature[i] = parts.len();
                }
                let as_of = key.as_of || !source.grouped;
                let (part_ctes, part) =
                    self.part(source, &members, as_of, cte_name, &taken, starts.as_ref());
                taken.extend(part_ctes.iter().map(|c| c.alias.name.value.clone()));
                ctes.extend(part_ctes);
                parts.push(part);
            }
        }
        if let (Some((at, time)), Some(starts)) = (cutoffs_at, &starts) {
            let caps = self.caps;
            let mut errors = Vec::new();
            let names: Vec<String> = taken
                .iter()
                .cloned()
                .chain(ctes.iter().map(|c| c.alias.name.value.clone()))
                .collect();
            let cutoffs = crate::compile::timed::cutoffs_ctes(
                plan,
                time,
                caps,
                starts,
                &names,
                &mut |e, p| adapt(e, caps, p, &mut errors),
            );
            self.errors.extend(errors);
            ctes.splice(at..at, cutoffs);
        }
        (ctes, parts, part_of_feature)
    }

    /// A source's features grouped into the parts that get a CTE each: one part, plus one
    /// per DISTINCT argument where the dialect splits them, plus, in a timed source, one per
    /// window for aggregates that keep NULLs (they cannot be narrowed inside a wider window).
    fn source_parts(&self, index: usize, source: &Source) -> Vec<(PartKey, Vec<usize>)> {
        let (plan, caps) = (self.plan, self.caps);
        let mut source_parts: Vec<(PartKey, Vec<usize>)> = vec![(PartKey::default(), Vec::new())];
        for (i, f) in plan.features.iter().enumerate() {
            if f.home != FeatureHome::Source(index) {
                continue;
            }
            let key = PartKey {
                distinct: (caps.split_distinct_aggregates && source.grouped)
                    .then(|| distinct_argument(&f.expr))
                    .flatten(),
                window: (source.time.is_some() && source.grouped && keeps_nulls(&f.expr))
                    .then_some(f.window),
                as_of: source.grouped && f.as_of,
            };
            match source_parts.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push(i),
                None => source_parts.push((key, vec![i])),
            }
        }
        source_parts
    }

    /// The CTEs computing some features of a source, and how the spine joins them.
    fn part(
        &mut self,
        source: &Source,
        members: &[usize],
        as_of: bool,
        cte_name: String,
        taken: &[String],
        starts: Option<&crate::compile::timed::WindowStarts>,
    ) -> (Vec<Cte>, Part) {
        let (plan, caps) = (self.plan, self.caps);
        let grain = self.grain_exprs(&source.grain);
        let filter = self.filter.and_then(|f| f(&grain));
        if let (Some(time), Some(source_time), Some(starts)) =
            (&plan.point_in_time, &source.time, starts)
        {
            let timed = crate::compile::timed::TimedPart {
                plan,
                time,
                source,
                source_time,
                caps,
                members,
                as_of,
                cte_name: cte_name.clone(),
                taken,
                starts,
            };
            // The entity key is on the source's rows, or on the last table of its path.
            let holder = match source.path.len() {
                0 => crate::compile::timed::ROWS.to_string(),
                n => format!("h{n}"),
            };
            let rows_key: Vec<Expr> = source
                .grain
                .iter()
                .map(|g| column_of(&holder, g, caps))
                .collect();
            let filter = self.filter.and_then(|f| f(&rows_key));
            let mut errors = Vec::new();
            let rendered = timed.render(filter, &mut |expr, path| {
                adapt(expr, caps, path, &mut errors)
            });
            self.errors.extend(errors);
            let part = Part {
                cte_name,
                spine_key: rendered.grain.clone(),
                grain: rendered.grain,
            };
            return (rendered.ctes, part);
        }
        if !source.path.is_empty() {
            return self.joined_part(source, members, cte_name);
        }
        let mut items: Vec<SelectItem> =
            grain.iter().cloned().map(SelectItem::UnnamedExpr).collect();
        for &i in members {
            let f = &plan.features[i];
            let expr = self.fragment(&f.expr, &f.path);
            items.push(aliased(expr, &f.name, caps));
        }
        let body = select(
            items,
            table_factor(self.table_ref(&source.table)),
            vec![],
            filter,
            source.grouped.then(|| grain.clone()),
        );
        let part = Part {
            cte_name: cte_name.clone(),
            grain: source.grain.clone(),
            spine_key: plan.entity_key(),
        };
        (vec![cte(&cte_name, body, caps)], part)
    }

    /// The CTE of a source reached through relationships: its rows (`"s"`) joined along
    /// the path (`"h1"`, `"h2"`, …) to the table holding the entity key, grouped by it.
    fn joined_part(
        &mut self,
        source: &Source,
        members: &[usize],
        cte_name: String,
    ) -> (Vec<Cte>, Part) {
        let (plan, caps) = (self.plan, self.caps);
        let last = format!("h{}", source.path.len());
        let grain: Vec<Expr> = source
            .grain
            .iter()
            .map(|g| column_of(&last, g, caps))
            .collect();
        let filter = self.filter.and_then(|f| f(&grain));
        let mut joins = Vec::new();
        let mut previous = JOINED_ROWS.to_string();
        for (n, hop) in source.path.iter().enumerate() {
            let alias = format!("h{}", n + 1);
            let on = Expr::BinaryOp {
                left: Box::new(column_of(&previous, &hop.from, caps)),
                op: BinaryOperator::Eq,
                right: Box::new(column_of(&alias, &hop.to, caps)),
            };
            joins.push(Join {
                relation: aliased_table(table_name(&hop.table, caps), &alias, caps),
                global: false,
                join_operator: JoinOperator::Join(JoinConstraint::On(on)),
            });
            previous = alias;
        }
        let mut items: Vec<SelectItem> = grain
            .iter()
            .zip(&source.grain)
            .map(|(expr, name)| aliased(expr.clone(), name, caps))
            .collect();
        for &i in members {
            let f = &plan.features[i];
            let expr = qualified(&f.expr, JOINED_ROWS, caps);
            let expr = self.fragment(&expr, &f.path);
            items.push(aliased(expr, &f.name, caps));
        }
        let body = select(
            items,
            aliased_table(self.table_ref(&source.table), JOINED_ROWS, caps),
            joins,
            filter,
            Some(grain.clone()),
        );
        let part = Part {
            cte_name: cte_name.clone(),
            grain: source.grain.clone(),
            spine_key: plan.entity_key(),
        };
        (vec![cte(&cte_name, body, caps)], part)
    }

    /// `"spine"."name"`.
    fn spine_col(&self, name: &str) -> Expr {
        Expr::CompoundIdentifier(vec![quoted(SPINE_CTE, self.caps), quoted(name, self.caps)])
    }

    /// The final projection, in output order: grain, features (a source's feature of an
    /// entity without rows there takes its value over no rows), label.
    fn projection(&mut self, parts: &[Part], part_of_feature: &[usize]) -> Vec<SelectItem> {
        let (plan, caps) = (self.plan, self.caps);
        let mut items: Vec<SelectItem> = plan
            .grain
            .iter()
            .map(|g| SelectItem::UnnamedExpr(self.spine_col(g)))
            .collect();
        for (i, f) in plan.features.iter().enumerate() {
            let item = match f.home {
                FeatureHome::Spine => SelectItem::UnnamedExpr(self.spine_col(&f.name)),
                FeatureHome::Source(_) => {
                    let source = &parts[part_of_feature[i]];
                    let value = Expr::CompoundIdentifier(vec![
                        quoted(&source.cte_name, caps),
                        quoted(&f.name, caps),
                    ]);
                    match &f.empty_value {
                        None => aliased(value, &f.name, caps),
                        Some(empty) => {
                            let marker = Expr::CompoundIdentifier(vec![
                                quoted(&source.cte_name, caps),
                                quoted(&source.grain[0], caps),
                            ]);
                            let empty = self.fragment(empty, &f.path);
                            aliased(unless_unmatched(marker, empty, value), &f.name, caps)
                        }
                    }
                }
            };
            items.push(item);
        }
        items.push(SelectItem::UnnamedExpr(self.spine_col(&plan.label.name)));
        items
    }

    /// Each part `LEFT JOIN`ed to the spine on the grain.
    fn joins(&self, parts: &[Part]) -> Vec<Join> {
        let caps = self.caps;
        parts
            .iter()
            .map(|source| {
                let condition = source
                    .spine_key
                    .iter()
                    .zip(&source.grain)
                    .map(|(spine_g, source_g)| Expr::BinaryOp {
                        left: Box::new(self.spine_col(spine_g)),
                        op: BinaryOperator::Eq,
                        right: Box::new(Expr::CompoundIdentifier(vec![
                            quoted(&source.cte_name, caps),
                            quoted(source_g, caps),
                        ])),
                    })
                    .reduce(|a, b| Expr::BinaryOp {
                        left: Box::new(a),
                        op: BinaryOperator::And,
                        right: Box::new(b),
                    });
                Join {
                    relation: table_factor(ObjectName::from(vec![quoted(&source.cte_name, caps)])),
                    global: false,
                    join_operator: JoinOperator::Left(match condition {
                        Some(c) => JoinConstraint::On(c),
                        None => JoinConstraint::None,
                    }),
                }
            })
            .collect()
    }
}

/// The alias of a joined source's own rows.
const JOINED_ROWS: &str = "s";

/// The alias of a table's own rows in the CTE that adds its derived columns.
const DERIVED_ROWS: &str = "t";

/// A CTE computing some of a source's features, joined to the spine on its grain.
struct Part {
    cte_name: String,
    /// The CTE's columns the spine joins on.
    grain: Vec<String>,
    /// The spine's columns they match, in the same order.
    spine_key: Vec<String>,
}

/// What puts features of one source into CTEs of their own.
#[derive(Debug, Clone, Default, PartialEq)]
struct PartKey {
    /// The arguments of the DISTINCT aggregate (where the dialect splits them).
    distinct: Option<String>,
    /// The window of an aggregate that keeps NULLs, in a timed source.
    window: Option<Option<Window>>,
    /// As-of values of a timed source that also has aggregates.
    as_of: bool,
}

/// Whether an aggregate of `expr` keeps NULL arguments.
fn keeps_nulls(expr: &Expr) -> bool {
    sqlparser::ast::visit_expressions(expr, |e| match e {
        Expr::Function(f)
            if crate::compile::fragment::is_aggregate(f)
                && crate::compile::functions::keeps_nulls(&function_name(f)) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// When every aggregate in `expr` is a DISTINCT aggregate over the same arguments, and one
/// of them is not a COUNT, those arguments (as text): such a feature can be computed in a
/// CTE of its own, which DataFusion plans as a cheap two-level aggregation instead of a hash
/// set per group. featurecraft's sessions count distinct values compactly in the source's
/// one scan (`distinct`), so a `COUNT(DISTINCT x)` stays there.
fn distinct_argument(expr: &Expr) -> Option<String> {
    let mut key: Option<String> = None;
    let mut other = false;
    let mut not_count = false;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e
            && crate::compile::fragment::is_aggregate(f)
        {
            match &f.args {
                FunctionArguments::List(list)
                    if list.duplicate_treatment
                        == Some(sqlparser::ast::DuplicateTreatment::Distinct)
                        && f.filter.is_none() =>
                {
                    let args = list
                        .args
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    if key.as_ref().is_some_and(|k| *k != args) {
                        other = true;
                    }
                    not_count |= function_name(f) != "count";
                    key = Some(args);
                }
                _ => other = true,
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if other || !not_count { None } else { key }
}
