//! The processes of an Apache Ballista cluster that runs featurecraft's queries:
//! Ballista's own scheduler and executor, with featurecraft's functions (the key hash of
//! entity sampling, the compact `COUNT(DISTINCT)`) in their registries, so that a plan
//! planned for a cluster ([`Engine::Ballista`](crate::run::engine::Engine)) means the same
//! on every executor as it does locally.
//!
//! Both stop gracefully on SIGTERM or Ctrl-C: the scheduler stops accepting jobs, an
//! executor tells the scheduler it is leaving and lets its running tasks finish.

use crate::run::distinct::count_udaf;
use crate::run::keyhash::key_hash_udf;
use crate::run::latest::latest_udaf;
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use datafusion::execution::SessionState;
use datafusion::execution::registry::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// How often an executor tells the scheduler it is alive.
pub const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the scheduler waits for an executor's heartbeat before it counts the
/// executor lost and runs its tasks elsewhere (Ballista's default is three minutes, which
/// a job whose executor died would spend waiting).
pub const EXECUTOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Where it listens for clients and executors.
    pub bind: SocketAddr,
}

/// An executor's settings.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler's `host:port`.
    pub scheduler: String,
    /// Where it serves its results (Arrow Flight); its gRPC port is the next one unless
    /// `grpc_port` says otherwise.
    pub bind: SocketAddr,
    /// The gRPC port the scheduler pushes tasks to.
    pub grpc_port: Option<u16>,
    /// Where it keeps shuffle files (a temporary folder when `None`).
    pub work_dir: Option<PathBuf>,
    /// Tasks it runs at once (the machine's cores when `None`).
    pub concurrent_tasks: Option<usize>,
    /// Memory its tasks may hold together, in bytes (spilling past it).
    pub memory_limit: Option<usize>,
    /// How long it waits for its scheduler to accept connections before it gives up (an
    /// executor may start before its scheduler).
    pub scheduler_wait: std::time::Duration,
}

/// How long an executor waits for its scheduler by default.
pub const SCHEDULER_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// featurecraft's own functions, which every process of the cluster must know by name.
fn own_functions() -> (Vec<Arc<ScalarUDF>>, Vec<Arc<AggregateUDF>>) {
    (
        vec![Arc::new(key_hash_udf())],
        vec![Arc::new(count_udaf()), Arc::new(latest_udaf())],
    )
}

/// Ballista's default session with featurecraft's functions: how the scheduler reads the
/// plans clients send.
fn scheduler_session(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    let mut state = ballista_core::utils::default_session_builder(config)?;
    let (scalars, aggregates) = own_functions();
    for f in scalars {
        state.register_udf(f)?;
    }
    for f in aggregates {
        state.register_udaf(f)?;
    }
    Ok(state)
}

/// Ballista's default registry with featurecraft's functions and DataFusion's nested ones
/// (a schedule's `generate_series`, which Ballista's default leaves out): how executors
/// read tasks.
fn executor_registry() -> BallistaFunctionRegistry {
    let mut registry = BallistaFunctionRegistry::default();
    for f in datafusion::functions_nested::all_default_nested_functions() {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
    let (scalars, aggregates) = own_functions();
    for f in scalars {
        registry.scalar_functions.insert(f.name().to_string(), f);
    }
    for f in aggregates {
        registry.aggregate_functions.insert(f.name().to_string(), f);
    }
    registry
}

/// Runs a scheduler until `shutdown` completes or the server fails.
pub async fn run_scheduler(
    options: &SchedulerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let config = SchedulerConfig {
        bind_host: options.bind.ip().to_string(),
        bind_port: options.bind.port(),
        external_host: options.bind.ip().to_string(),
        executor_timeout_seconds: EXECUTOR_TIMEOUT.as_secs(),
        expire_dead_executor_interval_seconds: HEARTBEAT.as_secs(),
        no_executors_grace_period_seconds: EXECUTOR_TIMEOUT.as_secs(),
        ..SchedulerConfig::default()
    }
    .with_override_session_builder(Arc::new(scheduler_session));
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| format!("cannot set up the scheduler's state: {e}"))?;
    tokio::select! {
        served = start_server(cluster, options.bind, Arc::new(config)) => {
            served.map_err(|e| format!("the scheduler on {} stopped: {e}", options.bind))
        }
        () = shutdown => Ok(()),
    }
}

/// Runs an executor until SIGTERM, Ctrl-C or a stop request from the scheduler.
pub async fn run_executor(options: &ExecutorOptions) -> Result<(), String> {
    let (scheduler_host, scheduler_port) = options
        .scheduler
        .rsplit_once(':')
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
        .ok_or_else(|| {
            format!(
                "`scheduler` `{}` is not HOST:PORT (e.g. 127.0.0.1:50050)",
                options.scheduler
            )
        })?;
    let grpc_port = match options.grpc_port {
        Some(p) => p,
        None => options.bind.port().checked_add(1).ok_or_else(|| {
            format!(
                "`bind` {}: no port after it for gRPC; give `grpc_port`",
                options.bind
            )
        })?,
    };
    let work_dir = match &options.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create `work_dir` {}: {e}", dir.display()))?;
            Some(
                dir.to_str()
                    .ok_or_else(|| format!("`work_dir` {} is not UTF-8", dir.display()))?
                    .to_string(),
            )
        }
        None => None,
    };
    // Ballista 55's own wait for the scheduler never ends (it measures the time elapsed
    // since each new instant): featurecraft waits within `scheduler_wait`, then lets
    // Ballista connect once.
    wait_for_scheduler(&options.scheduler, options.scheduler_wait).await?;
    let defaults = ExecutorProcessConfig::default();
    let config = ExecutorProcessConfig {
        bind_host: options.bind.ip().to_string(),
        external_host: Some(options.bind.ip().to_string()),
        port: options.bind.port(),
        grpc_port,
        scheduler_host,
        scheduler_port,
        scheduler_connect_timeout_seconds: 0,
        vcores: options.concurrent_tasks.unwrap_or(defaults.vcores).max(1),
        work_dir,
        print_thread_info: false,
        executor_heartbeat_interval_seconds: HEARTBEAT.as_secs(),
        memory_pool_size: options.memory_limit.map(|m| m as u64),
        override_function_registry: Some(Arc::new(executor_registry())),
        ..defaults
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| format!("the executor on {} stopped: {e}", options.bind))
}

/// Waits until the scheduler at `address` accepts connections, for at most `wait`.
async fn wait_for_scheduler(address: &str, wait: std::time::Duration) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let probe = crate::run::engine::reach_scheduler(address).await;
        match probe {
            Ok(()) => return Ok(()),
            Err(why) if tokio::time::Instant::now() >= deadline => {
                return Err(format!(
                    "gave up waiting for the scheduler after {} s (`scheduler_wait`): {}",
                    wait.as_secs(),
                    why.message
                ));
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(500)).await,
        }
    }
}
