//! Point-in-time recipes in DataFusion, on data built for their edges, with every expected
//! value worked out by hand: a row exactly at the cutoff, exactly a window before it, one
//! second outside the window, DATE against TIMESTAMP cutoffs, ties for as-of values, an
//! entity with no rows. Then the leakage mutation test on the bundled catalog: making every
//! source row at or after a cutoff absurd changes no feature of that cutoff's rows; and
//! sampled entities keep all their cutoffs with exactly the full table's values.

mod common;

use chrono::NaiveDate;
use common::expect_row as expect;
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use featurecraft::run::validate::{ValidateOptions, sample};
use featurecraft::{Catalog, CompileOptions, Dialect, compile};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Microseconds since 1970 of `2024-03-DD HH:MM:SS`.
fn at(day: u32, hour: u32, minute: u32, second: u32) -> i64 {
    NaiveDate::from_ymd_opt(2024, 3, day)
        .unwrap()
        .and_hms_opt(hour, minute, second)
        .unwrap()
        .and_utc()
        .timestamp_micros()
}

/// Days since 1970 of `2024-03-DD`.
fn day(day: u32) -> i32 {
    (NaiveDate::from_ymd_opt(2024, 3, day).unwrap() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
        .num_days() as i32
}

fn timestamps(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values.to_vec()))
}
fn dates(values: &[Option<i32>]) -> ArrayRef {
    Arc::new(Date32Array::from(values.to_vec()))
}
fn floats(values: &[Option<f64>]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}
fn strings(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(StringArray::from(values.to_vec()))
}

/// The edge catalog:
/// - `cut`: entity 1 with cutoffs 03-10 12:00 and 03-20 00:00, entity 2 at 03-10 12:00,
///   entity 3 (no rows anywhere) at 03-10 12:00; `cday` is each cutoff's date.
/// - `ev` (timestamps): for entity 1 a row exactly at the first cutoff, one exactly 7 days
///   before it, one a second earlier, one between the cutoffs, one exactly at the second;
///   for entity 2 two rows at one time, and one after its cutoff.
/// - `od` (dates): entity 1 orders on 03-10 and 03-03.
/// - `st` (timestamps, for as-of values): entity 1 rows on 03-01, at the first cutoff and
///   on 03-18; entity 2 four rows at one time, tied on `v` between two, one with a NULL `v`.
fn edge_catalog() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "cut",
                vec![
                    ("id", common::ints([Some(1), Some(1), Some(2), Some(3)])),
                    (
                        "cutoff",
                        timestamps(&[
                            Some(at(10, 12, 0, 0)),
                            Some(at(20, 0, 0, 0)),
                            Some(at(10, 12, 0, 0)),
                            Some(at(10, 12, 0, 0)),
                        ]),
                    ),
                    (
                        "cday",
                        dates(&[Some(day(10)), Some(day(20)), Some(day(10)), Some(day(10))]),
                    ),
                    (
                        "y",
                        Arc::new(Int32Array::from(vec![0, 1, 0, 0])) as ArrayRef,
                    ),
                ],
            ),
            (
                "ev",
                vec![
                    ("id", common::ints([1, 1, 1, 1, 1, 2, 2, 2].map(Some))),
                    (
                        "t",
                        timestamps(&[
                            Some(at(10, 12, 0, 0)),
                            Some(at(3, 12, 0, 0)),
                            Some(at(3, 11, 59, 59)),
                            Some(at(15, 0, 0, 0)),
                            Some(at(20, 0, 0, 0)),
                            Some(at(9, 0, 0, 0)),
                            Some(at(9, 0, 0, 0)),
                            Some(at(11, 0, 0, 0)),
                        ]),
                    ),
                    (
                        "v",
                        floats(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0].map(Some)),
                    ),
                ],
            ),
            (
                "od",
                vec![
                    ("id", common::ints([Some(1), Some(1)])),
                    ("d", dates(&[Some(day(10)), Some(day(3))])),
                    ("amt", floats(&[Some(1.0), Some(2.0)])),
                ],
            ),
            (
                "st",
                vec![
                    ("id", common::ints([1, 1, 1, 2, 2, 2, 2].map(Some))),
                    (
                        "t",
                        timestamps(&[
                            Some(at(1, 0, 0, 0)),
                            Some(at(10, 12, 0, 0)),
                            Some(at(18, 0, 0, 0)),
                            Some(at(9, 0, 0, 0)),
                            Some(at(9, 0, 0, 0)),
                            Some(at(9, 0, 0, 0)),
                            Some(at(9, 0, 0, 0)),
                        ]),
                    ),
                    (
                        "v",
                        floats(&[
                            Some(1.0),
                            Some(2.0),
                            Some(3.0),
                            Some(32.0),
                            Some(64.0),
                            Some(64.0),
                            None,
                        ]),
                    ),
                    (
                        "kind",
                        strings(&[
                            Some("old"),
                            Some("at"),
                            Some("recent"),
                            Some("x"),
                            Some("y"),
                            Some("a"),
                            Some("zz"),
                        ]),
                    ),
                ],
            ),
        ],
    );
    dir
}

