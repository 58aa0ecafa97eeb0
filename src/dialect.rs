//! The SQL dialects featurecraft renders, and what each can express.
//!
//! Every difference between dialects lives in one [`Capabilities`] row per dialect: how
//! identifiers are quoted, whether `CREATE OR REPLACE TABLE` exists, which optional
//! constructs are supported, and how common type names are spelled. Rendering reads the
//! row; nothing else branches on the dialect.

use serde::{Deserialize, Serialize};
use sqlparser::ast::{DataType, ExactNumberInfo, TimezoneInfo};
use std::fmt;
use std::str::FromStr;

/// A target SQL dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    #[default]
    Generic,
    DataFusion,
    DuckDb,
    Postgres,
    Snowflake,
    BigQuery,
    Databricks,
}

/// How a dialect spells the portable types a fragment may cast to.
#[derive(Debug, Clone)]
pub struct TypeNames {
    pub integer: DataType,
    pub float: DataType,
    pub string: DataType,
    pub boolean: DataType,
}

/// One row of the capability table.
#[derive(Debug, Clone)]
pub struct Capabilities {
    /// The dialect's name, for messages.
    pub name: &'static str,
    /// The character that quotes identifiers.
    pub quote: char,
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
    /// Type names used when a fragment casts.
    pub types: TypeNames,
}

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

    /// The dialect's row of the capability table.
    pub fn capabilities(self) -> Capabilities {
        let standard = TypeNames {
            integer: DataType::BigInt(None),
            float: DataType::Double(ExactNumberInfo::None),
            string: DataType::Varchar(None),
            boolean: DataType::Boolean,
        };
        match self {
            Dialect::Generic => Capabilities {
                name: self.name(),
                quote: '"',
                create_or_replace: false,
                aggregate_filter: true,
                ilike: true,
                try_cast: true,
                safe_cast: false,
                types: standard,
            },
            Dialect::DataFusion => Capabilities {
                name: self.name(),
                quote: '"',
                create_or_replace: false,
                aggregate_filter: true,
                ilike: true,
                try_cast: true,
                safe_cast: false,
                types: standard,
            },
            Dialect::DuckDb => Capabilities {
                name: self.name(),
                quote: '"',
                create_or_replace: true,
                aggregate_filter: true,
                ilike: true,
                try_cast: true,
                safe_cast: false,
                types: standard,
            },
            Dialect::Postgres => Capabilities {
                name: self.name(),
                quote: '"',
                create_or_replace: false,
                aggregate_filter: true,
                ilike: true,
                try_cast: false,
                safe_cast: false,
                types: TypeNames {
                    integer: DataType::BigInt(None),
                    float: DataType::DoublePrecision,
                    string: DataType::Text,
                    boolean: DataType::Boolean,
                },
            },
            Dialect::Snowflake => Capabilities {
                name: self.name(),
                quote: '"',
                create_or_replace: true,
                aggregate_filter: false,
                ilike: true,
                try_cast: true,
                safe_cast: false,
                types: standard,
            },
            Dialect::BigQuery => Capabilities {
                name: self.name(),
                quote: '`',
                create_or_replace: true,
                aggregate_filter: false,
                ilike: false,
                try_cast: false,
                safe_cast: true,
                types: TypeNames {
                    integer: DataType::Int64,
                    float: DataType::Float64,
                    string: DataType::String(None),
                    boolean: DataType::Bool,
                },
            },
            Dialect::Databricks => Capabilities {
                name: self.name(),
                quote: '`',
                create_or_replace: true,
                aggregate_filter: true,
                ilike: true,
                try_cast: true,
                safe_cast: false,
                types: TypeNames {
                    integer: DataType::BigInt(None),
                    float: DataType::Double(ExactNumberInfo::None),
                    string: DataType::String(None),
                    boolean: DataType::Boolean,
                },
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
