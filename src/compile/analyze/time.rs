//! Point-in-time checks: the cutoff, the time columns of each source and of its join path,
//! the windows, the time columns no feature uses, and what the label reads that a feature
//! also reads (leakage).

use super::*;

impl<'c> Analyzer<'c> {
    /// The point-in-time facts of the recipe, checked against the spine and the catalog:
    /// the cutoff is one of the grain and a date or timestamp there (`E024`), each time
    /// column exists and is a date or timestamp (`E025`). `None` when one of them is wrong.
    pub(super) fn check_point_in_time(
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
    pub(super) fn time_column(
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
    pub(super) fn source_time(
        &mut self,
        timing: &Timing,
        table: &Table,
        feature: usize,
        strict: bool,
    ) -> Option<SourceTime> {
        match timing.declared(table) {
            Some(time) => time.clone(),
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
    pub(super) fn path_times(
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
    pub(super) fn check_window(
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
    pub(super) fn report_unused_time_columns(&mut self, recipe: &FeatureRecipe, pit: &PointInTime) {
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
    pub(super) fn report_leakage(
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
}

/// The checked point-in-time facts: the plan's, and each listed table's time column
/// (`None` for a table declared static), by lower-case table name.
pub(super) struct Timing {
    pub(super) plan: PlanTime,
    pub(super) tables: Vec<(String, Option<SourceTime>)>,
}

impl Timing {
    /// How `table` is listed in `time_columns`: `None` when it is not, `Some(None)` when
    /// declared static, `Some(Some(time))` when timed.
    pub(super) fn declared(&self, table: &Table) -> Option<&Option<SourceTime>> {
        let lower = table.name.to_ascii_lowercase();
        self.tables
            .iter()
            .find(|(t, _)| *t == lower)
            .map(|(_, time)| time)
    }

    /// The time column of a table that must be timed (a label's or a schedule's source),
    /// or why it has none, for the caller's message.
    pub(super) fn required_time(&self, table: &Table) -> Result<SourceTime, &'static str> {
        match self.declared(table) {
            Some(Some(time)) => Ok(time.clone()),
            Some(None) => Err("is declared static"),
            None => Err("has no time column in `point_in_time.time_columns`"),
        }
    }
}

/// The columns of `table` that break ties between rows at the same `time` (as-of values):
/// all but the entity key and the time, in catalog order, of types every engine orders alike.
pub(super) fn tie_break(table: &Table, time: &str, key: &[String]) -> Vec<TieColumn> {
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
