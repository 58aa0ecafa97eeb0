//! The SQL dialects featurecraft renders, and what each can express.
//!
//! Every difference between dialects lives in one [`Capabilities`] row per dialect: how
//! identifiers are quoted, whether `CREATE OR REPLACE TABLE` exists, which optional
//! constructs are supported, and how common type names are spelled. Rendering reads the
//! row; nothing else branches on the dialect.

use serde::{Deserialize, Serialize};
use sqlparser::ast::{DataType, DateTimeField, ExactNumberInfo, TimezoneInfo};
use std::fmt;
use std::str::FromStr;

/// A target SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    #[default]
    /// ANSI-leaning SQL for engines not listed.
    Generic,
    /// Apache DataFusion: what validation and materialization run.
    DataFusion,
    /// DuckDB.
    DuckDb,
    /// PostgreSQL.
    Postgres,
    /// Snowflake.
    Snowflake,
    /// Google BigQuery.
    BigQuery,
    /// Databricks (Spark SQL).
    Databricks,
}

/// How a dialect spells the portable types a fragment may cast to.
#[derive(Debug, Clone)]
pub struct TypeNames {
    /// The 64-bit integer type.
    pub integer: DataType,
    /// The double-precision float type.
    pub float: DataType,
    /// The text type.
    pub string: DataType,
    /// The boolean type.
    pub boolean: DataType,
}

/// Spellings of `EXTRACT(DOW FROM x)` with Sunday = 0 … Saturday = 6.
#[derive(Debug, Clone, PartialEq)]
pub enum DayOfWeek {
    /// `EXTRACT(DOW FROM x)` already counts from Sunday = 0.
    SundayZero,
    /// The field counts Sunday = 1 … Saturday = 7: `(EXTRACT(field FROM x) - 1)`.
    SundayOne(DateTimeField),
    /// The plain field depends on a session setting; `(EXTRACT(DAYOFWEEKISO FROM x) % 7)` does not.
    IsoModSeven,
}

/// Spellings of the whole days between two dates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaysBetween {
    /// `a - b` is an integer number of days.
    Minus,
    /// `DATEDIFF(a, b)` (Spark: `a - b` is an interval).
    DateDiff,
    /// `DATE_DIFF(a, b, DAY)` (BigQuery: `a - b` is an interval).
    DateDiffDay,
}

/// Spellings of "this window before the cutoff" (`cutoff − 30 days`), for point-in-time
/// windows. The window is a whole number of days, hours, minutes or seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowStart {
    /// `(cutoff - INTERVAL '30' DAY)`.
    IntervalMinus,
    /// `(cutoff - arrow_cast(2592000, 'Duration(Second)'))` for a timestamp, the interval
    /// for a date (DataFusion). Arrow subtracts an interval from a timestamp value by value
    /// through calendar arithmetic, and a duration as one integer subtraction: at 2.7M
    /// cutoffs the three window starts took 0.8 s as intervals and nothing as durations.
    /// A window is a fixed length, so the two agree on timestamps without a time zone.
    DurationMinus,
    /// `DATEADD(DAY, -30, cutoff)` (Snowflake).
    DateAdd,
    /// `DATE_SUB(cutoff, INTERVAL 30 DAY)` for a date, `TIMESTAMP_SUB(…)` for a timestamp
    /// (BigQuery: `-` of an interval does not keep a DATE a DATE).
    DateSub,
}

/// Spellings of a schedule's cutoffs: per entity, the times from `start` to `until` (both
/// included) every fixed span, one row each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CutoffSeries {
    /// `unnest(generate_series(start, until, INTERVAL '12' HOUR))` in the select list
    /// (DataFusion, DuckDB).
    Unnest,
    /// `generate_series(start, until, INTERVAL '12' HOUR)` in the select list (PostgreSQL's
    /// set-returning function).
    SetReturning,
    /// `explode(sequence(start, until, INTERVAL '12' HOUR))` (Spark, Databricks).
    Explode,
    /// `CROSS JOIN UNNEST(GENERATE_TIMESTAMP_ARRAY(start, until, INTERVAL 12 HOUR))`, or
    /// `GENERATE_DATE_ARRAY` for dates (BigQuery).
    UnnestJoin,
    /// A recursive CTE that adds the span until `until` (generic SQL, Snowflake, which has
    /// no series of times).
    Recursive,
}

