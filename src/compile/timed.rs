//! Rendering the timed sources of a point-in-time plan.
//!
//! The spine's distinct (entity key, cutoff) pairs are one CTE, [`CUTOFFS_CTE`]. A timed
//! source's CTE joins them to the source on the entity key and keeps each pair's rows
//! before its cutoff, within the widest window its features use; narrower windows are
//! conditional aggregates over that one join, so the source is scanned once whatever the
//! number of windows:
//! ```sql
//! "src_orders" AS (
//!   SELECT "k"."customer_id", "k"."cutoff_time",
//!          COUNT(*) AS "orders_90d",
//!          SUM(CASE WHEN "s"."order_date" >= ("k"."cutoff_time" - INTERVAL '30' DAY)
//!                   THEN "s"."amount" END) AS "spend_30d"
//!   FROM "cutoffs" AS "k" JOIN "orders" AS "s"
//!     ON "s"."customer_id" = "k"."customer_id" AND "s"."order_date" < "k"."cutoff_time"
//!        AND "s"."order_date" >= ("k"."cutoff_time" - INTERVAL '90' DAY)
//!   GROUP BY "k"."customer_id", "k"."cutoff_time")
//! ```
//! `COUNT(*)` becomes `COUNT(CASE WHEN … THEN 1 END)` and `COUNT(DISTINCT x)`
//! `COUNT(DISTINCT CASE WHEN … THEN x END)`. An aggregate that keeps NULLs (`ARRAY_AGG`)
//! cannot be narrowed so; it gets a CTE of its own with its window in the join.
//!
//! Row-level features of a timed source are **as-of values**: the row with the latest time
//! before the cutoff, ties broken by the source's other columns in catalog order, each
//! descending with NULLs last, strings by their bytes. The same rule in every dialect, as
//! `ROW_NUMBER() … = 1` over the same join (DuckDB's `ASOF JOIN` picks an arbitrary row
//! among ties, so it is not used); in DataFusion, whose ranking sorts every joined row, as
//! featurecraft's grouped `featurecraft_latest(value, time, ties…)` over the join (one CTE,
//! like the aggregates').
//!
//! A source reached through relationships joins its path from the pair's entity key back to
//! its own rows, and every table of the path with a time column must be before the cutoff
//! (an order item counts when its order was placed before the cutoff); its windows count
//! back on the first of those times.
//!
//! Dates and timestamps compare as timestamps (a date is its midnight) unless the cutoff
//! and the source's time are both dates and every window is whole days.
//!
//! Each window's start (`cutoff − w`, as compared) is a column of the cutoff pairs
//! ([`WindowStarts`]), computed once per pair: the join compares each candidate row with a
//! column (`"s"."event_ts" >= "k"."featurecraft_start_90d"`) instead of doing interval
//! arithmetic for every (pair, row), which dominated the join in DataFusion. The starts are
//! added after the `DISTINCT` (the pairs are then a CTE of their own,
//! `featurecraft_cutoff_pairs`), so the distinct aggregation holds only the pairs. DataFusion
//! inlines CTEs and would repeat it in every timed source's CTE; featurecraft's own local
//! runs compute that CTE once and hand its rows to the query.

use crate::compile::analyze::{DerivedChild, DerivedTable, Plan, Source};
use crate::compile::ast::{
    aliased, aliased_table, column_of, cte, qualified, quoted, select, table_factor, table_name,
    unless_unmatched,
};
use crate::compile::cte::{CUTOFF_PAIRS_CTE, CUTOFFS_CTE, SPINE_CTE};
use crate::compile::dialect::Capabilities;
use crate::compile::fragment::is_aggregate;
use crate::compile::point_in_time::{PlanTime, SourceTime, TimeType, Window};
use crate::diagnostic::RecipePath;
use crate::sql::{call, cast};
use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{
    BinaryOperator, CaseWhen, Cte, DataType, Distinct, Expr, FunctionArg, FunctionArgExpr,
    FunctionArguments, Join, JoinConstraint, JoinOperator, ObjectName, OrderByExpr, OrderByOptions,
    SelectItem, SetExpr, TimezoneInfo, Value, WindowSpec, WindowType, visit_expressions_mut,
};
use std::cell::RefCell;
use std::ops::ControlFlow;

