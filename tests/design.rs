//! The built-in crew: a recipe designed from the catalog, checked, validated and pruned.

mod common;

use datafusion::arrow::array::{ArrayRef, Float64Array, StringArray};
use featurecraft::compile::fragment::{inspect, parse_fragment};
use featurecraft::design::{DesignOptions, DesignRequest, design};
use featurecraft::run::RunOptions;
use featurecraft::run::validate::ValidateOptions;
use featurecraft::{CompileOptions, Dialect, LabelSpec, LabelType, compile_recipe};
use std::sync::Arc;

fn churn_request(max_features: Option<usize>) -> DesignRequest {
    DesignRequest {
        spine: "customers".into(),
        entity_grain: vec!["customer_id".into()],
        label: LabelSpec {
            name: "churned".into(),
            label_type: LabelType::Binary,
            column: Some("churned_at".into()),
            derivation: Some("CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END".into()),
            positive_class_value: Some(serde_json::json!(1)),
            ..Default::default()
        },
        max_features,
        point_in_time: None,
        windows: Vec::new(),
        relationships: Vec::new(),
        max_depth: None,
        primitives: Vec::new(),
    }
}

fn options(sample_size: usize) -> DesignOptions {
    DesignOptions {
        run: RunOptions {
            validate: ValidateOptions {
                sample_size,
                ..ValidateOptions::default()
            },
            ..RunOptions::default()
        },
        target_table: "churn_designed".into(),
        ..DesignOptions::default()
    }
}

#[tokio::test]
async fn the_designed_recipe_for_the_fixtures_compiles_validates_and_is_stable() {
    let catalog = common::retail().await;
    let first = design(&churn_request(None), &catalog, &options(500))
        .await
        .expect("designs");
    assert!(!first.run.has_errors(), "{:?}", first.run.error_paragraph());
    let summary = first.run.validation.as_ref().expect("validated");
    assert_eq!(summary.estimated_row_count, 1000);
    assert!(
        first.recipe.features.len() >= 40,
        "{}",
        first.recipe.features.len()
    );
    assert_eq!(
        first.considered,
        first.recipe.features.len() + first.dropped.len()
    );
    // Compiles in every dialect except where E040 refuses a construct (none is expected).
    for dialect in Dialect::ALL {
        let compiled = compile_recipe(
            &first.recipe,
            &catalog,
            &CompileOptions::for_dialect(dialect),
        );
        assert!(
            !compiled.has_errors(),
            "{dialect}: {:#?}",
            compiled.diagnostics
        );
    }
    // The same catalog gives the same recipe, byte for byte.
    let second = design(&churn_request(None), &catalog, &options(500))
        .await
        .expect("designs");
    let text = serde_json::to_string_pretty(&first.recipe).unwrap();
    assert_eq!(text, serde_json::to_string_pretty(&second.recipe).unwrap());
    insta::assert_snapshot!("churn_designed", text);
    // churn_cutoffs is the label's future (its rows exist until a customer churns): the
    // leakage screen keeps it out.
    assert!(
        first
            .recipe
            .features
            .iter()
            .all(|f| f.source_table != "churn_cutoffs"),
        "{text}"
    );
}

#[tokio::test]
async fn no_designed_feature_reads_the_labels_columns() {
    let catalog = common::retail().await;
    let designed = design(&churn_request(None), &catalog, &options(500))
        .await
        .expect("designs");
    for f in &designed.recipe.features {
        let expr = parse_fragment(
            &f.expression,
            featurecraft::RecipePath::Field("test".into()),
        )
        .unwrap();
        for column in inspect(&expr).columns {
            assert!(
                !column.name.eq_ignore_ascii_case("churned_at"),
                "{} reads the label's column: {}",
                f.name,
                f.expression
            );
            assert!(
                !column.name.eq_ignore_ascii_case("customer_id"),
                "{} reads the grain: {}",
                f.name,
                f.expression
            );
        }
    }
    let left_out = &designed.recipe.notes;
    assert!(
        left_out.contains("customers.churned_at (read by the label)"),
        "{left_out}"
    );
    assert!(
        left_out.contains("events.event_id (identifier-like"),
        "{left_out}"
    );
}

fn floats(values: impl IntoIterator<Item = Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from_iter(values))
}

/// 400 people (one in four positive), each with one activity row carrying a constant, an
/// all-NULL and a leaking column besides a useful one, and spine columns of the same kinds.
fn pruning_catalog() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let n = 400;
    let y = |i: i64| i64::from(i % 4 == 0);
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "people",
                vec![
                    ("person_id", common::ints((1..=n).map(Some))),
                    ("y", common::ints((1..=n).map(|i| Some(y(i))))),
                    ("constant_flag", common::ints((1..=n).map(|_| Some(7)))),
                    ("always_null", floats((1..=n).map(|_| None))),
                    (
                        "leaky",
                        floats((1..=n).map(|i| Some(y(i) as f64 * 50.0 + (i % 5) as f64))),
                    ),
                    ("tenure", common::ints((1..=n).map(|i| Some((i * 37) % 23)))),
                    (
                        "city",
                        Arc::new(StringArray::from_iter(
                            (1..=n).map(|i| Some(["north", "south", "east"][(i % 3) as usize])),
                        )),
                    ),
                ],
            ),
            (
                "activity",
                vec![
                    ("person_id", common::ints((1..=n).map(Some))),
                    ("fixed", common::ints((1..=n).map(|_| Some(5)))),
                    ("missing", floats((1..=n).map(|_| None))),
                    (
                        "signal",
                        floats((1..=n).map(|i| Some(y(i) as f64 * 1000.0 + (i % 9) as f64))),
                    ),
                    (
                        "minutes",
                        common::ints((1..=n).map(|i| Some((i * 13) % 17))),
                    ),
                ],
            ),
        ],
    );
    dir
}

