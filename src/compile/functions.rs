//! What featurecraft knows of SQL functions, in one table: whether a function aggregates
//! and what it gives over no rows, whether its result is NULL whenever an argument is,
//! whether it gives the same value on every run, and the type family of its result.
//!
//! The analyzer, the type inference and the renderer read this table; how each dialect
//! spells or refuses a function is a difference of that dialect's capability row
//! (the `dialect` module's `Capabilities`). A function not listed is a scalar about which
//! nothing is known: it is passed through, and its type is not inferred.

/// The type family of a function's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// A whole number.
    Integer,
    /// A binary floating-point number.
    Float,
    /// True or false.
    Boolean,
    /// Text.
    String,
    /// A timestamp.
    Timestamp,
    /// The family of the first argument (`MIN`, `COALESCE`, `ABS`).
    FirstArgument,
    /// `SUM`: integers sum to an integer, floats to a float, decimals to a decimal.
    Sum,
    /// `AVG`: a decimal for decimals, a float for integers and floats.
    Average,
    /// Not known here.
    Unknown,
}

/// How a function treats rows and NULLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Aggregates rows; `counts` when its value over no rows is 0 (otherwise NULL).
    Aggregate {
        /// Its value over no rows is 0 (a count); otherwise NULL.
        counts: bool,
        /// It does not skip NULL arguments (`ARRAY_AGG` keeps them as elements), so a
        /// window cannot be applied by turning the rows outside it into NULLs.
        keeps_nulls: bool,
    },
    /// Row by row; `null_strict` when it is NULL whenever an argument is, in every dialect
    /// rendered (`CONCAT`, `GREATEST` and `LEAST` are not: engines disagree).
    Scalar {
        /// NULL whenever an argument is, in every dialect rendered.
        null_strict: bool,
    },
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct FunctionFacts {
    /// The unqualified name, lower case.
    pub name: &'static str,
    /// How it treats rows and NULLs.
    pub kind: Kind,
    /// The type family of its result.
    pub returns: Returns,
    /// The same arguments give the same value on every run (not the clock, not chance).
    pub deterministic: bool,
}

/// The compiler's own name for "whole days from `b` to `a`"; each dialect spells it
/// (`a - b`, `DATEDIFF(a, b)`, `DATE_DIFF(a, b, DAY)`) when the SQL is rendered.
pub const DAYS_BETWEEN: &str = "featurecraft_days_between";

/// The compiler's own name for the start of a point-in-time window,
/// `featurecraft_window_start(cutoff, 30, 'DAY', 'DATE')`: the cutoff minus a whole number
/// of a unit, the cutoff being a `DATE` or a `TIMESTAMP`. Each dialect spells it (its
/// capability row's `window_start`) when the SQL is rendered; a recipe cannot call it.
pub const WINDOW_START: &str = "featurecraft_window_start";

/// featurecraft's aggregate `featurecraft_latest(value, time, tie, …)`: the value of the
/// row with the greatest `(time, tie, …)` (NULL smallest), the as-of values of the
/// DataFusion dialect (its capability row's `latest_aggregate`). The run stage registers it
/// in every session; a recipe cannot call it.
pub const LATEST: &str = "featurecraft_latest";

const fn aggregate(name: &'static str, returns: Returns) -> FunctionFacts {
    FunctionFacts {
        name,
        kind: Kind::Aggregate {
            counts: false,
            keeps_nulls: false,
        },
        returns,
        deterministic: true,
    }
}

const fn null_keeping(name: &'static str, returns: Returns) -> FunctionFacts {
    FunctionFacts {
        name,
        kind: Kind::Aggregate {
            counts: false,
            keeps_nulls: true,
        },
        returns,
        deterministic: true,
    }
}

const fn counting(name: &'static str) -> FunctionFacts {
    FunctionFacts {
        name,
        kind: Kind::Aggregate {
            counts: true,
            keeps_nulls: false,
        },
        returns: Integer,
        deterministic: true,
    }
}

const fn strict(name: &'static str, returns: Returns) -> FunctionFacts {
    FunctionFacts {
        name,
        kind: Kind::Scalar { null_strict: true },
        returns,
        deterministic: true,
    }
}

const fn scalar(name: &'static str, returns: Returns) -> FunctionFacts {
    FunctionFacts {
        name,
        kind: Kind::Scalar { null_strict: false },
        returns,
        deterministic: true,
    }
}

const fn changing(name: &'static str) -> FunctionFacts {
    FunctionFacts {
        name,
        kind: Kind::Scalar { null_strict: false },
        returns: Unknown,
        deterministic: false,
    }
}

use Returns::*;

