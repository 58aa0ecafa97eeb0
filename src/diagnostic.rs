//! Diagnostics: the errors and warnings every stage returns as data.
//!
//! A diagnostic carries a stable [`Code`], a severity, a message, the recipe path it
//! concerns (`features[3].expression`), the span inside that fragment where known, and
//! hints. Stages collect them instead of logging, so the CLI, the HTTP service and tests
//! all see the same findings.

use schemars::JsonSchema;
use serde::{Serialize, Serializer};
use std::fmt::Write as _;

/// How bad a finding is: errors stop compilation, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
#[schemars(transform = crate::types::string_enum_schema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The recipe cannot be compiled or run.
    Error,
    /// Worth a look; the run goes on (unless strict).
    Warning,
}

/// Writes the [`Code`] enum and its facts from one table: each code with its slug (the
/// stable name summary warnings carry) and its meaning, as the README's tables show it.
macro_rules! codes {
    ($($code:ident $slug:literal $meaning:literal;)*) => {
        /// Stable diagnostic codes. Their spelling is part of the public contract: clients
        /// match on it. `E…` codes are errors; `W0…` are compile-time warnings, `W1…`
        /// validation findings. `E05…` are failures of a run.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $(#[doc = $meaning] $code,)*
        }

        impl Code {
            /// Every code, in documentation order.
            pub const ALL: &'static [Code] = &[$(Code::$code,)*];

            /// The code as clients see it, e.g. `"E021"`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$code => stringify!($code),)*
                }
            }

            /// A short stable name, written after the code in summary warnings
            /// (`W101 grain_not_unique: …`).
            pub fn slug(self) -> &'static str {
                match self {
                    $(Code::$code => $slug,)*
                }
            }

            /// What the code means, as the README's tables say it.
            pub fn meaning(self) -> &'static str {
                match self {
                    $(Code::$code => $meaning,)*
                }
            }
        }
    };
}

