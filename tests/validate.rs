//! Validation on real Parquet data in DataFusion: sampling, the summary, each warning,
//! runtime failures, and the retry of a failed job.

mod common;

use datafusion::arrow::array::{Array, AsArray, Float64Array, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::arrow::util::display::array_value_to_string;
use datafusion::prelude::SessionContext;
use featurecraft::run::validate::{ValidateOptions, sample, validate};
use featurecraft::run::{RunOptions, run_recipe};
use featurecraft::{Catalog, Code, CompileOptions, Dialect, Job, JobStatus, Plan, compile};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

fn plan_of(text: &str, catalog: &Catalog) -> (Plan, Vec<featurecraft::Diagnostic>) {
    let compiled = compile(
        text,
        catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let plan = compiled
        .plan
        .unwrap_or_else(|| panic!("compiles: {:#?}", compiled.diagnostics));
    (plan, compiled.diagnostics)
}

fn good(stem: &str) -> String {
    common::recipes("good")
        .into_iter()
        .find(|(s, _)| s == stem)
        .unwrap()
        .1
}

/// Every row of the full CTAS, keyed by its grain values as text: run in featurecraft's
/// session, as `materialize` runs it (DataFusion's own optimizer rules may sum floats in
/// another order).
async fn full_rows(catalog: &Catalog, text: &str) -> (RecordBatch, BTreeMap<String, Vec<usize>>) {
    let compiled = compile(
        text,
        catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let plan = compiled.plan.unwrap();
    let ctx = featurecraft::run::sample::session(catalog, &ValidateOptions::default())
        .await
        .unwrap();
    let query =
        compile::render::build_query(&plan, &Dialect::DataFusion.capabilities(), None).unwrap();
    let logical = featurecraft::catalog::plan_query(&ctx.state(), query)
        .await
        .unwrap();
    let batches = ctx
        .execute_logical_plan(logical)
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let keys = key_index(&all, plan.grain.len());
    (all, keys)
}

/// Values sqlparser's printer gets wrong: it leaves `a''b` as `'a''b'` (which reads back
/// as `a'b`) and `\'` as `'\'`. Validation and materialization hand DataFusion the analyzed
/// statement, so they compute with the values the recipe holds.
#[tokio::test]
async fn validation_and_materialization_run_the_analyzed_statement() {
    let catalog = common::retail().await;
    let text = json!({
        "target_table": "lengths",
        "entity_grain": ["customer_id"],
        "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NULL THEN 0 ELSE 1 END"},
        "features": [
            {"name": "doubled", "expression": "LENGTH('a''''b')", "source_table": "customers"},
            {"name": "backslash", "expression": "LENGTH('\\''')", "source_table": "customers"},
            {"name": "n_odd", "expression": "COUNT(CASE WHEN event_type <> '\\''; DROP TABLE x; --' THEN 1 END)", "source_table": "events"}
        ]
    })
    .to_string();
    let (plan, _) = plan_of(&text, &catalog);
    let options = ValidateOptions {
        sample_size: 50,
        ..ValidateOptions::default()
    };
    let sampled = sample(&plan, &catalog, &options).await.unwrap().rows;
    let warehouse = tempfile::tempdir().unwrap();
    let written = featurecraft::run::materialize::materialize(
        &plan,
        &catalog,
        warehouse.path(),
        featurecraft::contract::job::TableFormat::Parquet,
        "retail",
        "lengths",
        &options,
    )
    .await
    .unwrap();
    let ctx = SessionContext::new();
    let full = ctx
        .read_parquet(
            format!("{}/", written.path.display()),
            datafusion::prelude::ParquetReadOptions::default(),
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    for (what, batches) in [("sample", vec![sampled]), ("materialized", full)] {
        let mut rows = 0;
        for batch in &batches {
            for row in 0..batch.num_rows() {
                let value = |name: &str| {
                    let index = batch.schema().index_of(name).unwrap();
                    array_value_to_string(batch.column(index), row).unwrap()
                };
                assert_eq!(value("doubled"), "4", "{what}");
                assert_eq!(value("backslash"), "2", "{what}");
                rows += 1;
            }
        }
        assert!(rows > 0, "{what}");
    }
}

fn key_of(batch: &RecordBatch, grain: usize, row: usize) -> String {
    (0..grain)
        .map(|c| array_value_to_string(batch.column(c), row).unwrap())
        .collect::<Vec<_>>()
        .join("|")
}

fn key_index(batch: &RecordBatch, grain: usize) -> BTreeMap<String, Vec<usize>> {
    let mut index: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for row in 0..batch.num_rows() {
        index
            .entry(key_of(batch, grain, row))
            .or_default()
            .push(row);
    }
    index
}

fn row_text(batch: &RecordBatch, row: usize) -> Vec<String> {
    (0..batch.num_columns())
        .map(|c| array_value_to_string(batch.column(c), row).unwrap())
        .collect()
}

/// A validation that ran one query keeps its sampled rows, and they are the rows the
/// sample itself gives (what `--show`, `--sample-out` and `return_sample` print), on every
/// good recipe, sampled and whole; features in several queries keep none.
#[tokio::test]
async fn the_rows_a_validation_keeps_are_the_samples() {
    let catalog = common::retail().await;
    for (stem, text) in common::recipes("good") {
        let (plan, warnings) = plan_of(&text, &catalog);
        for sample_size in [100, 1_000_000] {
            let options = ValidateOptions {
                sample_size,
                ..Default::default()
            };
            let validation = validate(&plan, &catalog, &options, &warnings).await;
            let kept = validation
                .rows
                .unwrap_or_else(|| panic!("{stem}: {:#?}", validation.diagnostics));
            let sampled = sample(&plan, &catalog, &options).await.unwrap().rows;
            // The same rows in the same order: the grain's, whatever the partitions gave.
            assert_eq!(kept, sampled, "{stem}, sample_size {sample_size}");
            let grain = RowConverter::new(
                kept.columns()[..plan.grain.len()]
                    .iter()
                    .map(|c| SortField::new(c.data_type().clone()))
                    .collect(),
            )
            .unwrap()
            .convert_columns(&kept.columns()[..plan.grain.len()])
            .unwrap();
            assert!(
                (1..kept.num_rows()).all(|r| grain.row(r - 1) <= grain.row(r)),
                "{stem}, sample_size {sample_size}: rows out of grain order"
            );
        }
        if plan.features.len() > 1 {
            let grouped = ValidateOptions {
                features_per_query: 1,
                ..Default::default()
            };
            let validation = validate(&plan, &catalog, &grouped, &warnings).await;
            assert!(validation.rows.is_none(), "{stem}");
        }
    }
}

#[tokio::test]
async fn a_full_sample_equals_statistics_of_the_full_ctas() {
    let catalog = common::retail().await;
    for (stem, text) in common::recipes("good") {
        let (plan, warnings) = plan_of(&text, &catalog);
        let options = ValidateOptions {
            sample_size: 1_000_000,
            ..Default::default()
        };
        let validation = validate(&plan, &catalog, &options, &warnings).await;
        let summary = validation
            .summary
            .unwrap_or_else(|| panic!("{stem}: {:#?}", validation.diagnostics));

        // A straightforward computation over the full CTAS.
        let (all, _) = full_rows(&catalog, &text).await;
        assert_eq!(
            summary.estimated_row_count,
            all.num_rows() as u64,
            "{stem}: estimated_row_count"
        );
        let label = all.column(all.num_columns() - 1);
        if plan.label.label_type != featurecraft::LabelType::Regression {
            let mut expected: BTreeMap<String, u64> = BTreeMap::new();
            for row in 0..label.len() {
                let key = if label.is_null(row) {
                    "null".to_string()
                } else {
                    array_value_to_string(label, row).unwrap()
                };
                *expected.entry(key).or_default() += 1;
            }
            let got: BTreeMap<String, u64> = summary
                .label_distribution
                .iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
                .collect();
            assert_eq!(got, expected, "{stem}: label distribution");
        } else {
            let values: Vec<f64> = (0..label.len())
                .filter(|r| label.is_valid(*r))
                .map(|r| {
                    array_value_to_string(label, r)
                        .unwrap()
                        .parse::<f64>()
                        .unwrap()
                })
                .collect();
            assert_eq!(summary.label_distribution["count"], json!(values.len()));
            let max = values.iter().cloned().fold(f64::MIN, f64::max);
            assert_eq!(summary.label_distribution["max"].as_f64().unwrap(), max);
        }
        let mut expected_nulls: BTreeMap<String, f64> = BTreeMap::new();
        for (i, field) in all
            .schema()
            .fields()
            .iter()
            .enumerate()
            .skip(plan.grain.len())
        {
            let column = all.column(i);
            let fraction = column.null_count() as f64 / column.len() as f64;
            if fraction > options.null_threshold {
                expected_nulls.insert(
                    field.name().clone(),
                    (fraction * 10_000.0).round() / 10_000.0,
                );
            }
        }
        let got_nulls: BTreeMap<String, f64> = summary
            .high_null_columns
            .iter()
            .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
            .collect();
        assert_eq!(got_nulls, expected_nulls, "{stem}: high-null columns");
        insta::assert_snapshot!(
            format!("summary__{stem}"),
            serde_json::to_string_pretty(&summary).unwrap()
        );
    }
}

#[tokio::test]
async fn sampled_entities_have_exactly_their_full_run_values_and_the_sample_is_stable() {
    let catalog = common::retail().await;
    // The last three hold COUNT(DISTINCT …), computed in its source's one scan.
    for stem in [
        "churn_basic",
        "two_column_grain",
        "aggregate_label",
        "view_source",
        "multiclass_segment",
        "regression_ltv",
    ] {
        let text = good(stem);
        let (plan, _) = plan_of(&text, &catalog);
        let options = ValidateOptions {
            sample_size: 100,
            ..Default::default()
        };
        let first = sample(&plan, &catalog, &options).await.unwrap();
        let again = sample(&plan, &catalog, &options).await.unwrap();
        let keys = key_index(&first.rows, plan.grain.len());
        assert_eq!(keys.len(), 100, "{stem}: 100 entities sampled");
        let again_keys: Vec<String> = key_index(&again.rows, plan.grain.len())
            .into_keys()
            .collect();
        assert_eq!(
            keys.keys().cloned().collect::<Vec<_>>(),
            again_keys,
            "{stem}: same keys on every run"
        );
        let (all, all_keys) = full_rows(&catalog, &text).await;
        // Spread over the whole spine, not its first rows.
        let positions: Vec<usize> = keys.keys().map(|k| all_keys[k][0]).collect();
        assert!(
            positions.iter().any(|p| *p > all.num_rows() / 2),
            "{stem}: sample reaches the second half"
        );
        for (key, rows) in &keys {
            let full: Vec<Vec<String>> = all_keys[key].iter().map(|r| row_text(&all, *r)).collect();
            let sampled: Vec<Vec<String>> =
                rows.iter().map(|r| row_text(&first.rows, *r)).collect();
            assert_eq!(sampled, full, "{stem}: entity {key}");
        }
    }
}

/// A wide recipe's summary is computed a group of features at a time; the groups must give
/// exactly the summary of one query, for every good recipe (row-level sources that fan
/// out, grouped spines and two-column grains among them), sampled or whole.
#[tokio::test]
async fn the_summary_in_groups_of_features_equals_the_summary_of_one_query() {
    let catalog = common::retail().await;
    for (stem, text) in common::recipes("good") {
        let (plan, warnings) = plan_of(&text, &catalog);
        for sample_size in [100, 1_000_000] {
            let summary = |per_query: usize| {
                let options = ValidateOptions {
                    sample_size,
                    null_threshold: 0.1,
                    features_per_query: per_query,
                    ..Default::default()
                };
                let (plan, catalog, warnings) = (&plan, &catalog, &warnings);
                async move {
                    let validation = validate(plan, catalog, &options, warnings).await;
                    let summary = validation.summary.expect("validates");
                    (
                        serde_json::to_string(&summary).unwrap(),
                        validation.diagnostics,
                    )
                }
            };
            let one = summary(10_000).await;
            for per_query in [1, 2, 5] {
                assert_eq!(
                    summary(per_query).await,
                    one,
                    "{stem}, {per_query} per query"
                );
            }
        }
    }
}

#[tokio::test]
async fn every_good_recipe_summary_is_byte_identical_across_runs() {
    let catalog = common::retail().await;
    let (plan, warnings) = plan_of(&good("churn_basic"), &catalog);
    let options = ValidateOptions {
        sample_size: 300,
        ..Default::default()
    };
    let a = validate(&plan, &catalog, &options, &warnings)
        .await
        .summary
        .unwrap();
    let b = validate(&plan, &catalog, &options, &warnings)
        .await
        .summary
        .unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_eq!(
        a.estimated_row_count, 1000,
        "the full spine, though only 300 entities were sampled"
    );
}

/// A people table of `n` rows: id, y (label 0/1, one in four positive), a leaking score
/// (y * 100 + noise), a noise column, a city, and visits (several per person).
fn people_catalog(n: i64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<Option<i64>> = (1..=n).map(Some).collect();
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "people",
                vec![
                    ("id", common::ints(ids.clone())),
                    (
                        "y",
                        common::ints((1..=n).map(|i| Some(i64::from(i % 4 == 0)))),
                    ),
                    (
                        "score",
                        Arc::new(Float64Array::from_iter((1..=n).map(|i| {
                            Some(f64::from(u8::from(i % 4 == 0)) * 100.0 + (i % 7) as f64)
                        }))),
                    ),
                    ("noise", common::ints((1..=n).map(|i| Some((i * 37) % 11)))),
                    (
                        "city",
                        Arc::new(StringArray::from_iter(
                            (1..=n).map(|i| Some(["A", "B", "C"][(i % 3) as usize])),
                        )),
                    ),
                ],
            ),
            (
                "visits",
                vec![
                    ("id", common::ints((1..=n).flat_map(|i| [Some(i), Some(i)]))),
                    (
                        "minutes",
                        common::ints((1..=n).flat_map(|i| [Some(i), None])),
                    ),
                ],
            ),
        ],
    );
    dir
}

