//! moto's S3 server on loopback, for the tests of catalogs and warehouses in object
//! storage: installed from PyPI by `scripts/s3-server` (its own virtual environment) and
//! started per test, with the buckets `catalog` (holding `fixtures/retail` under `retail/`)
//! and `warehouse`. Where Python or PyPI is missing, [`S3::start`] says so and gives
//! `None`, unless `FEATURECRAFT_REQUIRE_ENGINES=1` (as in CI), which makes that a failure.
#![allow(
    dead_code,
    reason = "each test crate uses its own part of these helpers"
)]

use datafusion::prelude::SessionContext;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The credentials the tests give featurecraft and their own client (moto takes any).
pub const KEY_ID: &str = "featurecraft-test";
pub const SECRET: &str = "featurecraft-test-secret";

/// An access key of an IAM user.
pub struct Keys {
    pub id: String,
    pub secret: String,
}

/// The users of [`S3::enable_iam`]: `writer` may do anything in S3, `nobody` nothing.
pub struct Iam {
    pub writer: Keys,
    pub nobody: Keys,
}

/// moto's S3 server, stopped when dropped (its stdin closes).
pub struct S3 {
    pub endpoint: String,
    child: Child,
    stdin: Option<ChildStdin>,
}

impl Drop for S3 {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3 {
    /// The server with the buckets `catalog` (holding `fixtures/retail` under `retail/`)
    /// and `warehouse`; `None` when it cannot be installed here and that is allowed.
    pub fn start() -> Option<S3> {
        let mut child = Command::new(root().join("scripts/s3-server"))
            .args(["catalog", "warehouse"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("scripts/s3-server starts");
        let stdin = child.stdin.take();
        let mut line = String::new();
        let stdout = child.stdout.take().expect("stdout");
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the endpoint line");
        if line.trim().is_empty() {
            let status = child.wait().expect("the script ends");
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
            }
            if status.code() == Some(77)
                && std::env::var("FEATURECRAFT_REQUIRE_ENGINES").as_deref() != Ok("1")
            {
                eprintln!("skipped: no S3 server can be installed here:\n{stderr}");
                return None;
            }
            panic!("the S3 server did not start ({status}):\n{stderr}");
        }
        // Its request log goes nowhere: a full pipe would stop it.
        if let Some(err) = child.stderr.take() {
            std::thread::spawn(move || std::io::copy(&mut { err }, &mut std::io::sink()));
        }
        let s3 = S3 {
            endpoint: line.trim().to_string(),
            child,
            stdin,
        };
        s3.upload(&root().join("fixtures/retail"), "retail");
        Some(s3)
    }

    /// The test's own client of `bucket`.
    pub fn bucket(&self, bucket: &str) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id(KEY_ID)
            .with_secret_access_key(SECRET)
            .with_bucket_name(bucket)
            .build()
            .expect("a client")
    }

    /// Copies the folder `dir` into the catalog bucket under `prefix`.
    pub fn upload(&self, dir: &Path, prefix: &str) {
        let store = self.bucket("catalog");
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let mut stack = vec![(dir.to_path_buf(), prefix.to_string())];
        while let Some((dir, prefix)) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                let key = format!("{prefix}/{name}");
                if entry.path().is_dir() {
                    stack.push((entry.path(), key));
                } else {
                    let bytes = std::fs::read(entry.path()).unwrap();
                    runtime
                        .block_on(
                            store.put(&ObjectPath::from(key.as_str()), PutPayload::from(bytes)),
                        )
                        .unwrap();
                }
            }
        }
    }

    /// The environment featurecraft reads the server's endpoint and credentials from.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", KEY_ID.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
        ]
    }

    /// Makes the server check every later request's signature and IAM permissions
    /// (`scripts/s3_iam.py`); the keys of a user allowed every S3 action and of one
    /// allowed nothing. The test's own client ([`S3::bucket`]) is refused from then on.
    pub fn enable_iam(&self) -> Iam {
        let users = self.script("s3_iam.py", &[&self.endpoint]);
        let keys = |user: &str| Keys {
            id: users[user]["key"].as_str().unwrap().to_string(),
            secret: users[user]["secret"].as_str().unwrap().to_string(),
        };
        Iam {
            writer: keys("writer"),
            nobody: keys("nobody"),
        }
    }

    /// `scripts/SCRIPT ARGS` run by the server's virtual environment's Python with the
    /// server's environment; the JSON it prints. A failure fails the test with its stderr.
    pub fn script(&self, script: &str, args: &[&str]) -> serde_json::Value {
        let out = Command::new(self.python())
            .arg(root().join("scripts").join(script))
            .args(args)
            .envs(self.environment())
            .output()
            .expect("the venv's Python runs");
        assert!(
            out.status.success(),
            "{script} {args:?}: {} (stdout: {})",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{script} {args:?} printed no JSON: {e}"))
    }

    /// [`S3::environment`] with other credentials.
    pub fn environment_as(&self, id: &str, secret: &str) -> Vec<(&'static str, String)> {
        let mut environment = self.environment();
        for (name, value) in &mut environment {
            match *name {
                "AWS_ACCESS_KEY_ID" => *value = id.to_string(),
                "AWS_SECRET_ACCESS_KEY" => *value = secret.to_string(),
                _ => {}
            }
        }
        environment
    }

    /// The Python of the server's virtual environment (with delta-rs' `deltalake`).
    pub fn python(&self) -> std::path::PathBuf {
        std::env::var_os("FEATURECRAFT_S3_VENV")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| root().join("target/s3-venv"))
            .join("bin/python")
    }

    /// A session that reads the `warehouse` bucket (`s3://warehouse/…`).
    pub fn context(&self) -> SessionContext {
        let ctx = SessionContext::new();
        let base = url::Url::parse("s3://warehouse").unwrap();
        ctx.runtime_env()
            .register_object_store(&base, Arc::new(self.bucket("warehouse")));
        ctx
    }
}
