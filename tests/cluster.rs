//! featurecraft on a real Apache Ballista cluster: one scheduler and two executors started
//! from our binary as separate processes on loopback (free ports, temporary work dirs),
//! every good fixture recipe validated and materialized through `--engine ballista://…`
//! and compared with the local run, then the cluster stopped with SIGTERM, leaving no
//! process and no file behind. Also: a run past its time limit and a service job past the
//! service's have their cluster job cancelled; an executor killed mid-materialization and
//! in its first second; calls without the cluster secret; an executor confined to its folders.
#![cfg(feature = "cluster")]

mod common;
#[path = "common/http.rs"]
mod http;
#[path = "common/s3.rs"]
mod s3;

use common::{fixtures, good_recipes, same_value, sorted_rows, table_rows};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_featurecraft");

/// The cluster's shared secret: every process and client started here has it.
const CLUSTER_SECRET: &str = "cluster-tests-0123456789abcdef0123456789abcdef";
use featurecraft::run::secret::{SECRET_ENV, SECRET_FILE_ENV};

/// Our binary with the cluster's secret in its environment.
fn bin() -> Command {
    let mut command = Command::new(BIN);
    command
        .env(SECRET_ENV, CLUSTER_SECRET)
        .env_remove(SECRET_FILE_ENV);
    command
}

