//! The processes of an Apache Ballista cluster that runs featurecraft's queries:
//! Ballista's own scheduler and executor, with featurecraft's functions (the key hash of
//! entity sampling, the compact `COUNT(DISTINCT)`) in their registries, so that a plan
//! planned for a cluster ([`Engine::Ballista`](crate::run::engine::Engine)) means the same
//! on every executor as it does locally.
//!
//! Both stop gracefully on SIGTERM or Ctrl-C: the scheduler stops accepting jobs, an
//! executor tells the scheduler it is leaving and lets its running tasks finish.
//!
//! With a shared secret ([`ClusterSecret`]) the scheduler's gRPC service and the
//! executors' result service (Arrow Flight) refuse, and log, every call that does not
//! carry it, and every connection the processes open to each other sends it. Without one
//! they bind only to loopback: a process asked to listen beyond it refuses to start.
//! Ballista 55 builds an executor's task service (where the scheduler pushes tasks) with
//! no way to add a check, so that port must stay where only the scheduler reaches it
//! (README, "What the cluster trusts").

pub mod confined;

use crate::run::secret::{ClusterSecret, SECRET_ENV, SECRET_FILE_ENV};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::create_scheduler;
use datafusion::execution::SessionState;
use datafusion::execution::registry::FunctionRegistry;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use datafusion::prelude::SessionConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// How often an executor tells the scheduler it is alive.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(5);

/// How long the scheduler waits for an executor's heartbeat before it counts the
/// executor lost and runs its tasks elsewhere (Ballista's default is three minutes, which
/// a job whose executor died would spend waiting).
const EXECUTOR_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// The scheduler's settings.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Where it listens for clients and executors.
    pub bind: SocketAddr,
    /// The secret every call must carry (`None`: loopback only, unchecked).
    pub secret: Option<ClusterSecret>,
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
    /// The secret every call must carry, and that it sends (`None`: loopback only).
    pub secret: Option<ClusterSecret>,
    /// The folders its tasks may read and write (none given: anywhere).
    pub roots: confined::Roots,
}

/// How long an executor waits for its scheduler by default.
pub const SCHEDULER_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// featurecraft's own functions, which every process of the cluster must know by name.
fn own_functions() -> (Vec<Arc<ScalarUDF>>, Vec<Arc<AggregateUDF>>) {
    let (scalars, aggregates) = crate::run::sample::own_functions();
    (
        scalars.into_iter().map(Arc::new).collect(),
        aggregates.into_iter().map(Arc::new).collect(),
    )
}

