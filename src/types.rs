//! Type names as recipe authors and JSON catalogs write them, mapped to Arrow types.
//!
//! Authors write `int64`, `BIGINT`, `double`, `VARCHAR`, `timestamp`…; featurecraft compares
//! them by *family* (integer, float, decimal, string, boolean, date, timestamp), not by
//! width: declaring `int64` for an `Int32` column is not worth a warning, declaring `string`
//! for a number is.

use datafusion::arrow::datatypes::{DataType, TimeUnit};

/// A coarse type family, the unit in which declared and computed types are compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TypeFamily {
    /// Whole numbers of any width.
    Integer,
    /// Binary floating point.
    Float,
    /// Fixed-point decimals.
    Decimal,
    /// Text.
    String,
    /// True or false.
    Boolean,
    /// Calendar dates.
    Date,
    /// Timestamps.
    Timestamp,
    /// Anything else (lists, structs, binary).
    Other,
}

impl TypeFamily {
    /// The family of an Arrow type.
    pub fn of(data_type: &DataType) -> TypeFamily {
        use DataType::*;
        match data_type {
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64 => TypeFamily::Integer,
            Float16 | Float32 | Float64 => TypeFamily::Float,
            Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => TypeFamily::Decimal,
            Utf8 | LargeUtf8 | Utf8View => TypeFamily::String,
            Boolean => TypeFamily::Boolean,
            Date32 | Date64 => TypeFamily::Date,
            Timestamp(..) => TypeFamily::Timestamp,
            Dictionary(_, value) => TypeFamily::of(value),
            _ => TypeFamily::Other,
        }
    }

    /// A lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            TypeFamily::Integer => "integer",
            TypeFamily::Float => "float",
            TypeFamily::Decimal => "decimal",
            TypeFamily::String => "string",
            TypeFamily::Boolean => "boolean",
            TypeFamily::Date => "date",
            TypeFamily::Timestamp => "timestamp",
            TypeFamily::Other => "other",
        }
    }
}

/// Parses a type name (`int64`, `BIGINT`, `double precision`, `varchar(20)`, `decimal(10,2)`…).
///
/// Returns `None` for names featurecraft does not know.
pub fn parse_type_name(name: &str) -> Option<DataType> {
    let lower = name.trim().to_ascii_lowercase();
    let (base, args) = match lower.split_once('(') {
        Some((base, rest)) => (base.trim(), Some(rest.trim_end_matches(')'))),
        None => (lower.as_str(), None),
    };
    let data_type = match base {
        "int8" | "tinyint" | "byteint" => DataType::Int8,
        "int16" | "smallint" | "int2" => DataType::Int16,
        "int32" | "int" | "integer" | "int4" => DataType::Int32,
        "int64" | "bigint" | "long" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" | "float4" | "real" => DataType::Float32,
        "float64" | "float8" | "double" | "double precision" | "float" => DataType::Float64,
        "decimal" | "numeric" | "number" => {
            let (precision, scale) = match args {
                Some(args) => {
                    let mut parts = args.split(',').map(|p| p.trim().parse::<i64>());
                    let precision = parts.next()?.ok()?;
                    let scale = parts.next().transpose().ok()?.unwrap_or(0);
                    (u8::try_from(precision).ok()?, i8::try_from(scale).ok()?)
                }
                None => (38, 10),
            };
            if precision == 0 || precision > 38 {
                return None;
            }
            DataType::Decimal128(precision, scale)
        }
        "string" | "varchar" | "text" | "utf8" | "char" | "character varying" => DataType::Utf8,
        "bool" | "boolean" => DataType::Boolean,
        "date" | "date32" => DataType::Date32,
        "timestamp" | "datetime" | "timestamp_ntz" => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        "timestamptz" | "timestamp_tz" | "timestamp with time zone" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        _ => return None,
    };
    Some(data_type)
}

/// The name featurecraft writes for an Arrow type in a JSON catalog; it parses back with
/// [`parse_type_name`] to a type of the same family. `None` for types without one.
pub fn type_name(data_type: &DataType) -> Option<String> {
    use DataType::*;
    let name = match data_type {
        Int8 => "int8",
        Int16 => "int16",
        Int32 => "int32",
        Int64 => "int64",
        UInt8 => "uint8",
        UInt16 => "uint16",
        UInt32 => "uint32",
        UInt64 => "uint64",
        Float16 | Float32 => "float32",
        Float64 => "float64",
        Utf8 | LargeUtf8 | Utf8View => "string",
        Boolean => "bool",
        Date32 | Date64 => "date",
        Timestamp(_, None) => "timestamp",
        Timestamp(_, Some(_)) => "timestamptz",
        Decimal32(p, s) | Decimal64(p, s) | Decimal128(p, s) | Decimal256(p, s) => {
            return Some(format!("decimal({p},{s})"));
        }
        Dictionary(_, value) => return type_name(value),
        _ => return None,
    };
    Some(name.to_string())
}

/// A JSON Schema transform for an enum of strings: schemars writes one `{"const": …}` per
/// documented variant under `oneOf`; editors and client generators read a plain
/// `{"type": "string", "enum": […]}` better, and it means the same.
pub fn string_enum_schema(schema: &mut schemars::Schema) {
    let Some(object) = schema.as_object_mut() else {
        return;
    };
    let values: Option<Vec<serde_json::Value>> = object
        .get("oneOf")
        .and_then(|v| v.as_array())
        .map(|variants| {
            variants
                .iter()
                .filter_map(|v| v.get("const").cloned())
                .collect()
        });
    let Some(values) = values else {
        return;
    };
    object.remove("oneOf");
    object.insert("type".into(), "string".into());
    object.insert("enum".into(), values.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_spellings_map_to_families() {
        for (name, family) in [
            ("int64", TypeFamily::Integer),
            ("BIGINT", TypeFamily::Integer),
            ("DOUBLE", TypeFamily::Float),
            ("float64", TypeFamily::Float),
            ("VARCHAR(20)", TypeFamily::String),
            ("string", TypeFamily::String),
            ("bool", TypeFamily::Boolean),
            ("date", TypeFamily::Date),
            ("timestamp", TypeFamily::Timestamp),
            ("decimal(10, 2)", TypeFamily::Decimal),
        ] {
            let parsed = parse_type_name(name).unwrap_or_else(|| panic!("{name} should parse"));
            assert_eq!(TypeFamily::of(&parsed), family, "{name}");
        }
        assert_eq!(parse_type_name("blob"), None);
        assert_eq!(parse_type_name("decimal(99,2)"), None);
    }
}
