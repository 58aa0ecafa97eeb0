//! How long the built-in crew takes on a wide catalog: 10 tables, 200 columns in all.
//!
//! `cargo bench --bench design` writes the catalog into `bench-data/design-related/`
//! (ignored by git) on first use: a spine `accounts` of 50 000 rows and nine tables of
//! 200 000 rows each, 20 columns per table (keys, integers, floats, low- and
//! high-cardinality text, booleans, dates, timestamps). `events_0` … `events_4` hold
//! `account_id`; `events_5` … `events_8` point at `events_0` … `events_3` by their key
//! (`t0_id` …), so they reach the account through one relationship, and at depth 2 the crew
//! stacks their aggregates per row of their parent. It times, median of 5 after a warm-up,
//! at `max_depth` 1 and 2:
//! - `propose`: profiling every table (its first 20 000 rows), discovering relationships
//!   and proposing features;
//! - `design`: the whole crew loop (propose, compile, validate on 10 000 sampled entities,
//!   prune, validate again);
//! - the SQL: validating, over all 50 000 accounts, the depth-2 design's stacked features
//!   against as many depth-1 aggregates of the same tables (the cost of a stacked feature
//!   against a plain one).

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use featurecraft::Catalog;
use featurecraft::design::{DesignOptions, DesignRequest, design, propose};
use featurecraft::{LabelSpec, LabelType};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const RUNS: usize = 5;
const ACCOUNTS: i64 = 50_000;
const CHILD_ROWS: i64 = 200_000;
const CHILD_TABLES: usize = 9;
/// `events_0` … `events_4` hold `account_id`; the tables after them point at one of these.
const PARENTS: usize = 5;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("bench-data").join("design-related");
    if !dir.join("accounts.parquet").exists() {
        write_catalog(&dir);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let catalog = runtime
        .block_on(Catalog::load(&dir))
        .expect("the bench catalog loads");
    let columns: usize = catalog.tables().map(|t| t.columns.len()).sum();
    let request = DesignRequest {
        spine: "accounts".into(),
        entity_grain: vec!["account_id".into()],
        label: LabelSpec {
            name: "label".into(),
            label_type: LabelType::Binary,
            column: Some("churned".into()),
            derivation: None,
            positive_class_value: Some(serde_json::json!(true)),
            ..Default::default()
        },
        max_features: None,
        point_in_time: None,
        windows: Vec::new(),
        relationships: Vec::new(),
        max_depth: None,
        primitives: Vec::new(),
    };
    let options = DesignOptions::default();
    println!(
        "catalog: {} tables, {columns} columns; spine {ACCOUNTS} rows, {CHILD_TABLES} tables of {CHILD_ROWS} rows",
        catalog.tables().count()
    );
    println!("| step | median (s) | min (s) | features |");
    println!("| --- | --- | --- | --- |");
    let time = |label: &str, f: &dyn Fn() -> usize| {
        f();
        let mut times = Vec::new();
        let mut features = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            features = f();
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        println!(
            "| {label} | {:.3} | {:.3} | {features} |",
            times[RUNS / 2],
            times[0]
        );
    };
    for depth in [1u8, 2] {
        let request = DesignRequest {
            max_depth: Some(depth),
            ..request.clone()
        };
        time(
            &format!("propose, depth {depth} (profile + proposal)"),
            &|| {
                runtime
                    .block_on(propose(&request, &catalog, &options))
                    .expect("proposes")
                    .features
                    .len()
            },
        );
        time(
            &format!("design, depth {depth} (crew loop, 10 000 sampled entities)"),
            &|| {
                let designed = runtime
                    .block_on(design(&request, &catalog, &options))
                    .expect("designs");
                assert!(
                    !designed.run.has_errors(),
                    "{:?}",
                    designed.run.error_paragraph()
                );
                designed.recipe.features.len()
            },
        );
    }

    // The SQL: as many stacked features as depth-1 aggregates, over all accounts.
    let designed = |depth: u8| {
        let request = DesignRequest {
            max_depth: Some(depth),
            ..request.clone()
        };
        runtime
            .block_on(design(&request, &catalog, &options))
            .expect("designs")
            .recipe
    };
    let stacked_recipe = designed(2);
    let plain_recipe = designed(1);
    let is_stacked = |f: &featurecraft::FeatureSpec| {
        f.description.matches('(').count() == 2 && f.description.contains(".")
    };
    let stacked: Vec<_> = stacked_recipe
        .features
        .iter()
        .filter(|f| is_stacked(f))
        .cloned()
        .collect();
    let plain: Vec<_> = plain_recipe
        .features
        .iter()
        .filter(|f| f.source_table != "accounts")
        .cloned()
        .collect();
    let k = stacked.len().min(plain.len());
    let with = |recipe: &featurecraft::FeatureRecipe, features: &[featurecraft::FeatureSpec]| {
        featurecraft::FeatureRecipe {
            features: features[..k].to_vec(),
            ..recipe.clone()
        }
    };
    let stacked_recipe = with(&stacked_recipe, &stacked);
    let plain_recipe = with(&plain_recipe, &plain);
    let mut all = featurecraft::run::RunOptions::default();
    all.validate.sample_size = ACCOUNTS as usize;
    let runs: [(&str, &featurecraft::FeatureRecipe); 2] = [
        ("validate all accounts, depth-1 aggregates", &plain_recipe),
        ("validate all accounts, depth-2 stacked", &stacked_recipe),
    ];
    for (label, recipe) in runs {
        time(label, &|| {
            let run = runtime.block_on(featurecraft::run::run_recipe(recipe, &catalog, &all));
            assert!(!run.has_errors(), "{:?}", run.error_paragraph());
            recipe.features.len()
        });
    }
}

