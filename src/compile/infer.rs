//! A cheap type inference for resolved fragments, by type family.
//!
//! Compile time has only the catalog's schemas, and must stay fast for recipes of
//! thousands of features, so this does not plan the expression in an engine. It knows
//! columns, literals, casts, operators, `CASE` and the common functions, and answers `None`
//! when it cannot tell; validation later compares the exact Arrow type the engine computed.

use crate::catalog::Table;
use crate::sql::function_name;
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
            // Integer division is made exact (see `exact_division`).
            B::Divide => match numeric(family_of(left, table)?, family_of(right, table)?)? {
                Integer => Some(Float),
                other => Some(other),
            },
            B::Plus | B::Minus | B::Multiply | B::Modulo => {
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

/// Rewrites what engines disagree on into a form each computes alike: integer division
/// (`exact_division`), division by zero (`null_division`), rounding a float to digits
/// (`decimal_round`) and the days between two dates (`days_between`).
///
/// One pass, children before parents, so a rewrite sees its operands already rewritten: a
/// `ROUND` of an integer division rounds the exact quotient, and `(date - date) / 7` divides
/// a whole number of days exactly.
pub fn make_portable(mut expr: Expr, table: &Table) -> Expr {
    let _ = sqlparser::ast::visit_expressions_mut(&mut expr, |e| {
        exact_division(e, table);
        null_division(e, table);
        decimal_round(e, table);
        days_between(e, table);
        std::ops::ControlFlow::<()>::Continue(())
    });
    expr
}

pub use super::functions::DAYS_BETWEEN;

/// Turns `a - b` of two dates into [`DAYS_BETWEEN`]`(a, b)`: an integer number of days in
/// DataFusion, DuckDB, PostgreSQL and Snowflake, but an interval in Spark and BigQuery.
fn days_between(e: &mut Expr, table: &Table) {
    if let Some((left, right)) = operands(e, B::Minus, TypeFamily::Date, table) {
        let a = std::mem::replace(left, Expr::value(Value::Null));
        let b = std::mem::replace(right, Expr::value(Value::Null));
        *e = crate::sql::call(DAYS_BETWEEN, vec![a, b]);
    }
}

/// The operands of `e` when it is `left op right` with both sides of `family`: the shape
/// the per-operator rewrites look for.
fn operands<'e>(
    e: &'e mut Expr,
    op: B,
    family: TypeFamily,
    table: &Table,
) -> Option<(&'e mut Expr, &'e mut Expr)> {
    match e {
        Expr::BinaryOp {
            left,
            op: found,
            right,
        } if *found == op
            && family_of(left, table) == Some(family)
            && family_of(right, table) == Some(family) =>
        {
            Some((left.as_mut(), right.as_mut()))
        }
        _ => None,
    }
}

/// Makes `ROUND(x, digits)` of a float round its decimal value:
/// `CAST(ROUND(CAST(x AS DECIMAL(38, 9)), digits) AS DOUBLE)`.
///
/// Rounding a binary float at a decimal tie differs by engine: DataFusion scales and rounds
/// (`ROUND(26.645, 2)` is 26.65), DuckDB rounds the exact binary value (26.64), PostgreSQL
/// only rounds `NUMERIC`. Rounding the value's 9-decimal form first gives one answer everywhere.
fn decimal_round(e: &mut Expr, table: &Table) {
    use crate::sql::cast;
    use sqlparser::ast::{DataType, ExactNumberInfo};
    if let Expr::Function(function) = e
        && function_name(function) == "round"
        && let FunctionArguments::List(list) = &mut function.args
        && list.args.len() == 2
        && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(x))) = list.args.first_mut()
        && family_of(x, table) == Some(TypeFamily::Float)
    {
        let operand = std::mem::replace(x, Expr::value(Value::Null));
        *x = cast(
            operand,
            DataType::Decimal(ExactNumberInfo::PrecisionAndScale(38, 9)),
        );
        let rounded = std::mem::replace(e, Expr::value(Value::Null));
        *e = cast(rounded, DataType::Double(ExactNumberInfo::None));
    }
}