fn people_recipe(label: Value, features: Value) -> String {
    json!({"target_table": "t", "entity_grain": ["id"], "label": label, "features": features})
        .to_string()
}

async fn warnings_for(catalog_dir: &Path, text: &str, sample_size: usize) -> Vec<String> {
    let catalog = Catalog::load(catalog_dir).await.unwrap();
    let (plan, warnings) = plan_of(text, &catalog);
    let options = ValidateOptions {
        sample_size,
        ..Default::default()
    };
    let validation = validate(&plan, &catalog, &options, &warnings).await;
    validation
        .summary
        .unwrap_or_else(|| panic!("{:#?}", validation.diagnostics))
        .warnings
}

fn has(warnings: &[String], code: &str) -> bool {
    warnings.iter().any(|w| w.starts_with(code))
}

#[tokio::test]
async fn each_validation_warning_fires_on_data_made_for_it() {
    let dir = people_catalog(400);
    let y = json!({"column": "people.y"});
    let count = json!({"name": "n", "expression": "COUNT(*)", "source_table": "visits"});

    // W101: a spine that is not unique on the grain.
    let w = warnings_for(
        dir.path(),
        &people_recipe(
            json!({"column": "visits.minutes", "type": "regression"}),
            json!([]),
        ),
        10_000,
    )
    .await;
    assert!(
        has(
            &w,
            "W101 grain_not_unique: 800 spine rows share 400 keys of (id)"
        ),
        "{w:?}"
    );

    // W102: a row-level source that fans out.
    let w = warnings_for(
        dir.path(),
        &people_recipe(
            y.clone(),
            json!([{"name": "m", "expression": "minutes", "source_table": "visits"}]),
        ),
        10_000,
    )
    .await;
    assert!(has(&w, "W102 fan_out"), "{w:?}");

    // W110: a single-class label.
    let w = warnings_for(
        dir.path(),
        &people_recipe(
            json!({"column": "people.y", "derivation": "y * 0"}),
            json!([count]),
        ),
        10_000,
    )
    .await;
    assert!(has(&w, "W110 single_class_label"), "{w:?}");

    // W111: the positive class is 1 % of the sample.
    let w = warnings_for(
        dir.path(),
        &people_recipe(json!({"column": "people.id", "derivation": "CASE WHEN id <= 4 THEN 1 ELSE 0 END", "positive_class_value": 1}), json!([count])),
        10_000,
    )
    .await;
    assert!(
        w.iter()
            .any(|l| l.starts_with("W111 label_imbalance: positive class is 1.0 % of the sample")),
        "{w:?}"
    );

    // W112: label nulls.
    let w = warnings_for(
        dir.path(),
        &people_recipe(
            json!({"column": "people.noise", "derivation": "CASE WHEN noise > 2 THEN 1 END"}),
            json!([count]),
        ),
        10_000,
    )
    .await;
    assert!(has(&w, "W112 label_nulls"), "{w:?}");

    // W120 and W121: a constant and an all-null feature.
    let w = warnings_for(
        dir.path(),
        &people_recipe(y.clone(), json!([
            {"name": "always_two", "expression": "COUNT(*)", "source_table": "visits"},
            {"name": "nothing", "expression": "MAX(CASE WHEN minutes < 0 THEN minutes END)", "source_table": "visits"}
        ])),
        10_000,
    )
    .await;
    assert!(
        has(&w, "W120 constant_feature: feature `always_two`"),
        "{w:?}"
    );
    assert!(has(&w, "W121 all_null_feature: feature `nothing`"), "{w:?}");

    // W122: the engine computes an integer where the author declared a string.
    let w = warnings_for(
        dir.path(),
        &people_recipe(y.clone(), json!([{"name": "mod", "expression": "noise % 3", "source_table": "people", "data_type": "timestamp"}])),
        10_000,
    )
    .await;
    assert!(has(&w, "W011"), "compile time already knows: {w:?}");
    assert!(
        has(
            &w,
            "W122 computed_type_mismatch: feature `mod` is computed as Int64 (integer) but declared timestamp"
        ),
        "{w:?}"
    );

    // W125: a score that separates the label, on enough rows; not on too few (under 25).
    let leak = json!([{"name": "score", "expression": "score", "source_table": "people"}]);
    let w = warnings_for(dir.path(), &people_recipe(y.clone(), leak.clone()), 10_000).await;
    assert!(
        has(
            &w,
            "W125 target_leakage: feature `score` alone predicts the label (AUC 1.000 on"
        ),
        "{w:?}"
    );
    let w = warnings_for(dir.path(), &people_recipe(y.clone(), leak.clone()), 20).await;
    assert!(
        !has(&w, "W125"),
        "20 rows are too few to call it leakage: {w:?}"
    );
    let honest = json!([{"name": "noise", "expression": "noise", "source_table": "people"}]);
    let w = warnings_for(dir.path(), &people_recipe(y.clone(), honest), 10_000).await;
    assert!(!has(&w, "W125"), "{w:?}");

    // A spine smaller than the sample is validated whole: no warning about it (it used
    // to be W130, which made --strict fail on every small catalog).
    let w = warnings_for(
        dir.path(),
        &people_recipe(y.clone(), json!([count])),
        10_000,
    )
    .await;
    assert!(w.iter().all(|w| !w.starts_with("W13")), "{w:?}");
}

