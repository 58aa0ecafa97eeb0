//! `featurecraft cluster scheduler|executor`: the processes of a Ballista cluster.

use super::*;

/// Runs a process of a Ballista cluster until it is told to stop, logging as `serve` does.
#[cfg(feature = "cluster")]
pub(super) async fn cluster_command(command: ClusterCommand) -> ExitCode {
    use featurecraft::cluster::{ExecutorOptions, SchedulerOptions, run_executor, run_scheduler};
    init_json_logs();
    // The secret comes from the environment only: a command line is visible to every user.
    let secret = match featurecraft::run::secret::ClusterSecret::from_env() {
        Ok(secret) => secret,
        Err(e) => return usage_error(&e),
    };
    // A refusal to listen beyond loopback without a secret is a usage problem (exit 2).
    let bind = match &command {
        ClusterCommand::Scheduler(args) => ("scheduler", args.bind),
        ClusterCommand::Executor(args) => ("executor", args.bind),
    };
    if let Err(e) = featurecraft::cluster::check_bind(bind.0, bind.1, secret.as_ref()) {
        return usage_error(&e);
    }
    let outcome = match command {
        ClusterCommand::Scheduler(args) => {
            tracing::info!(bind = %args.bind, pid = std::process::id(), secret = secret.is_some(), "starting the scheduler");
            run_scheduler(
                &SchedulerOptions {
                    bind: args.bind,
                    secret,
                },
                stop_signal(),
            )
            .await
        }
        ClusterCommand::Executor(args) => {
            let memory_limit = match args
                .memory_limit
                .as_deref()
                .map(featurecraft::run::sample::parse_size)
                .transpose()
            {
                Ok(m) => m,
                Err(e) => return usage_error(&format!("--memory-limit: {e}")),
            };
            if args.concurrent_tasks == Some(0) {
                return usage_error("--concurrent-tasks must be at least 1");
            }
            tracing::info!(bind = %args.bind, scheduler = %args.scheduler, pid = std::process::id(), secret = secret.is_some(), "starting an executor");
            run_executor(&ExecutorOptions {
                scheduler: args.scheduler,
                bind: args.bind,
                grpc_port: args.grpc_port,
                work_dir: args.work_dir,
                concurrent_tasks: args.concurrent_tasks,
                memory_limit,
                scheduler_wait: std::time::Duration::from_secs(args.scheduler_wait),
                secret,
                roots: featurecraft::cluster::confined::Roots {
                    read: args.catalog,
                    write: args.warehouse,
                },
            })
            .await
        }
    };
    match outcome {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let e = flags(&e);
            tracing::error!(error = %e, "failed");
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
