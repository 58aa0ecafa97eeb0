//! Compiling the fixture recipes: SQL per dialect, the round-trip invariant, diagnostics.

mod common;

use featurecraft::compile::render::reparse;
use featurecraft::{Code, CompileOptions, Dialect, compile};

/// The expected code of a bad recipe is the prefix of its file name (`E021_unknown_column`).
fn expected_code(stem: &str) -> &str {
    &stem[..4]
}

/// Bad recipes compile in the generic dialect, except those about a dialect's limits.
fn dialect_for(stem: &str) -> Dialect {
    common::bad_fixture_dialect(stem)
}

#[test]
fn every_good_recipe_compiles_in_every_dialect_and_reparses_to_the_same_statement() {
    let catalog = common::retail_json();
    for (stem, text) in common::recipes("good") {
        for dialect in Dialect::ALL {
            let compiled = compile(&text, &catalog, &CompileOptions::for_dialect(dialect));
            let errors: Vec<_> = compiled
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .collect();
            assert!(errors.is_empty(), "{stem} in {dialect}: {errors:#?}");
            let sql = compiled.sql.expect("SQL when there is no error");
            let plan = compiled.plan.expect("a plan");
            let rendered = featurecraft::render(&plan, dialect).expect("renders");
            let parsed = reparse(&sql, dialect)
                .unwrap_or_else(|e| panic!("{stem} in {dialect} does not reparse: {e}\n{sql}"));
            assert_eq!(
                parsed,
                vec![rendered.statement.clone()],
                "{stem} in {dialect}: reparsed AST differs\n{sql}"
            );
            // Printing is deterministic: a second render gives the same text.
            assert_eq!(featurecraft::render(&plan, dialect).unwrap().sql, sql);
            insta::assert_snapshot!(format!("good__{stem}__{dialect}"), sql);
        }
    }
}

/// The trap recipes (fixtures/recipes/traps) hit what engines disagree on. In every dialect
/// each compiles to SQL that reads back to the same statement, or is refused with E040 only;
/// one snapshot per recipe holds every dialect's SQL, so the spellings can be reviewed side
/// by side (the per-engine results are in tests/dialects.rs).
#[test]
fn every_trap_recipe_compiles_or_is_refused_in_every_dialect() {
    let catalog = common::retail_json();
    for (stem, text) in common::recipes("traps") {
        let mut all = String::new();
        for dialect in Dialect::ALL {
            let compiled = compile(&text, &catalog, &CompileOptions::for_dialect(dialect));
            let errors: Vec<_> = compiled
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .collect();
            all.push_str(&format!("-- {dialect}\n"));
            if !errors.is_empty() {
                assert!(
                    errors.iter().all(|d| d.code == Code::E040),
                    "{stem} in {dialect}: {errors:#?}"
                );
                for d in errors {
                    all.push_str(&format!("-- refused: {}\n", d.message));
                }
                all.push('\n');
                continue;
            }
            let sql = compiled.sql.expect("SQL when there is no error");
            let rendered =
                featurecraft::render(&compiled.plan.expect("a plan"), dialect).expect("renders");
            let parsed = reparse(&sql, dialect)
                .unwrap_or_else(|e| panic!("{stem} in {dialect} does not reparse: {e}\n{sql}"));
            assert_eq!(
                parsed,
                vec![rendered.statement],
                "{stem} in {dialect}\n{sql}"
            );
            all.push_str(&sql);
            all.push_str(";\n\n");
        }
        insta::assert_snapshot!(format!("traps__{stem}"), all);
    }
}

#[test]
fn directory_and_json_catalogs_compile_to_the_same_sql() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let from_dir = runtime.block_on(common::retail());
    let from_json = common::retail_json();
    for (stem, text) in common::recipes("good") {
        let options = CompileOptions::default();
        let a = compile(&text, &from_dir, &options);
        let b = compile(&text, &from_json, &options);
        assert_eq!(a.sql, b.sql, "{stem}");
        assert_eq!(a.diagnostics, b.diagnostics, "{stem}");
    }
}

