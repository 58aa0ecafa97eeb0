//! Derived columns: each row of a table aggregates its child rows, so that features can
//! aggregate those values again (stacked aggregates, Deep Feature Synthesis at depth 2).
//!
//! `{"table": "sessions", "name": "spend", "source_table": "transactions",
//! "expression": "SUM(amount)"}` gives `sessions` a column `spend`: the sum of the amounts
//! of the transactions whose `session_id` is the session's (the recipe's relationship
//! `transactions.session_id → sessions.session_id`). A feature then reads it like any
//! column of `sessions`: `AVG(spend)` is "the average spend per session". The SQL computes
//! it as two GROUP BYs: the child grouped by its link column, `LEFT JOIN`ed to every row of
//! the table, where a row without children takes the aggregate over no rows (a count is 0,
//! anything else NULL). The table is then read through that CTE wherever the recipe reads it.
//! In a point-in-time recipe the child aggregates are computed per (entity, cutoff) pair
//! instead, over the child's rows before the cutoff, and joined to the table's timed rows.

use super::{Analyzer, Role};
use crate::catalog::{Column, Table};
use crate::compile::fragment;
use crate::compile::point_in_time::SourceTime;
use crate::compile::relationships::Link;
use crate::contract::recipe::FeatureRecipe;
use crate::diagnostic::{Code, Diagnostic, RecipePath};
use crate::types::TypeFamily;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use sqlparser::ast::Expr;

/// A table read through a CTE that adds its derived columns.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedTable {
    /// The table, as the catalog spells it.
    pub table: String,
    /// The CTE that stands for it: its own columns, then the derived ones.
    pub cte_name: String,
    /// Its own columns, in catalog order.
    pub columns: Vec<String>,
    /// One grouped CTE per child table it aggregates.
    pub children: Vec<DerivedChild>,
}

/// The derived columns a table takes from one child table.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedChild {
    /// The child table, as the catalog spells it.
    pub table: String,
    /// The child's column pointing at the parent.
    pub column: String,
    /// The parent's key it points at.
    pub key: String,
    /// The CTE of the child grouped by `column`.
    pub cte_name: String,
    /// The aggregates computed per parent row.
    pub values: Vec<DerivedValue>,
    /// In a point-in-time plan, the child's time column: only its rows before each
    /// cutoff count. `None` for a child declared static (or in a plan without cutoffs).
    pub time: Option<SourceTime>,
}

impl DerivedChild {
    /// The name of the link column in the child's grouped CTE: the child's own column name
    /// (`session_id`), or `…_link` (`_link_2`, …) when one of its values is named so.
    pub fn link_name(&self) -> String {
        let taken = |name: &str| {
            self.values
                .iter()
                .any(|v| v.name.eq_ignore_ascii_case(name))
        };
        if !taken(&self.column) {
            return self.column.clone();
        }
        crate::sql::fresh_name(&format!("{}_link", self.column), taken)
    }
}

/// One derived column.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedValue {
    /// The column's name.
    pub name: String,
    /// The recipe path of its expression, for diagnostics at render time.
    pub path: RecipePath,
    /// The aggregate over the child's rows, resolved to the catalog's spelling.
    pub expr: Expr,
    /// Its value for a parent row without child rows; `None` when that is NULL.
    pub empty_value: Option<Expr>,
}

/// The recipe path of a field of `derived_columns[i]`.
fn at(i: usize, field: &str) -> RecipePath {
    RecipePath::DerivedColumn(i, Some(field.to_string()))
}

