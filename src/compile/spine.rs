//! Rendering the spine of a plan whose label looks into each row's future, and of a plan
//! whose rows a schedule generates.
//!
//! With a schedule the rows are generated per entity of the schedule's source:
//! ```sql
//! "featurecraft_entities" AS (SELECT "s"."customer_id", MIN("s"."t") AS "featurecraft_first",
//!     MAX("s"."t") AS "featurecraft_last" FROM "events" AS "s"
//!     WHERE "s"."customer_id" IS NOT NULL GROUP BY "s"."customer_id"),
//! "featurecraft_schedule" AS (SELECT "e"."customer_id",
//!     unnest(generate_series(start, until, INTERVAL '12' HOUR)) AS "cutoff_time"
//!     FROM "featurecraft_entities" AS "e" WHERE start <= until)
//! ```
//! (the series spelled per dialect: [`CutoffSeries`]). A label from the future is an
//! aggregate over the label source's rows in each row's label window, the window's edges
//! computed once per (entity, cutoff) pair:
//! ```sql
//! "featurecraft_label_pairs" AS (SELECT "t"."customer_id", "t"."cutoff_time",
//!     cutoff + gap AS "featurecraft_label_from", cutoff + gap + window AS "featurecraft_label_to"
//!     FROM "featurecraft_schedule" AS "t"),
//! "featurecraft_label" AS (SELECT "p"."customer_id", "p"."cutoff_time", SUM("s"."amount") AS "label"
//!     FROM "featurecraft_label_pairs" AS "p" JOIN "orders" AS "s"
//!       ON "s"."customer_id" = "p"."customer_id" AND "s"."t" >= "p"."featurecraft_label_from"
//!      AND "s"."t" < "p"."featurecraft_label_to"
//!     GROUP BY "p"."customer_id", "p"."cutoff_time"),
//! "spine" AS (SELECT "t"."customer_id", "t"."cutoff_time",
//!     CASE WHEN "l"."customer_id" IS NULL THEN <over no rows> ELSE "l"."label" END AS "label"
//!     FROM "featurecraft_schedule" AS "t" LEFT JOIN "featurecraft_label" AS "l" ON …)
//! ```
//! `keep_empty: false` keeps the rows the join matched, `max_per_entity` the first N by a
//! `ROW_NUMBER()` (or, when empty windows are kept, by ending each entity's series at its
//! N-th cutoff), and `drop_immature` the rows whose window ends by the label source's latest
//! time (`featurecraft_horizon`, over the whole table). With a spine table, its rows stand
//! for `featurecraft_schedule` (their distinct pairs for the label's).

use crate::compile::analyze::{FutureLabel, Plan, PlanSchedule};
use crate::compile::ast::{
    aliased, aliased_table, column_of, cte, quoted, select, table_factor, table_name,
    unless_unmatched,
};
use crate::compile::cte::{
    ENTITIES_CTE, HORIZON_CTE, LABEL_CTE, LABEL_PAIRS_CTE, LABELLED_CTE, SCHEDULE_CTE, SPINE_CTE,
};
use crate::compile::dialect::{Capabilities, CutoffSeries};
use crate::compile::point_in_time::{PlanTime, ScheduleEnd, ScheduleStart, TimeType, Window};
use crate::diagnostic::RecipePath;
use crate::sql::{call, cast};
use sqlparser::ast::{
    BinaryOperator, Cte, DataType, DateTimeField, Distinct, Expr, Interval, Join, JoinConstraint,
    JoinOperator, ObjectName, OrderByExpr, OrderByOptions, Query, SelectItem, SetExpr, SetOperator,
    SetQuantifier, TableAlias, TableFactor, TimezoneInfo, Value, WindowSpec, WindowType,
};

/// Restricts rows to the sampled entities, given their entity key columns (the renderer's
/// `CteFilter`).
type CteFilter<'a> = &'a dyn Fn(&[Expr]) -> Option<Expr>;

/// The alias of the spine's rows (the spine table's, or the generated ones).
pub const SPINE_ROWS: &str = "t";