/// A port nobody listens on now (the OS's choice; released before use).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Two consecutive free ports (an executor's Flight port and the gRPC port after it).
fn free_port_pair() -> u16 {
    for _ in 0..100 {
        let port = free_port();
        if port < u16::MAX && TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
    panic!("no two consecutive free ports");
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on {port} within 60 s");
}

/// A scheduler and executors running as processes of our binary.
struct Cluster {
    scheduler_port: u16,
    processes: Vec<(String, Child)>,
    dir: tempfile::TempDir,
    /// Executors started so far (killed ones included).
    executors: usize,
    /// Tasks each executor runs at once.
    concurrent_tasks: usize,
    /// Each started executor's result (Flight) port.
    flight_ports: Vec<u16>,
    /// More arguments for each executor.
    executor_args: Vec<String>,
    /// More environment for each executor (an object store's endpoint and credentials).
    executor_environment: Vec<(String, String)>,
}

/// Our binary with `args` and more `environment`, its stderr to `log`.
fn spawn_logged(args: &[String], log: &Path, environment: &[(String, String)]) -> Child {
    bin()
        .args(args)
        .envs(environment.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

impl Cluster {
    fn start(executors: usize) -> Cluster {
        Cluster::start_with(executors, 2)
    }

    /// A cluster whose executors each run `concurrent_tasks` tasks at once.
    fn start_with(executors: usize, concurrent_tasks: usize) -> Cluster {
        Cluster::start_with_args(executors, concurrent_tasks, &[])
    }

    /// A cluster whose executors take `executor_args` as well.
    fn start_with_args(
        executors: usize,
        concurrent_tasks: usize,
        executor_args: &[String],
    ) -> Cluster {
        Cluster::start_with_args_in(executors, concurrent_tasks, executor_args, &[])
    }

    /// [`Cluster::start_with_args`] with a scheduler that has `environment` too.
    fn start_with_args_in(
        executors: usize,
        concurrent_tasks: usize,
        executor_args: &[String],
        environment: &[(&str, String)],
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let scheduler_port = free_port();
        let environment: Vec<(String, String)> = environment
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut scheduler = spawn_logged(
            &[
                "cluster".into(),
                "scheduler".into(),
                "--bind".into(),
                format!("127.0.0.1:{scheduler_port}"),
            ],
            &dir.path().join("scheduler.log"),
            &environment,
        );
        wait_for_port(scheduler_port, &mut scheduler, "the scheduler");
        let mut cluster = Cluster {
            scheduler_port,
            processes: vec![("scheduler".to_string(), scheduler)],
            dir,
            executors: 0,
            concurrent_tasks,
            flight_ports: Vec::new(),
            executor_args: executor_args.to_vec(),
            executor_environment: Vec::new(),
        };
        for _ in 0..executors {
            cluster.add_executor();
        }
        cluster
    }

    /// A scheduler and `executors` executors with `environment` (the object store's) and
    /// `executor_args`.
    fn start_in(
        environment: &[(&str, String)],
        executors: usize,
        executor_args: &[String],
    ) -> Cluster {
        let mut cluster = Cluster::start_with_args_in(0, 2, executor_args, environment);
        cluster.executor_environment = environment
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        for _ in 0..executors {
            cluster.add_executor();
        }
        cluster
    }

    /// Starts one more executor (`executor-N`, N counting every executor started).
    fn add_executor(&mut self) {
        let i = self.executors;
        self.executors += 1;
        let port = free_port_pair();
        let work = self.dir.path().join(format!("executor-{i}"));
        let mut executor = spawn_logged(
            &[
                "cluster".into(),
                "executor".into(),
                "--scheduler".into(),
                format!("127.0.0.1:{}", self.scheduler_port),
                "--bind".into(),
                format!("127.0.0.1:{port}"),
                "--work-dir".into(),
                work.display().to_string(),
                "--concurrent-tasks".into(),
                self.concurrent_tasks.to_string(),
            ]
            .into_iter()
            .chain(self.executor_args.iter().cloned())
            .collect::<Vec<_>>(),
            &self.dir.path().join(format!("executor-{i}.log")),
            &self.executor_environment,
        );
        wait_for_port(port, &mut executor, "an executor");
        self.processes.push((format!("executor-{i}"), executor));
        self.flight_ports.push(port);
    }

    /// Kills executor `i` with SIGKILL (no goodbye to the scheduler) and reaps it.
    fn kill_executor(&mut self, i: usize) {
        let name = format!("executor-{i}");
        let at = self
            .processes
            .iter()
            .position(|(n, _)| *n == name)
            .expect("that executor runs");
        let (_, mut child) = self.processes.remove(at);
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Waits until the scheduler's log has `n` lines saying a job was submitted.
    fn wait_for_submitted_jobs(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let log =
                std::fs::read_to_string(self.dir.path().join("scheduler.log")).unwrap_or_default();
            if log.matches("Job submitted").count() >= n {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no job submitted within 120 s\n{}", self.logs());
    }

    /// The scheduler's log so far.
    fn scheduler_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("scheduler.log")).unwrap_or_default()
    }

    /// Waits up to `within` for the scheduler's log to hold `text`.
    fn scheduler_logged(&self, text: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.scheduler_log().contains(text) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    fn engine(&self) -> String {
        format!("ballista://127.0.0.1:{}", self.scheduler_port)
    }

    /// Stops every process with SIGTERM (executors first), waiting for each; returns how
    /// each exited and removes the work dirs.
    fn stop(mut self) -> Vec<(String, ExitStatus)> {
        let mut statuses = Vec::new();
        let processes: Vec<(String, Child)> = self.processes.drain(..).rev().collect();
        for (name, mut child) in processes {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            let status = loop {
                if let Some(status) = child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("{name} did not stop within 30 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            statuses.push((name, status));
        }
        statuses
    }

    fn logs(&self) -> String {
        let mut out = String::new();
        for entry in std::fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(15).collect();
                out += &format!("--- {}\n", path.display());
                for line in tail.into_iter().rev() {
                    out += line;
                    out += "\n";
                }
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.processes {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn featurecraft(args: &[&str]) -> (i32, String, String) {
    let out = bin()
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn every_good_recipe_gives_the_same_answers_on_a_cluster_as_locally() {
    let cluster = Cluster::start(2);
    let engine = cluster.engine();
    let catalog = fixtures().join("retail");
    let catalog = catalog.to_str().unwrap();
    let warehouses = tempfile::tempdir().unwrap();
    for recipe in good_recipes() {
        let name = recipe.file_stem().unwrap().to_string_lossy().into_owned();
        let recipe = recipe.to_str().unwrap();
        let validate = |engine: &str| {
            let (code, stdout, stderr) = featurecraft(&[
                "validate",
                recipe,
                "--catalog",
                catalog,
                "--sample-size",
                "300",
                "--format",
                "json",
                "--engine",
                engine,
            ]);
            assert_eq!(code, 0, "{name} on {engine}: {stderr}\n{}", cluster.logs());
            serde_json::from_str::<serde_json::Value>(&stdout).unwrap()
        };
        let local = validate("local");
        let remote = validate(&engine);
        assert_eq!(
            remote["validation"], local["validation"],
            "{name}: the cluster's summary differs from the local one"
        );
        assert_eq!(remote["diagnostics"], local["diagnostics"], "{name}");

        let materialize = |engine: &str, warehouse: &str| {
            let (code, stdout, stderr) = featurecraft(&[
                "materialize",
                recipe,
                "--catalog",
                catalog,
                "--warehouse",
                warehouse,
                "--engine",
                engine,
            ]);
            assert_eq!(code, 0, "{name} on {engine}: {stderr}\n{}", cluster.logs());
            let written: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
            (
                PathBuf::from(written["path"].as_str().unwrap()),
                written["rows"].as_u64().unwrap(),
            )
        };
        let local_dir = warehouses.path().join("local");
        let remote_dir = warehouses.path().join("cluster");
        let (local_table, local_count) = materialize("local", local_dir.to_str().unwrap());
        let (remote_table, remote_count) = materialize(&engine, remote_dir.to_str().unwrap());
        assert_eq!(remote_count, local_count, "{name}: rows written");
        let (want, got) = (
            table_rows(&local_table).await,
            table_rows(&remote_table).await,
        );
        assert_eq!(got.len(), want.len(), "{name}: rows in the table");
        for (w, g) in want.iter().zip(&got) {
            assert!(
                w.len() == g.len() && w.iter().zip(g).all(|(a, b)| same_value(a, b)),
                "{name}: local row {w:?}, cluster row {g:?}"
            );
        }
        // Nothing but the published table in the cluster's warehouse domain.
        let siblings: Vec<String> = std::fs::read_dir(remote_table.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            siblings.iter().all(|s| !s.starts_with('.')),
            "{name}: staging left behind: {siblings:?}"
        );
    }
    let work = cluster.dir.path().to_path_buf();
    let statuses = cluster.stop();
    for (name, status) in statuses {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
    assert!(!work.exists(), "the cluster's work dirs are left behind");
}

/// A gRPC channel to `port` on loopback whose user agent is `user_agent` (tonic's own
/// when `None`): a client other than featurecraft's.
async fn raw_channel(port: u16, user_agent: Option<String>) -> tonic::transport::Channel {
    let mut endpoint =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap();
    if let Some(agent) = user_agent {
        endpoint = endpoint.user_agent(agent).unwrap();
    }
    endpoint.connect().await.expect("connects")
}

#[tokio::test]
async fn a_call_without_the_cluster_secret_is_refused_and_logged() {
    use ballista_core::serde::protobuf::ExecuteQueryParams;
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    let cluster = Cluster::start(1);
    let wrong = format!("featurecraft-cluster/{}", "w".repeat(CLUSTER_SECRET.len()));
    let right = format!("featurecraft-cluster/{CLUSTER_SECRET}");
    // The scheduler: a plan from a client without the secret, or with another, is refused
    // before it is read; with the secret the same (empty) request reaches the scheduler.
    for (agent, admitted) in [
        (None, false),
        (Some(wrong.clone()), false),
        (Some(right.clone()), true),
    ] {
        let channel = raw_channel(cluster.scheduler_port, agent.clone()).await;
        let answer = SchedulerGrpcClient::new(channel)
            .execute_query(ExecuteQueryParams::default())
            .await;
        let refused = matches!(&answer, Err(s) if s.code() == tonic::Code::Unauthenticated);
        assert_eq!(refused, !admitted, "{agent:?}: {answer:?}");
        if refused {
            let status = answer.unwrap_err();
            assert!(
                status.message().contains("FEATURECRAFT_CLUSTER_SECRET"),
                "{status:?}"
            );
        }
    }
    assert!(
        cluster.scheduler_logged("refused a call from 127.0.0.1", Duration::from_secs(10)),
        "{}",
        cluster.logs()
    );
    // An executor's result service: the same.
    let flight = cluster.flight_ports[0];
    for (agent, admitted) in [(None, false), (Some(wrong), false), (Some(right), true)] {
        let channel = raw_channel(flight, agent.clone()).await;
        let answer = arrow_flight::flight_service_client::FlightServiceClient::new(channel)
            .do_get(arrow_flight::Ticket::default())
            .await;
        let refused = matches!(&answer, Err(s) if s.code() == tonic::Code::Unauthenticated);
        assert_eq!(refused, !admitted, "{agent:?}: {:?}", answer.err());
    }
    // featurecraft itself without the secret, or with another: a clear error naming it.
    for secret in [None, Some("another-secret-0123456789abcdef0123456789")] {
        let mut command = Command::new(BIN);
        command.env_remove(SECRET_ENV).env_remove(SECRET_FILE_ENV);
        if let Some(secret) = secret {
            command.env(SECRET_ENV, secret);
        }
        let out = command
            .args([
                "validate",
                "fixtures/recipes/good/churn_basic.json",
                "--catalog",
                "fixtures/retail",
                "--engine",
                &cluster.engine(),
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("cluster's shared secret"), "{stderr}");
    }
    // With the secret in a file, as the processes may read it.
    let file = cluster.dir.path().join("secret");
    std::fs::write(&file, format!("{CLUSTER_SECRET}\n")).unwrap();
    let out = Command::new(BIN)
        .env_remove(SECRET_ENV)
        .env(SECRET_FILE_ENV, &file)
        .args([
            "validate",
            "fixtures/recipes/good/churn_basic.json",
            "--catalog",
            "fixtures/retail",
            "--engine",
            &cluster.engine(),
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cluster.stop();
}

#[tokio::test]
async fn an_executor_reads_and_writes_only_under_its_roots() {
    use datafusion::execution::SessionStateBuilder;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let warehouse = root.join("warehouse");
    let outside = root.join("outside");
    std::fs::create_dir_all(&warehouse).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let catalog = fixtures().join("retail").canonicalize().unwrap();
    let cluster = Cluster::start_with_args(
        1,
        2,
        &[
            "--catalog".into(),
            catalog.display().to_string(),
            "--warehouse".into(),
            warehouse.display().to_string(),
        ],
    );
    let materialize_into = |into: &Path| {
        bin()
            .args([
                "materialize",
                "fixtures/recipes/good/churn_basic.json",
                "--catalog",
            ])
            .arg(&catalog)
            .arg("--warehouse")
            .arg(into)
            .args(["--engine", &cluster.engine()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap()
    };
    // featurecraft's own runs inside the roots work.
    let out = materialize_into(&warehouse);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A table written elsewhere fails its task, and nothing is written there.
    let out = materialize_into(&outside);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is outside them"), "{stderr}");
    assert!(published(&outside.join("default")).is_empty());
    // The outside probe's attack, from an authenticated client: a plan that copies a file
    // of its choosing to a folder of its choosing.
    std::fs::write(outside.join("private.csv"), "a,b\n1,2\n").unwrap();
    let secret = featurecraft::run::secret::ClusterSecret::new(CLUSTER_SECRET).unwrap();
    let local = datafusion::prelude::SessionContext::new();
    let state = {
        use ballista_core::extension::{SessionConfigExt, SessionStateExt};
        let config = local
            .state()
            .config()
            .clone()
            .upgrade_for_ballista()
            .with_ballista_override_create_grpc_client_endpoint(secret.endpoint_override());
        SessionStateBuilder::new_from_existing(local.state())
            .with_config(config)
            .build()
            .upgrade_for_ballista(format!("http://127.0.0.1:{}", cluster.scheduler_port))
            .unwrap()
    };
    let ctx = datafusion::prelude::SessionContext::new_with_state(state);
    ctx.register_csv(
        "private",
        outside.join("private.csv").to_str().unwrap(),
        datafusion::prelude::CsvReadOptions::new(),
    )
    .await
    .unwrap();
    for (statement, target) in [
        (
            format!(
                "COPY (SELECT * FROM private) TO '{}' STORED AS CSV",
                warehouse.join("stolen.csv").display()
            ),
            warehouse.join("stolen.csv"),
        ),
        (
            format!(
                "COPY (SELECT 1 AS x) TO '{}' STORED AS CSV",
                outside.join("planted.csv").display()
            ),
            outside.join("planted.csv"),
        ),
    ] {
        let ran = match ctx.sql(&statement).await {
            Ok(frame) => frame.collect().await.map(|_| ()),
            Err(e) => Err(e),
        };
        let error = ran.expect_err(&statement).to_string();
        // A refused read says why; DataFusion's sink reports a refused write only as a
        // failed write.
        assert!(
            error.contains("outside them") || error.contains("finalizing writes"),
            "{statement}: {error}"
        );
        // Nothing of the private file is anywhere (a sink inside the warehouse may have
        // opened its file, empty, before its input failed).
        let written = std::fs::read(&target).unwrap_or_default();
        assert!(written.is_empty(), "{statement} wrote {}", target.display());
    }
    cluster.stop();
}

#[test]
fn a_process_beyond_loopback_needs_a_secret_and_a_secret_must_be_strong() {
    let run = |args: &[&str], secret: Option<&str>| {
        let mut command = Command::new(BIN);
        command.env_remove(SECRET_ENV).env_remove(SECRET_FILE_ENV);
        if let Some(secret) = secret {
            command.env(SECRET_ENV, secret);
        }
        let out = command.args(args).stdout(Stdio::null()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let everywhere = format!("0.0.0.0:{}", free_port_pair());
    for args in [
        vec!["cluster", "scheduler", "--bind", &everywhere],
        vec![
            "cluster",
            "executor",
            "--scheduler",
            "127.0.0.1:1",
            "--bind",
            &everywhere,
        ],
    ] {
        let (code, stderr) = run(&args, None);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("beyond loopback, without a cluster secret"),
            "{stderr}"
        );
        assert!(stderr.contains(SECRET_ENV), "{stderr}");
        let (code, stderr) = run(&args, Some("short"));
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("the cluster secret is 5 bytes"), "{stderr}");
    }
}

#[test]
fn bad_secrets_and_roots_are_clear_errors_before_anything_listens() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], env: &[(&str, &std::ffi::OsStr)]| {
        let mut command = Command::new(BIN);
        command.env_remove(SECRET_ENV).env_remove(SECRET_FILE_ENV);
        for (name, value) in env {
            command.env(name, value);
        }
        let out = command.args(args).stdout(Stdio::null()).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let scheduler = ["cluster", "scheduler", "--bind", "127.0.0.1:1"];
    // A secret file that is missing, far too large, or not one line of visible ASCII.
    let missing = dir.path().join("no-such-secret");
    let huge = dir.path().join("huge-secret");
    std::fs::write(&huge, "s".repeat(100_000)).unwrap();
    let spaced = dir.path().join("spaced-secret");
    std::fs::write(&spaced, format!("{} \\\"quoted\n", "s".repeat(40))).unwrap();
    for (file, says) in [
        (&missing, "cannot read the cluster secret"),
        (&huge, "100000 bytes"),
        (&spaced, "visible ASCII without spaces"),
    ] {
        let (code, stderr) = run(&scheduler, &[(SECRET_FILE_ENV, file.as_os_str())]);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(stderr.contains(SECRET_FILE_ENV), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
    // An executor's roots: a catalog that is not there, a warehouse under a file.
    let a_file = dir.path().join("a-file");
    std::fs::write(&a_file, "not a folder").unwrap();
    for (flag, root, says) in [
        ("--catalog", dir.path().join("no-catalog"), "`--catalog`"),
        ("--catalog", a_file.clone(), "not a folder"),
        (
            "--warehouse",
            a_file.join("under"),
            "cannot create `--warehouse`",
        ),
    ] {
        let root = root.to_str().unwrap().to_string();
        let (code, stderr) = run(
            &[
                "cluster",
                "executor",
                "--scheduler",
                "127.0.0.1:1",
                "--scheduler-wait",
                "1",
                flag,
                &root,
            ],
            &[],
        );
        assert_eq!(code, Some(1), "{flag} {root}: {stderr}");
        assert!(stderr.contains(says), "{flag} {root}: {stderr}");
        assert!(
            !stderr.contains("gave up waiting"),
            "checked before waiting: {stderr}"
        );
    }
}

#[test]
fn an_unreachable_scheduler_is_a_clear_error_not_a_hang() {
    let port = free_port();
    let started = Instant::now();
    let (code, _, stderr) = featurecraft(&[
        "validate",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        "fixtures/retail",
        "--engine",
        &format!("ballista://127.0.0.1:{port}"),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cannot reach the Ballista scheduler at 127.0.0.1:{port}"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("`cluster scheduler`"), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn hostile_cluster_options_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = bin()
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // A port another process holds.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let (code, stderr) = run(&[
        "cluster",
        "scheduler",
        "--bind",
        &format!("127.0.0.1:{port}"),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("Address already in use"), "{stderr}");
    // A scheduler nobody runs: the executor gives up after its wait, naming the address.
    let nobody = free_port();
    let started = Instant::now();
    let (code, stderr) = run(&[
        "cluster",
        "executor",
        "--scheduler",
        &format!("127.0.0.1:{nobody}"),
        "--bind",
        &format!("127.0.0.1:{}", free_port_pair()),
        "--scheduler-wait",
        "1",
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("gave up waiting for the scheduler after 1 s"),
        "{stderr}"
    );
    assert!(stderr.contains("--scheduler-wait"), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // A wait of nothing or of more than an hour.
    for wait in ["0", "3601"] {
        let (code, stderr) = run(&[
            "cluster",
            "executor",
            "--scheduler",
            "127.0.0.1:1",
            "--scheduler-wait",
            wait,
        ]);
        assert_eq!(code, Some(2), "{wait}: {stderr}");
        assert!(stderr.contains("--scheduler-wait"), "{wait}: {stderr}");
    }
    // A work dir that cannot be created, a memory limit that is not a size.
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a folder").unwrap();
    let under_file = file.join("work");
    let (code, stderr) = run(&[
        "cluster",
        "executor",
        "--scheduler",
        "127.0.0.1:1",
        "--work-dir",
        under_file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("cannot create `--work-dir`"), "{stderr}");
    let (code, stderr) = run(&[
        "cluster",
        "executor",
        "--scheduler",
        "127.0.0.1:1",
        "--memory-limit",
        "lots",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("`lots` is not a size"), "{stderr}");
    // An engine as long as a request body: refused by its length (clap quotes the
    // argument back, as it does any invalid value).
    let long = format!("ballista://{}:1", "h".repeat(100_000));
    let (code, stderr) = run(&[
        "validate",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        "fixtures/retail",
        "--engine",
        &long,
    ]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("the engine is 100013 characters long"));
    drop(taken);
}

#[test]
fn a_malformed_engine_is_a_usage_error() {
    for bad in ["ballista://host", "spark://host:1", "ballista://:1"] {
        let (code, _, stderr) = featurecraft(&[
            "validate",
            "fixtures/recipes/good/churn_basic.json",
            "--catalog",
            "fixtures/retail",
            "--engine",
            bad,
        ]);
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(stderr.contains("--engine"), "{bad}: {stderr}");
    }
}

const SECRET: &str = "a-cluster-test-secret-of-32-bytes";
const API: &str = "/api/automl/feature-engineering";

/// A `serve` process, killed if the test fails before it stops it.
struct Serving(Child);

impl Serving {
    /// Stops the service with SIGTERM and asserts it exits cleanly.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        assert!(self.0.wait().unwrap().success());
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `featurecraft serve --engine ENGINE [extra…]` on a free port; its address once it
/// says `serving`.
fn serve(
    engine: &str,
    catalog: &Path,
    db: &Path,
    warehouse: &Path,
    extra: &[&str],
) -> (Serving, SocketAddr) {
    use std::io::{BufRead, BufReader};
    let mut child = bin()
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(["--engine", engine])
        .args(extra)
        .arg("--catalog")
        .arg(catalog)
        .arg("--db")
        .arg(db)
        .arg("--warehouse")
        .arg(warehouse)
        .env("FEATURECRAFT_JWT_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    while let Some(Ok(line)) = lines.next() {
        if let Ok(log) = serde_json::from_str::<serde_json::Value>(&line)
            && log["fields"]["message"] == "serving"
        {
            let addr = log["fields"]["addr"].as_str().unwrap().parse().unwrap();
            std::thread::spawn(move || for _ in lines {});
            return (Serving(child), addr);
        }
    }
    let status = child.try_wait();
    drop(Serving(child));
    panic!("serve stopped: {status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_service_job_runs_on_the_cluster_from_creation_to_the_table() {
    let cluster = Cluster::start(2);
    let dir = tempfile::tempdir().unwrap();
    let catalog = fixtures().join("retail");
    let warehouse = dir.path().join("warehouse");
    let (server, addr) = serve(
        &cluster.engine(),
        &catalog,
        &dir.path().join("jobs.db"),
        &warehouse,
        &["--sample-size", "500"],
    );
    let token =
        featurecraft::server::auth::sign(SECRET.as_bytes(), "ana@example.com", None, 3600).unwrap();
    let body = job_request("churn_basic", "churn_training");
    let call = |method: &'static str, path: String, body: Option<serde_json::Value>| {
        let token = token.clone();
        async move {
            let (status, _, job) =
                http::call(addr, method, &path, Some(&token), body.as_ref(), &[]).await;
            (status, job)
        }
    };
    let (status, job) = call("POST", format!("{API}/jobs?wait=true"), Some(body)).await;
    assert_eq!(status, 201, "{job}\n{}", cluster.logs());
    assert_eq!(job["status"], "pending_approval", "{job}");
    let id = job["job_id"].as_str().unwrap().to_string();
    let rows = job["validation"]["estimated_row_count"].as_u64().unwrap();

    // The same summary as a local validation of the same recipe and sample.
    let (code, stdout, stderr) = featurecraft(&[
        "validate",
        "fixtures/recipes/good/churn_basic.json",
        "--catalog",
        catalog.to_str().unwrap(),
        "--sample-size",
        "500",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let local: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(job["validation"], local["validation"]);

    let (status, job) = call("POST", format!("{API}/jobs/{id}/approve"), None).await;
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("approved")),
        "{job}"
    );
    let (status, job) = call(
        "POST",
        format!("{API}/jobs/{id}/materialize?wait=true"),
        None,
    )
    .await;
    assert_eq!(
        (status, job["status"].as_str()),
        (200, Some("complete")),
        "{job}\n{}",
        cluster.logs()
    );
    assert_eq!(job["materialized"]["rows"], rows, "{job}");
    let table = warehouse.join("retail/churn_training");
    assert_eq!(table_rows(&table).await.len() as u64, rows);

    server.stop();
    for (name, status) in cluster.stop() {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
}

/// What a table folder holds, compared without the last bits of floats: the rows of its
/// grain and integer columns, and the sums of its float columns.
async fn table_digest(folder: &Path) -> (Vec<Vec<String>>, Vec<f64>) {
    let ctx = datafusion::prelude::SessionContext::new();
    ctx.register_parquet(
        "t",
        format!("{}/", folder.display()),
        datafusion::prelude::ParquetReadOptions::default(),
    )
    .await
    .unwrap();
    let exact = "SELECT customer_id, cutoff_time, n_events, n_events_7d, purchases_30d, \
                 event_types_90d, orders_90d, current_plan, is_business, churned_30d FROM t";
    let sums = "SELECT SUM(spend_30d), SUM(avg_order_90d), SUM(current_fee) FROM t";
    let rows = sorted_rows(&ctx.sql(exact).await.unwrap().collect().await.unwrap());
    let sums = ctx.sql(sums).await.unwrap().collect().await.unwrap();
    let sums = (0..3)
        .map(|i| {
            sums[0]
                .column(i)
                .as_any()
                .downcast_ref::<arrow::array::Float64Array>()
                .map_or(f64::NAN, |a| a.value(0))
        })
        .collect();
    (rows, sums)
}

/// The same rows, and float sums within 1e-9 (relative).
fn same_digest(got: &(Vec<Vec<String>>, Vec<f64>), want: &(Vec<Vec<String>>, Vec<f64>)) {
    assert_eq!(got.0.len(), want.0.len(), "rows");
    if let Some((g, w)) = got.0.iter().zip(&want.0).find(|(g, w)| g != w) {
        panic!("first differing row: {g:?}, locally {w:?}");
    }
    for (g, w) in got.1.iter().zip(&want.1) {
        assert!(
            same_value(&g.to_string(), &w.to_string()),
            "sums {got:?} / {want:?}",
            got = got.1,
            want = want.1
        );
    }
}

/// A generated catalog of 200,000 customers, large enough that a materialization on the
/// cluster takes several seconds: generated once per build into Cargo's temporary folder
/// for tests (the generator is deterministic), then shared by the tests that need it.
fn big_catalog() -> PathBuf {
    static CATALOG: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CATALOG
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
            let catalog = root.join("cluster-catalog-200k");
            if catalog.join("customers.parquet").exists() || catalog.join("events").exists() {
                return catalog;
            }
            let writing = root.join(format!(
                "cluster-catalog-200k.writing-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&writing);
            let (code, _, stderr) = featurecraft(&[
                "generate",
                "--out",
                writing.to_str().unwrap(),
                "--customers",
                "200000",
                "--event-files",
                "4",
            ]);
            assert_eq!(code, 0, "{stderr}");
            let _ = std::fs::remove_dir_all(&catalog);
            std::fs::rename(&writing, &catalog).unwrap();
            catalog
        })
        .clone()
}

/// The names in `folder` (none when it does not exist).
fn listing(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// The tables in a warehouse `folder`: its names without the hidden staging folders.
fn published(folder: &Path) -> Vec<String> {
    listing(folder)
        .into_iter()
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// The body of `POST /jobs` for the good fixture recipe `recipe`, as table `table`.
fn job_request(recipe: &str, table: &str) -> serde_json::Value {
    let path = fixtures().join(format!("recipes/good/{recipe}.json"));
    let recipe: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    serde_json::json!({"target_table_name": table, "domain": "retail", "recipe": recipe})
}

/// `featurecraft materialize` of `recipe` as a running process.
fn start_materialize(
    recipe: &Path,
    catalog: &Path,
    warehouse: &Path,
    engine: &str,
    timeout: &str,
) -> Child {
    bin()
        .args(["materialize", recipe.to_str().unwrap(), "--catalog"])
        .arg(catalog)
        .arg("--warehouse")
        .arg(warehouse)
        .args(["--engine", engine, "--timeout", timeout])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The cluster job ids an E054 message says were cancelled.
fn cancelled_jobs(stderr: &str) -> Vec<String> {
    stderr
        .split("cluster job ")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once(" was cancelled")
                .map(|(id, _)| id.to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_past_its_time_limit_is_stopped_and_its_cluster_job_cancelled() {
    let catalog = big_catalog();
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse");
    // A job far longer than the limit on any machine: a cutoff every 14 days for every
    // customer, each aggregating all its earlier events (pit_churn took 4.4 s on a quiet
    // machine, within the limit).
    let recipe = dir.path().join("long.json");
    std::fs::write(
        &recipe,
        serde_json::json!({
            "target_table": "long_running",
            "entity_grain": ["customer_id", "cutoff_time"],
            "point_in_time": {
                "cutoff_column": "cutoff_time",
                "time_columns": {"events": "event_ts"},
                "schedule": {"source_table": "events", "start": "2023-01-01T00:00:00", "every": "14 days", "until": "last_event"}
            },
            "label": {"name": "quiet", "type": "binary", "source_table": "events",
                      "expression": "CASE WHEN COUNT(*) = 0 THEN 1 ELSE 0 END", "window": "14 days"},
            "features": [
                {"name": "n_events", "source_table": "events", "expression": "COUNT(*)"},
                {"name": "event_types", "source_table": "events", "expression": "COUNT(DISTINCT event_type)"},
                {"name": "spend", "source_table": "events", "expression": "SUM(amount)"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let started = Instant::now();
    // 5 s: past the query's submission even on a busy machine, well before the job's end.
    let out = start_materialize(&recipe, &catalog, &warehouse, &cluster.engine(), "5")
        .wait_with_output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}\n{}", cluster.logs());
    assert!(stderr.contains("error[E054]"), "{stderr}");
    assert!(stderr.contains("time limit of 5 s"), "{stderr}");
    // Stopped at the limit, plus the cancellation's round trip, not at the job's end.
    assert!(took < Duration::from_secs(20), "took {took:?}");
    let jobs = cancelled_jobs(&stderr);
    assert_eq!(jobs.len(), 1, "{stderr}\n{}", cluster.logs());
    assert!(
        cluster.scheduler_logged(
            &format!("Received cancellation request for job {}", jobs[0]),
            Duration::from_secs(10)
        ),
        "{}",
        cluster.logs()
    );
    // Nothing published: no table, only (at most) a hidden staging folder a late task
    // recreated, which `serve` removes on its next start.
    let visible = published(&warehouse.join("default"));
    assert!(visible.is_empty(), "{visible:?}");
    for (name, status) in cluster.stop() {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_service_job_time_limit_cancels_the_cluster_job() {
    let catalog = big_catalog();
    let cluster = Cluster::start(1);
    let dir = tempfile::tempdir().unwrap();
    let (server, addr) = serve(
        &cluster.engine(),
        &catalog,
        &dir.path().join("jobs.db"),
        &dir.path().join("warehouse"),
        // The whole spine as the sample: the validation's queries are full-size jobs, one of
        // them (several seconds long) running when the service's 3 s limit comes.
        &["--sample-size", "1000000", "--job-timeout", "3"],
    );
    let token =
        featurecraft::server::auth::sign(SECRET.as_bytes(), "ana@example.com", None, 3600).unwrap();
    let body = job_request("pit_churn", "churn_pit");
    let (status, _, job) = http::call(
        addr,
        "POST",
        &format!("{API}/jobs?wait=true"),
        Some(&token),
        Some(&body),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["status"], "failed", "{job}\n{}", cluster.logs());
    let error = job["error"].as_str().unwrap_or_default();
    assert!(error.contains("3 s"), "{job}");
    // The validation's query running at the limit was cancelled on the cluster.
    assert!(
        cluster.scheduler_logged(
            "Received cancellation request for job",
            Duration::from_secs(10)
        ),
        "{}",
        cluster.logs()
    );
    server.stop();
    for (name, status) in cluster.stop() {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
}

// Ballista 55 once stalled for good after rolling back the stages of a lost executor (the
// job stayed running with one executor left): the run's time limit turns such a stall into
// a clear E054 with the job cancelled, so this test cannot hang.
#[tokio::test(flavor = "multi_thread")]
async fn an_executor_killed_during_a_materialization_is_survived_or_fails_cleanly() {
    let catalog = big_catalog();
    let dir = tempfile::tempdir().unwrap();
    let recipe = fixtures().join("recipes/good/pit_churn.json");
    let local = start_materialize(&recipe, &catalog, &dir.path().join("local"), "local", "600")
        .wait_with_output()
        .unwrap();
    assert!(local.status.success());
    let want = table_digest(&dir.path().join("local/default/churn_pit")).await;

    let mut cluster = Cluster::start(2);
    let engine = cluster.engine();
    let warehouse = dir.path().join("cluster");
    let running = start_materialize(&recipe, &catalog, &warehouse, &engine, "120");
    cluster.wait_for_submitted_jobs(1);
    std::thread::sleep(Duration::from_millis(500));
    let was_running = Command::new("kill")
        .args(["-0", &running.id().to_string()])
        .status()
        .unwrap()
        .success();
    cluster.kill_executor(1);
    let started = Instant::now();
    let out = running.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let domain = warehouse.join("default");
    eprintln!(
        "the materialization was {}running when the executor died; it {} {:.1} s later",
        if was_running { "" } else { "no longer " },
        if out.status.success() {
            "succeeded".to_string()
        } else {
            format!("failed ({})", stderr.lines().next().unwrap_or_default())
        },
        started.elapsed().as_secs_f64()
    );
    if out.status.success() {
        // Ballista ran the lost tasks again: the table is whole.
        assert_eq!(listing(&domain), ["churn_pit"]);
        same_digest(&table_digest(&domain.join("churn_pit")).await, &want);
    } else {
        // A clear error, and nothing published.
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("error[E05"), "{stderr}");
        let visible = published(&domain);
        assert!(visible.is_empty(), "{visible:?}");
        // As an operator would, bring the lost executor's place back before retrying.
        cluster.add_executor();
    }
    // A retry completes.
    let again = start_materialize(
        &recipe,
        &catalog,
        &dir.path().join("retried"),
        &engine,
        "300",
    )
    .wait_with_output()
    .unwrap();
    assert!(
        again.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&again.stderr),
        cluster.logs()
    );
    same_digest(
        &table_digest(&dir.path().join("retried/default/churn_pit")).await,
        &want,
    );
    for (name, status) in cluster.stop() {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
}

/// An executor killed at any moment of a materialization, its first second included (the
/// outside probe once saw Ballista keep such a job waiting for ever): each run ends within
/// its time limit, either whole (the lost tasks ran again elsewhere) or with a clear error
/// and nothing published.
#[tokio::test]
async fn an_executor_killed_at_any_moment_ends_within_the_time_limit() {
    const LIMIT_SECONDS: u64 = 90;
    let catalog = big_catalog();
    let dir = tempfile::tempdir().unwrap();
    let recipe = fixtures().join("recipes/good/pit_churn.json");
    let local = start_materialize(&recipe, &catalog, &dir.path().join("local"), "local", "600")
        .wait_with_output()
        .unwrap();
    assert!(local.status.success());
    let want = table_digest(&dir.path().join("local/default/churn_pit")).await;

    let mut cluster = Cluster::start(2);
    let engine = cluster.engine();
    for (round, kill_after) in [200u64, 200, 1000].into_iter().enumerate() {
        let warehouse = dir.path().join(format!("round-{round}"));
        let started = Instant::now();
        let running = start_materialize(
            &recipe,
            &catalog,
            &warehouse,
            &engine,
            &LIMIT_SECONDS.to_string(),
        );
        std::thread::sleep(Duration::from_millis(kill_after));
        // The executor started last is killed; the next round starts with two again.
        cluster.kill_executor(cluster.executors - 1);
        let out = running.wait_with_output().unwrap();
        let took = started.elapsed();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!(
            "killed {kill_after} ms in: {} after {:.1} s",
            if out.status.success() {
                "whole"
            } else {
                "failed"
            },
            took.as_secs_f64()
        );
        assert!(
            took < Duration::from_secs(LIMIT_SECONDS + 30),
            "{took:?}: {stderr}"
        );
        let domain = warehouse.join("default");
        if out.status.success() {
            same_digest(&table_digest(&domain.join("churn_pit")).await, &want);
        } else {
            assert_eq!(out.status.code(), Some(1), "{stderr}");
            assert!(stderr.contains("error[E05"), "{stderr}");
            assert!(published(&domain).is_empty());
        }
        cluster.add_executor();
    }
    for (name, status) in cluster.stop() {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
}

/// A cluster whose executors read the catalog from S3 and write the warehouse into S3 (each
/// builds the store from its own environment, confined to those two prefixes) gives the
/// local answers: the same validation and the same rows.
#[test]
fn a_cluster_reads_and_writes_object_storage_with_the_local_answers() {
    let Some(s3) = s3::S3::start() else { return };
    let environment = s3.environment();
    let cluster = Cluster::start_in(
        &environment,
        2,
        &[
            "--catalog".into(),
            "s3://catalog/retail".into(),
            "--warehouse".into(),
            "s3://warehouse/cluster".into(),
        ],
    );
    let engine = cluster.engine();
    let run = |args: &[&str]| {
        let out = bin()
            .args(args)
            .envs(environment.iter().map(|(k, v)| (*k, v)))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {stderr}\n{}",
            cluster.logs()
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let local_warehouse = tempfile::tempdir().unwrap();
    for recipe in [
        "fixtures/recipes/good/churn_basic.json",
        "fixtures/recipes/good/pit_churn.json",
    ] {
        let validate = |catalog: &str, engine: &str| {
            run(&[
                "validate",
                recipe,
                "--catalog",
                catalog,
                "--sample-size",
                "300",
                "--format",
                "json",
                "--engine",
                engine,
            ])
        };
        let local = validate("fixtures/retail", "local");
        let remote = validate("s3://catalog/retail", &engine);
        assert_eq!(remote["validation"], local["validation"], "{recipe}");

        let here = run(&[
            "materialize",
            recipe,
            "--catalog",
            "fixtures/retail",
            "--warehouse",
            local_warehouse.path().to_str().unwrap(),
        ]);
        let there = run(&[
            "materialize",
            recipe,
            "--catalog",
            "s3://catalog/retail",
            "--warehouse",
            "s3://warehouse/cluster",
            "--engine",
            &engine,
        ]);
        assert_eq!(there["rows"], here["rows"], "{recipe}");
        let location = there["path"].as_str().unwrap();
        assert!(
            location.starts_with("s3://warehouse/cluster/"),
            "{location}"
        );
        let want = runtime.block_on(table_rows(Path::new(here["path"].as_str().unwrap())));
        let got = runtime.block_on(async {
            let frame = s3
                .context()
                .read_parquet(
                    format!("{location}/"),
                    datafusion::prelude::ParquetReadOptions::default(),
                )
                .await
                .unwrap();
            sorted_rows(&frame.collect().await.unwrap())
        });
        assert_eq!(got.len(), want.len(), "{recipe}: rows in the table");
        for (w, g) in want.iter().zip(&got) {
            assert!(
                w.len() == g.len() && w.iter().zip(g).all(|(a, b)| same_value(a, b)),
                "{recipe}: local row {w:?}, cluster row {g:?}"
            );
        }
    }

    // Confined: a plan that writes into another prefix of the bucket fails its task.
    let (code, _, stderr) = {
        let out = bin()
            .args([
                "materialize",
                "fixtures/recipes/good/churn_basic.json",
                "--catalog",
                "s3://catalog/retail",
                "--warehouse",
                "s3://warehouse/elsewhere",
                "--engine",
                &engine,
            ])
            .envs(environment.iter().map(|(k, v)| (*k, v)))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert_ne!(code, Some(0), "{stderr}");
    assert!(stderr.contains("is outside them"), "{stderr}");
    for (name, status) in cluster.stop() {
        assert!(status.success(), "{name} exited with {status} on SIGTERM");
    }
}
