//! Whatever the input, compiling never panics: arbitrary recipe JSON, arbitrary fragments.

mod common;

use featurecraft::{CompileOptions, Dialect, compile};
use proptest::prelude::*;
use serde_json::{Value, json};

fn recipe_with(expression: &str, derivation: &str, source: &str) -> String {
    json!({
        "target_table": "t",
        "entity_grain": ["customer_id"],
        "label": {"column": "churned_at", "derivation": derivation},
        "features": [
            {"name": "f", "expression": expression, "source_table": source},
            {"name": "g", "expression": "COUNT(*)", "source_table": "orders"}
        ]
    })
    .to_string()
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z_ ().*]{0,12}".prop_map(Value::from),
        prop::sample::select(vec![
            "customer_id",
            "orders",
            "COUNT(*)",
            "SUM(amount)",
            "churned_at",
            "binary"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "target_table",
                    "entity_grain",
                    "label",
                    "features",
                    "notes",
                    "name",
                    "type",
                    "column",
                    "derivation",
                    "expression",
                    "source_table",
                    "data_type",
                    "x",
                ]),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// SQL-ish text: tokens a fragment is made of, in any order.
fn sqlish() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            "SUM(",
            "COUNT(*)",
            "amount",
            "customer_id",
            ")",
            "(",
            "+",
            "/",
            "CASE",
            "WHEN",
            "THEN",
            "ELSE",
            "END",
            "1",
            "'x'",
            ",",
            ";",
            "SELECT",
            "FROM",
            "OVER",
            "\"amount\"",
            "orders.",
            "::",
            "INT",
            "NULL",
            "FILTER",
            "WHERE",
            "IS",
            "NOT",
            "AND",
            "$1",
            "?",
            "[",
            "]",
            "->",
            "x",
            "\n",
            "é",
            "--",
            "/*",
        ]),
        0..16,
    )
    .prop_map(|tokens| tokens.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_as_recipe_never_panics(text in "\\PC{0,200}") {
        let catalog = common::retail_json();
        let _ = compile(&text, &catalog, &CompileOptions::default());
    }

    #[test]
    fn arbitrary_json_as_recipe_never_panics(value in arbitrary_json()) {
        let catalog = common::retail_json();
        let _ = compile(&value.to_string(), &catalog, &CompileOptions::default());
    }

    #[test]
    fn arbitrary_fragments_never_panic(
        expression in prop_oneof![sqlish(), "\\PC{0,60}"],
        derivation in prop_oneof![sqlish(), Just("CASE WHEN churned_at IS NULL THEN 0 ELSE 1 END".to_string())],
        source in prop::sample::select(vec!["orders", "customers", "events", "nope", "marketing.campaign_touches"]),
        dialect in prop::sample::select(Dialect::ALL.to_vec()),
    ) {
        let catalog = common::retail_json();
        let compiled = compile(&recipe_with(&expression, &derivation, source), &catalog, &CompileOptions::for_dialect(dialect));
        // Whatever compiled must also read back in its dialect as exactly one statement.
        if let Some(sql) = compiled.sql {
            prop_assert!(compile::render::reparse(&sql, dialect).is_ok_and(|s| s.len() == 1), "{}", sql);
        }
    }
}

#[test]
fn deeply_nested_fragments_are_refused_not_overflowed() {
    let catalog = common::retail_json();
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    let compiled = compile(
        &recipe_with(&deep, "churned_at", "orders"),
        &catalog,
        &CompileOptions::default(),
    );
    assert!(
        compiled
            .diagnostics
            .iter()
            .any(|d| d.code == featurecraft::Code::E010)
    );
}

/// A chain of operators parses into a tree as deep as it is long, which the parser's
/// recursion limit does not see; before the depth check, this one aborted the process with
/// a stack overflow while the analyzer copied the tree.
#[test]
fn a_long_chain_of_operators_is_refused_not_overflowed() {
    let terms = 40_000;
    let chain = format!("SUM(amount){}", "+1".repeat(terms));
    assert!(chain.chars().count() <= compile::fragment::MAX_FRAGMENT_CHARS);
    let refused = diagnostic_at(
        &recipe_with(&chain, "churned_at", "orders"),
        "features[0].expression",
    );
    assert_eq!(refused.code, featurecraft::Code::E010);
    assert!(
        refused.message.contains(&format!(
            "nests {} levels deep; the limit is {}",
            terms + 2,
            featurecraft::sql::MAX_EXPRESSION_DEPTH
        )),
        "{}",
        refused.message
    );

    // The same in the label, row-level.
    let label = format!(
        "CASE WHEN churned_at IS NULL THEN 0{} ELSE 1 END",
        "+0".repeat(terms)
    );
    let refused = diagnostic_at(
        &recipe_with("COUNT(*)", &label, "orders"),
        "label.derivation",
    );
    assert_eq!(refused.code, featurecraft::Code::E010);
    assert!(
        refused.message.contains("levels deep"),
        "{}",
        refused.message
    );
}

#[test]
fn an_overlong_fragment_is_refused_before_it_is_parsed() {
    let long = format!("SUM(amount){}", " + 1".repeat(30_000));
    let refused = diagnostic_at(
        &recipe_with(&long, "churned_at", "orders"),
        "features[0].expression",
    );
    assert_eq!(refused.code, featurecraft::Code::E010);
    assert_eq!(
        refused.message,
        format!(
            "the expression is {} characters long; the limit is {}",
            long.chars().count(),
            compile::fragment::MAX_FRAGMENT_CHARS
        )
    );
}

/// The diagnostic compiling `recipe` against the retail catalog gives at `path`; the
/// recipe must not compile.
fn diagnostic_at(recipe: &str, path: &str) -> featurecraft::Diagnostic {
    let compiled = compile(recipe, &common::retail_json(), &CompileOptions::default());
    assert!(compiled.sql.is_none());
    compiled
        .diagnostics
        .into_iter()
        .find(|d| d.path_text().as_deref() == Some(path))
        .unwrap_or_else(|| panic!("no diagnostic at {path}"))
}

/// Analyze and render move to a stack of their own only when the caller's thread has less
/// than `EXPRESSION_STACK_NEEDED` left; here the thread has just that much and the stages
/// stay on it, so the deepest accepted expression must fit.
#[test]
fn the_deepest_expression_compiles_within_the_stack_a_stage_reserves() {
    let depth = featurecraft::sql::MAX_EXPRESSION_DEPTH;
    // `SUM(a) + … + SUM(a)` of n terms nests n + 1 levels; the label nests as deep.
    let feature = vec!["SUM(amount)"; depth - 1].join(" + ");
    let label = format!(
        "CASE WHEN churned_at IS NULL THEN {} END",
        vec!["0"; depth - 1].join(" + ")
    );
    let text = recipe_with(&feature, &label, "orders");
    let compiled = std::thread::Builder::new()
        .stack_size(featurecraft::sql::EXPRESSION_STACK_NEEDED + (128 << 10))
        .spawn(move || {
            let catalog = common::retail_json();
            compile(&text, &catalog, &CompileOptions::default())
        })
        .expect("the thread starts")
        .join()
        .expect("compiles without a panic");
    assert!(compiled.sql.is_some(), "{:#?}", compiled.diagnostics);
}
