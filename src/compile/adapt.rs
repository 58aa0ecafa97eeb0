//! Adapting a resolved fragment to a dialect: quoted identifiers, the dialect's cast type
//! names and function spellings (from its capability row), the compiler's own functions
//! written out, and an `E040` for each construct the dialect lacks.

use crate::compile::dialect::{Capabilities, DayOfWeek, DaysBetween, StringEscapes, WindowStart};
use crate::compile::point_in_time::WindowUnit;
use crate::diagnostic::{Code, Diagnostic, RecipePath};
use crate::sql::{call, cast, function_name};
use sqlparser::ast::{
    BinaryOperator, CastKind, DataType, DateTimeField, ExactNumberInfo, Expr, ExtractSyntax,
    FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Interval, ObjectName, Spanned, Value,
    visit_expressions_mut,
};
use std::ops::ControlFlow;

/// Adapts a resolved fragment to a dialect: quoted identifiers, cast type names, and an
/// `E040` for each construct the dialect lacks.
pub(crate) fn adapt(
    expr: &Expr,
    caps: &Capabilities,
    path: &RecipePath,
    errors: &mut Vec<Diagnostic>,
) -> Expr {
    let mut expr = expr.clone();
    let _ = visit_expressions_mut(&mut expr, |e| {
        match e {
            Expr::Identifier(ident) => {
                ident.quote_style = Some(caps.quote);
                if let Err(why) = crate::compile::escape::identifier(&ident.value, caps) {
                    errors.push(unwritable(why, caps, path, ident.span));
                }
            }
            Expr::CompoundIdentifier(parts) => {
                for part in parts.iter_mut() {
                    part.quote_style = Some(caps.quote);
                    if let Err(why) = crate::compile::escape::identifier(&part.value, caps) {
                        errors.push(unwritable(why, caps, path, part.span));
                    }
                }
            }
            Expr::Value(v) if matches!(v.value, Value::SingleQuotedString(_)) => {
                let Value::SingleQuotedString(text) = &v.value else {
                    return ControlFlow::Continue(());
                };
                if caps.string_escapes == StringEscapes::CharCodes && text.contains(['\'', '\\']) {
                    *e = char_code_concatenation(text);
                } else if let Err(why) = crate::compile::escape::string_literal(text, caps) {
                    errors.push(unwritable(why, caps, path, v.span));
                }
            }
            Expr::TypedString(typed) => {
                if let Value::SingleQuotedString(text) = &typed.value.value
                    && let Err(why) = crate::compile::escape::string_literal(text, caps)
                {
                    errors.push(unwritable(why, caps, path, typed.value.span));
                }
            }
            Expr::Cast {
                kind, data_type, ..
            } => {
                *data_type = caps.type_name(data_type);
                let supported = match kind {
                    CastKind::TryCast => caps.try_cast,
                    CastKind::SafeCast => caps.safe_cast,
                    CastKind::Cast | CastKind::DoubleColon => true,
                };
                if !supported {
                    let what = if *kind == CastKind::TryCast {
                        "TRY_CAST"
                    } else {
                        "SAFE_CAST"
                    };
                    errors.push(unsupported(what, caps, path, e.span()));
                }
            }
            Expr::Function(function) if function.filter.is_some() && !caps.aggregate_filter => {
                errors.push(unsupported(
                    "an aggregate FILTER (WHERE …) clause",
                    caps,
                    path,
                    e.span(),
                ));
            }
            Expr::Function(_) => lower_function(e, caps, path, errors),
            Expr::Extract {
                field: DateTimeField::Dow,
                ..
            } => lower_day_of_week(e, caps),
            Expr::Value(v)
                if caps.decimal_literals
                    && matches!(&v.value, Value::Number(text, _) if text.contains(['.', 'e', 'E'])) =>
            {
                let literal = std::mem::replace(e, Expr::value(Value::Null));
                *e = cast(literal, caps.types.float.clone());
            }
            Expr::ILike { .. } if !caps.ilike => {
                errors.push(unsupported("ILIKE", caps, path, e.span()))
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    expr
}

/// The dialect's spelling of a function call: renamed, refused (E040), `ROUND` made to take
/// a float, or the compiler's own [`crate::compile::infer::DAYS_BETWEEN`] written out.
fn lower_function(
    e: &mut Expr,
    caps: &Capabilities,
    path: &RecipePath,
    errors: &mut Vec<Diagnostic>,
) {
    let Expr::Function(function) = e else {
        return;
    };
    let name = function_name(function);
    if let Some((_, why)) = caps.refused_functions.iter().find(|(n, _)| *n == name) {
        errors.push(
            Diagnostic::new(
                Code::E040,
                format!(
                    "{} cannot be expressed faithfully in the {} dialect",
                    name.to_ascii_uppercase(),
                    caps.dialect.name()
                ),
            )
            .at(path.clone())
            .with_span(crate::diagnostic::Span::from_sql(e.span()))
            .hint(*why),
        );
        return;
    }
    if let Some((_, spelled)) = caps.renamed_functions.iter().find(|(n, _)| *n == name) {
        function.name = ObjectName::from(vec![Ident::new(*spelled)]);
        return;
    }
    let FunctionArguments::List(list) = &mut function.args else {
        return;
    };
    match (name.as_str(), list.args.as_mut_slice()) {
        (
            "round",
            [
                FunctionArg::Unnamed(FunctionArgExpr::Expr(x)),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(_)),
            ],
        ) if !caps.round_float_digits
            && !matches!(
                x,
                Expr::Cast {
                    data_type: DataType::Decimal(_) | DataType::Numeric(_),
                    ..
                }
            ) =>
        {
            let operand = std::mem::replace(x, Expr::value(Value::Null));
            *x = cast(operand, DataType::Numeric(ExactNumberInfo::None));
        }
        (
            crate::compile::infer::DAYS_BETWEEN,
            [
                FunctionArg::Unnamed(FunctionArgExpr::Expr(a)),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(b)),
            ],
        ) => {
            let (a, b) = (a.clone(), b.clone());
            *e = match caps.days_between {
                DaysBetween::Minus => Expr::Nested(Box::new(Expr::BinaryOp {
                    left: Box::new(a),
                    op: BinaryOperator::Minus,
                    right: Box::new(b),
                })),
                DaysBetween::DateDiff => call("DATEDIFF", vec![a, b]),
                DaysBetween::DateDiffDay => {
                    call("DATE_DIFF", vec![a, b, Expr::Identifier(Ident::new("DAY"))])
                }
            };
        }
        (
            crate::compile::functions::WINDOW_START,
            [
                FunctionArg::Unnamed(FunctionArgExpr::Expr(cutoff)),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(count))),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(unit))),
                FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(of_type))),
            ],
        ) => {
            let (
                Value::Number(count, _),
                Value::SingleQuotedString(unit),
                Value::SingleQuotedString(of_type),
            ) = (&count.value, &unit.value, &of_type.value)
            else {
                return;
            };
            // The compiler writes only a unit's own SQL name (`spine::shift`); anything
            // else is left as it is, and the rendered SQL's read-back refuses it.
            let Some(unit) = WindowUnit::from_sql_name(unit) else {
                return;
            };
            let cutoff = std::mem::replace(cutoff, Expr::value(Value::Null));
            *e = window_start(cutoff, count.clone(), unit, of_type == "DATE", caps);
        }
        _ => {}
    }
}