/// W101 on a point-in-time spine: rows repeating an (entity, timestamp cutoff) pair are
/// duplicates; an entity's other cutoffs and another entity's same cutoff are not. The
/// sample still counts entities.
#[tokio::test]
async fn a_repeated_entity_and_cutoff_is_a_duplicate_and_other_cutoffs_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400_000_000i64;
    // 300 entities with cutoffs on days 10, 20 and 30; entities 1..=50 repeat day 20.
    let mut rows: Vec<(i64, i64)> = (1..=300)
        .flat_map(|id| [(id, 10 * day), (id, 20 * day), (id, 30 * day)])
        .collect();
    rows.extend((1..=50).map(|id| (id, 20 * day)));
    let events: Vec<(i64, i64)> = (1..=300).map(|id| (id, 5 * day + id)).collect();
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "spine",
                vec![
                    ("id", common::ints(rows.iter().map(|r| Some(r.0)))),
                    ("at", common::micros(rows.iter().map(|r| r.1))),
                    ("y", common::ints(rows.iter().map(|r| Some(r.0 % 2)))),
                ],
            ),
            (
                "seen",
                vec![
                    ("id", common::ints(events.iter().map(|r| Some(r.0)))),
                    ("ts", common::micros(events.iter().map(|r| r.1))),
                ],
            ),
        ],
    );
    let recipe = json!({
        "target_table": "t",
        "entity_grain": ["id", "at"],
        "point_in_time": {"cutoff_column": "at", "time_columns": {"seen": "ts"}},
        "label": {"column": "spine.y", "type": "binary", "positive_class_value": 1},
        "features": [{"name": "n", "expression": "COUNT(*)", "source_table": "seen"}]
    })
    .to_string();
    let w = warnings_for(dir.path(), &recipe, 10_000).await;
    assert!(
        has(
            &w,
            "W101 grain_not_unique: 100 spine rows share 50 keys of (id, at)"
        ),
        "{w:?}"
    );
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let (plan, _) = plan_of(&recipe, &catalog);
    let options = ValidateOptions {
        sample_size: 120,
        ..Default::default()
    };
    let summary = validate(&plan, &catalog, &options, &[])
        .await
        .summary
        .unwrap();
    // 950 spine rows in all; 120 of the 300 entities sampled, each with its 3 (or 4) rows.
    assert_eq!(summary.estimated_row_count, 950, "{summary:?}");
    assert!(has(&summary.warnings, "W101"), "{summary:?}");
    let sampled: u64 = summary
        .label_distribution
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert!((360..=410).contains(&sampled), "{summary:?}");
}