#[test]
fn every_bad_recipe_reports_its_code_with_a_path() {
    let catalog = common::retail_json();
    let mut seen = std::collections::BTreeSet::new();
    for (stem, text) in common::recipes("bad") {
        let dialect = dialect_for(&stem);
        let compiled = compile(&text, &catalog, &CompileOptions::for_dialect(dialect));
        let code = expected_code(&stem);
        assert!(
            compiled.diagnostics.iter().any(|d| d.code.as_str() == code),
            "{stem}: expected {code}, got {:#?}",
            compiled.diagnostics
        );
        if code.starts_with('E') {
            assert!(
                compiled.sql.is_none(),
                "{stem}: an error must withhold the SQL"
            );
        }
        seen.insert(code.to_string());
        let report: String = compiled
            .diagnostics
            .iter()
            .map(|d| d.render(d.path.as_deref().and_then(|p| compiled.fragment_at(p))))
            .collect();
        insta::assert_snapshot!(format!("bad__{stem}"), report);
    }
    // E005 needs a recipe wider than the limit (too_many_features_are_refused_early builds
    // one), E029 a catalog with a table named like a CTE (a_table_named_like_a_cte_is_…
    // builds one); E042 means a featurecraft bug, which no recipe should reach.
    let all: std::collections::BTreeSet<String> = Code::compile()
        .filter(|c| !matches!(c, Code::E005 | Code::E029 | Code::E042))
        .map(|c| c.as_str().to_string())
        .collect();
    assert_eq!(seen, all, "every diagnostic code has a bad recipe");
}

#[test]
fn too_many_features_are_refused_early() {
    let catalog = common::retail_json();
    let recipe = |features: usize| {
        serde_json::json!({
            "target_table": "wide",
            "entity_grain": ["customer_id"],
            "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NULL THEN 0 ELSE 1 END"},
            "features": (0..features)
                .map(|i| serde_json::json!({"name": format!("f{i}"), "expression": format!("monthly_fee * {i}"), "source_table": "customers"}))
                .collect::<Vec<_>>()
        })
        .to_string()
    };
    let options = CompileOptions {
        max_features: 50,
        ..CompileOptions::default()
    };
    assert!(compile(&recipe(50), &catalog, &options).sql.is_some());
    let refused = compile(&recipe(51), &catalog, &options);
    assert!(refused.sql.is_none());
    let d = &refused.diagnostics[0];
    assert_eq!(
        (d.code, d.path_text().as_deref()),
        (Code::E005, Some("features"))
    );
    assert_eq!(d.message, "the recipe has 51 features; the limit is 50");
    // The default limit is the documented one.
    let wide = compile(
        &recipe(compile::analyze::MAX_FEATURES + 1),
        &catalog,
        &CompileOptions::default(),
    );
    assert_eq!(wide.diagnostics[0].code, Code::E005);
}

#[test]
fn names_longer_than_128_characters_are_refused_at_compile() {
    let catalog = common::retail_json();
    for target in ["x".repeat(129), format!("retail.{}", "y".repeat(5000))] {
        let text = serde_json::json!({
            "target_table": target,
            "entity_grain": ["customer_id"],
            "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NULL THEN 0 ELSE 1 END"},
            "features": [{"name": "plan", "expression": "plan", "source_table": "customers"}]
        })
        .to_string();
        let compiled = compile(&text, &catalog, &CompileOptions::default());
        let d = compiled
            .diagnostics
            .iter()
            .find(|d| d.code == Code::E003)
            .expect("E003");
        assert_eq!(d.path_text().as_deref(), Some("target_table"));
        assert!(d.message.contains("the limit is 128"), "{}", d.message);
        assert!(
            d.message.len() < 300,
            "the message stays short: {}",
            d.message
        );
    }
}

