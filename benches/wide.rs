//! Validation of wide recipes: 1000, 2000, 4000 and 8000 features over the bundled retail
//! catalog, the way the summary runs them (groups of `FEATURES_PER_QUERY` features) and,
//! for comparison, as one query of every feature. The data is small on purpose: what grows
//! here is planning, which depends on the features, not the rows.
//!
//! `cargo bench --bench wide` (or `--profile dev` to reuse the test build). Set
//! `FEATURECRAFT_WIDE_SIZES=1000,2000` to choose the widths and `FEATURECRAFT_WIDE_RUNS`
//! for the runs per case (median reported; default 3). One query of 8000 features takes
//! minutes unoptimized: `FEATURECRAFT_WIDE_ONE_QUERY_UP_TO` (default 4000) bounds it.

use featurecraft::run::validate::{FEATURES_PER_QUERY, ValidateOptions, validate};
use featurecraft::{Catalog, CompileOptions, Dialect, compile};
use std::path::Path;
use std::time::Instant;

#[path = "common/mod.rs"]
mod common;
use common::{median, wide_recipe};

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let sizes: Vec<usize> = setting("FEATURECRAFT_WIDE_SIZES", "1000,2000,4000,8000")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runs: usize = setting("FEATURECRAFT_WIDE_RUNS", "3").parse().unwrap_or(3);
    let one_query_up_to: usize = setting("FEATURECRAFT_WIDE_ONE_QUERY_UP_TO", "4000")
        .parse()
        .unwrap_or(4000);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = Catalog::load(&root.join("fixtures/retail"))
        .await
        .expect("the bundled catalog loads");
    println!(
        "features | compile | validate ({FEATURES_PER_QUERY} per query) | per feature | one query | per feature"
    );
    for n in sizes {
        let text = wide_recipe(n);
        let options = CompileOptions {
            max_features: n.max(compile::analyze::MAX_FEATURES),
            ..CompileOptions::for_dialect(Dialect::DataFusion)
        };
        let mut compile_times = Vec::new();
        let mut plan = None;
        for _ in 0..runs {
            let started = Instant::now();
            let compiled = compile(&text, &catalog, &options);
            compile_times.push(started.elapsed());
            plan = compiled.plan;
        }
        let plan = plan.expect("the wide recipe compiles");
        let validate_with = |per_query: usize| {
            let (plan, catalog) = (&plan, &catalog);
            async move {
                let options = ValidateOptions {
                    sample_size: 500,
                    features_per_query: per_query,
                    ..ValidateOptions::default()
                };
                let mut times = Vec::new();
                for _ in 0..runs {
                    let started = Instant::now();
                    let validation = validate(plan, catalog, &options, &[]).await;
                    times.push(started.elapsed());
                    assert!(
                        validation.summary.is_some(),
                        "{:#?}",
                        validation.diagnostics
                    );
                }
                median(times)
            }
        };
        let grouped = validate_with(FEATURES_PER_QUERY).await;
        let one = if n <= one_query_up_to {
            let t = validate_with(n).await;
            format!(
                "{:.2} s | {:.0} µs",
                t.as_secs_f64(),
                t.as_secs_f64() * 1e6 / n as f64
            )
        } else {
            "not run | ".to_string()
        };
        println!(
            "{n} | {:.0} ms | {:.2} s | {:.0} µs | {one}",
            median(compile_times).as_secs_f64() * 1e3,
            grouped.as_secs_f64(),
            grouped.as_secs_f64() * 1e6 / n as f64,
        );
    }
}