/// The deepest expression the compiler accepts runs end to end on this (test) thread's
/// stack: copied, rewritten, rendered, planned and evaluated by DataFusion.
#[tokio::test]
async fn the_deepest_accepted_expression_validates_and_computes() {
    let catalog = common::retail().await;
    let limit = featurecraft::sql::MAX_EXPRESSION_DEPTH;
    // `a + a + … + a` of n terms nests n levels; `SUM(amount)` terms add two more.
    let row_terms = limit;
    let sum_terms = limit - 1;
    let text = json!({
        "target_table": "deep",
        "entity_grain": ["customer_id"],
        "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END"},
        "features": [
            {"name": "fee_chain", "expression": vec!["monthly_fee"; row_terms].join(" + "), "source_table": "customers"},
            {"name": "fee", "expression": "monthly_fee", "source_table": "customers"},
            {"name": "amount_chain", "expression": vec!["SUM(amount)"; sum_terms].join(" + "), "source_table": "orders"},
            {"name": "amount", "expression": "SUM(amount)", "source_table": "orders"}
        ]
    })
    .to_string();
    let (plan, warnings) = plan_of(&text, &catalog);
    let validation = validate(&plan, &catalog, &ValidateOptions::default(), &warnings).await;
    assert!(
        validation.summary.is_some(),
        "{:#?}",
        validation.diagnostics
    );

    let (all, _) = full_rows(&catalog, &text).await;
    let column = |name: &str| {
        all.column(all.schema().index_of(name).unwrap())
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap_or_else(|| panic!("{name} is float64"))
            .clone()
    };
    let (fee_chain, fee) = (column("fee_chain"), column("fee"));
    let (amount_chain, amount) = (column("amount_chain"), column("amount"));
    let mut compared = 0;
    for row in 0..all.num_rows() {
        if !fee.is_null(row) {
            let want = fee.value(row) * row_terms as f64;
            assert!((fee_chain.value(row) - want).abs() <= 1e-9 * want.abs().max(1.0));
            compared += 1;
        }
        if !amount.is_null(row) {
            let want = amount.value(row) * sum_terms as f64;
            assert!((amount_chain.value(row) - want).abs() <= 1e-9 * want.abs().max(1.0));
            compared += 1;
        }
    }
    assert!(compared > 100, "compared {compared} values");
}