/// Makes every `a / b` of two integers an exact division, `CAST(a AS DOUBLE) / b`.
///
/// Engines disagree on `/` between integers: DataFusion and PostgreSQL truncate (`7 / 2` is
/// 3), DuckDB, Spark, Snowflake and BigQuery divide exactly (3.5). featurecraft's `/` is the
/// exact division everywhere, so one recipe means one table whatever the warehouse. Divisions
/// whose operand types cannot be inferred are left as written.
fn exact_division(e: &mut Expr, table: &Table) {
    use sqlparser::ast::{DataType, ExactNumberInfo};
    if let Some((left, _)) = operands(e, B::Divide, TypeFamily::Integer, table) {
        let operand = std::mem::replace(left, Expr::value(Value::Null));
        *left = crate::sql::cast(operand, DataType::Double(ExactNumberInfo::None));
    }
}

/// Makes `a / b` and `a % b` NULL when `b` is zero: `a / NULLIF(b, 0)`.
///
/// Engines disagree on a zero divisor: PostgreSQL fails (even while planning a constant
/// `0 / 0` in a branch no row takes), DataFusion fails for integers and gives infinity or NaN
/// for floats, DuckDB gives NULL, Spark NULL or a failure depending on ANSI mode.
/// featurecraft's meaning is NULL everywhere, as most users expect of a ratio with nothing
/// to divide by. A divisor that is a non-zero number, already a `NULLIF(…, 0)`, or known
/// not to be a number (an interval) is left as written.
fn null_division(e: &mut Expr, table: &Table) {
    let Expr::BinaryOp {
        op: B::Divide | B::Modulo,
        right,
        ..
    } = e
    else {
        return;
    };
    let mut divisor = right.as_ref();
    while let Expr::Nested(inner) = divisor {
        divisor = inner;
    }
    let guarded = match divisor {
        Expr::Value(v) => {
            matches!(&v.value, Value::Number(text, _) if text.bytes().any(|b| (b'1'..=b'9').contains(&b)) && !text.contains(['e', 'E']))
        }
        Expr::Function(f) if function_name(f) == "nullif" => match &f.args {
            FunctionArguments::List(list) => matches!(
                list.args.get(1),
                Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))))
                    if matches!(&v.value, Value::Number(text, _) if text.parse::<f64>() == Ok(0.0))
            ),
            _ => false,
        },
        _ => false,
    };
    let numeric = matches!(
        family_of(divisor, table),
        None | Some(TypeFamily::Integer | TypeFamily::Float | TypeFamily::Decimal)
    );
    if guarded || !numeric {
        return;
    }
    let operand = std::mem::replace(right.as_mut(), Expr::value(Value::Null));
    **right = crate::sql::call(
        "NULLIF",
        vec![operand, Expr::value(Value::Number("0".into(), false))],
    );
}

/// Where `expr` casts a floating-point value to text. Engines spell floats differently
/// (`9.0`, `9`, `9E0`, `1.0E10`), so such a cast only means one thing in dialects whose
/// engine formats floats as DataFusion does.
pub fn float_to_text_casts(expr: &Expr, table: &Table) -> Vec<sqlparser::tokenizer::Span> {
    use sqlparser::ast::{Spanned, visit_expressions};
    let mut spans = Vec::new();
    let _ = visit_expressions(expr, |e| {
        if let Expr::Cast {
            expr: inner,
            data_type,
            ..
        } = e
            && parse_type_name(&data_type.to_string()).map(|t| TypeFamily::of(&t))
                == Some(TypeFamily::String)
            && family_of(inner, table) == Some(TypeFamily::Float)
        {
            spans.push(e.span());
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    spans
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
    use super::functions::Returns;
    use TypeFamily::*;
    let first_arg = || match &function.args {
        FunctionArguments::List(list) => list.args.iter().find_map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => family_of(e, table),
            _ => None,
        }),
        _ => None,
    };
    match super::functions::facts(&function_name(function))?.returns {
        Returns::Integer => Some(Integer),
        Returns::Float => Some(Float),
        Returns::Boolean => Some(Boolean),
        Returns::String => Some(String),
        Returns::Timestamp => Some(Timestamp),
        Returns::FirstArgument => first_arg(),
        Returns::Sum => match first_arg()? {
            Integer => Some(Integer),
            Float => Some(Float),
            Decimal => Some(Decimal),
            _ => None,
        },
        Returns::Average => match first_arg()? {
            Decimal => Some(Decimal),
            Integer | Float => Some(Float),
            _ => None,
        },
        Returns::Unknown => None,
    }
}