codes! {
    E001 "malformed_recipe" "malformed recipe JSON, a missing field or a field of the wrong type";
    E002 "empty_grain" "`entity_grain` is empty";
    E003 "invalid_name" "an output name (or the target table) is not a portable identifier of at most 128 characters";
    E004 "duplicate_name" "duplicate output name (grain, features and label, ignoring case)";
    E005 "too_many_features" "more features than the limit (10 000 by default, `CompileOptions::max_features`): refused before any fragment is parsed";
    E010 "parse_error" "a fragment does not parse, or is too large: longer than 100 000 characters, nested beyond the parser's 64 levels, or more than 256 expressions deep (a chain `a + b + c …` nests one level per operator)";
    E011 "not_one_expression" "a fragment is not a single expression (trailing input, a second statement)";
    E012 "forbidden_construct" "forbidden construct: subquery, window function, nested aggregate, lambda, placeholder, or anything outside the fragment grammar (the README's Fragments section)";
    E020 "unknown_table" "unknown table";
    E021 "unknown_column" "unknown column, or a column qualified with a table the fragment does not read";
    E022 "label_table_undetermined" "the label's table cannot be determined (none or several qualify)";
    E023 "grain_column_missing" "a source lacks a grain column (in a point-in-time recipe: a column of the entity key)";
    E024 "cutoff_column_invalid" "`point_in_time.cutoff_column` is not one of `entity_grain`, is the grain's only column, or is not a date or timestamp in the spine";
    E025 "time_column_invalid" "a time column of `point_in_time.time_columns` is missing from its table or is not a date or timestamp (an unknown table there is `E020`)";
    E026 "window_invalid" "a feature's `window` does not parse, is not positive, counts months or years (not fixed lengths), or is set outside a point-in-time recipe or on a source with no time column";
    E027 "relationship_invalid" "a relationship in `relationships` is not `table.column` on both sides, links columns of different types or a table to itself, or a feature's source reaches the entity key through it by more than one path, or only with row-level features (an entity has many of its rows)";
    E028 "derived_column_invalid" "a derived column in `derived_columns` has a bad name or one its table already has, aggregates its own table, is not an aggregate, its child table is linked to its table by no relationship or by several, or, in a point-in-time recipe, its table is not read with its own time column";
    E029 "table_shadowed" "a table the query reads has the name of one of the compiled query's CTEs (`spine`, `cutoffs`, `src_…`), which the engine would read instead (the spine's own table may have such a name)";
    E030 "aggregate_mixed" "an aggregate mixed with a non-grouped column (in one expression or one source)";
    E031 "label_outside_table" "the label derivation reads a column outside the label's table";
    E032 "label_window_invalid" "a label from a window after the cutoff (`label.source_table`, `expression`, `window`, `gap`) outside a point-in-time recipe, with a missing or untimed source, one that does not reach the entity key, an expression that is not an aggregate, a window or gap that does not parse, counts months or years, or a negative gap";
    E033 "schedule_invalid" "`point_in_time.schedule` names an unknown, untimed source or one without the entity key, has an `every` that is not a positive fixed length, a `start` or `until` that is neither a timestamp nor `first_event`/`last_event`, `max_per_entity` 0, or comes with a label read from a spine table instead of a window after the cutoff";
    E040 "dialect_unsupported" "a construct the dialect cannot express faithfully (e.g. `FILTER (WHERE …)` in BigQuery or Snowflake, `ILIKE` in BigQuery, `TRY_CAST` in PostgreSQL, a float cast to text outside DataFusion and DuckDB, `DATE_TRUNC` in BigQuery)";
    E041 "unwritable_text" "a literal or name the dialect cannot hold or quote safely (a NUL character anywhere; a backtick in a BigQuery name; an output name over PostgreSQL's 63 bytes)";
    E042 "printed_sql_differs" "the printed CTAS does not read back as the analyzed statement; the SQL is withheld (a featurecraft bug: please report the recipe)";
    W001 "unknown_field" "unknown recipe field (a typo such as `expresion`)";
    W010 "label_leakage" "possible label leakage (an error in strict mode)";
    W011 "declared_type_mismatch" "declared `data_type` disagrees with the expression's type family, or is unknown";
    W012 "unbounded_source" "in a point-in-time recipe, a feature reads a source with no time column that is not declared static (`null` in `time_columns`): it is not bounded by the cutoff and may leak (an error in strict mode)";
    W013 "non_deterministic" "a fragment reads the clock or random numbers (`CURRENT_DATE`, `NOW()`, `RANDOM()`, …): the table differs on every run, and validation sees other values than materialization";
    W014 "unused_time_column" "`point_in_time.time_columns` names a table no feature reads";
    E050 "query_failed" "the query failed while running (a cast that fails on the data, an invalid DataFusion setting)";
    E051 "memory_limit" "the run exceeded its memory limit";
    E052 "data_file" "a data file is missing or unreadable";
    E053 "write_failed" "the output cannot be written (the warehouse folder, a full disk)";
    E054 "time_limit" "the run did not finish within its time limit and was stopped; its cluster jobs were cancelled (run it again with a higher limit, or once the cluster has its executors back)";
    W101 "grain_not_unique" "spine rows share grain keys";
    W102 "fan_out" "a row-level source has several rows per key: the join fans out";
    W103 "as_of_ties" "an as-of value's source has several rows at the latest time before a sampled cutoff: the documented tie-break chose one";
    W104 "cutoff_outside_source" "a timed source has no row before any sampled cutoff (within its widest window): every feature from it is empty";
    W105 "immature_labels" "sampled rows whose label window ends after the label source's latest time: their future is not observed yet, so the label may say \"nothing happened\" only because the data ends (`schedule.drop_immature` leaves them out)";
    W110 "single_class_label" "one label class in the sample";
    W111 "label_imbalance" "the minority class is under 5 % of the sample";
    W112 "label_nulls" "NULL labels in the sample";
    W120 "constant_feature" "one value in every sampled row";
    W121 "all_null_feature" "NULL in every sampled row";
    W122 "computed_type_mismatch" "the Arrow type DataFusion computed is not of the declared `data_type` family";
    W124 "window_mostly_empty" "a windowed feature's window holds no source row for most sampled rows";
    W125 "target_leakage" "a feature alone predicts the label on the sample (AUC, or the absolute Spearman ρ for a numeric label, at or above the leak threshold, 0.95 by default): likely target leakage; identifiers (text with over 50 distinct values) are not scored";
    W190 "truncated" "the summary was cut: at most 20 classes, 50 high-null columns, 30 warnings (each at most 300 characters)";
}

