//! Derived columns (stacked aggregates): a table's rows aggregate their child rows, features
//! aggregate those again per entity, with the empty-set rule at both levels; and every way a
//! derived column can be wrong is refused at its path.

mod common;

use datafusion::arrow::array::{ArrayRef, Float64Array};
use featurecraft::{Catalog, CompileOptions, Dialect, compile};
use std::sync::Arc;

fn floats(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

/// customers 1–3; sessions 10, 11 (customer 1), 12, 13 (customer 2); transactions in
/// sessions 10 (two), 11 and 12 (one each); session 13 has none, customer 3 no session.
async fn sessions_catalog(dir: &std::path::Path) -> Catalog {
    common::tiny_catalog(
        dir,
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
                    ("session_id", common::ints([10, 11, 12, 13].map(Some))),
                    ("customer_id", common::ints([1, 1, 2, 2].map(Some))),
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
                    ("amount", floats(&[1.0, 3.0, 4.0, 8.0])),
                ],
            ),
        ],
    );
    Catalog::load(dir).await.unwrap()
}

fn stacked_recipe() -> serde_json::Value {
    serde_json::json!({
        "target_table": "t",
        "entity_grain": ["customer_id"],
        "relationships": [
            {"child": "transactions.session_id", "parent": "sessions.session_id"}
        ],
        "derived_columns": [
            {"table": "sessions", "name": "n_tx", "source_table": "transactions", "expression": "COUNT(*)"},
            {"table": "sessions", "name": "spend", "source_table": "transactions", "expression": "SUM(amount)"},
            {"table": "sessions", "name": "top", "source_table": "transactions", "expression": "MAX(amount)"}
        ],
        "label": {"name": "label", "column": "y"},
        "features": [
            {"name": "n_sessions", "source_table": "sessions", "expression": "COUNT(*)"},
            {"name": "mean_n_tx", "source_table": "sessions", "expression": "AVG(n_tx)"},
            {"name": "min_n_tx", "source_table": "sessions", "expression": "MIN(n_tx)"},
            {"name": "sum_n_tx", "source_table": "sessions", "expression": "SUM(n_tx)"},
            {"name": "mean_spend", "source_table": "sessions", "expression": "AVG(spend)"},
            {"name": "max_spend", "source_table": "sessions", "expression": "MAX(spend)"},
            {"name": "sum_top", "source_table": "sessions", "expression": "SUM(top)"},
            {"name": "with_no_tx", "source_table": "sessions", "expression": "COUNT(*) - COUNT(spend)"}
        ]
    })
}

#[tokio::test]
async fn stacked_aggregates_have_the_empty_set_rule_at_both_levels() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = sessions_catalog(dir.path()).await;
    let table = common::table_by_key(&catalog, &stacked_recipe().to_string(), 1).await;
    // Customer 1: session 10 (1 + 3), session 11 (4).
    assert_eq!(table["1"]["n_sessions"], "2");
    assert_eq!(table["1"]["mean_n_tx"], "1.5");
    assert_eq!(table["1"]["min_n_tx"], "1");
    assert_eq!(table["1"]["sum_n_tx"], "3");
    assert_eq!(table["1"]["mean_spend"], "4.0");
    assert_eq!(table["1"]["max_spend"], "4.0");
    assert_eq!(table["1"]["sum_top"], "7.0");
    assert_eq!(table["1"]["with_no_tx"], "0");
    // Customer 2: session 12 (8) and session 13 without transactions: it counts 0
    // transactions (so the mean is 0.5 and the minimum 0), its spend is NULL (skipped).
    assert_eq!(table["2"]["n_sessions"], "2");
    assert_eq!(table["2"]["mean_n_tx"], "0.5");
    assert_eq!(table["2"]["min_n_tx"], "0");
    assert_eq!(table["2"]["mean_spend"], "8.0");
    assert_eq!(table["2"]["with_no_tx"], "1");
    // Customer 3 has no session: counts 0, everything else NULL.
    assert_eq!(table["3"]["n_sessions"], "0");
    assert_eq!(table["3"]["mean_n_tx"], "NULL");
    assert_eq!(table["3"]["sum_n_tx"], "NULL");
    assert_eq!(table["3"]["mean_spend"], "NULL");
    assert_eq!(table["3"]["with_no_tx"], "0");
}

