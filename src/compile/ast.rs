//! Small builders for the query AST the renderer writes: quoted names, CTEs, selects.

use crate::compile::dialect::Capabilities;
use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{
    Cte, Expr, GroupByExpr, Ident, Join, ObjectName, Query, Select, SelectFlavor, SelectItem,
    SetExpr, TableAlias, TableFactor, TableWithJoins,
};

/// `"alias"."column"`.
pub(crate) fn column_of(alias: &str, column: &str, caps: &Capabilities) -> Expr {
    Expr::CompoundIdentifier(vec![quoted(alias, caps), quoted(column, caps)])
}

/// `expr` with every bare column read from `alias` (`"s"."x"`), for a query that joins.
pub(crate) fn qualified(expr: &Expr, alias: &str, caps: &Capabilities) -> Expr {
    let mut expr = expr.clone();
    let _ = sqlparser::ast::visit_expressions_mut(&mut expr, |e| {
        if let Expr::Identifier(ident) = e {
            *e = column_of(alias, &ident.value, caps);
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    expr
}

/// A name as a quoted identifier of the dialect (the escaper writes it when printing).
pub(crate) fn quoted(name: &str, caps: &Capabilities) -> Ident {
    Ident::with_quote(caps.quote, name)
}

/// A catalog table name (`domain.table`) as a quoted object name.
pub(crate) fn table_name(table: &str, caps: &Capabilities) -> ObjectName {
    ObjectName::from(
        table
            .split('.')
            .map(|p| quoted(p, caps))
            .collect::<Vec<_>>(),
    )
}

/// `expr AS "name"`, or just `expr` when it is a column of that very name.
pub(crate) fn aliased(expr: Expr, name: &str, caps: &Capabilities) -> SelectItem {
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

/// `CASE WHEN marker IS NULL THEN empty ELSE value END`: a value read through a `LEFT JOIN`,
/// or its value over no rows where the join found no row (`marker` is NULL).
pub(crate) fn unless_unmatched(marker: Expr, empty: Expr, value: Expr) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![sqlparser::ast::CaseWhen {
            condition: Expr::IsNull(Box::new(marker)),
            result: empty,
        }],
        else_result: Some(Box::new(value)),
    }
}

/// `"name" AS (query)`.
pub(crate) fn cte(name: &str, query: Query, caps: &Capabilities) -> Cte {
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

/// A table in FROM or a join under an alias: `"events" AS "s"`.
pub(crate) fn aliased_table(name: ObjectName, alias: &str, caps: &Capabilities) -> TableFactor {
    let mut factor = table_factor(name);
    if let TableFactor::Table { alias: slot, .. } = &mut factor {
        *slot = Some(TableAlias {
            explicit: true,
            name: quoted(alias, caps),
            columns: vec![],
            at: None,
        });
    }
    factor
}

/// A table in FROM or a join, without an alias.
pub(crate) fn table_factor(name: ObjectName) -> TableFactor {
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
pub(crate) fn select(
    items: Vec<SelectItem>,
    from: TableFactor,
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
            relation: from,
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