impl Code {
    /// The codes compiling a recipe can report (`E0…` before `E05…`, and `W0…`).
    pub fn compile() -> impl Iterator<Item = Code> {
        Code::ALL.iter().copied().filter(|c| c.is_compile())
    }

    /// Whether compiling (rather than running) reports this code.
    pub fn is_compile(self) -> bool {
        let text = self.as_str();
        text.starts_with("W0") || (text.starts_with("E0") && text < "E050")
    }

    /// Whether a validation run reports this code as a summary warning (`W1…`).
    pub fn is_validation_warning(self) -> bool {
        self.as_str().starts_with("W1")
    }

    /// The severity a code carries unless a stage decides otherwise.
    fn default_severity(self) -> Severity {
        if self.as_str().starts_with('E') {
            Severity::Error
        } else {
            Severity::Warning
        }
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A position inside a fragment, 1-based, as editors count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
pub struct Position {
    /// 1-based line.
    pub line: u64,
    /// 1-based column, in characters.
    pub column: u64,
}

/// Where inside a fragment a diagnostic points; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, JsonSchema)]
pub struct Span {
    /// The first character.
    pub start: Position,
    /// Just past the last character.
    pub end: Position,
}

impl Span {
    /// Converts a sqlparser span; `None` for the empty span sqlparser uses when it has none.
    pub fn from_sql(span: sqlparser::tokenizer::Span) -> Option<Span> {
        if span.start.line == 0 {
            return None;
        }
        Some(Span {
            start: Position {
                line: span.start.line,
                column: span.start.column,
            },
            end: Position {
                line: span.end.line,
                column: span.end.column,
            },
        })
    }

    /// A span of one character at a position.
    pub fn at(line: u64, column: u64) -> Span {
        Span {
            start: Position { line, column },
            end: Position {
                line,
                column: column + 1,
            },
        }
    }
}

/// The fields of a recipe and of its parts, as the recipe spells them: the one list the
/// recipe's parser checks unknown fields against (`W001`) and [`RecipePath`] names. A
/// field added to the contract is added here, and to the path's field enums below.
/// The recipe's own fields.
pub const RECIPE_FIELDS: &[&str] = &[
    "target_table",
    "entity_grain",
    "label",
    "features",
    "notes",
    "point_in_time",
    "relationships",
    "derived_columns",
];
/// The fields of an entry of `derived_columns`.
pub const DERIVED_COLUMN_FIELDS: &[&str] = &["table", "name", "source_table", "expression"];
/// The fields of `point_in_time`.
pub const POINT_IN_TIME_FIELDS: &[&str] = &[
    "cutoff_column",
    "time_columns",
    "include_cutoff",
    "schedule",
];
/// The fields of `point_in_time.schedule`.
pub const SCHEDULE_FIELDS: &[&str] = &[
    "source_table",
    "start",
    "every",
    "until",
    "keep_empty",
    "max_per_entity",
    "drop_immature",
];
/// The fields of the label.
pub const LABEL_FIELDS: &[&str] = &[
    "name",
    "type",
    "column",
    "derivation",
    "positive_class_value",
    "source_table",
    "expression",
    "window",
    "gap",
    "empty_value",
];
/// The fields of a feature.
pub const FEATURE_FIELDS: &[&str] = &[
    "name",
    "expression",
    "source_table",
    "description",
    "data_type",
    "window",
];

/// A field of a feature, in a [`RecipePath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FeatureField {
    /// `name`.
    Name,
    /// `expression`.
    Expression,
    /// `source_table`.
    SourceTable,
    /// `description`.
    Description,
    /// `data_type`.
    DataType,
    /// `window` (point-in-time recipes).
    Window,
    /// A field the contract does not know (`W001`).
    Other(String),
}

/// A field of `point_in_time`, in a [`RecipePath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PointInTimeField {
    /// `cutoff_column`.
    CutoffColumn,
    /// `time_columns`, or the entry of one table in it.
    TimeColumns(Option<String>),
    /// `include_cutoff`.
    IncludeCutoff,
    /// `schedule`, or one of its fields.
    Schedule(Option<String>),
    /// A field featurecraft does not know (`W001`).
    Other(String),
}