#[tokio::test]
async fn stacked_aggregates_compile_to_two_group_bys_sharing_one_child_scan() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = sessions_catalog(dir.path()).await;
    for dialect in Dialect::ALL {
        let compiled = compile(
            &stacked_recipe().to_string(),
            &catalog,
            &CompileOptions::for_dialect(dialect),
        );
        let sql = compiled
            .sql
            .as_deref()
            .unwrap_or_else(|| panic!("{dialect}: {:?}", compiled.diagnostics));
        // One CTE groups the transactions per session for all three derived columns, one
        // joins it to every session, and the sessions' source reads that one.
        assert_eq!(sql.matches("FROM").count(), 5, "{dialect}: {sql}");
        assert_eq!(
            sql.matches("transactions").count() - sql.matches("_transactions").count(),
            1,
            "{dialect}: one scan of the child: {sql}"
        );
        assert!(sql.contains("LEFT JOIN"), "{dialect}: {sql}");
    }
}

#[tokio::test]
async fn wrong_derived_columns_are_refused_at_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = sessions_catalog(dir.path()).await;
    let one = |table: &str, name: &str, source: &str, expression: &str| serde_json::json!({"table": table, "name": name, "source_table": source, "expression": expression});
    let long = "x".repeat(100_000);
    let cases: Vec<(serde_json::Value, Option<serde_json::Value>, &str, &str)> = vec![
        (
            one("sesions", "n", "transactions", "COUNT(*)"),
            None,
            "E020",
            "derived_columns[0].table",
        ),
        (
            one("sessions", "n", "transaction", "COUNT(*)"),
            None,
            "E020",
            "derived_columns[0].source_table",
        ),
        (
            one("sessions", "customer_id", "transactions", "COUNT(*)"),
            None,
            "E028",
            "derived_columns[0].name",
        ),
        (
            one("sessions", "n x", "transactions", "COUNT(*)"),
            None,
            "E028",
            "derived_columns[0].name",
        ),
        (
            one("sessions", &long, "transactions", "COUNT(*)"),
            None,
            "E028",
            "derived_columns[0].name",
        ),
        (
            one("sessions", "n", "sessions", "COUNT(*)"),
            None,
            "E028",
            "derived_columns[0].source_table",
        ),
        (
            one("sessions", "n", "transactions", "amount"),
            None,
            "E028",
            "derived_columns[0].expression",
        ),
        (
            one("sessions", "n", "transactions", "SUM(amount) + amount"),
            None,
            "E030",
            "derived_columns[0].expression",
        ),
        (
            one("sessions", "n", "transactions", "SUM(amont)"),
            None,
            "E021",
            "derived_columns[0].expression",
        ),
        (
            one("sessions", "n", "transactions", "SUM((SELECT 1))"),
            None,
            "E012",
            "derived_columns[0].expression",
        ),
        (
            one(
                "sessions",
                "n",
                "transactions",
                "SUM(amount); DROP TABLE pwned",
            ),
            None,
            "E011",
            "derived_columns[0].expression",
        ),
        // No relationship between the two tables.
        (
            one("sessions", "n", "transactions", "COUNT(*)"),
            Some(serde_json::json!([])),
            "E028",
            "derived_columns[0].source_table",
        ),
        // Two relationships between them: which rows belong to a session is ambiguous.
        (
            one("sessions", "n", "transactions", "COUNT(*)"),
            Some(serde_json::json!([
                {"child": "transactions.session_id", "parent": "sessions.session_id"},
                {"child": "transactions.transaction_id", "parent": "sessions.session_id"}
            ])),
            "E028",
            "derived_columns[0].source_table",
        ),
        (
            serde_json::json!({"table": "sessions", "name": 7}),
            None,
            "E001",
            "derived_columns",
        ),
    ];
    for (derived, relationships, code, path) in cases {
        let mut recipe = stacked_recipe();
        recipe["derived_columns"] = serde_json::json!([derived.clone()]);
        recipe["features"] = serde_json::json!([
            {"name": "n_sessions", "source_table": "sessions", "expression": "COUNT(*)"}
        ]);
        if let Some(r) = relationships {
            recipe["relationships"] = r;
        }
        let compiled = compile(
            &recipe.to_string(),
            &catalog,
            &CompileOptions::for_dialect(Dialect::Postgres),
        );
        let shown = derived.to_string().chars().take(120).collect::<String>();
        assert!(compiled.sql.is_none(), "{shown}: no SQL");
        let first = compiled
            .diagnostics
            .iter()
            .find(|d| d.is_error())
            .unwrap_or_else(|| panic!("{shown}: an error"));
        assert_eq!(format!("{:?}", first.code), code, "{shown}: {first:?}");
        let at = first
            .path
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        assert_eq!(at, path, "{shown}: {first:?}");
    }
}

