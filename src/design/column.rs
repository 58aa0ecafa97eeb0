//! What one column proposes: its aggregates per entity, its value in an entity's one row,
//! or why it gives no feature (an identifier, free text, a type no feature has), and the
//! feature built from each, named uniquely and printed by featurecraft's escaper.

use super::names::{Names, column_expr, sanitize};
use super::options::DesignOptions;
use super::profile::ColumnProfile;
use super::stacked::{Primitive, Primitives, count_distinct};
use crate::catalog::{Column, Table};
use crate::compile::dialect::Dialect;
use crate::contract::recipe::FeatureSpec;
use crate::sql::call;
use crate::types::TypeFamily;
use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{CaseWhen, Expr, Value};

/// A window the crew computes aggregates over.
#[derive(Clone)]
pub(super) struct DesignWindow {
    /// As a recipe writes it (`30 days`).
    pub(super) text: String,
    /// Appended to a feature's name (`30d`).
    pub(super) suffix: String,
}

/// Whether a column of a timed table is worth its value in the latest row: a measurement
/// or a category, not free text.
pub(super) fn as_of_worthy(
    family: TypeFamily,
    profile: &ColumnProfile,
    options: &DesignOptions,
) -> bool {
    match family {
        TypeFamily::Integer | TypeFamily::Float | TypeFamily::Decimal | TypeFamily::Boolean => true,
        TypeFamily::String => profile.distinct <= options.max_categories,
        _ => false,
    }
}

/// How a column is aggregated: by its type, or as a category (a key with few values).
#[derive(Clone, Copy)]
pub(super) enum Category {
    Key,
    Of(TypeFamily),
}

/// What a column of a table other than the spine proposes, aggregated per entity:
/// (name, expression, description) for each feature, or why the column gives none.
pub(super) fn aggregated(
    table: &Table,
    column: &Column,
    profile: &ColumnProfile,
    kind: Category,
    primitives: &Primitives,
    since: Option<&Since>,
    options: &DesignOptions,
) -> Result<Vec<(String, Expr, String)>, String> {
    let c = column_expr(&column.name);
    let short = sanitize(&table.name);
    let cname = sanitize(&column.name);
    let mut out = Vec::new();
    let family = match kind {
        Category::Key => TypeFamily::String,
        Category::Of(family) => family,
    };
    match family {
        TypeFamily::Integer | TypeFamily::Float | TypeFamily::Decimal => {
            for p in Primitive::MEASURE.iter().filter(|p| primitives.has(**p)) {
                out.push((
                    format!("{}_{short}_{cname}", p.prefix()),
                    p.of(Some(c.clone())),
                    format!("{} of {} per entity", p.sql(), column.name),
                ));
            }
        }
        TypeFamily::String => {
            if profile.distinct > options.max_categories {
                return Err(format!(
                    "text with more than {} distinct values in the profile",
                    options.max_categories
                ));
            }
            if primitives.has(Primitive::NumUnique) {
                out.push((
                    format!("n_distinct_{short}_{cname}"),
                    count_distinct(c.clone()),
                    format!("distinct {} per entity", column.name),
                ));
            }
            let number = TypeFamily::of(&column.data_type) == TypeFamily::Integer;
            for (value, _) in profile.top.iter().take(options.top_values) {
                let (literal, shown) = if number {
                    (Value::Number(value.clone(), false), value.clone())
                } else {
                    (
                        Value::SingleQuotedString(value.clone()),
                        format!("'{value}'"),
                    )
                };
                out.push((
                    format!("count_{short}_{cname}_{}", sanitize(value)),
                    count_when(Expr::BinaryOp {
                        left: Box::new(c.clone()),
                        op: sqlparser::ast::BinaryOperator::Eq,
                        right: Box::new(Expr::value(literal)),
                    }),
                    format!("rows with {} = {shown} per entity", column.name),
                ));
            }
        }
        TypeFamily::Boolean => out.push((
            format!("true_share_{short}_{cname}"),
            call("AVG", vec![share_of_true(c.clone())]),
            format!("share of rows with {} true", column.name),
        )),
        TypeFamily::Date | TypeFamily::Timestamp => {
            for (agg, what) in [("MAX", "latest"), ("MIN", "earliest")] {
                let time = call(agg, vec![c.clone()]);
                out.push(match since {
                    Some(since) => (
                        format!("days_since_{what}_{short}_{cname}"),
                        days_since(since, time),
                        format!(
                            "days from the entity's {what} {} {}",
                            column.name,
                            since.to()
                        ),
                    ),
                    None => (
                        format!("{what}_{short}_{cname}"),
                        time,
                        format!("{what} {} per entity", column.name),
                    ),
                });
            }
        }
        TypeFamily::Other => return Err(format!("type {} is not aggregated", column.data_type)),
    }
    Ok(out)
}