/// How a dialect writes the characters of a string literal that need care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringEscapes {
    /// Standard SQL: `'` is doubled, a backslash is an ordinary character (PostgreSQL with
    /// `standard_conforming_strings = on`, its default since 9.1).
    QuoteDoubling,
    /// A backslash escapes: `\\` and `\'`; with `escape_controls`, line breaks and other
    /// control characters are written as escapes too (a BigQuery `'…'` cannot span lines).
    Backslash {
        /// Line breaks and other control characters are written as escapes too.
        escape_controls: bool,
    },
    /// Spark: a backslash escapes and `'a''b'` is two adjacent literals, while sqlparser's
    /// grammar for it reads neither so. A string holding `'` or `\` is rendered as a
    /// concatenation with `CHR(39)` / `CHR(92)`, so neither character is ever inside quotes.
    CharCodes,
}

/// How a dialect writes a quote inside a quoted identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentifierEscapes {
    /// The quote character is doubled (`"a""b"`, `` `a``b` ``).
    QuoteDoubling,
    /// No escape both the engine and sqlparser agree on (BigQuery reads `\` escapes in
    /// quoted names): a name holding the quote, a backslash or a control character is refused.
    Refused,
}

/// One row of the capability table.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// The dialect this row is of (its name, as the command line and messages spell it,
    /// is `dialect.name()`).
    pub dialect: Dialect,
    /// The character that quotes identifiers.
    pub quote: char,
    /// How string literals are escaped (by the escaper, which reads this row).
    pub string_escapes: StringEscapes,
    /// How quoted identifiers are escaped.
    pub identifier_escapes: IdentifierEscapes,
    /// `CREATE OR REPLACE TABLE` exists; otherwise a plain `CREATE TABLE`.
    pub create_or_replace: bool,
    /// `agg(...) FILTER (WHERE ...)`.
    pub aggregate_filter: bool,
    /// `ILIKE`.
    pub ilike: bool,
    /// `TRY_CAST(x AS T)`.
    pub try_cast: bool,
    /// `SAFE_CAST(x AS T)`.
    pub safe_cast: bool,
    /// `ROUND(x, digits)` takes a floating-point `x`; PostgreSQL's takes only `NUMERIC`, so
    /// there `x` is cast to `NUMERIC` first.
    pub round_float_digits: bool,
    /// `CAST(float AS text)` gives the same text as DataFusion (`9.0`, `10000000000.0`).
    pub float_text_like_datafusion: bool,
    /// The longest identifier the engine keeps, in bytes; a longer one is cut short
    /// silently (PostgreSQL: 63), so two long names could collide. `None`: longer than
    /// any name a recipe may have (128 characters: Snowflake 255, BigQuery 300).
    pub max_name_bytes: Option<usize>,
    /// A literal such as `1.0` is a fixed-point DECIMAL here (Spark, Snowflake), so
    /// `AVG(CASE WHEN … THEN 1.0 ELSE 0.0 END)` would keep only a few digits. featurecraft
    /// means a double, as DataFusion does: such literals are rendered `CAST(1.0 AS DOUBLE)`.
    pub decimal_literals: bool,
    /// How `EXTRACT(DOW FROM x)`, Sunday = 0 as in DataFusion, is spelled.
    pub day_of_week: DayOfWeek,
    /// How the number of days between two dates (`a - b` of two DATEs) is spelled.
    pub days_between: DaysBetween,
    /// DISTINCT aggregates other than `COUNT(DISTINCT x)` get CTEs of their own. DataFusion
    /// 55 gives a DISTINCT aggregate that shares its GROUP BY with other aggregates a hash
    /// set per group (for a `COUNT(DISTINCT <string>)`, 44 KiB each and outside the memory
    /// pool); alone in its GROUP BY it is planned as two cheap aggregations.
    /// `COUNT(DISTINCT x)` stays in its source's one scan, because featurecraft's sessions
    /// count distinct values compactly (featurecraft's own `count`, see `run::distinct`). Warehouse dialects keep one
    /// CTE per source.
    pub split_distinct_aggregates: bool,
    /// How the start of a point-in-time window (`cutoff − window`) is spelled.
    pub window_start: WindowStart,
    /// How a schedule's series of cutoffs is spelled.
    pub cutoff_series: CutoffSeries,
    /// The series of timestamps comes out in nanoseconds (DataFusion's `generate_series`):
    /// the cutoffs are cast back to the schedule source's time type with `arrow_cast`, so
    /// the cutoff column has that type.
    pub series_in_nanoseconds: bool,
    /// As-of values are featurecraft's grouped `featurecraft_latest(value, time, ties…)`
    /// (see `run::latest`) instead of the first row of a `ROW_NUMBER()` ranking. DataFusion
    /// 55 sorts every joined row for the ranking, which dominated an as-of source's time;
    /// featurecraft's sessions (local and on a cluster) know the aggregate, a plain
    /// DataFusion session does not.
    pub latest_aggregate: bool,
    /// The collation under which strings sort by their bytes, where the default sorts
    /// otherwise (PostgreSQL's default follows the locale): the as-of tie-break orders
    /// strings the same way in every engine.
    pub binary_collation: Option<&'static str>,
    /// Functions this dialect spells differently: (featurecraft's name, the dialect's).
    pub renamed_functions: &'static [(&'static str, &'static str)],
    /// Functions that exist here under the same name with another meaning: (name, why).
    pub refused_functions: &'static [(&'static str, &'static str)],
    /// Type names used when a fragment casts.
    pub types: TypeNames,
}