/// One customer with cutoffs on days 100 and 125. Sessions 10 (day 90), 11 (day 110) and
/// 12 (day 115). Transactions: session 10 on days 95 (1) and 105 (2), session 11 on days
/// 112 (4) and 130 (8), session 12 on day 200 (16).
async fn timed_sessions_catalog(dir: &std::path::Path) -> Catalog {
    use datafusion::arrow::array::Date32Array;
    let days = |values: &[i32]| -> ArrayRef { Arc::new(Date32Array::from(values.to_vec())) };
    common::tiny_catalog(
        dir,
        &[
            (
                "cutoffs",
                vec![
                    ("customer_id", common::ints([Some(1), Some(1)])),
                    ("cutoff_day", days(&[100, 125])),
                    ("y", common::ints([Some(0), Some(1)])),
                ],
            ),
            (
                "sessions",
                vec![
                    ("session_id", common::ints([10, 11, 12].map(Some))),
                    ("customer_id", common::ints([1, 1, 1].map(Some))),
                    ("started", days(&[90, 110, 115])),
                ],
            ),
            (
                "transactions",
                vec![
                    ("transaction_id", common::ints([1, 2, 3, 4, 5].map(Some))),
                    ("session_id", common::ints([10, 10, 11, 11, 12].map(Some))),
                    ("paid", days(&[95, 105, 112, 130, 200])),
                    ("amount", floats(&[1.0, 2.0, 4.0, 8.0, 16.0])),
                ],
            ),
        ],
    );
    Catalog::load(dir).await.unwrap()
}

fn timed_stacked_recipe() -> serde_json::Value {
    serde_json::json!({
        "target_table": "t",
        "entity_grain": ["customer_id", "cutoff_day"],
        "relationships": [
            {"child": "transactions.session_id", "parent": "sessions.session_id"}
        ],
        "point_in_time": {
            "cutoff_column": "cutoff_day",
            "time_columns": {"sessions": "started", "transactions": "paid"}
        },
        "derived_columns": [
            {"table": "sessions", "name": "n_tx", "source_table": "transactions", "expression": "COUNT(*)"},
            {"table": "sessions", "name": "spend", "source_table": "transactions", "expression": "SUM(amount)"}
        ],
        "label": {"name": "label", "column": "y"},
        "features": [
            {"name": "n_sessions", "source_table": "sessions", "expression": "COUNT(*)"},
            {"name": "mean_n_tx", "source_table": "sessions", "expression": "AVG(n_tx)"},
            {"name": "min_n_tx", "source_table": "sessions", "expression": "MIN(n_tx)"},
            {"name": "max_spend", "source_table": "sessions", "expression": "MAX(spend)"},
            {"name": "last_session_spend", "source_table": "sessions", "expression": "spend"}
        ]
    })
}

