//! Rendering: a [`Plan`] becomes a sqlparser AST, then text.
//!
//! No user text is pasted into SQL: names become quoted identifiers, fragments are the ASTs
//! the analyzer resolved, adjusted for the dialect (quoting, cast type names) from its row
//! of the capability table. A construct the dialect cannot express is an `E040` error.
//! The printed statement is pretty, deterministic, and parses back in its dialect to the
//! same AST (a test invariant).
//!
//! Shape of the query:
//! ```sql
//! CREATE TABLE "target" AS
//! WITH "spine" AS (SELECT grain, row-level features, label FROM label_table [GROUP BY grain]),
//!      "src_orders" AS (SELECT grain, features FROM orders [GROUP BY grain]), …
//! SELECT spine.grain, features in recipe order, spine.label
//! FROM "spine" LEFT JOIN "src_orders" ON spine.grain = src_orders.grain …
//! ```

use crate::compile::analyze::{FeatureHome, Plan, SPINE_CTE};
use crate::compile::dialect::{Capabilities, DayOfWeek, DaysBetween, Dialect, StringEscapes};
use crate::compile::print::PrintError;
use crate::diagnostic::{Code, Diagnostic, RecipePath};
use crate::sql::{call, cast, function_name};
use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::helpers::stmt_create_table::CreateTableBuilder;
use sqlparser::ast::{
    BinaryOperator, CaseWhen, CastKind, Cte, DataType, DateTimeField, ExactNumberInfo, Expr,
    ExtractSyntax, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr, Ident, Join,
    JoinConstraint, JoinOperator, ObjectName, Query, Select, SelectFlavor, SelectItem, SetExpr,
    Spanned, Statement, TableAlias, TableFactor, TableWithJoins, Value, With,
    visit_expressions_mut,
};
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// A rendered CTAS: the statement and its pretty text.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The `CREATE TABLE … AS` statement as built, what the text reads back as.
    pub statement: Statement,
    /// The statement printed by featurecraft's escaper, pretty.
    pub sql: String,
}

/// Extra restriction applied inside every CTE before it aggregates (used by sampling).
pub type CteFilter<'a> = &'a dyn Fn(&[Expr]) -> Option<Expr>;

/// Renders the plan's CTAS in `dialect`.
pub fn render(plan: &Plan, dialect: Dialect) -> Result<Rendered, Vec<Diagnostic>> {
    crate::sql::with_expression_stack(|| render_here(plan, dialect))
}

fn render_here(plan: &Plan, dialect: Dialect) -> Result<Rendered, Vec<Diagnostic>> {
    let caps = dialect.capabilities();
    let query = build_query_here(plan, &caps, None)?;
    let name = ObjectName::from(
        plan.target_table
            .iter()
            .map(|p| quoted(p, &caps))
            .collect::<Vec<_>>(),
    );
    let create = CreateTableBuilder::new(name)
        .or_replace(caps.create_or_replace)
        .query(Some(Box::new(query)))
        .build();
    let statement = Statement::CreateTable(create);
    // The statement's own Display puts everything on one line; this layout keeps the
    // query pretty. Either way the text must read back as `statement`.
    let layout = |printable: &Statement| match printable {
        Statement::CreateTable(create) => match &create.query {
            Some(query) => {
                let head = if create.or_replace {
                    "CREATE OR REPLACE TABLE"
                } else {
                    "CREATE TABLE"
                };
                format!("{head} {} AS\n{query:#}", create.name)
            }
            None => printable.to_string(),
        },
        other => other.to_string(),
    };
    let sql = crate::compile::print::statement_text(&statement, dialect, layout).map_err(|e| {
        vec![match e {
            PrintError::Unwritable(why) => Diagnostic::new(
                Code::E041,
                format!("the CTAS cannot be written safely in the {dialect} dialect: {why}"),
            )
            .hint("rename the column or change the literal; featurecraft never prints text it cannot escape"),
            PrintError::ReadsBack(why) => Diagnostic::new(Code::E042, why).hint(
                "this is a featurecraft bug: the SQL was withheld rather than printed unverified; please report the recipe",
            ),
        }]
    })?;
    Ok(Rendered { statement, sql })
}

/// Parses rendered SQL back in its dialect, for the round-trip invariant.
pub fn reparse(sql: &str, dialect: Dialect) -> Result<Vec<Statement>, String> {
    Parser::parse_sql(dialect.parser_dialect().as_ref(), sql).map_err(|e| e.to_string())
}