/// A field of the label, in a [`RecipePath`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LabelField {
    /// `name`.
    Name,
    /// `type`.
    Type,
    /// `column`.
    Column,
    /// `derivation`.
    Derivation,
    /// `positive_class_value`.
    PositiveClassValue,
    /// `source_table` (a label from a window after the cutoff).
    SourceTable,
    /// `expression` (a label from a window after the cutoff).
    Expression,
    /// `window` (a label from a window after the cutoff).
    Window,
    /// `gap` (a label from a window after the cutoff).
    Gap,
    /// `empty_value` (a label from a window after the cutoff).
    EmptyValue,
    /// A field the contract does not know (`W001`).
    Other(String),
}

/// Where in a recipe a finding is. Built and matched as a value; written as the recipe's
/// JSON path (`features[3].expression`, `label.column`, `entity_grain[0]`), which is how
/// clients see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RecipePath {
    /// A field of the recipe itself (`target_table`, `entity_grain`, `features`, `label`,
    /// `notes`), or one the contract does not know.
    Field(String),
    /// `entity_grain[i]`.
    Grain(usize),
    /// `features[i]`, or one of its fields.
    Feature(usize, Option<FeatureField>),
    /// A field of the label.
    Label(LabelField),
    /// `point_in_time`, or one of its fields.
    PointInTime(Option<PointInTimeField>),
    /// `relationships[i]`, or one of its fields (`child`, `parent`, or one it does not know).
    Relationship(usize, Option<String>),
    /// `derived_columns[i]`, or one of its fields.
    DerivedColumn(usize, Option<String>),
    /// A field of a design request (`design.spine`, `design.label.derivation`,
    /// `design.windows[2]`): the request's own path, a recipe path where the two share a
    /// field.
    Design(Box<RecipePath>),
    /// `NAME[i]` of a list only a design request has (`windows`, `primitives`).
    ListItem(&'static str, usize),
}

impl RecipePath {
    /// A field of feature `index`.
    pub fn feature(index: usize, field: FeatureField) -> RecipePath {
        RecipePath::Feature(index, Some(field))
    }

    /// The feature this path is in, if any.
    pub fn feature_index(&self) -> Option<usize> {
        match self {
            RecipePath::Feature(index, _) => Some(*index),
            _ => None,
        }
    }

    /// A field of a design request.
    pub fn design(path: RecipePath) -> RecipePath {
        RecipePath::Design(Box::new(path))
    }