fn recipe(cutoff: &str, include_cutoff: bool) -> String {
    serde_json::json!({
        "target_table": "edges",
        "entity_grain": ["id", cutoff],
        "point_in_time": {
            "cutoff_column": cutoff,
            "time_columns": {"ev": "t", "od": "d", "st": "t"},
            "include_cutoff": include_cutoff
        },
        "label": {"name": "label", "type": "binary", "column": "y", "positive_class_value": 1},
        "features": [
            {"name": "n_all", "source_table": "ev", "expression": "COUNT(*)"},
            {"name": "n_7d", "source_table": "ev", "expression": "COUNT(*)", "window": "7 days"},
            {"name": "sum_7d", "source_table": "ev", "expression": "SUM(v)", "window": "1 week"},
            {"name": "plus_one_7d", "source_table": "ev", "expression": "COUNT(*) + 1", "window": "7 days"},
            {"name": "od_n", "source_table": "od", "expression": "COUNT(*)"},
            {"name": "od_sum_7d", "source_table": "od", "expression": "SUM(amt)", "window": "7 days"},
            {"name": "kind_now", "source_table": "st", "expression": "kind"},
            {"name": "kind_5d", "source_table": "st", "expression": "kind", "window": "5 days"}
        ]
    })
    .to_string()
}

/// Every row of a recipe's table, as text keyed by `id|cutoff`: the whole spine is sampled.
async fn table_of(catalog: &Catalog, text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    common::table_by_key(catalog, text, 2).await
}

#[tokio::test]
async fn timestamp_cutoffs_exclude_the_cutoff_and_include_the_window_start() {
    let dir = edge_catalog();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let table = table_of(&catalog, &recipe("cutoff", false)).await;
    assert_eq!(table.len(), 4);
    // Entity 1, first cutoff: the row at the cutoff is out, the row exactly 7 days before
    // is in the window, the one a second earlier only in the unbounded count. The order
    // on the cutoff's date (midnight, before 12:00) counts; the one 7 days before its
    // midnight is outside the window that starts at 03-03 12:00.
    expect(
        &table,
        "1|2024-03-10T12:00:00",
        "n_all=2 n_7d=1 sum_7d=2.0 plus_one_7d=2 od_n=2 od_sum_7d=1.0 kind_now=old kind_5d=NULL",
    );
    // Second cutoff (03-20 00:00): the row at it is out; 03-15 is the only one in 7 days.
    expect(
        &table,
        "1|2024-03-20T00:00:00",
        "n_all=4 n_7d=1 sum_7d=8.0 plus_one_7d=2 od_n=2 od_sum_7d=NULL kind_now=recent kind_5d=recent",
    );
    // Entity 2: the tie at 03-09 is broken by `v` descending (64.0 twice), then `kind`
    // descending ('y' before 'a'); the NULL `v` comes last although 'zz' is largest.
    expect(
        &table,
        "2|2024-03-10T12:00:00",
        "n_all=2 n_7d=2 sum_7d=96.0 plus_one_7d=3 od_n=0 od_sum_7d=NULL kind_now=y kind_5d=y",
    );
    // Entity 3 has no rows: counts 0 (and COUNT(*) + 1 is 1), other aggregates NULL.
    expect(
        &table,
        "3|2024-03-10T12:00:00",
        "n_all=0 n_7d=0 sum_7d=NULL plus_one_7d=1 od_n=0 od_sum_7d=NULL kind_now=NULL kind_5d=NULL",
    );
}