/// Builds the CTAS's query. `filter`, given the grain columns of a CTE's table, may return a
/// predicate that restricts the CTE's rows before grouping (entity sampling).
pub fn build_query(
    plan: &Plan,
    caps: &Capabilities,
    filter: Option<CteFilter>,
) -> Result<Query, Vec<Diagnostic>> {
    crate::sql::with_expression_stack(|| build_query_here(plan, caps, filter))
}

fn build_query_here(
    plan: &Plan,
    caps: &Capabilities,
    filter: Option<CteFilter>,
) -> Result<Query, Vec<Diagnostic>> {
    let mut builder = QueryBuilder {
        plan,
        caps,
        filter,
        errors: Vec::new(),
    };
    builder.refuse_float_text();
    let mut ctes = vec![builder.spine_cte()];
    let (source_ctes, parts, part_of_feature) = builder.source_ctes();
    ctes.extend(source_ctes);
    let items = builder.projection(&parts, &part_of_feature);
    let joins = builder.joins(&parts);
    let mut query = select(
        items,
        ObjectName::from(vec![quoted(SPINE_CTE, caps)]),
        joins,
        None,
        None,
    );
    query.with = Some(With {
        with_token: AttachedToken::empty(),
        recursive: false,
        cte_tables: ctes,
    });
    if builder.errors.is_empty() {
        Ok(query)
    } else {
        Err(builder.errors)
    }
}

/// Builds the CTAS's query section by section, collecting every construct the dialect
/// cannot express.
struct QueryBuilder<'a> {
    plan: &'a Plan,
    caps: &'a Capabilities,
    filter: Option<CteFilter<'a>>,
    errors: Vec<Diagnostic>,
}

