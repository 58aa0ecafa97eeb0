//! Sources reached through declared relationships: the join path inside the source's CTE
//! gives exactly what a hand-written view of the same join gives, two hops are followed,
//! and an entity without rows at the end of the path gets the empty-set values.

mod common;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use featurecraft::{Catalog, CompileOptions, Dialect, compile};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Every row of a recipe's table (the whole spine sampled), as text keyed by the first column.
async fn table_of(catalog: &Catalog, text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    common::table_by_key(catalog, text, 1).await
}

#[tokio::test]
async fn a_path_through_a_relationship_equals_the_view_of_the_same_join() {
    let catalog = common::retail().await;
    let text = std::fs::read_to_string(
        common::fixtures().join("recipes/good/order_items_through_orders.json"),
    )
    .unwrap();
    let through = table_of(&catalog, &text).await;
    // The same features read from the bundled view `customer_order_items`, which joins
    // order_items to orders by hand.
    let mut recipe: serde_json::Value = serde_json::from_str(&text).unwrap();
    recipe.as_object_mut().unwrap().remove("relationships");
    for f in recipe["features"].as_array_mut().unwrap() {
        if f["source_table"] == "order_items" {
            f["source_table"] = "customer_order_items".into();
        }
    }
    let by_view = table_of(&catalog, &recipe.to_string()).await;
    assert_eq!(through.len(), 1000);
    assert_eq!(through, by_view);
    // Not a vacuous equality: customers with and without items are both there.
    let zero = through.values().filter(|r| r["n_items"] == "0").count();
    assert!(zero > 0 && zero < through.len(), "{zero}");
    assert!(through.values().any(|r| r["basket_value"] == "NULL"));
}

fn floats(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

#[tokio::test]
async fn two_hops_are_followed_and_entities_without_rows_get_empty_set_values() {
    let dir = tempfile::tempdir().unwrap();
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "customers",
                vec![
                    ("customer_id", common::ints([1, 2, 3].map(Some))),
                    ("y", common::ints([0, 1, 0].map(Some))),
                ],
            ),
            (
                "sessions",
                vec![
                    ("session_id", common::ints([10, 11, 12].map(Some))),
                    ("customer_id", common::ints([1, 1, 2].map(Some))),
                ],
            ),
            (
                "transactions",
                vec![
                    (
                        "transaction_id",
                        common::ints([100, 101, 102, 103].map(Some)),
                    ),
                    ("session_id", common::ints([10, 10, 11, 12].map(Some))),
                ],
            ),
            (
                "lines",
                vec![
                    ("line_id", common::ints([1, 2, 3, 4, 5].map(Some))),
                    (
                        "transaction_id",
                        common::ints([100, 100, 101, 102, 103].map(Some)),
                    ),
                    ("amount", floats(&[1.0, 2.0, 4.0, 8.0, 16.0])),
                ],
            ),
        ],
    );
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let recipe = serde_json::json!({
        "target_table": "t",
        "entity_grain": ["customer_id"],
        "relationships": [
            {"child": "lines.transaction_id", "parent": "transactions.transaction_id"},
            {"child": "transactions.session_id", "parent": "sessions.session_id"}
        ],
        "label": {"name": "label", "column": "y"},
        "features": [
            {"name": "n_lines", "source_table": "lines", "expression": "COUNT(*)"},
            {"name": "spend", "source_table": "lines", "expression": "SUM(amount)"},
            {"name": "n_transactions", "source_table": "transactions", "expression": "COUNT(*)"}
        ]
    });
    let compiled = compile(
        &recipe.to_string(),
        &catalog,
        &CompileOptions::for_dialect(Dialect::Generic),
    );
    let sql = compiled.sql.as_deref().expect("compiles");
    assert!(
        sql.contains(
            r#"JOIN "transactions" AS "h1" ON "s"."transaction_id" = "h1"."transaction_id""#
        ) && sql.contains(r#"JOIN "sessions" AS "h2" ON "h1"."session_id" = "h2"."session_id""#),
        "{sql}"
    );
    let table = table_of(&catalog, &recipe.to_string()).await;
    // Customer 1: sessions 10 and 11 → transactions 100, 101, 102 → lines 1, 2, 3, 4.
    assert_eq!(table["1"]["n_lines"], "4");
    assert_eq!(table["1"]["spend"], "15.0");
    assert_eq!(table["1"]["n_transactions"], "3");
    assert_eq!(table["2"]["n_lines"], "1");
    assert_eq!(table["2"]["spend"], "16.0");
    // Customer 3 has no session: counts 0, the sum NULL.
    assert_eq!(table["3"]["n_lines"], "0");
    assert_eq!(table["3"]["spend"], "NULL");
    assert_eq!(table["3"]["n_transactions"], "0");
}

#[tokio::test]
async fn hostile_relationships_are_refused_with_their_path_and_nothing_else_happens() {
    let catalog = common::retail().await;
    let base: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            common::fixtures().join("recipes/good/order_items_through_orders.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let long = "x".repeat(100_000);
    let cases: Vec<(serde_json::Value, &str)> = vec![
        // A quote after a backslash, and a statement, as a table name.
        (
            serde_json::json!({"child": "order_items.order_id", "parent": "orders\\'; DROP TABLE pwned; --.order_id"}),
            "E020",
        ),
        (
            serde_json::json!({"child": "order_items", "parent": "orders.order_id"}),
            "E027",
        ),
        (
            serde_json::json!({"child": "order_items.order_id", "parent": format!("{long}.{long}")}),
            "E020",
        ),
        (
            serde_json::json!({"child": "order_items.order_id", "parent": "orders.\"order_id\""}),
            "E021",
        ),
        (
            serde_json::json!({"child": "order_items.order_id", "parent": "order_items.order_id"}),
            "E027",
        ),
        (serde_json::json!({"child": 7, "parent": null}), "E001"),
    ];
    for (relationship, code) in cases {
        let mut recipe = base.clone();
        recipe["relationships"] = serde_json::json!([relationship.clone()]);
        let compiled = compile(
            &recipe.to_string(),
            &catalog,
            &CompileOptions::for_dialect(Dialect::Postgres),
        );
        assert!(compiled.sql.is_none(), "{relationship}: no SQL");
        let first = compiled
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .unwrap_or_else(|| panic!("{relationship}: an error"));
        assert_eq!(
            format!("{:?}", first.code),
            code,
            "{relationship}: {first:?}"
        );
        let at = first
            .path
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        assert!(at.starts_with("relationships"), "{relationship}: at {at}");
    }
}