#[tokio::test]
async fn a_timed_source_mixes_aggregates_and_as_of_values() {
    let dir = edge_catalog();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let mut mixed: serde_json::Value = serde_json::from_str(&recipe("cutoff", false)).unwrap();
    let features = mixed["features"].as_array_mut().unwrap();
    features.push(serde_json::json!(
        {"name": "st_n", "source_table": "st", "expression": "COUNT(*)"}
    ));
    features.push(serde_json::json!(
        {"name": "st_max_7d", "source_table": "st", "expression": "MAX(v)", "window": "7 days"}
    ));
    let table = table_of(&catalog, &mixed.to_string()).await;
    // `st` has rows for entity 1 at 03-01, at the first cutoff (03-10 12:00) and at 03-18:
    // the aggregates count the rows before each cutoff, the as-of values read the latest.
    expect(
        &table,
        "1|2024-03-10T12:00:00",
        "st_n=1 st_max_7d=NULL kind_now=old kind_5d=NULL",
    );
    expect(
        &table,
        "1|2024-03-20T00:00:00",
        "st_n=3 st_max_7d=3.0 kind_now=recent kind_5d=recent",
    );
    expect(
        &table,
        "2|2024-03-10T12:00:00",
        "st_n=4 st_max_7d=64.0 kind_now=y",
    );
    expect(
        &table,
        "3|2024-03-10T12:00:00",
        "st_n=0 st_max_7d=NULL kind_now=NULL",
    );
}

#[tokio::test]
async fn as_of_values_and_aggregates_of_a_dictionary_column_equal_those_of_its_strings() {
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dir = edge_catalog();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let mut mixed: serde_json::Value = serde_json::from_str(&recipe("cutoff", false)).unwrap();
    for (name, expression) in [
        ("kinds", "COUNT(DISTINCT kind)"),
        ("last_kind", "MAX(kind)"),
        ("n_y", "COUNT(CASE WHEN kind = 'y' THEN 1 END)"),
    ] {
        mixed["features"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!(
                {"name": name, "source_table": "st", "expression": expression}
            ));
    }
    let text = mixed.to_string();
    let expected = table_of(&catalog, &text).await;
    expect(
        &expected,
        "2|2024-03-10T12:00:00",
        "kinds=4 last_kind=zz n_y=1 kind_now=y",
    );

    // `st.kind` written again as a dictionary, as PyArrow writes a categorical.
    let path = dir.path().join("st.parquet");
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let schema = batches[0].schema();
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            "kind" => f.as_ref().clone().with_data_type(dictionary.clone()),
            _ => f.as_ref().clone(),
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), schema.clone(), None).unwrap();
    for batch in &batches {
        let columns = batch
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(c, f)| cast(c, f.data_type()).unwrap())
            .collect();
        writer
            .write(&RecordBatch::try_new(schema.clone(), columns).unwrap())
            .unwrap();
    }
    writer.close().unwrap();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    assert_eq!(table_of(&catalog, &text).await, expected);
}

#[tokio::test]
async fn date_cutoffs_with_the_cutoff_included() {
    let dir = edge_catalog();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let table = table_of(&catalog, &recipe("cday", true)).await;
    // A DATE cutoff is its midnight against timestamps; with the cutoff included a row at
    // midnight counts, and a window starts just after `cutoff - 7 days`.
    expect(
        &table,
        "1|2024-03-10",
        "n_all=2 n_7d=2 sum_7d=6.0 od_n=2 od_sum_7d=1.0 kind_now=old kind_5d=NULL",
    );
    // The row exactly at 03-20 00:00 is included; dates compare as dates (03-13 excluded
    // from the window, so the order of 03-10 is outside it).
    expect(
        &table,
        "1|2024-03-20",
        "n_all=5 n_7d=2 sum_7d=24.0 od_n=2 od_sum_7d=NULL kind_now=recent kind_5d=recent",
    );
    expect(&table, "2|2024-03-10", "n_all=2 kind_now=y");
}