    /// The object holding the field this path names and the field's key, in a recipe's
    /// JSON (a misspelled field is renamed there); `None` for a path that is not a field.
    pub fn field_in<'a>(
        &self,
        recipe: &'a mut serde_json::Value,
    ) -> Option<(&'a mut serde_json::Map<String, serde_json::Value>, String)> {
        let (parent, key): (Option<&mut serde_json::Value>, String) = match self {
            RecipePath::Field(name) => (Some(recipe), name.clone()),
            RecipePath::Feature(i, Some(field)) => (
                recipe.get_mut("features")?.get_mut(*i),
                field.as_str().to_string(),
            ),
            RecipePath::Label(field) => (recipe.get_mut("label"), field.as_str().to_string()),
            RecipePath::PointInTime(Some(PointInTimeField::Schedule(Some(field)))) => (
                recipe.get_mut("point_in_time")?.get_mut("schedule"),
                field.clone(),
            ),
            RecipePath::PointInTime(Some(field)) => (
                recipe.get_mut("point_in_time"),
                match field {
                    PointInTimeField::CutoffColumn => "cutoff_column".into(),
                    PointInTimeField::TimeColumns(None) => "time_columns".into(),
                    PointInTimeField::IncludeCutoff => "include_cutoff".into(),
                    PointInTimeField::Schedule(None) => "schedule".into(),
                    PointInTimeField::Other(name) => name.clone(),
                    PointInTimeField::TimeColumns(Some(_))
                    | PointInTimeField::Schedule(Some(_)) => {
                        return None;
                    }
                },
            ),
            RecipePath::Relationship(i, Some(field)) => {
                (recipe.get_mut("relationships")?.get_mut(*i), field.clone())
            }
            RecipePath::DerivedColumn(i, Some(field)) => (
                recipe.get_mut("derived_columns")?.get_mut(*i),
                field.clone(),
            ),
            _ => return None,
        };
        Some((parent?.as_object_mut()?, key))
    }

    /// The value this path names in a recipe's JSON, if it is there.
    pub fn find_mut<'a>(
        &self,
        recipe: &'a mut serde_json::Value,
    ) -> Option<&'a mut serde_json::Value> {
        match self {
            RecipePath::Grain(i) => recipe.get_mut("entity_grain")?.get_mut(*i),
            RecipePath::Feature(i, None) => recipe.get_mut("features")?.get_mut(*i),
            RecipePath::PointInTime(None) => recipe.get_mut("point_in_time"),
            RecipePath::PointInTime(Some(PointInTimeField::TimeColumns(Some(table)))) => recipe
                .get_mut("point_in_time")?
                .get_mut("time_columns")?
                .get_mut(table),
            RecipePath::Relationship(i, None) => recipe.get_mut("relationships")?.get_mut(*i),
            RecipePath::DerivedColumn(i, None) => recipe.get_mut("derived_columns")?.get_mut(*i),
            RecipePath::Design(_) | RecipePath::ListItem(..) => None,
            field => {
                let (object, key) = field.field_in(recipe)?;
                object.get_mut(&key)
            }
        }
    }
}

impl FeatureField {
    fn as_str(&self) -> &str {
        match self {
            FeatureField::Name => "name",
            FeatureField::Expression => "expression",
            FeatureField::SourceTable => "source_table",
            FeatureField::Description => "description",
            FeatureField::DataType => "data_type",
            FeatureField::Window => "window",
            FeatureField::Other(name) => name,
        }
    }
}

impl LabelField {
    fn as_str(&self) -> &str {
        match self {
            LabelField::Name => "name",
            LabelField::Type => "type",
            LabelField::Column => "column",
            LabelField::Derivation => "derivation",
            LabelField::PositiveClassValue => "positive_class_value",
            LabelField::SourceTable => "source_table",
            LabelField::Expression => "expression",
            LabelField::Window => "window",
            LabelField::Gap => "gap",
            LabelField::EmptyValue => "empty_value",
            LabelField::Other(name) => name,
        }
    }
}

impl std::fmt::Display for RecipePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecipePath::Field(name) => f.write_str(name),
            RecipePath::Grain(index) => write!(f, "entity_grain[{index}]"),
            RecipePath::Feature(index, None) => write!(f, "features[{index}]"),
            RecipePath::Feature(index, Some(field)) => {
                write!(f, "features[{index}].{}", field.as_str())
            }
            RecipePath::Label(field) => write!(f, "label.{}", field.as_str()),
            RecipePath::PointInTime(None) => f.write_str("point_in_time"),
            RecipePath::PointInTime(Some(field)) => match field {
                PointInTimeField::CutoffColumn => f.write_str("point_in_time.cutoff_column"),
                PointInTimeField::IncludeCutoff => f.write_str("point_in_time.include_cutoff"),
                PointInTimeField::TimeColumns(None) => f.write_str("point_in_time.time_columns"),
                PointInTimeField::TimeColumns(Some(table)) if crate::sql::is_bare_word(table) => {
                    write!(f, "point_in_time.time_columns.{table}")
                }
                PointInTimeField::TimeColumns(Some(table)) => {
                    write!(f, "point_in_time.time_columns[{table:?}]")
                }
                PointInTimeField::Schedule(None) => f.write_str("point_in_time.schedule"),
                PointInTimeField::Schedule(Some(field)) => {
                    write!(f, "point_in_time.schedule.{field}")
                }
                PointInTimeField::Other(name) => write!(f, "point_in_time.{name}"),
            },
            RecipePath::Relationship(i, None) => write!(f, "relationships[{i}]"),
            RecipePath::Relationship(i, Some(field)) => write!(f, "relationships[{i}].{field}"),
            RecipePath::DerivedColumn(i, None) => write!(f, "derived_columns[{i}]"),
            RecipePath::DerivedColumn(i, Some(field)) => {
                write!(f, "derived_columns[{i}].{field}")
            }
            RecipePath::Design(path) => write!(f, "design.{path}"),
            RecipePath::ListItem(list, i) => write!(f, "{list}[{i}]"),
        }
    }
}