/// The alias of the cutoff pairs in a timed source's join.
const KEYS: &str = "k";
/// The alias of the source's rows in a timed source's join.
pub const ROWS: &str = "s";

/// The window starts the cutoff pairs carry: one column of [`CUTOFFS_CTE`] per (window,
/// comparison type) some timed part compares with. Parts register the starts they use while
/// they render; the cutoffs CTE is rendered after them.
pub struct WindowStarts {
    /// The starts used so far, in the order they were first asked for.
    used: RefCell<Vec<(Window, TimeType)>>,
    /// The pair's own columns (entity key and cutoff), which no start's name may take.
    taken: Vec<String>,
}

impl WindowStarts {
    /// No start used yet, for a plan's cutoff pairs.
    pub fn new(plan: &Plan, time: &PlanTime) -> Self {
        let mut taken = plan.entity_key();
        taken.push(time.cutoff.clone());
        WindowStarts {
            used: RefCell::new(Vec::new()),
            taken,
        }
    }

    /// The column holding `window`'s start compared as `compare`, registering it.
    fn column(&self, window: Window, compare: TimeType) -> String {
        let mut used = self.used.borrow_mut();
        if !used.contains(&(window, compare)) {
            used.push((window, compare));
        }
        self.name(window, compare)
    }

    /// `featurecraft_start_90d` (`…_date` when compared as dates), unless a pair column
    /// already has the name.
    fn name(&self, window: Window, compare: TimeType) -> String {
        let (count, unit) = window.in_unit();
        let (_, _, short) = unit.names();
        let date = if compare == TimeType::Date {
            "_date"
        } else {
            ""
        };
        fresh_name(
            &format!("featurecraft_start_{count}{short}{date}"),
            &self.taken,
        )
    }
}

/// `SELECT DISTINCT entity key, cutoff FROM "spine"`, as [`CUTOFFS_CTE`]; with window
/// starts, that is a CTE of its own (named apart from `taken`) and [`CUTOFFS_CTE`] adds the
/// starts to its pairs, so the DISTINCT keeps only the pairs (a smaller aggregation, in
/// every timed source that reads them). `adapt` adapts each start to the dialect.
///
/// A schedule whose rows are the spine's (see `spine::pairs_source`) gives its pairs
/// straight: `SELECT entity key, cutoff FROM "featurecraft_schedule"`, already distinct,
/// without the label the spine joins.
pub fn cutoffs_ctes(
    plan: &Plan,
    time: &PlanTime,
    caps: &Capabilities,
    starts: &WindowStarts,
    taken: &[String],
    adapt: &mut dyn FnMut(&Expr, &RecipePath) -> Expr,
) -> Vec<Cte> {
    let pair: Vec<SelectItem> = plan
        .entity_key()
        .iter()
        .chain(std::iter::once(&time.cutoff))
        .map(|c| SelectItem::UnnamedExpr(Expr::Identifier(quoted(c, caps))))
        .collect();
    let (from, distinct) = match crate::compile::spine::pairs_source(plan) {
        Some(schedule) => (schedule, false),
        None => (SPINE_CTE, true),
    };
    let distinct_pairs = |name: &str| {
        let mut query = select(
            pair.clone(),
            table_factor(ObjectName::from(vec![quoted(from, caps)])),
            vec![],
            None,
            None,
        );
        if let SetExpr::Select(body) = query.body.as_mut()
            && distinct
        {
            body.distinct = Some(Distinct::Distinct);
        }
        cte(name, query, caps)
    };
    let used = starts.used.borrow();
    if used.is_empty() {
        return vec![distinct_pairs(CUTOFFS_CTE)];
    }
    let pairs_name = fresh_name(CUTOFF_PAIRS_CTE, taken);
    let mut items = pair.clone();
    for &(window, compare) in used.iter() {
        let cutoff = Expr::Identifier(quoted(&time.cutoff, caps));
        let cutoff = match (time.cutoff_type, compare) {
            (TimeType::Date, TimeType::Timestamp) => {
                cast(cutoff, DataType::Timestamp(None, TimezoneInfo::None))
            }
            _ => cutoff,
        };
        let start = adapt(
            &crate::compile::spine::shift(cutoff, window, false, compare),
            &RecipePath::PointInTime(None),
        );
        items.push(aliased(start, &starts.name(window, compare), caps));
    }
    let with_starts = select(
        items,
        table_factor(ObjectName::from(vec![quoted(&pairs_name, caps)])),
        vec![],
        None,
        None,
    );
    vec![
        distinct_pairs(&pairs_name),
        cte(CUTOFFS_CTE, with_starts, caps),
    ]
}