#[tokio::test]
async fn a_thousand_all_null_features_stay_under_ten_kilobytes_with_w190() {
    let dir = people_catalog(50);
    let features: Vec<Value> = (0..1000)
        .map(|i| json!({"name": format!("empty_{i}"), "expression": "MAX(CASE WHEN minutes < 0 THEN minutes END)", "source_table": "visits"}))
        .collect();
    let text = people_recipe(json!({"column": "people.y"}), Value::from(features));
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let (plan, warnings) = plan_of(&text, &catalog);
    let summary = validate(&plan, &catalog, &ValidateOptions::default(), &warnings)
        .await
        .summary
        .unwrap();
    let bytes = serde_json::to_string(&summary).unwrap().len();
    assert!(bytes < 10 * 1024, "summary is {bytes} bytes");
    let last = summary.warnings.last().unwrap();
    assert!(last.starts_with("W190 truncated: …and"), "{last}");
    assert_eq!(summary.high_null_columns.len(), 50);
}

async fn failure_of(
    catalog: &Catalog,
    text: &str,
    options: ValidateOptions,
) -> featurecraft::Diagnostic {
    let (plan, _) = plan_of(text, catalog);
    let validation = validate(&plan, catalog, &options, &[]).await;
    assert!(validation.summary.is_none(), "the run fails");
    validation
        .diagnostics
        .into_iter()
        .find(|d| d.is_error())
        .expect("an error diagnostic")
}

fn copy_catalog(to: &Path) {
    common::copy_dir(&common::fixtures().join("retail"), to);
}

#[tokio::test]
async fn runtime_failures_are_diagnostics_not_panics() {
    // A data file that disappeared after the catalog was read.
    let dir = tempfile::tempdir().unwrap();
    copy_catalog(dir.path());
    let catalog = Catalog::load(dir.path()).await.unwrap();
    std::fs::remove_file(dir.path().join("orders.parquet")).unwrap();
    let d = failure_of(&catalog, &good("churn_basic"), ValidateOptions::default()).await;
    assert_eq!(d.code, Code::E052, "{d:?}");
    assert!(d.message.contains("orders.parquet"), "{}", d.message);

    // A corrupt data file.
    std::fs::write(dir.path().join("orders.parquet"), vec![7u8; 4096]).unwrap();
    let d = failure_of(&catalog, &good("churn_basic"), ValidateOptions::default()).await;
    assert_eq!(d.code, Code::E052, "{d:?}");

    // A cast that fails on the data.
    let catalog = common::retail().await;
    let text = json!({"target_table": "t", "entity_grain": ["customer_id"],
        "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NULL THEN 0 ELSE 1 END"},
        "features": [{"name": "country_number", "expression": "CAST(country AS INT)", "source_table": "customers"}]})
    .to_string();
    let d = failure_of(&catalog, &text, ValidateOptions::default()).await;
    assert_eq!(d.code, Code::E050, "{d:?}");
    assert!(
        d.message.contains("Cannot cast") || d.message.contains("cast"),
        "{}",
        d.message
    );

    // The memory limit.
    let tiny = ValidateOptions {
        memory_limit: 64 * 1024,
        ..Default::default()
    };
    let d = failure_of(&catalog, &good("churn_basic"), tiny).await;
    assert_eq!(d.code, Code::E051, "{d:?}");
    assert!(d.message.contains("memory limit"), "{}", d.message);

    // The spine's key hashes count against the limit too: 1 000 customers' 8 KB do not fit
    // in 4 KB, and the key scan, the first step to hold memory, is the one refused.
    let below_the_hashes = ValidateOptions {
        memory_limit: 4 * 1024,
        ..Default::default()
    };
    let d = failure_of(&catalog, &good("churn_basic"), below_the_hashes).await;
    assert_eq!(d.code, Code::E051, "{d:?}");
    assert!(d.message.contains("featurecraft key scan"), "{}", d.message);
}

fn failed_job(recipe_text: &str) -> Job {
    let recipe = featurecraft::parse_recipe(recipe_text).recipe.unwrap();
    let mut job = Job::new(
        "churn_training".into(),
        "retail".into(),
        "ana@example.com".into(),
        Some(recipe),
    );
    job.created_at = chrono::DateTime::parse_from_rfc3339("2026-11-07T05:31:56Z")
        .unwrap()
        .to_utc();
    job.updated_at = job.created_at;
    job.status = JobStatus::Failed;
    job.error = Some("the crew timed out".into());
    job
}

#[tokio::test]
async fn retry_succeeds_once_the_missing_table_is_there() {
    let dir = tempfile::tempdir().unwrap();
    copy_catalog(dir.path());
    let tickets = dir.path().join("support_tickets.parquet");
    let aside = dir.path().join("support_tickets.parquet.aside");
    std::fs::rename(&tickets, &aside).unwrap();

    let job = failed_job(&good("churn_basic"));
    let options = RunOptions::default();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let again = featurecraft::jobs::retry::retry(&job, &catalog, &options)
        .await
        .unwrap();
    assert_eq!(again.status, JobStatus::Failed);
    let error = again.error.clone().unwrap();
    assert!(
        error.contains("E020")
            && error.contains("support_tickets")
            && error.contains("features[10].source_table"),
        "{error}"
    );
    assert_ne!(Some(error), job.error, "a new error replaces the old one");
    assert!(again.sql.is_none() && again.validation.is_none());

    std::fs::rename(&aside, &tickets).unwrap();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let done = featurecraft::jobs::retry::retry(&again, &catalog, &options)
        .await
        .unwrap();
    assert_eq!(done.status, JobStatus::PendingApproval);
    assert_eq!(done.error, None);
    assert!(
        done.sql
            .as_deref()
            .unwrap()
            .starts_with("CREATE TABLE \"retail\".\"churn_training\"")
    );
    assert_eq!(done.validation.as_ref().unwrap().estimated_row_count, 1000);
    assert_eq!(
        (done.job_id, done.created_at),
        (job.job_id, job.created_at),
        "identity and creation never move"
    );
    assert!(done.updated_at > job.updated_at, "updated_at moves");
    assert_eq!(done.recipe, job.recipe);
}