impl Serialize for RecipePath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One finding about a recipe, a catalog or a run.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Diagnostic {
    /// The stable code clients match on.
    #[schemars(with = "String", regex(pattern = r"^[EW][0-9]{3}$"))]
    pub code: Code,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in a sentence.
    pub message: String,
    /// Where in the recipe: `features[3].expression`, `label.column`, `target_table`; `null` for the whole recipe.
    /// (Boxed: diagnostics travel in `Result`s, which stay small this way.)
    #[schemars(with = "Option<String>")]
    pub path: Option<Box<RecipePath>>,
    /// Where inside the fragment at `path`, when known.
    pub span: Option<Span>,
    /// Suggestions, such as "did you mean `amount`?".
    pub hints: Vec<String>,
    /// The names it suggests instead of the one the recipe has, as data (a did-you-mean
    /// hint says the same in words); it replaces a name at this diagnostic's `path` and
    /// `span`. Absent when there is none. (Boxed, as `path` is.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<Box<Suggestion>>,
}

/// Names a finding suggests instead of the one the recipe has: what a tool applies (one
/// clear candidate is a fix, `featurecraft fix`), where the hint says it in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Suggestion {
    /// What it replaces: a name inside the value at the diagnostic's path (at its span
    /// when it has one), or the key of the recipe field at that path.
    pub replaces: Replaces,
    /// The name the recipe has (`amout`).
    pub found: String,
    /// The names it could be, best first (`amount`).
    pub candidates: Vec<String>,
}

/// What a [`Suggestion`] replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Replaces {
    /// A table or column name in the value at the path.
    Name,
    /// The field's own key (a misspelled recipe field, `expresion`).
    FieldKey,
}

impl Suggestion {
    /// The one clear candidate, when there is exactly one.
    pub fn single(&self) -> Option<&str> {
        match self.candidates.as_slice() {
            [one] => Some(one),
            _ => None,
        }
    }
}