/// A deterministic pseudo-random stream (SplitMix64), so the catalog is the same every time.
struct Stream(u64);

impl Stream {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn write_catalog(dir: &Path) {
    std::fs::create_dir_all(dir).expect("bench-data");
    let mut s = Stream(7);
    let accounts: Vec<(&str, ArrayRef)> = {
        let n = ACCOUNTS as usize;
        let mut cols: Vec<(String, ArrayRef)> = vec![
            (
                "account_id".into(),
                Arc::new(Int64Array::from_iter_values(1..=ACCOUNTS)),
            ),
            (
                "churned".into(),
                Arc::new(BooleanArray::from_iter(
                    (0..n).map(|_| Some(s.below(5) == 0)),
                )),
            ),
        ];
        cols.extend(measure_columns(&mut s, n, 18));
        leak(cols)
    };
    write(dir, "accounts", accounts);
    for t in 0..CHILD_TABLES {
        let n = CHILD_ROWS as usize;
        let mut cols: Vec<(String, ArrayRef)> = vec![
            (
                format!("t{t}_id"),
                Arc::new(Int64Array::from_iter_values(1..=CHILD_ROWS)),
            ),
            (
                "account_id".into(),
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|_| 1 + s.below(ACCOUNTS as u64) as i64),
                )),
            ),
        ];
        if t >= PARENTS {
            // A grandchild: it points at a row of events_{t - 5} instead of an account.
            cols[1] = (
                format!("t{}_id", t - PARENTS),
                Arc::new(Int64Array::from_iter_values(
                    (0..n).map(|_| 1 + s.below(CHILD_ROWS as u64) as i64),
                )),
            );
        }
        cols.extend(measure_columns(&mut s, n, 18));
        write(dir, &format!("events_{t}"), leak(cols));
    }
}

/// `count` columns cycling through the kinds a catalog holds.
fn measure_columns(s: &mut Stream, n: usize, count: usize) -> Vec<(String, ArrayRef)> {
    const WORDS: [&str; 6] = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"];
    (0..count)
        .map(|i| {
            let name = format!("c{i:02}");
            let array: ArrayRef = match i % 6 {
                0 => Arc::new(Int64Array::from_iter(
                    (0..n).map(|_| Some(s.below(1000) as i64)),
                )),
                1 => {
                    Arc::new(Float64Array::from_iter((0..n).map(|_| {
                        (s.below(10) > 0).then(|| s.below(100_000) as f64 / 100.0)
                    })))
                }
                2 => Arc::new(StringArray::from_iter(
                    (0..n).map(|_| Some(WORDS[s.below(6) as usize])),
                )),
                3 => Arc::new(StringArray::from_iter(
                    (0..n).map(|_| Some(format!("ref-{}", s.next() % 1_000_000_000))),
                )),
                4 => Arc::new(BooleanArray::from_iter(
                    (0..n).map(|_| Some(s.below(2) == 0)),
                )),
                _ if i % 12 == 5 => Arc::new(Date32Array::from_iter(
                    (0..n).map(|_| Some(18_000 + s.below(1500) as i32)),
                )),
                _ => Arc::new(TimestampMicrosecondArray::from_iter((0..n).map(|_| {
                    Some(1_600_000_000_000_000 + (s.below(86_400 * 1500) as i64) * 1_000_000)
                }))),
            };
            (name, array)
        })
        .collect()
}

fn leak(cols: Vec<(String, ArrayRef)>) -> Vec<(&'static str, ArrayRef)> {
    cols.into_iter()
        .map(|(name, array)| (&*Box::leak(name.into_boxed_str()), array))
        .collect()
}

fn write(dir: &Path, name: &str, columns: Vec<(&str, ArrayRef)>) {
    let batch = RecordBatch::try_from_iter(columns).expect("batch");
    let file = std::fs::File::create(dir.join(format!("{name}.parquet"))).expect("file");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
}
