//! Labels from the future and cutoff schedules in DataFusion, on data built for their
//! edges with every expected value worked out by hand: a row exactly at the cutoff, at
//! `cutoff + gap` and at `cutoff + gap + window`, for both `include_cutoff` values; an
//! entity whose last event is before a fixed start; `first_event` starts; empty windows,
//! `keep_empty` and `max_per_entity`; immature rows (`W105`, `drop_immature`). Then the
//! disjointness mutation test on the bundled catalog: changing every source row inside a
//! row's label window changes none of its features, and changing every other row changes
//! no label; and sampled entities keep all their generated cutoffs with the full values.

mod common;

use chrono::NaiveDate;
use common::expect_row as expect;
use datafusion::arrow::array::{ArrayRef, Float64Array, RecordBatch, TimestampMicrosecondArray};
use featurecraft::run::validate::{ValidateOptions, sample, validate};
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

fn timestamps(values: &[i64]) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values.to_vec()))
}
fn floats(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

/// The edge catalog, one table `ev` (`id`, `t`, `v`):
/// - entity 1, around the cutoff 03-10 00:00 (gap 2 hours, window 10 hours): a row exactly
///   at the cutoff (v 1), at cutoff + gap (v 2), inside the window (v 4), exactly at
///   cutoff + gap + window (v 8), and one on 03-12 00:00 (v 16), its last event;
/// - entity 2: one row on 03-01, before every fixed start;
/// - entity 3: rows on 03-05 06:00 and 03-08 06:00 (`first_event` starts).
fn edge_catalog() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    common::tiny_catalog(
        dir.path(),
        &[(
            "ev",
            vec![
                ("id", common::ints([1, 1, 1, 1, 1, 2, 3, 3].map(Some))),
                (
                    "t",
                    timestamps(&[
                        at(10, 0, 0, 0),
                        at(10, 2, 0, 0),
                        at(10, 5, 0, 0),
                        at(10, 12, 0, 0),
                        at(12, 0, 0, 0),
                        at(1, 0, 0, 0),
                        at(5, 6, 0, 0),
                        at(8, 6, 0, 0),
                    ]),
                ),
                ("v", floats(&[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0])),
            ],
        )],
    );
    dir
}

/// A scheduled recipe over `ev` with a `SUM(v)` label 2 hours after each cutoff for 10
/// hours, features `n` (rows before the cutoff) and `s` (their sum); `schedule` and
/// `label` fields are merged over the defaults.
fn recipe(include_cutoff: bool, schedule: serde_json::Value, label: serde_json::Value) -> String {
    let mut schedule_fields = serde_json::json!({
        "source_table": "ev",
        "start": "2024-03-10T00:00:00",
        "every": "1 day",
        "until": "2024-03-12T00:00:00"
    });
    for (k, v) in schedule.as_object().unwrap() {
        schedule_fields[k] = v.clone();
    }
    let mut label_fields = serde_json::json!({
        "name": "y", "type": "regression",
        "source_table": "ev", "expression": "SUM(v)",
        "window": "10 hours", "gap": "2 hours"
    });
    for (k, v) in label.as_object().unwrap() {
        label_fields[k] = v.clone();
    }
    serde_json::json!({
        "target_table": "edges",
        "entity_grain": ["id", "c"],
        "point_in_time": {
            "cutoff_column": "c",
            "time_columns": {"ev": "t"},
            "include_cutoff": include_cutoff,
            "schedule": schedule_fields
        },
        "label": label_fields,
        "features": [
            {"name": "n", "source_table": "ev", "expression": "COUNT(*)"},
            {"name": "s", "source_table": "ev", "expression": "SUM(v)"}
        ]
    })
    .to_string()
}

/// Every row of a recipe's table, as text keyed by `id|cutoff`.
async fn table_of(catalog: &Catalog, text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    common::table_by_key(catalog, text, 2).await
}