/// One CTE (two for as-of values) computing some features of a timed source.
pub struct TimedPart<'a> {
    /// The plan being rendered.
    pub plan: &'a Plan,
    /// Its point-in-time facts.
    pub time: &'a PlanTime,
    /// The source.
    pub source: &'a Source,
    /// The source's time column.
    pub source_time: &'a SourceTime,
    /// The dialect.
    pub caps: &'a Capabilities,
    /// The features it computes (indices into the plan's features).
    pub members: &'a [usize],
    /// They are as-of values (the latest row's), not aggregates.
    pub as_of: bool,
    /// The name of the CTE the spine joins.
    pub cte_name: String,
    /// Names already used by CTEs: helper CTEs take a name not among them.
    pub taken: &'a [String],
    /// The window starts of the cutoff pairs, where the part registers those it compares with.
    pub starts: &'a WindowStarts,
}

/// What rendering a timed part gives: its CTEs, and the columns the spine joins it on
/// (its own names, which are the spine's: the entity key and the cutoff).
pub struct TimedCtes {
    /// The CTEs, in order.
    pub ctes: Vec<Cte>,
    /// The columns the spine joins on.
    pub grain: Vec<String>,
}

impl TimedPart<'_> {
    /// Renders the part. `filter` restricts the source's rows by its entity key (sampling);
    /// `adapt` adapts an expression (a feature's, or a time predicate) to the dialect.
    pub fn render(
        &self,
        filter: Option<Expr>,
        adapt: &mut dyn FnMut(&Expr, &RecipePath) -> Expr,
    ) -> TimedCtes {
        let caps = self.caps;
        let key = self.plan.entity_key();
        let mut grain = key.clone();
        grain.push(self.time.cutoff.clone());
        let group: Vec<Expr> = grain.iter().map(|c| self.key_col(c)).collect();
        let windows: Vec<Option<Window>> = self
            .members
            .iter()
            .map(|&i| self.plan.features[i].window)
            .collect();
        let widest = widest(&windows);
        let compare = self.compare(&windows);
        let first_path = self
            .members
            .first()
            .map(|&i| self.plan.features[i].path.clone())
            .unwrap_or(RecipePath::PointInTime(None));
        let on = self.join_condition(&key, widest, compare);
        let on = adapt(&on, &first_path);
        let mut joins = self.path_joins(&key);
        joins.push(Join {
            relation: aliased_table(table_name(&self.source.table, caps), ROWS, caps),
            global: false,
            join_operator: JoinOperator::Join(JoinConstraint::On(on)),
        });
        joins.extend(self.derived_joins(&key));
        let mut items: Vec<SelectItem> =
            group.iter().cloned().map(SelectItem::UnnamedExpr).collect();
        for &i in self.members {
            let f = &self.plan.features[i];
            let mut expr = self.qualified(&self.with_cutoff(f));
            if let Some(w) = f.window.filter(|w| Some(*w) != widest) {
                let inside = self.within(w, compare);
                expr = if !self.as_of {
                    only_within(expr, &inside)
                } else {
                    case_when(inside, expr)
                };
            }
            let mut expr = adapt(&expr, &f.path);
            if self.as_of && caps.latest_aggregate {
                let mut args = vec![expr];
                args.extend(self.ordering());
                expr = call(crate::compile::functions::LATEST, args);
            }
            items.push(aliased(expr, &f.name, caps));
        }
        let keys_table = table_factor(ObjectName::from(vec![quoted(CUTOFFS_CTE, caps)]));
        let keys_table = match keys_table {
            sqlparser::ast::TableFactor::Table { name, .. } => aliased_table(name, KEYS, caps),
            other => other,
        };
        if !self.as_of || caps.latest_aggregate {
            let body = select(items, keys_table, joins, filter, Some(group));
            return TimedCtes {
                ctes: vec![cte(&self.cte_name, body, caps)],
                grain,
            };
        }
        // As-of values: rank each pair's rows, keep the first.
        let names: Vec<&str> = grain
            .iter()
            .map(String::as_str)
            .chain(
                self.members
                    .iter()
                    .map(|&i| self.plan.features[i].name.as_str()),
            )
            .collect();
        let rank = fresh_name("featurecraft_rank", &names);
        items.push(SelectItem::ExprWithAlias {
            expr: self.rank(group),
            alias: quoted(&rank, caps),
        });
        let ranked_name = fresh_name(&format!("{}_ranked", self.cte_name), self.taken);
        let ranked = select(items, keys_table, joins, filter, None);
        let picked_items = names
            .iter()
            .map(|c| SelectItem::UnnamedExpr(Expr::Identifier(quoted(c, caps))))
            .collect();
        let first = Expr::BinaryOp {
            left: Box::new(Expr::Identifier(quoted(&rank, caps))),
            op: BinaryOperator::Eq,
            right: Box::new(Expr::value(Value::Number("1".into(), false))),
        };
        let picked = select(
            picked_items,
            table_factor(ObjectName::from(vec![quoted(&ranked_name, caps)])),
            vec![],
            Some(first),
            None,
        );
        TimedCtes {
            ctes: vec![
                cte(&ranked_name, ranked, caps),
                cte(&self.cte_name, picked, caps),
            ],
            grain,
        }
    }

    /// `"k"."column"`.
    fn key_col(&self, column: &str) -> Expr {
        Expr::CompoundIdentifier(vec![quoted(KEYS, self.caps), quoted(column, self.caps)])
    }

    /// `"s"."column"`.
    fn row_col(&self, column: &str) -> Expr {
        column_of(ROWS, column, self.caps)
    }

    /// Whether times compare as dates (both dates, every window whole days) or timestamps.
    fn compare(&self, windows: &[Option<Window>]) -> TimeType {
        let all_days = windows.iter().flatten().all(|w| w.whole_days());
        if self.time.cutoff_type == TimeType::Date
            && self.source_time.time_type == TimeType::Date
            && all_days
        {
            TimeType::Date
        } else {
            TimeType::Timestamp
        }
    }

    /// The source row's time (in the table of the path that has it) and the cutoff, as the
    /// comparison type.
    fn times(&self, compare: TimeType) -> (Expr, Expr) {
        let at = self.source.path_times.first().map_or(0, |(n, _)| *n);
        self.times_of(&Self::alias(at), self.source_time, compare)
    }

    /// `alias`'s `time` and the cutoff, as the comparison type (a date is its midnight).
    fn times_of(&self, alias: &str, time: &SourceTime, compare: TimeType) -> (Expr, Expr) {
        let as_compared = |expr: Expr, of: TimeType| match (of, compare) {
            (TimeType::Date, TimeType::Timestamp) => {
                cast(expr, DataType::Timestamp(None, TimezoneInfo::None))
            }
            _ => expr,
        };
        (
            as_compared(column_of(alias, &time.column, self.caps), time.time_type),
            as_compared(self.key_col(&self.time.cutoff), self.time.cutoff_type),
        )
    }

    /// The alias of the `n`-th table of the source's path: `"s"` the source, `"h1"`… its hops.
    fn alias(n: usize) -> String {
        if n == 0 {
            ROWS.to_string()
        } else {
            format!("h{n}")
        }
    }

    /// For a source reached through relationships, the pairs joined to the path from its
    /// end (the table with the entity key) back to the hop next to the source:
    /// `JOIN "h2" ON "h2"."customer_id" = "k"."customer_id" JOIN "h1" ON "h1"."x" = "h2"."x"`.
    fn path_joins(&self, key: &[String]) -> Vec<Join> {
        let caps = self.caps;
        let hops = &self.source.path;
        let mut joins = Vec::new();
        for n in (1..=hops.len()).rev() {
            let alias = Self::alias(n);
            let on = if n == hops.len() {
                and_all(
                    key.iter()
                        .zip(&self.source.grain)
                        .map(|(spine, source)| Expr::BinaryOp {
                            left: Box::new(column_of(&alias, source, caps)),
                            op: BinaryOperator::Eq,
                            right: Box::new(self.key_col(spine)),
                        })
                        .collect(),
                )
            } else {
                // Hop n+1 is joined on hop n's `from` column equal to its own `to` column.
                let next = &hops[n];
                Expr::BinaryOp {
                    left: Box::new(column_of(&alias, &next.from, caps)),
                    op: BinaryOperator::Eq,
                    right: Box::new(column_of(&Self::alias(n + 1), &next.to, caps)),
                }
            };
            joins.push(Join {
                relation: aliased_table(table_name(&hops[n - 1].table, caps), &alias, caps),
                global: false,
                join_operator: JoinOperator::Join(JoinConstraint::On(on)),
            });
        }
        joins
    }

    /// The source rows' join: on the entity key (or, through relationships, on the first
    /// hop), each table of the path with a time column before the cutoff, and the row's
    /// time within the widest window.
    fn join_condition(&self, key: &[String], widest: Option<Window>, compare: TimeType) -> Expr {
        let caps = self.caps;
        let mut conditions: Vec<Expr> = match self.source.path.first() {
            None => key
                .iter()
                .zip(&self.source.grain)
                .map(|(spine, source)| Expr::BinaryOp {
                    left: Box::new(self.row_col(source)),
                    op: BinaryOperator::Eq,
                    right: Box::new(self.key_col(spine)),
                })
                .collect(),
            Some(first) => vec![Expr::BinaryOp {
                left: Box::new(self.row_col(&first.from)),
                op: BinaryOperator::Eq,
                right: Box::new(column_of(&Self::alias(1), &first.to, caps)),
            }],
        };
        let (t, c) = self.times(compare);
        conditions.push(self.before(t, c));
        // The other timed tables of the path: each before the cutoff too.
        for (n, time) in self.source.path_times.iter().skip(1) {
            conditions.push(before_cutoff(self.time, self.caps, &Self::alias(*n), time));
        }
        if let Some(w) = widest {
            conditions.push(self.within(w, compare));
        }
        and_all(conditions)
    }

    /// `t < cutoff`, or `t <= cutoff` when the cutoff is included.
    fn before(&self, t: Expr, c: Expr) -> Expr {
        Expr::BinaryOp {
            left: Box::new(t),
            op: if self.time.include_cutoff {
                BinaryOperator::LtEq
            } else {
                BinaryOperator::Lt
            },
            right: Box::new(c),
        }
    }

    /// The row is within `window` before the cutoff (its lower edge; the join keeps the
    /// upper one): `t >= start`, or `t > start` when the cutoff is included, where the start
    /// (`cutoff − w`) is a column of the pair.
    fn within(&self, window: Window, compare: TimeType) -> Expr {
        let (t, _) = self.times(compare);
        let start = self.key_col(&self.starts.column(window, compare));
        Expr::BinaryOp {
            left: Box::new(t),
            op: if self.time.include_cutoff {
                BinaryOperator::Gt
            } else {
                BinaryOperator::GtEq
            },
            right: Box::new(start),
        }
    }

    /// The feature's expression with the row's cutoff, where it reads it by name, read
    /// from the cutoff pairs (`"k"."cutoff_time"`, a column the pairs are grouped by).
    fn with_cutoff(&self, f: &crate::compile::analyze::PlannedFeature) -> Expr {
        let mut expr = f.expr.clone();
        if f.reads_cutoff {
            let _ = visit_expressions_mut(&mut expr, |e| {
                if let Expr::Identifier(ident) = e
                    && ident.value.eq_ignore_ascii_case(&self.time.cutoff)
                {
                    *e = self.key_col(&self.time.cutoff);
                }
                ControlFlow::<()>::Continue(())
            });
        }
        expr
    }

    /// The feature's expression with every column read from the source's rows (`"s"."x"`),
    /// and each derived column from its pair's child aggregates (over no rows when the
    /// row has no child before the cutoff).
    fn qualified(&self, expr: &Expr) -> Expr {
        let Some(derived) = self.derived() else {
            return qualified(expr, ROWS, self.caps);
        };
        let caps = self.caps;
        let mut expr = expr.clone();
        let _ = visit_expressions_mut(&mut expr, |e| {
            if let Expr::Identifier(ident) = e {
                let found = derived.children.iter().enumerate().find_map(|(n, child)| {
                    child
                        .values
                        .iter()
                        .find(|v| v.name.eq_ignore_ascii_case(&ident.value))
                        .map(|v| (n, child, v))
                });
                *e = match found {
                    None => column_of(ROWS, &ident.value, caps),
                    Some((n, child, value)) => {
                        let alias = derived_alias(n);
                        let found = column_of(&alias, &value.name, caps);
                        match &value.empty_value {
                            None => found,
                            Some(empty) => unless_unmatched(
                                column_of(&alias, &child.link_name(), caps),
                                empty.clone(),
                                found,
                            ),
                        }
                    }
                };
            }
            ControlFlow::<()>::Continue(())
        });
        expr
    }

    /// The derived columns of the source's table.
    fn derived(&self) -> Option<&DerivedTable> {
        self.plan
            .derived
            .iter()
            .find(|d| d.table == self.source.table)
    }

    /// A `LEFT JOIN` of each of the source table's child aggregates per pair (`"d1"`, …),
    /// on the pair and the child's link to the row.
    fn derived_joins(&self, key: &[String]) -> Vec<Join> {
        let caps = self.caps;
        let Some(derived) = self.derived() else {
            return Vec::new();
        };
        derived
            .children
            .iter()
            .enumerate()
            .map(|(n, child)| {
                let alias = derived_alias(n);
                let mut conditions: Vec<Expr> = key
                    .iter()
                    .chain(std::iter::once(&self.time.cutoff))
                    .map(|c| Expr::BinaryOp {
                        left: Box::new(column_of(&alias, c, caps)),
                        op: BinaryOperator::Eq,
                        right: Box::new(self.key_col(c)),
                    })
                    .collect();
                conditions.push(Expr::BinaryOp {
                    left: Box::new(column_of(&alias, &child.link_name(), caps)),
                    op: BinaryOperator::Eq,
                    right: Box::new(self.row_col(&child.key)),
                });
                Join {
                    relation: aliased_table(
                        ObjectName::from(vec![quoted(&child.cte_name, caps)]),
                        &alias,
                        caps,
                    ),
                    global: false,
                    join_operator: JoinOperator::Left(JoinConstraint::On(and_all(conditions))),
                }
            })
            .collect()
    }

    /// The as-of ordering, greatest first: the row's time, then the table's own columns in
    /// catalog order (strings under the dialect's binary collation, if it needs one).
    fn ordering(&self) -> Vec<Expr> {
        let caps = self.caps;
        let mut order = vec![self.row_col(&self.source_time.column)];
        // Derived columns are not the table's own: its own columns break ties.
        let derived = |name: &str| {
            self.derived().is_some_and(|d| {
                d.children
                    .iter()
                    .any(|c| c.values.iter().any(|v| v.name == name))
            })
        };
        for tie in self
            .source_time
            .tie_break
            .iter()
            .filter(|t| !derived(&t.name))
        {
            let column = self.row_col(&tie.name);
            let column = match (tie.is_string, caps.binary_collation) {
                (true, Some(collation)) => Expr::Collate {
                    expr: Box::new(column),
                    collation: ObjectName::from(vec![sqlparser::ast::Ident::with_quote(
                        '"', collation,
                    )]),
                },
                _ => column,
            };
            order.push(column);
        }
        order
    }

    /// `ROW_NUMBER() OVER (PARTITION BY pair ORDER BY time DESC, other columns DESC NULLS LAST)`.
    fn rank(&self, partition: Vec<Expr>) -> Expr {
        let descending = |expr: Expr| OrderByExpr {
            expr,
            options: OrderByOptions {
                asc: Some(false),
                nulls_first: Some(false),
            },
            with_fill: None,
        };
        let order = self.ordering().into_iter().map(descending).collect();
        let mut row_number = call("ROW_NUMBER", vec![]);
        if let Expr::Function(f) = &mut row_number {
            f.over = Some(WindowType::WindowSpec(WindowSpec {
                window_name: None,
                partition_by: partition,
                order_by: order,
                window_frame: None,
            }));
        }
        row_number
    }
}

