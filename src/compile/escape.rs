//! featurecraft's own escaper: how each dialect writes a string literal and a quoted
//! identifier.
//!
//! sqlparser's printer cannot be trusted with user text: it leaves a quote that follows a
//! backslash undoubled (`'\''` prints as `'\'`), prints an already doubled quote as it is,
//! and knows nothing of engines where a backslash escapes (Snowflake, BigQuery, Spark).
//! Every literal and identifier featurecraft prints is written here instead, from the
//! dialect's row of the capability table, or refused with the reason when the dialect
//! cannot hold it (a NUL byte anywhere; a backtick in a BigQuery name).

use crate::compile::dialect::{Capabilities, IdentifierEscapes, StringEscapes};

/// `value` as a string literal of the dialect, quotes included; `Err` says why it cannot be.
pub fn string_literal(value: &str, caps: &Capabilities) -> Result<String, String> {
    if value.contains('\0') {
        return Err("a NUL character cannot be held by a SQL string in every engine".into());
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    match caps.string_escapes {
        StringEscapes::QuoteDoubling => {
            for c in value.chars() {
                if c == '\'' {
                    out.push('\'');
                }
                out.push(c);
            }
        }
        StringEscapes::Backslash { escape_controls } => {
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\'' => out.push_str("\\'"),
                    '\n' if escape_controls => out.push_str("\\n"),
                    '\r' if escape_controls => out.push_str("\\r"),
                    '\t' if escape_controls => out.push_str("\\t"),
                    '\u{7}' if escape_controls => out.push_str("\\a"),
                    '\u{8}' if escape_controls => out.push_str("\\b"),
                    '\u{c}' if escape_controls => out.push_str("\\f"),
                    c if escape_controls && c.is_ascii_control() => {
                        return Err(format!(
                            "the control character U+{:04X} cannot be written in a {} string",
                            c as u32,
                            caps.dialect.name()
                        ));
                    }
                    c => out.push(c),
                }
            }
        }
        StringEscapes::CharCodes => {
            if let Some(c) = value.chars().find(|c| matches!(c, '\'' | '\\')) {
                return Err(format!(
                    "`{c}` cannot be written inside a {} string literal: the engine reads a backslash as an escape and `''` as two literals",
                    caps.dialect.name()
                ));
            }
            out.push_str(value);
        }
    }
    out.push('\'');
    Ok(out)
}

/// `name` as a quoted identifier of the dialect, quotes included; `Err` says why it cannot be.
pub fn identifier(name: &str, caps: &Capabilities) -> Result<String, String> {
    if name.is_empty() {
        return Err("an empty name cannot be quoted".into());
    }
    if name.contains('\0') {
        return Err("a NUL character cannot be part of a name".into());
    }
    let quote = caps.quote;
    let mut out = String::with_capacity(name.len() + 2);
    out.push(quote);
    match caps.identifier_escapes {
        IdentifierEscapes::QuoteDoubling => {
            for c in name.chars() {
                if c == quote {
                    out.push(quote);
                }
                out.push(c);
            }
        }
        IdentifierEscapes::Refused => {
            if let Some(c) = name
                .chars()
                .find(|c| *c == quote || *c == '\\' || c.is_control())
            {
                return Err(format!(
                    "the name `{}` holds {}, which a {} quoted name cannot hold",
                    name.escape_debug(),
                    match c {
                        '\\' => "a backslash".to_string(),
                        c if c == quote => format!("a `{c}`"),
                        c => format!("the control character U+{:04X}", c as u32),
                    },
                    caps.dialect.name()
                ));
            }
            out.push_str(name);
        }
    }
    out.push(quote);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::dialect::Dialect;

    fn literal(value: &str, dialect: Dialect) -> Result<String, String> {
        string_literal(value, &dialect.capabilities())
    }

    #[test]
    fn a_quote_after_a_backslash_is_doubled_where_backslashes_are_plain() {
        for dialect in [
            Dialect::Generic,
            Dialect::DataFusion,
            Dialect::DuckDb,
            Dialect::Postgres,
        ] {
            assert_eq!(literal("\\'", dialect).unwrap(), "'\\'''");
            assert_eq!(literal("a''b", dialect).unwrap(), "'a''''b'");
        }
    }

    #[test]
    fn backslash_engines_escape_the_backslash_too() {
        assert_eq!(literal("\\' x", Dialect::Snowflake).unwrap(), "'\\\\\\' x'");
        assert_eq!(literal("a\nb", Dialect::Snowflake).unwrap(), "'a\nb'");
        assert_eq!(literal("a\nb", Dialect::BigQuery).unwrap(), "'a\\nb'");
        assert!(literal("\u{1}", Dialect::BigQuery).is_err());
    }

    #[test]
    fn spark_strings_with_quotes_or_backslashes_are_refused_here() {
        assert_eq!(literal("plain", Dialect::Databricks).unwrap(), "'plain'");
        assert!(literal("it's", Dialect::Databricks).is_err());
        assert!(literal("a\\b", Dialect::Databricks).is_err());
    }

    #[test]
    fn nul_is_refused_everywhere() {
        for dialect in Dialect::ALL {
            assert!(literal("a\0b", dialect).is_err(), "{dialect}");
            assert!(
                identifier("a\0b", &dialect.capabilities()).is_err(),
                "{dialect}"
            );
        }
    }

    #[test]
    fn identifiers_double_their_quote_or_are_refused() {
        let caps = Dialect::Postgres.capabilities();
        assert_eq!(identifier("a\"b", &caps).unwrap(), "\"a\"\"b\"");
        let caps = Dialect::Databricks.capabilities();
        assert_eq!(identifier("a`b", &caps).unwrap(), "`a``b`");
        let caps = Dialect::BigQuery.capabilities();
        assert_eq!(identifier("a b", &caps).unwrap(), "`a b`");
        assert!(identifier("a`b", &caps).is_err());
        assert!(identifier("a\\b", &caps).is_err());
    }
}