#[test]
fn a_typo_in_a_column_points_at_it_and_suggests_the_column() {
    let catalog = common::retail_json();
    let text = common::recipes("bad")
        .into_iter()
        .find(|(s, _)| s == "E021_unknown_column")
        .unwrap()
        .1;
    let compiled = compile(&text, &catalog, &CompileOptions::default());
    let d = compiled
        .diagnostics
        .iter()
        .find(|d| d.code == Code::E021)
        .unwrap();
    assert_eq!(d.path_text().as_deref(), Some("features[1].expression"));
    let span = d.span.expect("a span");
    assert_eq!((span.start.column, span.end.column), (5, 10));
    assert!(
        d.hints.iter().any(|h| h.contains("`amount`")),
        "{:?}",
        d.hints
    );
}

#[test]
fn leakage_is_an_error_in_strict_mode() {
    let catalog = common::retail_json();
    let text = common::recipes("bad")
        .into_iter()
        .find(|(s, _)| s == "W010_leakage")
        .unwrap()
        .1;
    let lenient = compile(&text, &catalog, &CompileOptions::default());
    assert!(lenient.sql.is_some());
    let strict = compile(
        &text,
        &catalog,
        &CompileOptions {
            strict: true,
            ..Default::default()
        },
    );
    assert!(strict.sql.is_none());
    assert!(
        strict
            .diagnostics
            .iter()
            .any(|d| d.code == Code::W010 && d.is_error())
    );
}

#[test]
fn reserved_words_are_valid_names_and_always_quoted() {
    let catalog = common::retail_json();
    let text = serde_json::json!({
        "target_table": "select",
        "entity_grain": ["customer_id"],
        "label": {"name": "order", "column": "churned_at", "derivation": "CASE WHEN churned_at IS NULL THEN 0 ELSE 1 END"},
        "features": [
            {"name": "from", "expression": "COUNT(*)", "source_table": "orders"},
            {"name": "group", "expression": "plan", "source_table": "customers"}
        ]
    })
    .to_string();
    for dialect in Dialect::ALL {
        let compiled = compile(&text, &catalog, &CompileOptions::for_dialect(dialect));
        let sql = compiled
            .sql
            .unwrap_or_else(|| panic!("{dialect}: {:#?}", compiled.diagnostics));
        let quote = dialect.capabilities().quote;
        for name in ["select", "order", "from", "group"] {
            assert!(
                sql.contains(&format!("{quote}{name}{quote}")),
                "{dialect}: `{name}` quoted\n{sql}"
            );
        }
        let rendered = featurecraft::render(&compiled.plan.unwrap(), dialect).unwrap();
        assert_eq!(
            reparse(&sql, dialect).unwrap(),
            vec![rendered.statement],
            "{dialect}"
        );
    }
}

#[test]
fn only_distinct_aggregates_other_than_count_get_a_cte_of_their_own_in_datafusion() {
    let catalog = common::retail_json();
    let text = serde_json::json!({
        "target_table": "t",
        "entity_grain": ["customer_id"],
        "label": {"name": "churned", "column": "churned_at", "derivation": "CASE WHEN churned_at IS NULL THEN 0 ELSE 1 END"},
        "features": [
            {"name": "n_orders", "expression": "COUNT(*)", "source_table": "orders"},
            {"name": "n_statuses", "expression": "COUNT(DISTINCT status)", "source_table": "orders"},
            {"name": "distinct_amounts", "expression": "SUM(DISTINCT amount)", "source_table": "orders"}
        ]
    })
    .to_string();
    let cte_of = |sql: &str, feature: &str| {
        let at = sql
            .find(&format!("AS \"{feature}\""))
            .unwrap_or_else(|| panic!("{feature} in\n{sql}"));
        // The CTE that holds it: the last `"name" AS (` before it.
        let head = sql[..at].rfind("\" AS (").expect("inside a CTE");
        let name = sql[..head].rfind('"').expect("a quoted CTE name") + 1;
        sql[name..head].to_string()
    };
    let compiled = compile(
        &text,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let sql = compiled.sql.expect("compiles");
    // featurecraft's sessions count distinct values in the source's one scan; DataFusion's
    // other DISTINCT aggregates keep a hash set per group unless they are alone.
    assert_eq!(cte_of(&sql, "n_orders"), "src_orders", "{sql}");
    assert_eq!(cte_of(&sql, "n_statuses"), "src_orders", "{sql}");
    assert_eq!(
        cte_of(&sql, "distinct_amounts"),
        "src_orders_distinct_1",
        "{sql}"
    );
    // Warehouses plan DISTINCT aggregates well: one CTE per source.
    let duckdb = compile(
        &text,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DuckDb),
    );
    assert!(!duckdb.sql.expect("compiles").contains("_distinct_"));
}

