//! One SQL fragment of a recipe: parsing it alone and reading what it refers to.
//!
//! Every fragment is parsed on its own as exactly one expression; the parser must reach the
//! end of input, so `1; DROP TABLE x` is an error rather than a second statement. A walk over
//! the expression then records the columns it reads (and whether inside an aggregate), the
//! aggregates it calls, and the constructs featurecraft refuses in a fragment.

use crate::diagnostic::{Code, Diagnostic, RecipePath, Span};
use crate::sql::{MAX_EXPRESSION_DEPTH, depth, drop_deep, function_name};
use sqlparser::ast::{
    CastKind, Expr, Function, FunctionArguments, Ident, Query, Spanned, Value, Visit, Visitor,
    visit_expressions_mut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;
use std::ops::ControlFlow;

/// How deep a fragment may nest before the parser refuses it (guards the stack).
const RECURSION_LIMIT: usize = 64;

/// The longest fragment accepted, in characters: far beyond any real feature, and it bounds
/// the tree one fragment can parse into.
pub const MAX_FRAGMENT_CHARS: usize = 100_000;

/// Parses `text` as exactly one SQL expression. Errors carry `path` and a span.
pub fn parse_fragment(text: &str, path: RecipePath) -> Result<Expr, Diagnostic> {
    parse_expression(text).map_err(|d| d.at(path))
}

/// Fragments each thread of [`parse_fragments`] gets at least: starting a thread costs
/// about as much as parsing five, and below this the split saves too little to measure.
const FRAGMENTS_PER_THREAD: usize = 128;

/// Parses many fragments as [`parse_fragment`] does, in order, each error at the path
/// `path(i)` gives. On a wide recipe parsing is the largest part of compiling, so it is
/// spread over the machine's cores when there are enough fragments to pay for the threads.
pub fn parse_fragments(
    texts: &[&str],
    path: impl Fn(usize) -> RecipePath,
) -> Vec<Result<Expr, Diagnostic>> {
    let threads = match texts.len() / FRAGMENTS_PER_THREAD {
        0 | 1 => 1,
        wanted => cores().min(wanted),
    };
    let parse_chunk = |chunk: &[&str]| -> Vec<Result<Expr, Diagnostic>> {
        chunk.iter().map(|text| parse_expression(text)).collect()
    };
    let parsed = if threads == 1 {
        parse_chunk(texts)
    } else {
        std::thread::scope(|scope| {
            let mut chunks = texts.chunks(texts.len().div_ceil(threads));
            let here = chunks.next().unwrap_or_default();
            // A chunk whose thread cannot start is parsed here instead.
            let started: Vec<_> = chunks
                .map(|chunk| {
                    std::thread::Builder::new()
                        .name("featurecraft-parse".into())
                        .spawn_scoped(scope, move || parse_chunk(chunk))
                        .map_err(|_| chunk)
                })
                .collect();
            let mut parsed = parse_chunk(here);
            for thread in started {
                match thread {
                    Ok(handle) => match handle.join() {
                        Ok(results) => parsed.extend(results),
                        Err(panic) => std::panic::resume_unwind(panic),
                    },
                    Err(chunk) => parsed.extend(parse_chunk(chunk)),
                }
            }
            parsed
        })
    };
    parsed
        .into_iter()
        .enumerate()
        .map(|(i, result)| result.map_err(|d| d.at(path(i))))
        .collect()
}

/// The cores this process may use, asked once: the answer reads cgroup files, which costs
/// more than compiling a small recipe.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

/// [`parse_fragment`] without the path, which the caller adds to an error.
fn parse_expression(text: &str) -> Result<Expr, Diagnostic> {
    if text.trim().is_empty() {
        return Err(Diagnostic::new(Code::E010, "the expression is empty"));
    }
    if text.len() > MAX_FRAGMENT_CHARS {
        let chars = text.chars().count();
        if chars > MAX_FRAGMENT_CHARS {
            return Err(Diagnostic::new(
                Code::E010,
                format!(
                    "the expression is {chars} characters long; the limit is {MAX_FRAGMENT_CHARS}"
                ),
            )
            .hint("split it into several features"));
        }
    }
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .with_recursion_limit(RECURSION_LIMIT)
        .try_with_sql(text)
        .map_err(|e| parse_error(e, text))?;
    let expr = parser.parse_expr().map_err(|e| parse_error(e, text))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        let what = if next.token == Token::SemiColon {
            "a `;` and more after it: a fragment is one expression, not statements"
        } else {
            "more input after the expression"
        };
        return Err(
            Diagnostic::new(Code::E011, format!("not a single expression: found {what}"))
                .with_span(Span::from_sql(next.span).or_else(|| Some(Span::at(1, 1))))
                .hint("write one SQL expression such as `SUM(amount)`; remove what follows it"),
        );
    }
    let depth = depth(&expr);
    if depth > MAX_EXPRESSION_DEPTH {
        drop_deep(expr, depth);
        return Err(Diagnostic::new(
            Code::E010,
            format!(
                "the expression nests {depth} levels deep; the limit is {MAX_EXPRESSION_DEPTH}"
            ),
        )
        .hint("each operator of a chain such as `a + b + c` nests one level: split the chain into several features, or use `IN (…)` for a long list of `OR`s"));
    }
    Ok(expr)
}

