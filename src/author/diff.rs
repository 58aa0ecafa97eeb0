//! What a new version of a recipe changes: feature by feature (added, removed, changed,
//! renamed when the expression is the same), the other recipe fields, the SQL as a unified
//! diff, and the values on the sampled entities: per column of the new table, the share of
//! values equal to the old table's and a few that differ.

use super::snapshots::unified_diff;
use super::unit::{json_rows, same, shown};
use crate::catalog::Catalog;
use crate::compile::dialect::Dialect;
use crate::compile::{CompileOptions, compile};
use crate::contract::recipe::{FeatureRecipe, FeatureSpec};
use crate::run::sample::{ValidateOptions, sample};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How one feature changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureChange {
    /// In the new recipe only.
    Added(String),
    /// In the old recipe only.
    Removed(String),
    /// In both, with these fields changed (`expression`, `source_table`, `window`, …).
    Changed(String, Vec<&'static str>),
    /// The old name, the new name: the same expression over the same source.
    Renamed(String, String),
}

/// One column of the new table against the old one, on the sampled entities.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDiff {
    /// The column in the new table.
    pub column: String,
    /// The column it is compared with in the old table (another name when renamed).
    pub old_column: String,
    /// Rows compared (the sampled rows whose grain key is in both tables).
    pub compared: usize,
    /// Of those, the rows with equal values (NULL equals NULL, floats within 1e-9).
    pub equal: usize,
    /// Up to three differing rows: (grain key, old value, new value).
    pub examples: Vec<(String, Value, Value)>,
}

impl ColumnDiff {
    /// The share of compared rows with equal values (0 when nothing was compared).
    pub fn equal_share(&self) -> f64 {
        if self.compared == 0 {
            0.0
        } else {
            self.equal as f64 / self.compared as f64
        }
    }
}

/// Everything `featurecraft diff` reports.
#[derive(Debug, Clone)]
pub struct RecipeDiff {
    /// The features' changes, in the new recipe's order (removed ones last).
    pub features: Vec<FeatureChange>,
    /// Other fields that changed (`entity_grain`, `label`, `point_in_time`, …).
    pub fields: Vec<&'static str>,
    /// The unified diff of the two CTAS (empty when equal).
    pub sql: String,
    /// The values on the sample, or why they were not compared.
    pub values: Result<Vec<ColumnDiff>, String>,
}

impl RecipeDiff {
    /// The diff as `featurecraft diff --format json` prints it.
    pub fn report(&self) -> DiffReport {
        let features = self
            .features
            .iter()
            .map(|change| match change {
                FeatureChange::Added(name) => ChangeReport::Added { name: name.clone() },
                FeatureChange::Removed(name) => ChangeReport::Removed { name: name.clone() },
                FeatureChange::Changed(name, fields) => ChangeReport::Changed {
                    name: name.clone(),
                    fields: fields.clone(),
                },
                FeatureChange::Renamed(from, to) => ChangeReport::Renamed {
                    name: to.clone(),
                    from: from.clone(),
                },
            })
            .collect();
        let values = match &self.values {
            Ok(columns) => ValuesReport::Compared {
                columns: columns.iter().map(ColumnReport::of).collect(),
            },
            Err(why) => ValuesReport::Skipped {
                skipped: why.clone(),
            },
        };
        DiffReport {
            features,
            fields: self.fields.clone(),
            sql_diff: self.sql.clone(),
            values,
        }
    }
}

/// `featurecraft diff --format json`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// Each feature's change, `{"change": "added"|"removed"|"changed"|"renamed", "name", …}`.
    pub features: Vec<ChangeReport>,
    /// Other recipe fields that changed.
    pub fields: Vec<&'static str>,
    /// The unified diff of the two CTAS.
    pub sql_diff: String,
    /// `{"columns": […]}`, or `{"skipped": why}`.
    pub values: ValuesReport,
}

/// One feature's change in a [`DiffReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "change", rename_all = "lowercase")]
pub enum ChangeReport {
    /// In the new recipe only.
    Added {
        /// The feature.
        name: String,
    },
    /// In the old recipe only.
    Removed {
        /// The feature.
        name: String,
    },
    /// In both, with these fields changed.
    Changed {
        /// The feature.
        name: String,
        /// `expression`, `source_table`, `window`, …
        fields: Vec<&'static str>,
    },
    /// The same expression over the same source, under a new name.
    Renamed {
        /// The new name.
        name: String,
        /// The old name.
        from: String,
    },
}

