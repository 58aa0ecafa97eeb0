//! Labels from the future and cutoff schedules: the label as an aggregate over a window
//! after each row's cutoff, and the training rows generated per entity (DESIGN.md §3.9).
//!
//! The label window is the complement of the features' edge: with features `t < c` it is
//! `c + gap <= t < c + gap + window`, with `include_cutoff` (features `t <= c`) it is
//! `c + gap < t <= c + gap + window`, so no source row can feed both a feature and the label
//! of one row. A schedule's rows are, per entity of its source, `start + k × every` while
//! `<= until`; `keep_empty: false` drops a cutoff whose label window is empty,
//! `max_per_entity` keeps the first N (after that drop), `drop_immature` the rows whose label
//! window ends after the label source's latest time (after both).

use super::{Analyzer, Role, Timing};
use crate::catalog::Table;
use crate::compile::fragment;
use crate::compile::point_in_time::{
    ScheduleEnd, ScheduleStart, SourceTime, TimeType, Window, parse_span, parse_start, parse_until,
};
use crate::compile::relationships::{self, Hop, Link};
use crate::contract::recipe::{FeatureRecipe, LabelSpec, Schedule};
use crate::diagnostic::{
    Code, Diagnostic, LabelField, PointInTimeField, RecipePath, did_you_mean, suggestions,
};
use sqlparser::ast::{Expr, Value};

/// A label computed from a window after each row's cutoff.
#[derive(Debug, Clone, PartialEq)]
pub struct FutureLabel {
    /// The label's source table, as the catalog spells it.
    pub table: String,
    /// The entity key as the table holding it spells it (the source, or the last hop of
    /// `path`).
    pub key: Vec<String>,
    /// For a source without the entity key: the tables it is joined through to reach it.
    pub path: Vec<Hop>,
    /// The source's time column.
    pub time: SourceTime,
    /// The span from the cutoff to the window's start (maybe zero).
    pub gap: Window,
    /// The window's length.
    pub window: Window,
    /// The aggregate over the window's rows, columns in the catalog's spelling.
    pub expr: Expr,
    /// The label over an empty window (`empty_value`, or the expression's value over no
    /// rows); `None` when that is NULL.
    pub empty: Option<Expr>,
}

impl FutureLabel {
    /// The span from the cutoff to the window's end.
    pub fn end(&self) -> Window {
        Window {
            seconds: self.gap.seconds + self.window.seconds,
        }
    }
}

/// A checked cutoff schedule: the training rows, generated.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanSchedule {
    /// The table whose entities get cutoffs, as the catalog spells it.
    pub table: String,
    /// The entity key as that table spells it.
    pub key: Vec<String>,
    /// Its time column (the cutoffs have its type).
    pub time: SourceTime,
    /// That column's Arrow type as Arrow writes it (`Timestamp(µs)`), for engines whose
    /// series of times has another unit.
    pub arrow_type: String,
    /// The first cutoff.
    pub start: ScheduleStart,
    /// The span between cutoffs.
    pub every: Window,
    /// The last possible cutoff.
    pub until: ScheduleEnd,
    /// Cutoffs with an empty label window are kept.
    pub keep_empty: bool,
    /// At most this many cutoffs per entity, the first ones.
    pub max_per_entity: Option<u64>,
    /// Rows whose label window ends after the label source's latest time are left out.
    pub drop_immature: bool,
}

fn label_path(field: LabelField) -> RecipePath {
    RecipePath::Label(field)
}

fn schedule_path(field: &str) -> RecipePath {
    RecipePath::PointInTime(Some(PointInTimeField::Schedule(Some(field.to_string()))))
}

