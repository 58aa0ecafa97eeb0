//! The crew's aggregate primitives, and depth 2: aggregates over a table's rows of their
//! child rows' aggregates (`MEAN(sessions.SUM(transactions.amount))`, "the average spend
//! per session"), proposed as the recipe's derived columns and features over them.
//!
//! Primitives carry Featuretools' names (`count`, `sum`, `mean`, `max`, `min`, `std`,
//! `num_unique`), so a design can be set up, and its features read, the way Deep Feature
//! Synthesis users know them. At depth 2 every child value (`COUNT(*)`, each measure's
//! `SUM`/`MEAN`/`MAX`/`MIN`/`STD`, each category's `NUM_UNIQUE`) is aggregated per entity
//! by `SUM`, `MEAN`, `MAX`, `MIN` and `STD`, except where the stack equals a depth-1
//! feature (`SUM` of a `COUNT` or a `SUM`, `MAX` of a `MAX`, `MIN` of a `MIN`), as
//! Featuretools does.

use crate::diagnostic::{Code, Diagnostic, RecipePath, did_you_mean, suggestions};
use crate::sql::call;
use sqlparser::ast::{DuplicateTreatment, Expr, FunctionArg, FunctionArgExpr, FunctionArguments};

/// An aggregate the crew may propose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Primitive {
    /// Rows (`COUNT(*)`).
    Count,
    /// `SUM` of a measure.
    Sum,
    /// `AVG` of a measure.
    Mean,
    /// `MAX` of a measure.
    Max,
    /// `MIN` of a measure.
    Min,
    /// `STDDEV_SAMP` of a measure (the sample standard deviation, as pandas' `std`).
    Std,
    /// `COUNT(DISTINCT …)` of a category.
    NumUnique,
}

impl Primitive {
    /// Every primitive, in the order the crew proposes them.
    pub const ALL: [Primitive; 7] = [
        Primitive::Count,
        Primitive::Sum,
        Primitive::Mean,
        Primitive::Min,
        Primitive::Max,
        Primitive::Std,
        Primitive::NumUnique,
    ];

    /// The aggregates of a measure, in the order the crew proposes them.
    pub const MEASURE: [Primitive; 5] = [
        Primitive::Sum,
        Primitive::Mean,
        Primitive::Min,
        Primitive::Max,
        Primitive::Std,
    ];

    /// Its name in a request and in `--primitives` (Featuretools' spelling, lower case).
    pub fn name(self) -> &'static str {
        match self {
            Primitive::Count => "count",
            Primitive::Sum => "sum",
            Primitive::Mean => "mean",
            Primitive::Max => "max",
            Primitive::Min => "min",
            Primitive::Std => "std",
            Primitive::NumUnique => "num_unique",
        }
    }

    /// The start of a feature's name (`sum_orders_amount`, `avg_…`, `n_distinct_…`).
    pub fn prefix(self) -> &'static str {
        match self {
            Primitive::Mean => "avg",
            Primitive::Std => "stddev",
            Primitive::NumUnique => "n_distinct",
            other => other.name(),
        }
    }

    /// The SQL function it calls.
    pub fn sql(self) -> &'static str {
        match self {
            Primitive::Count | Primitive::NumUnique => "COUNT",
            Primitive::Sum => "SUM",
            Primitive::Mean => "AVG",
            Primitive::Max => "MAX",
            Primitive::Min => "MIN",
            Primitive::Std => "STDDEV_SAMP",
        }
    }

    /// The primitive applied to `column` (`COUNT(*)` for `Count`, which takes none).
    pub fn of(self, column: Option<Expr>) -> Expr {
        match (self, column) {
            (Primitive::Count, _) | (_, None) => count_star(),
            (Primitive::NumUnique, Some(c)) => count_distinct(c),
            (other, Some(c)) => call(other.sql(), vec![c]),
        }
    }
}

/// The primitives a design proposes.
#[derive(Debug, Clone, PartialEq)]
pub struct Primitives(Vec<Primitive>);