/// The value of a column in the entity's one row of `table`: numbers and booleans as they
/// are, a category as its value, a time as recency (days to `since`).
pub(super) fn row_value(
    table: &Table,
    column: &Column,
    profile: &ColumnProfile,
    kind: Category,
    since: Option<&Since>,
    options: &DesignOptions,
) -> Result<(String, Expr, String), String> {
    let c = column_expr(&column.name);
    let name = format!("{}_{}", sanitize(&table.name), sanitize(&column.name));
    let of_row = format!("{} of the entity's {} row", column.name, table.name);
    match kind {
        Category::Key => Ok((name, c, of_row)),
        Category::Of(
            TypeFamily::Integer | TypeFamily::Float | TypeFamily::Decimal | TypeFamily::Boolean,
        ) => Ok((name, c, of_row)),
        Category::Of(TypeFamily::String) if profile.distinct <= options.max_categories => {
            Ok((name, c, of_row))
        }
        Category::Of(TypeFamily::String) => Err(format!(
            "text with more than {} distinct values in the profile",
            options.max_categories
        )),
        Category::Of(TypeFamily::Date | TypeFamily::Timestamp) => match since {
            Some(since) => Ok((
                format!("days_since_{name}"),
                days_since(since, c),
                format!("days from {of_row} {}", since.to()),
            )),
            None => Err("a time with no value in the table".into()),
        },
        Category::Of(TypeFamily::Other) => {
            Err(format!("type {} is not a feature type", column.data_type))
        }
    }
}

/// What a time is measured from, so that a feature is recency, not calendar time.
pub(super) enum Since {
    /// The latest value of the column in the data (`YYYY-MM-DD`), without point in time.
    Latest(String),
    /// Each row's cutoff (the cutoff column), in a point-in-time design.
    Cutoff(String),
}

impl Since {
    /// `to the cutoff`, `to the latest in the data (2025-12-30)`.
    pub(super) fn to(&self) -> String {
        match self {
            Since::Latest(date) => format!("to the latest in the data ({date})"),
            Since::Cutoff(_) => "to the cutoff".into(),
        }
    }
}

/// `DATE 'date' - CAST(time AS DATE)` or `CAST(cutoff AS DATE) - CAST(time AS DATE)`:
/// whole days from `time` to the reference, which the compiler spells per dialect
/// (`DATEDIFF`, `DATE_DIFF(…, DAY)`, `-`).
pub(super) fn days_since(since: &Since, time: Expr) -> Expr {
    let reference = match since {
        Since::Latest(date) => Expr::TypedString(sqlparser::ast::TypedString {
            data_type: sqlparser::ast::DataType::Date,
            value: sqlparser::ast::ValueWithSpan {
                value: Value::SingleQuotedString(date.clone()),
                span: sqlparser::tokenizer::Span::empty(),
            },
            uses_odbc_syntax: false,
        }),
        Since::Cutoff(cutoff) => {
            crate::sql::cast(column_expr(cutoff), sqlparser::ast::DataType::Date)
        }
    };
    Expr::BinaryOp {
        left: Box::new(reference),
        op: sqlparser::ast::BinaryOperator::Minus,
        right: Box::new(crate::sql::cast(time, sqlparser::ast::DataType::Date)),
    }
}

