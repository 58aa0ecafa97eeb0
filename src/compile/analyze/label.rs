//! Planning the label: its table (the spine), its column or derivation, and a spine of
//! generated cutoffs.

use super::resolve::unknown_column;
use super::*;

impl<'c> Analyzer<'c> {
    /// A column the label reads must be in the label's table (`E031`).
    pub(super) fn resolve_label_column(
        &mut self,
        table: &Table,
        column: &ColumnRef,
        path: &RecipePath,
    ) -> Option<String> {
        if let Some(found) = lookup(table, column) {
            return Some(found.name.clone());
        }
        let elsewhere = self.tables_with_column(&column.name);
        let mut d = unknown_column(
            Code::E031,
            format!(
                "the label reads `{}`, which is not a column of the label's table `{}`",
                column.name, table.name
            ),
            table,
            column,
            path,
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

    /// Finds the spine and checks the label. Returns (table, expression, grouped, columns the label reads).
    pub(super) fn plan_label(
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
    pub(super) fn plan_windowed_spine(
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

    /// Parses `label.column` as `column` or `table.column` (`domain.table.column`).
    pub(super) fn parse_label_column(&mut self, text: &str) -> Option<(Option<String>, String)> {
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
    pub(super) fn find_label_table(
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
}

/// The label as planned: its name, path, resolved expression, type and positive class.
pub(super) fn planned_label(recipe: &FeatureRecipe, expr: Expr) -> PlannedLabel {
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

pub(super) fn label_path(recipe: &FeatureRecipe) -> RecipePath {
    if recipe.label.expression.is_some() {
        RecipePath::Label(LabelField::Expression)
    } else if recipe.label.derivation.is_some() {
        RecipePath::Label(LabelField::Derivation)
    } else {
        RecipePath::Label(LabelField::Column)
    }
}