const FIRST: &str = "featurecraft_first";
const LAST: &str = "featurecraft_last";
const UNTIL: &str = "featurecraft_until";
const FROM: &str = "featurecraft_label_from";
const TO: &str = "featurecraft_label_to";
const HORIZON: &str = "featurecraft_horizon";
const RANK: &str = "featurecraft_n";
const SERIES: &str = "featurecraft_cutoff";

/// Whether a plan's spine is rendered here: it has a schedule or a label from the future.
pub fn is_rendered_here(plan: &Plan) -> bool {
    plan.spine.schedule.is_some() || plan.label.future.is_some()
}

/// The CTEs giving the spine, in order, the last one named [`SPINE_CTE`]; and whether the
/// query's `WITH` must be `RECURSIVE` (a schedule in a dialect without a series function).
/// `spine_items` are the spine table's row-level features, read from [`SPINE_ROWS`] and
/// adapted; `filter`, given entity key columns, restricts rows to the sampled entities;
/// `adapt` adapts an expression to the dialect.
pub fn spine_ctes(
    plan: &Plan,
    time: &PlanTime,
    caps: &Capabilities,
    filter: Option<CteFilter>,
    spine_items: Vec<SelectItem>,
    adapt: &mut dyn FnMut(&Expr, &RecipePath) -> Expr,
) -> (Vec<Cte>, bool) {
    let chain = Chain {
        plan,
        time,
        caps,
        filter,
        key: plan.entity_key(),
    };
    let mut ctes = Vec::new();
    let mut recursive = false;
    let rows: ObjectName = match &plan.spine.schedule {
        Some(schedule) => {
            ctes.push(chain.entities(schedule));
            let (series, is_recursive) = chain.series(schedule, adapt);
            recursive = is_recursive;
            ctes.push(series);
            ObjectName::from(vec![quoted(SCHEDULE_CTE, caps)])
        }
        None => table_name(&plan.spine.table, caps),
    };
    let generated = plan.spine.schedule.is_some();
    if let Some(label) = &plan.label.future {
        ctes.push(chain.label_pairs(label, &rows, !generated, adapt));
        ctes.push(chain.label(label, adapt));
        if chain.drops_immature() {
            ctes.push(chain.horizon(label));
        }
    }
    ctes.extend(chain.spine(&rows, spine_items, adapt));
    (ctes, recursive)
}

/// The CTE the point-in-time sources read their (entity, cutoff) pairs from instead of the
/// spine, when a schedule's rows are the spine's (every empty window kept, no immature row
/// dropped): the generated rows, distinct by construction and without the label, which
/// the spine would otherwise compute once more for them.
pub fn pairs_source(plan: &Plan) -> Option<&'static str> {
    let schedule = plan.spine.schedule.as_ref()?;
    (schedule.keep_empty && !schedule.drop_immature).then_some(SCHEDULE_CTE)
}

/// The CTEs of a schedule's rows alone (its entities and their cutoffs), when they are
/// the spine's rows: every empty window kept and no immature row dropped, so reading the
/// rows needs no label. `None` when the label decides which rows are kept.
pub fn schedule_rows_ctes(
    plan: &Plan,
    time: &PlanTime,
    caps: &Capabilities,
    adapt: &mut dyn FnMut(&Expr, &RecipePath) -> Expr,
) -> Option<(Vec<Cte>, bool)> {
    let schedule = plan.spine.schedule.as_ref()?;
    pairs_source(plan)?;
    let chain = Chain {
        plan,
        time,
        caps,
        filter: None,
        key: plan.entity_key(),
    };
    let (series, recursive) = chain.series(schedule, adapt);
    Some((vec![chain.entities(schedule), series], recursive))
}

/// What rendering the spine's CTEs needs.
struct Chain<'a> {
    plan: &'a Plan,
    time: &'a PlanTime,
    caps: &'a Capabilities,
    filter: Option<CteFilter<'a>>,
    /// The entity key, as the spine (and the output) spells it.
    key: Vec<String>,
}