#[tokio::test]
async fn a_split_part_never_takes_the_name_of_another_sources_cte() {
    let dir = tempfile::tempdir().unwrap();
    let ids = || common::ints([1, 1, 2].map(Some));
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "people",
                vec![
                    ("id", common::ints([1, 2].map(Some))),
                    ("y", common::ints([0, 1].map(Some))),
                ],
            ),
            (
                "x",
                vec![("id", ids()), ("v", common::ints([5, 6, 6].map(Some)))],
            ),
            (
                "x_distinct_1",
                vec![("id", ids()), ("w", common::ints([7, 8, 9].map(Some)))],
            ),
        ],
    );
    let catalog = featurecraft::Catalog::load(dir.path()).await.unwrap();
    let recipe = serde_json::json!({
        "target_table": "t",
        "entity_grain": ["id"],
        "label": {"column": "y"},
        "features": [
            {"name": "n_x", "source_table": "x", "expression": "COUNT(*)"},
            {"name": "distinct_v", "source_table": "x", "expression": "SUM(DISTINCT v)"},
            {"name": "sum_w", "source_table": "x_distinct_1", "expression": "SUM(w)"}
        ]
    })
    .to_string();
    // DataFusion's dialect gives a DISTINCT aggregate other than COUNT a CTE of its own,
    // `src_x_distinct_1` by default: the name of the other table's CTE.
    let compiled = compile(
        &recipe,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let sql = compiled
        .sql
        .as_deref()
        .unwrap_or_else(|| panic!("{:#?}", compiled.diagnostics));
    assert_eq!(
        sql.matches(r#""src_x_distinct_1" AS ("#).count(),
        1,
        "{sql}"
    );
    let plan = compiled.plan.expect("plan");
    let rows = featurecraft::run::validate::sample(
        &plan,
        &catalog,
        &featurecraft::run::validate::ValidateOptions::default(),
    )
    .await
    .expect("runs")
    .rows;
    let table = common::rows_by_key(&rows, 1);
    assert_eq!(table["1"]["distinct_v"], "11");
    assert_eq!(table["1"]["sum_w"], "15");
    assert_eq!(table["2"]["n_x"], "1");
}

/// A catalog where tables have the names of the compiled query's CTEs: `spine`,
/// `cutoffs` and `src_visits` (next to `visits`), and `people`, a spine of another name.
fn shadowing_catalog() -> tempfile::TempDir {
    let day = 86_400_000_000i64;
    // Entity 1 has one visit, 2 two, 3 three, 4 none; all before day 10.
    let visits: Vec<i64> = vec![1, 2, 2, 3, 3, 3];
    let visit_days: Vec<i64> = (1..=6).map(|d| d * day).collect();
    let ids = || common::ints((1..=4).map(Some));
    let dir = tempfile::tempdir().unwrap();
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "spine",
                vec![
                    ("id", ids()),
                    ("v", common::ints((1..=4).map(|i| Some(i % 2)))),
                ],
            ),
            (
                "people",
                vec![
                    ("id", ids()),
                    ("y", common::ints((1..=4).map(|i| Some(i % 2)))),
                ],
            ),
            (
                "cutoffs",
                vec![
                    ("id", ids()),
                    ("ts", common::micros(vec![10 * day; 4])),
                    ("y", common::ints((1..=4).map(|i| Some(i % 2)))),
                ],
            ),
            (
                "visits",
                vec![
                    ("id", common::ints(visits.iter().map(|i| Some(*i)))),
                    ("t", common::micros(visit_days.clone())),
                ],
            ),
            (
                "src_visits",
                vec![
                    ("id", common::ints(visits.iter().map(|i| Some(*i)))),
                    ("t", common::micros(visit_days)),
                ],
            ),
        ],
    );
    dir
}

