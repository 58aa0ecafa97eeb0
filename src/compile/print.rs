//! Printing SQL the compiler built: featurecraft's escaper writes every literal and
//! identifier, sqlparser's printer only the structure around them, and the text must read
//! back as the statement that was analyzed.
//!
//! sqlparser prints a `Value::Placeholder` and an unquoted `Ident` exactly as they are, so
//! printing first turns each string literal into a placeholder holding the escaper's text
//! and each quoted identifier into a bare one holding it ([`crate::compile::escape`]). Everything
//! else that could carry free text (function names, cast types, date-time fields, number
//! spellings) must already be a bare word or plain keyword text, or printing refuses it.
//! [`statement_text`] then parses the text back in the dialect's grammar and refuses it
//! unless that gives exactly one statement equal to the one analyzed.

use crate::compile::dialect::{Capabilities, Dialect};
use crate::compile::escape::{identifier, string_literal};
use crate::sql::{is_bare_word, is_keyword_text, is_plain_number};
use sqlparser::ast::{
    DataType, DateTimeField, Expr, Ident, ObjectName, ObjectNamePart, Query, Select, SelectItem,
    Statement, Value, ValueWithSpan, VisitMut, VisitorMut,
};
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// Why a statement was not printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrintError {
    /// A literal or name the dialect cannot hold or quote safely (`E041`).
    Unwritable(String),
    /// The text does not read back as the statement (`E042`): a featurecraft bug.
    ReadsBack(String),
}

/// Prints `statement` (already built in `dialect`), with `text` laying out its printable
/// copy, and checks that the text parses back in the dialect to exactly `statement`.
pub fn statement_text(
    statement: &Statement,
    dialect: Dialect,
    text: impl FnOnce(&Statement) -> String,
) -> Result<String, PrintError> {
    let caps = dialect.capabilities();
    let mut printable = statement.clone();
    printable_in_place(&mut printable, &caps).map_err(PrintError::Unwritable)?;
    let sql = text(&printable);
    verify_reads_back(&sql, statement, dialect).map_err(PrintError::ReadsBack)?;
    Ok(sql)
}

/// An expression as text in `dialect`, written by the escaper; for SQL fragments the
/// compiler builds itself (the designer's features). Not checked by reading back: the
/// caller parses it as the fragment it is.
pub fn expression_text(expr: &Expr, dialect: Dialect) -> Result<String, String> {
    let caps = dialect.capabilities();
    let mut printable = expr.clone();
    printable_in_place(&mut printable, &caps)?;
    Ok(printable.to_string())
}

/// Parses `sql` in the dialect's grammar and compares it with `statement`.
fn verify_reads_back(sql: &str, statement: &Statement, dialect: Dialect) -> Result<(), String> {
    let parsed = Parser::parse_sql(dialect.parser_dialect().as_ref(), sql)
        .map_err(|e| format!("the printed SQL does not parse in the {dialect} grammar: {e}"))?;
    match parsed.as_slice() {
        [one] if one == statement => Ok(()),
        [_] => Err(format!(
            "the printed SQL reads back in the {dialect} grammar as another statement than the one analyzed"
        )),
        _ => Err(format!(
            "the printed SQL reads back in the {dialect} grammar as {} statements, not one",
            parsed.len()
        )),
    }
}

/// Rewrites `node` so that sqlparser's printer writes every literal and identifier as the
/// escaper does: strings become placeholders, quoted names bare identifiers holding their
/// quoted text. Refuses what cannot be written safely.
fn printable_in_place<N: VisitMut>(node: &mut N, caps: &Capabilities) -> Result<(), String> {
    let mut printer = Printable { caps };
    match node.visit(&mut printer) {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(why) => Err(why),
    }
}

struct Printable<'a> {
    caps: &'a Capabilities,
}