/// The values part of a [`DiffReport`].
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum ValuesReport {
    /// Per column of the new table.
    Compared {
        /// The columns compared.
        columns: Vec<ColumnReport>,
    },
    /// Why the values were not compared.
    Skipped {
        /// The reason.
        skipped: String,
    },
}

/// One column of a [`DiffReport`]'s values.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnReport {
    /// The column in the new table.
    pub column: String,
    /// The column in the old table.
    pub old_column: String,
    /// Rows compared.
    pub compared: usize,
    /// Rows with equal values.
    pub equal: usize,
    /// `equal / compared` (0 when nothing was compared).
    pub equal_share: f64,
    /// Up to three differing rows.
    pub examples: Vec<ExampleReport>,
}

impl ColumnReport {
    fn of(c: &ColumnDiff) -> ColumnReport {
        ColumnReport {
            column: c.column.clone(),
            old_column: c.old_column.clone(),
            compared: c.compared,
            equal: c.equal,
            equal_share: c.equal_share(),
            examples: c
                .examples
                .iter()
                .map(|(key, old, new)| ExampleReport {
                    key: key.clone(),
                    old: old.clone(),
                    new: new.clone(),
                })
                .collect(),
        }
    }
}

/// A row whose value differs: its grain key, the old value and the new.
#[derive(Debug, Clone, Serialize)]
pub struct ExampleReport {
    /// The row's grain key.
    pub key: String,
    /// The old table's value.
    pub old: Value,
    /// The new table's value.
    pub new: Value,
}

/// Compares two recipe texts over `catalog`; `Err` when one of them does not compile.
pub async fn diff(
    old_text: &str,
    new_text: &str,
    catalog: &Catalog,
    dialect: Dialect,
    options: &ValidateOptions,
) -> Result<RecipeDiff, String> {
    let compile_for = |text: &str, which: &str, dialect: Dialect| {
        let compiled = compile(text, catalog, &CompileOptions::for_dialect(dialect));
        if compiled.has_errors() {
            return Err(format!(
                "the {which} recipe does not compile:\n{}",
                compiled.report(which)
            ));
        }
        Ok(compiled)
    };
    let old = compile_for(old_text, "old", dialect)?;
    let new = compile_for(new_text, "new", dialect)?;
    let (Some(old_recipe), Some(new_recipe)) = (&old.recipe, &new.recipe) else {
        return Err("a recipe did not parse".into());
    };
    let features = feature_changes(&old_recipe.features, &new_recipe.features);
    let fields = field_changes(old_recipe, new_recipe);
    let sql = match (&old.sql, &new.sql) {
        (Some(a), Some(b)) if a != b => unified_diff(a, b, "old", "new"),
        _ => String::new(),
    };
    let values = if catalog.root().is_none() {
        Err("the catalog holds no data (a JSON catalog): values not compared".to_string())
    } else if !same_grain(old_recipe, new_recipe) {
        Err("the grain changed: rows cannot be matched".to_string())
    } else {
        let old_df = compile_for(old_text, "old", Dialect::DataFusion)?;
        let new_df = compile_for(new_text, "new", Dialect::DataFusion)?;
        match (old_df.plan, new_df.plan) {
            (Some(old_plan), Some(new_plan)) => {
                let rows = async {
                    let a = sample(&old_plan, catalog, options).await?;
                    let b = sample(&new_plan, catalog, options).await?;
                    Ok::<_, crate::diagnostic::Diagnostic>((a.rows, b.rows))
                };
                match rows.await {
                    Ok((a, b)) => {
                        let a = json_rows(&[a])?;
                        let b = json_rows(&[b])?;
                        Ok(column_diffs(&new_recipe.entity_grain, &features, &a, &b))
                    }
                    Err(d) => Err(format!("the sample failed: {}", d.summary_line())),
                }
            }
            _ => Err("a recipe has no plan".to_string()),
        }
    };
    Ok(RecipeDiff {
        features,
        fields,
        sql,
        values,
    })
}

