//! A cheap type inference for resolved fragments, by type family.
//!
//! Compile time has only the catalog's schemas, and must stay fast for recipes of
//! thousands of features, so this does not plan the expression in an engine. It knows
//! columns, literals, casts, operators, `CASE` and the common functions, and answers `None`
//! when it cannot tell; validation later compares the exact Arrow type the engine computed.

use crate::catalog::Table;
use crate::fragment::function_name;
use crate::types::{TypeFamily, parse_type_name};
use sqlparser::ast::{
    BinaryOperator as B, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Value,
};

/// The type family `expr` has over `table`, when it can be known.
pub fn family_of(expr: &Expr, table: &Table) -> Option<TypeFamily> {
    use TypeFamily::*;
    match expr {
        Expr::Identifier(ident) => table
            .column(&ident.value)
            .map(|c| TypeFamily::of(&c.data_type)),
        Expr::Nested(inner) => family_of(inner, table),
        Expr::Value(v) => match &v.value {
            Value::Number(text, _) => Some(if text.contains(['.', 'e', 'E']) {
                Float
            } else {
                Integer
            }),
            Value::SingleQuotedString(_) | Value::DoubleQuotedString(_) => Some(String),
            Value::Boolean(_) => Some(Boolean),
            _ => None,
        },
        Expr::TypedString(typed) => {
            parse_type_name(&typed.data_type.to_string()).map(|t| TypeFamily::of(&t))
        }
        Expr::Cast { data_type, .. } => {
            parse_type_name(&data_type.to_string()).map(|t| TypeFamily::of(&t))
        }
        Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsTrue(_)
        | Expr::IsFalse(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNotFalse(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. } => Some(Boolean),
        Expr::UnaryOp { op, expr } => match op {
            sqlparser::ast::UnaryOperator::Not => Some(Boolean),
            _ => family_of(expr, table),
        },
        Expr::BinaryOp { left, op, right } => match op {
            B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq | B::And | B::Or => Some(Boolean),
            B::StringConcat => Some(String),
            B::Plus | B::Minus | B::Multiply | B::Divide | B::Modulo => {
                numeric(family_of(left, table)?, family_of(right, table)?)
            }
            _ => None,
        },
        Expr::Case {
            conditions,
            else_result,
            ..
        } => conditions
            .iter()
            .map(|w| &w.result)
            .chain(else_result.as_deref())
            .find_map(|e| family_of(e, table)),
        Expr::Function(function) => function_family(function, table),
        Expr::Extract { .. } => None,
        _ => None,
    }
}

fn numeric(left: TypeFamily, right: TypeFamily) -> Option<TypeFamily> {
    use TypeFamily::*;
    match (left, right) {
        (Float, Integer | Float | Decimal) | (Integer | Decimal, Float) => Some(Float),
        (Decimal, Integer | Decimal) | (Integer, Decimal) => Some(Decimal),
        (Integer, Integer) => Some(Integer),
        _ => None,
    }
}

fn function_family(function: &Function, table: &Table) -> Option<TypeFamily> {
    use TypeFamily::*;
    let first_arg = || match &function.args {
        FunctionArguments::List(list) => list.args.iter().find_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => family_of(e, table),
            _ => None,
        }),
        _ => None,
    };
    match function_name(function).as_str() {
        "count"
        | "approx_distinct"
        | "count_if"
        | "countif"
        | "approx_count_distinct"
        | "length"
        | "char_length"
        | "character_length" => Some(Integer),
        "sum" => match first_arg()? {
            Integer => Some(Integer),
            Float => Some(Float),
            Decimal => Some(Decimal),
            _ => None,
        },
        "avg" | "mean" => match first_arg()? {
            Decimal => Some(Decimal),
            Integer | Float => Some(Float),
            _ => None,
        },
        "stddev" | "stddev_samp" | "stddev_pop" | "variance" | "var_samp" | "var_pop" | "corr"
        | "covar_samp" | "covar_pop" => Some(Float),
        "min" | "max" | "any_value" | "first_value" | "last_value" | "coalesce" | "nullif"
        | "greatest" | "least" | "abs" | "median" => first_arg(),
        "bool_and" | "bool_or" | "every" => Some(Boolean),
        "lower" | "upper" | "trim" | "ltrim" | "rtrim" | "concat" | "substr" | "substring"
        | "replace" => Some(String),
        "date_trunc" => Some(Timestamp),
        _ => None,
    }
}