#[tokio::test]
async fn the_label_window_is_the_complement_of_the_features_edge() {
    let dir = edge_catalog();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let none = serde_json::json!({});

    // Features `t < c`, label `c + 2h <= t < c + 12h`: at the cutoff (v 1) is in neither,
    // at c + gap (v 2) in the label, inside (v 4) in the label, at c + gap + window (v 8)
    // in neither.
    let table = table_of(&catalog, &recipe(false, none.clone(), none.clone())).await;
    expect(&table, "1|2024-03-10T00:00:00", "n=0 s=NULL y=6.0");
    // Features `t <= c`, label `c + 2h < t <= c + 12h`: at the cutoff in the features, at
    // c + gap in neither, inside and at the window's end in the label.
    let table = table_of(&catalog, &recipe(true, none.clone(), none.clone())).await;
    expect(&table, "1|2024-03-10T00:00:00", "n=1 s=1.0 y=12.0");

    // The next cutoffs: every earlier row is a feature; 03-12's label window holds no row
    // (SUM over none is NULL) and the row at 03-12 00:00 is at that cutoff.
    let table = table_of(&catalog, &recipe(false, none.clone(), none.clone())).await;
    expect(&table, "1|2024-03-11T00:00:00", "n=4 s=15.0 y=NULL");
    expect(&table, "1|2024-03-12T00:00:00", "n=4 s=15.0 y=NULL");
    let table = table_of(&catalog, &recipe(true, none.clone(), none.clone())).await;
    expect(&table, "1|2024-03-12T00:00:00", "n=5 s=31.0 y=NULL");
}

#[tokio::test]
async fn fixed_and_event_bounded_schedules_give_the_documented_rows() {
    let dir = edge_catalog();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let none = serde_json::json!({});

    // A fixed start and until: every entity of the source gets every cutoff, even one
    // whose last event is before the start (entity 2).
    let fixed = table_of(&catalog, &recipe(false, none.clone(), none.clone())).await;
    let keys: Vec<&str> = fixed.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "1|2024-03-10T00:00:00",
            "1|2024-03-11T00:00:00",
            "1|2024-03-12T00:00:00",
            "2|2024-03-10T00:00:00",
            "2|2024-03-11T00:00:00",
            "2|2024-03-12T00:00:00",
            "3|2024-03-10T00:00:00",
            "3|2024-03-11T00:00:00",
            "3|2024-03-12T00:00:00",
        ]
    );
    expect(&fixed, "2|2024-03-10T00:00:00", "n=1 s=32.0 y=NULL");

    // Until the last event: entity 2's last event is before the start, so it has no row;
    // entity 1's last event (03-12 00:00) is a cutoff itself (`<= until`); entity 3's last
    // event on 03-08 is before the start.
    let until_last = table_of(
        &catalog,
        &recipe(
            false,
            serde_json::json!({"until": "last_event"}),
            none.clone(),
        ),
    )
    .await;
    let keys: Vec<&str> = until_last.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "1|2024-03-10T00:00:00",
            "1|2024-03-11T00:00:00",
            "1|2024-03-12T00:00:00"
        ]
    );

    // From each entity's first event plus a day, every day, until its last event: entity
    // 3 (03-05 06:00 … 03-08 06:00) gets 03-06, 03-07 and 03-08 at 06:00; entity 1 from
    // 03-11 00:00; entity 2 (one event) none, its start being after its last event.
    let first = table_of(
        &catalog,
        &recipe(
            false,
            serde_json::json!({"start": "first_event + 1 day", "until": "last_event"}),
            none.clone(),
        ),
    )
    .await;
    let keys: Vec<&str> = first.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "1|2024-03-11T00:00:00",
            "1|2024-03-12T00:00:00",
            "3|2024-03-06T06:00:00",
            "3|2024-03-07T06:00:00",
            "3|2024-03-08T06:00:00"
        ]
    );
    expect(&first, "3|2024-03-07T06:00:00", "n=1 s=64.0 y=NULL");
    // `first_event` with no offset: the first cutoff is the first event, which a feature
    // does not see (`t < c`) and the label does (`c <= t`, gap 0).
    let first_at = table_of(
        &catalog,
        &recipe(
            false,
            serde_json::json!({"start": "first_event", "until": "last_event", "every": "3 days"}),
            serde_json::json!({"gap": "0 hours", "window": "1 hour"}),
        ),
    )
    .await;
    expect(&first_at, "3|2024-03-05T06:00:00", "n=0 s=NULL y=64.0");
    expect(&first_at, "3|2024-03-08T06:00:00", "n=1 s=64.0 y=128.0");
    assert_eq!(first_at.len(), 4, "{:?}", first_at.keys());
}

