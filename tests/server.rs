//! The HTTP service, driven over loopback by a real client: a real SQLite file, a real
//! Parquet catalog, real DataFusion runs.

mod common;
#[path = "common/http.rs"]
mod http;

use featurecraft::run::RunOptions;
use featurecraft::server::{Limits, ServiceConfig, auth, listen, service};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SECRET: &[u8] = b"a-service-test-secret-of-32-bytes";
const API: &str = "/api/automl/feature-engineering";

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    async fn start(catalog: &Path, db: &Path, warehouse: &Path) -> Server {
        let mut run = RunOptions::default();
        run.validate.sample_size = 500;
        let config = ServiceConfig {
            catalog: catalog.to_path_buf(),
            warehouse: warehouse.to_path_buf(),
            table_format: featurecraft::contract::job::TableFormat::Parquet,
            jwt: auth::Verifier::hs256(SECRET).unwrap(),
            run,
            job_timeout: Duration::from_secs(120),
            limits: Limits::default(),
            crew: None,
        };
        Server::start_with(config, db).await
    }

    async fn start_with(config: ServiceConfig, db: &Path) -> Server {
        let header_timeout = config.limits.header_timeout;
        let (router, handle) = service(config, db).expect("service starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = tokio::spawn(async move {
            listen::serve(listener, router, header_timeout, async {
                let _ = stopped.await;
            })
            .await;
            handle.drain().await;
        });
        Server {
            addr,
            stop: Some(stop),
            done: Some(done),
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(done) = self.done.take() {
            done.await.unwrap();
        }
    }

    /// Creates a job with the `churn_basic` recipe and waits for its proposal.
    async fn create_and_wait(&self, token: &str) -> Value {
        self.create_and_wait_with(token, &new_job(recipe())).await.1
    }

    /// Creates a job from `body` and waits for it; returns (status, job).
    async fn create_and_wait_with(&self, token: &str, body: &Value) -> (u16, Value) {
        let (status, _, job) = self
            .call(
                "POST",
                &format!("{API}/jobs?wait=true"),
                Some(token),
                Some(body),
                &[],
            )
            .await;
        (status, job)
    }

    /// Retries job `id` and waits for the outcome; returns (status, job).
    async fn retry_and_wait(&self, token: &str, id: &str) -> (u16, Value) {
        let path = format!("{API}/jobs/{id}/retry?wait=true");
        let (status, _, job) = self.call("POST", &path, Some(token), None, &[]).await;
        (status, job)
    }

    /// One HTTP/1.1 request; returns (status, headers, JSON body).
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> (u16, String, Value) {
        http::call(self.addr, method, path, token, body, extra).await
    }
}

fn token(sub: &str) -> String {
    auth::sign(SECRET, sub, None, 3600).unwrap()
}

struct World {
    _dir: tempfile::TempDir,
    catalog: PathBuf,
    db: PathBuf,
    warehouse: PathBuf,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog");
    common::copy_dir(&common::fixtures().join("retail"), &catalog);
    World {
        db: dir.path().join("jobs.db"),
        warehouse: dir.path().join("warehouse"),
        catalog,
        _dir: dir,
    }
}

fn recipe() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("recipes/good/churn_basic.json")).unwrap(),
    )
    .unwrap()
}