impl<'c> Analyzer<'c> {
    /// The windowed label, checked (`E032`); `None` when the recipe has none or it is wrong
    /// (then reported). `timing` is `None` when the point-in-time facts were wrong.
    pub(super) fn plan_future_label(
        &mut self,
        recipe: &FeatureRecipe,
        timing: Option<&Timing>,
        key: &[String],
        links: &[Link],
    ) -> Option<FutureLabel> {
        let label = &recipe.label;
        if !label.is_windowed() {
            return None;
        }
        if recipe.point_in_time.is_none() {
            let field = if label.source_table.is_some() {
                LabelField::SourceTable
            } else if label.expression.is_some() {
                LabelField::Expression
            } else {
                LabelField::Window
            };
            self.push(refuse(
                "a label from a window after the cutoff needs `point_in_time`: without a cutoff there is no future to look into".to_string(),
                label_path(field),
                "add `point_in_time` with the cutoff column (and a `schedule` to generate the rows), or compute the label with `column`/`derivation`",
            ));
            return None;
        }
        let mut ok = self.future_label_fields(label);
        let (window, gap) = self.future_label_spans(label, &mut ok);
        let empty = self.future_label_empty(label, &mut ok);

        let source_name = label.source_table.as_deref()?;
        let table = self.resolve_table(source_name, &label_path(LabelField::SourceTable))?;
        let reached = self.label_reaches_key(table, key, links);
        let time = self.label_source_time(table, timing)?;
        let (holder_key, path) = reached?;

        let expression_path = label_path(LabelField::Expression);
        let mut expr =
            fragment::parse_fragment(label.expression.as_deref()?, expression_path.clone())
                .map_err(|d| self.push(d))
                .ok()?;
        let found = self.resolve_fragment(table, &mut expr, &[], &expression_path, Role::Label)?;
        if !found.facts.aggregates || !found.bare_non_grain.is_empty() {
            self.push(refuse(
                format!(
                    "label expression `{}` is not an aggregate: it must summarise the rows of `{}` in the window",
                    label.expression.as_deref().unwrap_or_default(),
                    table.name
                ),
                expression_path,
                "aggregate it, e.g. `SUM(amount)`, `COUNT(*)` or `CASE WHEN COUNT(*) = 0 THEN 1 ELSE 0 END`",
            ));
            return None;
        }
        let expr = crate::compile::infer::make_portable(expr, table);
        let empty = empty.or_else(|| fragment::empty_set_value(&expr, &|_| None));
        if !ok {
            return None;
        }
        Some(FutureLabel {
            table: table.name.clone(),
            key: holder_key,
            path,
            time,
            gap: gap?,
            window: window?,
            expr,
            empty,
        })
    }

    /// A future label's fields: `source_table`, `expression` and `window` all given, and no
    /// `derivation` beside them (`E032` for each that is not so).
    fn future_label_fields(&mut self, label: &LabelSpec) -> bool {
        let mut ok = true;
        for (present, field, name) in [
            (
                label.source_table.is_some(),
                LabelField::SourceTable,
                "source_table",
            ),
            (
                label.expression.is_some(),
                LabelField::Expression,
                "expression",
            ),
            (label.window.is_some(), LabelField::Window, "window"),
        ] {
            if !present {
                self.push(refuse(
                    format!("a label from a window after the cutoff needs `label.{name}`"),
                    label_path(field),
                    "give `source_table`, `expression` (an aggregate) and `window` (e.g. `\"30 days\"`)",
                ));
                ok = false;
            }
        }
        if label.derivation.is_some() {
            self.push(refuse(
                "the label has both `derivation` and `expression`: it is computed one way".to_string(),
                label_path(LabelField::Derivation),
                "keep `expression` (over the window after the cutoff) or `derivation` (over the spine's row)",
            ));
            ok = false;
        }
        ok
    }

    /// A future label's window and gap (the gap 0 when absent), read; `ok` false (and
    /// `E032` at the field) for one that does not read.
    fn future_label_spans(
        &mut self,
        label: &LabelSpec,
        ok: &mut bool,
    ) -> (Option<Window>, Option<Window>) {
        let span = |text: &Option<String>, what: &str, zero_ok: bool, field: LabelField| {
            text.as_deref()
                .map(|t| parse_span(t, what, zero_ok).map_err(|e| (e, field)))
        };
        let window = span(&label.window, "window", false, LabelField::Window);
        let gap =
            span(&label.gap, "gap", true, LabelField::Gap).unwrap_or(Ok(Window { seconds: 0 }));
        match (window, gap) {
            (Some(Ok(window)), Ok(gap)) => (Some(window), Some(gap)),
            (window, gap) => {
                for (e, field) in [window.and_then(Result::err), gap.err()]
                    .into_iter()
                    .flatten()
                {
                    self.push(
                        Diagnostic::new(Code::E032, e.message)
                            .at(label_path(field))
                            .hint(e.hint),
                    );
                    *ok = false;
                }
                (None, None)
            }
        }
    }

    /// A future label's `empty_value` as a SQL literal; `ok` false (and `E032`) for an
    /// array or an object.
    fn future_label_empty(&mut self, label: &LabelSpec, ok: &mut bool) -> Option<Expr> {
        match &label.empty_value {
            None => None,
            Some(value) => match literal(value) {
                Some(expr) => Some(expr),
                None => {
                    self.push(refuse(
                        format!("`label.empty_value` must be a number, a string, a boolean or null, found {value}"),
                        label_path(LabelField::EmptyValue),
                        "write the label's value for a window without rows, e.g. `0`",
                    ));
                    *ok = false;
                    None
                }
            },
        }
    }

