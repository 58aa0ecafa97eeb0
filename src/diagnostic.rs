//! Diagnostics: the errors and warnings every stage returns as data.
//!
//! A diagnostic carries a stable [`Code`], a severity, a message, the recipe path it
//! concerns (`features[3].expression`), the span inside that fragment where known, and
//! hints. Stages collect them instead of logging, so the CLI, the HTTP service and tests
//! all see the same findings.

use serde::{Serialize, Serializer};
use std::fmt::Write as _;

/// How bad a finding is: errors stop compilation, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Stable diagnostic codes. Their spelling is part of the public contract: clients match on it.
///
/// `E…` codes are errors, `W0…` are compile-time warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// Malformed recipe JSON, a missing field or a field of the wrong type.
    E001,
    /// `entity_grain` is empty.
    E002,
    /// An output or table name is not a portable identifier.
    E003,
    /// Two output columns (or grain columns) share a name, compared case-insensitively.
    E004,
    /// The recipe has more features than a compile accepts.
    E005,
    /// A SQL fragment does not parse.
    E010,
    /// A SQL fragment is not a single expression (trailing input, a second statement).
    E011,
    /// A forbidden construct: subquery, window function, nested aggregate, lambda,
    /// placeholder, or anything outside the fragment grammar featurecraft accepts.
    E012,
    /// A table that is not in the catalog.
    E020,
    /// A column that is not in its table.
    E021,
    /// The label's table cannot be determined: no table or several tables qualify.
    E022,
    /// A source table lacks a grain column.
    E023,
    /// An aggregate mixed with a non-grouped column (in one expression or one source).
    E030,
    /// The label derivation reads a column outside the label's table.
    E031,
    /// A construct the chosen dialect cannot express faithfully.
    E040,
    /// A literal or a name holds characters the dialect cannot hold or quote safely.
    E041,
    /// The printed SQL does not read back as the statement that was analyzed.
    E042,
    /// A field the contract does not know (often a typo).
    W001,
    /// A feature reads the label's source column or a column the label derivation reads.
    W010,
    /// A feature's declared `data_type` disagrees with the type of its expression.
    W011,
    /// A fragment calls a function whose value changes from run to run (`NOW()`, `RANDOM()`).
    W012,
    /// The query failed while running (a cast that fails on the data, a division by zero…).
    E050,
    /// The run exceeded the memory limit.
    E051,
    /// A data file is missing or unreadable.
    E052,
    /// The output cannot be written (the warehouse folder, a full disk).
    E053,
    /// The grain is not unique in the spine.
    W101,
    /// A row-level source is not unique on the grain: the join fans out.
    W102,
    /// The label has a single class in the sample.
    W110,
    /// The label is imbalanced: the minority class is under 5 % of the sample.
    W111,
    /// The label has NULLs in the sample.
    W112,
    /// A feature is constant in the sample.
    W120,
    /// A feature is NULL in every sampled row.
    W121,
    /// The computed Arrow type disagrees with the declared `data_type`.
    W122,
    /// A feature separates the label perfectly in the sample (suspected leakage).
    W123,
    /// The summary was cut to stay small.
    W190,
}

impl Code {
    /// Every code compilation can report, in documentation order.
    pub const COMPILE: [Code; 21] = [
        Code::E001,
        Code::E002,
        Code::E003,
        Code::E004,
        Code::E005,
        Code::E010,
        Code::E011,
        Code::E012,
        Code::E020,
        Code::E021,
        Code::E022,
        Code::E023,
        Code::E030,
        Code::E031,
        Code::E040,
        Code::E041,
        Code::E042,
        Code::W001,
        Code::W010,
        Code::W011,
        Code::W012,
    ];

    /// The code as clients see it, e.g. `"E021"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::E001 => "E001",
            Code::E002 => "E002",
            Code::E003 => "E003",
            Code::E004 => "E004",
            Code::E005 => "E005",
            Code::E010 => "E010",
            Code::E011 => "E011",
            Code::E012 => "E012",
            Code::E020 => "E020",
            Code::E021 => "E021",
            Code::E022 => "E022",
            Code::E023 => "E023",
            Code::E030 => "E030",
            Code::E031 => "E031",
            Code::E040 => "E040",
            Code::E041 => "E041",
            Code::E042 => "E042",
            Code::W001 => "W001",
            Code::W010 => "W010",
            Code::W011 => "W011",
            Code::W012 => "W012",
            Code::E050 => "E050",
            Code::E051 => "E051",
            Code::E052 => "E052",
            Code::E053 => "E053",
            Code::W101 => "W101",
            Code::W102 => "W102",
            Code::W110 => "W110",
            Code::W111 => "W111",
            Code::W112 => "W112",
            Code::W120 => "W120",
            Code::W121 => "W121",
            Code::W122 => "W122",
            Code::W123 => "W123",
            Code::W190 => "W190",
        }
    }

    /// A short stable name, written after the code in summary warnings
    /// (`W101 grain_not_unique: …`).
    pub fn slug(self) -> &'static str {
        match self {
            Code::E001 => "malformed_recipe",
            Code::E002 => "empty_grain",
            Code::E003 => "invalid_name",
            Code::E004 => "duplicate_name",
            Code::E005 => "too_many_features",
            Code::E010 => "parse_error",
            Code::E011 => "not_one_expression",
            Code::E012 => "forbidden_construct",
            Code::E020 => "unknown_table",
            Code::E021 => "unknown_column",
            Code::E022 => "label_table_undetermined",
            Code::E023 => "grain_column_missing",
            Code::E030 => "aggregate_mixed",
            Code::E031 => "label_outside_table",
            Code::E040 => "dialect_unsupported",
            Code::E041 => "unwritable_text",
            Code::E042 => "printed_sql_differs",
            Code::W001 => "unknown_field",
            Code::W010 => "label_leakage",
            Code::W011 => "declared_type_mismatch",
            Code::W012 => "non_deterministic",
            Code::E050 => "query_failed",
            Code::E051 => "memory_limit",
            Code::E052 => "data_file",
            Code::E053 => "write_failed",
            Code::W101 => "grain_not_unique",
            Code::W102 => "fan_out",
            Code::W110 => "single_class_label",
            Code::W111 => "label_imbalance",
            Code::W112 => "label_nulls",
            Code::W120 => "constant_feature",
            Code::W121 => "all_null_feature",
            Code::W122 => "computed_type_mismatch",
            Code::W123 => "suspected_leakage",
            Code::W190 => "truncated",
        }
    }

    /// The severity a code carries unless a stage decides otherwise.
    pub fn default_severity(self) -> Severity {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    pub line: u64,
    pub column: u64,
}

/// Where inside a fragment a diagnostic points; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Span {
    pub start: Position,
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

/// One finding about a recipe, a catalog or a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// Where in the recipe: `features[3].expression`, `label.column`, `target_table`; `null` for the whole recipe.
    pub path: Option<String>,
    /// Where inside the fragment at `path`, when known.
    pub span: Option<Span>,
    /// Suggestions, such as "did you mean `amount`?".
    pub hints: Vec<String>,
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
        }
    }

    /// Sets the recipe path.
    pub fn at(mut self, path: impl Into<String>) -> Diagnostic {
        self.path = Some(path.into());
        self
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
    fn suggests_close_names_first() {
        let found = suggestions("amout", ["amount", "account", "status"]);
        assert_eq!(found.first().map(String::as_str), Some("amount"));
        assert!(!found.contains(&"status".to_string()));
    }

    #[test]
    fn caret_sits_under_the_span() {
        let d = Diagnostic::new(Code::E021, "unknown column `amout`")
            .at("features[0].expression")
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