/// The type names of standard SQL.
const STANDARD_TYPES: TypeNames = TypeNames {
    integer: DataType::BigInt(None),
    float: DataType::Double(ExactNumberInfo::None),
    string: DataType::Varchar(None),
    boolean: DataType::Boolean,
};

/// The generic, ANSI-leaning row; every other row is written as its differences from this.
const GENERIC: Capabilities = Capabilities {
    dialect: Dialect::Generic,
    quote: '"',
    string_escapes: StringEscapes::QuoteDoubling,
    identifier_escapes: IdentifierEscapes::QuoteDoubling,
    create_or_replace: false,
    aggregate_filter: true,
    ilike: true,
    try_cast: true,
    safe_cast: false,
    round_float_digits: true,
    float_text_like_datafusion: false,
    max_name_bytes: None,
    decimal_literals: false,
    day_of_week: DayOfWeek::SundayZero,
    days_between: DaysBetween::Minus,
    split_distinct_aggregates: false,
    window_start: WindowStart::IntervalMinus,
    cutoff_series: CutoffSeries::Recursive,
    series_in_nanoseconds: false,
    latest_aggregate: false,
    binary_collation: None,
    renamed_functions: &[],
    refused_functions: &[],
    types: STANDARD_TYPES,
};

impl Dialect {
    /// Every dialect, in documentation order.
    pub const ALL: [Dialect; 7] = [
        Dialect::Generic,
        Dialect::DataFusion,
        Dialect::DuckDb,
        Dialect::Postgres,
        Dialect::Snowflake,
        Dialect::BigQuery,
        Dialect::Databricks,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Generic => "generic",
            Dialect::DataFusion => "datafusion",
            Dialect::DuckDb => "duckdb",
            Dialect::Postgres => "postgres",
            Dialect::Snowflake => "snowflake",
            Dialect::BigQuery => "bigquery",
            Dialect::Databricks => "databricks",
        }
    }

    /// The dialect's row of the capability table: the generic row, with what differs.
    pub fn capabilities(self) -> Capabilities {
        match self {
            Dialect::Generic => GENERIC,
            Dialect::DataFusion => Capabilities {
                dialect: Dialect::DataFusion,
                float_text_like_datafusion: true,
                split_distinct_aggregates: true,
                window_start: WindowStart::DurationMinus,
                cutoff_series: CutoffSeries::Unnest,
                series_in_nanoseconds: true,
                latest_aggregate: true,
                ..GENERIC
            },
            Dialect::DuckDb => Capabilities {
                dialect: Dialect::DuckDb,
                create_or_replace: true,
                cutoff_series: CutoffSeries::Unnest,
                float_text_like_datafusion: true,
                ..GENERIC
            },
            Dialect::Postgres => Capabilities {
                dialect: Dialect::Postgres,
                max_name_bytes: Some(63),
                try_cast: false,
                cutoff_series: CutoffSeries::SetReturning,
                binary_collation: Some("C"),
                round_float_digits: false,
                types: TypeNames {
                    float: DataType::DoublePrecision,
                    string: DataType::Text,
                    ..STANDARD_TYPES
                },
                ..GENERIC
            },
            Dialect::Snowflake => Capabilities {
                dialect: Dialect::Snowflake,
                string_escapes: StringEscapes::Backslash {
                    escape_controls: false,
                },
                create_or_replace: true,
                aggregate_filter: false,
                decimal_literals: true,
                day_of_week: DayOfWeek::IsoModSeven,
                window_start: WindowStart::DateAdd,
                renamed_functions: &[("bool_or", "BOOLOR_AGG"), ("bool_and", "BOOLAND_AGG")],
                ..GENERIC
            },
            Dialect::BigQuery => Capabilities {
                dialect: Dialect::BigQuery,
                quote: '`',
                string_escapes: StringEscapes::Backslash {
                    escape_controls: true,
                },
                identifier_escapes: IdentifierEscapes::Refused,
                create_or_replace: true,
                aggregate_filter: false,
                ilike: false,
                try_cast: false,
                safe_cast: true,
                day_of_week: DayOfWeek::SundayOne(DateTimeField::DayOfWeek),
                days_between: DaysBetween::DateDiffDay,
                window_start: WindowStart::DateSub,
                cutoff_series: CutoffSeries::UnnestJoin,
                renamed_functions: &[("bool_or", "LOGICAL_OR"), ("bool_and", "LOGICAL_AND")],
                refused_functions: &[(
                    "date_trunc",
                    "BigQuery's DATE_TRUNC takes (value, PART) and keeps a DATE a DATE, where featurecraft's gives a timestamp",
                )],
                types: TypeNames {
                    integer: DataType::Int64,
                    float: DataType::Float64,
                    string: DataType::String(None),
                    boolean: DataType::Bool,
                },
                ..GENERIC
            },
            Dialect::Databricks => Capabilities {
                dialect: Dialect::Databricks,
                quote: '`',
                string_escapes: StringEscapes::CharCodes,
                create_or_replace: true,
                decimal_literals: true,
                day_of_week: DayOfWeek::SundayOne(DateTimeField::Dow),
                days_between: DaysBetween::DateDiff,
                cutoff_series: CutoffSeries::Explode,
                types: TypeNames {
                    string: DataType::String(None),
                    ..STANDARD_TYPES
                },
                ..GENERIC
            },
        }
    }

    /// The sqlparser dialect that reads this dialect's SQL back.
    pub fn parser_dialect(self) -> Box<dyn sqlparser::dialect::Dialect> {
        use sqlparser::dialect as d;
        match self {
            Dialect::Generic => Box::new(d::GenericDialect {}),
            Dialect::DataFusion => Box::new(d::GenericDialect {}),
            Dialect::DuckDb => Box::new(d::DuckDbDialect {}),
            Dialect::Postgres => Box::new(d::PostgreSqlDialect {}),
            Dialect::Snowflake => Box::new(d::SnowflakeDialect {}),
            Dialect::BigQuery => Box::new(d::BigQueryDialect {}),
            Dialect::Databricks => Box::new(d::DatabricksDialect {}),
        }
    }
}

impl Capabilities {
    /// The dialect's spelling of a type a fragment casts to; other types are kept as written.
    pub fn type_name(&self, data_type: &DataType) -> DataType {
        use DataType as T;
        match data_type {
            T::BigInt(_)
            | T::Int8(_)
            | T::Int64
            | T::Integer(_)
            | T::Int(_)
            | T::Int4(_)
            | T::Int32
            | T::SmallInt(_) => self.types.integer.clone(),
            T::Double(_)
            | T::DoublePrecision
            | T::Float64
            | T::Float8
            | T::Float(_)
            | T::Real
            | T::Float4
            | T::Float32 => self.types.float.clone(),
            T::Varchar(_) | T::Text | T::String(_) | T::CharacterVarying(_) => {
                self.types.string.clone()
            }
            T::Boolean | T::Bool => self.types.boolean.clone(),
            T::Timestamp(None, TimezoneInfo::None) => T::Timestamp(None, TimezoneInfo::None),
            other => other.clone(),
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Dialect, String> {
        Dialect::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "unknown dialect `{s}`; choose one of {}",
                    Dialect::ALL
                        .iter()
                        .map(|d| d.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}