impl Chain<'_> {
    /// The sampled rows' restriction on these key columns, if sampling.
    fn sampled(&self, key: Vec<Expr>) -> Option<Expr> {
        self.filter.and_then(|f| f(&key))
    }

    fn drops_immature(&self) -> bool {
        self.plan
            .spine
            .schedule
            .as_ref()
            .is_some_and(|s| s.drop_immature)
            && self.plan.label.future.is_some()
    }

    /// `"featurecraft_entities"`: the schedule source's entities (non-NULL keys), with
    /// their first and last times where the schedule counts from them.
    fn entities(&self, schedule: &PlanSchedule) -> Cte {
        let caps = self.caps;
        let own: Vec<Expr> = schedule
            .key
            .iter()
            .map(|k| column_of("s", k, caps))
            .collect();
        let mut items: Vec<SelectItem> = own
            .iter()
            .zip(&self.key)
            .map(|(expr, name)| aliased(expr.clone(), name, caps))
            .collect();
        let t = column_of("s", &schedule.time.column, caps);
        if matches!(schedule.start, ScheduleStart::FirstEvent(_)) {
            items.push(aliased(call("MIN", vec![t.clone()]), FIRST, caps));
        }
        if schedule.until == ScheduleEnd::LastEvent {
            items.push(aliased(call("MAX", vec![t]), LAST, caps));
        }
        let mut conditions: Vec<Expr> = own
            .iter()
            .map(|k| Expr::IsNotNull(Box::new(k.clone())))
            .collect();
        conditions.extend(self.sampled(own.clone()));
        cte(
            ENTITIES_CTE,
            select(
                items,
                aliased_table(table_name(&schedule.table, caps), "s", caps),
                vec![],
                and_all(conditions),
                Some(own),
            ),
            caps,
        )
    }

    /// `"featurecraft_schedule"`: each entity's cutoffs, `start + k × every` up to `until`
    /// (with `max_per_entity` and empty windows kept, up to the N-th cutoff), spelled as the
    /// dialect's series; and whether that needs a recursive `WITH`. After the bounds, one
    /// table-like `match` over the dialect's way of generating a series ([`CutoffSeries`]),
    /// kept whole so the five spellings read side by side.
    fn series(
        &self,
        schedule: &PlanSchedule,
        adapt: &mut dyn FnMut(&Expr, &RecipePath) -> Expr,
    ) -> (Cte, bool) {
        let caps = self.caps;
        let is_date = schedule.time.time_type == TimeType::Date;
        let of_type = if is_date {
            TimeType::Date
        } else {
            TimeType::Timestamp
        };
        let path =
            RecipePath::PointInTime(Some(crate::diagnostic::PointInTimeField::Schedule(None)));
        let as_cutoff = |expr: Expr| {
            if is_date {
                cast(expr, DataType::Date)
            } else {
                expr
            }
        };
        let entity = |column: &str| column_of("e", column, caps);
        let start = match schedule.start {
            ScheduleStart::At(at) => time_literal(at, is_date),
            ScheduleStart::FirstEvent(offset) if offset.seconds == 0 => entity(FIRST),
            ScheduleStart::FirstEvent(offset) => {
                as_cutoff(adapt(&shift(entity(FIRST), offset, true, of_type), &path))
            }
        };
        let until = match schedule.until {
            ScheduleEnd::At(at) => time_literal(at, is_date),
            ScheduleEnd::LastEvent => entity(LAST),
        };
        // With empty windows kept, the N-th cutoff ends the series: no ranking needed.
        let last_kept = schedule
            .max_per_entity
            .filter(|_| schedule.keep_empty || self.plan.label.future.is_none())
            .and_then(|n| n.checked_sub(1)?.checked_mul(schedule.every.seconds))
            .filter(|seconds| *seconds <= MAX_SHIFT_SECONDS);
        let until = match last_kept {
            None => until,
            Some(seconds) => call(
                "LEAST",
                vec![
                    until,
                    as_cutoff(adapt(
                        &shift(start.clone(), Window { seconds }, true, of_type),
                        &path,
                    )),
                ],
            ),
        };
        let step = step_interval(schedule.every, caps.cutoff_series);
        let key_items = |alias: &str| -> Vec<SelectItem> {
            self.key
                .iter()
                .map(|k| SelectItem::UnnamedExpr(column_of(alias, k, caps)))
                .collect()
        };
        let nonempty = Expr::BinaryOp {
            left: Box::new(start.clone()),
            op: BinaryOperator::LtEq,
            right: Box::new(until.clone()),
        };
        let entities = aliased_table(
            ObjectName::from(vec![quoted(ENTITIES_CTE, caps)]),
            "e",
            caps,
        );
        let cutoff = &self.time.cutoff;
        let body = match caps.cutoff_series {
            CutoffSeries::Unnest | CutoffSeries::SetReturning | CutoffSeries::Explode => {
                let series = match caps.cutoff_series {
                    CutoffSeries::Unnest if caps.series_in_nanoseconds && !is_date => call(
                        "arrow_cast",
                        vec![
                            call(
                                "unnest",
                                vec![call("generate_series", vec![start, until, step])],
                            ),
                            Expr::value(Value::SingleQuotedString(schedule.arrow_type.clone())),
                        ],
                    ),
                    CutoffSeries::Unnest => as_cutoff(call(
                        "unnest",
                        vec![call("generate_series", vec![start, until, step])],
                    )),
                    CutoffSeries::SetReturning => {
                        as_cutoff(call("generate_series", vec![start, until, step]))
                    }
                    _ => call("explode", vec![call("sequence", vec![start, until, step])]),
                };
                let mut items = key_items("e");
                items.push(aliased(series, cutoff, caps));
                select(items, entities, vec![], Some(nonempty), None)
            }
            CutoffSeries::UnnestJoin => {
                let generator = if is_date {
                    "GENERATE_DATE_ARRAY"
                } else {
                    "GENERATE_TIMESTAMP_ARRAY"
                };
                let unnest = TableFactor::UNNEST {
                    alias: Some(TableAlias {
                        explicit: true,
                        name: quoted(SERIES, caps),
                        columns: vec![],
                        at: None,
                    }),
                    array_exprs: vec![call(generator, vec![start, until, step])],
                    with_offset: false,
                    with_offset_alias: None,
                    with_ordinality: false,
                };
                let mut items = key_items("e");
                items.push(aliased(
                    Expr::Identifier(quoted(SERIES, caps)),
                    cutoff,
                    caps,
                ));
                let join = Join {
                    relation: unnest,
                    global: false,
                    join_operator: JoinOperator::CrossJoin(JoinConstraint::None),
                };
                select(items, entities, vec![join], Some(nonempty), None)
            }
            CutoffSeries::Recursive => {
                let mut anchor_items = key_items("e");
                anchor_items.push(aliased(start, cutoff, caps));
                anchor_items.push(aliased(until, UNTIL, caps));
                let anchor = select(anchor_items, entities, vec![], Some(nonempty), None);
                let previous = column_of("r", cutoff, caps);
                let next = as_cutoff(adapt(
                    &shift(previous, schedule.every, true, of_type),
                    &path,
                ));
                let mut step_items = key_items("r");
                step_items.push(aliased(next.clone(), cutoff, caps));
                step_items.push(SelectItem::UnnamedExpr(column_of("r", UNTIL, caps)));
                let within = Expr::BinaryOp {
                    left: Box::new(next),
                    op: BinaryOperator::LtEq,
                    right: Box::new(column_of("r", UNTIL, caps)),
                };
                let step = select(
                    step_items,
                    aliased_table(
                        ObjectName::from(vec![quoted(SCHEDULE_CTE, caps)]),
                        "r",
                        caps,
                    ),
                    vec![],
                    Some(within),
                    None,
                );
                let mut union = anchor;
                union.body = Box::new(SetExpr::SetOperation {
                    op: SetOperator::Union,
                    set_quantifier: SetQuantifier::All,
                    left: union.body,
                    right: step.body,
                });
                return (cte(SCHEDULE_CTE, union, caps), true);
            }
        };
        (cte(SCHEDULE_CTE, body, caps), false)
    }

    /// How the cutoff and the label source's time are compared: as dates when both are dates
    /// and the gap and window are whole days, else as timestamps (a date is its midnight).
    fn compare(&self, label: &FutureLabel) -> TimeType {
        if self.time.cutoff_type == TimeType::Date
            && label.time.time_type == TimeType::Date
            && label.gap.whole_days()
            && label.window.whole_days()
        {
            TimeType::Date
        } else {
            TimeType::Timestamp
        }
    }

    /// `"featurecraft_label_pairs"`: the rows' (entity, cutoff) pairs, distinct when read from
    /// a spine table, with their label window's edges.
    fn label_pairs(
        &self,
        label: &FutureLabel,
        rows: &ObjectName,
        distinct: bool,
        adapt: &mut dyn FnMut(&Expr, &RecipePath) -> Expr,
    ) -> Cte {
        let caps = self.caps;
        let compare = self.compare(label);
        let row = |c: &str| column_of(SPINE_ROWS, c, caps);
        let mut items: Vec<SelectItem> = self
            .key
            .iter()
            .chain(std::iter::once(&self.time.cutoff))
            .map(|c| SelectItem::UnnamedExpr(row(c)))
            .collect();
        let cutoff = as_compared(row(&self.time.cutoff), self.time.cutoff_type, compare);
        let path = RecipePath::Label(crate::diagnostic::LabelField::Window);
        let edge = |span: Window, adapt: &mut dyn FnMut(&Expr, &RecipePath) -> Expr| {
            if span.seconds == 0 {
                cutoff.clone()
            } else {
                adapt(&shift(cutoff.clone(), span, true, compare), &path)
            }
        };
        items.push(aliased(edge(label.gap, adapt), FROM, caps));
        items.push(aliased(edge(label.end(), adapt), TO, caps));
        let key: Vec<Expr> = self.key.iter().map(|k| row(k)).collect();
        let mut query = select(
            items,
            aliased_table(rows.clone(), SPINE_ROWS, caps),
            vec![],
            self.sampled(key),
            None,
        );
        if distinct && let SetExpr::Select(body) = query.body.as_mut() {
            body.distinct = Some(Distinct::Distinct);
        }
        cte(LABEL_PAIRS_CTE, query, caps)
    }

    /// `"featurecraft_label"`: the label per pair, over the source's rows in its window
    /// (pairs whose window holds no row have no row here).
    fn label(&self, label: &FutureLabel, adapt: &mut dyn FnMut(&Expr, &RecipePath) -> Expr) -> Cte {
        let caps = self.caps;
        let compare = self.compare(label);
        let pair = |c: &str| column_of("p", c, caps);
        let group: Vec<Expr> = self
            .key
            .iter()
            .chain(std::iter::once(&self.time.cutoff))
            .map(|c| pair(c))
            .collect();
        let mut items: Vec<SelectItem> =
            group.iter().cloned().map(SelectItem::UnnamedExpr).collect();
        let expr = crate::compile::ast::qualified(&label.expr, "s", caps);
        let expr = adapt(&expr, &self.plan.label.path);
        items.push(aliased(expr, &self.plan.label.name, caps));

        // The path from the pair's entity to the source's rows: `"h2"`, `"h1"`, then `"s"`.
        let hop_alias = |n: usize| format!("h{n}");
        let holder = if label.path.is_empty() {
            "s".to_string()
        } else {
            hop_alias(label.path.len())
        };
        let to_key = and_all(
            self.key
                .iter()
                .zip(&label.key)
                .map(|(spine, own)| equals(column_of(&holder, own, caps), pair(spine)))
                .collect(),
        );
        let mut joins = Vec::new();
        for n in (1..=label.path.len()).rev() {
            let on = if n == label.path.len() {
                to_key.clone()
            } else {
                let next = &label.path[n];
                Some(equals(
                    column_of(&hop_alias(n), &next.from, caps),
                    column_of(&hop_alias(n + 1), &next.to, caps),
                ))
            };
            joins.push(inner_join(
                aliased_table(
                    table_name(&label.path[n - 1].table, caps),
                    &hop_alias(n),
                    caps,
                ),
                on,
            ));
        }
        let t = as_compared(
            column_of("s", &label.time.column, caps),
            label.time.time_type,
            compare,
        );
        let (after, before) = if self.time.include_cutoff {
            (BinaryOperator::Gt, BinaryOperator::LtEq)
        } else {
            (BinaryOperator::GtEq, BinaryOperator::Lt)
        };
        let mut on: Vec<Expr> = match label.path.first() {
            None => to_key.into_iter().collect(),
            Some(first) => vec![equals(
                column_of("s", &first.from, caps),
                column_of(&hop_alias(1), &first.to, caps),
            )],
        };
        on.push(Expr::BinaryOp {
            left: Box::new(t.clone()),
            op: after,
            right: Box::new(pair(FROM)),
        });
        on.push(Expr::BinaryOp {
            left: Box::new(t),
            op: before,
            right: Box::new(pair(TO)),
        });
        joins.push(inner_join(
            aliased_table(table_name(&label.table, caps), "s", caps),
            and_all(on),
        ));
        let holder_key = label
            .key
            .iter()
            .map(|k| column_of(&holder, k, caps))
            .collect();
        let body = select(
            items,
            aliased_table(
                ObjectName::from(vec![quoted(LABEL_PAIRS_CTE, caps)]),
                "p",
                caps,
            ),
            joins,
            self.sampled(holder_key),
            Some(group),
        );
        cte(LABEL_CTE, body, caps)
    }

    /// `"featurecraft_horizon"`: the label source's latest time, over the whole table.
    fn horizon(&self, label: &FutureLabel) -> Cte {
        let caps = self.caps;
        let latest = call("MAX", vec![column_of("s", &label.time.column, caps)]);
        cte(
            HORIZON_CTE,
            select(
                vec![aliased(latest, HORIZON, caps)],
                aliased_table(table_name(&label.table, caps), "s", caps),
                vec![],
                None,
                None,
            ),
            caps,
        )
    }

    /// The spine CTE (and the ranked rows before it, when only the first N non-empty
    /// cutoffs per entity are kept): the rows, their features, the label.
    fn spine(
        &self,
        rows: &ObjectName,
        spine_items: Vec<SelectItem>,
        adapt: &mut dyn FnMut(&Expr, &RecipePath) -> Expr,
    ) -> Vec<Cte> {
        let caps = self.caps;
        let plan = self.plan;
        let row = |c: &str| column_of(SPINE_ROWS, c, caps);
        let grain: Vec<SelectItem> = plan
            .grain
            .iter()
            .map(|g| SelectItem::UnnamedExpr(row(g)))
            .collect();
        let mut items = grain.clone();
        items.extend(spine_items);
        let mut joins = Vec::new();
        let mut conditions: Vec<Expr> = Vec::new();
        if plan.spine.schedule.is_none() {
            conditions.extend(self.sampled(self.key.iter().map(|k| row(k)).collect()));
        }
        let schedule = plan.spine.schedule.as_ref();
        let keep_empty = schedule.is_none_or(|s| s.keep_empty);
        let label_value = match &plan.label.future {
            Some(label) => {
                let found = |c: &str| column_of("l", c, caps);
                let on = and_all(
                    self.key
                        .iter()
                        .chain(std::iter::once(&self.time.cutoff))
                        .map(|c| equals(row(c), found(c)))
                        .collect(),
                );
                joins.push(Join {
                    relation: aliased_table(
                        ObjectName::from(vec![quoted(LABEL_CTE, caps)]),
                        "l",
                        caps,
                    ),
                    global: false,
                    join_operator: JoinOperator::Left(match on {
                        Some(on) => JoinConstraint::On(on),
                        None => JoinConstraint::None,
                    }),
                });
                let marker = found(&self.key[0]);
                if !keep_empty {
                    conditions.push(Expr::IsNotNull(Box::new(marker.clone())));
                }
                let value = found(&plan.label.name);
                match &label.empty {
                    None => value,
                    Some(empty) => unless_unmatched(marker, adapt(empty, &plan.label.path), value),
                }
            }
            None => adapt(&plan.label.expr, &plan.label.path),
        };
        items.push(aliased(label_value, &plan.label.name, caps));
        let ranked = schedule
            .and_then(|s| s.max_per_entity)
            .filter(|_| !keep_empty);
        let from = aliased_table(rows.clone(), SPINE_ROWS, caps);
        let Some(n) = ranked else {
            self.immature(&mut joins, &mut conditions, adapt);
            return vec![cte(
                SPINE_CTE,
                select(items, from, joins, and_all(conditions), None),
                caps,
            )];
        };
        // The first N labelled cutoffs per entity, in time order.
        items.push(aliased(self.rank(), RANK, caps));
        let labelled = cte(
            LABELLED_CTE,
            select(items, from, joins, and_all(conditions), None),
            caps,
        );
        let mut names: Vec<SelectItem> = grain;
        names.extend(
            plan.features
                .iter()
                .filter(|f| f.home == crate::compile::analyze::FeatureHome::Spine)
                .map(|f| SelectItem::UnnamedExpr(row(&f.name))),
        );
        names.push(SelectItem::UnnamedExpr(row(&plan.label.name)));
        let mut joins = Vec::new();
        let mut conditions = vec![Expr::BinaryOp {
            left: Box::new(row(RANK)),
            op: BinaryOperator::LtEq,
            right: Box::new(Expr::value(Value::Number(n.to_string(), false))),
        }];
        self.immature(&mut joins, &mut conditions, adapt);
        vec![
            labelled,
            cte(
                SPINE_CTE,
                select(
                    names,
                    aliased_table(
                        ObjectName::from(vec![quoted(LABELLED_CTE, caps)]),
                        SPINE_ROWS,
                        caps,
                    ),
                    joins,
                    and_all(conditions),
                    None,
                ),
                caps,
            ),
        ]
    }

    /// With `drop_immature`: the horizon joined, and the row's label window ending by it.
    fn immature(
        &self,
        joins: &mut Vec<Join>,
        conditions: &mut Vec<Expr>,
        adapt: &mut dyn FnMut(&Expr, &RecipePath) -> Expr,
    ) {
        let (true, Some(label)) = (self.drops_immature(), &self.plan.label.future) else {
            return;
        };
        let caps = self.caps;
        let compare = self.compare(label);
        joins.push(Join {
            relation: aliased_table(ObjectName::from(vec![quoted(HORIZON_CTE, caps)]), "h", caps),
            global: false,
            join_operator: JoinOperator::CrossJoin(JoinConstraint::None),
        });
        let cutoff = as_compared(
            column_of(SPINE_ROWS, &self.time.cutoff, caps),
            self.time.cutoff_type,
            compare,
        );
        let end = adapt(
            &shift(cutoff, label.end(), true, compare),
            &RecipePath::Label(crate::diagnostic::LabelField::Window),
        );
        conditions.push(Expr::BinaryOp {
            left: Box::new(end),
            op: BinaryOperator::LtEq,
            right: Box::new(as_compared(
                column_of("h", HORIZON, caps),
                label.time.time_type,
                compare,
            )),
        });
    }

    /// `ROW_NUMBER() OVER (PARTITION BY entity key ORDER BY cutoff)`.
    fn rank(&self) -> Expr {
        let caps = self.caps;
        let row = |c: &str| column_of(SPINE_ROWS, c, caps);
        let mut row_number = call("ROW_NUMBER", vec![]);
        if let Expr::Function(f) = &mut row_number {
            f.over = Some(WindowType::WindowSpec(WindowSpec {
                window_name: None,
                partition_by: self.key.iter().map(|k| row(k)).collect(),
                order_by: vec![OrderByExpr {
                    expr: row(&self.time.cutoff),
                    options: OrderByOptions {
                        asc: Some(true),
                        nulls_first: None,
                    },
                    with_fill: None,
                }],
                window_frame: None,
            }));
        }
        row_number
    }
}

