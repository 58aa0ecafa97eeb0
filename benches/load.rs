//! A bounded load check of the HTTP service on loopback.
//!
//! Starts the real service (temporary SQLite file, the bundled catalog with one table moved
//! away so that jobs fail fast and can be retried), then runs `CLIENTS` concurrent clients
//! for `SECONDS`, each looping create → get → retry → get. It reports requests per second,
//! latency percentiles and errors, then verifies that every created job is in the store,
//! readable, and in a state the lifecycle allows. Settings: `FEATURECRAFT_LOAD_CLIENTS`
//! (default 8) and `FEATURECRAFT_LOAD_SECONDS` (default 10).
//!
//! `cargo bench --bench load`

#[path = "../tests/common/http.rs"]
mod http;

use featurecraft::run::RunOptions;
use featurecraft::server::{Limits, ServiceConfig, auth, listen, service};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const SECRET: &[u8] = b"load-check-secret-of-thirty-two-bytes";
const API: &str = "/api/automl/feature-engineering";

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create");
    for entry in std::fs::read_dir(from).expect("read") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let clients = setting("FEATURECRAFT_LOAD_CLIENTS", 8) as usize;
    let seconds = setting("FEATURECRAFT_LOAD_SECONDS", 10);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("temp dir");
    let catalog = dir.path().join("catalog");
    copy_dir(&root.join("fixtures/retail"), &catalog);
    std::fs::remove_file(catalog.join("support_tickets.parquet")).expect("move a table away");
    let mut run = RunOptions::default();
    run.validate.sample_size = 200;
    let config = ServiceConfig {
        catalog,
        warehouse: dir.path().join("warehouse"),
        table_format: featurecraft::contract::job::TableFormat::Parquet,
        jwt: auth::Verifier::hs256(SECRET).expect("secret"),
        run,
        job_timeout: Duration::from_secs(60),
        // One job per client may run at once: the bench measures throughput, not refusals.
        limits: Limits {
            max_jobs: clients,
            ..Limits::default()
        },
        crew: None,
    };
    let header_timeout = config.limits.header_timeout;
    let (router, handle) = service(config, &dir.path().join("jobs.db")).expect("service");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(listen::serve(
        listener,
        router,
        header_timeout,
        std::future::pending(),
    ));

    let recipe: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("fixtures/recipes/good/churn_basic.json"))
            .expect("recipe"),
    )
    .expect("json");
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for client in 0..clients {
        let token =
            auth::sign(SECRET, &format!("client{client}@example.com"), None, 3600).expect("token");
        let body =
            json!({"target_table_name": "churn_training", "domain": "retail", "recipe": recipe});
        workers.push(tokio::spawn(async move {
            let (mut latencies, mut errors, mut created) = (Vec::new(), 0u64, Vec::new());
            while Instant::now() < deadline {
                let started = Instant::now();
                let (status, _, job) = http::call(
                    addr,
                    "POST",
                    &format!("{API}/jobs?wait=true"),
                    Some(&token),
                    Some(&body),
                    &[],
                )
                .await;
                latencies.push(started.elapsed());
                if status != 201 {
                    errors += 1;
                    continue;
                }
                let id = job["job_id"].as_str().unwrap_or_default().to_string();
                created.push(id.clone());
                for (method, path, expected) in [
                    ("GET", format!("{API}/jobs/{id}"), 200),
                    ("POST", format!("{API}/jobs/{id}/retry?wait=true"), 200),
                    ("GET", format!("{API}/jobs/{id}"), 200),
                ] {
                    let started = Instant::now();
                    let (status, _, _) =
                        http::call(addr, method, &path, Some(&token), None, &[]).await;
                    latencies.push(started.elapsed());
                    if status != expected {
                        errors += 1;
                    }
                }
            }
            (latencies, errors, created, token)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut lost = 0;
    let mut wrong_state = 0;
    let mut total_created = 0;
    for worker in workers {
        let (mut l, e, created, token) = worker.await.expect("client");
        latencies.append(&mut l);
        errors += e;
        total_created += created.len();
        let (_, _, listed) =
            http::call(addr, "GET", &format!("{API}/jobs"), Some(&token), None, &[]).await;
        let listed: Vec<String> = listed.as_array().map_or(Vec::new(), |a| {
            a.iter()
                .filter_map(|j| j["job_id"].as_str().map(str::to_string))
                .collect()
        });
        for id in &created {
            if !listed.contains(id) {
                lost += 1;
            }
            let (_, _, job) = http::call(
                addr,
                "GET",
                &format!("{API}/jobs/{id}"),
                Some(&token),
                None,
                &[],
            )
            .await;
            if job["status"] != "failed" || job["error"].is_null() {
                wrong_state += 1;
            }
        }
    }
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!("clients {clients}, {seconds} s on loopback");
    println!(
        "requests {} ({:.1}/s), errors {errors}",
        latencies.len(),
        latencies.len() as f64 / seconds as f64
    );
    println!(
        "latency ms: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        pct(0.5),
        pct(0.9),
        pct(0.99),
        pct(1.0)
    );
    println!("jobs created {total_created}, lost {lost}, in a wrong state {wrong_state}");
    server.abort();
    handle.drain().await;
    assert_eq!(
        (lost, wrong_state),
        (0, 0),
        "every job is stored and failed (its table is missing)"
    );
}
