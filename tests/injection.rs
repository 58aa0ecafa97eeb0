//! Injection attempts: whatever a recipe or a catalog holds, the printed CTAS is exactly one
//! statement equal to the one analyzed, in every dialect, or the recipe is refused.
//!
//! The recipes under `fixtures/recipes/attacks/` are also run in DuckDB and PostgreSQL by
//! tests/dialects.rs, which checks that no other table was touched.

mod common;

use featurecraft::compile::render::reparse;
use featurecraft::{Catalog, Code, CompileOptions, Compiled, Dialect, compile};
use proptest::prelude::*;
use sqlparser::ast::{Expr, Value, Visit, Visitor};
use std::ops::ControlFlow;

/// A recipe over the retail catalog with one feature of `expression` on `table`.
fn recipe(expression: &str, table: &str) -> String {
    serde_json::json!({
        "target_table": "t",
        "entity_grain": ["customer_id"],
        "label": {"name": "churned", "column": "churned_at",
                  "derivation": "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END"},
        "features": [{"name": "f", "expression": expression, "source_table": table}]
    })
    .to_string()
}

/// The invariant: refused with an error and no SQL, or SQL that reads back in its dialect
/// as exactly one statement, the analyzed one. Returns whether it compiled.
fn refused_or_exact(compiled: &Compiled, dialect: Dialect, what: &str) -> bool {
    match &compiled.sql {
        None => {
            assert!(
                compiled.has_errors(),
                "{what} in {dialect}: no SQL and no error"
            );
            false
        }
        Some(sql) => {
            let plan = compiled.plan.as_ref().expect("a plan with the SQL");
            let rendered = featurecraft::render(plan, dialect).expect("renders again");
            let parsed = reparse(sql, dialect)
                .unwrap_or_else(|e| panic!("{what} in {dialect} does not parse back: {e}\n{sql}"));
            assert_eq!(
                parsed,
                vec![rendered.statement],
                "{what} in {dialect}: the text is not the analyzed statement\n{sql}"
            );
            true
        }
    }
}

/// Every string literal in the analyzed statement.
fn string_literals(compiled: &Compiled, dialect: Dialect) -> Vec<String> {
    struct Strings(Vec<String>);
    impl Visitor for Strings {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::Value(v) = expr
                && let Value::SingleQuotedString(s) = &v.value
            {
                self.0.push(s.clone());
            }
            ControlFlow::Continue(())
        }
    }
    let plan = compiled.plan.as_ref().expect("a plan");
    let statement = featurecraft::render(plan, dialect).unwrap().statement;
    let mut found = Strings(Vec::new());
    let _ = statement.visit(&mut found);
    found.0
}

/// Attempts that used to print SQL holding a second statement, or another value.
const ATTEMPTS: &[(&str, &str, &str)] = &[
    (
        "quote after a backslash",
        "CASE WHEN plan = '\\'' THEN 1 END AS x FROM customers) SELECT * FROM spine; DROP TABLE pwned; --' THEN 1 ELSE 0 END",
        "customers",
    ),
    (
        "backslash before the closing quote",
        "'\\' || '; DROP TABLE pwned; --'",
        "customers",
    ),
    ("two backslashes", "'\\\\' || plan", "customers"),
    ("doubled quotes", "'a''''b' || plan", "customers"),
    (
        "quote after a backslash in DATE",
        "CASE WHEN signup_date > DATE '\\''; DROP TABLE pwned; --' THEN 1 END",
        "customers",
    ),
    (
        "quote after a backslash in INTERVAL",
        "MAX(event_ts) + INTERVAL '\\''; DROP TABLE pwned; --'",
        "events",
    ),
    (
        "quote after a backslash in AT TIME ZONE",
        "MAX(event_ts AT TIME ZONE '\\''; DROP TABLE pwned; --')",
        "events",
    ),
    (
        "quote after a backslash in LIKE ESCAPE",
        "COUNT(CASE WHEN event_type LIKE 'a' ESCAPE '\\' THEN 1 END)",
        "events",
    ),
    (
        "quoted function name",
        "\"a\\\"\"; DROP TABLE pwned; --\"(monthly_fee)",
        "customers",
    ),
    (
        "custom cast type",
        "CAST(monthly_fee AS \"x\"\"; DROP TABLE pwned; --\")",
        "customers",
    ),
    (
        "national string",
        "N'x'' ; DROP TABLE pwned; --' || plan",
        "customers",
    ),
    (
        "escaped string",
        "E'x\\' ; DROP TABLE pwned; --' || plan",
        "customers",
    ),
    (
        "custom EXTRACT field",
        "EXTRACT(\"x; DROP TABLE pwned; --\" FROM signup_date)",
        "customers",
    ),
    (
        "collation",
        "plan COLLATE \"de\"\"; DROP TABLE pwned; --\"",
        "customers",
    ),
    (
        "custom operator",
        "OPERATOR(pg_catalog.+)(monthly_fee, 1)",
        "customers",
    ),
    ("hex string", "X'27' || plan", "customers"),
    (
        "named argument",
        "ROUND(monthly_fee, \"x; DROP\" => 1)",
        "customers",
    ),
];