/// `cutoff − count field` in the dialect's spelling (its capability row's `window_start`);
/// a negative count (`-30`) moves forward: `cutoff + 30 field` (a label window after the
/// cutoff, a schedule's next cutoff).
fn window_start(
    cutoff: Expr,
    count: String,
    unit: WindowUnit,
    is_date: bool,
    caps: &Capabilities,
) -> Expr {
    let field = match unit {
        WindowUnit::Day => DateTimeField::Day,
        WindowUnit::Hour => DateTimeField::Hour,
        WindowUnit::Minute => DateTimeField::Minute,
        WindowUnit::Second => DateTimeField::Second,
    };
    let (forward, count) = match count.strip_prefix('-') {
        Some(count) => (true, count.to_string()),
        None => (false, count),
    };
    let interval = |value: Expr| {
        Expr::Interval(Interval {
            value: Box::new(value),
            leading_field: Some(field.clone()),
            leading_precision: None,
            last_field: None,
            fractional_seconds_precision: None,
        })
    };
    let minus = |cutoff: Expr, right: Expr| {
        Expr::Nested(Box::new(Expr::BinaryOp {
            left: Box::new(cutoff),
            op: if forward {
                BinaryOperator::Plus
            } else {
                BinaryOperator::Minus
            },
            right: Box::new(right),
        }))
    };
    // A duration where the dialect wants one and the window fits one (always, within the
    // 100 years a window may be); an interval otherwise.
    let duration_seconds = (caps.window_start == WindowStart::DurationMinus && !is_date)
        .then(|| {
            let per_unit = i64::try_from(unit.seconds()).ok()?;
            count.parse::<i64>().ok()?.checked_mul(per_unit)
        })
        .flatten();
    match caps.window_start {
        WindowStart::IntervalMinus | WindowStart::DurationMinus => match duration_seconds {
            Some(seconds) => minus(
                cutoff,
                call(
                    "arrow_cast",
                    vec![
                        Expr::value(Value::Number(seconds.to_string(), false)),
                        Expr::value(Value::SingleQuotedString("Duration(Second)".into())),
                    ],
                ),
            ),
            None => minus(
                cutoff,
                interval(Expr::value(Value::SingleQuotedString(count))),
            ),
        },
        WindowStart::DateAdd => {
            let count = Expr::value(Value::Number(count, false));
            call(
                "DATEADD",
                vec![
                    Expr::Identifier(Ident::new(unit.names().1)),
                    if forward {
                        count
                    } else {
                        Expr::UnaryOp {
                            op: sqlparser::ast::UnaryOperator::Minus,
                            expr: Box::new(count),
                        }
                    },
                    cutoff,
                ],
            )
        }
        WindowStart::DateSub => call(
            match (is_date, forward) {
                (true, false) => "DATE_SUB",
                (false, false) => "TIMESTAMP_SUB",
                (true, true) => "DATE_ADD",
                (false, true) => "TIMESTAMP_ADD",
            },
            vec![cutoff, interval(Expr::value(Value::Number(count, false)))],
        ),
    }
}