fn people_request(max_features: Option<usize>) -> DesignRequest {
    DesignRequest {
        spine: "people".into(),
        entity_grain: vec!["person_id".into()],
        label: LabelSpec {
            name: "label".into(),
            label_type: LabelType::Binary,
            column: Some("y".into()),
            derivation: None,
            positive_class_value: Some(serde_json::json!(1)),
            ..Default::default()
        },
        max_features,
        point_in_time: None,
        windows: Vec::new(),
        relationships: Vec::new(),
        max_depth: None,
        primitives: Vec::new(),
    }
}

#[tokio::test]
async fn constant_all_null_and_leaking_features_are_dropped_with_their_reason() {
    let dir = pruning_catalog();
    let catalog = featurecraft::Catalog::load(dir.path()).await.unwrap();
    let designed = design(&people_request(None), &catalog, &options(10_000))
        .await
        .expect("designs");
    assert!(
        !designed.run.has_errors(),
        "{:?}",
        designed.run.error_paragraph()
    );
    let reason = |name: &str| {
        designed
            .dropped
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, why)| why.clone())
            .unwrap_or_else(|| panic!("{name} was not dropped: {:#?}", designed.dropped))
    };
    assert_eq!(reason("constant_flag"), "one value in every sampled row");
    assert_eq!(reason("always_null"), "NULL in every sampled row");
    assert!(reason("leaky").starts_with("leakage: AUC 1.000"));
    // One activity row per person: its values, not aggregates of one row.
    assert_eq!(reason("activity_fixed"), "one value in every sampled row");
    assert_eq!(reason("activity_missing"), "NULL in every sampled row");
    assert!(reason("activity_signal").starts_with("leakage: AUC 1.000"));
    let kept: Vec<&str> = designed
        .recipe
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    for name in ["tenure", "city", "activity_minutes"] {
        assert!(kept.contains(&name), "{name} missing from {kept:?}");
    }
    for (name, _) in &designed.dropped {
        assert!(!kept.contains(&name.as_str()));
        assert!(designed.recipe.notes.contains(name.as_str()), "{name}");
    }
    // What is left validates without a finding about its features.
    let summary = designed.run.validation.as_ref().unwrap();
    assert!(
        summary
            .warnings
            .iter()
            .all(|w| !w.starts_with("W120") && !w.starts_with("W121") && !w.starts_with("W125")),
        "{:?}",
        summary.warnings
    );
}

#[tokio::test]
async fn max_features_keeps_the_most_informative_and_says_how_many_were_considered() {
    let dir = pruning_catalog();
    let catalog = featurecraft::Catalog::load(dir.path()).await.unwrap();
    let all = design(&people_request(None), &catalog, &options(10_000))
        .await
        .expect("designs");
    let designed = design(&people_request(Some(2)), &catalog, &options(10_000))
        .await
        .expect("designs");
    assert_eq!(designed.recipe.features.len(), 2);
    assert!(
        designed.recipe.notes.contains(&format!(
            "Kept the 2 most informative of {}",
            all.recipe.features.len()
        )),
        "{}",
        designed.recipe.notes
    );
    assert!(!designed.run.has_errors());
}

#[tokio::test]
async fn a_design_request_naming_what_is_not_there_is_an_error() {
    let catalog = common::retail().await;
    let mut request = churn_request(None);
    request.spine = "customerz".into();
    let errors = design(&request, &catalog, &options(100)).await.unwrap_err();
    assert_eq!(errors[0].code, featurecraft::Code::E020);
    assert_eq!(errors[0].path_text().as_deref(), Some("design.spine"));
    let mut request = churn_request(None);
    request.entity_grain = vec!["customer".into()];
    let errors = design(&request, &catalog, &options(100)).await.unwrap_err();
    assert_eq!(errors[0].code, featurecraft::Code::E023);
}