/// Ballista's default session with featurecraft's functions and the object stores plans
/// name (built from the scheduler's environment: it lists the files it splits into tasks):
/// how the scheduler reads the plans clients send.
fn scheduler_session(config: SessionConfig) -> datafusion::common::Result<SessionState> {
    static STORES: std::sync::OnceLock<Arc<confined::ClusterStores>> = std::sync::OnceLock::new();
    let state = ballista_core::utils::default_session_builder(config)?;
    let stores = STORES.get_or_init(|| Arc::new(confined::ClusterStores::unconfined()));
    let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::from_runtime_env(
        state.runtime_env(),
    )
    .with_object_store_registry(stores.clone())
    .build_arc()?;
    let mut state = datafusion::execution::SessionStateBuilder::new_from_existing(state)
        .with_runtime_env(runtime)
        .build();
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

/// Refuses to listen beyond loopback without a secret: anyone who reaches the port could
/// run a plan that reads and writes files as this process's user.
pub fn check_bind(
    process: &str,
    bind: SocketAddr,
    secret: Option<&ClusterSecret>,
) -> Result<(), String> {
    if secret.is_none() && !bind.ip().is_loopback() {
        return Err(format!(
            "the {process} would listen on {bind}, beyond loopback, without a cluster secret: set {SECRET_ENV} or {SECRET_FILE_ENV} (the same on every process and client), or bind to 127.0.0.1"
        ));
    }
    Ok(())
}

/// [`check_bind`], and a warning when the process runs without a secret on loopback.
fn checked_bind(
    process: &str,
    bind: SocketAddr,
    secret: Option<&ClusterSecret>,
) -> Result<(), String> {
    check_bind(process, bind, secret)?;
    if secret.is_none() {
        log::warn!(
            "the {process} on {bind} runs without a cluster secret: every user of this machine can send it plans (set {SECRET_ENV} or {SECRET_FILE_ENV})"
        );
    }
    Ok(())
}

/// Runs a scheduler until `shutdown` completes or the server fails.
pub async fn run_scheduler(
    options: &SchedulerOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    use ballista_core::serde::protobuf::scheduler_grpc_server::SchedulerGrpcServer;
    use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
    checked_bind("scheduler", options.bind, options.secret.as_ref())?;
    let mut config = SchedulerConfig {
        bind_host: options.bind.ip().to_string(),
        bind_port: options.bind.port(),
        external_host: options.bind.ip().to_string(),
        executor_timeout_seconds: EXECUTOR_TIMEOUT.as_secs(),
        expire_dead_executor_interval_seconds: HEARTBEAT.as_secs(),
        no_executors_grace_period_seconds: EXECUTOR_TIMEOUT.as_secs(),
        ..SchedulerConfig::default()
    }
    .with_override_session_builder(Arc::new(scheduler_session));
    if let Some(secret) = &options.secret {
        config.override_create_grpc_client_endpoint = Some(secret.endpoint_override());
    }
    config
        .validate()
        .map_err(|e| format!("the scheduler's settings: {e}"))?;
    let config = Arc::new(config);
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| format!("cannot set up the scheduler's state: {e}"))?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config.clone())
        .await
        .map_err(|e| format!("cannot start the scheduler: {e}"))?;
    // Ballista's own server (`start_server`) takes no check; this one serves the same
    // gRPC service (not Ballista's REST pages or result proxy, which featurecraft does not
    // use) behind the secret's interceptor.
    let service = SchedulerGrpcServer::new(scheduler)
        .max_decoding_message_size(config.grpc_server_max_decoding_message_size as usize)
        .max_encoding_message_size(config.grpc_server_max_encoding_message_size as usize);
    let listener = tokio::net::TcpListener::bind(options.bind)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.bind))?;
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let checked = tonic::service::interceptor::InterceptedService::new(
        service,
        crate::run::secret::interceptor(options.secret.clone(), "scheduler"),
    );
    // Stops at once on `shutdown`, as Ballista's own server does: a client's idle
    // connection does not hold it.
    let mut server = tonic::transport::Server::builder();
    tokio::select! {
        served = server.add_service(checked).serve_with_incoming(incoming) => {
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
    checked_bind("executor", options.bind, options.secret.as_ref())?;
    let roots = if options.roots.is_empty() {
        log::warn!(
            "the executor on {} may read and write any file its tasks name (give --catalog and --warehouse to confine them)",
            options.bind
        );
        None
    } else {
        Some(options.roots.resolved()?)
    };
    let stores = Arc::new(confined::ClusterStores::new(roots)?);
    // Ballista 55's own wait for the scheduler never ends (it measures the time elapsed
    // since each new instant): featurecraft waits within `scheduler_wait`, then lets
    // Ballista connect once.
    wait_for_scheduler(&options.scheduler, options.scheduler_wait).await?;
    let defaults = ExecutorProcessConfig::default();
    let mut config = ExecutorProcessConfig {
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
    // Its tasks' scans and writes go through its own stores: local files and the object
    // stores plans name, confined to its roots when it has some (the memory pool Ballista
    // wraps around this environment stays as it is).
    let temp = options.work_dir.clone().unwrap_or_else(std::env::temp_dir);
    config.override_runtime_producer = Some(Arc::new(move |_| {
        let env = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_temp_file_path(temp.clone())
            .with_object_store_registry(stores.clone())
            .build()?;
        Ok(Arc::new(env))
    }));
    if let Some(secret) = &options.secret {
        // Its connections to the scheduler, and a task's to other executors (a shuffle's
        // reads, set in every task's session), send the secret; its result service asks for it.
        let endpoint = secret.endpoint_override();
        config.override_create_grpc_client_endpoint = Some(endpoint.clone());
        config.override_config_producer = Some(Arc::new(move || {
            use ballista_core::extension::SessionConfigExt;
            ballista_core::utils::default_config_producer()
                .with_ballista_override_create_grpc_client_endpoint(endpoint.clone())
        }));
        config.override_arrow_flight_service = Some(Arc::new(checked_flight_service(
            secret.clone(),
            config.grpc_max_encoding_message_size as usize,
            config.grpc_max_decoding_message_size as usize,
        )));
    }
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| format!("the executor on {} stopped: {e}", options.bind))
}

/// An executor's result service (Ballista's own, reading shuffle files under its work
/// folder) behind the secret's interceptor.
fn checked_flight_service(
    secret: ClusterSecret,
    max_encoding: usize,
    max_decoding: usize,
) -> impl Fn(
    String,
    SocketAddr,
    ballista_executor::shutdown::Shutdown,
    ballista_core::utils::GrpcServerConfig,
) -> tokio::task::JoinHandle<Result<(), ballista_core::error::BallistaError>>
+ Send
+ Sync {
    use arrow_flight::flight_service_server::FlightServiceServer;
    use ballista_executor::flight_service::BallistaFlightService;
    move |work_dir, address, mut shutdown, server_config| {
        let service = FlightServiceServer::new(BallistaFlightService::new(work_dir))
            .max_decoding_message_size(max_decoding)
            .max_encoding_message_size(max_encoding);
        let checked = tonic::service::interceptor::InterceptedService::new(
            service,
            crate::run::secret::interceptor(Some(secret.clone()), "executor's result service"),
        );
        tokio::spawn(async move {
            ballista_core::utils::create_grpc_server(&server_config)
                .add_service(checked)
                .serve_with_shutdown(address, shutdown.recv())
                .await
                .map_err(ballista_core::error::BallistaError::TonicError)
        })
    }
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