/// The longest shift a schedule clips its series with (100 years).
const MAX_SHIFT_SECONDS: u64 = 36_500 * 86_400;

/// The spine's rows with the spine's (or the generated) columns, as a query of its own:
/// `WITH … SELECT grain FROM "spine"` (or from the last of `ctes`, which has the grain's
/// columns), for reading a generated spine's rows.
pub fn rows_query(ctes: Vec<Cte>, recursive: bool, grain: &[String], caps: &Capabilities) -> Query {
    let last = ctes
        .last()
        .map_or_else(|| SPINE_CTE.to_string(), |c| c.alias.name.value.clone());
    let items = grain
        .iter()
        .map(|g| SelectItem::UnnamedExpr(Expr::Identifier(quoted(g, caps))))
        .collect();
    let mut query = select(
        items,
        table_factor(ObjectName::from(vec![quoted(&last, caps)])),
        vec![],
        None,
        None,
    );
    query.with = Some(sqlparser::ast::With {
        with_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
        recursive,
        cte_tables: ctes,
    });
    query
}

/// `time ± span` as the compiler's `featurecraft_window_start(time, count, 'UNIT', 'TYPE')`,
/// which adapting spells in the dialect as a date or a timestamp: `time − span` (a window's
/// start), or with `forward` `time + span` (a negative count).
pub(crate) fn shift(time: Expr, span: Window, forward: bool, compare: TimeType) -> Expr {
    let (count, unit) = span.in_unit();
    let (_, unit, _) = unit.names();
    let count = if forward {
        format!("-{count}")
    } else {
        count.to_string()
    };
    let of_type = match compare {
        TimeType::Date => "DATE",
        TimeType::Timestamp => "TIMESTAMP",
    };
    call(
        crate::compile::functions::WINDOW_START,
        vec![
            time,
            Expr::value(Value::Number(count, false)),
            Expr::value(Value::SingleQuotedString(unit.into())),
            Expr::value(Value::SingleQuotedString(of_type.into())),
        ],
    )
}