impl<'c> Analyzer<'c> {
    /// Checks the recipe's derived columns and plans them. Returns the tables that gain
    /// columns, as the features will see them (own columns, then the derived ones), and
    /// how each is computed; every problem is an error at its `derived_columns[i]` path.
    pub(super) fn derive(
        &mut self,
        recipe: &FeatureRecipe,
        links: &[Link],
    ) -> (Vec<Table>, Vec<DerivedTable>) {
        let mut tables: Vec<Table> = Vec::new();
        let mut derived: Vec<DerivedTable> = Vec::new();
        let mut cte_names: Vec<String> = Vec::new();
        for (i, d) in recipe.derived_columns.iter().enumerate() {
            let table = self.resolve_table(&d.table, &at(i, "table"));
            let child = self.resolve_table(&d.source_table, &at(i, "source_table"));
            if let Some(problem) = super::name_problem(&d.name) {
                self.push(
                    Diagnostic::new(Code::E028, format!("derived column name {problem}"))
                        .at(at(i, "name")),
                );
                continue;
            }
            let (Some(table), Some(child)) = (table, child) else {
                continue;
            };
            if table.name.eq_ignore_ascii_case(&child.name) {
                self.push(
                    Diagnostic::new(
                        Code::E028,
                        format!("derived column `{}` aggregates its own table", d.name),
                    )
                    .at(at(i, "source_table")),
                );
                continue;
            }
            let existing = tables
                .iter()
                .find(|t| t.name == table.name)
                .unwrap_or(table);
            if existing.column(&d.name).is_some() {
                self.push(
                    Diagnostic::new(
                        Code::E028,
                        format!("`{}` already has a column `{}`", table.name, d.name),
                    )
                    .at(at(i, "name")),
                );
                continue;
            }
            // The column exists from here on, so that a feature reading it is not also
            // reported when the column itself is wrong; its type is set once it checks.
            let grown = match tables.iter().position(|t| t.name == table.name) {
                Some(n) => &mut tables[n],
                None => {
                    tables.push(table.clone());
                    tables.last_mut().expect("just pushed")
                }
            };
            grown.columns.push(Column {
                name: d.name.clone(),
                data_type: DataType::Null,
                nullable: true,
            });
            let column = grown.columns.len() - 1;
            let Some(link) = self.the_link(links, child, table, i) else {
                continue;
            };
            let path = at(i, "expression");
            let mut expr = match fragment::parse_fragment(&d.expression, path.clone()) {
                Ok(expr) => expr,
                Err(diagnostic) => {
                    self.push(diagnostic);
                    continue;
                }
            };
            // Against the child's own columns: a derived column of the child is not there
            // (no stacking deeper than two aggregates).
            let Some(found) = self.resolve_fragment(child, &mut expr, &[], &path, Role::Feature)
            else {
                continue;
            };
            if !found.facts.aggregates {
                self.push(
                    Diagnostic::new(
                        Code::E028,
                        format!(
                            "derived column `{}` must aggregate the rows of `{}` (e.g. `SUM(col)`, `COUNT(*)`)",
                            d.name, child.name
                        ),
                    )
                    .at(path),
                );
                continue;
            }
            let expr = crate::compile::infer::make_portable(expr, child);
            let data_type = derived_type(&expr, child);
            let empty_value = fragment::empty_set_value(&expr, &|_| None);

            if let Some(grown) = tables.iter_mut().find(|t| t.name == table.name) {
                grown.columns[column].data_type = data_type;
            }
            let value = DerivedValue {
                name: d.name.clone(),
                path,
                expr,
                empty_value,
            };
            add_derived_value(&mut derived, &mut cte_names, table, child, link, value);
        }
        (tables, derived)
    }

    /// The one relationship linking `child` rows to a `table` row (`E028` at the derived
    /// column's `source_table` when there is none, or several).
    fn the_link<'l>(
        &mut self,
        links: &'l [Link],
        child: &Table,
        table: &Table,
        i: usize,
    ) -> Option<&'l Link> {
        let found: Vec<&Link> = links
            .iter()
            .filter(|l| l.child_table == child.name && l.parent_table == table.name)
            .collect();
        match found.as_slice() {
            [one] => Some(*one),
            [] => {
                self.push(
                    Diagnostic::new(
                        Code::E028,
                        format!(
                            "no relationship links `{}` to `{}`: the rows to aggregate per `{}` row are not known",
                            child.name, table.name, table.name
                        ),
                    )
                    .at(at(i, "source_table"))
                    .hint(format!(
                        "declare it in `relationships`, e.g. {{\"child\": \"{}.<column>\", \"parent\": \"{}.<key>\"}}",
                        child.name, table.name
                    )),
                );
                None
            }
            several => {
                let shown: Vec<String> = several
                    .iter()
                    .map(|l| format!("{}.{}", l.child_table, l.child_column))
                    .collect();
                self.push(
                    Diagnostic::new(
                        Code::E028,
                        format!(
                            "`{}` is linked to `{}` by several relationships ({}): which rows belong to a `{}` row is ambiguous",
                            child.name,
                            table.name,
                            shown.join(", "),
                            table.name
                        ),
                    )
                    .at(at(i, "source_table"))
                    .hint("keep one relationship between the two tables"),
                );
                None
            }
        }
    }
}

/// Adds a checked derived column's value to its table's plan: the table and each child it
/// aggregates get their CTE on first use.
fn add_derived_value(
    derived: &mut Vec<DerivedTable>,
    cte_names: &mut Vec<String>,
    table: &Table,
    child: &Table,
    link: &Link,
    value: DerivedValue,
) {
    let index = match derived.iter().position(|t| t.table == table.name) {
        Some(index) => index,
        None => {
            derived.push(DerivedTable {
                table: table.name.clone(),
                cte_name: fresh_cte_name(&[&table.name], cte_names),
                columns: table.columns.iter().map(|c| c.name.clone()).collect(),
                children: Vec::new(),
            });
            derived.len() - 1
        }
    };
    let children = &mut derived[index].children;
    let group = match children.iter().position(|c| c.table == child.name) {
        Some(k) => k,
        None => {
            children.push(DerivedChild {
                table: child.name.clone(),
                column: link.child_column.clone(),
                key: link.parent_column.clone(),
                cte_name: fresh_cte_name(&[&table.name, &child.name], cte_names),
                values: Vec::new(),
                time: None,
            });
            children.len() - 1
        }
    };
    children[group].values.push(value);
}