fn feature_changes(old: &[FeatureSpec], new: &[FeatureSpec]) -> Vec<FeatureChange> {
    let by_name = |features: &[FeatureSpec]| -> BTreeMap<String, FeatureSpec> {
        features
            .iter()
            .map(|f| (f.name.to_ascii_lowercase(), f.clone()))
            .collect()
    };
    let (old_names, new_names) = (by_name(old), by_name(new));
    let mut removed: Vec<&FeatureSpec> = old
        .iter()
        .filter(|f| !new_names.contains_key(&f.name.to_ascii_lowercase()))
        .collect();
    let mut changes = Vec::new();
    for feature in new {
        match old_names.get(&feature.name.to_ascii_lowercase()) {
            Some(before) => {
                let fields = changed_fields(before, feature);
                if !fields.is_empty() {
                    changes.push(FeatureChange::Changed(feature.name.clone(), fields));
                }
            }
            None => {
                let same_as = removed
                    .iter()
                    .position(|r| changed_fields(r, feature) == ["name"]);
                match same_as {
                    Some(i) => {
                        let from = removed.remove(i);
                        changes.push(FeatureChange::Renamed(
                            from.name.clone(),
                            feature.name.clone(),
                        ));
                    }
                    None => changes.push(FeatureChange::Added(feature.name.clone())),
                }
            }
        }
    }
    changes.extend(
        removed
            .into_iter()
            .map(|f| FeatureChange::Removed(f.name.clone())),
    );
    changes
}

/// The fields that differ between two features (`name` compared ignoring case).
fn changed_fields(a: &FeatureSpec, b: &FeatureSpec) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if !a.name.eq_ignore_ascii_case(&b.name) {
        fields.push("name");
    }
    if a.expression.trim() != b.expression.trim() {
        fields.push("expression");
    }
    if !a.source_table.eq_ignore_ascii_case(&b.source_table) {
        fields.push("source_table");
    }
    if a.window != b.window {
        fields.push("window");
    }
    if a.data_type != b.data_type {
        fields.push("data_type");
    }
    if a.description != b.description {
        fields.push("description");
    }
    fields
}

fn field_changes(a: &FeatureRecipe, b: &FeatureRecipe) -> Vec<&'static str> {
    let mut fields = Vec::new();
    if a.target_table != b.target_table {
        fields.push("target_table");
    }
    if !same_grain(a, b) {
        fields.push("entity_grain");
    }
    if a.label != b.label {
        fields.push("label");
    }
    if a.point_in_time != b.point_in_time {
        fields.push("point_in_time");
    }
    if a.relationships != b.relationships {
        fields.push("relationships");
    }
    if a.derived_columns != b.derived_columns {
        fields.push("derived_columns");
    }
    if a.notes != b.notes {
        fields.push("notes");
    }
    fields
}

fn same_grain(a: &FeatureRecipe, b: &FeatureRecipe) -> bool {
    a.entity_grain.len() == b.entity_grain.len()
        && a.entity_grain
            .iter()
            .zip(&b.entity_grain)
            .all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Each column of the new rows against its column in the old rows, by grain key.
fn column_diffs(
    grain: &[String],
    features: &[FeatureChange],
    old: &[Map<String, Value>],
    new: &[Map<String, Value>],
) -> Vec<ColumnDiff> {
    let key_of = |row: &Map<String, Value>| -> String {
        grain
            .iter()
            .map(|g| format!("{g}={}", row.get(g).map(shown).unwrap_or_default()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let old_by_key: BTreeMap<String, &Map<String, Value>> =
        old.iter().map(|row| (key_of(row), row)).collect();
    let renamed: BTreeMap<&str, &str> = features
        .iter()
        .filter_map(|c| match c {
            FeatureChange::Renamed(from, to) => Some((to.as_str(), from.as_str())),
            _ => None,
        })
        .collect();
    let Some(first) = new.first() else {
        return Vec::new();
    };
    let mut diffs = Vec::new();
    for column in first.keys() {
        if grain.iter().any(|g| g.eq_ignore_ascii_case(column)) {
            continue;
        }
        let old_column = renamed.get(column.as_str()).copied().unwrap_or(column);
        if old.first().is_none_or(|row| !row.contains_key(old_column)) {
            continue; // An added column: nothing to compare with.
        }
        let mut diff = ColumnDiff {
            column: column.clone(),
            old_column: old_column.to_string(),
            compared: 0,
            equal: 0,
            examples: Vec::new(),
        };
        for row in new {
            let key = key_of(row);
            let Some(before) = old_by_key.get(&key) else {
                continue;
            };
            let (a, b) = (
                before.get(old_column).unwrap_or(&Value::Null),
                row.get(column).unwrap_or(&Value::Null),
            );
            diff.compared += 1;
            if same(a, b) {
                diff.equal += 1;
            } else if diff.examples.len() < 3 {
                diff.examples.push((key, a.clone(), b.clone()));
            }
        }
        diffs.push(diff);
    }
    diffs
}