/// Which cutoff of each entity the mutation follows.
#[derive(Clone, Copy, Debug)]
enum Follow {
    /// Rows at or after the entity's earliest cutoff: that cutoff's rows must not change.
    Earliest,
    /// Rows at or after its latest cutoff: no row may change.
    Latest,
}

/// Rewrites a timed source of the catalog in `dir`: every row at or after its entity's
/// cutoff (`Follow`) gets absurd values in every column but the key and the time, and is
/// written three times. Returns how many rows were made absurd.
async fn make_late_rows_absurd(
    dir: &std::path::Path,
    (table, time): (&str, &str),
    cutoff: &str,
    follow: Follow,
    include_cutoff: bool,
) -> usize {
    let original = Catalog::load(&common::fixtures().join("retail"))
        .await
        .unwrap();
    let ctx = original
        .session_context(datafusion::prelude::SessionContext::new())
        .await
        .unwrap();
    let schema = ctx.table(table).await.unwrap().schema().as_arrow().clone();
    let pick = match follow {
        Follow::Earliest => "MIN",
        Follow::Latest => "MAX",
    };
    // A row at the cutoff may count when the recipe includes it.
    let op = if include_cutoff { ">" } else { ">=" };
    let late = format!("k.c IS NOT NULL AND CAST(s.\"{time}\" AS TIMESTAMP) {op} k.c");
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let name = f.name();
            let absurd = match f.data_type() {
                _ if name == "customer_id" || name == time => None,
                arrow::datatypes::DataType::Utf8 | arrow::datatypes::DataType::Utf8View => {
                    Some("'ABSURD'".to_string())
                }
                arrow::datatypes::DataType::Boolean => Some(format!("NOT s.\"{name}\"")),
                t if t.is_numeric() => Some(format!("CAST(987654321 AS {})", sql_type(t))),
                _ => None,
            };
            match absurd {
                Some(value) => {
                    format!("CASE WHEN {late} THEN {value} ELSE s.\"{name}\" END AS \"{name}\"")
                }
                None => format!("s.\"{name}\""),
            }
        })
        .collect();
    let joined = format!(
        "FROM \"{table}\" s LEFT JOIN (SELECT customer_id, CAST({pick}(\"{cutoff}\") AS TIMESTAMP) AS c FROM churn_cutoffs GROUP BY customer_id) k ON s.customer_id = k.customer_id"
    );
    let select = columns.join(", ");
    let sql = format!(
        "SELECT {select} {joined} UNION ALL SELECT {select} {joined} WHERE {late} UNION ALL SELECT {select} {joined} WHERE {late}"
    );
    let late_rows = ctx
        .sql(&format!("SELECT COUNT(*) {joined} WHERE {late}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let late_rows = late_rows[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0) as usize;
    let batches = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let written = batches[0].schema();
    let write = |path: std::path::PathBuf, batches: &[RecordBatch]| {
        let file = std::fs::File::create(path).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, written.clone(), None).unwrap();
        for b in batches {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();
    };
    if table == "events" {
        // A folder of two files (one file alone would read as a domain).
        std::fs::remove_dir_all(dir.join("events")).unwrap();
        std::fs::create_dir_all(dir.join("events")).unwrap();
        write(dir.join("events/part-000.parquet"), &batches);
        write(dir.join("events/part-001.parquet"), &[]);
    } else {
        write(dir.join(format!("{table}.parquet")), &batches);
    }
    late_rows
}

fn sql_type(t: &arrow::datatypes::DataType) -> &'static str {
    use datafusion::arrow::datatypes::DataType as T;
    match t {
        T::Int32 => "INT",
        T::Int64 => "BIGINT",
        _ => "DOUBLE",
    }
}