/// Profiled text values become string literals of the designed features, written by
/// featurecraft's escaper: a quote after a backslash, or a doubled quote, stays the value.
#[tokio::test]
async fn profiled_values_with_quotes_and_backslashes_stay_their_values() {
    let dir = tempfile::tempdir().unwrap();
    let n = 200;
    let kinds = ["a\\'b", "it''s", "back\\"];
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "people",
                vec![
                    ("person_id", common::ints((1..=n).map(Some))),
                    (
                        "y",
                        // Not the kind (i % 3): a label the kinds predicted would be a leak.
                        common::ints((1..=n).map(|i| Some(i64::from(i % 2 == 0)))),
                    ),
                ],
            ),
            (
                "visits",
                vec![
                    // Two visits per person: a table of one row per person gives values.
                    (
                        "person_id",
                        common::ints((1..=n).map(|i| Some(i % 100 + 1))),
                    ),
                    (
                        "kind",
                        // The three odd values are the most frequent: they are profiled.
                        Arc::new(StringArray::from_iter((1..=n).map(|i| {
                            Some(if i % 10 == 0 {
                                "plain"
                            } else {
                                kinds[(i % 3) as usize]
                            })
                        }))),
                    ),
                ],
            ),
        ],
    );
    let catalog = featurecraft::Catalog::load(dir.path()).await.unwrap();
    let designed = design(&people_request(None), &catalog, &options(10_000))
        .await
        .expect("designs");
    assert!(
        !designed.run.has_errors(),
        "{:?}",
        designed.run.error_paragraph()
    );
    let mut literals = Vec::new();
    for feature in &designed.recipe.features {
        let expr = parse_fragment(
            &feature.expression,
            featurecraft::RecipePath::Field("test".into()),
        )
        .expect("parses");
        let _ = sqlparser::ast::visit_expressions(&expr, |e| {
            if let sqlparser::ast::Expr::Value(v) = e
                && let sqlparser::ast::Value::SingleQuotedString(s) = &v.value
            {
                literals.push(s.clone());
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
    }
    for kind in kinds {
        assert!(
            literals.contains(&kind.to_string()),
            "{kind} in {literals:?}"
        );
    }
}

fn point_in_time_request(windows: &[&str]) -> DesignRequest {
    serde_json::from_value(serde_json::json!({
        "spine": "churn_cutoffs",
        "entity_grain": ["customer_id", "cutoff_time"],
        "label": {"name": "churned_30d", "type": "binary", "column": "churned_30d", "positive_class_value": 1},
        "point_in_time": {
            "cutoff_column": "cutoff_time",
            "time_columns": {
                "events": "event_ts",
                "orders": "order_date",
                "plan_changes": "changed_at",
                "customers": null
            }
        },
        "windows": windows
    }))
    .unwrap()
}

#[tokio::test]
async fn a_point_in_time_design_windows_timed_tables_and_reads_as_of_values() {
    let catalog = common::retail().await;
    let designed = design(
        &point_in_time_request(&["7d", "30 days", "2 weeks"]),
        &catalog,
        &options(400),
    )
    .await
    .expect("designs");
    assert!(
        !designed.run.has_errors(),
        "{:?}",
        designed.run.error_paragraph()
    );
    let recipe = &designed.recipe;
    let pit = recipe.point_in_time.as_ref().expect("point in time");
    // It declares exactly the time columns of the tables its features read, except those
    // reached through a timed table (order items through their order), which bounds them.
    let read: std::collections::BTreeSet<String> = recipe
        .features
        .iter()
        .map(|f| f.source_table.to_ascii_lowercase())
        .filter(|t| t != "churn_cutoffs" && t != "order_items")
        .collect();
    let declared: std::collections::BTreeSet<String> = pit
        .time_columns
        .0
        .iter()
        .map(|(t, _)| t.to_ascii_lowercase())
        .collect();
    assert_eq!(read, declared);
    assert!(
        recipe
            .relationships
            .iter()
            .any(|r| r.child == "order_items.order_id" && r.parent == "orders.order_id"),
        "{:?}",
        recipe.relationships
    );
    // No table outside time_columns is read (it would not be bounded by the cutoff),
    // but order_items, bounded by its order's date.
    for f in &recipe.features {
        assert!(
            [
                "churn_cutoffs",
                "events",
                "orders",
                "order_items",
                "plan_changes",
                "customers"
            ]
            .contains(&f.source_table.as_str()),
            "{} reads {}",
            f.name,
            f.source_table
        );
    }
    // Through the path: aggregates only, windowed too.
    let items: Vec<&featurecraft::FeatureSpec> = recipe
        .features
        .iter()
        .filter(|f| f.source_table == "order_items")
        .collect();
    assert!(items.iter().any(|f| f.window.is_some()), "{items:#?}");
    for f in &items {
        let expr =
            parse_fragment(&f.expression, featurecraft::RecipePath::Field("x".into())).unwrap();
        assert!(inspect(&expr).aggregates, "{}", f.expression);
    }
    // Windows only on timed tables, written as a recipe writes them.
    let windows: std::collections::BTreeSet<&str> = recipe
        .features
        .iter()
        .filter_map(|f| f.window.as_deref())
        .collect();
    assert!(!windows.is_empty());
    assert!(
        windows.is_subset(&["7 days", "30 days", "14 days"].into_iter().collect()),
        "{windows:?}"
    );
    for f in recipe.features.iter().filter(|f| f.window.is_some()) {
        assert!(
            ["events", "orders", "order_items", "plan_changes"].contains(&f.source_table.as_str()),
            "{}",
            f.name
        );
    }
    // As-of values: row-level features of a timed table.
    let as_of: Vec<&str> = recipe
        .features
        .iter()
        .filter(|f| f.name.starts_with("last_"))
        .map(|f| f.expression.as_str())
        .collect();
    assert!(!as_of.is_empty(), "{:#?}", recipe.features);
    for expression in &as_of {
        let expr = parse_fragment(expression, featurecraft::RecipePath::Field("x".into())).unwrap();
        assert!(!inspect(&expr).aggregates, "{expression}");
    }
    // The static table's times may lie after the cutoff: none is read.
    for f in recipe
        .features
        .iter()
        .filter(|f| f.source_table == "customers")
    {
        assert!(
            !f.expression.contains("churned_at") && !f.expression.contains("signup_date"),
            "{}: {}",
            f.name,
            f.expression
        );
    }
    // The recipe compiles with no unbounded source and no unused time column, everywhere.
    for dialect in Dialect::ALL {
        let compiled = compile_recipe(recipe, &catalog, &CompileOptions::for_dialect(dialect));
        assert!(
            !compiled.has_errors(),
            "{dialect}: {:#?}",
            compiled.diagnostics
        );
        assert!(
            compiled
                .diagnostics
                .iter()
                .all(|d| !matches!(d.code, featurecraft::Code::W012 | featurecraft::Code::W014)),
            "{dialect}: {:#?}",
            compiled.diagnostics
        );
    }
    assert!(recipe.notes.contains("point in time"), "{}", recipe.notes);
    assert!(
        recipe
            .notes
            .contains("subscriptions (not in point_in_time.time_columns"),
        "{}",
        recipe.notes
    );
}

#[tokio::test]
async fn a_design_with_a_bad_window_or_windows_without_a_cutoff_is_an_error() {
    let catalog = common::retail().await;
    let errors = design(
        &point_in_time_request(&["1 month"]),
        &catalog,
        &options(100),
    )
    .await
    .expect_err("months are refused");
    assert_eq!(errors[0].code, featurecraft::Code::E026);
    assert_eq!(
        errors[0].path.as_ref().unwrap().to_string(),
        "design.windows[0]"
    );
    let mut request = churn_request(None);
    request.windows = vec!["7d".into()];
    let errors = design(&request, &catalog, &options(100))
        .await
        .expect_err("no cutoff");
    assert_eq!(errors[0].code, featurecraft::Code::E026);
}

#[tokio::test]
async fn a_key_with_few_values_is_a_category_and_one_with_many_an_identifier() {
    let dir = tempfile::tempdir().unwrap();
    let n = 400;
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "people",
                vec![
                    ("person_id", common::ints((1..=n).map(Some))),
                    (
                        "y",
                        common::ints((1..=n).map(|i| Some(i64::from(i % 4 == 0)))),
                    ),
                ],
            ),
            (
                "purchases",
                vec![
                    ("purchase_id", common::ints((1..=3 * n).map(Some))),
                    (
                        "person_id",
                        common::ints((1..=3 * n).map(|i| Some(i % n + 1))),
                    ),
                    // 8 products, the way a product code is a category.
                    (
                        "product_id",
                        common::ints((1..=3 * n).map(|i| Some(i % 8 + 100))),
                    ),
                    (
                        "store_key",
                        Arc::new(StringArray::from_iter(
                            (1..=3 * n).map(|i| Some(["a1", "b2", "c3"][(i % 3) as usize])),
                        )),
                    ),
                ],
            ),
        ],
    );
    let catalog = featurecraft::Catalog::load(dir.path()).await.unwrap();
    let proposal = featurecraft::design::propose(&people_request(None), &catalog, &options(10_000))
        .await
        .expect("proposes");
    let expressions: Vec<&str> = proposal
        .features
        .iter()
        .map(|f| f.expression.as_str())
        .collect();
    // Categories: distinct counts and counts of the top values (integers stay numbers).
    for wanted in [
        "COUNT(DISTINCT product_id)",
        "COUNT(DISTINCT store_key)",
        "COUNT(CASE WHEN store_key = 'a1' THEN 1 END)",
    ] {
        assert!(
            expressions.contains(&wanted),
            "{wanted} in {expressions:#?}"
        );
    }
    assert!(
        expressions
            .iter()
            .any(|e| e.starts_with("COUNT(CASE WHEN product_id = 10") && !e.contains('\'')),
        "{expressions:#?}"
    );
    // Never summed as a number, and the high-cardinality key is left out.
    assert!(!expressions.iter().any(|e| e.contains("SUM(product_id)")));
    assert!(!expressions.iter().any(|e| e.contains("purchase_id")));
    assert!(
        proposal
            .left_out
            .iter()
            .any(|(what, why)| what == "purchases.purchase_id" && why.contains("identifier-like")),
        "{:?}",
        proposal.left_out
    );
}