impl Printable<'_> {
    fn ident(&self, ident: &mut Ident) -> ControlFlow<String> {
        match ident.quote_style {
            Some(_) => match identifier(&ident.value, self.caps) {
                Ok(text) => {
                    ident.value = text;
                    ident.quote_style = None;
                    ControlFlow::Continue(())
                }
                Err(why) => ControlFlow::Break(why),
            },
            None if is_bare_word(&ident.value) => ControlFlow::Continue(()),
            None => ControlFlow::Break(format!(
                "`{}` is neither quoted nor a bare word",
                ident.value.escape_debug()
            )),
        }
    }

    fn name(&self, name: &mut ObjectName) -> ControlFlow<String> {
        for part in &mut name.0 {
            match part {
                ObjectNamePart::Identifier(ident) => self.ident(ident)?,
                ObjectNamePart::Function(_) => {
                    return ControlFlow::Break(format!("the name `{name}` is not a plain name"));
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// A function name must be bare words: quoting one would let it hold anything.
    fn function_name(&self, name: &ObjectName) -> ControlFlow<String> {
        let bare = name.0.iter().all(|part| {
            matches!(part, ObjectNamePart::Identifier(i) if i.quote_style.is_none() && is_bare_word(&i.value))
        });
        if bare {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(format!(
                "the function name `{}` is not a bare word",
                name.to_string().escape_debug()
            ))
        }
    }
}

impl VisitorMut for Printable<'_> {
    type Break = String;

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<String> {
        match &value.value {
            Value::SingleQuotedString(text) => match string_literal(text, self.caps) {
                Ok(written) => {
                    value.value = Value::Placeholder(written);
                    ControlFlow::Continue(())
                }
                Err(why) => ControlFlow::Break(why),
            },
            Value::Number(text, false) if is_plain_number(text) => ControlFlow::Continue(()),
            Value::Boolean(_) | Value::Null => ControlFlow::Continue(()),
            other => ControlFlow::Break(format!(
                "the literal `{}` is not one featurecraft writes",
                other.to_string().escape_debug()
            )),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<String> {
        match expr {
            Expr::Identifier(ident) => self.ident(ident),
            Expr::CompoundIdentifier(parts) => {
                for part in parts {
                    self.ident(part)?;
                }
                ControlFlow::Continue(())
            }
            Expr::Function(function) => self.function_name(&function.name),
            Expr::Cast { data_type, .. } => plain_type(data_type),
            Expr::TypedString(typed) => plain_type(&typed.data_type),
            Expr::Extract { field, .. } => plain_field(field),
            Expr::Interval(interval) => {
                for field in [&interval.leading_field, &interval.last_field]
                    .into_iter()
                    .flatten()
                {
                    plain_field(field)?;
                }
                ControlFlow::Continue(())
            }
            _ => ControlFlow::Continue(()),
        }
    }

    /// Table names in FROM and joins, and the name a CREATE TABLE creates.
    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> ControlFlow<String> {
        self.name(relation)
    }

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<String> {
        if let Some(with) = &mut query.with {
            for cte in &mut with.cte_tables {
                self.ident(&mut cte.alias.name)?;
                for column in &mut cte.alias.columns {
                    self.ident(&mut column.name)?;
                }
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> ControlFlow<String> {
        for item in &mut select.projection {
            if let SelectItem::ExprWithAlias { alias, .. } = item {
                self.ident(alias)?;
            }
        }
        ControlFlow::Continue(())
    }
}

fn plain_type(data_type: &DataType) -> ControlFlow<String> {
    let text = data_type.to_string();
    if is_keyword_text(&text) {
        ControlFlow::Continue(())
    } else {
        ControlFlow::Break(format!(
            "the type `{}` is not a plain type name",
            text.escape_debug()
        ))
    }
}

fn plain_field(field: &DateTimeField) -> ControlFlow<String> {
    let text = field.to_string();
    if is_keyword_text(&text) {
        ControlFlow::Continue(())
    } else {
        ControlFlow::Break(format!(
            "the date-time field `{}` is not a plain keyword",
            text.escape_debug()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_numbers() {
        for ok in ["1", "10.5", ".5", "5.", "1e10", "1.5E-3"] {
            assert!(is_plain_number(ok), "{ok}");
        }
        for bad in ["", ".", "1_000", "0x1F", "1e", "1..2", "- 1", "1;"] {
            assert!(!is_plain_number(bad), "{bad}");
        }
    }

    #[test]
    fn a_literal_is_written_by_the_escaper() {
        let expr = Expr::value(Value::SingleQuotedString("\\' OR 1=1 --".into()));
        assert_eq!(
            expression_text(&expr, Dialect::Postgres).unwrap(),
            "'\\'' OR 1=1 --'"
        );
        assert_eq!(
            expression_text(&expr, Dialect::Snowflake).unwrap(),
            "'\\\\\\' OR 1=1 --'"
        );
    }
}
