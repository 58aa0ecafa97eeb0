//! Planning the features: each resolved against its source, grouped into source CTEs by
//! table and key, with its declared type checked.

use super::*;
use crate::compile::cte::SPINE_CTE;

impl<'c> Analyzer<'c> {
    /// Every feature's table and expression, resolved: what each reads and whether it
    /// aggregates, with its expression kept apart so planning can move it.
    /// `key` is what every source must carry and may read outside an aggregate: the grain,
    /// or in a point-in-time recipe the entity key.
    pub(super) fn resolve_features(
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
    pub(super) fn plan_features(
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
                let index = self.source_for(
                    table,
                    &mut sources,
                    key,
                    timing,
                    &grouped_tables,
                    (r.index, options.strict),
                )?;
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
                FeatureHome::Source(_) if aggregate => empty_set_value(&expr, recipe, grain),
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
                self.cutoff_outside_timed_aggregate(recipe, &feature.name, &path);
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

    /// The index in `sources` of `table`'s source, added on first use with its grain (the
    /// key as the table holding it spells it), its join path and, under point in time,
    /// its time column and the times along its path.
    fn source_for(
        &mut self,
        table: &Table,
        sources: &mut Vec<Source>,
        key: &[String],
        timing: Option<&Timing>,
        grouped_tables: &BTreeSet<String>,
        (feature, strict): (usize, bool),
    ) -> Option<usize> {
        if let Some(index) = sources
            .iter()
            .position(|s| s.table.eq_ignore_ascii_case(&table.name))
        {
            return Some(index);
        }
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
                self.path_times(timing, table, &path, feature, strict)
            }
            Some(timing) => (self.source_time(timing, table, feature, strict), Vec::new()),
            None => (None, Vec::new()),
        };
        sources.push(Source {
            cte_name: cte_name(&table.name, sources),
            table: table.name.clone(),
            grain: source_grain,
            grouped: grouped_tables.contains(&table.name.to_ascii_lowercase()),
            time,
            path,
            path_times,
        });
        Some(sources.len() - 1)
    }

    /// `E021`: a feature reads the cutoff, which only a timed source's aggregate can.
    fn cutoff_outside_timed_aggregate(
        &mut self,
        recipe: &FeatureRecipe,
        feature: &str,
        path: &RecipePath,
    ) {
        let cutoff = recipe
            .point_in_time
            .as_ref()
            .map_or("", |p| p.cutoff_column.as_str());
        self.push(
            Diagnostic::new(
                Code::E021,
                format!(
                    "feature `{feature}` reads the cutoff `{cutoff}`, which only an aggregate feature of a timed source can read (its rows are joined to each cutoff)"
                ),
            )
            .at(path.clone())
            .hint(format!(
                "aggregate a timed source's rows, e.g. `CAST({cutoff} AS DATE) - CAST(MAX(t) AS DATE)` for the days since the latest row"
            )),
        );
    }

    pub(super) fn mixed_source(
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

    /// W011: the declared `data_type` against the expression's type, where the catalog tells it.
    pub(super) fn check_declared_type(
        &mut self,
        declared: &str,
        expr: &Expr,
        table: &Table,
        index: usize,
    ) {
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

pub(super) fn cte_name(table: &str, taken: &[Source]) -> String {
    let base = format!(
        "{}{}",
        crate::compile::cte::SOURCE_PREFIX,
        table.replace('.', "_").to_ascii_lowercase()
    );
    crate::sql::fresh_name(&base, |key| {
        taken.iter().any(|s| s.cte_name.eq_ignore_ascii_case(key))
    })
}

/// What an aggregate feature of a source is for an entity with no rows there (`COUNT` is
/// 0, `SUM` NULL): the expression over the empty set, the spine's grain columns standing in
/// for the source's.
fn empty_set_value(expr: &Expr, recipe: &FeatureRecipe, grain: &[String]) -> Option<Expr> {
    let spine_grain = |name: &str| {
        recipe
            .entity_grain
            .iter()
            .position(|g| g.eq_ignore_ascii_case(name))
            .map(|i| {
                Expr::CompoundIdentifier(vec![Ident::new(SPINE_CTE), Ident::new(grain[i].clone())])
            })
    };
    fragment::empty_set_value(expr, &spine_grain)
}
