//! The leakage screen's cost against the validation it is part of: for each case, the
//! median of whole validations (the screen included) and the median of the screen alone
//! (`leakage::score` of every feature) over the same sampled rows.
//!
//! `cargo bench --bench leakage`: the 1000-feature recipe of `benches/wide.rs` over the
//! bundled retail catalog. `FEATURECRAFT_LEAKAGE_L=DIR` adds the churn bench recipe over a
//! generated catalog (`featurecraft generate --out DIR --customers 1000000` for L).
//! `FEATURECRAFT_LEAKAGE_RUNS` sets the runs per case (default 5).

use featurecraft::compile::analyze::Plan;
use featurecraft::run::leakage::{Target, score};
use featurecraft::run::validate::{ValidateOptions, sample, validate};
use featurecraft::{Catalog, CompileOptions, Dialect, compile};
use std::path::Path;
use std::time::Instant;

#[path = "common/mod.rs"]
mod common;
use common::{median, wide_recipe};

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let runs: usize = std::env::var("FEATURECRAFT_LEAKAGE_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cases = vec![(
        "1000 features, bundled retail".to_string(),
        root.join("fixtures/retail"),
        wide_recipe(1000),
    )];
    if let Ok(dir) = std::env::var("FEATURECRAFT_LEAKAGE_L") {
        let recipe = std::fs::read_to_string(root.join("benches/recipes/churn_bench.json"))
            .expect("churn bench recipe");
        cases.push((format!("churn bench recipe, {dir}"), dir.into(), recipe));
    }
    println!(
        "| case | sampled rows × features | validation (median of {runs}) | screen alone | share |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for (name, dir, recipe) in cases {
        let catalog = Catalog::load(&dir).await.expect("catalog loads");
        let compiled = compile(
            &recipe,
            &catalog,
            &CompileOptions::for_dialect(Dialect::DataFusion),
        );
        let plan = compiled.plan.expect("compiles");
        let options = ValidateOptions::default();
        let mut validations = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let v = validate(&plan, &catalog, &options, &[]).await;
            validations.push(start.elapsed());
            assert!(v.summary.is_some(), "{:?}", v.diagnostics);
        }
        let rows = sample(&plan, &catalog, &options)
            .await
            .expect("samples")
            .rows;
        let mut screens = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            let scored = screen(&plan, &rows);
            screens.push(start.elapsed());
            std::hint::black_box(scored);
        }
        let (v, s) = (median(validations), median(screens));
        println!(
            "| {name} | {} × {} | {:.3} s | {:.1} ms | {:.1} % |",
            rows.num_rows(),
            plan.features.len(),
            v.as_secs_f64(),
            s.as_secs_f64() * 1e3,
            100.0 * s.as_secs_f64() / v.as_secs_f64()
        );
    }
}

/// Scores every feature of the sample against its label, as validation does.
fn screen(plan: &Plan, rows: &arrow::array::RecordBatch) -> usize {
    let label = rows.column(rows.num_columns() - 1);
    let Some(target) = Target::of(label, plan.label.label_type) else {
        return 0;
    };
    (0..plan.features.len())
        .filter_map(|i| score(rows.column(plan.grain.len() + i), &target))
        .count()
}