/// `EXTRACT(DOW FROM x)` with Sunday = 0 in dialects whose DOW counts otherwise.
fn lower_day_of_week(e: &mut Expr, caps: &Capabilities) {
    let Expr::Extract { expr, .. } = e else {
        return;
    };
    let extract = |field: DateTimeField, operand: Expr| Expr::Extract {
        field,
        syntax: ExtractSyntax::From,
        expr: Box::new(operand),
    };
    let (field, op, by) = match &caps.day_of_week {
        DayOfWeek::SundayZero => return,
        DayOfWeek::SundayOne(field) => (field.clone(), BinaryOperator::Minus, "1"),
        DayOfWeek::IsoModSeven => (
            DateTimeField::Custom(Ident::new("DAYOFWEEKISO")),
            BinaryOperator::Modulo,
            "7",
        ),
    };
    let operand = std::mem::replace(expr.as_mut(), Expr::value(Value::Null));
    *e = Expr::Nested(Box::new(Expr::BinaryOp {
        left: Box::new(extract(field, operand)),
        op,
        right: Box::new(Expr::value(Value::Number(by.into(), false))),
    }));
}

/// `'a' || CHR(39) || 'b'` for `'a''b'`: a string holding a quote or a backslash, written
/// so that neither is ever inside quotes (Spark reads both differently from sqlparser).
fn char_code_concatenation(text: &str) -> Expr {
    let mut pieces: Vec<Expr> = Vec::new();
    let mut run = String::new();
    for c in text.chars() {
        if matches!(c, '\'' | '\\') {
            if !run.is_empty() {
                pieces.push(Expr::value(Value::SingleQuotedString(std::mem::take(
                    &mut run,
                ))));
            }
            pieces.push(call(
                "CHR",
                vec![Expr::value(Value::Number((c as u32).to_string(), false))],
            ));
        } else {
            run.push(c);
        }
    }
    if !run.is_empty() {
        pieces.push(Expr::value(Value::SingleQuotedString(run)));
    }
    let several = pieces.len() > 1;
    let joined = pieces
        .into_iter()
        .reduce(|left, right| Expr::BinaryOp {
            left: Box::new(left),
            op: BinaryOperator::StringConcat,
            right: Box::new(right),
        })
        .unwrap_or_else(|| Expr::value(Value::SingleQuotedString(String::new())));
    if several {
        Expr::Nested(Box::new(joined))
    } else {
        joined
    }
}

fn unwritable(
    why: String,
    caps: &Capabilities,
    path: &RecipePath,
    span: sqlparser::tokenizer::Span,
) -> Diagnostic {
    Diagnostic::new(
        Code::E041,
        format!(
            "cannot be written safely in the {} dialect: {why}",
            caps.dialect.name()
        ),
    )
    .at(path.clone())
    .with_span(crate::diagnostic::Span::from_sql(span))
    .hint(
        "change the literal or rename the column; featurecraft never prints text it cannot escape",
    )
}

fn unsupported(
    what: &str,
    caps: &Capabilities,
    path: &RecipePath,
    span: sqlparser::tokenizer::Span,
) -> Diagnostic {
    Diagnostic::new(Code::E040, format!("{what} cannot be expressed in the {} dialect", caps.dialect.name()))
        .at(path.clone())
        .with_span(crate::diagnostic::Span::from_sql(span))
        .hint("rewrite the fragment with a portable construct, e.g. `COUNT(CASE WHEN … THEN 1 END)` for a filtered count")
}