impl QueryBuilder<'_> {
    /// A fragment adapted to the dialect.
    fn fragment(&mut self, expr: &Expr, path: &RecipePath) -> Expr {
        adapt(expr, self.caps, path, &mut self.errors)
    }

    /// `E040` for each cast of a float to text, where the engine prints floats otherwise.
    fn refuse_float_text(&mut self) {
        if self.caps.float_text_like_datafusion {
            return;
        }
        for f in &self.plan.features {
            for span in &f.float_to_text {
                self.errors.push(
                    Diagnostic::new(
                        Code::E040,
                        format!(
                            "casting a floating-point value to text cannot be expressed faithfully in the {} dialect",
                            self.caps.name
                        ),
                    )
                    .at(f.path.clone())
                    .with_span(crate::diagnostic::Span::from_sql(*span))
                    .hint("engines format floats differently (9.0, 9, 1.0E10): keep the number, or CAST it to an integer before casting to text"),
                );
            }
        }
    }

    /// The grain columns as quoted identifiers.
    fn grain_exprs(&self, grain: &[String]) -> Vec<Expr> {
        grain
            .iter()
            .map(|g| Expr::Identifier(quoted(g, self.caps)))
            .collect()
    }

    /// The spine CTE: grain, the spine table's row-level features, and the label.
    fn spine_cte(&mut self) -> Cte {
        let (plan, caps) = (self.plan, self.caps);
        let spine_grain = self.grain_exprs(&plan.grain);
        let mut items: Vec<SelectItem> = spine_grain
            .iter()
            .cloned()
            .map(SelectItem::UnnamedExpr)
            .collect();
        for f in plan
            .features
            .iter()
            .filter(|f| f.home == FeatureHome::Spine)
        {
            let expr = self.fragment(&f.expr, &f.path);
            items.push(aliased(expr, &f.name, caps));
        }
        let label = self.fragment(&plan.label.expr, &plan.label.path);
        items.push(aliased(label, &plan.label.name, caps));
        cte(
            SPINE_CTE,
            select(
                items,
                table_name(&plan.spine.table, caps),
                vec![],
                self.filter.and_then(|f| f(&spine_grain)),
                plan.spine.grouped.then(|| spine_grain.clone()),
            ),
            caps,
        )
    }

    /// One CTE per source; in dialects that split them, one more per distinct aggregate.
    /// Returns the CTEs, the parts they are joined as, and each feature's part.
    fn source_ctes(&mut self) -> (Vec<Cte>, Vec<Part>, Vec<usize>) {
        let (plan, caps) = (self.plan, self.caps);
        let mut ctes = Vec::new();
        let mut parts: Vec<Part> = Vec::new();
        let mut part_of_feature: Vec<usize> = vec![usize::MAX; plan.features.len()];
        for (index, source) in plan.sources.iter().enumerate() {
            let grain = self.grain_exprs(&source.grain);
            let mut source_parts: Vec<(Option<String>, Vec<usize>)> = vec![(None, Vec::new())];
            for (i, f) in plan.features.iter().enumerate() {
                if f.home != FeatureHome::Source(index) {
                    continue;
                }
                let key = (caps.split_distinct_aggregates && source.grouped)
                    .then(|| distinct_argument(&f.expr))
                    .flatten();
                match source_parts.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, members)) => members.push(i),
                    None => source_parts.push((key, vec![i])),
                }
            }
            // A part with no feature is dropped, unless it is a row-level source's only one
            // (such a source still joins, and fans out, with no feature of its own). A grouped
            // source without features (in a plan of some of a recipe's features) is left out.
            let only_one = source_parts.len() == 1;
            let mut n = 0;
            for (key, members) in source_parts {
                if members.is_empty() && (!only_one || source.grouped) {
                    continue;
                }
                let cte_name = if key.is_none() {
                    source.cte_name.clone()
                } else {
                    n += 1;
                    format!("{}_distinct_{n}", source.cte_name)
                };
                let mut items: Vec<SelectItem> =
                    grain.iter().cloned().map(SelectItem::UnnamedExpr).collect();
                for &i in &members {
                    let f = &plan.features[i];
                    let expr = self.fragment(&f.expr, &f.path);
                    items.push(aliased(expr, &f.name, caps));
                    part_of_feature[i] = parts.len();
                }
                let body = select(
                    items,
                    table_name(&source.table, caps),
                    vec![],
                    self.filter.and_then(|f| f(&grain)),
                    source.grouped.then(|| grain.clone()),
                );
                ctes.push(cte(&cte_name, body, caps));
                parts.push(Part {
                    cte_name,
                    grain: source.grain.clone(),
                });
            }
        }
        (ctes, parts, part_of_feature)
    }

    /// `"spine"."name"`.
    fn spine_col(&self, name: &str) -> Expr {
        Expr::CompoundIdentifier(vec![quoted(SPINE_CTE, self.caps), quoted(name, self.caps)])
    }

    /// The final projection, in output order: grain, features (a source's feature of an
    /// entity without rows there takes its value over no rows), label.
    fn projection(&mut self, parts: &[Part], part_of_feature: &[usize]) -> Vec<SelectItem> {
        let (plan, caps) = (self.plan, self.caps);
        let mut items: Vec<SelectItem> = plan
            .grain
            .iter()
            .map(|g| SelectItem::UnnamedExpr(self.spine_col(g)))
            .collect();
        for (i, f) in plan.features.iter().enumerate() {
            let item = match f.home {
                FeatureHome::Spine => SelectItem::UnnamedExpr(self.spine_col(&f.name)),
                FeatureHome::Source(_) => {
                    let source = &parts[part_of_feature[i]];
                    let value = Expr::CompoundIdentifier(vec![
                        quoted(&source.cte_name, caps),
                        quoted(&f.name, caps),
                    ]);
                    match &f.empty_value {
                        None => aliased(value, &f.name, caps),
                        Some(empty) => {
                            let marker = Expr::CompoundIdentifier(vec![
                                quoted(&source.cte_name, caps),
                                quoted(&source.grain[0], caps),
                            ]);
                            let empty = self.fragment(empty, &f.path);
                            aliased(
                                Expr::Case {
                                    case_token: AttachedToken::empty(),
                                    end_token: AttachedToken::empty(),
                                    operand: None,
                                    conditions: vec![CaseWhen {
                                        condition: Expr::IsNull(Box::new(marker)),
                                        result: empty,
                                    }],
                                    else_result: Some(Box::new(value)),
                                },
                                &f.name,
                                caps,
                            )
                        }
                    }
                }
            };
            items.push(item);
        }
        items.push(SelectItem::UnnamedExpr(self.spine_col(&plan.label.name)));
        items
    }

    /// Each part `LEFT JOIN`ed to the spine on the grain.
    fn joins(&self, parts: &[Part]) -> Vec<Join> {
        let caps = self.caps;
        parts
            .iter()
            .map(|source| {
                let condition = self
                    .plan
                    .grain
                    .iter()
                    .zip(&source.grain)
                    .map(|(spine_g, source_g)| Expr::BinaryOp {
                        left: Box::new(self.spine_col(spine_g)),
                        op: BinaryOperator::Eq,
                        right: Box::new(Expr::CompoundIdentifier(vec![
                            quoted(&source.cte_name, caps),
                            quoted(source_g, caps),
                        ])),
                    })
                    .reduce(|a, b| Expr::BinaryOp {
                        left: Box::new(a),
                        op: BinaryOperator::And,
                        right: Box::new(b),
                    });
                Join {
                    relation: table_factor(ObjectName::from(vec![quoted(&source.cte_name, caps)])),
                    global: false,
                    join_operator: JoinOperator::Left(match condition {
                        Some(c) => JoinConstraint::On(c),
                        None => JoinConstraint::None,
                    }),
                }
            })
            .collect()
    }
}