#[tokio::test]
async fn empty_windows_keep_empty_and_max_per_entity() {
    let dir = edge_catalog();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let none = serde_json::json!({});

    // COUNT over an empty window is 0, and `empty_value` replaces any label there.
    let counted = table_of(
        &catalog,
        &recipe(
            false,
            none.clone(),
            serde_json::json!({"expression": "COUNT(*)"}),
        ),
    )
    .await;
    expect(&counted, "1|2024-03-10T00:00:00", "y=2");
    expect(&counted, "2|2024-03-10T00:00:00", "y=0");
    let churn = table_of(
        &catalog,
        &recipe(
            false,
            none.clone(),
            serde_json::json!({"expression": "CASE WHEN COUNT(*) = 0 THEN 1 ELSE 0 END"}),
        ),
    )
    .await;
    expect(&churn, "1|2024-03-10T00:00:00", "y=0");
    expect(&churn, "1|2024-03-11T00:00:00", "y=1");
    let defaulted = table_of(
        &catalog,
        &recipe(false, none.clone(), serde_json::json!({"empty_value": 0})),
    )
    .await;
    expect(&defaulted, "1|2024-03-10T00:00:00", "y=6.0");
    expect(&defaulted, "1|2024-03-11T00:00:00", "y=0.0");

    // Without empty windows only entity 1's first cutoff is left (entity 3's events are
    // all before the start).
    let kept = table_of(
        &catalog,
        &recipe(
            false,
            serde_json::json!({"keep_empty": false}),
            none.clone(),
        ),
    )
    .await;
    let keys: Vec<&str> = kept.keys().map(String::as_str).collect();
    assert_eq!(keys, ["1|2024-03-10T00:00:00"]);

    // `max_per_entity` keeps the first N in time order: with empty windows kept, the first
    // two of each entity; without, counted after the drop (entity 3 gets 03-07 and 03-08,
    // whose windows hold its events, not 03-06).
    let two = table_of(
        &catalog,
        &recipe(
            false,
            serde_json::json!({"max_per_entity": 2}),
            none.clone(),
        ),
    )
    .await;
    assert_eq!(two.len(), 6, "{:?}", two.keys());
    assert!(!two.contains_key("1|2024-03-12T00:00:00"));
    let first_nonempty = table_of(
        &catalog,
        &recipe(
            false,
            serde_json::json!({"start": "first_event", "until": "last_event", "every": "6 hours", "keep_empty": false, "max_per_entity": 2}),
            serde_json::json!({"gap": "0 hours", "window": "1 day"}),
        ),
    )
    .await;
    let keys: Vec<&str> = first_nonempty
        .keys()
        .filter(|k| k.starts_with("3|"))
        .map(String::as_str)
        .collect();
    // Entity 3 from 03-05 06:00 every 6 hours: 03-05 06:00 sees its first event; the next
    // non-empty window is 03-07 12:00 (the event of 03-08 06:00 within a day).
    assert_eq!(keys, ["3|2024-03-05T06:00:00", "3|2024-03-07T12:00:00"]);
}