/// Customers with sessions, transactions (by session), lines (by transaction), refunds
/// (by `txn_ref`, a name discovery cannot match), and pings whose `device_id` is unique
/// in two tables.
fn related_catalog() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let n: i64 = 300;
    let (sessions, transactions, lines) = (2 * n, 4 * n, 8 * n);
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "customers",
                vec![
                    ("customer_id", common::ints((1..=n).map(Some))),
                    (
                        "y",
                        common::ints((1..=n).map(|i| Some(i64::from(i % 4 == 0)))),
                    ),
                ],
            ),
            (
                "sessions",
                vec![
                    ("session_id", common::ints((1..=sessions).map(Some))),
                    (
                        "customer_id",
                        common::ints((1..=sessions).map(|i| Some(i % n + 1))),
                    ),
                ],
            ),
            (
                "transactions",
                vec![
                    ("transaction_id", common::ints((1..=transactions).map(Some))),
                    (
                        "session_id",
                        common::ints((1..=transactions).map(|i| Some(i % sessions + 1))),
                    ),
                    (
                        "amount",
                        floats((1..=transactions).map(|i| Some((i % 97) as f64))),
                    ),
                ],
            ),
            (
                "lines",
                vec![
                    ("line_id", common::ints((1..=lines).map(Some))),
                    (
                        "transaction_id",
                        common::ints((1..=lines).map(|i| Some(i % transactions + 1))),
                    ),
                    ("qty", common::ints((1..=lines).map(|i| Some(i % 7 + 1)))),
                ],
            ),
            (
                "refunds",
                vec![
                    ("refund_id", common::ints((1..=100).map(Some))),
                    ("txn_ref", common::ints((1..=100).map(|i| Some(i * 3)))),
                    ("refunded", floats((1..=100).map(|i| Some(i as f64)))),
                ],
            ),
            (
                "devices",
                vec![
                    ("device_id", common::ints((1..=60).map(Some))),
                    (
                        "customer_id",
                        common::ints((1..=60).map(|i| Some(i % n + 1))),
                    ),
                ],
            ),
            (
                "device_registry",
                vec![
                    ("device_id", common::ints((1..=60).map(Some))),
                    ("vendor_code", common::ints((1..=60).map(|i| Some(i % 3)))),
                ],
            ),
            (
                "pings",
                vec![
                    ("ping_id", common::ints((1..=240).map(Some))),
                    (
                        "device_id",
                        common::ints((1..=240).map(|i| Some(i % 60 + 1))),
                    ),
                    ("strength", floats((1..=240).map(|i| Some((i % 11) as f64)))),
                ],
            ),
        ],
    );
    dir
}