#[test]
fn every_attempt_is_refused_or_printed_exactly_in_every_dialect() {
    let catalog = common::retail_json();
    for (what, expression, table) in ATTEMPTS {
        for dialect in Dialect::ALL {
            let compiled = compile(
                &recipe(expression, table),
                &catalog,
                &CompileOptions::for_dialect(dialect),
            );
            refused_or_exact(&compiled, dialect, what);
        }
    }
}

#[test]
fn the_reported_injection_keeps_its_value_and_stays_one_statement() {
    let catalog = common::retail_json();
    let expression = ATTEMPTS[0].1;
    for dialect in Dialect::ALL {
        let compiled = compile(
            &recipe(expression, "customers"),
            &catalog,
            &CompileOptions::for_dialect(dialect),
        );
        assert!(
            refused_or_exact(&compiled, dialect, "reproducer"),
            "{dialect}: {:#?}",
            compiled.diagnostics
        );
        // In Spark the quote and backslash are written with CHR(), so no literal holds them.
        if dialect != Dialect::Databricks {
            assert!(
                string_literals(&compiled, dialect).contains(
                    &"\\' THEN 1 END AS x FROM customers) SELECT * FROM spine; DROP TABLE pwned; --"
                        .to_string()
                ),
                "{dialect}"
            );
        }
    }
}

#[test]
fn constructs_that_carry_free_text_are_refused_with_e012() {
    let catalog = common::retail_json();
    for (what, expression, table) in ATTEMPTS.iter().filter(|(what, ..)| {
        [
            "quoted function name",
            "custom cast type",
            "national string",
            "escaped string",
            "custom EXTRACT field",
            "collation",
            "hex string",
            "named argument",
        ]
        .contains(what)
    }) {
        let compiled = compile(
            &recipe(expression, table),
            &catalog,
            &CompileOptions::for_dialect(Dialect::Generic),
        );
        assert!(
            compiled.diagnostics.iter().any(|d| d.code == Code::E012
                && d.path_text().as_deref() == Some("features[0].expression")),
            "{what}: {:#?}",
            compiled.diagnostics
        );
    }
}

#[test]
fn a_nul_in_a_literal_is_refused_with_e041_at_its_place() {
    let catalog = common::retail_json();
    for dialect in Dialect::ALL {
        let compiled = compile(
            &recipe("'a\u{0}b' || plan", "customers"),
            &catalog,
            &CompileOptions::for_dialect(dialect),
        );
        let d = compiled
            .diagnostics
            .iter()
            .find(|d| d.code == Code::E041)
            .unwrap_or_else(|| panic!("{dialect}: {:#?}", compiled.diagnostics));
        assert_eq!(d.path_text().as_deref(), Some("features[0].expression"));
        assert!(d.span.is_some());
        assert!(compiled.sql.is_none());
    }
}

/// A catalog whose `customers` table has one more column, named `name` (`None` when the
/// catalog refuses the name, e.g. one equal to another column ignoring case).
fn catalog_with_column(name: &str) -> Option<Catalog> {
    let mut tables: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("retail_catalog.json")).unwrap(),
    )
    .unwrap();
    tables["customers"][name] = serde_json::json!("string");
    Catalog::from_json(&tables.to_string()).ok()
}

/// `s` as a string literal of a fragment (the generic grammar: a quote doubled).
fn fragment_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `s` as a quoted identifier of a fragment.
fn fragment_identifier(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_string_literal_is_refused_or_printed_with_its_value(s in any::<String>()) {
        let catalog = common::retail_json();
        let expression = format!("CASE WHEN plan = {} THEN 1 ELSE 0 END", fragment_literal(&s));
        for dialect in Dialect::ALL {
            let compiled = compile(&recipe(&expression, "customers"), &catalog, &CompileOptions::for_dialect(dialect));
            if refused_or_exact(&compiled, dialect, &expression) {
                if dialect != Dialect::Databricks || !s.contains(['\'', '\\']) {
                    prop_assert!(string_literals(&compiled, dialect).contains(&s), "{} in {}", expression, dialect);
                }
            } else {
                prop_assert!(compiled.diagnostics.iter().all(|d| !d.is_error() || d.code == Code::E041),
                    "{dialect}: {:#?}", compiled.diagnostics);
            }
        }
    }

    #[test]
    fn any_column_name_is_refused_or_printed_as_that_name(s in "\\PC{1,12}|[\"`'\\\\;\\- a-z]{1,12}") {
        prop_assume!(!s.eq_ignore_ascii_case("customer_id") && !s.contains('\0'));
        let catalog = catalog_with_column(&s);
        prop_assume!(catalog.is_some());
        let catalog = catalog.unwrap();
        let expression = format!("MAX({})", fragment_identifier(&s));
        for dialect in Dialect::ALL {
            let compiled = compile(&recipe(&expression, "customers"), &catalog, &CompileOptions::for_dialect(dialect));
            if !refused_or_exact(&compiled, dialect, &expression) {
                prop_assert!(compiled.diagnostics.iter().any(|d| d.code == Code::E041),
                    "{dialect}: {:#?}", compiled.diagnostics);
            }
        }
    }

    #[test]
    fn a_quoted_function_name_is_always_refused(s in any::<String>()) {
        let catalog = common::retail_json();
        let expression = format!("{}(monthly_fee)", fragment_identifier(&s));
        let compiled = compile(&recipe(&expression, "customers"), &catalog, &CompileOptions::for_dialect(Dialect::Postgres));
        prop_assert!(compiled.sql.is_none());
    }
}