#[tokio::test]
async fn retry_keeps_the_sql_when_validation_fails_and_refuses_live_jobs() {
    let catalog = common::retail().await;
    let text = json!({"target_table": "t", "entity_grain": ["customer_id"],
        "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NULL THEN 0 ELSE 1 END"},
        "features": [{"name": "country_number", "expression": "CAST(country AS INT)", "source_table": "customers"}]})
    .to_string();
    let job = failed_job(&text);
    let again = featurecraft::jobs::retry::retry(&job, &catalog, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(again.status, JobStatus::Failed);
    assert!(again.sql.is_some(), "the SQL compiled and is kept");
    assert!(
        again
            .error
            .as_deref()
            .unwrap()
            .starts_with("validation failed: E050"),
        "{:?}",
        again.error
    );

    for status in [
        JobStatus::Running,
        JobStatus::PendingApproval,
        JobStatus::Approved,
        JobStatus::Complete,
    ] {
        let mut live = job.clone();
        live.status = status;
        let err = featurecraft::jobs::retry::retry(&live, &catalog, &RunOptions::default())
            .await
            .unwrap_err();
        assert_eq!(
            err,
            featurecraft::jobs::retry::RetryError::NotFailed(status)
        );
    }

    let mut empty = job.clone();
    empty.recipe = None;
    let again = featurecraft::jobs::retry::retry(&empty, &catalog, &RunOptions::default())
        .await
        .unwrap();
    assert_eq!(again.status, JobStatus::Failed);
    assert!(again.error.unwrap().contains("no recipe"));
}

#[tokio::test]
async fn run_recipe_reports_compile_errors_without_running() {
    let catalog = common::retail().await;
    let bad = common::recipes("bad")
        .into_iter()
        .find(|(s, _)| s == "E021_unknown_column")
        .unwrap()
        .1;
    let recipe = featurecraft::parse_recipe(&bad).recipe.unwrap();
    let run = run_recipe(&recipe, &catalog, &RunOptions::default()).await;
    assert!(run.sql.is_none() && run.validation.is_none());
    assert!(
        run.error_paragraph()
            .unwrap()
            .starts_with("the recipe does not compile: E021 at features[1].expression")
    );
}

#[tokio::test]
async fn a_run_past_its_time_limit_is_e054_and_publishes_nothing() {
    let catalog = common::retail().await;
    let (plan, _) = plan_of(&good("pit_churn"), &catalog);
    let limited = ValidateOptions {
        time_limit: Some(std::time::Duration::from_millis(1)),
        ..ValidateOptions::default()
    };
    let validation = validate(&plan, &catalog, &limited, &[]).await;
    assert!(validation.summary.is_none());
    let error = validation.diagnostics.last().unwrap();
    assert_eq!(error.code, Code::E054, "{error:?}");
    assert!(
        error.message.contains("time limit of 1 ms"),
        "{}",
        error.message
    );
    let dir = tempfile::tempdir().unwrap();
    let error = featurecraft::run::materialize::materialize(
        &plan,
        &catalog,
        dir.path(),
        featurecraft::contract::job::TableFormat::Parquet,
        "d",
        "t",
        &limited,
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, Code::E054, "{error:?}");
    let left: Vec<_> = std::fs::read_dir(dir.path().join("d"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the staging folder is gone: {left:?}");
    // A limit the run stays within changes nothing.
    let generous = ValidateOptions {
        time_limit: Some(std::time::Duration::from_secs(600)),
        ..ValidateOptions::default()
    };
    let within = validate(&plan, &catalog, &generous, &[]).await;
    let unlimited = validate(&plan, &catalog, &ValidateOptions::default(), &[]).await;
    assert_eq!(within.summary, unlimited.summary);
    assert!(within.summary.is_some());
}

#[tokio::test]
async fn a_warehouse_that_cannot_be_written_is_e053_not_a_data_file_error() {
    let catalog = common::retail().await;
    let (plan, _) = plan_of(&good("churn_basic"), &catalog);
    let dir = tempfile::tempdir().unwrap();
    let not_a_folder = dir.path().join("warehouse");
    std::fs::write(&not_a_folder, b"a file where the warehouse should be").unwrap();
    let error = featurecraft::run::materialize::materialize(
        &plan,
        &catalog,
        &not_a_folder,
        featurecraft::contract::job::TableFormat::Parquet,
        "retail",
        "churn",
        &ValidateOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, Code::E053, "{error:?}");
    assert!(error.message.contains("cannot create"), "{}", error.message);
    let long = "t".repeat(300);
    let error = featurecraft::run::materialize::materialize(
        &plan,
        &catalog,
        dir.path(),
        featurecraft::contract::job::TableFormat::Parquet,
        "retail",
        &long,
        &ValidateOptions::default(),
    )
    .await
    .unwrap_err();
    assert_eq!(error.code, Code::E003, "{error:?}");
    assert!(
        error.message.contains("the limit is 128"),
        "{}",
        error.message
    );
}

/// File extensions are matched in any case, and the same way everywhere: a `NAME.PARQUET`
/// table is read with its rows (not listed with its schema and read as empty), and a
/// `NAME.SQL` view is part of the catalog identity an approval is bound to.
#[tokio::test]
async fn upper_case_extensions_are_read_and_hashed_as_lower_case_ones() {
    let dir = tempfile::tempdir().unwrap();
    common::tiny_catalog(
        dir.path(),
        &[(
            "people",
            vec![
                ("id", common::ints((1..=40).map(Some))),
                ("y", common::ints((1..=40).map(|i| Some(i % 2)))),
            ],
        )],
    );
    std::fs::rename(
        dir.path().join("people.parquet"),
        dir.path().join("people.PARQUET"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("grown.SQL"),
        "SELECT id, y * 1000 AS big FROM people",
    )
    .unwrap();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let text = json!({
        "target_table": "t", "entity_grain": ["id"], "label": {"column": "people.y"},
        "features": [{"name": "big", "expression": "SUM(big)", "source_table": "grown"}]
    })
    .to_string();
    let (plan, warnings) = plan_of(&text, &catalog);
    let summary = validate(&plan, &catalog, &ValidateOptions::default(), &warnings)
        .await
        .summary
        .expect("validates");
    assert_eq!(summary.estimated_row_count, 40);
    assert_eq!(summary.label_distribution["1"], 20, "{summary:?}");
    assert!(
        summary.warnings.iter().all(|w| !w.starts_with("W120")),
        "{:?}",
        summary.warnings
    );

    let before = featurecraft::jobs::review::CatalogIdentity::of(dir.path()).unwrap();
    std::fs::write(
        dir.path().join("grown.SQL"),
        "SELECT id, y * 1 AS big FROM people",
    )
    .unwrap();
    let after = featurecraft::jobs::review::CatalogIdentity::of(dir.path()).unwrap();
    assert_eq!(after.changes_since(&before), ["changed grown.SQL"]);
}

/// A chain of 400 views, each reading the next one (named so that no view's inputs come
/// before it by name), loads with every view's columns and runs: each view plans once,
/// in the order of what it reads. A cycle of views is an error naming a view file.
#[tokio::test]
async fn a_long_chain_of_views_loads_and_runs_and_a_cycle_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::fixtures().join("retail/customers.parquet"),
        dir.path().join("customers.parquet"),
    )
    .unwrap();
    let n = 400;
    for i in 1..=n {
        let reads = if i == n {
            "customers".to_string()
        } else {
            format!("v{:04}", i + 1)
        };
        std::fs::write(
            dir.path().join(format!("v{i:04}.sql")),
            format!("SELECT * FROM {reads}"),
        )
        .unwrap();
    }
    let catalog = Catalog::load(dir.path()).await.unwrap();
    assert_eq!(catalog.tables().count(), n + 1);
    let customers = catalog.table("customers").unwrap();
    let first = catalog.table("v0001").unwrap();
    assert_eq!(
        first.columns.iter().map(|c| &c.name).collect::<Vec<_>>(),
        customers
            .columns
            .iter()
            .map(|c| &c.name)
            .collect::<Vec<_>>()
    );
    let text = json!({
        "target_table": "t", "entity_grain": ["customer_id"],
        "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END"},
        "features": [{"name": "age", "expression": "MAX(age)", "source_table": "v0001"}]
    })
    .to_string();
    let (plan, warnings) = plan_of(&text, &catalog);
    let summary = validate(&plan, &catalog, &ValidateOptions::default(), &warnings)
        .await
        .summary
        .expect("validates over the chain");
    assert_eq!(summary.estimated_row_count, 1000);

    std::fs::write(dir.path().join("v0400.sql"), "SELECT * FROM v0001").unwrap();
    let error = Catalog::load(dir.path()).await.unwrap_err().to_string();
    assert!(
        error.contains("view does not plan") && error.contains(".sql"),
        "{error}"
    );
}