#[tokio::test]
async fn the_crew_follows_discovered_and_declared_relationships_and_reports_ambiguity() {
    let dir = related_catalog();
    let catalog = featurecraft::Catalog::load(dir.path()).await.unwrap();
    let mut request = people_request(None);
    request.spine = "customers".into();
    request.entity_grain = vec!["customer_id".into()];
    request.relationships = vec![featurecraft::contract::recipe::Relationship {
        child: "refunds.txn_ref".into(),
        parent: "transactions.transaction_id".into(),
    }];
    let proposal = featurecraft::design::propose(&request, &catalog, &options(10_000))
        .await
        .expect("proposes");
    let tables: std::collections::BTreeSet<&str> = proposal
        .features
        .iter()
        .map(|f| f.source_table.as_str())
        .collect();
    // Two hops (lines → transactions → sessions), one (transactions → sessions), the
    // declared one (refunds → transactions → sessions); pings' `device_id` is unique in
    // two tables, so its parent is ambiguous and pings is not read.
    for table in ["sessions", "transactions", "lines", "refunds", "devices"] {
        assert!(tables.contains(table), "{table} in {tables:?}");
    }
    // device_registry's key is also devices' key, one to one: it is reached through it.
    assert!(tables.contains("device_registry"), "{tables:?}");
    assert!(!tables.contains("pings"), "{tables:?}");
    assert!(
        proposal
            .relationships
            .iter()
            .any(|r| r.starts_with("pings.device_id could point at") && r.contains("ambiguous")),
        "{:?}",
        proposal.relationships
    );
    let designed = design(&request, &catalog, &options(10_000))
        .await
        .expect("designs");
    assert!(
        !designed.run.has_errors(),
        "{:?}",
        designed.run.error_paragraph()
    );
    let links: Vec<(String, String)> = designed
        .recipe
        .relationships
        .iter()
        .map(|r| (r.child.clone(), r.parent.clone()))
        .collect();
    for (child, parent) in [
        ("transactions.session_id", "sessions.session_id"),
        ("lines.transaction_id", "transactions.transaction_id"),
        ("refunds.txn_ref", "transactions.transaction_id"),
    ] {
        assert!(
            links.contains(&(child.to_string(), parent.to_string())),
            "{child} → {parent} in {links:?}"
        );
    }
    assert!(
        designed.recipe.notes.contains("Relationships: "),
        "{}",
        designed.recipe.notes
    );
    for dialect in Dialect::ALL {
        let compiled = compile_recipe(
            &designed.recipe,
            &catalog,
            &CompileOptions::for_dialect(dialect),
        );
        assert!(
            !compiled.has_errors(),
            "{dialect}: {:#?}",
            compiled.diagnostics
        );
    }
}

#[tokio::test]
async fn a_declared_relationship_that_does_not_hold_is_an_error_at_its_path() {
    let dir = related_catalog();
    let catalog = featurecraft::Catalog::load(dir.path()).await.unwrap();
    let mut request = people_request(None);
    request.spine = "customers".into();
    request.entity_grain = vec!["customer_id".into()];
    request.relationships = vec![featurecraft::contract::recipe::Relationship {
        child: "refunds.txn_reff".into(),
        parent: "transactions.transaction_id".into(),
    }];
    let errors = design(&request, &catalog, &options(1_000))
        .await
        .expect_err("an unknown column is refused");
    assert_eq!(errors[0].code, featurecraft::Code::E021);
    assert_eq!(
        errors[0].path.as_ref().unwrap().to_string(),
        "design.relationships[0].child"
    );
}

