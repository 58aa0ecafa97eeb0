//! The names the crew gives: feature and derived column names that are unique, lower case
//! and SQL-safe, and column references quoted only when they must be.

use sqlparser::ast::{Expr, Ident};

/// Unique, valid output names (`[a-z_][a-z0-9_]*`, at most 128 characters).
#[derive(Default)]
pub struct Names {
    used: std::collections::HashSet<String>,
}

impl Names {
    /// Marks `name` as taken (a column the table already has).
    pub fn reserve(&mut self, name: &str) {
        self.used.insert(name.to_ascii_lowercase());
    }

    /// `wanted` made valid and unique (`_2`, `_3`, … when taken).
    pub fn claim(&mut self, wanted: String) -> String {
        let mut base = wanted;
        if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
            base = format!("f_{base}");
        }
        // Cut at a character boundary (a wanted name is ASCII, but never panic on one).
        let cut = base.char_indices().nth(120).map_or(base.len(), |(i, _)| i);
        base.truncate(cut);
        let name = crate::sql::fresh_name(&base, |key| self.used.contains(key));
        self.used.insert(name.to_ascii_lowercase());
        name
    }
}

/// Lower case, anything but letters and digits as one `_`.
pub fn sanitize(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// A column reference, quoted only when it must be (not a plain lower-case name, or a keyword).
pub fn column_expr(name: &str) -> Expr {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    let keyword = sqlparser::keywords::ALL_KEYWORDS
        .binary_search(&name.to_ascii_uppercase().as_str())
        .is_ok();
    if plain && !keyword {
        Expr::Identifier(Ident::new(name))
    } else {
        Expr::Identifier(Ident::with_quote('"', name))
    }
}