/// The kind of event `i` (spread so that each customer has several).
fn kind_of(i: i64) -> usize {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)) as usize % 6
}

/// A catalog of customers and their events whose `kind` column is written as `kind_type`
/// (Parquet files written from pandas categoricals or PyArrow dictionaries carry an Arrow
/// dictionary type, and DataFusion reads the column as one).
fn events_catalog(kind_type: &DataType) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let kinds = ["view", "click", "purchase", "support", "refund", "login"];
    let customers = 3_000i64;
    let events = 40_000i64;
    let kind: StringArray = (0..events)
        .map(|i| (i % 17 != 0).then(|| kinds[kind_of(i)]))
        .collect();
    let kind = cast(&kind, kind_type).unwrap();
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "customers",
                vec![
                    ("customer_id", common::ints((1..=customers).map(Some))),
                    ("y", common::ints((1..=customers).map(|i| Some(i % 2)))),
                ],
            ),
            (
                "events",
                vec![
                    (
                        "customer_id",
                        // Some customers have no events.
                        common::ints((0..events).map(|i| Some((i * 13) % (customers - 100) + 1))),
                    ),
                    ("kind", kind),
                ],
            ),
        ],
    );
    dir
}

#[tokio::test]
async fn strings_stored_as_dictionaries_give_the_same_table_as_plain_strings() {
    let feature = |name: &str, expression: &str| json!({"name": name, "expression": expression, "source_table": "events"});
    let text = json!({
        "target_table": "t", "entity_grain": ["customer_id"],
        "label": {"name": "y", "type": "binary", "column": "customers.y"},
        "features": [
            feature("n_kinds", "COUNT(DISTINCT kind)"),
            feature("n_purchases", "COUNT(CASE WHEN kind = 'purchase' THEN 1 END)"),
            feature("n_kinds_but_views", "COUNT(DISTINCT CASE WHEN kind <> 'view' THEN kind END)"),
            feature("first_kind", "MIN(kind)"),
            feature("last_kind", "MAX(kind)"),
            feature("n_events", "COUNT(*)"),
        ],
    })
    .to_string();
    let plain = events_catalog(&DataType::Utf8);
    let plain = Catalog::load(plain.path()).await.unwrap();
    let expected = common::table_by_key(&plain, &text, 1).await;
    assert_eq!(expected.len(), 3_000);
    // Hand-checked: customer 1's events are i = 0, 2900, 5800, …; those with i % 17 == 0
    // have no kind.
    let kinds = ["view", "click", "purchase", "support", "refund", "login"];
    let mine: Vec<&str> = (0..40_000i64)
        .filter(|i| (i * 13) % 2_900 == 0 && i % 17 != 0)
        .map(|i| kinds[kind_of(i)])
        .collect();
    let distinct: BTreeSet<&str> = mine.iter().copied().collect();
    common::expect_row(
        &expected,
        "1",
        &format!(
            "n_kinds={} n_purchases={} first_kind={} last_kind={}",
            distinct.len(),
            mine.iter().filter(|k| **k == "purchase").count(),
            distinct.first().unwrap(),
            distinct.last().unwrap(),
        ),
    );
    assert!(distinct.len() >= 4, "{mine:?}");
    common::expect_row(&expected, "2950", "n_kinds=0 n_events=0 last_kind=NULL");
    for key in [DataType::Int8, DataType::Int32, DataType::UInt16] {
        let dictionary = DataType::Dictionary(Box::new(key), Box::new(DataType::Utf8));
        let dir = events_catalog(&dictionary);
        let catalog = Catalog::load(dir.path()).await.unwrap();
        let got = common::table_by_key(&catalog, &text, 1).await;
        let differing: Vec<_> = expected
            .iter()
            .filter(|(key, row)| got.get(*key) != Some(row))
            .take(3)
            .map(|(key, row)| (row, got.get(key)))
            .collect();
        assert!(differing.is_empty(), "{dictionary}: {differing:#?}");
        assert_eq!(got.len(), expected.len(), "{dictionary}");
    }
}