#[tokio::test]
async fn at_depth_two_the_crew_stacks_aggregates_of_each_child_and_names_them_as_featuretools() {
    let dir = related_catalog();
    let catalog = featurecraft::Catalog::load(dir.path()).await.unwrap();
    let mut request = people_request(None);
    request.spine = "customers".into();
    request.entity_grain = vec!["customer_id".into()];
    let proposal = featurecraft::design::propose(&request, &catalog, &options(10_000))
        .await
        .expect("proposes");
    let described = |text: &str| {
        proposal
            .features
            .iter()
            .find(|f| f.description == text)
            .unwrap_or_else(|| panic!("a feature described {text}"))
    };
    // sessions aggregate their transactions, transactions their lines.
    let mean_count = described("MEAN(sessions.COUNT(transactions))");
    assert_eq!(mean_count.source_table, "sessions");
    described("STD(sessions.SUM(transactions.amount))");
    described("SUM(sessions.MAX(transactions.amount))");
    described("MEAN(transactions.SUM(lines.qty))");
    // A stack equal to a depth-1 feature is not proposed.
    for redundant in [
        "SUM(sessions.COUNT(transactions))",
        "SUM(sessions.SUM(transactions.amount))",
        "MAX(sessions.MAX(transactions.amount))",
        "MIN(sessions.MIN(transactions.amount))",
    ] {
        assert!(
            proposal.features.iter().all(|f| f.description != redundant),
            "{redundant}"
        );
    }

    let designed = design(&request, &catalog, &options(10_000))
        .await
        .expect("designs");
    assert!(
        !designed.run.has_errors(),
        "{:?}",
        designed.run.error_paragraph()
    );
    let kept = designed
        .recipe
        .features
        .iter()
        .find(|f| f.description == "MEAN(sessions.SUM(transactions.amount))")
        .unwrap_or_else(|| panic!("kept: {:?}", designed.dropped));
    assert!(
        designed
            .recipe
            .derived_columns
            .iter()
            .any(|d| d.table == "sessions" && d.source_table == "transactions"),
        "{:?}",
        designed.recipe.derived_columns
    );
    // Its values, against the catalog's own construction: customer c has the sessions
    // s with s % 300 + 1 = c, session s the transactions t with t % 600 + 1 = s, each of
    // amount t % 97. (Every session has two transactions, so the mean count is constant
    // and dropped.)
    let text = serde_json::to_string(&designed.recipe).unwrap();
    let table = common::table_by_key(&catalog, &text, 1).await;
    let (n, sessions, transactions) = (300_i64, 600_i64, 1200_i64);
    for c in [1_i64, 2, 150, 300] {
        let mine: Vec<i64> = (1..=sessions).filter(|s| s % n + 1 == c).collect();
        let sums: Vec<f64> = mine
            .iter()
            .map(|s| {
                (1..=transactions)
                    .filter(|t| t % sessions + 1 == *s)
                    .map(|t| (t % 97) as f64)
                    .sum::<f64>()
            })
            .collect();
        let mean = sums.iter().sum::<f64>() / sums.len() as f64;
        let got: f64 = table[&c.to_string()][&kept.name].parse().unwrap();
        assert!((got - mean).abs() < 1e-9, "customer {c}: {got} vs {mean}");
    }
    for dialect in Dialect::ALL {
        let compiled = compile_recipe(
            &designed.recipe,
            &catalog,
            &CompileOptions::for_dialect(dialect),
        );
        assert!(
            !compiled.has_errors(),
            "{dialect}: {:#?}",
            compiled.diagnostics
        );
    }
}

#[tokio::test]
async fn max_depth_and_primitives_choose_what_is_proposed() {
    let dir = related_catalog();
    let catalog = featurecraft::Catalog::load(dir.path()).await.unwrap();
    let mut request = people_request(None);
    request.spine = "customers".into();
    request.entity_grain = vec!["customer_id".into()];
    request.max_depth = Some(1);
    let proposal = featurecraft::design::propose(&request, &catalog, &options(10_000))
        .await
        .expect("proposes");
    assert!(proposal.derived.is_empty());
    assert!(
        proposal
            .features
            .iter()
            .all(|f| !f.description.contains("(sessions."))
    );

    request.max_depth = None;
    request.primitives = vec!["count".into(), "MEAN".into()];
    let proposal = featurecraft::design::propose(&request, &catalog, &options(10_000))
        .await
        .expect("proposes");
    let expressions: Vec<&str> = proposal
        .features
        .iter()
        .map(|f| f.expression.as_str())
        .collect();
    assert!(
        expressions.contains(&"AVG(count_transactions)"),
        "{expressions:?}"
    );
    assert!(
        expressions
            .iter()
            .all(|e| !e.starts_with("SUM(") && !e.starts_with("MAX(") && !e.starts_with("STDDEV")),
        "{expressions:?}"
    );

    request.primitives = vec!["count".into(), "avrage".into()];
    let errors = featurecraft::design::propose(&request, &catalog, &options(1_000))
        .await
        .expect_err("an unknown primitive is refused");
    assert_eq!(errors[0].code, featurecraft::Code::E001);
    assert_eq!(
        errors[0].path.as_ref().unwrap().to_string(),
        "design.primitives[1]"
    );
    request.primitives = Vec::new();
    request.max_depth = Some(3);
    let errors = featurecraft::design::propose(&request, &catalog, &options(1_000))
        .await
        .expect_err("depth 3 is refused");
    assert_eq!(
        errors[0].path.as_ref().unwrap().to_string(),
        "design.max_depth"
    );
}