/// The alias of a source table's `n`-th child aggregates in a timed part.
fn derived_alias(n: usize) -> String {
    format!("d{}", n + 1)
}

/// `alias.time < cutoff` (`<=` with the cutoff included), both compared as dates when
/// both are dates, else as timestamps (a date is its midnight).
fn before_cutoff(time: &PlanTime, caps: &Capabilities, alias: &str, at: &SourceTime) -> Expr {
    let both_dates = time.cutoff_type == TimeType::Date && at.time_type == TimeType::Date;
    let as_compared = |expr: Expr, of: TimeType| match (of, both_dates) {
        (TimeType::Date, false) => cast(expr, DataType::Timestamp(None, TimezoneInfo::None)),
        _ => expr,
    };
    Expr::BinaryOp {
        left: Box::new(as_compared(
            column_of(alias, &at.column, caps),
            at.time_type,
        )),
        op: if time.include_cutoff {
            BinaryOperator::LtEq
        } else {
            BinaryOperator::Lt
        },
        right: Box::new(as_compared(
            Expr::CompoundIdentifier(vec![quoted(KEYS, caps), quoted(&time.cutoff, caps)]),
            time.cutoff_type,
        )),
    }
}

/// In a point-in-time plan, the CTE of a child's aggregates per (entity, cutoff) pair and
/// parent row: the child's rows before the cutoff, joined to the parent rows of the pair's
/// entity (the parent holds the entity key):
/// ```sql
/// "derived_sessions_transactions" AS (
///   SELECT "k"."customer_id", "k"."cutoff_time", "c"."session_id", SUM("c"."amount") AS "spend"
///   FROM "cutoffs" AS "k" JOIN "sessions" AS "p" ON "p"."customer_id" = "k"."customer_id"
///     JOIN "transactions" AS "c" ON "c"."session_id" = "p"."session_id"
///       AND "c"."paid_at" < "k"."cutoff_time"
///   GROUP BY "k"."customer_id", "k"."cutoff_time", "c"."session_id")
/// ```
/// `source` is the parent's source (its key columns as the parent spells them); `adapt`
/// adapts each aggregate to the dialect.
pub fn derived_child_cte(
    plan: &Plan,
    time: &PlanTime,
    caps: &Capabilities,
    source: &Source,
    child: &DerivedChild,
    adapt: &mut dyn FnMut(&Expr, &RecipePath) -> Expr,
) -> Cte {
    const PARENT: &str = "p";
    const CHILD: &str = "c";
    let key = plan.entity_key();
    let pair: Vec<Expr> = key
        .iter()
        .chain(std::iter::once(&time.cutoff))
        .map(|c| Expr::CompoundIdentifier(vec![quoted(KEYS, caps), quoted(c, caps)]))
        .collect();
    let link = column_of(CHILD, &child.column, caps);
    let mut items: Vec<SelectItem> = pair.iter().cloned().map(SelectItem::UnnamedExpr).collect();
    items.push(aliased(link.clone(), &child.link_name(), caps));
    for value in &child.values {
        let expr = qualified(&value.expr, CHILD, caps);
        items.push(aliased(adapt(&expr, &value.path), &value.name, caps));
    }
    let to_parent = and_all(
        key.iter()
            .zip(&source.grain)
            .map(|(spine, own)| Expr::BinaryOp {
                left: Box::new(column_of(PARENT, own, caps)),
                op: BinaryOperator::Eq,
                right: Box::new(Expr::CompoundIdentifier(vec![
                    quoted(KEYS, caps),
                    quoted(spine, caps),
                ])),
            })
            .collect(),
    );
    let mut to_child = vec![Expr::BinaryOp {
        left: Box::new(link.clone()),
        op: BinaryOperator::Eq,
        right: Box::new(column_of(PARENT, &child.key, caps)),
    }];
    if let Some(at) = &child.time {
        to_child.push(before_cutoff(time, caps, CHILD, at));
    }
    let joins = vec![
        Join {
            relation: aliased_table(table_name(&source.table, caps), PARENT, caps),
            global: false,
            join_operator: JoinOperator::Join(JoinConstraint::On(to_parent)),
        },
        Join {
            relation: aliased_table(table_name(&child.table, caps), CHILD, caps),
            global: false,
            join_operator: JoinOperator::Join(JoinConstraint::On(and_all(to_child))),
        },
    ];
    let mut group = pair;
    group.push(link);
    let keys_table = aliased_table(
        ObjectName::from(vec![quoted(CUTOFFS_CTE, caps)]),
        KEYS,
        caps,
    );
    cte(
        &child.cte_name,
        select(items, keys_table, joins, None, Some(group)),
        caps,
    )
}

