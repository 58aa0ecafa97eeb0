//! The recipe a crew proposes, exactly as the contract spells it, and a lenient reader.
//!
//! [`parse_recipe`] reads recipe JSON and reports every problem in one pass: malformed JSON
//! and missing or mistyped fields are `E001` errors, fields the contract does not know are
//! `W001` warnings that name the field (so a typo such as `expresion` is visible).

use crate::diagnostic::{
    Code, DERIVED_COLUMN_FIELDS, Diagnostic, FEATURE_FIELDS, FeatureField, LABEL_FIELDS,
    LabelField, POINT_IN_TIME_FIELDS, PointInTimeField, RECIPE_FIELDS, RecipePath, Replaces,
    SCHEDULE_FIELDS, suggestions,
};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// A proposal for a training table: its rows (the grain), its label and its features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeatureRecipe {
    /// Name of the table the CTAS creates; may be qualified (`domain.table`).
    pub target_table: String,
    /// Columns that identify one row of the training table.
    pub entity_grain: Vec<String>,
    /// The prediction target.
    pub label: LabelSpec,
    /// The feature columns, in output order.
    pub features: Vec<FeatureSpec>,
    /// Free text from the crew.
    #[serde(default)]
    pub notes: String,
    /// featurecraft's extension: the rows are (entity, cutoff) and every source is read as
    /// of each row's cutoff. Absent in a recipe of the contract, and then not written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point_in_time: Option<PointInTime>,
    /// featurecraft's extension: how a table without the entity key reaches it, each a
    /// child column pointing at its parent's unique key. A feature's source that lacks the
    /// key is joined to it through these. Absent in a recipe of the contract.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relationships: Vec<Relationship>,
    /// featurecraft's extension: columns added to a table, each an aggregate of a child
    /// table's rows per row of that table, so that features can aggregate them again
    /// (stacked aggregates). Absent in a recipe of the contract.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub derived_columns: Vec<DerivedColumn>,
}

/// A column a recipe adds to `table`: `expression`, an aggregate over the rows of
/// `source_table` that belong to each row of `table` (by a relationship of the recipe),
/// so a feature can aggregate it per entity. This is Deep Feature Synthesis at depth 2:
/// `sessions.SUM(transactions.amount)` is the derived column, `AVG(...)` over sessions the
/// feature. A row of `table` without child rows takes the aggregate over no rows (a count
/// is 0, anything else NULL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DerivedColumn {
    /// The table that gets the column (`sessions`).
    pub table: String,
    /// The new column's name, unique in that table.
    pub name: String,
    /// The child table aggregated (`transactions`), linked to `table` by a relationship.
    pub source_table: String,
    /// An aggregate SQL expression over `source_table` (`SUM(amount)`).
    pub expression: String,
}

/// A many-to-one link: every row of the child table belongs to at most one row of the
/// parent table, the one whose `parent` column equals the child's `child` column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Relationship {
    /// `table.column` in the child (`order_items.order_id`).
    pub child: String,
    /// `table.column` in the parent, a unique key there (`orders.order_id`).
    pub parent: String,
}

impl Relationship {
    /// (table, column) of `table.column`; the table may itself be qualified
    /// (`marketing.touches.customer_id`). `None` without a dot.
    pub fn split(side: &str) -> Option<(&str, &str)> {
        side.rsplit_once('.')
            .filter(|(table, column)| !table.is_empty() && !column.is_empty())
    }
}

/// Point-in-time semantics (DESIGN.md §3.8): a feature sees only the rows of its source that
/// were known before its training row's cutoff, so the table holds what a model will have
/// when it predicts, never what happened afterwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PointInTime {
    /// The grain column holding each row's prediction time (a date or a timestamp); the
    /// other grain columns are the entity key sources join on.
    pub cutoff_column: String,
    /// Each source's time column, or `null` for a source declared static (its rows do not
    /// change over time). A source read by a feature and not listed here may leak (`W012`).
    #[serde(default)]
    pub time_columns: TimeColumns,
    /// A source row exactly at the cutoff counts (`time <= cutoff`); by default it does not
    /// (`time < cutoff`). Kept absent when absent, so a recipe round-trips unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_cutoff: Option<bool>,
    /// The rows are generated instead of read from a spine table: per entity of a timed
    /// source, a cutoff every fixed span. Absent when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
}