impl Analyzer<'_> {
    /// In a point-in-time plan, each table with derived columns must be read as a source
    /// with its own time column and no path (`E028`): its rows' child aggregates are then
    /// computed per (entity, cutoff) pair, over the child's rows before the cutoff. A child
    /// neither timed nor declared static is `W012` (an error in strict mode), as any
    /// source the cutoff does not bound. Sets each child's time column.
    pub(super) fn check_derived_in_time(
        &mut self,
        recipe: &FeatureRecipe,
        plan: &mut super::Plan,
        strict: bool,
    ) {
        let Some(pit) = &recipe.point_in_time else {
            return;
        };
        for table in &mut plan.derived {
            let index = recipe
                .derived_columns
                .iter()
                .position(|d| d.table.trim().eq_ignore_ascii_case(&table.table))
                .unwrap_or(0);
            let on_spine = plan.spine.table == table.table;
            let read_untimed = plan
                .sources
                .iter()
                .any(|s| s.table == table.table && (s.time.is_none() || !s.path.is_empty()));
            if on_spine || read_untimed {
                self.push(
                    Diagnostic::new(
                        Code::E028,
                        format!(
                            "in a point-in-time recipe, derived columns need their table `{}` read with its own time column{}",
                            table.table,
                            if on_spine { ", not as the spine" } else { " and not through a relationship" }
                        ),
                    )
                    .at(at(index, "table"))
                    .hint(format!(
                        "give `{}` a time column in `point_in_time.time_columns`",
                        table.table
                    )),
                );
                continue;
            }
            for child in &mut table.children {
                let first = recipe
                    .derived_columns
                    .iter()
                    .position(|d| d.source_table.trim().eq_ignore_ascii_case(&child.table))
                    .unwrap_or(index);
                match pit.time_columns.get(&child.table) {
                    Some(Some(column)) => {
                        child.time = self
                            .catalog
                            .table(&child.table)
                            .and_then(|t| t.column(column))
                            .and_then(|c| {
                                crate::compile::point_in_time::TimeType::of(&c.data_type).map(
                                    |time_type| SourceTime {
                                        column: c.name.clone(),
                                        time_type,
                                        tie_break: Vec::new(),
                                    },
                                )
                            });
                    }
                    Some(None) => {}
                    None => {
                        let mut d = Diagnostic::new(
                            Code::W012,
                            format!(
                                "derived columns aggregate `{}`, which is not bounded by the cutoff: it has no time column in `point_in_time.time_columns`, so its rows after a row's cutoff count too and may leak",
                                child.table
                            ),
                        )
                        .at(at(first, "source_table"))
                        .hint(format!(
                            "declare its time column (`\"{}\": \"<column>\"`), or `null` if its rows do not change over time",
                            child.table
                        ));
                        if strict {
                            d.severity = crate::diagnostic::Severity::Error;
                        }
                        self.push(d);
                    }
                }
            }
        }
    }
}

/// A CTE name `derived_…` (apart from the `src_…` source CTEs, the spine and the
/// cutoffs) built from table names, not yet in `taken`; recorded there.
fn fresh_cte_name(tables: &[&str], taken: &mut Vec<String>) -> String {
    let mut base = String::from(crate::compile::cte::DERIVED_PREFIX);
    for table in tables {
        base.push('_');
        base.extend(table.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        }));
    }
    let name = crate::sql::fresh_name(&base, |key| {
        taken.iter().any(|t| t.eq_ignore_ascii_case(key))
    });
    taken.push(name.clone());
    name
}

/// The Arrow type a derived column is typed with at compile time: that of a column of the
/// same family it reads when there is one (a sum of decimals keeps their scale), else the
/// family's usual type. Validation reports the exact type the engine computed.
fn derived_type(expr: &Expr, child: &Table) -> DataType {
    let Some(family) = crate::compile::infer::family_of(expr, child) else {
        return DataType::Null;
    };
    let read = fragment::inspect(expr).columns;
    if let Some(column) = read
        .iter()
        .filter_map(|c| child.column(&c.name))
        .find(|c| TypeFamily::of(&c.data_type) == family)
    {
        return column.data_type.clone();
    }
    match family {
        TypeFamily::Integer => DataType::Int64,
        TypeFamily::Float => DataType::Float64,
        TypeFamily::Decimal => DataType::Decimal128(38, 10),
        TypeFamily::String => DataType::Utf8,
        TypeFamily::Boolean => DataType::Boolean,
        TypeFamily::Date => DataType::Date32,
        TypeFamily::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        TypeFamily::Other => DataType::Null,
    }
}