    /// The label source's time column: it must be timed (`E032`).
    fn label_source_time(&mut self, table: &Table, timing: Option<&Timing>) -> Option<SourceTime> {
        // Wrong point-in-time facts were reported already.
        match timing?.required_time(table) {
            Ok(time) => Some(time),
            Err(why) => {
                self.push(
                    Diagnostic::new(
                        Code::E032,
                        format!("label source `{}` {why}: a window after the cutoff needs each row's time", table.name),
                    )
                    .at(label_path(LabelField::SourceTable))
                    .hint(format!("name its time column: `\"time_columns\": {{\"{}\": \"<column>\"}}`", table.name)),
                );
                None
            }
        }
    }

    /// How the label source reaches the entity key: the key as the table holding it spells
    /// it, and the relationships' path to that table (empty when the source holds it).
    fn label_reaches_key(
        &mut self,
        table: &Table,
        key: &[String],
        links: &[Link],
    ) -> Option<(Vec<String>, Vec<Hop>)> {
        let spelled = |t: &Table| {
            key.iter()
                .map(|k| {
                    t.column(k)
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| k.clone())
                })
                .collect::<Vec<_>>()
        };
        if relationships::holds(table, key) {
            return Some((spelled(table), Vec::new()));
        }
        if let Ok(Some(hops)) = relationships::path(links, self.catalog, &table.name, key)
            && let Some(holder) = hops.last().and_then(|h| self.catalog.table(&h.table))
        {
            return Some((spelled(holder), hops));
        }
        let missing: Vec<&String> = key.iter().filter(|k| table.column(k).is_none()).collect();
        self.push(
            Diagnostic::new(
                Code::E032,
                format!(
                    "label source `{}` does not reach the entity key: it has no `{}` and no relationship leads to a table that has",
                    table.name,
                    missing.iter().map(|k| k.as_str()).collect::<Vec<_>>().join("`, `")
                ),
            )
            .at(label_path(LabelField::SourceTable))
            .hint("declare how it reaches the key in `relationships`, or read it through a catalog view that selects the key"),
        );
        None
    }

    /// The schedule, checked (`E033`); `None` when the recipe has none or it is wrong.
    /// `timing` is `None` when the point-in-time facts were wrong.
    pub(super) fn plan_schedule(
        &mut self,
        recipe: &FeatureRecipe,
        schedule: &Schedule,
        timing: Option<&Timing>,
        key: &[String],
    ) -> Option<PlanSchedule> {
        let mut ok = self.label_fits_schedule(recipe);
        // Each field that does not read is reported at its path, and the others still checked.
        let mut report = |field: &str, e: crate::compile::point_in_time::WindowError| {
            self.push(
                Diagnostic::new(Code::E033, e.message)
                    .at(schedule_path(field))
                    .hint(e.hint),
            )
        };
        let every = parse_span(&schedule.every, "every", false)
            .map_err(|e| report("every", e))
            .ok();
        let start = parse_start(&schedule.start)
            .map_err(|e| report("start", e))
            .ok();
        let until = parse_until(&schedule.until)
            .map_err(|e| report("until", e))
            .ok();
        if schedule.max_per_entity == Some(0) {
            self.push(
                Diagnostic::new(
                    Code::E033,
                    "`max_per_entity` is 0: no entity would keep a row",
                )
                .at(schedule_path("max_per_entity"))
                .hint("give a positive number, or leave it out to keep every cutoff"),
            );
            ok = false;
        }
        let (table, holds_key) = self.schedule_source(schedule, key)?;
        ok &= holds_key;
        let time = self.schedule_time(timing?, table)?;
        let (every, start, until) = (every?, start?, until?);
        if time.time_type == TimeType::Date {
            ok &= self.whole_days(&time, table, &every, start, until);
        }
        if !ok {
            return None;
        }
        let arrow_type = table
            .column(&time.column)
            .map(|c| c.data_type.to_string())
            .unwrap_or_default();
        Some(PlanSchedule {
            arrow_type,
            table: table.name.clone(),
            key: key
                .iter()
                .map(|k| {
                    table
                        .column(k)
                        .map(|c| c.name.clone())
                        .unwrap_or_else(|| k.clone())
                })
                .collect(),
            time,
            start,
            every,
            until,
            keep_empty: schedule.keep_empty.unwrap_or(true),
            max_per_entity: schedule.max_per_entity,
            drop_immature: schedule.drop_immature.unwrap_or(false),
        })
    }

    /// Whether the label can go with a schedule: generated rows have no spine to read a
    /// `column` or `derivation` from, so it must be a future label (`E033`).
    fn label_fits_schedule(&mut self, recipe: &FeatureRecipe) -> bool {
        let label = &recipe.label;
        if label.column.is_none() && label.derivation.is_none() && label.expression.is_some() {
            return true;
        }
        let field = if label.column.is_some() {
            LabelField::Column
        } else {
            LabelField::Derivation
        };
        self.push(
            Diagnostic::new(
                Code::E033,
                "a schedule generates the rows, so there is no spine table to read the label from",
            )
            .at(label_path(field))
            .hint("compute the label from a window after the cutoff: `label.source_table`, `expression` and `window` (and drop `column`/`derivation`)"),
        );
        false
    }

    /// The schedule's source table (`None`, `E033`, when the catalog has none), and whether
    /// it holds the entity key (`E033` when not).
    fn schedule_source(
        &mut self,
        schedule: &Schedule,
        key: &[String],
    ) -> Option<(&'c Table, bool)> {
        let catalog = self.catalog;
        let Some(table) = catalog.table(schedule.source_table.trim()) else {
            let names: Vec<&str> = catalog.tables().map(|t| t.name.as_str()).collect();
            self.push(
                Diagnostic::new(
                    Code::E033,
                    format!(
                        "schedule source `{}` is not a table of the catalog",
                        schedule.source_table
                    ),
                )
                .at(schedule_path("source_table"))
                .hints(did_you_mean(&suggestions(&schedule.source_table, names))),
            );
            return None;
        };
        let missing: Vec<&str> = key
            .iter()
            .filter(|k| table.column(k).is_none())
            .map(String::as_str)
            .collect();
        if missing.is_empty() {
            return Some((table, true));
        }
        self.push(
            Diagnostic::new(
                Code::E033,
                format!(
                    "schedule source `{}` has no `{}`: its distinct entity keys are the entities",
                    table.name,
                    missing.join("`, `")
                ),
            )
            .at(schedule_path("source_table"))
            .hint("name a timed table that carries the entity key (the grain without the cutoff)"),
        );
        Some((table, false))
    }

    /// The schedule source's time column, which places each entity's cutoffs (`E033` when
    /// it is static or has none).
    fn schedule_time(&mut self, timing: &Timing, table: &Table) -> Option<SourceTime> {
        let why = match timing.required_time(table) {
            Ok(time) => return Some(time),
            Err(why) => why,
        };
        self.push(
            Diagnostic::new(
                Code::E033,
                format!(
                    "schedule source `{}` {why}: its events place each entity's cutoffs",
                    table.name
                ),
            )
            .at(schedule_path("source_table"))
            .hint(format!(
                "name its time column: `\"time_columns\": {{\"{}\": \"<column>\"}}`",
                table.name
            )),
        );
        None
    }

    /// Over a date column the cutoffs are dates: `every`, `start` and `until` must be whole
    /// days (`E033`).
    fn whole_days(
        &mut self,
        time: &SourceTime,
        table: &Table,
        every: &Window,
        start: ScheduleStart,
        until: ScheduleEnd,
    ) -> bool {
        let offset_days = match start {
            ScheduleStart::FirstEvent(offset) => offset.whole_days(),
            ScheduleStart::At(at) => at.time() == chrono::NaiveTime::MIN,
        };
        let until_days = match until {
            ScheduleEnd::At(at) => at.time() == chrono::NaiveTime::MIN,
            ScheduleEnd::LastEvent => true,
        };
        if every.whole_days() && offset_days && until_days {
            return true;
        }
        self.push(
            Diagnostic::new(
                Code::E033,
                format!(
                    "`{}` of `{}` is a date, so the cutoffs are dates: `every`, `start` and `until` must be whole days",
                    time.column, table.name
                ),
            )
            .at(schedule_path(if every.whole_days() { "start" } else { "every" }))
            .hint("write whole days (`\"7 days\"`), or schedule over a table with a timestamp"),
        );
        false
    }
}

/// `E032` at `path`: the future label cannot be computed as written.
fn refuse(message: String, path: RecipePath, hint: &str) -> Diagnostic {
    Diagnostic::new(Code::E032, message).at(path).hint(hint)
}

/// A JSON scalar as a SQL literal; `None` for an array or an object.
fn literal(value: &serde_json::Value) -> Option<Expr> {
    use serde_json::Value as J;
    Some(match value {
        J::Null => Expr::value(Value::Null),
        J::Bool(b) => Expr::value(Value::Boolean(*b)),
        J::Number(n) => {
            let text = n.to_string();
            match text.strip_prefix('-') {
                Some(positive) => Expr::UnaryOp {
                    op: sqlparser::ast::UnaryOperator::Minus,
                    expr: Box::new(Expr::value(Value::Number(positive.to_string(), false))),
                },
                None => Expr::value(Value::Number(text, false)),
            }
        }
        J::String(s) => Expr::value(Value::SingleQuotedString(s.clone())),
        J::Array(_) | J::Object(_) => return None,
    })
}