#[tokio::test]
async fn a_point_in_time_design_stacks_the_children_of_timed_tables_as_of_each_cutoff() {
    let catalog = common::retail().await;
    let mut request = point_in_time_request(&["30d"]);
    let pit = request.point_in_time.as_mut().unwrap();
    pit.time_columns.0.push(("order_items".into(), None));
    let designed = design(&request, &catalog, &options(400))
        .await
        .expect("designs");
    assert!(
        !designed.run.has_errors(),
        "{:?}",
        designed.run.error_paragraph()
    );
    let recipe = &designed.recipe;
    // orders (timed by order_date) aggregate their items per (customer, cutoff).
    assert!(
        recipe
            .features
            .iter()
            .any(|f| f.description == "MEAN(orders.SUM(order_items.quantity))"),
        "{:#?}",
        recipe
            .features
            .iter()
            .map(|f| &f.description)
            .collect::<Vec<_>>()
    );
    assert!(
        recipe
            .derived_columns
            .iter()
            .all(|d| d.table == "orders" && d.source_table == "order_items")
            && !recipe.derived_columns.is_empty()
    );
    // The recipe declares the child's entry, and compiles without warnings in every dialect.
    let pit = recipe.point_in_time.as_ref().unwrap();
    assert_eq!(pit.time_columns.get("order_items"), Some(None));
    for dialect in Dialect::ALL {
        let compiled = compile_recipe(recipe, &catalog, &CompileOptions::for_dialect(dialect));
        assert!(
            !compiled.has_errors()
                && compiled
                    .diagnostics
                    .iter()
                    .all(|d| d.code != featurecraft::Code::W012),
            "{dialect}: {:#?}",
            compiled.diagnostics
        );
    }
    // Without an entry for order_items, nothing is stacked on it, and notes say why.
    let designed = design(&point_in_time_request(&["30d"]), &catalog, &options(400))
        .await
        .expect("designs");
    assert!(designed.recipe.derived_columns.is_empty());
    assert!(
        designed
            .recipe
            .notes
            .contains("order_items per orders row (not stacked: order_items is not in point_in_time.time_columns)"),
        "{}",
        designed.recipe.notes
    );
}

#[tokio::test]
async fn a_design_for_a_schedule_and_a_label_from_the_future_keeps_both_and_validates() {
    let catalog = common::retail().await;
    let request: DesignRequest = serde_json::from_value(serde_json::json!({
        "spine": "events",
        "entity_grain": ["customer_id", "cutoff_time"],
        "label": {"name": "churned_30d", "type": "binary", "positive_class_value": 1,
                  "source_table": "events",
                  "expression": "CASE WHEN COUNT(*) = 0 THEN 1 ELSE 0 END", "window": "30 days"},
        "point_in_time": {
            "cutoff_column": "cutoff_time",
            "time_columns": {"events": "event_ts", "orders": "order_date", "customers": null},
            "schedule": {"source_table": "events", "start": "2024-07-01", "every": "30 days",
                         "until": "last_event", "max_per_entity": 3}
        },
        "windows": ["30d"],
        "max_depth": 1
    }))
    .unwrap();
    let designed = design(&request, &catalog, &options(500)).await.unwrap();
    let recipe = &designed.recipe;
    assert_eq!(recipe.label, request.label);
    let pit = recipe.point_in_time.as_ref().unwrap();
    assert_eq!(
        pit.schedule,
        request.point_in_time.as_ref().unwrap().schedule
    );
    // The schedule's source keeps its time column, and is read like any timed table:
    // its aggregates, windowed, over the rows before each generated cutoff.
    assert_eq!(pit.time_columns.get("events"), Some(Some("event_ts")));
    assert!(
        recipe
            .features
            .iter()
            .any(|f| f.source_table == "events" && f.window.as_deref() == Some("30 days")),
        "{:?}",
        recipe.features.iter().map(|f| &f.name).collect::<Vec<_>>()
    );
    assert!(
        !designed.run.has_errors(),
        "{:#?}",
        designed.run.diagnostics
    );
    let summary = designed.run.validation.as_ref().unwrap();
    // Up to three cutoffs for each customer active after 2024-07-01.
    assert!(summary.estimated_row_count > 1000, "{summary:?}");
    let compiled = compile_recipe(
        recipe,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DuckDb),
    );
    assert!(compiled.sql.is_some(), "{:#?}", compiled.diagnostics);
}