fn good(stem: &str) -> String {
    std::fs::read_to_string(common::fixtures().join(format!("recipes/good/{stem}.json"))).unwrap()
}

/// The earliest (or latest) cutoff of each customer in a table keyed `id|cutoff`.
fn followed_keys(
    table: &BTreeMap<String, BTreeMap<String, String>>,
    follow: Follow,
) -> Vec<String> {
    let mut by_entity: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for key in table.keys() {
        by_entity
            .entry(key.split('|').next().unwrap())
            .or_default()
            .push(key);
    }
    by_entity
        .values()
        .map(|keys| {
            let mut keys = keys.clone();
            keys.sort_by_key(|k| k.split('|').nth(1).unwrap().to_string());
            match follow {
                Follow::Earliest => keys[0].clone(),
                Follow::Latest => keys[keys.len() - 1].clone(),
            }
        })
        .collect()
}

#[tokio::test]
async fn absurd_rows_at_or_after_a_cutoff_change_no_feature_of_that_cutoff() {
    let bundled = common::retail().await;
    for (stem, cutoff, include_cutoff) in [
        ("pit_churn", "cutoff_time", false),
        ("pit_dates_include_cutoff", "cutoff_date", true),
    ] {
        let text = good(stem);
        let before = table_of(&bundled, &text).await;
        for follow in [Follow::Earliest, Follow::Latest] {
            let dir = tempfile::tempdir().unwrap();
            common::copy_dir(&common::fixtures().join("retail"), dir.path());
            let mut mutated = 0;
            for source in [
                ("events", "event_ts"),
                ("orders", "order_date"),
                ("plan_changes", "changed_at"),
                ("support_tickets", "opened_at"),
            ] {
                mutated +=
                    make_late_rows_absurd(dir.path(), source, cutoff, follow, include_cutoff).await;
            }
            assert!(
                mutated > 1000,
                "{stem} {follow:?}: {mutated} rows made absurd"
            );
            let catalog = Catalog::load(dir.path()).await.unwrap();
            let after = table_of(&catalog, &text).await;
            assert_eq!(before.len(), after.len());
            let keys: Vec<String> = match follow {
                Follow::Latest => before.keys().cloned().collect(),
                Follow::Earliest => followed_keys(&before, follow),
            };
            for key in &keys {
                assert_eq!(
                    before[key], after[key],
                    "{stem} {follow:?}: row {key} changed"
                );
            }
            assert!(
                keys.len() > 800,
                "{stem} {follow:?}: {} rows compared",
                keys.len()
            );
            // The mutation matters: a recipe without `point_in_time` sees it.
            let unbounded = serde_json::json!({
                "target_table": "t", "entity_grain": ["customer_id"],
                "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NULL THEN 0 ELSE 1 END"},
                "features": [{"name": "n", "source_table": "events", "expression": "SUM(amount)"}]
            })
            .to_string();
            assert_ne!(
                table_of(&bundled, &unbounded).await,
                table_of(&catalog, &unbounded).await,
                "the absurd rows change an unbounded sum"
            );
        }
    }
}