/// A CTE computing some of a source's features, joined to the spine on its grain.
struct Part {
    cte_name: String,
    grain: Vec<String>,
}

/// When every aggregate in `expr` is a DISTINCT aggregate over the same arguments, and one
/// of them is not a COUNT, those arguments (as text): such a feature can be computed in a
/// CTE of its own, which DataFusion plans as a cheap two-level aggregation instead of a hash
/// set per group. featurecraft's sessions count distinct values compactly in the source's
/// one scan (`distinct`), so a `COUNT(DISTINCT x)` stays there.
fn distinct_argument(expr: &Expr) -> Option<String> {
    let mut key: Option<String> = None;
    let mut other = false;
    let mut not_count = false;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        if let Expr::Function(f) = e
            && crate::compile::fragment::is_aggregate(f)
        {
            match &f.args {
                FunctionArguments::List(list)
                    if list.duplicate_treatment
                        == Some(sqlparser::ast::DuplicateTreatment::Distinct)
                        && f.filter.is_none() =>
                {
                    let args = list
                        .args
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    if key.as_ref().is_some_and(|k| *k != args) {
                        other = true;
                    }
                    not_count |= function_name(f) != "count";
                    key = Some(args);
                }
                _ => other = true,
            }
        }
        ControlFlow::<()>::Continue(())
    });
    if other || !not_count { None } else { key }
}

/// Adapts a resolved fragment to a dialect: quoted identifiers, cast type names, and an
/// `E040` for each construct the dialect lacks.
fn adapt(
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
                    caps.name
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
        _ => {}
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
            caps.name
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
    Diagnostic::new(Code::E040, format!("{what} cannot be expressed in the {} dialect", caps.name))
        .at(path.clone())
        .with_span(crate::diagnostic::Span::from_sql(span))
        .hint("rewrite the fragment with a portable construct, e.g. `COUNT(CASE WHEN … THEN 1 END)` for a filtered count")
}

fn quoted(name: &str, caps: &Capabilities) -> Ident {
    Ident::with_quote(caps.quote, name)
}

fn table_name(table: &str, caps: &Capabilities) -> ObjectName {
    ObjectName::from(
        table
            .split('.')
            .map(|p| quoted(p, caps))
            .collect::<Vec<_>>(),
    )
}

/// `expr AS "name"`, or just `expr` when it is a column of that very name.
fn aliased(expr: Expr, name: &str, caps: &Capabilities) -> SelectItem {
    let same_name = match &expr {
        Expr::Identifier(ident) => ident.value == name,
        Expr::CompoundIdentifier(parts) => parts.last().is_some_and(|p| p.value == name),
        _ => false,
    };
    if same_name {
        SelectItem::UnnamedExpr(expr)
    } else {
        SelectItem::ExprWithAlias {
            expr,
            alias: quoted(name, caps),
        }
    }
}

fn cte(name: &str, query: Query, caps: &Capabilities) -> Cte {
    Cte {
        alias: TableAlias {
            explicit: false,
            name: quoted(name, caps),
            columns: vec![],
            at: None,
        },
        query: Box::new(query),
        from: None,
        materialized: None,
        closing_paren_token: AttachedToken::empty(),
    }
}

fn table_factor(name: ObjectName) -> TableFactor {
    TableFactor::Table {
        name,
        alias: None,
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    }
}

/// `SELECT items FROM table joins [WHERE filter] [GROUP BY group_by]` as a query.
fn select(
    items: Vec<SelectItem>,
    from: ObjectName,
    joins: Vec<Join>,
    filter: Option<Expr>,
    group_by: Option<Vec<Expr>>,
) -> Query {
    let select = Select {
        select_token: AttachedToken::empty(),
        optimizer_hints: vec![],
        distinct: None,
        select_modifiers: None,
        top: None,
        top_before_distinct: false,
        projection: items,
        exclude: None,
        into: None,
        from: vec![TableWithJoins {
            relation: table_factor(from),
            joins,
        }],
        lateral_views: vec![],
        prewhere: None,
        selection: filter,
        connect_by: vec![],
        group_by: GroupByExpr::Expressions(group_by.unwrap_or_default(), vec![]),
        cluster_by: vec![],
        distribute_by: vec![],
        sort_by: vec![],
        having: None,
        named_window: vec![],
        qualify: None,
        window_before_qualify: false,
        value_table_mode: None,
        flavor: SelectFlavor::Standard,
    };
    Query {
        with: None,
        body: Box::new(SetExpr::Select(Box::new(select))),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: vec![],
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: vec![],
    }
}
