//! Catalogs and warehouses in object storage, against a real S3 server on loopback: moto's,
//! installed from PyPI and started per test (`common/s3.rs`; no mock inside featurecraft).

#[path = "common/http.rs"]
mod http;
#[path = "common/s3.rs"]
mod s3;

use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use s3::S3;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `featurecraft ARGS` with the S3 server's endpoint and credentials in its environment.
fn featurecraft(s3: &S3, args: &[&str]) -> Output {
    featurecraft_with(args, &s3.environment())
}

/// The rows of the Parquet files under `url` (`s3://warehouse/…/`), sorted, as text.
fn rows_at(s3: &S3, url: &str) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(sorted_rows(&s3.context(), url))
}

fn featurecraft_with(args: &[&str], environment: &[(&'static str, String)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_featurecraft"));
    command.args(args).current_dir(root());
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command.envs(environment.iter().map(|(k, v)| (*k, v)));
    command.output().expect("featurecraft runs")
}

/// The rows of the Parquet files under `url`, every column, sorted, pretty-printed.
async fn sorted_rows(ctx: &SessionContext, url: &str) -> String {
    let frame = ctx
        .read_parquet(url, ParquetReadOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"));
    let columns: Vec<String> = frame
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let sorted = frame
        .sort(
            columns
                .iter()
                .map(|c| datafusion::prelude::col(format!("\"{c}\"")).sort(true, true))
                .collect(),
        )
        .unwrap();
    pretty_format_batches(&sorted.collect().await.unwrap())
        .unwrap()
        .to_string()
}

fn local_rows(dir: &Path) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(sorted_rows(
        &SessionContext::new(),
        &format!("{}/", dir.display()),
    ))
}

fn stdout_of(output: &Output) -> String {
    assert!(
        output.status.success(),
        "featurecraft failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

const RECIPES: [&str; 3] = [
    "fixtures/recipes/good/churn_basic.json",
    "fixtures/recipes/good/pit_churn.json",
    "fixtures/recipes/good/view_source.json",
];

#[test]
fn a_catalog_in_s3_validates_and_materializes_as_the_local_one() {
    let Some(s3) = S3::start() else { return };
    let local = tempfile::tempdir().unwrap();
    for recipe in RECIPES {
        let from_s3 = stdout_of(&featurecraft(
            &s3,
            &[
                "validate",
                recipe,
                "--catalog",
                "s3://catalog/retail",
                "--format",
                "json",
            ],
        ));
        let here = stdout_of(&featurecraft(
            &s3,
            &[
                "validate",
                recipe,
                "--catalog",
                "fixtures/retail",
                "--format",
                "json",
            ],
        ));
        assert_eq!(from_s3, here, "{recipe}");

        // The same table from the catalog in S3 into a local warehouse, and into S3.
        let name = Path::new(recipe).file_stem().unwrap().to_str().unwrap();
        let into_local = stdout_of(&featurecraft(
            &s3,
            &[
                "materialize",
                recipe,
                "--catalog",
                "fixtures/retail",
                "--warehouse",
                local.path().to_str().unwrap(),
                "--domain",
                "d",
            ],
        ));
        let into_s3 = stdout_of(&featurecraft(
            &s3,
            &[
                "materialize",
                recipe,
                "--catalog",
                "s3://catalog/retail",
                "--warehouse",
                "s3://warehouse/wh",
                "--domain",
                "d",
            ],
        ));
        let local_answer: serde_json::Value = serde_json::from_str(&into_local).unwrap();
        let s3_answer: serde_json::Value = serde_json::from_str(&into_s3).unwrap();
        assert_eq!(local_answer["rows"], s3_answer["rows"], "{recipe}");
        let location = s3_answer["path"].as_str().unwrap();
        assert!(
            location.starts_with("s3://warehouse/wh/d/") && location.contains("/run-"),
            "{location}"
        );
        let table = local_answer["path"].as_str().unwrap();
        assert_eq!(
            rows_at(&s3, &format!("{location}/")),
            local_rows(Path::new(table)),
            "{recipe} ({name})"
        );
    }
}

/// The pointer object names the published run; each publish keeps the run before it (a
/// reader may be on it) and deletes the one before that.
#[test]
fn a_table_in_s3_is_published_by_its_pointer() {
    let Some(s3) = S3::start() else { return };
    let recipe = "fixtures/recipes/good/churn_basic.json";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let warehouse = s3.bucket("warehouse");
    let mut runs = Vec::new();
    for _ in 0..3 {
        let answer: serde_json::Value = serde_json::from_str(&stdout_of(&featurecraft(
            &s3,
            &[
                "materialize",
                recipe,
                "--catalog",
                "s3://catalog/retail",
                "--warehouse",
                "s3://warehouse/pub",
            ],
        )))
        .unwrap();
        let location = answer["path"].as_str().unwrap().to_string();
        let table_prefix = location.rsplit_once('/').unwrap().0.to_string();
        let run = location.rsplit('/').next().unwrap().to_string();
        let key = format!(
            "{}/_LATEST",
            table_prefix.trim_start_matches("s3://warehouse/")
        );
        let pointer: serde_json::Value = runtime.block_on(async {
            let bytes = warehouse
                .get(&ObjectPath::from(key.as_str()))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        });
        assert_eq!(pointer["current"], run.as_str());
        assert_eq!(pointer["rows"], answer["rows"]);
        assert_eq!(
            pointer["previous"].as_str(),
            runs.last().map(String::as_str)
        );
        runs.push(run);
        let listed: Vec<String> = runtime.block_on(async {
            let prefix = ObjectPath::from(table_prefix.trim_start_matches("s3://warehouse/"));
            let listing = warehouse.list_with_delimiter(Some(&prefix)).await.unwrap();
            let mut names: Vec<String> = listing
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect();
            names.sort();
            names
        });
        let mut kept: Vec<String> = runs.iter().rev().take(2).cloned().collect();
        kept.sort();
        assert_eq!(listed, kept, "runs kept after publishing {}", runs.len());
    }
}

#[test]
fn a_missing_bucket_or_an_unreachable_store_is_a_clear_error_within_seconds() {
    let Some(s3) = S3::start() else { return };
    let recipe = "fixtures/recipes/good/churn_basic.json";
    let started = Instant::now();
    let missing = featurecraft(
        &s3,
        &[
            "validate",
            recipe,
            "--catalog",
            "s3://no-such-bucket/retail",
        ],
    );
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(
        stderr.contains("s3://no-such-bucket/retail") && stderr.contains("NoSuchBucket"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );

    let empty = featurecraft(
        &s3,
        &[
            "validate",
            recipe,
            "--catalog",
            "s3://catalog/no-such-prefix",
        ],
    );
    let stderr = String::from_utf8_lossy(&empty.stderr);
    assert!(!empty.status.success());
    assert!(
        stderr.contains("s3://catalog/no-such-prefix") && stderr.contains("no objects"),
        "{stderr}"
    );

    let into_missing = featurecraft(
        &s3,
        &[
            "materialize",
            recipe,
            "--catalog",
            "fixtures/retail",
            "--warehouse",
            "s3://no-such-bucket/wh",
        ],
    );
    let stderr = String::from_utf8_lossy(&into_missing.stderr);
    assert!(!into_missing.status.success());
    assert!(stderr.contains("no-such-bucket"), "{stderr}");

    // A port nothing listens on: refused connections are retried for a bounded time.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut environment = s3.environment();
    environment[0].1 = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let unreachable = featurecraft_with(
        &["validate", recipe, "--catalog", "s3://catalog/retail"],
        &environment,
    );
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert!(!unreachable.status.success());
    assert!(stderr.contains("s3://catalog/retail"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "{:?}: {stderr}",
        started.elapsed()
    );
}

/// With the server checking signatures and IAM permissions: a wrong secret, an unknown
/// key and a key allowed nothing are each refused within seconds by an error that names
/// the URL and the store's code, and never shows the secret; the allowed key reads and
/// writes, so the refusals are the credentials'.
#[test]
fn wrong_credentials_are_a_clear_error_within_seconds() {
    let Some(s3) = S3::start() else { return };
    let iam = s3.enable_iam();
    let recipe = "fixtures/recipes/good/churn_basic.json";
    let validate = ["validate", recipe, "--catalog", "s3://catalog/retail"];
    let wrong_secret = "not-the-secret-of-this-key";
    let refusals = [
        (&iam.writer.id, wrong_secret, "SignatureDoesNotMatch"),
        (
            &"AKIAUNKNOWNKEY000000".to_string(),
            wrong_secret,
            "InvalidAccessKeyId",
        ),
        (&iam.nobody.id, iam.nobody.secret.as_str(), "AccessDenied"),
    ];
    for (id, secret, code) in refusals {
        let started = Instant::now();
        let refused = featurecraft_with(&validate, &s3.environment_as(id, secret));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{code}: it ran");
        assert!(
            stderr.contains("s3://catalog/retail") && stderr.contains(code),
            "{code}: {stderr}"
        );
        assert!(
            !stderr.contains(secret) && !stderr.contains("<?xml"),
            "{stderr}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{code}: {:?}",
            started.elapsed()
        );
    }

    // Writing: the key allowed nothing cannot put the table, and says so.
    let materialize = |keys: &s3::Keys, catalog: &str| {
        featurecraft_with(
            &[
                "materialize",
                recipe,
                "--catalog",
                catalog,
                "--warehouse",
                "s3://warehouse/wh",
            ],
            &s3.environment_as(&keys.id, &keys.secret),
        )
    };
    let refused = materialize(&iam.nobody, "fixtures/retail");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        stderr.contains("s3://warehouse/wh") && stderr.contains("AccessDenied"),
        "{stderr}"
    );

    let allowed = featurecraft_with(
        &validate,
        &s3.environment_as(&iam.writer.id, &iam.writer.secret),
    );
    assert_eq!(
        stdout_of(&allowed),
        stdout_of(&featurecraft_with(
            &["validate", recipe, "--catalog", "fixtures/retail"],
            &[]
        ))
    );
    let written: serde_json::Value =
        serde_json::from_str(&stdout_of(&materialize(&iam.writer, "s3://catalog/retail"))).unwrap();
    assert_eq!(written["rows"], 1000, "{written}");
}

const API: &str = "/api/automl/feature-engineering";
const JWT_SECRET: &str = "object-store-test-secret-of-32-bytes-and-more";

/// `featurecraft serve` on the catalog in S3 and a warehouse (in S3); its address.
fn serve(s3: &S3, db: &Path, warehouse: &str) -> (Child, std::net::SocketAddr) {
    serve_on(s3, db, "s3://catalog/retail", warehouse)
}

/// `featurecraft serve` on `catalog` and `warehouse`; its address.
fn serve_on(s3: &S3, db: &Path, catalog: &str, warehouse: &str) -> (Child, std::net::SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_featurecraft"));
    command
        .args(["serve", "--addr", "127.0.0.1:0", "--sample-size", "500"])
        .args(["--catalog", catalog, "--warehouse", warehouse])
        .arg("--db")
        .arg(db)
        .env("FEATURECRAFT_JWT_SECRET", JWT_SECRET)
        .envs(s3.environment())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("featurecraft serve starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line)
            && log["fields"]["message"] == "serving"
        {
            let addr = log["fields"]["addr"].as_str().unwrap().parse().unwrap();
            std::thread::spawn(move || for _ in lines {});
            return (child, addr);
        }
    }
    panic!("featurecraft serve stopped: {:?}", child.wait());
}

/// The service approves a job on a catalog in S3 and materializes it into S3; an object
/// rewritten after the approval (a new ETag, the same size) refuses the materialization.
#[test]
fn the_service_binds_approval_to_the_objects_and_publishes_into_s3() {
    let Some(s3) = S3::start() else { return };
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(service_binds_approval_and_publishes(&s3));
}

async fn service_binds_approval_and_publishes(s3: &S3) {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve(s3, &dir.path().join("jobs.db"), "s3://warehouse/svc");
    let token =
        featurecraft::server::auth::sign(JWT_SECRET.as_bytes(), "ana@example.com", None, 3600)
            .unwrap();
    let recipe: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/recipes/good/churn_basic.json")).unwrap(),
    )
    .unwrap();
    let body = serde_json::json!({"target_table_name": "churn_training", "domain": "retail", "recipe": recipe});
    let create = |token: String, body: serde_json::Value| async move {
        let (status, _, job) = http::call(
            addr,
            "POST",
            &format!("{API}/jobs?wait=true"),
            Some(&token),
            Some(&body),
            &[],
        )
        .await;
        assert_eq!(
            (status, job["status"].as_str()),
            (201, Some("pending_approval")),
            "{job}"
        );
        let id = job["job_id"].as_str().unwrap().to_string();
        let (status, _, approved) = http::call(
            addr,
            "POST",
            &format!("{API}/jobs/{id}/approve"),
            Some(&token),
            None,
            &[],
        )
        .await;
        assert_eq!(
            (status, approved["status"].as_str()),
            (200, Some("approved")),
            "{approved}"
        );
        (
            id,
            job["validation"]["estimated_row_count"].as_u64().unwrap(),
        )
    };
    let (id, rows) = create(token.clone(), body.clone()).await;
    let (status, _, done) = http::call(
        addr,
        "POST",
        &format!("{API}/jobs/{id}/materialize?wait=true"),
        Some(&token),
        None,
        &[],
    )
    .await;
    assert_eq!(
        (status, done["status"].as_str()),
        (200, Some("complete")),
        "{done}"
    );
    let location = done["materialized"]["location"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        location.starts_with("s3://warehouse/svc/retail/churn_training/run-"),
        "{location}"
    );
    assert_eq!(done["materialized"]["rows"], rows);
    let local = tempfile::tempdir().unwrap();
    let written: serde_json::Value = serde_json::from_str(&stdout_of(&featurecraft(
        s3,
        &[
            "materialize",
            "fixtures/recipes/good/churn_basic.json",
            "--catalog",
            "fixtures/retail",
            "--warehouse",
            local.path().to_str().unwrap(),
        ],
    )))
    .unwrap();
    let table = written["path"].as_str().unwrap();
    let expected = sorted_rows(&SessionContext::new(), &format!("{table}/")).await;
    assert_eq!(
        sorted_rows(&s3.context(), &format!("{location}/")).await,
        expected
    );

    // A new job, approved; then orders.parquet is rewritten in the bucket.
    let (id, _) = create(token.clone(), body).await;
    let store = s3.bucket("catalog");
    let key = ObjectPath::from("retail/orders.parquet");
    let mut bytes = std::fs::read(root().join("fixtures/retail/orders.parquet")).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    store.put(&key, PutPayload::from(bytes)).await.unwrap();
    let (status, _, refused) = http::call(
        addr,
        "POST",
        &format!("{API}/jobs/{id}/materialize?wait=true"),
        Some(&token),
        None,
        &[],
    )
    .await;
    assert_eq!(status, 409, "{refused}");
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.contains("changed orders.parquet"), "{detail}");
    let _ = child.kill();
    let _ = child.wait();
}

/// A materialization killed at any moment leaves the table readable as it was published:
/// the pointer names a whole run (the one before, or the new one if it was already
/// published), and running it again publishes a new run.
#[test]
fn a_materialization_killed_mid_write_leaves_a_whole_published_run() {
    let Some(s3) = S3::start() else { return };
    let data = tempfile::tempdir().unwrap();
    let catalog = data.path().join("retail");
    let generated = featurecraft(
        &s3,
        &[
            "generate",
            "--out",
            catalog.to_str().unwrap(),
            "--customers",
            "150000",
        ],
    );
    assert!(generated.status.success(), "{generated:?}");
    let recipe = "fixtures/recipes/good/pit_churn.json";
    let args = [
        "materialize",
        recipe,
        "--catalog",
        catalog.to_str().unwrap(),
        "--warehouse",
        "s3://warehouse/fault",
    ];
    let started = Instant::now();
    let first: serde_json::Value =
        serde_json::from_str(&stdout_of(&featurecraft(&s3, &args))).unwrap();
    let whole = started.elapsed();
    let rows = first["rows"].as_u64().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let table = "fault/default/churn_pit";
    let pointer = || -> serde_json::Value {
        runtime.block_on(async {
            let bytes = s3
                .bucket("warehouse")
                .get(&ObjectPath::from(format!("{table}/_LATEST")))
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        })
    };
    for fraction in [0.3, 0.6, 0.8, 0.95] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_featurecraft"))
            .args(args)
            .envs(s3.environment())
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole.mul_f64(fraction));
        let _ = child.kill();
        let _ = child.wait();
        let named = pointer();
        assert_eq!(named["rows"].as_u64(), Some(rows), "{named}");
        eprintln!(
            "killed at {fraction} of {whole:?}: the pointer names {}",
            named["current"]
        );
        if fraction < 0.5 {
            // Killed long before its end: the run before is still the one published.
            let published = first["path"].as_str().unwrap();
            assert!(
                published.ends_with(named["current"].as_str().unwrap()),
                "{named}"
            );
        }
        let run = named["current"].as_str().unwrap();
        let count = runtime.block_on(async {
            s3.context()
                .read_parquet(
                    format!("s3://warehouse/{table}/{run}/"),
                    ParquetReadOptions::default(),
                )
                .await
                .unwrap()
                .count()
                .await
                .unwrap()
        });
        assert_eq!(count as u64, rows, "killed at {fraction} of {whole:?}");
    }
    let again: serde_json::Value =
        serde_json::from_str(&stdout_of(&featurecraft(&s3, &args))).unwrap();
    assert_eq!(again["rows"].as_u64(), Some(rows));
    assert!(
        again["path"]
            .as_str()
            .unwrap()
            .ends_with(pointer()["current"].as_str().unwrap())
    );

    // What a stopped run left (a part of an unpublished run) goes when the service starts;
    // the published runs and what is not featurecraft's stay.
    let store = s3.bucket("warehouse");
    let leftover = format!("{table}/run-{}/part-0.parquet", uuid::Uuid::new_v4());
    let theirs = format!("{table}/notes/readme.txt");
    for key in [&leftover, &theirs] {
        runtime
            .block_on(store.put(&ObjectPath::from(key.as_str()), PutPayload::from("x")))
            .unwrap();
    }
    let runs = || -> Vec<String> {
        runtime.block_on(async {
            let listing = store
                .list_with_delimiter(Some(&ObjectPath::from(table)))
                .await
                .unwrap();
            let mut names: Vec<String> = listing
                .common_prefixes
                .iter()
                .filter_map(|p| p.filename().map(str::to_string))
                .collect();
            names.sort();
            names
        })
    };
    let named = pointer();
    let mut kept = vec![
        named["current"].as_str().unwrap().to_string(),
        named["previous"].as_str().unwrap().to_string(),
        "notes".to_string(),
    ];
    kept.sort();
    assert_ne!(
        runs(),
        kept,
        "the leftover is there before the service starts"
    );
    let db = tempfile::tempdir().unwrap();
    let (mut child, _) = serve(&s3, &db.path().join("jobs.db"), "s3://warehouse/fault");
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs() != kept && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(runs(), kept);
}

/// delta-rs' reading of the Delta table at `uri` (at `version`, or the latest) against the
/// Parquet table in `parquet_dir`: `{"version", "rows", "equal"}`.
fn delta_rs(s3: &S3, uri: &str, parquet_dir: &str, version: Option<u64>) -> serde_json::Value {
    let version = version.map(|v| v.to_string());
    let mut args = vec!["read", uri, parquet_dir];
    if let Some(version) = &version {
        args.extend(["--version", version]);
    }
    s3.script("delta_check.py", &args)
}

/// A Delta training table, in a local folder and in S3, is read back by delta-rs with the
/// rows of the Parquet one; each materialization is the next version, and the version
/// before stays readable.
#[test]
fn a_delta_table_is_read_back_by_delta_rs_and_each_materialization_is_a_version() {
    let Some(s3) = S3::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("warehouse");
    let local = local.to_str().unwrap();
    for recipe in ["churn_basic", "pit_churn"] {
        let recipe = format!("fixtures/recipes/good/{recipe}.json");
        let parquet: serde_json::Value = serde_json::from_str(&stdout_of(&featurecraft(
            &s3,
            &[
                "materialize",
                &recipe,
                "--catalog",
                "fixtures/retail",
                "--warehouse",
                local,
                "--domain",
                "p",
            ],
        )))
        .unwrap();
        assert_eq!(parquet["format"], "parquet");
        let parquet_dir = parquet["path"].as_str().unwrap();
        for warehouse in [local, "s3://warehouse/delta"] {
            let mut versions = Vec::new();
            for _ in 0..2 {
                let written: serde_json::Value = serde_json::from_str(&stdout_of(&featurecraft(
                    &s3,
                    &[
                        "materialize",
                        &recipe,
                        "--catalog",
                        "s3://catalog/retail",
                        "--warehouse",
                        warehouse,
                        "--table-format",
                        "delta",
                        "--domain",
                        "d",
                    ],
                )))
                .unwrap();
                assert_eq!(written["format"], "delta", "{written}");
                assert_eq!(written["rows"], parquet["rows"]);
                versions.push(written["version"].as_u64().unwrap());
                let uri = written["path"].as_str().unwrap();
                let read = delta_rs(&s3, uri, parquet_dir, None);
                assert_eq!(read["version"].as_u64(), versions.last().copied(), "{read}");
                assert_eq!(read["rows"], parquet["rows"], "{read}");
                assert_eq!(read["equal"], true, "{recipe} in {warehouse}: {read}");
            }
            assert_eq!(versions, [0, 1], "{recipe} in {warehouse}");
            let table = format!(
                "{warehouse}/d/{}",
                if recipe.contains("pit") {
                    "churn_pit"
                } else {
                    "churn_training"
                }
            );
            let before = delta_rs(&s3, &table, parquet_dir, Some(0));
            assert_eq!(
                (before["version"].as_u64(), &before["equal"]),
                (Some(0), &serde_json::Value::Bool(true)),
                "{before}"
            );
        }
    }
    // Parquet is not published over a Delta table.
    let over = featurecraft(
        &s3,
        &[
            "materialize",
            "fixtures/recipes/good/churn_basic.json",
            "--catalog",
            "fixtures/retail",
            "--warehouse",
            "s3://warehouse/delta",
            "--domain",
            "d",
        ],
    );
    let stderr = String::from_utf8_lossy(&over.stderr);
    assert!(!over.status.success());
    assert!(stderr.contains("is a Delta table"), "{stderr}");
}

/// delta-rs commits the rows of the Parquet file `parquet` to the Delta table at `uri`
/// (`mode`: error, overwrite, append); the version it committed.
fn delta_rs_write(s3: &S3, parquet: &Path, uri: &str, mode: &str) -> u64 {
    let parquet = parquet.to_string_lossy();
    let written = s3.script("delta_check.py", &["write", &parquet, uri, mode]);
    written["version"].as_u64().unwrap()
}

/// A catalog whose `orders` is a Delta table (delta-rs wrote it from the same rows)
/// validates as the Parquet one, locally and in S3; the service's approval binds to the
/// table's version: a commit after the approval refuses the materialization with a 409
/// naming the table and both versions.
#[test]
fn a_delta_source_validates_like_its_parquet_twin_and_approval_binds_to_its_version() {
    let Some(s3) = S3::start() else { return };
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("retail");
    let fixtures = root().join("fixtures/retail");
    let copy = Command::new("cp")
        .arg("-r")
        .arg(&fixtures)
        .arg(&catalog)
        .status()
        .unwrap();
    assert!(copy.success());
    let orders = fixtures.join("orders.parquet");
    std::fs::remove_file(catalog.join("orders.parquet")).unwrap();
    let local_orders = catalog.join("orders");
    assert_eq!(
        delta_rs_write(&s3, &orders, local_orders.to_str().unwrap(), "error"),
        0
    );
    s3.upload(&catalog, "delta_retail");
    let described = |catalog: &str| -> serde_json::Value {
        serde_json::from_str(&stdout_of(&featurecraft(
            &s3,
            &["describe-catalog", "--catalog", catalog],
        )))
        .unwrap()
    };
    let parquet = described("fixtures/retail");
    for delta in [catalog.to_str().unwrap(), "s3://catalog/delta_retail"] {
        assert_eq!(described(delta)["orders"], parquet["orders"], "{delta}");
    }
    for recipe in ["churn_basic", "pit_churn"] {
        let recipe = format!("fixtures/recipes/good/{recipe}.json");
        let validate = |catalog: &str| {
            stdout_of(&featurecraft(
                &s3,
                &[
                    "validate",
                    &recipe,
                    "--catalog",
                    catalog,
                    "--format",
                    "json",
                ],
            ))
        };
        let twin = validate("fixtures/retail");
        assert_eq!(validate(catalog.to_str().unwrap()), twin, "{recipe}");
        assert_eq!(validate("s3://catalog/delta_retail"), twin, "{recipe}");
    }

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = tempfile::tempdir().unwrap();
    let (mut child, addr) = serve_on(
        &s3,
        &db.path().join("jobs.db"),
        "s3://catalog/delta_retail",
        "s3://warehouse/from_delta",
    );
    let token =
        featurecraft::server::auth::sign(JWT_SECRET.as_bytes(), "ana@example.com", None, 3600)
            .unwrap();
    let recipe: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/recipes/good/churn_basic.json")).unwrap(),
    )
    .unwrap();
    let body = serde_json::json!({"target_table_name": "churn_training", "domain": "retail", "recipe": recipe});
    let (status, detail) = runtime.block_on(async {
        let (status, _, job) = http::call(
            addr,
            "POST",
            &format!("{API}/jobs?wait=true"),
            Some(&token),
            Some(&body),
            &[],
        )
        .await;
        assert_eq!(
            (status, job["status"].as_str()),
            (201, Some("pending_approval")),
            "{job}"
        );
        let id = job["job_id"].as_str().unwrap().to_string();
        let (status, _, approved) = http::call(
            addr,
            "POST",
            &format!("{API}/jobs/{id}/approve"),
            Some(&token),
            None,
            &[],
        )
        .await;
        assert_eq!(status, 200, "{approved}");
        assert_eq!(
            delta_rs_write(&s3, &orders, "s3://catalog/delta_retail/orders", "append"),
            1
        );
        let (status, _, refused) = http::call(
            addr,
            "POST",
            &format!("{API}/jobs/{id}/materialize?wait=true"),
            Some(&token),
            None,
            &[],
        )
        .await;
        (
            status,
            refused["detail"].as_str().unwrap_or_default().to_string(),
        )
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 409, "{detail}");
    assert!(
        detail.contains("changed orders (Delta version 0 → 1)"),
        "{detail}"
    );
}

/// A Delta materialization killed at any moment leaves the table at a committed version
/// that delta-rs reads whole (the version before, or the new one if it was committed);
/// running it again commits the next version, with the rows of the Parquet table.
#[test]
fn a_delta_materialization_killed_mid_write_leaves_a_committed_version() {
    let Some(s3) = S3::start() else { return };
    let data = tempfile::tempdir().unwrap();
    let catalog = data.path().join("retail");
    let catalog = catalog.to_str().unwrap();
    let generated = featurecraft(
        &s3,
        &["generate", "--out", catalog, "--customers", "150000"],
    );
    assert!(generated.status.success(), "{generated:?}");
    let recipe = "fixtures/recipes/good/pit_churn.json";
    let uri = "s3://warehouse/delta_fault/default/churn_pit";
    let args = [
        "materialize",
        recipe,
        "--catalog",
        catalog,
        "--warehouse",
        "s3://warehouse/delta_fault",
        "--table-format",
        "delta",
    ];
    let started = Instant::now();
    let first: serde_json::Value =
        serde_json::from_str(&stdout_of(&featurecraft(&s3, &args))).unwrap();
    let whole = started.elapsed();
    assert_eq!(first["version"], 0);
    let rows = first["rows"].as_u64().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut version = 0;
    for fraction in [0.3, 0.6, 0.8, 0.95] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_featurecraft"))
            .args(args)
            .envs(s3.environment())
            .current_dir(root())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole.mul_f64(fraction));
        let _ = child.kill();
        let _ = child.wait();
        // The version the log holds now, and the rows of the files it names (delta-rs
        // reads the table whole at the end).
        let (now, read) = runtime.block_on(async {
            let store: std::sync::Arc<dyn ObjectStore> =
                std::sync::Arc::new(s3.bucket("warehouse"));
            let table = ObjectPath::from("delta_fault/default/churn_pit");
            let snapshot = featurecraft::catalog::delta::snapshot(&store, &table)
                .await
                .unwrap()
                .expect("the table has a version");
            let mut read = 0;
            for file in snapshot.files.keys() {
                read += s3
                    .context()
                    .read_parquet(
                        format!("s3://warehouse/delta_fault/default/churn_pit/{file}"),
                        ParquetReadOptions::default(),
                    )
                    .await
                    .unwrap()
                    .count()
                    .await
                    .unwrap() as u64;
            }
            (snapshot.version, read)
        });
        eprintln!("killed at {fraction} of {whole:?}: version {now}");
        assert_eq!(read, rows, "version {now}");
        assert!(
            now == version || now == version + 1,
            "version {now} after {version}"
        );
        if fraction < 0.5 {
            assert_eq!(now, version, "killed long before its end");
        }
        version = now;
    }
    let again: serde_json::Value =
        serde_json::from_str(&stdout_of(&featurecraft(&s3, &args))).unwrap();
    assert_eq!(again["version"].as_u64(), Some(version + 1));
    let local = tempfile::tempdir().unwrap();
    let parquet: serde_json::Value = serde_json::from_str(&stdout_of(&featurecraft(
        &s3,
        &[
            "materialize",
            recipe,
            "--catalog",
            catalog,
            "--warehouse",
            local.path().to_str().unwrap(),
        ],
    )))
    .unwrap();
    let read = delta_rs(&s3, uri, parquet["path"].as_str().unwrap(), None);
    assert_eq!(read["equal"], true, "{read}");
}