/// `W103` over a schedule counts every sampled (entity, cutoff) pair. DataFusion 55 keeps a
/// grouped table's unique key through `unnest` (a schedule unnests each entity's cutoffs),
/// so its optimizer may take the schedule's pairs as one per entity: a first form of the
/// tie check (the source's rows counted per time, then each pair's latest count) gave 40
/// tied pairs here instead of 196. The count is checked against one made here from the
/// sampled pairs and `plan_changes`' rows, on the whole schedule (the tie check's query)
/// and on a sample of it (the sampled rows' pairs looked up in memory).
#[tokio::test]
async fn as_of_ties_count_every_cutoff_of_a_schedule() {
    let catalog = common::retail().await;
    let recipe = schedule_with_as_of(None, false);
    assert_eq!(recipe["point_in_time"]["include_cutoff"], json!(false));
    let (plan, _) = plan_of(&recipe.to_string(), &catalog);
    for sample_size in [10_000, 150] {
        let options = ValidateOptions {
            sample_size,
            ..Default::default()
        };
        let validation = validate(&plan, &catalog, &options, &[]).await;
        let (reported, tied, pairs) = schedule_ties(&validation).await;
        if sample_size == 10_000 {
            // The fixture's entities are fewer than a sample: every pair of the schedule.
            let estimated = validation.summary.as_ref().unwrap().estimated_row_count;
            assert_eq!(
                pairs as u64, estimated,
                "every (entity, cutoff) pair sampled"
            );
        } else {
            assert!(validation.sampled_keys < validation.spine_keys, "a sample");
        }
        assert!(
            tied > 0,
            "the fixture has tied pairs ({sample_size} sampled)"
        );
        assert_eq!(reported, tied, "{sample_size} sampled");
    }
}

/// `pit_schedule_churn` with an as-of value of `plan_changes` (within `window`, if any); the
/// cutoff's own time counted when `include_cutoff` (the fixture's setting otherwise).
fn schedule_with_as_of(window: Option<&str>, include_cutoff: bool) -> Value {
    let mut recipe: Value = serde_json::from_str(&good("pit_schedule_churn")).unwrap();
    recipe["point_in_time"]["time_columns"]["plan_changes"] = json!("changed_at");
    if include_cutoff {
        recipe["point_in_time"]["include_cutoff"] = json!(true);
    }
    let mut as_of = json!({
        "name": "current_plan", "source_table": "plan_changes", "expression": "to_plan"
    });
    if let Some(window) = window {
        as_of["window"] = json!(window);
    }
    recipe["features"].as_array_mut().unwrap().push(as_of);
    recipe
}

/// `W103`'s count of a validation over `pit_schedule_churn` with `plan_changes`, the same
/// counted from its sampled pairs and `plan_changes`' rows, and the number of pairs.
async fn schedule_ties(
    validation: &featurecraft::run::validate::Validation,
) -> (usize, usize, usize) {
    let tie = validation
        .diagnostics
        .iter()
        .find(|d| d.code == Code::W103)
        .unwrap_or_else(|| panic!("a W103: {:#?}", validation.diagnostics));
    let reported: usize = tie
        .message
        .split(" before the cutoff for ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a count in {:?}", tie.message));

    let micros = DataType::Timestamp(TimeUnit::Microsecond, None);
    let as_text = |column: &Arc<dyn Array>, row: usize| array_value_to_string(column, row).unwrap();
    let rows = validation
        .rows
        .as_ref()
        .expect("the sampled rows, from one query");
    let (keys, cutoffs) = (
        rows.column_by_name("customer_id").unwrap(),
        cast(rows.column_by_name("cutoff_time").unwrap(), &micros).unwrap(),
    );
    let changes = SessionContext::new()
        .read_parquet(
            common::fixtures()
                .join("retail/plan_changes.parquet")
                .to_str()
                .unwrap(),
            Default::default(),
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut times: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for batch in &changes {
        let key = batch.column_by_name("customer_id").unwrap();
        let time = cast(batch.column_by_name("changed_at").unwrap(), &micros).unwrap();
        let time = time.as_primitive::<TimestampMicrosecondType>();
        for row in 0..batch.num_rows() {
            if key.is_valid(row) && time.is_valid(row) {
                times
                    .entry(as_text(key, row))
                    .or_default()
                    .push(time.value(row));
            }
        }
    }
    let cutoffs = cutoffs.as_primitive::<TimestampMicrosecondType>();
    let mut pairs = BTreeSet::new();
    for row in 0..rows.num_rows() {
        pairs.insert((as_text(keys, row), cutoffs.value(row)));
    }
    let tied = pairs
        .iter()
        .filter(|(key, cutoff)| {
            let before: Vec<i64> = times
                .get(key)
                .map(|t| t.iter().copied().filter(|t| t < cutoff).collect())
                .unwrap_or_default();
            let latest = before.iter().max();
            latest.is_some_and(|l| before.iter().filter(|t| *t == l).count() > 1)
        })
        .count();
    (reported, tied, pairs.len())
}

/// The tie check looked up in memory (one sampled query) and by its own query (features
/// in groups) agree where an as-of value reads a window, and where the cutoff's own time
/// counts.
#[tokio::test]
async fn as_of_ties_in_memory_equal_the_query_with_windows_and_the_cutoff_included() {
    let catalog = common::retail().await;
    let mut counted = Vec::new();
    for (window, include_cutoff) in [
        (None, true),
        (Some("60 days"), false),
        (Some("60 days"), true),
    ] {
        let recipe = schedule_with_as_of(window, include_cutoff);
        let (plan, _) = plan_of(&recipe.to_string(), &catalog);
        let ties = |features_per_query: usize| {
            let options = ValidateOptions {
                sample_size: 150,
                features_per_query,
                ..Default::default()
            };
            let (plan, catalog) = (&plan, &catalog);
            async move {
                let validation = validate(plan, catalog, &options, &[]).await;
                assert!(validation.sampled_keys < validation.spine_keys, "a sample");
                validation
                    .diagnostics
                    .into_iter()
                    .find(|d| d.code == Code::W103)
                    .map(|d| d.message)
            }
        };
        let in_memory = ties(10_000).await;
        assert_eq!(
            in_memory,
            ties(1).await,
            "{window:?}, cutoff included: {include_cutoff}"
        );
        counted.push(in_memory);
    }
    assert!(
        counted.iter().all(Option::is_some),
        "ties in every variant: {counted:?}"
    );
}