fn parse_error(error: ParserError, text: &str) -> Diagnostic {
    let message_text = match &error {
        ParserError::TokenizerError(m) | ParserError::ParserError(m) => m.clone(),
        ParserError::RecursionLimitExceeded => {
            return Diagnostic::new(
                Code::E010,
                format!("the expression nests deeper than {RECURSION_LIMIT} levels"),
            );
        }
    };
    let (message, span) = split_location(&message_text);
    // The parser gives no location for the end of input: point just past the last character.
    let span = span.or_else(|| {
        message.ends_with("EOF").then(|| {
            let line = text.lines().count().max(1) as u64;
            let column = text.lines().last().map_or(0, |l| l.chars().count()) as u64 + 1;
            Span::at(line, column)
        })
    });
    Diagnostic::new(Code::E010, format!("does not parse: {message}")).with_span(span)
}

/// Splits sqlparser's "… at Line: L, Column: C" suffix into a span: sqlparser 0.62 gives
/// the place only in its message's text. The test `parse_errors_point_at_the_place` fails
/// if an upgrade words it otherwise.
fn split_location(text: &str) -> (String, Option<Span>) {
    if let Some(index) = text.rfind(" at Line: ") {
        let location = &text[index + " at Line: ".len()..];
        let mut numbers = location
            .split(", Column: ")
            .map(|n| n.trim().parse::<u64>());
        if let (Some(Ok(line)), Some(Ok(column))) = (numbers.next(), numbers.next()) {
            return (text[..index].to_string(), Some(Span::at(line, column)));
        }
    }
    (text.to_string(), None)
}

/// A column the fragment reads, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnRef {
    /// The qualifier (`orders` in `orders.amount`), if any, joined with dots.
    pub qualifier: Option<String>,
    /// The column name as written (unquoted, the quotes removed).
    pub name: String,
    /// Quoted identifiers match case exactly; bare ones ignore ASCII case.
    pub quoted: bool,
    /// Where it is in the fragment.
    pub span: Option<Span>,
    /// Whether the reference sits inside an aggregate's arguments.
    pub in_aggregate: bool,
}

/// A construct a fragment may not hold, where it is, and what to write instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Forbidden {
    /// The construct, in words (`the window function `rank``).
    pub what: String,
    /// Where it is in the fragment.
    pub span: Option<Span>,
    /// What to write instead.
    pub hint: &'static str,
}

/// The advice for constructs that need a view or another feature.
const RESTRUCTURE: &str = "a fragment is one expression over its source table; express joins and windows as catalog views";

/// What a walk over one fragment found.
#[derive(Debug, Clone, Default)]
pub struct FragmentFacts {
    /// Every column reference, in order.
    pub columns: Vec<ColumnRef>,
    /// Whether the fragment calls an aggregate.
    pub aggregates: bool,
    /// Constructs that are not allowed in a fragment (`E012`).
    pub forbidden: Vec<Forbidden>,
    /// Calls whose value changes from run to run (`NOW()`, `RANDOM()`), with their span.
    pub non_deterministic: Vec<(String, Option<Span>)>,
}