impl Primitives {
    /// The request's primitives by name; every one when the list is empty. An unknown
    /// name is an error at `design.primitives[i]`.
    pub fn parse(names: &[String]) -> Result<Primitives, Vec<Diagnostic>> {
        if names.is_empty() {
            return Ok(Primitives(Primitive::ALL.to_vec()));
        }
        let mut chosen = Vec::new();
        let mut problems = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let wanted = name.trim().to_ascii_lowercase();
            match Primitive::ALL.iter().find(|p| p.name() == wanted) {
                Some(p) if !chosen.contains(p) => chosen.push(*p),
                Some(_) => {}
                None => {
                    let known = Primitive::ALL.map(Primitive::name);
                    problems.push(
                        Diagnostic::new(
                            Code::E001,
                            format!(
                                "unknown primitive `{}`; the crew knows {}",
                                crate::compile::analyze::shown_name(name),
                                known.join(", ")
                            ),
                        )
                        .at(RecipePath::design(RecipePath::ListItem("primitives", i)))
                        .hints(did_you_mean(&suggestions(&wanted, known.iter().copied()))),
                    );
                }
            }
        }
        if problems.is_empty() {
            Ok(Primitives(chosen))
        } else {
            Err(problems)
        }
    }

    /// Whether the design proposes `p`.
    pub fn has(&self, p: Primitive) -> bool {
        self.0.contains(&p)
    }
}

/// How a child column is aggregated per parent row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildColumn {
    /// A number: `SUM`, `MEAN`, `MIN`, `MAX`, `STD`.
    Measure,
    /// A category (low-cardinality text or key): `NUM_UNIQUE`.
    Category,
}

/// A value computed per parent row from its child rows: a derived column of the recipe.
#[derive(Debug, Clone)]
pub struct ChildValue {
    /// The derived column's name in the parent (`sum_transactions_amount`).
    pub name: String,
    /// Its aggregate over the child's rows.
    pub expr: Expr,
    /// The primitive it applies.
    pub inner: Primitive,
    /// Its Featuretools name (`SUM(transactions.amount)`, `COUNT(transactions)`).
    pub shown: String,
}

/// The values of `child` per parent row: its row count, then each column's aggregates.
/// `columns` are (name, how it is aggregated, the column as an expression), already
/// chosen by the caller (no identifiers, keys, grain or label columns).
pub fn child_values(
    child: &str,
    columns: &[(String, ChildColumn, Expr)],
    primitives: &Primitives,
) -> Vec<ChildValue> {
    let short = super::names::sanitize(child);
    let mut out = Vec::new();
    if primitives.has(Primitive::Count) {
        out.push(ChildValue {
            name: format!("count_{short}"),
            expr: count_star(),
            inner: Primitive::Count,
            shown: format!("COUNT({child})"),
        });
    }
    for (column, kind, expr) in columns {
        let applied: &[Primitive] = match kind {
            ChildColumn::Measure => &Primitive::MEASURE,
            ChildColumn::Category => &[Primitive::NumUnique],
        };
        for p in applied.iter().filter(|p| primitives.has(**p)) {
            out.push(ChildValue {
                name: format!("{}_{short}_{}", p.prefix(), super::names::sanitize(column)),
                expr: p.of(Some(expr.clone())),
                inner: *p,
                shown: format!("{}({child}.{column})", p.name().to_ascii_uppercase()),
            });
        }
    }
    out
}

/// The features over one derived column of `parent` (its name there is `column`): each
/// measure primitive applied to it, except a stack that equals a depth-1 feature.
/// Returns (feature name, expression, description: the Featuretools name).
pub fn stacked_features(
    parent: &str,
    value: &ChildValue,
    column: &str,
    primitives: &Primitives,
) -> Vec<(String, Expr, String)> {
    let short = super::names::sanitize(parent);
    let redundant = |outer: Primitive| {
        matches!(
            (outer, value.inner),
            (Primitive::Sum, Primitive::Count | Primitive::Sum)
                | (Primitive::Max, Primitive::Max)
                | (Primitive::Min, Primitive::Min)
        )
    };
    Primitive::MEASURE
        .iter()
        .filter(|p| primitives.has(**p) && !redundant(**p))
        .map(|outer| {
            (
                format!("{}_{short}_{column}", outer.prefix()),
                outer.of(Some(super::names::column_expr(column))),
                format!(
                    "{}({parent}.{})",
                    outer.name().to_ascii_uppercase(),
                    value.shown
                ),
            )
        })
        .collect()
}

/// `COUNT(*)`.
pub fn count_star() -> Expr {
    let mut expr = call("COUNT", vec![]);
    if let Expr::Function(f) = &mut expr
        && let FunctionArguments::List(list) = &mut f.args
    {
        list.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Wildcard)];
    }
    expr
}

/// `COUNT(DISTINCT column)`.
pub fn count_distinct(column: Expr) -> Expr {
    let mut expr = call("COUNT", vec![column]);
    if let Expr::Function(f) = &mut expr
        && let FunctionArguments::List(list) = &mut f.args
    {
        list.duplicate_treatment = Some(DuplicateTreatment::Distinct);
    }
    expr
}