/// A table read by the name of one of the query's CTEs would be read as that CTE, silently:
/// `E029` at the feature, in every dialect. The spine's own table may have such a name (a
/// CTE sees neither itself nor the CTEs after it) and gives the right values.
#[tokio::test]
async fn a_table_named_like_a_cte_is_refused_unless_it_is_the_spines() {
    use serde_json::json;
    let dir = shadowing_catalog();
    let catalog = featurecraft::Catalog::load(dir.path()).await.unwrap();
    let count = |table: &str| json!({"name": format!("n_{table}"), "expression": "COUNT(*)", "source_table": table});
    let plain = |spine: &str, label: &str, features: Vec<serde_json::Value>| {
        json!({"target_table": "t", "entity_grain": ["id"],
               "label": {"column": format!("{spine}.{label}"), "type": "binary", "positive_class_value": 1},
               "features": features})
        .to_string()
    };
    let timed = |sources: serde_json::Value, features: Vec<serde_json::Value>| {
        json!({"target_table": "t", "entity_grain": ["id", "ts"],
               "point_in_time": {"cutoff_column": "ts", "time_columns": sources},
               "label": {"column": "cutoffs.y", "type": "binary", "positive_class_value": 1},
               "features": features})
        .to_string()
    };
    let refused = [
        (
            plain("people", "y", vec![count("spine")]),
            "`spine`",
            "features[0].expression",
        ),
        (
            plain("people", "y", vec![count("visits"), count("src_visits")]),
            "`src_visits`",
            "features[1].expression",
        ),
    ];
    for (text, table, at) in &refused {
        for dialect in Dialect::ALL {
            let compiled = compile(text, &catalog, &CompileOptions::for_dialect(dialect));
            assert!(compiled.sql.is_none(), "{dialect:?}: {text}");
            let e029: Vec<_> = compiled
                .diagnostics
                .iter()
                .filter(|d| d.code == Code::E029)
                .collect();
            assert_eq!(e029.len(), 1, "{dialect:?}: {:#?}", compiled.diagnostics);
            assert!(e029[0].message.contains(table), "{}", e029[0].message);
            assert_eq!(
                e029[0].path.as_ref().map(|p| p.to_string()).as_deref(),
                Some(*at)
            );
        }
    }

    // The spine's table named `spine`, and a point-in-time spine named `cutoffs`: the right
    // counts (1, 2, 3 and 0 visits), in every dialect's compile and in DataFusion's run.
    let allowed = [
        plain("spine", "v", vec![count("visits")]),
        timed(json!({"visits": "t"}), vec![count("visits")]),
    ];
    for text in &allowed {
        for dialect in Dialect::ALL {
            let compiled = compile(text, &catalog, &CompileOptions::for_dialect(dialect));
            assert!(
                compiled.sql.is_some(),
                "{dialect:?}: {:#?}",
                compiled.diagnostics
            );
        }
        let rows = common::table_by_key(&catalog, text, 1).await;
        let counts: Vec<&str> = rows.values().map(|r| r["n_visits"].as_str()).collect();
        assert_eq!(counts, ["1", "2", "3", "0"], "{text}");
    }
    // A point-in-time source named `cutoffs` is refused like any other.
    let text = timed(
        json!({"visits": "t", "cutoffs": "ts"}),
        vec![count("visits"), count("cutoffs")],
    );
    let compiled = compile(
        &text,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DuckDb),
    );
    assert!(
        compiled
            .diagnostics
            .iter()
            .any(|d| d.code == Code::E029 && d.message.contains("`cutoffs`")),
        "{:#?}",
        compiled.diagnostics
    );
}