/// Walks a parsed fragment and reports its columns, aggregates and forbidden constructs.
pub fn inspect(expr: &Expr) -> FragmentFacts {
    let mut walker = Walker {
        facts: FragmentFacts::default(),
        aggregate_depth: 0,
        subquery_depth: 0,
    };
    let _ = expr.visit(&mut walker);
    walker.facts
}

struct Walker {
    facts: FragmentFacts,
    aggregate_depth: usize,
    /// Inside a subquery expression already reported (with its span).
    subquery_depth: usize,
}

impl Visitor for Walker {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        if self.subquery_depth == 0 {
            self.forbid("a subquery".into(), None, RESTRUCTURE);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Some((what, hint)) = unsupported(expr) {
            self.forbid(what, Span::from_sql(expr.span()), hint);
        }
        match expr {
            Expr::Identifier(ident) => self.column(None, ident),
            Expr::CompoundIdentifier(parts) => {
                if let Some((last, qualifier)) = parts.split_last() {
                    let qualifier = dotted(qualifier);
                    self.column(Some(qualifier), last);
                }
            }
            Expr::Function(function) => {
                let name = function_name(function);
                if super::functions::changes_between_runs(&name) {
                    self.facts.non_deterministic.push((
                        name.to_ascii_uppercase(),
                        Span::from_sql(name_span(function)),
                    ));
                }
                if name.starts_with("featurecraft_") {
                    self.forbid(
                        format!("`{}`, a name featurecraft keeps for the SQL it writes", function.name),
                        Span::from_sql(name_span(function)),
                        "call the function by its SQL name; `a - b` of two dates is a number of days",
                    );
                } else if function.over.is_some() {
                    self.forbid(
                        format!("the window function `{}`", function.name),
                        Span::from_sql(name_span(function)),
                        RESTRUCTURE,
                    );
                } else if is_aggregate(function) {
                    if self.aggregate_depth > 0 {
                        self.forbid(
                            format!(
                                "the aggregate `{}` nested inside another aggregate",
                                function.name
                            ),
                            Span::from_sql(name_span(function)),
                            RESTRUCTURE,
                        );
                    }
                    self.facts.aggregates = true;
                    self.aggregate_depth += 1;
                } else if matches!(function.args, FunctionArguments::Subquery(_)) {
                    self.forbid(
                        "a subquery".into(),
                        Span::from_sql(name_span(function)),
                        RESTRUCTURE,
                    );
                }
            }
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => {
                if self.subquery_depth == 0 {
                    self.forbid(
                        "a subquery".into(),
                        Span::from_sql(expr.span()),
                        RESTRUCTURE,
                    );
                }
                self.subquery_depth += 1;
            }
            Expr::Lambda(_) => self.forbid(
                "a lambda function".into(),
                Span::from_sql(expr.span()),
                RESTRUCTURE,
            ),
            Expr::Value(v) if matches!(v.value, Value::Placeholder(_)) => self.forbid(
                "a query parameter placeholder".into(),
                Span::from_sql(v.span),
                "write the value itself",
            ),
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {
                self.forbid("a `*` outside COUNT(*)".into(), None, RESTRUCTURE)
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if matches!(
            expr,
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. }
        ) {
            self.subquery_depth = self.subquery_depth.saturating_sub(1);
        }
        if let Expr::Function(function) = expr
            && function.over.is_none()
            && is_aggregate(function)
        {
            self.aggregate_depth = self.aggregate_depth.saturating_sub(1);
        }
        ControlFlow::Continue(())
    }
}

impl Walker {
    fn forbid(&mut self, what: String, span: Option<Span>, hint: &'static str) {
        self.facts.forbidden.push(Forbidden { what, span, hint });
    }