/// A cutoff schedule (`point_in_time.schedule`): the training rows are, for each entity of
/// `source_table`, the cutoffs `start + k × every` (k = 0, 1, …) up to `until`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Schedule {
    /// The timed table whose distinct entity keys are the entities (it must carry the key).
    pub source_table: String,
    /// The first cutoff: a timestamp (`"2014-01-02T00:00:00"`), a date, `"first_event"`
    /// (the entity's earliest time in the source) or `"first_event + 30 days"`.
    pub start: String,
    /// The span between cutoffs (`"12 hours"`, `"30 days"`): a fixed length, as a window.
    pub every: String,
    /// The last possible cutoff: a timestamp or date, or `"last_event"` (the entity's
    /// latest time in the source).
    pub until: String,
    /// Keep a cutoff whose label window holds no row of the label's source (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_empty: Option<bool>,
    /// At most this many cutoffs per entity, the first in time order (after `keep_empty`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_entity: Option<u64>,
    /// Leave out the rows whose label window ends after the label source's latest time
    /// (their future is not observed yet); by default they are kept and counted (`W105`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_immature: Option<bool>,
}

impl PointInTime {
    /// Whether a row exactly at the cutoff counts.
    pub fn includes_cutoff(&self) -> bool {
        self.include_cutoff.unwrap_or(false)
    }
}

/// `time_columns`: table → time column (`None` declares the table static), in the order
/// the recipe wrote them, so that a recipe round-trips unchanged.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TimeColumns(pub Vec<(String, Option<String>)>);

impl TimeColumns {
    /// The entry for `table` (ignoring ASCII case): `Some(None)` when it is declared static.
    pub fn get(&self, table: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(table))
            .map(|(_, c)| c.as_deref())
    }
}

impl JsonSchema for TimeColumns {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TimeColumns".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Table → its time column, or null for a table declared static.",
            "type": "object",
            "additionalProperties": {"type": ["string", "null"]}
        })
    }
}