/// The widest of some windows: `None` (every row before the cutoff) if any is `None`.
fn widest(windows: &[Option<Window>]) -> Option<Window> {
    let mut widest = None;
    for w in windows {
        match w {
            None => return None,
            Some(w) => widest = Some(widest.map_or(*w, |x: Window| x.max(*w))),
        }
    }
    widest
}

/// `a AND b AND …`.
fn and_all(conditions: Vec<Expr>) -> Expr {
    conditions
        .into_iter()
        .reduce(|a, b| Expr::BinaryOp {
            left: Box::new(a),
            op: BinaryOperator::And,
            right: Box::new(b),
        })
        .unwrap_or(Expr::value(Value::Boolean(true)))
}

/// `CASE WHEN condition THEN value END`.
fn case_when(condition: Expr, value: Expr) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen {
            condition,
            result: value,
        }],
        else_result: None,
    }
}

/// Every aggregate of `expr` counting only the rows where `condition` holds: each argument
/// that reads a column becomes `CASE WHEN condition THEN argument END` (NULL elsewhere,
/// which aggregates skip), as do the ordering of a `WITHIN GROUP`; an aggregate reading no
/// column (`COUNT(*)`, `COUNT(1)`) gets its first argument so (`COUNT(CASE … THEN 1 END)`).
fn only_within(mut expr: Expr, condition: &Expr) -> Expr {
    let _ = visit_expressions_mut(&mut expr, |e| {
        if let Expr::Function(function) = e
            && is_aggregate(function)
        {
            let mut wrapped = false;
            for order in &mut function.within_group {
                let inner = std::mem::replace(&mut order.expr, Expr::value(Value::Null));
                order.expr = case_when(condition.clone(), inner);
                wrapped = true;
            }
            if let FunctionArguments::List(list) = &mut function.args {
                for arg in &mut list.args {
                    let slot = match arg {
                        FunctionArg::Unnamed(a)
                        | FunctionArg::Named { arg: a, .. }
                        | FunctionArg::ExprNamed { arg: a, .. } => a,
                    };
                    if let FunctionArgExpr::Expr(inner) = slot
                        && reads_a_column(inner)
                    {
                        let taken = std::mem::replace(inner, Expr::value(Value::Null));
                        *inner = case_when(condition.clone(), taken);
                        wrapped = true;
                    }
                }
                if !wrapped && let Some(first) = list.args.first_mut() {
                    let slot = match first {
                        FunctionArg::Unnamed(a)
                        | FunctionArg::Named { arg: a, .. }
                        | FunctionArg::ExprNamed { arg: a, .. } => a,
                    };
                    let value = match std::mem::replace(slot, FunctionArgExpr::Wildcard) {
                        FunctionArgExpr::Expr(inner) => inner,
                        _ => Expr::value(Value::Number("1".into(), false)),
                    };
                    *slot = FunctionArgExpr::Expr(case_when(condition.clone(), value));
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    expr
}

/// Whether an expression reads a column.
fn reads_a_column(expr: &Expr) -> bool {
    sqlparser::ast::visit_expressions(expr, |e| {
        if matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_)) {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    })
    .is_break()
}

/// `base`, or `base_2`, `base_3`… : the first not among `taken` ([`crate::sql::fresh_name`]).
fn fresh_name<S: AsRef<str>>(base: &str, taken: &[S]) -> String {
    crate::sql::fresh_name(base, |key| {
        taken.iter().any(|t| t.as_ref().eq_ignore_ascii_case(key))
    })
}