fn new_job(recipe: Value) -> Value {
    json!({"target_table_name": "churn_training", "domain": "retail", "recipe": recipe})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_lifecycle_ends_in_a_parquet_table_of_the_estimated_size() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let (status, head, job) = server
        .call(
            "POST",
            &format!("{API}/jobs?wait=true"),
            Some(&ana),
            Some(&new_job(recipe())),
            &[("x-correlation-id", "corr-123")],
        )
        .await;
    assert_eq!(status, 201, "{job}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-correlation-id: corr-123"),
        "{head}"
    );
    assert_eq!(job["status"], "pending_approval", "{job}");
    assert_eq!(job["owner"], "ana@example.com");
    let id = job["job_id"].as_str().unwrap().to_string();
    let rows = job["validation"]["estimated_row_count"].as_u64().unwrap();

    let (status, _, job) = server
        .call(
            "POST",
            &format!("{API}/jobs/{id}/approve"),
            Some(&ana),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("approved")),
        "{job}"
    );
    let (status, _, job) = server
        .call(
            "POST",
            &format!("{API}/jobs/{id}/materialize?wait=true"),
            Some(&ana),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("complete")),
        "{job}"
    );
    // The job says where the table is and how many rows it has.
    let table = w.warehouse.join("retail").join("churn_training");
    assert_eq!(
        job["materialized"],
        json!({"location": table.display().to_string(), "rows": rows, "format": "parquet"}),
        "{job}"
    );

    // The table is there, complete, with the estimated number of rows.
    let ctx = datafusion::prelude::SessionContext::new();
    let frame = ctx
        .read_parquet(table.to_str().unwrap(), Default::default())
        .await
        .unwrap();
    assert_eq!(frame.count().await.unwrap() as u64, rows);
    let leftovers: Vec<_> = std::fs::read_dir(w.warehouse.join("retail"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "no staging folders left");

    let (status, _, list) = server
        .call("GET", &format!("{API}/jobs"), Some(&ana), None, &[])
        .await;
    assert_eq!(status, 200);
    assert_eq!(list.as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_on_a_missing_table_succeeds_on_retry_once_it_is_added() {
    let w = world();
    let aside = w.catalog.parent().unwrap().join("support_tickets.parquet");
    std::fs::rename(w.catalog.join("support_tickets.parquet"), &aside).unwrap();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let job = server.create_and_wait(&ana).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"].as_str().unwrap().contains("support_tickets"),
        "{job}"
    );
    let id = job["job_id"].as_str().unwrap().to_string();

    std::fs::rename(&aside, w.catalog.join("support_tickets.parquet")).unwrap();
    let (status, again) = server.retry_and_wait(&ana, &id).await;
    assert_eq!(status, 200);
    assert_eq!(again["status"], "pending_approval", "{again}");
    assert_eq!(again["error"], Value::Null);
    assert_eq!(again["created_at"], job["created_at"]);
    server.stop().await;
}

/// A recipe that compiles but fails while validating: the failed job keeps its SQL, when
/// created and when retried alike, so a reviewer sees the query that failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_failing_in_validation_keeps_its_sql_when_created_and_retried() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let mut failing = recipe();
    failing["features"].as_array_mut().unwrap().push(json!({
        "name": "status_number",
        "expression": "MAX(CAST(status AS INT))",
        "source_table": "orders"
    }));
    let (status, job) = server.create_and_wait_with(&ana, &new_job(failing)).await;
    assert_eq!(status, 201);
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.starts_with("validation failed"), "{error}");
    assert!(error.contains("E050"), "{error}");
    let sql = job["sql"].as_str().expect("the compiled SQL is kept");
    assert!(sql.contains("\"status_number\""), "{sql}");
    assert_eq!(job["validation"], Value::Null);

    let id = job["job_id"].as_str().unwrap();
    let (status, again) = server.retry_and_wait(&ana, id).await;
    assert_eq!(status, 200);
    assert_eq!(again["status"], "failed", "{again}");
    assert_eq!(again["sql"], job["sql"]);
    assert_eq!(again["error"], job["error"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_the_contract_status_codes_and_json_bodies() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let (status, _, body) = server
        .call("GET", &format!("{API}/jobs"), None, None, &[])
        .await;
    assert_eq!(status, 401);
    assert!(body["detail"].as_str().unwrap().contains("Authorization"));
    let forged = auth::sign(
        b"not the secret but just as long!!!",
        "ana@example.com",
        None,
        60,
    )
    .unwrap();
    assert_eq!(
        server
            .call("GET", &format!("{API}/jobs"), Some(&forged), None, &[])
            .await
            .0,
        401
    );
    // The scheme is case-insensitive (RFC 7235); another scheme is refused.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let (status, _, _) = server
            .call(
                "GET",
                &format!("{API}/jobs"),
                None,
                None,
                &[("Authorization", &format!("{scheme} {ana}"))],
            )
            .await;
        assert_eq!(status, 200, "{scheme}");
    }
    let (status, _, _) = server
        .call(
            "GET",
            &format!("{API}/jobs"),
            None,
            None,
            &[("Authorization", &format!("Basic {ana}"))],
        )
        .await;
    assert_eq!(status, 401);
    let expired = auth::sign(SECRET, "ana@example.com", None, -60).unwrap();
    let (status, _, body) = server
        .call("GET", &format!("{API}/jobs"), Some(&expired), None, &[])
        .await;
    assert_eq!(
        (status, body["detail"].as_str()),
        (401, Some("the token has expired"))
    );

    let (status, _, body) = server
        .call(
            "GET",
            &format!("{API}/jobs/not-a-uuid"),
            Some(&ana),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().starts_with("job_id"),
        "{body}"
    );
    let (status, _, _) = server
        .call(
            "GET",
            &format!("{API}/jobs/{}", uuid::Uuid::new_v4()),
            Some(&ana),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
    let (status, _, body) = server
        .call(
            "POST",
            &format!("{API}/jobs"),
            Some(&ana),
            Some(&json!({"domain": "retail"})),
            &[],
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("target_table_name"),
        "{body}"
    );
    // The body is read into the type the OpenAPI document shows: a mismatch names its path.
    for (body, field) in [
        (
            json!({"target_table_name": 5, "domain": "retail", "recipe": recipe()}),
            "target_table_name: invalid type",
        ),
        (
            json!({"target_table_name": "t", "domain": "retail",
                   "design": {"spine": "customers", "entity_grain": ["customer_id"],
                              "label": {"column": "churned", "label_type": "binary"},
                              "max_depth": "deep"}}),
            "design.max_depth: invalid type",
        ),
        (
            json!({"target_table_name": "t", "domain": null}),
            "domain: required",
        ),
    ] {
        let (status, _, answer) = server
            .call("POST", &format!("{API}/jobs"), Some(&ana), Some(&body), &[])
            .await;
        assert_eq!(status, 422, "{answer}");
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.starts_with(field), "{detail}");
    }
    let mut bad = recipe();
    bad["entity_grain"] = json!("customer_id");
    let (status, _, body) = server
        .call(
            "POST",
            &format!("{API}/jobs"),
            Some(&ana),
            Some(&new_job(bad)),
            &[],
        )
        .await;
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().contains("entity_grain"),
        "{body}"
    );

    // 409: retry of a job that has not failed; approve of a job that is not pending.
    let job = server.create_and_wait(&ana).await;
    let id = job["job_id"].as_str().unwrap().to_string();
    let (status, _, body) = server
        .call(
            "POST",
            &format!("{API}/jobs/{id}/retry"),
            Some(&ana),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("pending_approval"),
        "{body}"
    );
    let (status, _, _) = server
        .call(
            "POST",
            &format!("{API}/jobs/{id}/materialize"),
            Some(&ana),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 409);

    // Owner isolation: another caller gets 404; an admin sees the job.
    let bob = token("bob@example.com");
    assert_eq!(
        server
            .call("GET", &format!("{API}/jobs/{id}"), Some(&bob), None, &[])
            .await
            .0,
        404
    );
    assert_eq!(
        server
            .call(
                "POST",
                &format!("{API}/jobs/{id}/approve"),
                Some(&bob),
                None,
                &[]
            )
            .await
            .0,
        404
    );
    let (_, _, list) = server
        .call("GET", &format!("{API}/jobs"), Some(&bob), None, &[])
        .await;
    assert_eq!(list, json!([]));
    let admin = auth::sign(SECRET, "ops", Some("automl:admin"), 60).unwrap();
    assert_eq!(
        server
            .call("GET", &format!("{API}/jobs/{id}"), Some(&admin), None, &[])
            .await
            .0,
        200
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_is_refused_after_the_catalog_changed() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let job = server.create_and_wait(&ana).await;
    let id = job["job_id"].as_str().unwrap().to_string();
    std::fs::write(
        w.catalog.join("orders_extra.sql"),
        "SELECT customer_id FROM orders\n",
    )
    .unwrap();
    let (status, _, body) = server
        .call(
            "POST",
            &format!("{API}/jobs/{id}/approve"),
            Some(&ana),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 409);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("added orders_extra.sql"),
        "{body}"
    );
    let (_, _, still) = server
        .call("GET", &format!("{API}/jobs/{id}"), Some(&ana), None, &[])
        .await;
    assert_eq!(still["status"], "pending_approval");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_survive_a_restart_and_concurrent_retries_run_once() {
    let w = world();
    std::fs::rename(
        w.catalog.join("orders.parquet"),
        w.catalog.parent().unwrap().join("orders.parquet"),
    )
    .unwrap();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let mut ids = Vec::new();
    for _ in 0..3 {
        let job = server.create_and_wait(&ana).await;
        assert_eq!(job["status"], "failed");
        ids.push(job["job_id"].as_str().unwrap().to_string());
    }
    server.stop().await;

    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let (_, _, list) = server
        .call("GET", &format!("{API}/jobs"), Some(&ana), None, &[])
        .await;
    assert_eq!(
        list.as_array().unwrap().len(),
        3,
        "every job is still there"
    );

    // Two concurrent retries of one failed job (now fixable): one runs, the other gets 409,
    // whether it arrives while the first runs or after it succeeded.
    std::fs::rename(
        w.catalog.parent().unwrap().join("orders.parquet"),
        w.catalog.join("orders.parquet"),
    )
    .unwrap();
    let path = format!("{API}/jobs/{}/retry?wait=true", ids[0]);
    let (a, b) = tokio::join!(
        server.call("POST", &path, Some(&ana), None, &[]),
        server.call("POST", &path, Some(&ana), None, &[])
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    let winner = if a.0 == 200 { a.2 } else { b.2 };
    assert_eq!(winner["status"], "pending_approval", "{winner}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stateless_engine_routes_answer_like_the_cli() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let (status, _, body) = server
        .call(
            "POST",
            &format!("{API}/compile"),
            Some(&ana),
            Some(&json!({"recipe": recipe(), "dialect": "bigquery"})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        body["sql"]
            .as_str()
            .unwrap()
            .starts_with("CREATE OR REPLACE TABLE `retail`.`churn_training`")
    );
    // The same answer as `featurecraft compile --format json`.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_featurecraft"))
        .args([
            "compile",
            "--format",
            "json",
            "--dialect",
            "bigquery",
            "--catalog",
        ])
        .arg(&w.catalog)
        .arg(common::fixtures().join("recipes/good/churn_basic.json"))
        .output()
        .unwrap();
    let cli: Value = serde_json::from_slice(&cli.stdout).unwrap();
    assert_eq!(body, cli);
    // A recipe with errors: 422 with its diagnostics, hints included.
    let bad: Value = serde_json::from_str(
        &std::fs::read_to_string(common::fixtures().join("recipes/bad/E021_unknown_column.json"))
            .unwrap(),
    )
    .unwrap();
    for route in ["compile", "validate"] {
        let (status, _, body) = server
            .call(
                "POST",
                &format!("{API}/{route}"),
                Some(&ana),
                Some(&json!({"recipe": bad})),
                &[],
            )
            .await;
        assert_eq!(status, 422, "{route}: {body}");
        assert!(body["sql"].is_null());
        assert_eq!(body["diagnostics"][0]["code"], "E021", "{body}");
        assert_eq!(body["diagnostics"][0]["hints"][0], "did you mean `amount`?");
    }
    // The job made of it fails with the hint in its error.
    let (_, job) = server.create_and_wait_with(&ana, &new_job(bad)).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("(did you mean `amount`?)"),
        "{job}"
    );
    let (status, _, body) = server
        .call(
            "POST",
            &format!("{API}/validate"),
            Some(&ana),
            Some(&json!({"recipe": recipe(), "sample_size": 100})),
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["validation"]["estimated_row_count"], 1000);
    let (status, _, _) = server.call("GET", "/healthz", None, None, &[]).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_left_running_by_a_dead_process_are_failed_on_start_and_can_be_retried() {
    let w = world();
    {
        let store = featurecraft::server::store::Store::open(&w.db).unwrap();
        let recipe = featurecraft::parse_recipe(&recipe().to_string())
            .recipe
            .unwrap();
        let job = featurecraft::Job::new(
            "churn_training".into(),
            "retail".into(),
            "ana@example.com".into(),
            Some(recipe),
        );
        store.insert(&job).unwrap();
    }
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let (_, _, list) = server
        .call("GET", &format!("{API}/jobs"), Some(&ana), None, &[])
        .await;
    let job = &list[0];
    assert_eq!(job["status"], "failed", "{job}");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("the service stopped while this job was running"),
        "{job}"
    );
    let id = job["job_id"].as_str().unwrap();
    let (status, again) = server.retry_and_wait(&ana, id).await;
    assert_eq!(
        (status, again["status"].as_str()),
        (200, Some("pending_approval")),
        "{again}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_wait_the_answer_comes_while_the_job_runs() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let (status, _, job) = server
        .call(
            "POST",
            &format!("{API}/jobs"),
            Some(&ana),
            Some(&new_job(recipe())),
            &[],
        )
        .await;
    assert_eq!(status, 201);
    assert_eq!(
        job["status"], "running",
        "answered as soon as the job was stored"
    );
    let id = job["job_id"].as_str().unwrap().to_string();
    let mut last = job;
    for _ in 0..200 {
        let (_, _, current) = server
            .call("GET", &format!("{API}/jobs/{id}"), Some(&ana), None, &[])
            .await;
        last = current;
        if last["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "pending_approval", "{last}");
    server.stop().await;
}

fn design_job() -> Value {
    json!({
        "target_table_name": "churn_designed",
        "domain": "retail",
        "design": {
            "spine": "customers",
            "entity_grain": ["customer_id"],
            "label": {
                "name": "churned",
                "type": "binary",
                "column": "churned_at",
                "derivation": "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END",
                "positive_class_value": 1
            },
            "max_features": 12
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_with_a_design_request_is_designed_and_proposed() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let (status, job) = server.create_and_wait_with(&ana, &design_job()).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["status"], "pending_approval", "{job}");
    let features = job["recipe"]["features"].as_array().unwrap();
    assert_eq!(features.len(), 12, "{job}");
    assert_eq!(job["recipe"]["target_table"], "churn_designed");
    assert!(
        job["recipe"]["notes"]
            .as_str()
            .unwrap()
            .starts_with("Designed by featurecraft")
    );
    // The leakage screen's drops are in the designed recipe's notes, with the score.
    let notes = job["recipe"]["notes"].as_str().unwrap();
    assert!(
        notes.contains("count_churn_cutoffs (leakage: AUC 0.9"),
        "{notes}"
    );
    assert!(job["sql"].as_str().unwrap().contains("CREATE TABLE"));
    assert_eq!(job["design"]["spine"], "customers", "the request is kept");
    assert_eq!(job["validation"]["estimated_row_count"], 1000);

    // A malformed design request is refused with the field named.
    let mut bad = design_job();
    bad["design"]["entity_grain"] = json!("customer_id");
    let (status, _, body) = server
        .call("POST", &format!("{API}/jobs"), Some(&ana), Some(&bad), &[])
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("design"), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_in_time_design_request_gives_a_point_in_time_recipe() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let job = json!({
        "target_table_name": "churn_pit",
        "domain": "retail",
        "design": {
            "spine": "churn_cutoffs",
            "entity_grain": ["customer_id", "cutoff_time"],
            "label": {"name": "churned_30d", "type": "binary", "column": "churned_30d", "positive_class_value": 1},
            "point_in_time": {
                "cutoff_column": "cutoff_time",
                "time_columns": {"events": "event_ts", "orders": "order_date"}
            },
            "windows": ["30d"],
            "max_features": 8
        }
    });
    let (status, job) = server.create_and_wait_with(&ana, &job).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["status"], "pending_approval", "{job}");
    assert_eq!(
        job["design"]["windows"],
        json!(["30d"]),
        "the request is kept"
    );
    let recipe = &job["recipe"];
    assert_eq!(
        recipe["point_in_time"]["cutoff_column"], "cutoff_time",
        "{recipe}"
    );
    let features = recipe["features"].as_array().unwrap();
    assert!(!features.is_empty() && features.len() <= 8, "{recipe}");
    // Only the timed tables, and order items through their order (bounded by its date).
    for f in features {
        let table = f["source_table"].as_str().unwrap();
        assert!(
            ["churn_cutoffs", "events", "orders", "order_items"].contains(&table),
            "{f}"
        );
    }
    // The CTAS filters each timed source by the cutoff.
    let sql = job["sql"].as_str().unwrap();
    assert!(sql.contains("\"cutoffs\""), "{sql}");
    assert_eq!(job["validation"]["estimated_row_count"], 2694);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_design_request_with_a_schedule_and_a_label_from_the_future_is_proposed() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let schedule = json!({"source_table": "events", "start": "2024-07-01", "every": "30 days",
                          "until": "last_event", "max_per_entity": 3});
    let label = json!({"name": "churned_30d", "type": "binary", "positive_class_value": 1,
                       "source_table": "events",
                       "expression": "CASE WHEN COUNT(*) = 0 THEN 1 ELSE 0 END", "window": "30 days"});
    let job = json!({
        "target_table_name": "churn_schedule",
        "domain": "retail",
        "design": {
            "spine": "events",
            "entity_grain": ["customer_id", "cutoff_time"],
            "label": label,
            "point_in_time": {
                "cutoff_column": "cutoff_time",
                "time_columns": {"events": "event_ts", "orders": "order_date"},
                "schedule": schedule
            },
            "windows": ["30d"],
            "max_features": 6
        }
    });
    let (status, job) = server.create_and_wait_with(&ana, &job).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["status"], "pending_approval", "{job}");
    let recipe = &job["recipe"];
    assert_eq!(recipe["point_in_time"]["schedule"], schedule, "{recipe}");
    assert_eq!(recipe["label"], label, "{recipe}");
    let sql = job["sql"].as_str().unwrap();
    assert!(sql.contains("\"featurecraft_schedule\""), "{sql}");
    // Up to three cutoffs for each customer active after 2024-07-01.
    let rows = job["validation"]["estimated_row_count"].as_u64().unwrap();
    assert!(rows > 1000 && rows <= 3000, "{rows}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_designed_job_that_failed_is_designed_again_once_the_table_is_there() {
    let w = world();
    let spine = w.catalog.join("customers.parquet");
    let kept = w.catalog.parent().unwrap().join("customers.parquet.aside");
    std::fs::rename(&spine, &kept).unwrap();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let (status, job) = server.create_and_wait_with(&ana, &design_job()).await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["recipe"].is_null(), "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("designer") && error.contains("unknown spine table `customers`"),
        "{error}"
    );
    let id = job["job_id"].as_str().unwrap().to_string();

    std::fs::rename(&kept, &spine).unwrap();
    let (status, job) = server.retry_and_wait(&ana, &id).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "pending_approval", "{job}");
    assert_eq!(job["recipe"]["features"].as_array().unwrap().len(), 12);
    assert!(job["error"].is_null());
    server.stop().await;
}

/// Flips one byte in the middle of `file` and puts its modification time back: the same
/// size and the same time, other contents.
fn rewrite_in_place(file: &Path) {
    let modified = std::fs::metadata(file).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(file, &bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(file)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let after = std::fs::metadata(file).unwrap();
    assert_eq!(
        (after.len() as usize, after.modified().unwrap()),
        (bytes.len(), modified)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn materialization_is_refused_when_the_approved_data_changed() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let job = server.create_and_wait(&ana).await;
    let id = job["job_id"].as_str().unwrap().to_string();
    let (status, _, approved) = server
        .call(
            "POST",
            &format!("{API}/jobs/{id}/approve"),
            Some(&ana),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved"))
    );
    rewrite_in_place(&w.catalog.join("orders.parquet"));
    let (status, _, body) = server
        .call(
            "POST",
            &format!("{API}/jobs/{id}/materialize?wait=true"),
            Some(&ana),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(detail.contains("changed orders.parquet"), "{detail}");
    let (_, _, still) = server
        .call("GET", &format!("{API}/jobs/{id}"), Some(&ana), None, &[])
        .await;
    assert_eq!(still["status"], "approved", "nothing ran: {still}");
    assert!(!w.warehouse.join("retail/churn_training").exists());

    // An edited view is a change too, and so is approval of a job validated before it.
    let job = server.create_and_wait(&ana).await;
    let id = job["job_id"].as_str().unwrap().to_string();
    let view = w.catalog.join("customer_order_items.sql");
    let text = std::fs::read_to_string(&view).unwrap();
    std::fs::write(&view, text.replace("SELECT", "SELECT ")).unwrap();
    let (status, _, body) = server
        .call(
            "POST",
            &format!("{API}/jobs/{id}/approve"),
            Some(&ana),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("changed customer_order_items.sql"),
        "{body}"
    );
    server.stop().await;
}

/// A `featurecraft serve` process on loopback, with the address it reports.
struct ServeProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

/// Starts `featurecraft serve`; `Err` holds the exit status and stderr when it stops instead.
fn serve_process(w: &World) -> Result<ServeProcess, (Option<i32>, String)> {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_featurecraft"))
        .args(["serve", "--addr", "127.0.0.1:0", "--sample-size", "500"])
        .arg("--catalog")
        .arg(&w.catalog)
        .arg("--db")
        .arg(&w.db)
        .arg("--warehouse")
        .arg(&w.warehouse)
        .env(
            "FEATURECRAFT_JWT_SECRET",
            std::str::from_utf8(SECRET).unwrap(),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("featurecraft serve starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    while let Some(Ok(line)) = lines.next() {
        seen.push_str(&line);
        seen.push('\n');
        if let Ok(log) = serde_json::from_str::<Value>(&line)
            && log["fields"]["message"] == "serving"
        {
            let addr = log["fields"]["addr"].as_str().unwrap().parse().unwrap();
            // Keep draining stderr so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return Ok(ServeProcess { child, addr });
        }
    }
    let status = child.wait().unwrap();
    Err((status.code(), seen))
}

impl ServeProcess {
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_store_refuses_to_start_and_no_job_is_lost() {
    let w = world();
    let first = serve_process(&w).expect("the first server starts");
    let ana = token("ana@example.com");
    let (status, _, job) = http::call(
        first.addr,
        "POST",
        &format!("{API}/jobs"),
        Some(&ana),
        Some(&new_job(recipe())),
        &[],
    )
    .await;
    assert_eq!((status, job["status"].as_str()), (201, Some("running")));
    let id = job["job_id"].as_str().unwrap().to_string();

    let (code, stderr) = match serve_process(&w) {
        Ok(second) => {
            second.terminate();
            panic!("a second server started on the same store");
        }
        Err(refused) => refused,
    };
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("in use by another featurecraft service"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("process {}", first.child.id())),
        "{stderr}"
    );

    let mut last = Value::Null;
    for _ in 0..400 {
        let (_, _, current) = http::call(
            first.addr,
            "GET",
            &format!("{API}/jobs/{id}"),
            Some(&ana),
            None,
            &[],
        )
        .await;
        last = current;
        if last["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(last["status"], "pending_approval", "{last}");
    first.terminate();

    // Once the first one stopped, the store is free, and the job is as it left it.
    let again = serve_process(&w).expect("a server starts once the first stopped");
    let (_, _, job) = http::call(
        again.addr,
        "GET",
        &format!("{API}/jobs/{id}"),
        Some(&ana),
        None,
        &[],
    )
    .await;
    assert_eq!(job["status"], "pending_approval", "{job}");
    again.terminate();
}

/// A recipe of `n` features over the retail catalog (`n` above the feature limit is
/// refused by compile; below it, a few thousand take seconds to validate).
fn wide_recipe(n: usize) -> Value {
    let tables = [
        ("orders", "amount"),
        ("events", "amount"),
        ("support_tickets", "satisfaction"),
    ];
    let features: Vec<Value> = (0..n)
        .map(|i| {
            let (table, column) = tables[i % tables.len()];
            json!({"name": format!("f{i}"), "expression": format!("SUM({column} * {i})"), "source_table": table})
        })
        .collect();
    json!({
        "target_table": "wide",
        "entity_grain": ["customer_id"],
        "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NULL THEN 0 ELSE 1 END"},
        "features": features
    })
}

/// The longest `/healthz` took while `work` ran, polled every 50 ms.
async fn slowest_health_check_while<T>(
    server: &Server,
    work: impl Future<Output = T>,
) -> (T, Duration) {
    let addr = server.addr;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let checker = tokio::spawn(async move {
        let mut slowest = Duration::ZERO;
        while !*stopped.borrow() {
            let started = std::time::Instant::now();
            let (status, _, _) = http::call(addr, "GET", "/healthz", None, None, &[]).await;
            assert_eq!(status, 200);
            slowest = slowest.max(started.elapsed());
            let _ = tokio::time::timeout(Duration::from_millis(50), stopped.changed()).await;
        }
        slowest
    });
    let out = work.await;
    stop.send(true).unwrap();
    (out, checker.await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_requests_are_refused_by_the_cap_while_health_checks_answer() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let body = json!({"recipe": wide_recipe(20_000), "sample_size": 100});
    let path = format!("{API}/validate");
    let ((a, b), slowest) = slowest_health_check_while(&server, async {
        tokio::join!(
            server.call("POST", &path, Some(&ana), Some(&body), &[]),
            server.call("POST", &path, Some(&ana), Some(&body), &[])
        )
    })
    .await;
    for (status, _, answer) in [a, b] {
        assert_eq!(status, 422, "{answer}");
        assert_eq!(answer["diagnostics"][0]["code"], "E005", "{answer}");
        assert!(answer["validation"].is_null());
    }
    assert!(slowest < Duration::from_secs(1), "healthz took {slowest:?}");
    server.stop().await;
}

/// A service with one engine permit, a short header time limit and a short body time limit.
async fn tight_server(w: &World) -> Server {
    let mut run = RunOptions::default();
    run.validate.sample_size = 100;
    let config = ServiceConfig {
        catalog: w.catalog.clone(),
        warehouse: w.warehouse.clone(),
        table_format: featurecraft::contract::job::TableFormat::Parquet,
        jwt: auth::Verifier::hs256(SECRET).unwrap(),
        run,
        job_timeout: Duration::from_secs(120),
        limits: Limits {
            max_jobs: 1,
            header_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        crew: None,
    };
    Server::start_with(config, &w.db).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_service_answers_503_and_a_client_that_leaves_frees_its_place() {
    let w = world();
    let server = tight_server(&w).await;
    let ana = token("ana@example.com");
    let slow = json!({"recipe": wide_recipe(6000), "sample_size": 100});
    let small = json!({"recipe": recipe()});

    // A slow validation holds the one permit: others are refused, health checks answer.
    let addr = server.addr;
    let (token_a, slow_a) = (ana.clone(), slow.clone());
    let first = tokio::spawn(async move {
        http::call(
            addr,
            "POST",
            &format!("{API}/validate"),
            Some(&token_a),
            Some(&slow_a),
            &[],
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, head, body) = server
        .call(
            "POST",
            &format!("{API}/compile"),
            Some(&ana),
            Some(&small),
            &[],
        )
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("busy"), "{body}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 5"),
        "{head}"
    );
    let (status, _, _) = server.call("GET", "/healthz", None, None, &[]).await;
    assert_eq!(status, 200);
    let (status, _, body) = first.await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(
        body["validation"]["estimated_row_count"].is_number(),
        "{body}"
    );

    // A client that leaves mid-validation: its work is aborted and the permit comes back
    // long before the validation would have finished.
    let text = serde_json::to_string(&slow).unwrap();
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    use tokio::io::AsyncWriteExt;
    stream
        .write_all(
            format!(
                "POST {API}/validate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ana}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let left = std::time::Instant::now();
    drop(stream);
    let mut freed = None;
    for _ in 0..40 {
        let (status, _, _) = server
            .call(
                "POST",
                &format!("{API}/compile"),
                Some(&ana),
                Some(&small),
                &[],
            )
            .await;
        if status == 200 {
            freed = Some(left.elapsed());
            break;
        }
        assert_eq!(status, 503);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let freed = freed.expect("the permit came back");
    assert!(freed < Duration::from_secs(2), "freed after {freed:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_slow_bodies_and_idle_connections_are_cut() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = world();
    let server = tight_server(&w).await;
    let closed_within = |mut stream: tokio::net::TcpStream| async move {
        let started = std::time::Instant::now();
        let mut rest = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the server keeps the connection open");
        (
            started.elapsed(),
            String::from_utf8_lossy(&rest).into_owned(),
        )
    };

    // Headers that never end.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (after, _) = closed_within(stream).await;
    assert!(after < Duration::from_secs(5), "{after:?}");

    // A keep-alive connection left idle after its answer.
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let n = stream.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..n]).starts_with("HTTP/1.1 200"));
    let (after, _) = closed_within(stream).await;
    assert!(after < Duration::from_secs(5), "{after:?}");

    // A body that never arrives in full: 408 with a JSON detail.
    let ana = token("ana@example.com");
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(format!("POST {API}/compile HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ana}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"recipe\"").as_bytes())
        .await
        .unwrap();
    let (_, answer) = closed_within(stream).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"detail\""), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_hyper_cannot_parse_get_json_bodies_too() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let huge_header = format!("X-Big: {}\r\n", "a".repeat(1024 * 1024));
    let long_url = format!("/{}", "u".repeat(100 * 1024));
    for (request, status, says) in [
        (
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{huge_header}\r\n"),
            431,
            "headers are too large",
        ),
        (
            format!("GET {long_url} HTTP/1.1\r\nHost: x\r\n\r\n"),
            414,
            "URL is too long",
        ),
        (
            "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n".to_string(),
            400,
            "not valid HTTP/1.1",
        ),
        (
            "NOT A REQUEST LINE\r\n\r\n".to_string(),
            400,
            "not valid HTTP/1.1",
        ),
    ] {
        let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        // The server answers before it has read all of a huge request: read while writing.
        let (mut reader, mut writer) = stream.into_split();
        let writing = tokio::spawn(async move {
            let _ = writer.write_all(request.as_bytes()).await;
            writer
        });
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer))
            .await
            .expect("answered and closed");
        drop(writing.await);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{answer}"
        );
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.contains("content-type: application/json"), "{head}");
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let body: Value = serde_json::from_str(body).expect("JSON");
        assert!(body["detail"].as_str().unwrap().contains(says), "{body}");
    }
    // The service still answers normally afterwards.
    let (status, _, _) = server.call("GET", "/healthz", None, None, &[]).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_body_is_json_with_a_detail() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let huge = json!({"recipe": "x".repeat(3 * 1024 * 1024)});
    for (method, path, body, expected) in [
        ("GET", "/nowhere".to_string(), None, 404),
        ("DELETE", format!("{API}/jobs"), None, 405),
        ("GET", format!("{API}/jobs?limit=abc"), None, 400),
        ("GET", format!("{API}/jobs?limit=0"), None, 422),
        ("GET", format!("{API}/jobs?cursor=nonsense"), None, 422),
        (
            "POST",
            format!("{API}/jobs?wait=maybe"),
            Some(new_job(recipe())),
            400,
        ),
        ("POST", format!("{API}/validate"), Some(huge), 413),
        (
            "POST",
            format!("{API}/validate"),
            Some(json!({"recipe": recipe(), "sample_size": 0})),
            422,
        ),
    ] {
        let (status, head, answer) = server
            .call(method, &path, Some(&ana), body.as_ref(), &[])
            .await;
        assert_eq!(status, expected, "{method} {path}: {head}\n{answer}");
        assert!(
            answer["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{method} {path}: {head}\n{answer}"
        );
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_catalog_that_does_not_load_is_503_not_500() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    std::fs::write(w.catalog.join("orders.parquet"), b"not parquet at all").unwrap();
    for route in ["compile", "validate"] {
        let (status, _, body) = server
            .call(
                "POST",
                &format!("{API}/{route}"),
                Some(&ana),
                Some(&json!({"recipe": recipe()})),
                &[],
            )
            .await;
        assert_eq!(status, 503, "{route}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("orders.parquet"),
            "{body}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_list_comes_in_pages_that_cover_every_job_once() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let mut created = Vec::new();
    for _ in 0..5 {
        let job = server.create_and_wait(&ana).await;
        created.push(job["job_id"].as_str().unwrap().to_string());
    }
    let mut seen = Vec::new();
    let mut path = format!("{API}/jobs?limit=2");
    let mut pages = 0;
    loop {
        let (status, head, page) = server.call("GET", &path, Some(&ana), None, &[]).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let jobs = page.as_array().unwrap();
        assert!(jobs.len() <= 2);
        seen.extend(
            jobs.iter()
                .map(|j| j["job_id"].as_str().unwrap().to_string()),
        );
        let next = head
            .lines()
            .find_map(|l| l.strip_prefix("x-next-cursor: ").map(str::to_string));
        match next {
            Some(cursor) => {
                assert!(head.contains("rel=\"next\""), "{head}");
                path = format!("{API}/jobs?limit=2&cursor={}", cursor.trim());
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    created.reverse();
    assert_eq!(seen, created, "newest first, each job once");
    let (_, _, all) = server
        .call("GET", &format!("{API}/jobs"), Some(&ana), None, &[])
        .await;
    assert_eq!(
        all.as_array().unwrap().len(),
        5,
        "the default page holds them all"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_over_128_characters_are_refused_when_the_job_is_created() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    for (field, value) in [
        ("target_table_name", "t".repeat(300)),
        ("domain", "d".repeat(5000)),
    ] {
        let mut body = new_job(recipe());
        body[field] = json!(value);
        let (status, _, answer) = server
            .call("POST", &format!("{API}/jobs"), Some(&ana), Some(&body), &[])
            .await;
        assert_eq!(status, 422, "{answer}");
        let detail = answer["detail"].as_str().unwrap();
        assert!(detail.starts_with(field), "{detail}");
        assert!(detail.contains("the limit is 128"), "{detail}");
    }
    let (_, _, list) = server
        .call("GET", &format!("{API}/jobs"), Some(&ana), None, &[])
        .await;
    assert_eq!(list, json!([]), "nothing was stored");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_crashed_materialization_left_is_removed_on_start() {
    let w = world();
    let domain = w.warehouse.join("retail");
    let id = uuid::Uuid::new_v4();
    let staging = domain.join(format!(".churn_training.writing-{id}"));
    let replaced = domain.join(format!(".churn_training.replaced-{id}"));
    let table = domain.join("churn_training");
    for dir in [&staging, &replaced, &table] {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("part-0.parquet"), b"...").unwrap();
    }
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    assert!(!staging.exists() && !replaced.exists());
    assert!(
        table.join("part-0.parquet").exists(),
        "a published table stays"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_with_fix_repairs_a_misspelled_column_and_records_it() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let mut misspelled = recipe();
    misspelled["features"][4]["expression"] = "SUM(amout)".into();
    let (_, job) = server
        .create_and_wait_with(&ana, &new_job(misspelled))
        .await;
    assert_eq!(job["status"], "failed", "{job}");
    let id = job["job_id"].as_str().unwrap().to_string();
    // A plain retry changes nothing; `?fix=true` applies the one clear fix.
    let (status, again) = server.retry_and_wait(&ana, &id).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("failed")));
    let path = format!("{API}/jobs/{id}/retry?wait=true&fix=true");
    let (status, _, fixed) = server.call("POST", &path, Some(&ana), None, &[]).await;
    assert_eq!(status, 200, "{fixed}");
    assert_eq!(fixed["status"], "pending_approval", "{fixed}");
    assert_eq!(fixed["recipe"]["features"][4]["expression"], "SUM(amount)");
    assert!(
        fixed["recipe"]["notes"]
            .as_str()
            .unwrap()
            .contains("- features[4].expression: `amout` → `amount` (E021)"),
        "{fixed}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_route_is_served_and_the_document_is_served_too() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    // The document is public, as FastAPI's is, and is the one the library builds.
    let (status, _, document) = server.call("GET", "/openapi.json", None, None, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(document, featurecraft::server::openapi::document());
    let documented = featurecraft::server::openapi::documented_routes();
    assert_eq!(documented.len(), 10);
    for (method, path) in documented {
        let path = path.replace("{job_id}", "3c90c3cc-0d44-4b50-8888-8dd25736052a");
        let (status, _, body) = server
            .call(&method, &path, Some(&ana), Some(&json!({})), &[])
            .await;
        // Answered by its handler: never the router's fallbacks.
        let detail = body["detail"].as_str().unwrap_or("");
        assert!(
            status != 405 && !detail.starts_with("no route"),
            "{method} {path}: {status} {body}"
        );
        // Each status is one the document lists for the route.
        let key = path.replace("3c90c3cc-0d44-4b50-8888-8dd25736052a", "{job_id}");
        let operation = &document["paths"][&key][method.to_lowercase()];
        assert!(
            operation["responses"][status.to_string()].is_object(),
            "{method} {key} answered {status}, which the document does not list"
        );
    }
    // A route the document does not have is the fallback's.
    let (status, _, _) = server
        .call(
            "POST",
            "/api/automl/feature-engineering/jobs/x/cancel",
            Some(&ana),
            None,
            &[],
        )
        .await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_a_fix_that_is_not_a_boolean_is_refused_and_changes_nothing() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let mut misspelled = recipe();
    misspelled["features"][4]["expression"] = "SUM(amout)".into();
    let (_, job) = server
        .create_and_wait_with(&ana, &new_job(misspelled))
        .await;
    let id = job["job_id"].as_str().unwrap().to_string();
    for query in ["fix=maybe", "fix=%22%5C%22", "fix=1%3B%20DROP"] {
        let path = format!("{API}/jobs/{id}/retry?wait=true&{query}");
        let (status, _, body) = server.call("POST", &path, Some(&ana), None, &[]).await;
        assert!((400..500).contains(&status), "{query}: {status} {body}");
        assert!(body["detail"].is_string(), "{query}: {body}");
    }
    let (_, _, after) = server
        .call("GET", &format!("{API}/jobs/{id}"), Some(&ana), None, &[])
        .await;
    assert_eq!(after["status"], "failed");
    assert_eq!(after["recipe"], job["recipe"]);
    server.stop().await;
}

/// A published table belongs to the owner of the job that published it: another caller's
/// job for the same table is refused with 409 naming the owner and job, the table left as
/// it was; its owner may replace it, and so may an admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_cannot_replace_a_table_another_published() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let publish = |who: String| {
        let server = &server;
        async move {
            let (status, job) = server.create_and_wait_with(&who, &new_job(recipe())).await;
            assert_eq!(status, 201, "{job}");
            let id = job["job_id"].as_str().unwrap().to_string();
            let (status, _, job) = server
                .call(
                    "POST",
                    &format!("{API}/jobs/{id}/approve"),
                    Some(&who),
                    None,
                    &[],
                )
                .await;
            assert_eq!(status, 200, "{job}");
            let (status, _, job) = server
                .call(
                    "POST",
                    &format!("{API}/jobs/{id}/materialize?wait=true"),
                    Some(&who),
                    None,
                    &[],
                )
                .await;
            (status, id, job)
        }
    };
    let (status, alice_job, job) = publish(token("alice@example.com")).await;
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("complete")),
        "{job}"
    );
    let table = w.warehouse.join("retail").join("churn_training");
    let files = |dir: &Path| {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let published = files(&table);

    let (status, _, body) = publish(token("bob@example.com")).await;
    assert_eq!(status, 409, "{body}");
    let detail = body["detail"].as_str().unwrap();
    assert!(
        detail.contains("alice@example.com") && detail.contains(&alice_job),
        "{detail}"
    );
    assert_eq!(files(&table), published, "alice's table is untouched");

    // Its owner replaces it; so does an admin.
    let (status, _, job) = publish(token("alice@example.com")).await;
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("complete")),
        "{job}"
    );
    let admin = auth::sign(SECRET, "ops", Some("automl:admin"), 600).unwrap();
    let (status, _, job) = publish(admin).await;
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("complete")),
        "{job}"
    );
    server.stop().await;
}

/// `serve --crew-command`: a retry over REST runs the external crew (the scripted crew of
/// tests/crew.rs), which fixes the recipe one mistake per round until it validates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_runs_the_external_crew_until_its_recipe_validates() {
    let python = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !python {
        assert_ne!(
            std::env::var("FEATURECRAFT_REQUIRE_ENGINES").as_deref(),
            Ok("1"),
            "python3 is needed for the scripted crew"
        );
        return;
    }
    let w = world();
    let crew = common::fixtures().join("../tests/crew/scripted_crew.py");
    let mut run = RunOptions::default();
    run.validate.sample_size = 300;
    let config = ServiceConfig {
        catalog: w.catalog.clone(),
        warehouse: w.warehouse.clone(),
        table_format: featurecraft::contract::job::TableFormat::Parquet,
        jwt: auth::Verifier::hs256(SECRET).unwrap(),
        run,
        job_timeout: Duration::from_secs(120),
        limits: Limits::default(),
        crew: Some(
            featurecraft::jobs::crew::Crew::parse(
                &format!("python3 '{}' learn", crew.display()),
                3,
                Duration::from_secs(60),
            )
            .unwrap(),
        ),
    };
    let server = Server::start_with(config, &w.db).await;
    let ana = token("ana@example.com");
    let mut bad = recipe();
    bad["features"] = json!([
        {"name": "n_events", "expression": "COUNT(*)", "source_table": "evnts"},
        {"name": "spend", "expression": "SUM(amout)", "source_table": "orders"},
        {"name": "spend_plus_discount", "expression": "SUM(amount) + discount",
         "source_table": "orders"}
    ]);
    let (status, job) = server.create_and_wait_with(&ana, &new_job(bad)).await;
    assert_eq!(
        (status, job["status"].as_str()),
        (201, Some("failed")),
        "{job}"
    );
    let id = job["job_id"].as_str().unwrap();
    let (status, job) = server.retry_and_wait(&ana, id).await;
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["status"], "pending_approval", "{job:#}");
    let notes = job["recipe"]["notes"].as_str().unwrap();
    assert!(notes.contains("crew round 3: no error"), "{notes}");
    server.stop().await;
}

/// `POST /mcp` is bounded like every route: 401 without a token, 413 past the body limit,
/// and a JSON-RPC call answered as JSON (the official SDK's view is in tests/mcp.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_endpoint_needs_a_token_and_bounds_its_body() {
    let w = world();
    let server = Server::start(&w.catalog, &w.db, &w.warehouse).await;
    let ana = token("ana@example.com");
    let accept = [("accept", "application/json, text/event-stream")];
    let list = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"});
    let (status, _, body) = server
        .call("POST", "/mcp", None, Some(&list), &accept)
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("Bearer"),
        "{body}"
    );
    let (status, _, body) = server
        .call("POST", "/mcp", Some(&ana), Some(&list), &accept)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["id"], 7, "{body}");
    assert_eq!(
        body["result"]["tools"].as_array().map(Vec::len),
        Some(11),
        "{body}"
    );
    let huge = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                      "params": {"name": "compile_recipe", "arguments": {"recipe": {"notes": "x".repeat(3 << 20)}}}});
    let (status, _, body) = server
        .call("POST", "/mcp", Some(&ana), Some(&huge), &accept)
        .await;
    assert_eq!(status, 413, "{body}");
    server.stop().await;
}