#[tokio::test]
async fn stacked_aggregates_in_a_point_in_time_recipe_count_only_rows_before_each_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = timed_sessions_catalog(dir.path()).await;
    let table = common::table_by_key(&catalog, &timed_stacked_recipe().to_string(), 2).await;
    let at = |day: &str| {
        table
            .iter()
            .find(|(k, _)| k.ends_with(day))
            .map(|(_, row)| row.clone())
            .unwrap_or_else(|| panic!("a row at {day}: {table:?}"))
    };
    // Day 100: session 10 only, with its transaction of day 95 (not the one of day 105).
    let early = at("1970-04-11");
    assert_eq!(early["n_sessions"], "1", "{early:?}");
    assert_eq!(early["mean_n_tx"], "1.0", "{early:?}");
    assert_eq!(early["max_spend"], "1.0", "{early:?}");
    assert_eq!(early["last_session_spend"], "1.0", "{early:?}");
    // Day 125: sessions 10 (1 + 2), 11 (4; day 130 is after) and 12, whose only
    // transaction is after the cutoff: it counts 0 transactions and its spend is NULL.
    let late = at("1970-05-06");
    assert_eq!(late["n_sessions"], "3", "{late:?}");
    assert_eq!(late["mean_n_tx"], "1.0", "{late:?}");
    assert_eq!(late["min_n_tx"], "0", "{late:?}");
    assert_eq!(late["max_spend"], "4.0", "{late:?}");
    // The as-of value reads the latest session before the cutoff: session 12.
    assert_eq!(late["last_session_spend"], "NULL", "{late:?}");
    for dialect in Dialect::ALL {
        let compiled = compile(
            &timed_stacked_recipe().to_string(),
            &catalog,
            &CompileOptions::for_dialect(dialect),
        );
        assert!(
            compiled.sql.is_some(),
            "{dialect}: {:?}",
            compiled.diagnostics
        );
        assert!(
            compiled.diagnostics.is_empty(),
            "{dialect}: {:?}",
            compiled.diagnostics
        );
    }
}

#[tokio::test]
async fn derived_columns_in_a_point_in_time_recipe_need_a_timed_table_and_a_bounded_child() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = timed_sessions_catalog(dir.path()).await;
    let codes = |recipe: &serde_json::Value| {
        let compiled = compile(
            &recipe.to_string(),
            &catalog,
            &CompileOptions::for_dialect(Dialect::DuckDb),
        );
        let found: Vec<(String, String)> = compiled
            .diagnostics
            .iter()
            .map(|d| {
                (
                    format!("{:?}", d.code),
                    d.path.as_ref().map(|p| p.to_string()).unwrap_or_default(),
                )
            })
            .collect();
        (compiled.sql.is_some(), found)
    };
    // The table declared static: its rows' aggregates could not follow the cutoff.
    let mut recipe = timed_stacked_recipe();
    recipe["point_in_time"]["time_columns"]["sessions"] = serde_json::Value::Null;
    recipe["features"].as_array_mut().unwrap().truncate(4);
    let (sql, found) = codes(&recipe);
    assert!(!sql);
    assert!(
        found.contains(&("E028".into(), "derived_columns[0].table".into())),
        "{found:?}"
    );
    // The child not listed: W012, as any source the cutoff does not bound.
    let mut recipe = timed_stacked_recipe();
    recipe["point_in_time"]["time_columns"] = serde_json::json!({"sessions": "started"});
    let (sql, found) = codes(&recipe);
    assert!(sql);
    assert!(
        found.contains(&("W012".into(), "derived_columns[0].source_table".into())),
        "{found:?}"
    );
    // Declared static, the child is read whole with no warning.
    recipe["point_in_time"]["time_columns"]["transactions"] = serde_json::Value::Null;
    let (sql, found) = codes(&recipe);
    assert!(sql && found.is_empty(), "{found:?}");
}