/// A time of the recipe as a literal: `CAST('2014-01-02 00:00:00' AS TIMESTAMP)`, or a
/// date's `CAST('2014-01-02' AS DATE)`.
fn time_literal(at: chrono::NaiveDateTime, is_date: bool) -> Expr {
    if is_date {
        let text = at.date().format("%Y-%m-%d").to_string();
        cast(Expr::value(Value::SingleQuotedString(text)), DataType::Date)
    } else {
        let text = at.format("%Y-%m-%d %H:%M:%S%.f").to_string();
        cast(
            Expr::value(Value::SingleQuotedString(text)),
            DataType::Timestamp(None, TimezoneInfo::None),
        )
    }
}

/// The series' step: `INTERVAL '12' HOUR` (BigQuery: `INTERVAL 12 HOUR`).
fn step_interval(every: Window, series: CutoffSeries) -> Expr {
    let (count, unit) = every.in_unit();
    let field = match unit {
        crate::compile::point_in_time::WindowUnit::Day => DateTimeField::Day,
        crate::compile::point_in_time::WindowUnit::Hour => DateTimeField::Hour,
        crate::compile::point_in_time::WindowUnit::Minute => DateTimeField::Minute,
        crate::compile::point_in_time::WindowUnit::Second => DateTimeField::Second,
    };
    let value = if series == CutoffSeries::UnnestJoin {
        Value::Number(count.to_string(), false)
    } else {
        Value::SingleQuotedString(count.to_string())
    };
    Expr::Interval(Interval {
        value: Box::new(Expr::value(value)),
        leading_field: Some(field),
        leading_precision: None,
        last_field: None,
        fractional_seconds_precision: None,
    })
}

/// A time as compared: a date cast to a timestamp when times compare as timestamps.
fn as_compared(expr: Expr, of: TimeType, compare: TimeType) -> Expr {
    match (of, compare) {
        (TimeType::Date, TimeType::Timestamp) => {
            cast(expr, DataType::Timestamp(None, TimezoneInfo::None))
        }
        _ => expr,
    }
}

fn equals(left: Expr, right: Expr) -> Expr {
    Expr::BinaryOp {
        left: Box::new(left),
        op: BinaryOperator::Eq,
        right: Box::new(right),
    }
}

fn inner_join(relation: TableFactor, on: Option<Expr>) -> Join {
    Join {
        relation,
        global: false,
        join_operator: JoinOperator::Join(match on {
            Some(on) => JoinConstraint::On(on),
            None => JoinConstraint::None,
        }),
    }
}

/// `a AND b AND …`, `None` for no condition.
fn and_all(conditions: Vec<Expr>) -> Option<Expr> {
    conditions.into_iter().reduce(|a, b| Expr::BinaryOp {
        left: Box::new(a),
        op: BinaryOperator::And,
        right: Box::new(b),
    })
}