/// Copies a catalog's files in the reverse of their sorted order, so that the folder
/// lists them in another order than the original (on file systems that list by creation).
fn copy_reversed(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries.into_iter().rev() {
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_reversed(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The same catalog and request give byte-identical output, whatever the order of the
/// files on disk, the thread count or the run: the retail catalog has views (one joining a
/// child table to the entity) and two levels of relationships (order items → orders →
/// customers).
#[tokio::test]
async fn a_design_is_the_same_bytes_whatever_the_file_order_and_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    copy_reversed(
        &common::fixtures().join("retail"),
        &dir.path().join("retail"),
    );
    let shuffled = featurecraft::Catalog::load(&dir.path().join("retail"))
        .await
        .unwrap();
    let original = common::retail().await;
    let mut outputs = Vec::new();
    for (catalog, partitions) in [
        (&original, 1),
        (&shuffled, 4),
        (&original, 3),
        (&shuffled, 2),
    ] {
        let mut options = options(500);
        options.run.validate.target_partitions = partitions;
        let designed = design(&churn_request(Some(60)), catalog, &options)
            .await
            .expect("designs");
        let text = serde_json::to_string_pretty(&(&designed.recipe, &designed.dropped)).unwrap();
        outputs.push(text);
    }
    for (i, text) in outputs.iter().enumerate().skip(1) {
        assert!(text == &outputs[0], "run {i} differs from run 0");
    }
}

/// The retail design reads no time as calendar time (recency in days instead), keeps no
/// two features with the same value on every sampled row, and drops the copies a view
/// makes of a table naming the kept one.
#[tokio::test]
async fn the_retail_design_has_recency_and_no_duplicate_columns() {
    let catalog = common::retail().await;
    let designed = design(&churn_request(None), &catalog, &options(10_000))
        .await
        .expect("designs");
    let names: Vec<&str> = designed
        .recipe
        .features
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    for f in &designed.recipe.features {
        assert!(
            !f.name.starts_with("latest_") && !f.name.starts_with("earliest_"),
            "a raw time: {} = {}",
            f.name,
            f.expression
        );
    }
    for recency in [
        "days_since_latest_orders_order_date",
        "days_since_earliest_orders_order_date",
        "days_since_latest_events_event_ts",
    ] {
        assert!(names.contains(&recency), "{recency} missing from {names:?}");
    }
    let reason = |name: &str| {
        designed
            .dropped
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, why)| why.as_str())
    };
    // customer_order_items (a view) is order_items with the customer's key: listed first,
    // its features are kept and the table's are the copies.
    assert_eq!(
        reason("sum_order_items_quantity"),
        Some(
            "duplicate of `sum_customer_order_items_quantity`: the same value on every sampled row"
        )
    );
    // No two kept columns are equal on the sample.
    let compiled = compile_recipe(
        &designed.recipe,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let plan = compiled.plan.expect("compiles");
    let rows = featurecraft::run::validate::sample(&plan, &catalog, &ValidateOptions::default())
        .await
        .unwrap()
        .rows;
    let columns: Vec<ArrayRef> = (0..names.len())
        .map(|i| rows.column(plan.grain.len() + i).clone())
        .collect();
    for (i, a) in columns.iter().enumerate() {
        for (j, b) in columns.iter().enumerate().skip(i + 1) {
            let equal = a.data_type() == b.data_type() && a.as_ref() == b.as_ref();
            assert!(
                !equal,
                "`{}` and `{}` are equal on the sample",
                names[i], names[j]
            );
        }
    }
}

/// A table with one row per entity (here customers, under a spine of labels) gives that
/// row's values: numbers as they are, categories as the value, times as recency; never
/// aggregates of one row or one-hot counts.
#[tokio::test]
async fn a_table_with_one_row_per_entity_gives_row_level_features() {
    use datafusion::arrow::array::RecordBatch;
    let dir = tempfile::tempdir().unwrap();
    common::copy_dir(&common::fixtures().join("retail"), dir.path());
    // labels(customer_id, churned) from customers.
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_parquet(
        "customers",
        dir.path().join("customers.parquet").to_str().unwrap(),
        Default::default(),
    )
    .await
    .unwrap();
    let batches = ctx
        .sql("SELECT customer_id, CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END AS churned FROM customers")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let file = std::fs::File::create(dir.path().join("labels.parquet")).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&RecordBatch::clone(&batch)).unwrap();
    writer.close().unwrap();
    let catalog = featurecraft::Catalog::load(dir.path()).await.unwrap();
    let mut request = churn_request(None);
    request.spine = "labels".into();
    request.label.column = Some("churned".into());
    request.label.derivation = None;
    let designed = design(&request, &catalog, &options(10_000))
        .await
        .expect("designs");
    let from_customers: Vec<(&str, &str)> = designed
        .recipe
        .features
        .iter()
        .filter(|f| f.source_table == "customers")
        .map(|f| (f.name.as_str(), f.expression.as_str()))
        .collect();
    for expected in [
        ("customers_age", "age"),
        ("customers_country", "country"),
        ("customers_monthly_fee", "monthly_fee"),
        ("days_since_customers_signup_date", ""),
    ] {
        assert!(
            from_customers
                .iter()
                .any(|(n, e)| *n == expected.0 && e.contains(expected.1)),
            "{expected:?} missing from {from_customers:?}"
        );
    }
    for (name, expression) in &from_customers {
        let expr = parse_fragment(expression, featurecraft::RecipePath::Field("t".into())).unwrap();
        assert!(
            !inspect(&expr).aggregates,
            "{name} aggregates one row: {expression}"
        );
    }
    // churned_at is the label in another form. Set only for the churned, it is not scored
    // (the screen reads rows where the feature is present, all of one class here), but it
    // is NULL for most rows and goes with the null threshold.
    assert!(
        designed
            .dropped
            .iter()
            .any(|(n, why)| n == "days_since_customers_churned_at" && why.starts_with("NULL in")),
        "{:#?}",
        designed.dropped
    );
}
