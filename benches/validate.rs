//! Validation time and peak memory at two scales of the generated retail catalog, sampled
//! (10 000 entities) against the same query run in full.
//!
//! `cargo bench --bench validate` generates the catalogs into `bench-data/` (ignored by git)
//! on first use, then runs every case in a child process of its own so that each peak RSS
//! (`VmHWM`) belongs to that case alone. It prints the median of 5 runs after a warm-up.
//! Scales: `FEATURECRAFT_BENCH_SCALES` (customers, comma-separated; default `20000,100000`).

use featurecraft::run::validate::{ValidateOptions, validate};
use featurecraft::{Catalog, CompileOptions, Dialect, compile};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const RUNS: usize = 5;
const RECIPE: &str = "fixtures/recipes/good/churn_basic.json";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let dir = PathBuf::from(&args[pos + 1]);
        let sample_size: usize = args[pos + 2].parse().expect("sample size");
        child(&dir, sample_size);
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let scales: Vec<u64> = std::env::var("FEATURECRAFT_BENCH_SCALES")
        .unwrap_or_else(|_| "20000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!("| customers | mode | median (s) | min (s) | peak RSS (MiB) | estimated rows |");
    println!("| --- | --- | --- | --- | --- | --- |");
    for customers in scales {
        let dir = root.join("bench-data").join(format!("retail-{customers}"));
        if !dir.join("customers.parquet").exists() {
            let options = featurecraft::testkit::GenerateOptions {
                customers,
                event_files: 4,
                progress: false,
            };
            featurecraft::testkit::generate_retail(&dir, &options)
                .expect("generate the bench catalog");
        }
        for (mode, sample_size) in [("sampled 10 000", 10_000usize), ("full", usize::MAX)] {
            let out = Command::new(std::env::current_exe().expect("bench binary"))
                .args([
                    "--child",
                    dir.to_str().expect("utf-8 path"),
                    &sample_size.to_string(),
                ])
                .current_dir(root)
                .output()
                .expect("child runs");
            let text = String::from_utf8_lossy(&out.stdout);
            let line = text.lines().last().unwrap_or_default().to_string();
            assert!(
                out.status.success(),
                "child failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            println!("| {customers} | {mode} | {line} |");
        }
    }
}

/// Runs one case: a warm-up, then `RUNS` timed validations; prints median, min, peak RSS, rows.
fn child(dir: &Path, sample_size: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let catalog = Catalog::load(dir).await.expect("catalog");
        let text = std::fs::read_to_string(RECIPE).expect("recipe");
        let compiled = compile(
            &text,
            &catalog,
            &CompileOptions::for_dialect(Dialect::DataFusion),
        );
        let plan = compiled.plan.expect("compiles");
        let options = ValidateOptions {
            sample_size,
            ..Default::default()
        };
        let mut rows = 0;
        let mut times = Vec::new();
        for run in 0..=RUNS {
            let started = Instant::now();
            let validation = validate(&plan, &catalog, &options, &[]).await;
            let elapsed = started.elapsed().as_secs_f64();
            let summary = validation
                .summary
                .unwrap_or_else(|| panic!("{:?}", validation.diagnostics));
            rows = summary.estimated_row_count;
            if run > 0 {
                times.push(elapsed);
            }
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{:.3} | {:.3} | {:.0} | {rows}",
            times[times.len() / 2],
            times[0],
            peak_rss_mib()
        );
    });
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