/// Below this many sampled values, near-uniqueness says nothing.
const NEAR_UNIQUE_MIN_VALUES: usize = 50;

/// Whether a column's name says it is a key (`id`, `…_id`, `…_key`, `…_uuid`).
fn key_named(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "id" || ["_id", "_key", "_uuid"].iter().any(|s| lower.ends_with(s))
}

/// Each value of a key column that is a category appears on this many profiled rows at
/// least, on average.
const CATEGORY_MIN_ROWS_PER_VALUE: usize = 5;

/// A key-named integer or text column with few distinct values (a product or category
/// code, a foreign key to a small table) is a category, not an identifier: at most
/// `max_categories` distinct profiled values, each on [`CATEGORY_MIN_ROWS_PER_VALUE`]
/// rows or more on average.
pub(super) fn key_category(
    name: &str,
    family: TypeFamily,
    profile: &ColumnProfile,
    options: &DesignOptions,
) -> bool {
    key_named(name)
        && matches!(family, TypeFamily::String | TypeFamily::Integer)
        && profile.distinct > 0
        && profile.distinct <= options.max_categories
        && profile.non_null >= CATEGORY_MIN_ROWS_PER_VALUE * profile.distinct
}

/// Why a column is an identifier rather than a measurement, if it is one.
pub(super) fn identifier_like(
    name: &str,
    family: TypeFamily,
    profile: &ColumnProfile,
    options: &DesignOptions,
) -> Option<String> {
    if key_named(name) {
        if key_category(name, family, profile, options) {
            return None;
        }
        return Some(format!(
            "identifier-like (its name, and {} distinct of {} profiled values)",
            profile.distinct, profile.non_null
        ));
    }
    let countable = matches!(family, TypeFamily::String | TypeFamily::Integer);
    if countable
        && profile.non_null >= NEAR_UNIQUE_MIN_VALUES
        && profile.distinct as f64 >= 0.95 * profile.non_null as f64
    {
        return Some(format!(
            "identifier-like ({} of {} profiled values distinct)",
            profile.distinct, profile.non_null
        ));
    }
    None
}

/// A proposed feature with a unique name (with a window, the name and description say
/// it), its expression printed by featurecraft's escaper (a profiled value becomes a string
/// literal); `None` for the rare value no SQL string can hold (a NUL).
pub(super) fn feature(
    names: &mut Names,
    name: String,
    expr: Expr,
    table: &Table,
    description: String,
    window: Option<&DesignWindow>,
) -> Option<FeatureSpec> {
    let expression = crate::compile::print::expression_text(&expr, Dialect::Generic).ok()?;
    let (name, description) = match window {
        Some(w) => (
            format!("{name}_{}", w.suffix),
            format!("{description}, in the {} before the cutoff", w.text),
        ),
        None => (name, description),
    };
    Some(FeatureSpec {
        name: names.claim(name),
        expression,
        source_table: table.name.clone(),
        description,
        data_type: None,
        window: window.map(|w| w.text.clone()),
    })
}

/// `COUNT(CASE WHEN condition THEN 1 END)`.
fn count_when(condition: Expr) -> Expr {
    call(
        "COUNT",
        vec![case(
            condition,
            Expr::value(Value::Number("1".into(), false)),
            None,
        )],
    )
}

/// `CASE WHEN column THEN 1.0 ELSE 0.0 END`.
fn share_of_true(column: Expr) -> Expr {
    case(
        column,
        Expr::value(Value::Number("1.0".into(), false)),
        Some(Expr::value(Value::Number("0.0".into(), false))),
    )
}

fn case(condition: Expr, result: Expr, otherwise: Option<Expr>) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen { condition, result }],
        else_result: otherwise.map(Box::new),
    }
}