#[tokio::test]
async fn immature_rows_are_counted_and_can_be_dropped() {
    let dir = edge_catalog();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    let none = serde_json::json!({});
    // The data ends at 03-12 00:00: with cutoffs up to 03-13, the label windows of 03-12
    // and 03-13 (ending at +12 hours) end after it, for each of the three entities.
    let text = recipe(
        false,
        serde_json::json!({"until": "2024-03-13T00:00:00"}),
        none.clone(),
    );
    let compiled = compile(
        &text,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let plan = compiled.plan.unwrap();
    let validation = validate(&plan, &catalog, &ValidateOptions::default(), &[]).await;
    let summary = validation.summary.expect("validates");
    assert_eq!(summary.estimated_row_count, 12);
    let w105: Vec<&String> = summary
        .warnings
        .iter()
        .filter(|w| w.starts_with("W105"))
        .collect();
    assert_eq!(w105.len(), 1, "{:?}", summary.warnings);
    assert!(
        w105[0].contains("6 of 12 sampled rows") && w105[0].contains("2024-03-12 00:00:00"),
        "{}",
        w105[0]
    );

    let dropped = recipe(
        false,
        serde_json::json!({"until": "2024-03-13T00:00:00", "drop_immature": true}),
        none,
    );
    let table = table_of(&catalog, &dropped).await;
    assert_eq!(table.len(), 6, "{:?}", table.keys());
    assert!(
        table
            .keys()
            .all(|k| k.ends_with("10T00:00:00") || k.ends_with("11T00:00:00"))
    );
    let compiled = compile(
        &dropped,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let validation = validate(
        &compiled.plan.unwrap(),
        &catalog,
        &ValidateOptions::default(),
        &[],
    )
    .await;
    let summary = validation.summary.expect("validates");
    assert_eq!(summary.estimated_row_count, 6);
    assert!(
        !summary.warnings.iter().any(|w| w.starts_with("W105")),
        "{:?}",
        summary.warnings
    );
}

/// The disjointness recipe: one generated cutoff per customer (60 days after its first
/// event), a label 1 day after it over 14 days, features over every row before it.
fn disjoint_recipe(include_cutoff: bool) -> String {
    serde_json::json!({
        "target_table": "disjoint",
        "entity_grain": ["customer_id", "cutoff_time"],
        "point_in_time": {
            "cutoff_column": "cutoff_time",
            "time_columns": {"events": "event_ts"},
            "include_cutoff": include_cutoff,
            "schedule": {"source_table": "events", "start": "first_event + 60 days",
                         "every": "30 days", "until": "last_event", "max_per_entity": 1}
        },
        "label": {"name": "y", "type": "regression", "source_table": "events",
                  "expression": "SUM(amount) + COUNT(*)", "window": "14 days", "gap": "1 day",
                  "empty_value": -1},
        "features": [
            {"name": "n", "source_table": "events", "expression": "COUNT(*)"},
            {"name": "spend", "source_table": "events", "expression": "SUM(amount)"},
            {"name": "avg_30d", "source_table": "events", "expression": "AVG(amount)", "window": "30 days"},
            {"name": "longest_7d", "source_table": "events", "expression": "MAX(session_seconds)", "window": "7 days"},
            {"name": "last_type", "source_table": "events", "expression": "event_type"}
        ]
    })
    .to_string()
}

/// Rewrites `events` of the catalog in `dir`: every row for which `condition` holds (over
/// `s`, the event, and `k.c`, its customer's cutoff) gets absurd values in every column but
/// the key and the time, and is written three times. Returns how many rows it changed.
async fn mutate_events(
    dir: &std::path::Path,
    cutoffs: &BTreeMap<i64, String>,
    condition: &str,
) -> usize {
    let original = Catalog::load(&common::fixtures().join("retail"))
        .await
        .unwrap();
    let ctx = original
        .session_context(datafusion::prelude::SessionContext::new())
        .await
        .unwrap();
    let values: Vec<String> = cutoffs
        .iter()
        .map(|(id, c)| format!("({id}, CAST('{c}' AS TIMESTAMP))"))
        .collect();
    let keys = format!("(VALUES {}) AS k(customer_id, c)", values.join(", "));
    let changed = format!("k.c IS NOT NULL AND ({condition})");
    let select = format!(
        "s.event_id, s.customer_id, CASE WHEN {changed} THEN 'ABSURD' ELSE s.event_type END AS event_type, s.event_ts, \
         CASE WHEN {changed} THEN CAST(987654321 AS DOUBLE) ELSE s.amount END AS amount, \
         CASE WHEN {changed} THEN CAST(987654321 AS INT) ELSE s.session_seconds END AS session_seconds"
    );
    let joined = format!("FROM events s LEFT JOIN {keys} ON s.customer_id = k.customer_id");
    let count = ctx
        .sql(&format!("SELECT COUNT(*) {joined} WHERE {changed}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let count = count[0]
        .column(0)
        .as_any()
        .downcast_ref::<arrow::array::Int64Array>()
        .unwrap()
        .value(0) as usize;
    let sql = format!(
        "SELECT {select} {joined} UNION ALL SELECT {select} {joined} WHERE {changed} UNION ALL SELECT {select} {joined} WHERE {changed}"
    );
    let batches: Vec<RecordBatch> = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
    let schema = batches[0].schema();
    std::fs::remove_dir_all(dir.join("events")).unwrap();
    std::fs::create_dir_all(dir.join("events")).unwrap();
    for (name, part) in [("part-000", &batches[..]), ("part-001", &[][..])] {
        let file = std::fs::File::create(dir.join(format!("events/{name}.parquet"))).unwrap();
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema.clone(), None).unwrap();
        for b in part {
            writer.write(b).unwrap();
        }
        writer.close().unwrap();
    }
    count
}

#[tokio::test]
async fn no_source_row_feeds_both_a_rows_features_and_its_label() {
    let bundled = common::retail().await;
    for include_cutoff in [false, true] {
        let text = disjoint_recipe(include_cutoff);
        let before = table_of(&bundled, &text).await;
        assert!(before.len() > 500, "{} rows", before.len());
        let cutoffs: BTreeMap<i64, String> = before
            .keys()
            .map(|k| {
                let (id, c) = k.split_once('|').unwrap();
                (id.parse().unwrap(), c.replace('T', " "))
            })
            .collect();
        assert_eq!(cutoffs.len(), before.len(), "one cutoff per customer");
        let (from, to) = if include_cutoff {
            (">", "<=")
        } else {
            (">=", "<")
        };
        let inside = format!(
            "s.event_ts {from} k.c + INTERVAL '1' DAY AND s.event_ts {to} k.c + INTERVAL '15' DAY"
        );
        let features = ["n", "spend", "avg_30d", "longest_7d", "last_type"];
        for (changed_rows, keeps) in [
            (inside.clone(), "features"),
            (format!("NOT ({inside})"), "label"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            common::copy_dir(&common::fixtures().join("retail"), dir.path());
            let mutated = mutate_events(dir.path(), &cutoffs, &changed_rows).await;
            assert!(mutated > 100, "{keeps}: {mutated} rows changed");
            let catalog = Catalog::load(dir.path()).await.unwrap();
            let after = table_of(&catalog, &text).await;
            assert_eq!(
                before.keys().collect::<Vec<_>>(),
                after.keys().collect::<Vec<_>>(),
                "the same rows"
            );
            let (kept, moved): (Vec<&str>, Vec<&str>) = match keeps {
                "features" => (features.to_vec(), vec!["y"]),
                _ => (vec!["y"], features.to_vec()),
            };
            let mut moved_rows = 0;
            for (key, row) in &before {
                for column in &kept {
                    assert_eq!(
                        row[*column], after[key][*column],
                        "include_cutoff {include_cutoff}: changing the rows {changed_rows} changed {column} of {key}"
                    );
                }
                if moved.iter().any(|c| row[*c] != after[key][*c]) {
                    moved_rows += 1;
                }
            }
            // The change matters: the other side of the table sees it.
            assert!(
                moved_rows > 100,
                "include_cutoff {include_cutoff}: only {moved_rows} rows changed {moved:?}"
            );
        }
    }
}

#[tokio::test]
async fn sampled_entities_keep_every_generated_cutoff_with_the_full_tables_values() {
    let catalog = common::retail().await;
    for stem in [
        "pit_schedule_churn",
        "pit_schedule_spend_dates",
        "pit_schedule_mature_hours",
    ] {
        let text =
            std::fs::read_to_string(common::fixtures().join(format!("recipes/good/{stem}.json")))
                .unwrap();
        let full = table_of(&catalog, &text).await;
        let plan = compile(
            &text,
            &catalog,
            &CompileOptions::for_dialect(Dialect::DataFusion),
        )
        .plan
        .unwrap();
        let options = ValidateOptions {
            sample_size: 100,
            ..ValidateOptions::default()
        };
        let sampled =
            common::rows_by_key(&sample(&plan, &catalog, &options).await.unwrap().rows, 2);
        let entities: std::collections::BTreeSet<&str> = sampled
            .keys()
            .map(|k| k.split('|').next().unwrap())
            .collect();
        assert_eq!(entities.len(), 100, "{stem}: the sample is 100 entities");
        for (key, row) in &sampled {
            assert_eq!(Some(row), full.get(key), "{stem}: sampled row {key}");
        }
        for entity in &entities {
            let prefix = format!("{entity}|");
            let in_full = full.keys().filter(|k| k.starts_with(&prefix)).count();
            let in_sample = sampled.keys().filter(|k| k.starts_with(&prefix)).count();
            assert_eq!(
                in_sample, in_full,
                "{stem}: entity {entity} keeps all its cutoffs"
            );
        }
        // The summary counts the generated rows.
        let validation = validate(&plan, &catalog, &options, &[]).await;
        assert_eq!(
            validation.summary.unwrap().estimated_row_count as usize,
            full.len(),
            "{stem}"
        );
    }
}

#[tokio::test]
async fn hostile_schedule_and_label_fields_are_escaped_bounded_or_refused() {
    let dir = edge_catalog();
    let catalog = Catalog::load(dir.path()).await.unwrap();
    // A string empty value holding a quote after a backslash, and a huge max_per_entity
    // (the clip of the series would overflow): every dialect writes a literal that reads
    // back as the same statement, and DataFusion's table has the value as given.
    let text = recipe(
        false,
        serde_json::json!({"max_per_entity": u64::MAX}),
        serde_json::json!({"type": "multiclass", "expression": "CAST(COUNT(*) AS VARCHAR)",
                           "empty_value": "a\\'b'); DROP TABLE ev; --"}),
    );
    for dialect in Dialect::ALL {
        let compiled = compile(&text, &catalog, &CompileOptions::for_dialect(dialect));
        assert!(
            compiled.sql.is_some(),
            "{dialect}: {:#?}",
            compiled.diagnostics
        );
    }
    let table = table_of(&catalog, &text).await;
    expect(&table, "1|2024-03-10T00:00:00", "y=2");
    assert_eq!(
        table["1|2024-03-11T00:00:00"]["y"],
        "a\\'b'); DROP TABLE ev; --"
    );
    assert_eq!(table.len(), 9, "every cutoff up to `until`");

    // Times, spans and sizes that are not what they must be are refused at their path.
    for (schedule, path) in [
        (
            serde_json::json!({"start": "2024-03-10'; DROP TABLE ev; --"}),
            "point_in_time.schedule.start",
        ),
        (
            serde_json::json!({"until": "9999999-01-01"}),
            "point_in_time.schedule.until",
        ),
        (
            serde_json::json!({"every": "99999999999999999999 days"}),
            "point_in_time.schedule.every",
        ),
        (
            serde_json::json!({"max_per_entity": 0}),
            "point_in_time.schedule.max_per_entity",
        ),
    ] {
        let compiled = compile(
            &recipe(false, schedule.clone(), serde_json::json!({})),
            &catalog,
            &CompileOptions::for_dialect(Dialect::DataFusion),
        );
        assert!(compiled.sql.is_none(), "{schedule}");
        assert!(
            compiled
                .diagnostics
                .iter()
                .any(|d| d.code.as_str() == "E033" && d.path_text().as_deref() == Some(path)),
            "{schedule}: {:#?}",
            compiled.diagnostics
        );
    }
    // A label window or gap of absurd length is refused too.
    let compiled = compile(
        &recipe(
            false,
            serde_json::json!({}),
            serde_json::json!({"gap": "1e9 days"}),
        ),
        &catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    assert!(
        compiled
            .diagnostics
            .iter()
            .any(|d| d.code.as_str() == "E032" && d.path_text().as_deref() == Some("label.gap")),
        "{:#?}",
        compiled.diagnostics
    );
}