impl Diagnostic {
    /// A diagnostic with the code's default severity and no path, span or hints.
    pub fn new(code: Code, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: code.default_severity(),
            message: message.into(),
            path: None,
            span: None,
            hints: Vec::new(),
            suggestion: None,
        }
    }

    /// Suggests `candidates` (best first) for the name `found`, as data and as the
    /// did-you-mean hint derived from it; no candidate adds nothing.
    pub fn suggest(
        mut self,
        replaces: Replaces,
        found: impl Into<String>,
        candidates: Vec<String>,
    ) -> Diagnostic {
        if let Some(hint) = did_you_mean(&candidates) {
            self.hints.push(hint);
            self.suggestion = Some(Box::new(Suggestion {
                replaces,
                found: found.into(),
                candidates,
            }));
        }
        self
    }

    /// Sets the recipe path.
    pub fn at(mut self, path: RecipePath) -> Diagnostic {
        self.path = Some(Box::new(path));
        self
    }

    /// The recipe path as clients see it (`features[3].expression`).
    pub fn path_text(&self) -> Option<String> {
        self.path.as_deref().map(ToString::to_string)
    }

    /// Sets the span inside the fragment.
    pub fn with_span(mut self, span: Option<Span>) -> Diagnostic {
        self.span = span;
        self
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hints.push(hint.into());
        self
    }

    /// Adds hints.
    pub fn hints(mut self, hints: impl IntoIterator<Item = String>) -> Diagnostic {
        self.hints.extend(hints);
        self
    }

    /// The one-line form kept in a summary: `W101 grain_not_unique: message (at path)`.
    pub fn summary_line(&self) -> String {
        match &self.path {
            Some(path) => format!(
                "{} {}: {} (at {path})",
                self.code.as_str(),
                self.code.slug(),
                self.message
            ),
            None => format!(
                "{} {}: {}",
                self.code.as_str(),
                self.code.slug(),
                self.message
            ),
        }
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic the way compilers do: a header, the path, the fragment with a
    /// caret under the span, and the hints. `fragment` is the text at `path`, when there is one.
    pub fn render(&self, fragment: Option<&str>) -> String {
        let mut out = String::new();
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let _ = writeln!(out, "{kind}[{}]: {}", self.code.as_str(), self.message);
        if let Some(path) = &self.path {
            let _ = writeln!(out, "  --> {path}");
        }
        if let (Some(text), Some(span)) = (fragment, self.span) {
            let line_no = span.start.line as usize;
            if let Some(line) = text.lines().nth(line_no.saturating_sub(1)) {
                let width = line_no.to_string().len();
                let start = (span.start.column as usize).max(1);
                let line_chars = line.chars().count();
                let end = if span.end.line == span.start.line {
                    (span.end.column as usize).max(start + 1)
                } else {
                    line_chars + 1
                };
                let carets = end.saturating_sub(start).clamp(1, line_chars.max(1));
                let pad: String = line
                    .chars()
                    .take(start - 1)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let _ = writeln!(out, "{:width$} |", "");
                // Control characters are shown as their visible symbols (NUL as `␀`), one
                // character each, so the terminal stays sane and the carets stay aligned.
                let shown: String = line
                    .chars()
                    .map(|c| match c as u32 {
                        0..=0x08 | 0x0b..=0x1f => char::from_u32(0x2400 + c as u32).unwrap_or('?'),
                        0x7f => '\u{2421}',
                        _ => c,
                    })
                    .collect();
                let _ = writeln!(out, "{line_no} | {shown}");
                let _ = writeln!(out, "{:width$} | {pad}{}", "", "^".repeat(carets));
            }
        }
        for hint in &self.hints {
            let _ = writeln!(out, "  = help: {hint}");
        }
        out
    }
}

/// Whether `diagnostics` fail a command, a run or a call: any error does, and in strict
/// mode any finding at all. The one rule every front end applies.
pub fn fail(diagnostics: &[Diagnostic], strict: bool) -> bool {
    diagnostics.iter().any(|d| strict || d.is_error())
}