#[tokio::test]
async fn sampled_entities_keep_every_cutoff_with_the_full_tables_values() {
    let catalog = common::retail().await;
    let text = good("pit_churn");
    let full = table_of(&catalog, &text).await;
    let compiled = compile(
        &text,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let plan = compiled.plan.unwrap();
    let options = ValidateOptions {
        sample_size: 100,
        ..ValidateOptions::default()
    };
    let sampled = common::rows_by_key(&sample(&plan, &catalog, &options).await.unwrap().rows, 2);
    let entities: std::collections::BTreeSet<&str> = sampled
        .keys()
        .map(|k| k.split('|').next().unwrap())
        .collect();
    assert_eq!(entities.len(), 100, "the sample is 100 entities");
    for (key, row) in &sampled {
        assert_eq!(
            Some(row),
            full.get(key),
            "sampled row {key} equals the full table's"
        );
    }
    // Each sampled entity has all its cutoffs.
    for entity in &entities {
        let prefix = format!("{entity}|");
        let in_full = full.keys().filter(|k| k.starts_with(&prefix)).count();
        let in_sample = sampled.keys().filter(|k| k.starts_with(&prefix)).count();
        assert_eq!(in_sample, in_full, "entity {entity} keeps all its cutoffs");
    }
    assert!(
        sampled.len() > 150,
        "{} rows for 100 entities",
        sampled.len()
    );
}

/// The retail catalog with a view giving order items their order's customer and date.
fn catalog_with_dated_items(dir: &std::path::Path) {
    common::copy_dir(&common::fixtures().join("retail"), dir);
    std::fs::write(
        dir.join("order_items_dated.sql"),
        "SELECT o.customer_id, o.order_date, i.order_id, i.product_id, i.quantity, i.unit_price\n\
         FROM order_items i JOIN orders o ON i.order_id = o.order_id\n",
    )
    .unwrap();
}

#[tokio::test]
async fn a_source_through_a_relationship_is_bounded_by_the_timed_table_of_its_path() {
    let dir = tempfile::tempdir().unwrap();
    catalog_with_dated_items(dir.path());
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let text = std::fs::read_to_string(
        common::fixtures().join("recipes/good/pit_order_items_through_orders.json"),
    )
    .unwrap();
    let through = common::table_by_key(&catalog, &text, 2).await;
    // The same features over the hand-written view, timed by the order's date.
    let mut recipe: serde_json::Value = serde_json::from_str(&text).unwrap();
    recipe.as_object_mut().unwrap().remove("relationships");
    recipe["point_in_time"]["time_columns"]["order_items_dated"] = "order_date".into();
    for f in recipe["features"].as_array_mut().unwrap() {
        if f["source_table"] == "order_items" {
            f["source_table"] = "order_items_dated".into();
        }
    }
    let by_view = common::table_by_key(&catalog, &recipe.to_string(), 2).await;
    assert!(through.len() > 1000, "{}", through.len());
    assert_eq!(through, by_view);
    // Not vacuous: items are counted for some rows and not others, and the window matters.
    let counted = through.values().filter(|r| r["n_items"] != "0").count();
    assert!(counted > 0 && counted < through.len(), "{counted}");
    assert!(
        through
            .values()
            .any(|r| r["n_items"] != "0" && r["basket_value_30d"] == "NULL")
    );
    // Without the order's time, the items would be unbounded: W012, as any such source.
    recipe = serde_json::from_str(&text).unwrap();
    recipe["point_in_time"]["time_columns"] = serde_json::json!({"orders": "order_date"});
    recipe["features"] = serde_json::json!([
        {"name": "n_items", "source_table": "order_items", "expression": "COUNT(*)"}
    ]);
    let mut unbounded = recipe.clone();
    unbounded["point_in_time"]["time_columns"] = serde_json::json!({"orders": null});
    let compiled = compile(
        &unbounded.to_string(),
        &catalog,
        &CompileOptions::for_dialect(Dialect::DuckDb),
    );
    assert!(compiled.sql.is_some(), "{:?}", compiled.diagnostics);
    // orders is declared static, order_items unlisted: nothing bounds the items.
    assert!(
        compiled
            .diagnostics
            .iter()
            .any(|d| d.code == featurecraft::Code::W012),
        "{:?}",
        compiled.diagnostics
    );
    // With the order's time, no W012 and no W014 for `orders` (its path reads it).
    let compiled = compile(
        &recipe.to_string(),
        &catalog,
        &CompileOptions::for_dialect(Dialect::DuckDb),
    );
    assert!(
        compiled.diagnostics.is_empty(),
        "{:?}",
        compiled.diagnostics
    );
}

#[tokio::test]
async fn every_timed_table_of_a_path_is_before_the_cutoff() {
    use datafusion::arrow::array::{ArrayRef, Date32Array};
    let dir = tempfile::tempdir().unwrap();
    let days = |values: &[i32]| -> ArrayRef { Arc::new(Date32Array::from(values.to_vec())) };
    // One customer, cutoff day 100. Session 10 starts on day 90, session 11 on day 120 (after
    // the cutoff). Transactions: day 95 in session 10 (counts), day 99 in session 11 (its own
    // time is before the cutoff but its session's is not), day 130 in session 10 (after).
    common::tiny_catalog(
        dir.path(),
        &[
            (
                "cutoffs",
                vec![
                    ("customer_id", common::ints([Some(1)])),
                    ("cutoff_day", days(&[100])),
                    ("y", common::ints([Some(0)])),
                ],
            ),
            (
                "sessions",
                vec![
                    ("session_id", common::ints([Some(10), Some(11)])),
                    ("customer_id", common::ints([Some(1), Some(1)])),
                    ("started", days(&[90, 120])),
                ],
            ),
            (
                "transactions",
                vec![
                    ("transaction_id", common::ints([Some(1), Some(2), Some(3)])),
                    ("session_id", common::ints([Some(10), Some(11), Some(10)])),
                    ("paid", days(&[95, 99, 130])),
                ],
            ),
        ],
    );
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let recipe = serde_json::json!({
        "target_table": "t",
        "entity_grain": ["customer_id", "cutoff_day"],
        "relationships": [{"child": "transactions.session_id", "parent": "sessions.session_id"}],
        "point_in_time": {
            "cutoff_column": "cutoff_day",
            "time_columns": {"sessions": "started", "transactions": "paid"}
        },
        "label": {"name": "label", "column": "y"},
        "features": [
            {"name": "n_tx", "source_table": "transactions", "expression": "COUNT(*)"},
            {"name": "n_tx_7d", "source_table": "transactions", "expression": "COUNT(*)", "window": "7 days"},
            {"name": "n_sessions", "source_table": "sessions", "expression": "COUNT(*)"}
        ]
    });
    let table = common::table_by_key(&catalog, &recipe.to_string(), 2).await;
    let row = table.values().next().unwrap();
    assert_eq!(row["n_tx"], "1", "{table:?}");
    // The window counts back on the transaction's own time: day 95 is within 7 days of 100.
    assert_eq!(row["n_tx_7d"], "1", "{table:?}");
    assert_eq!(row["n_sessions"], "1", "{table:?}");
    for dialect in Dialect::ALL {
        let compiled = compile(
            &recipe.to_string(),
            &catalog,
            &CompileOptions::for_dialect(dialect),
        );
        assert!(
            compiled.sql.is_some(),
            "{dialect}: {:?}",
            compiled.diagnostics
        );
    }
}

/// The longest window a recipe may ask for (100 years, as a DataFusion duration of
/// 3 153 600 000 s) keeps every row before the cutoff, on TIMESTAMP and DATE sources alike.
#[tokio::test]
async fn the_longest_window_keeps_every_row_before_the_cutoff() {
    let catalog = common::retail().await;
    let text = r#"{
        "target_table": "t",
        "entity_grain": ["customer_id", "cutoff_time"],
        "point_in_time": {"cutoff_column": "cutoff_time", "time_columns": {"events": "event_ts", "orders": "order_date"}},
        "label": {"name": "churned_30d", "type": "binary", "column": "churned_30d", "positive_class_value": 1},
        "features": [
            {"name": "events_all", "source_table": "events", "expression": "COUNT(*)"},
            {"name": "events_100y", "source_table": "events", "expression": "COUNT(*)", "window": "36500 days"},
            {"name": "orders_all", "source_table": "orders", "expression": "COUNT(*)"},
            {"name": "orders_100y", "source_table": "orders", "expression": "COUNT(*)", "window": "5214 weeks"}
        ]
    }"#;
    let table = table_of(&catalog, text).await;
    assert!(table.len() > 1000, "{} rows", table.len());
    let mut counted = 0;
    for (key, row) in &table {
        assert_eq!(row["events_all"], row["events_100y"], "{key}: {row:?}");
        assert_eq!(row["orders_all"], row["orders_100y"], "{key}: {row:?}");
        counted += row["events_all"].parse::<u64>().unwrap();
    }
    assert!(counted > 0, "the sources have rows before the cutoffs");
}