#[tokio::test]
async fn a_recipe_with_derived_columns_round_trips_unchanged() {
    let text = stacked_recipe().to_string();
    let parsed = featurecraft::parse_recipe(&text);
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let recipe = parsed.recipe.unwrap();
    let again: serde_json::Value = serde_json::to_value(&recipe).unwrap();
    assert_eq!(
        again["derived_columns"],
        stacked_recipe()["derived_columns"]
    );
    // An unknown field of a derived column is named.
    let mut typo = stacked_recipe();
    typo["derived_columns"][0]["expresion"] = "COUNT(*)".into();
    let parsed = featurecraft::parse_recipe(&typo.to_string());
    assert!(
        parsed
            .diagnostics
            .iter()
            .any(|d| format!("{:?}", d.code) == "W001"
                && d.path
                    .as_ref()
                    .is_some_and(|p| p.to_string() == "derived_columns[0].expresion")),
        "{:?}",
        parsed.diagnostics
    );
}

#[tokio::test]
async fn a_derived_column_cannot_read_its_childs_derived_columns() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = sessions_catalog(dir.path()).await;
    let mut recipe = stacked_recipe();
    // customers gain a column from sessions that reads sessions' own derived `spend`:
    // three aggregates deep, refused where it is written.
    recipe["relationships"].as_array_mut().unwrap().push(
        serde_json::json!({"child": "sessions.customer_id", "parent": "customers.customer_id"}),
    );
    recipe["derived_columns"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"table": "customers", "name": "best", "source_table": "sessions", "expression": "MAX(spend)"}));
    let compiled = compile(
        &recipe.to_string(),
        &catalog,
        &CompileOptions::for_dialect(Dialect::DuckDb),
    );
    assert!(compiled.sql.is_none());
    let first = compiled.diagnostics.iter().find(|d| d.is_error()).unwrap();
    assert_eq!(format!("{:?}", first.code), "E021", "{first:?}");
    assert_eq!(
        first.path.as_ref().unwrap().to_string(),
        "derived_columns[3].expression"
    );
    // Reading the child's own columns is fine, even where the child has derived columns.
    recipe["derived_columns"][3]["expression"] = "COUNT(*)".into();
    recipe["features"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({"name": "sessions_too", "source_table": "customers", "expression": "best"}));
    let table = common::table_by_key(&catalog, &recipe.to_string(), 1).await;
    assert_eq!(table["1"]["sessions_too"], "2");
    assert_eq!(table["3"]["sessions_too"], "0");
    assert_eq!(table["1"]["mean_n_tx"], "1.5");
}

#[tokio::test]
async fn a_derived_column_named_like_the_childs_link_column_keeps_both_apart() {
    let dir = tempfile::tempdir().unwrap();
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "customers",
                vec![
                    ("customer_id", common::ints([1, 2].map(Some))),
                    ("y", common::ints([0, 1].map(Some))),
                ],
            ),
            (
                "baskets",
                vec![
                    ("basket_id", common::ints([10, 11, 12].map(Some))),
                    ("customer_id", common::ints([1, 1, 2].map(Some))),
                ],
            ),
            (
                "lines",
                vec![
                    ("line_id", common::ints([1, 2, 3].map(Some))),
                    ("basket_ref", common::ints([10, 10, 12].map(Some))),
                ],
            ),
        ],
    );
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let recipe = serde_json::json!({
        "target_table": "t",
        "entity_grain": ["customer_id"],
        "relationships": [{"child": "lines.basket_ref", "parent": "baskets.basket_id"}],
        "derived_columns": [
            {"table": "baskets", "name": "basket_ref", "source_table": "lines", "expression": "COUNT(*)"}
        ],
        "label": {"name": "label", "column": "y"},
        "features": [
            {"name": "max_lines", "source_table": "baskets", "expression": "MAX(basket_ref)"},
            {"name": "min_lines", "source_table": "baskets", "expression": "MIN(basket_ref)"}
        ]
    });
    let table = common::table_by_key(&catalog, &recipe.to_string(), 1).await;
    assert_eq!(table["1"]["max_lines"], "2", "{table:?}");
    assert_eq!(table["1"]["min_lines"], "0", "{table:?}");
    assert_eq!(table["2"]["max_lines"], "1", "{table:?}");
}