/// Every function featurecraft knows something about.
const FUNCTIONS: &[FunctionFacts] = &[
    // Aggregates whose value over no rows is 0.
    counting("count"),
    counting("approx_distinct"),
    counting("count_if"),
    counting("countif"),
    counting("approx_count_distinct"),
    // Other aggregates: NULL over no rows.
    aggregate("sum", Sum),
    aggregate("avg", Average),
    aggregate("mean", Average),
    aggregate("min", FirstArgument),
    aggregate("max", FirstArgument),
    // Aggregates that keep NULL arguments (an element, or the value picked).
    null_keeping("any_value", FirstArgument),
    null_keeping("first_value", FirstArgument),
    null_keeping("last_value", FirstArgument),
    null_keeping("array_agg", Unknown),
    aggregate("median", FirstArgument),
    aggregate("stddev", Float),
    aggregate("stddev_samp", Float),
    aggregate("stddev_pop", Float),
    aggregate("std", Unknown),
    aggregate("variance", Float),
    aggregate("var_samp", Float),
    aggregate("var_pop", Float),
    aggregate("var", Unknown),
    aggregate("corr", Float),
    aggregate("covar", Unknown),
    aggregate("covar_samp", Float),
    aggregate("covar_pop", Float),
    aggregate("bool_and", Boolean),
    aggregate("bool_or", Boolean),
    aggregate("every", Boolean),
    aggregate("mode", Unknown),
    aggregate("string_agg", Unknown),
    aggregate("listagg", Unknown),
    aggregate("group_concat", Unknown),
    aggregate("approx_median", Unknown),
    aggregate("approx_percentile_cont", Unknown),
    aggregate("percentile_cont", Unknown),
    aggregate("percentile_disc", Unknown),
    aggregate("regr_slope", Unknown),
    aggregate("regr_intercept", Unknown),
    aggregate("regr_count", Unknown),
    aggregate("regr_r2", Unknown),
    aggregate("bit_and", Unknown),
    aggregate("bit_or", Unknown),
    aggregate("bit_xor", Unknown),
    aggregate("arg_min", Unknown),
    aggregate("arg_max", Unknown),
    aggregate("min_by", Unknown),
    aggregate("max_by", Unknown),
    aggregate("kurtosis", Unknown),
    aggregate("skewness", Unknown),
    aggregate("product", Unknown),
    // Scalars that are NULL whenever an argument is, in every dialect rendered.
    strict("abs", FirstArgument),
    strict("ceil", Unknown),
    strict("ceiling", Unknown),
    strict("floor", Unknown),
    strict("round", Unknown),
    strict("trunc", Unknown),
    strict("sqrt", Unknown),
    strict("exp", Unknown),
    strict("ln", Unknown),
    strict("log", Unknown),
    strict("log10", Unknown),
    strict("power", Unknown),
    strict("pow", Unknown),
    strict("sign", Unknown),
    strict("length", Integer),
    strict("char_length", Integer),
    strict("character_length", Integer),
    strict("lower", String),
    strict("upper", String),
    strict("trim", String),
    strict("ltrim", String),
    strict("rtrim", String),
    strict("substr", String),
    strict("date_trunc", Timestamp),
    strict("date_part", Unknown),
    strict(DAYS_BETWEEN, Integer),
    strict(WINDOW_START, Unknown),
    // Scalars that may skip or absorb NULLs.
    scalar("coalesce", FirstArgument),
    scalar("nullif", FirstArgument),
    scalar("greatest", FirstArgument),
    scalar("least", FirstArgument),
    scalar("concat", String),
    scalar("substring", String),
    scalar("replace", String),
    // The clock and chance: another value on every run.
    changing("now"),
    changing("current_date"),
    changing("current_time"),
    changing("current_timestamp"),
    changing("localtime"),
    changing("localtimestamp"),
    changing("getdate"),
    changing("sysdate"),
    changing("systimestamp"),
    changing("today"),
    changing("random"),
    changing("rand"),
    changing("uuid"),
    changing("gen_random_uuid"),
    changing("uuid_string"),
    changing("newid"),
];

/// What is known of the function named `name` (unqualified, lower case).
pub fn facts(name: &str) -> Option<&'static FunctionFacts> {
    FUNCTIONS.iter().find(|f| f.name == name)
}

/// Whether `name` aggregates rows.
pub fn aggregates(name: &str) -> bool {
    facts(name).is_some_and(|f| matches!(f.kind, Kind::Aggregate { .. }))
}

/// Whether `name` is an aggregate whose value over no rows is 0.
pub fn counts(name: &str) -> bool {
    facts(name).is_some_and(|f| matches!(f.kind, Kind::Aggregate { counts: true, .. }))
}

/// Whether `name` is an aggregate that does not skip NULL arguments.
pub fn keeps_nulls(name: &str) -> bool {
    facts(name).is_some_and(|f| {
        matches!(
            f.kind,
            Kind::Aggregate {
                keeps_nulls: true,
                ..
            }
        )
    })
}

/// Whether `name` is NULL whenever an argument is, in every dialect rendered.
pub fn null_strict(name: &str) -> bool {
    facts(name).is_some_and(|f| f.kind == Kind::Scalar { null_strict: true })
}

/// Whether `name` gives another value on every run.
pub fn changes_between_runs(name: &str) -> bool {
    facts(name).is_some_and(|f| !f.deterministic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_function_is_listed_once_in_lower_case() {
        let mut seen = std::collections::BTreeSet::new();
        for f in FUNCTIONS {
            assert_eq!(f.name, f.name.to_ascii_lowercase());
            assert!(seen.insert(f.name), "{} twice", f.name);
        }
        assert!(counts("count") && aggregates("sum") && !counts("sum"));
        assert!(null_strict(DAYS_BETWEEN) && !null_strict("coalesce"));
        assert!(changes_between_runs("now") && !changes_between_runs("sum"));
    }
}