    fn column(&mut self, qualifier: Option<String>, ident: &Ident) {
        self.facts.columns.push(ColumnRef {
            qualifier,
            name: ident.value.clone(),
            quoted: ident.quote_style.is_some(),
            span: Span::from_sql(ident.span),
            in_aggregate: self.aggregate_depth > 0,
        });
    }
}

/// `a.b` from identifier parts.
fn dotted(parts: &[Ident]) -> String {
    parts
        .iter()
        .map(|p| p.value.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

/// Why a node is not part of the fragment grammar featurecraft accepts, if it is not, and
/// what to write instead.
///
/// The grammar is a whitelist: column references, literals (plain numbers, `'…'` strings,
/// booleans, NULL, `DATE '…'`-style typed strings, intervals), operators, `CASE`, `CAST`,
/// `IN (…)`, `BETWEEN`, `LIKE`/`ILIKE`/`SIMILAR TO`, `IS …`, `EXTRACT`, `AT TIME ZONE`,
/// `CEIL`/`FLOOR`, `POSITION`, `SUBSTRING`, `TRIM`, and calls of functions named by bare
/// words with positional arguments. Whatever else sqlparser reads (collations, custom
/// operators, quoted function names, structs, arrays, JSON paths, …) could carry text the
/// renderer cannot write safely in every dialect, so it is refused. Subqueries, window
/// functions, lambdas, placeholders and wildcards are reported by the walk itself.
/// One table-like `match` over the expression's kinds, kept whole so the accepted grammar
/// reads in one place.
fn unsupported(expr: &Expr) -> Option<(String, &'static str)> {
    use crate::sql::{is_keyword_text, is_plain_number};
    use sqlparser::ast::{
        BinaryOperator as B, CeilFloorKind, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
        UnaryOperator as U,
    };
    const PORTABLE: &str = "featurecraft accepts the portable SQL expression grammar listed in the README (\"Fragments\")";
    let shown = || {
        let text = expr.to_string();
        let short: String = text.chars().take(60).collect();
        if short.len() < text.len() {
            format!("{short}…")
        } else {
            short
        }
    };
    let keyword = |text: String| is_keyword_text(&text);
    match expr {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::IsFalse(_)
        | Expr::IsNotFalse(_)
        | Expr::IsTrue(_)
        | Expr::IsNotTrue(_)
        | Expr::IsNull(_)
        | Expr::IsNotNull(_)
        | Expr::IsUnknown(_)
        | Expr::IsNotUnknown(_)
        | Expr::IsDistinctFrom(..)
        | Expr::IsNotDistinctFrom(..)
        | Expr::InList { .. }
        | Expr::Between { .. }
        | Expr::Like { .. }
        | Expr::ILike { .. }
        | Expr::SimilarTo { .. }
        | Expr::AtTimeZone { .. }
        | Expr::Position { .. }
        | Expr::Substring { .. }
        | Expr::Trim { .. }
        | Expr::Nested(_)
        | Expr::Case { .. } => None,
        // Reported by the walk with their own words.
        Expr::Subquery(_)
        | Expr::Exists { .. }
        | Expr::InSubquery { .. }
        | Expr::Lambda(_)
        | Expr::Wildcard(_)
        | Expr::QualifiedWildcard(..) => None,
        Expr::Value(v) => match &v.value {
            Value::Number(text, false) if is_plain_number(text) => None,
            Value::SingleQuotedString(_) | Value::Boolean(_) | Value::Null => None,
            Value::Placeholder(_) => None,
            other => Some((
                format!("the literal `{other}`"),
                "write numbers as digits (`1.5`, `2e3`) and strings as '…' with a quote doubled",
            )),
        },
        Expr::BinaryOp { op, .. } => {
            let portable = matches!(
                op,
                B::Plus
                    | B::Minus
                    | B::Multiply
                    | B::Divide
                    | B::Modulo
                    | B::StringConcat
                    | B::Gt
                    | B::Lt
                    | B::GtEq
                    | B::LtEq
                    | B::Eq
                    | B::NotEq
                    | B::And
                    | B::Or
                    | B::Xor
                    | B::BitwiseOr
                    | B::BitwiseAnd
                    | B::BitwiseXor
                    | B::PGRegexMatch
                    | B::PGRegexIMatch
                    | B::PGRegexNotMatch
                    | B::PGRegexNotIMatch
            );
            (!portable).then(|| (format!("the operator `{op}`"), PORTABLE))
        }
        Expr::UnaryOp { op, .. } => (!matches!(op, U::Plus | U::Minus | U::Not))
            .then(|| (format!("the operator `{op}`"), PORTABLE)),
        Expr::TypedString(typed) => {
            let plain = !typed.uses_odbc_syntax
                && matches!(typed.value.value, Value::SingleQuotedString(_))
                && keyword(typed.data_type.to_string());
            (!plain).then(|| {
                (
                    format!("the typed literal `{}`", shown()),
                    "write a typed literal as `DATE '2024-01-31'` or `TIMESTAMP '2024-01-31 12:00:00'`",
                )
            })
        }
        Expr::Cast {
            data_type, format, ..
        } => (format.is_some() || !keyword(data_type.to_string())).then(|| {
            (
                format!("the cast to `{data_type}`"),
                "cast to a plain type name such as BIGINT, DOUBLE, VARCHAR, DATE or DECIMAL(10,2)",
            )
        }),
        Expr::Extract { field, .. } => (!keyword(field.to_string())).then(|| {
            (
                format!("the EXTRACT field `{field}`"),
                "extract a plain field such as YEAR, MONTH, DAY, DOW or HOUR",
            )
        }),
        Expr::Interval(interval) => {
            let plain = [&interval.leading_field, &interval.last_field]
                .into_iter()
                .flatten()
                .all(|f| keyword(f.to_string()));
            (!plain).then(|| (format!("the interval `{}`", shown()), PORTABLE))
        }
        Expr::Ceil { field, .. } | Expr::Floor { field, .. } => {
            let plain = match field {
                CeilFloorKind::DateTimeField(f) => keyword(f.to_string()),
                CeilFloorKind::Scale(v) => {
                    matches!(&v.value, Value::Number(t, false) if is_plain_number(t))
                }
            };
            (!plain).then(|| (format!("`{}`", shown()), PORTABLE))
        }
        Expr::Function(function) => {
            let bare_name = function.name.0.iter().all(|part| {
                part.as_ident()
                    .is_some_and(|i| i.quote_style.is_none() && crate::sql::is_bare_word(&i.value))
            });
            if !bare_name {
                return Some((
                    format!("the quoted function name `{}`", function.name),
                    "name a function by bare words, without quotes (`lower(x)`)",
                ));
            }
            if function.uses_odbc_syntax || !matches!(function.parameters, FunctionArguments::None)
            {
                return Some((format!("the call `{}`", shown()), PORTABLE));
            }
            let plain_order = |order: &sqlparser::ast::OrderByExpr| order.with_fill.is_none();
            let arguments_ok = match &function.args {
                FunctionArguments::None | FunctionArguments::Subquery(_) => true,
                FunctionArguments::List(list) => {
                    list.args.iter().all(|a| {
                        matches!(
                            a,
                            FunctionArg::Unnamed(
                                FunctionArgExpr::Expr(_) | FunctionArgExpr::Wildcard
                            )
                        )
                    }) && list.clauses.iter().all(|c| match c {
                        FunctionArgumentClause::OrderBy(order) => order.iter().all(plain_order),
                        FunctionArgumentClause::Limit(_)
                        | FunctionArgumentClause::IgnoreOrRespectNulls(_) => true,
                        _ => false,
                    })
                }
            };
            (!arguments_ok || !function.within_group.iter().all(plain_order)).then(|| {
                (
                    format!("the arguments of `{}`", function.name),
                    "pass positional expressions; named arguments and special clauses are not supported",
                )
            })
        }
        _ => Some((format!("the construct `{}`", shown()), PORTABLE)),
    }
}

fn name_span(function: &Function) -> sqlparser::tokenizer::Span {
    function
        .name
        .0
        .first()
        .and_then(|p| p.as_ident())
        .map(|i| i.span)
        .unwrap_or(sqlparser::tokenizer::Span::empty())
}

/// Whether a call aggregates rows (by name, or by an aggregate-only clause).
pub fn is_aggregate(function: &Function) -> bool {
    function.over.is_none()
        && (super::functions::aggregates(&function_name(function))
            || function.filter.is_some()
            || !function.within_group.is_empty())
}

/// Whether an aggregate call is a count, whose value over no rows is 0.
fn is_counting(function: &Function) -> bool {
    super::functions::counts(&function_name(function))
}

/// Rewrites every column reference with `resolve` (returning the catalog's column name, or
/// `None` to leave it) and turns `x::T` into the portable `CAST(x AS T)`.
pub fn rewrite_columns(
    expr: &mut Expr,
    mut resolve: impl FnMut(Option<&str>, &Ident) -> Option<String>,
) {
    let _ = visit_expressions_mut(expr, |e| {
        match e {
            Expr::Identifier(ident) => {
                if let Some(name) = resolve(None, ident) {
                    *e = Expr::Identifier(Ident::new(name));
                }
            }
            Expr::CompoundIdentifier(parts) => {
                if let Some((last, qualifier)) = parts.split_last() {
                    let qualifier = dotted(qualifier);
                    if let Some(name) = resolve(Some(&qualifier), last) {
                        *e = Expr::Identifier(Ident::new(name));
                    }
                }
            }
            Expr::Cast { kind, .. } if *kind == CastKind::DoubleColon => *kind = CastKind::Cast,
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
}

/// The expression's value over an empty set of rows, as SQL defines it: counts become 0,
/// other aggregates NULL; `grain` maps a grain column read outside an aggregate to the
/// expression that stands for it (the spine's column). `None` when the value is simply NULL.
pub fn empty_set_value(expr: &Expr, grain: &dyn Fn(&str) -> Option<Expr>) -> Option<Expr> {
    let folded = fold_nulls(over_no_rows(expr, grain));
    (!is_null(&folded)).then_some(folded)
}

/// `expr` with each aggregate replaced by its value over no rows and each grain column by
/// its stand-in. Operators are rebuilt around their rewritten operands, so the arguments of
/// an aggregate (most of a feature's tree) are never copied; any other node is copied whole
/// and rewritten in place.
fn over_no_rows(expr: &Expr, grain: &dyn Fn(&str) -> Option<Expr>) -> Expr {
    let operand = |e: &Expr| Box::new(over_no_rows(e, grain));
    match expr {
        Expr::Function(function) if is_aggregate(function) => {
            if is_counting(function) {
                number("0")
            } else {
                null()
            }
        }
        Expr::Nested(inner) => Expr::Nested(operand(inner)),
        Expr::BinaryOp { left, op, right } => Expr::BinaryOp {
            left: operand(left),
            op: op.clone(),
            right: operand(right),
        },
        Expr::UnaryOp { op, expr: inner } => Expr::UnaryOp {
            op: *op,
            expr: operand(inner),
        },
        Expr::Cast {
            kind,
            expr: inner,
            data_type,
            array,
            format,
        } => Expr::Cast {
            kind: kind.clone(),
            expr: operand(inner),
            data_type: data_type.clone(),
            array: *array,
            format: format.clone(),
        },
        other => replace_aggregates(other.clone(), grain),
    }
}

/// [`over_no_rows`] on a tree of its own, by a walk that rewrites every node.
fn replace_aggregates(expr: Expr, grain: &dyn Fn(&str) -> Option<Expr>) -> Expr {
    let mut expr = expr;
    let _ = visit_expressions_mut(&mut expr, |e| {
        match e {
            Expr::Function(function) if is_aggregate(function) => {
                *e = if is_counting(function) {
                    number("0")
                } else {
                    null()
                };
            }
            Expr::Identifier(ident) => {
                if let Some(replacement) = grain(&ident.value) {
                    *e = replacement;
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    expr
}

/// Folds operations that are NULL whenever an operand is NULL (arithmetic, comparison,
/// concatenation, unary minus, parentheses), so `SUM(x) / COUNT(*)` over no rows is `NULL`.
/// One table-like `match` over the expression's kinds.
fn fold_nulls(expr: Expr) -> Expr {
    use sqlparser::ast::{BinaryOperator as B, UnaryOperator as U};
    match expr {
        Expr::Nested(inner) => {
            let inner = fold_nulls(*inner);
            if is_null(&inner) {
                inner
            } else {
                Expr::Nested(Box::new(inner))
            }
        }
        Expr::BinaryOp { left, op, right } => {
            let left = fold_nulls(*left);
            let right = fold_nulls(*right);
            let strict = matches!(
                op,
                B::Plus
                    | B::Minus
                    | B::Multiply
                    | B::Divide
                    | B::Modulo
                    | B::StringConcat
                    | B::Eq
                    | B::NotEq
                    | B::Lt
                    | B::LtEq
                    | B::Gt
                    | B::GtEq
            );
            if strict && (is_null(&left) || is_null(&right)) {
                null()
            } else {
                Expr::BinaryOp {
                    left: Box::new(left),
                    op,
                    right: Box::new(right),
                }
            }
        }
        // COALESCE skips NULL arguments: `COALESCE(NULL, 0)` over no rows is `0`.
        Expr::Function(mut function) if function_name(&function) == "coalesce" => {
            use sqlparser::ast::{FunctionArg, FunctionArgExpr};
            let FunctionArguments::List(list) = &mut function.args else {
                return Expr::Function(function);
            };
            if !list
                .args
                .iter()
                .all(|a| matches!(a, FunctionArg::Unnamed(FunctionArgExpr::Expr(_))))
            {
                return Expr::Function(function);
            }
            let mut kept: Vec<Expr> = std::mem::take(&mut list.args)
                .into_iter()
                .filter_map(|a| match a {
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(fold_nulls(e)),
                    _ => None,
                })
                .filter(|e| !is_null(e))
                .collect();
            match kept.len() {
                0 => null(),
                1 => kept.remove(0),
                _ => {
                    list.args = kept
                        .into_iter()
                        .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                        .collect();
                    Expr::Function(function)
                }
            }
        }
        // `NULLIF(a, b)` is NULL when `a` is, or when both are the same literal: over no
        // rows `x / NULLIF(COUNT(*), 0)` is `x / NULLIF(0, 0)`, which folds to NULL.
        Expr::Function(mut function) if function_name(&function) == "nullif" => {
            use sqlparser::ast::{FunctionArg, FunctionArgExpr};
            let FunctionArguments::List(list) = &mut function.args else {
                return Expr::Function(function);
            };
            for arg in &mut list.args {
                if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg {
                    *e = fold_nulls(std::mem::replace(e, null()));
                }
            }
            match list.args.as_slice() {
                [
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(a)),
                    FunctionArg::Unnamed(FunctionArgExpr::Expr(b)),
                ] if is_null(a) || (matches!(a, Expr::Value(_)) && a == b) => null(),
                _ => Expr::Function(function),
            }
        }
        // Functions that are NULL whenever an argument is NULL, in every dialect we render.
        Expr::Function(mut function)
            if super::functions::null_strict(&function_name(&function)) =>
        {
            use sqlparser::ast::{FunctionArg, FunctionArgExpr};
            let FunctionArguments::List(list) = &mut function.args else {
                return Expr::Function(function);
            };
            let mut any_null = false;
            for arg in &mut list.args {
                if let FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) = arg {
                    *e = fold_nulls(std::mem::replace(e, null()));
                    any_null |= is_null(e);
                }
            }
            if any_null {
                null()
            } else {
                Expr::Function(function)
            }
        }
        Expr::Extract {
            field,
            syntax,
            expr,
        } => {
            let inner = fold_nulls(*expr);
            if is_null(&inner) {
                inner
            } else {
                Expr::Extract {
                    field,
                    syntax,
                    expr: Box::new(inner),
                }
            }
        }
        Expr::Cast {
            kind,
            expr,
            data_type,
            array,
            format,
        } => {
            let inner = fold_nulls(*expr);
            if is_null(&inner) {
                inner
            } else {
                Expr::Cast {
                    kind,
                    expr: Box::new(inner),
                    data_type,
                    array,
                    format,
                }
            }
        }
        Expr::UnaryOp { op, expr } => {
            let inner = fold_nulls(*expr);
            if matches!(op, U::Minus | U::Plus) && is_null(&inner) {
                inner
            } else {
                Expr::UnaryOp {
                    op,
                    expr: Box::new(inner),
                }
            }
        }
        other => other,
    }
}

fn is_null(expr: &Expr) -> bool {
    matches!(expr, Expr::Value(v) if v.value == Value::Null)
}

fn null() -> Expr {
    Expr::Value(Value::Null.into())
}

fn number(text: &str) -> Expr {
    Expr::Value(Value::Number(text.to_string(), false).into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::FeatureField;

    fn test_path() -> RecipePath {
        RecipePath::feature(0, FeatureField::Expression)
    }

    #[test]
    fn a_second_statement_is_refused() {
        let err = parse_fragment(
            "1; DROP TABLE x",
            RecipePath::feature(0, FeatureField::Expression),
        )
        .unwrap_err();
        assert_eq!(err.code, Code::E011);
        assert_eq!(err.span.map(|s| s.start.column), Some(2));
    }

    #[test]
    fn parse_errors_point_at_the_place() {
        let err = parse_fragment("SUM(amount", test_path()).unwrap_err();
        assert_eq!(err.code, Code::E010);
        assert!(err.span.is_some());
    }

    #[test]
    fn facts_separate_aggregated_and_bare_columns() {
        let expr = parse_fragment("SUM(amount) + fee", test_path()).unwrap();
        let facts = inspect(&expr);
        assert!(facts.aggregates);
        let bare: Vec<_> = facts
            .columns
            .iter()
            .filter(|c| !c.in_aggregate)
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(bare, ["fee"]);
    }

    #[test]
    fn forbidden_constructs_are_found() {
        for text in [
            "(SELECT 1)",
            "ROW_NUMBER() OVER ()",
            "SUM(COUNT(*))",
            "x IN (SELECT y FROM t)",
            "$1",
        ] {
            let facts = inspect(&parse_fragment(text, test_path()).unwrap());
            assert!(!facts.forbidden.is_empty(), "{text}");
        }
    }

    #[test]
    fn empty_set_values_follow_sql() {
        let value = |text: &str| {
            empty_set_value(&parse_fragment(text, test_path()).unwrap(), &|_| None)
                .map(|e| e.to_string())
        };
        assert_eq!(value("COUNT(*)").as_deref(), Some("0"));
        assert_eq!(value("COUNT(*) + 1").as_deref(), Some("0 + 1"));
        assert_eq!(value("SUM(x) / COUNT(*)"), None);
        assert_eq!(value("MAX(x)"), None);
        assert_eq!(value("EXTRACT(DOW FROM MIN(d))"), None);
        assert_eq!(value("featurecraft_days_between(MAX(d), MIN(d))"), None);
        assert_eq!(value("ROUND(AVG(x), 2)"), None);
        assert_eq!(value("CAST(MAX(x) AS DOUBLE) + 1"), None);
        assert_eq!(
            value("ROUND(COUNT(*) / 2, 1)").as_deref(),
            Some("ROUND(0 / 2, 1)")
        );
        assert_eq!(value("COALESCE(SUM(x), 0)").as_deref(), Some("0"));
        assert_eq!(value("COALESCE(SUM(x), MAX(y))"), None);
        assert_eq!(
            value("COALESCE(SUM(x), COUNT(*), 5)").as_deref(),
            Some("COALESCE(0, 5)")
        );
    }

    #[test]
    fn many_fragments_parse_in_order_as_one_at_a_time() {
        let texts: Vec<String> = (0..1000)
            .map(|i| match i % 7 {
                0 => format!("SUM(amount * {i}"),
                3 => format!("{i}; DROP TABLE t"),
                _ => format!("COUNT(CASE WHEN amount > {i} THEN 1 END)"),
            })
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let path = |i: usize| RecipePath::feature(i, FeatureField::Expression);
        let together = parse_fragments(&refs, path);
        assert_eq!(together.len(), texts.len());
        for (i, (text, result)) in texts.iter().zip(together).enumerate() {
            assert_eq!(result, parse_fragment(text, path(i)), "{i}");
        }
    }

    #[test]
    fn rebuilding_around_aggregates_equals_rewriting_a_whole_copy() {
        let grain = |name: &str| {
            (name == "customer_id").then(|| {
                Expr::CompoundIdentifier(vec![Ident::new("spine"), Ident::new("customer_id")])
            })
        };
        for text in [
            "COUNT(*)",
            "customer_id",
            "-SUM(x) * (COUNT(DISTINCT y) + customer_id)",
            "CAST(COUNT(*) AS DOUBLE) / NULLIF(COUNT(x), 0)",
            "CASE WHEN COUNT(*) > 0 THEN customer_id END",
            "COALESCE(MAX(x), customer_id, 0) || 'a'",
            "(SUM(x) - MIN(x)) / 7 + CAST(customer_id AS TEXT)",
        ] {
            let expr = parse_fragment(text, test_path()).unwrap();
            let whole = replace_aggregates(expr.clone(), &grain);
            assert_eq!(over_no_rows(&expr, &grain), whole, "{text}");
            assert!(!whole.to_string().contains("(x)"), "{whole}");
        }
    }
}