/// Names close to `wanted` among `candidates`, best first, for "did you mean" hints.
///
/// Case is ignored; a candidate qualifies when its edit distance is at most a third of the
/// longer name (at least 1), or when one name contains the other.
pub fn suggestions<'a>(wanted: &str, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let wanted_lower = wanted.to_lowercase();
    let mut scored: Vec<(usize, String)> = candidates
        .into_iter()
        .filter_map(|candidate| {
            let lower = candidate.to_lowercase();
            if lower == wanted_lower {
                return Some((0, candidate.to_string()));
            }
            let distance = edit_distance(&wanted_lower, &lower);
            let limit = (wanted_lower.chars().count().max(lower.chars().count()) / 3).max(1);
            let contains = wanted_lower.len() >= 3
                && (lower.contains(&wanted_lower) || wanted_lower.contains(&lower));
            (distance <= limit || contains).then(|| (distance, candidate.to_string()))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored.into_iter().take(3).map(|(_, name)| name).collect()
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// Formats suggestions as one hint, e.g. "did you mean `amount`?".
pub fn did_you_mean(names: &[String]) -> Option<String> {
    match names {
        [] => None,
        [one] => Some(format!("did you mean `{one}`?")),
        many => Some(format!(
            "did you mean one of {}?",
            many.iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_types_spell_the_fields_the_parser_knows() {
        let features = [
            FeatureField::Name,
            FeatureField::Expression,
            FeatureField::SourceTable,
            FeatureField::Description,
            FeatureField::DataType,
            FeatureField::Window,
        ];
        let names: Vec<&str> = features.iter().map(FeatureField::as_str).collect();
        assert_eq!(names, FEATURE_FIELDS);
        let labels = [
            LabelField::Name,
            LabelField::Type,
            LabelField::Column,
            LabelField::Derivation,
            LabelField::PositiveClassValue,
            LabelField::SourceTable,
            LabelField::Expression,
            LabelField::Window,
            LabelField::Gap,
            LabelField::EmptyValue,
        ];
        let names: Vec<&str> = labels.iter().map(LabelField::as_str).collect();
        assert_eq!(names, LABEL_FIELDS);
        let times = [
            PointInTimeField::CutoffColumn,
            PointInTimeField::TimeColumns(None),
            PointInTimeField::IncludeCutoff,
            PointInTimeField::Schedule(None),
        ];
        let names: Vec<String> = times
            .into_iter()
            .map(|f| RecipePath::PointInTime(Some(f)).to_string())
            .collect();
        let want: Vec<String> = POINT_IN_TIME_FIELDS
            .iter()
            .map(|f| format!("point_in_time.{f}"))
            .collect();
        assert_eq!(names, want);
    }

    #[test]
    fn a_path_finds_its_value_in_a_recipe() {
        let mut recipe = serde_json::json!({
            "target_table": "t", "entity_grain": ["customer_id", "cutoff_time"],
            "label": {"column": "churned"},
            "features": [{"name": "a", "expresion": "SUM(x)"}],
            "point_in_time": {"cutoff_column": "cutoff_time", "time_columns": {"retail.orders": "ts"},
                              "schedule": {"every": "7d"}},
            "relationships": [{"child": "o.c", "parent": "c.id"}],
            "derived_columns": [{"table": "c", "name": "n"}]
        });
        for (path, want) in [
            (
                RecipePath::Field("target_table".into()),
                serde_json::json!("t"),
            ),
            (RecipePath::Grain(1), serde_json::json!("cutoff_time")),
            (
                RecipePath::feature(0, FeatureField::Name),
                serde_json::json!("a"),
            ),
            (
                RecipePath::feature(0, FeatureField::Other("expresion".into())),
                serde_json::json!("SUM(x)"),
            ),
            (
                RecipePath::Label(LabelField::Column),
                serde_json::json!("churned"),
            ),
            (
                RecipePath::PointInTime(Some(PointInTimeField::CutoffColumn)),
                serde_json::json!("cutoff_time"),
            ),
            (
                RecipePath::PointInTime(Some(PointInTimeField::TimeColumns(Some(
                    "retail.orders".into(),
                )))),
                serde_json::json!("ts"),
            ),
            (
                RecipePath::PointInTime(Some(PointInTimeField::Schedule(Some("every".into())))),
                serde_json::json!("7d"),
            ),
            (
                RecipePath::Relationship(0, Some("child".into())),
                serde_json::json!("o.c"),
            ),
            (
                RecipePath::DerivedColumn(0, Some("name".into())),
                serde_json::json!("n"),
            ),
        ] {
            assert_eq!(
                path.find_mut(&mut recipe),
                Some(&mut want.clone()),
                "{path}"
            );
        }
        for absent in [
            RecipePath::Grain(5),
            RecipePath::feature(3, FeatureField::Name),
            RecipePath::Label(LabelField::Window),
            RecipePath::design(RecipePath::Field("spine".into())),
            RecipePath::ListItem("windows", 0),
        ] {
            assert_eq!(absent.find_mut(&mut recipe), None, "{absent}");
        }
        assert_eq!(
            RecipePath::design(RecipePath::ListItem("windows", 2)).to_string(),
            "design.windows[2]"
        );
    }

    #[test]
    fn suggests_close_names_first() {
        let found = suggestions("amout", ["amount", "account", "status"]);
        assert_eq!(found.first().map(String::as_str), Some("amount"));
        assert!(!found.contains(&"status".to_string()));
    }

    #[test]
    fn caret_sits_under_the_span() {
        let d = Diagnostic::new(Code::E021, "unknown column `amout`")
            .at(RecipePath::feature(0, FeatureField::Expression))
            .with_span(Some(Span {
                start: Position { line: 1, column: 5 },
                end: Position {
                    line: 1,
                    column: 10,
                },
            }));
        let text = d.render(Some("SUM(amout)"));
        assert!(text.contains("1 | SUM(amout)"), "{text}");
        assert!(text.contains("  |     ^^^^^"), "{text}");
    }
}