impl Serialize for TimeColumns {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (table, column) in &self.0 {
            map.serialize_entry(table, column)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for TimeColumns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> serde::de::Visitor<'de> for Entries {
            type Value = TimeColumns;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "an object of table → time column (a string, or null for a static table)",
                )
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TimeColumns, A::Error> {
                let mut entries = Vec::new();
                while let Some((table, column)) = map.next_entry::<String, Option<String>>()? {
                    entries.push((table, column));
                }
                Ok(TimeColumns(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

/// The kind of prediction target; it decides how the label is summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::types::string_enum_schema)]
#[serde(rename_all = "lowercase")]
pub enum LabelType {
    #[default]
    /// Two classes; `positive_class_value` names the positive one.
    Binary,
    /// Several classes.
    Multiclass,
    /// A number.
    Regression,
}

/// The prediction target: where it comes from and how it is computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct LabelSpec {
    /// Output column name of the label.
    #[serde(default = "default_label_name")]
    pub name: String,
    /// `binary`, `multiclass` or `regression`.
    #[serde(rename = "type", default)]
    pub label_type: LabelType,
    /// The source column the label comes from: `column` or `table.column`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// A SQL expression computing the label; when absent the label is `column` itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derivation: Option<String>,
    /// For `binary`: the value that means "positive". Absent and `null` are kept apart so
    /// that a recipe round-trips unchanged.
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub positive_class_value: Option<Value>,
    /// featurecraft's extension, in point-in-time recipes: the label is an aggregate over
    /// this table's rows in a window after each row's cutoff (with `expression`, `window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_table: Option<String>,
    /// The label's aggregate over the rows of `source_table` in its window (`SUM(amount)`,
    /// `CASE WHEN COUNT(*) = 0 THEN 1 ELSE 0 END`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// The label window's length (`"30 days"`), the same units as a feature's window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// The span between the cutoff and the label window's start (default `"0 hours"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<String>,
    /// The label over an empty window; without it the expression's own value over no rows
    /// (`COUNT` 0, other aggregates NULL).
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    pub empty_value: Option<Value>,
}

impl Default for LabelSpec {
    /// A label named `label`, of type `binary`, with nothing else set.
    fn default() -> Self {
        LabelSpec {
            name: default_label_name(),
            label_type: LabelType::default(),
            column: None,
            derivation: None,
            positive_class_value: None,
            source_table: None,
            expression: None,
            window: None,
            gap: None,
            empty_value: None,
        }
    }
}

impl LabelSpec {
    /// Whether the label is computed from a window after the cutoff (it has any of the
    /// fields of a windowed label).
    pub fn is_windowed(&self) -> bool {
        self.source_table.is_some()
            || self.expression.is_some()
            || self.window.is_some()
            || self.gap.is_some()
            || self.empty_value.is_some()
    }
}

/// One feature column: a SQL expression over one source table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FeatureSpec {
    /// Output column name.
    pub name: String,
    /// One SQL expression over `source_table`, row-level or aggregate.
    pub expression: String,
    /// The table or view the expression reads.
    pub source_table: String,
    /// Human text.
    #[serde(default)]
    pub description: String,
    /// The type the author expects (`int64`, `DOUBLE`, `string`, …), checked against the expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_type: Option<String>,
    /// featurecraft's extension, in point-in-time recipes: only the source's rows within
    /// this span before the cutoff count (`"30 days"`, `"12 hours"`, `"2 weeks"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
}

fn default_label_name() -> String {
    "label".to_string()
}

/// Keeps an explicit JSON `null` as `Some(Value::Null)`; only an absent field is `None`.
fn present_value<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// The outcome of reading recipe JSON: the recipe when it could be read, and what was found.
#[derive(Debug, Clone)]
pub struct ParsedRecipe {
    /// The recipe, unless the JSON could not be read as one.
    pub recipe: Option<FeatureRecipe>,
    /// What was wrong or unknown in it.
    pub diagnostics: Vec<Diagnostic>,
}

/// Reads recipe JSON text, collecting every structural problem at once.
pub fn parse_recipe(text: &str) -> ParsedRecipe {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => recipe_from_value(&value),
        Err(e) => ParsedRecipe {
            recipe: None,
            diagnostics: vec![
                Diagnostic::new(Code::E001, format!("recipe is not valid JSON: {e}")).with_span(
                    Some(crate::diagnostic::Span::at(
                        e.line() as u64,
                        e.column() as u64,
                    )),
                ),
            ],
        },
    }
}

/// Reads a recipe from an already parsed JSON value (as the HTTP service receives it).
pub fn recipe_from_value(value: &Value) -> ParsedRecipe {
    let mut diagnostics = Vec::new();
    let Some(object) = value.as_object() else {
        diagnostics.push(Diagnostic::new(
            Code::E001,
            format!("a recipe must be a JSON object, found {}", json_kind(value)),
        ));
        return ParsedRecipe {
            recipe: None,
            diagnostics,
        };
    };
    unknown_fields(
        object,
        RECIPE_FIELDS,
        |key| RecipePath::Field(key.to_string()),
        &mut diagnostics,
    );
    for required in ["target_table", "entity_grain", "label", "features"] {
        if !object.contains_key(required) {
            diagnostics.push(
                Diagnostic::new(Code::E001, format!("missing field `{required}`"))
                    .at(RecipePath::Field(required.to_string())),
            );
        }
    }

    let target_table = field::<String>(object, "target_table", &mut diagnostics);
    let entity_grain = field::<Vec<String>>(object, "entity_grain", &mut diagnostics);
    let notes = match object.get("notes") {
        None => Some(String::new()),
        Some(_) => field::<String>(object, "notes", &mut diagnostics),
    };

    let label = object
        .get("label")
        .and_then(|label| label_from_value(label, &mut diagnostics));
    let features = object
        .get("features")
        .and_then(|features| features_from_value(features, &mut diagnostics));

    let point_in_time = match object.get("point_in_time") {
        None => Some(None),
        Some(value) => point_in_time_from_value(value, &mut diagnostics).map(Some),
    };

    let relationships = match object.get("relationships") {
        None => Some(Vec::new()),
        Some(value) => typed::<Vec<Relationship>>(
            value,
            RecipePath::Field("relationships".into()),
            &mut diagnostics,
        ),
    };

    let derived_columns = match object.get("derived_columns") {
        None => Some(Vec::new()),
        Some(value) => derived_columns_from_value(value, &mut diagnostics),
    };

    let recipe = match (
        target_table,
        entity_grain,
        label,
        features,
        notes,
        (point_in_time, relationships, derived_columns),
    ) {
        (
            Some(target_table),
            Some(entity_grain),
            Some(label),
            Some(features),
            Some(notes),
            (Some(point_in_time), Some(relationships), Some(derived_columns)),
        ) => Some(FeatureRecipe {
            target_table,
            entity_grain,
            label,
            features,
            notes,
            point_in_time,
            relationships,
            derived_columns,
        }),
        _ => None,
    };
    ParsedRecipe {
        recipe,
        diagnostics,
    }
}

/// Reads `label`: an object with `column`, `derivation`, or both (or a future label's
/// `source_table`, `expression` and `window`); unknown fields are `W001`.
fn label_from_value(label: &Value, diagnostics: &mut Vec<Diagnostic>) -> Option<LabelSpec> {
    let Some(fields) = label.as_object() else {
        diagnostics.push(
            Diagnostic::new(
                Code::E001,
                format!("`label` must be an object, found {}", json_kind(label)),
            )
            .at(RecipePath::Field("label".into())),
        );
        return None;
    };
    unknown_fields(
        fields,
        LABEL_FIELDS,
        |key| RecipePath::Label(LabelField::Other(key.to_string())),
        diagnostics,
    );
    let parsed = typed::<LabelSpec>(label, RecipePath::Field("label".into()), diagnostics);
    if let Some(spec) = &parsed
        && spec.column.is_none()
        && spec.derivation.is_none()
        && spec.expression.is_none()
    {
        diagnostics.push(
            Diagnostic::new(
                Code::E001,
                "the label needs `column`, `derivation`, or both (or, from a window after the cutoff, `source_table`, `expression` and `window`)",
            )
            .at(RecipePath::Field("label".into())),
        );
        return None;
    }
    parsed
}

/// Reads `features`: an array of objects, every item checked (unknown fields are `W001`)
/// even after one fails, so all problems are reported at once.
fn features_from_value(
    features: &Value,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<FeatureSpec>> {
    let Some(items) = features.as_array() else {
        diagnostics.push(
            Diagnostic::new(
                Code::E001,
                format!("`features` must be an array, found {}", json_kind(features)),
            )
            .at(RecipePath::Field("features".into())),
        );
        return None;
    };
    let mut parsed = Vec::with_capacity(items.len());
    let mut all_ok = true;
    for (i, item) in items.iter().enumerate() {
        let path = RecipePath::Feature(i, None);
        let Some(fields) = item.as_object() else {
            diagnostics.push(
                Diagnostic::new(
                    Code::E001,
                    format!("a feature must be an object, found {}", json_kind(item)),
                )
                .at(path),
            );
            all_ok = false;
            continue;
        };
        unknown_fields(
            fields,
            FEATURE_FIELDS,
            |key| RecipePath::feature(i, FeatureField::Other(key.to_string())),
            diagnostics,
        );
        match typed::<FeatureSpec>(item, path, diagnostics) {
            Some(feature) => parsed.push(feature),
            None => all_ok = false,
        }
    }
    all_ok.then_some(parsed)
}

/// Reads `derived_columns`; unknown fields of each item are `W001`.
fn derived_columns_from_value(
    value: &Value,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Vec<DerivedColumn>> {
    for (i, item) in value.as_array().into_iter().flatten().enumerate() {
        if let Some(fields) = item.as_object() {
            unknown_fields(
                fields,
                DERIVED_COLUMN_FIELDS,
                |key| RecipePath::DerivedColumn(i, Some(key.to_string())),
                diagnostics,
            );
        }
    }
    typed::<Vec<DerivedColumn>>(
        value,
        RecipePath::Field("derived_columns".into()),
        diagnostics,
    )
}

/// Reads `point_in_time`: unknown fields are `W001`, a missing cutoff column or a field of
/// the wrong type `E001`.
fn point_in_time_from_value(
    value: &Value,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<PointInTime> {
    let path = RecipePath::PointInTime(None);
    let Some(fields) = value.as_object() else {
        diagnostics.push(
            Diagnostic::new(
                Code::E001,
                format!(
                    "`point_in_time` must be an object, found {}",
                    json_kind(value)
                ),
            )
            .at(path),
        );
        return None;
    };
    unknown_fields(
        fields,
        POINT_IN_TIME_FIELDS,
        |key| RecipePath::PointInTime(Some(PointInTimeField::Other(key.to_string()))),
        diagnostics,
    );
    if let Some(schedule) = fields.get("schedule").and_then(Value::as_object) {
        unknown_fields(
            schedule,
            SCHEDULE_FIELDS,
            |key| RecipePath::PointInTime(Some(PointInTimeField::Schedule(Some(key.to_string())))),
            diagnostics,
        );
    }
    if !fields.contains_key("cutoff_column") {
        diagnostics.push(
            Diagnostic::new(
                Code::E001,
                "missing field `cutoff_column` in `point_in_time`",
            )
            .at(path)
            .hint("name the grain column that holds each row's prediction time"),
        );
        return None;
    }
    typed::<PointInTime>(value, path, diagnostics)
}

fn field<T: for<'de> Deserialize<'de>>(
    object: &serde_json::Map<String, Value>,
    key: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    typed(
        object.get(key)?,
        RecipePath::Field(key.to_string()),
        diagnostics,
    )
}

fn typed<T: for<'de> Deserialize<'de>>(
    value: &Value,
    path: RecipePath,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<T> {
    match T::deserialize(value) {
        Ok(v) => Some(v),
        Err(e) => {
            diagnostics.push(Diagnostic::new(Code::E001, format!("`{path}`: {e}")).at(path));
            None
        }
    }
}

fn unknown_fields(
    object: &serde_json::Map<String, Value>,
    known: &[&str],
    path: impl Fn(&str) -> RecipePath,
    diagnostics: &mut Vec<Diagnostic>,
) {
    for key in object.keys() {
        if !known.contains(&key.as_str()) {
            diagnostics.push(
                Diagnostic::new(Code::W001, format!("unknown field `{key}` is ignored"))
                    .at(path(key))
                    .suggest(
                        Replaces::FieldKey,
                        key,
                        suggestions(key, known.iter().copied()),
                    ),
            );
        }
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_defaults_apply() {
        let label: LabelSpec = serde_json::from_str(r#"{"column": "churned"}"#).unwrap();
        assert_eq!(label.name, "label");
        assert_eq!(label.label_type, LabelType::Binary);
        assert_eq!(label.positive_class_value, None);
        let label: LabelSpec =
            serde_json::from_str(r#"{"column": "c", "positive_class_value": null}"#).unwrap();
        assert_eq!(label.positive_class_value, Some(Value::Null));
    }

    #[test]
    fn every_problem_is_reported_once() {
        let parsed = parse_recipe(
            r#"{"target_table": 3, "entity_grain": ["id"], "label": {"column": "y"},
                "features": [{"name": "a", "expresion": "x", "source_table": "t"}]}"#,
        );
        assert!(parsed.recipe.is_none());
        let codes: Vec<_> = parsed
            .diagnostics
            .iter()
            .map(|d| (d.code, d.path_text()))
            .collect();
        assert!(
            codes.contains(&(Code::E001, Some("target_table".into()))),
            "{codes:?}"
        );
        assert!(
            codes.contains(&(Code::W001, Some("features[0].expresion".into()))),
            "{codes:?}"
        );
        assert!(
            codes.contains(&(Code::E001, Some("features[0]".into()))),
            "{codes:?}"
        );
    }
}
