//! Where a recipe's queries run: DataFusion in this process (`local`, the default), or an
//! Apache Ballista cluster (`ballista://HOST:PORT`) whose executors know featurecraft's
//! functions (executors started from featurecraft's own binary).
//!
//! On a cluster the session plans exactly as locally (the same analyzed query, the same
//! logical plan); Ballista's planner then sends that plan to the scheduler, which splits
//! it into stages for the executors. The executors read the catalog's files and write the
//! materialized table themselves, so those paths must be the same on every machine (a
//! shared directory). Tables held in memory (a unit test's given rows) cannot travel and
//! are refused.

use crate::diagnostic::{Code, Diagnostic};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// How long a client waits to reach a cluster's scheduler before it gives up: a cluster
/// that is down is an error within this time, never a hang.
const SCHEDULER_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest host name (DNS's limit).
const MAX_HOST_LENGTH: usize = 253;

/// The URL scheme of a Ballista scheduler in an engine choice.
const BALLISTA_SCHEME: &str = "ballista://";

/// Where queries run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Engine {
    /// DataFusion in this process.
    #[default]
    Local,
    /// An Apache Ballista cluster, by its scheduler's `host:port`.
    Ballista {
        /// The scheduler's `host:port`.
        scheduler: String,
    },
}

/// The time limit of a run on a cluster when the caller sets none: a cluster that lost
/// its executors may otherwise keep a job waiting for ever (Ballista 55 does not fail a job
/// whose executor died early), and a run on a cluster must end. `--timeout` (`timeout=`
/// in Python, the service's `--job-timeout`) sets another.
pub const CLUSTER_TIME_LIMIT: Duration = Duration::from_secs(3600);

impl Engine {
    /// The time limit of a run that sets none: [`CLUSTER_TIME_LIMIT`] on a cluster, none here.
    pub fn default_time_limit(&self) -> Option<Duration> {
        match self {
            Engine::Local => None,
            Engine::Ballista { .. } => Some(CLUSTER_TIME_LIMIT),
        }
    }
}

impl FromStr for Engine {
    type Err = String;

    /// `local`, or `ballista://HOST:PORT`.
    fn from_str(text: &str) -> Result<Engine, String> {
        if text == "local" {
            return Ok(Engine::Local);
        }
        // Quoted back in every message below: a text no engine can be is not.
        if text.len() > BALLISTA_SCHEME.len() + MAX_HOST_LENGTH + 6 {
            return Err(format!(
                "the engine is {} characters long: use `local` or `ballista://HOST:PORT`",
                text.len()
            ));
        }
        let Some(address) = text.strip_prefix(BALLISTA_SCHEME) else {
            return Err(format!(
                "unknown engine `{text}`: use `local` or `ballista://HOST:PORT`"
            ));
        };
        let address = address.trim_end_matches('/');
        let (host, port) = address.rsplit_once(':').ok_or_else(|| {
            format!("engine `{text}` names no port: use `ballista://HOST:PORT` (the scheduler listens on 50050 by default)")
        })?;
        if host.len() > MAX_HOST_LENGTH {
            return Err(format!(
                "engine `ballista://…:{port}`: the host name is {} characters long; a host name has at most {MAX_HOST_LENGTH}",
                host.len()
            ));
        }
        let host_ok = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !host_ok {
            return Err(format!("engine `{text}`: `{host}` is not a host name"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(format!("engine `{text}`: `{port}` is not a port")),
        }
        if !cfg!(feature = "cluster") {
            return Err(format!(
                "engine `{text}`: this build of featurecraft has no cluster support (build it with the `cluster` feature)"
            ));
        }
        Ok(Engine::Ballista {
            scheduler: address.to_string(),
        })
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Engine::Local => f.write_str("local"),
            Engine::Ballista { scheduler } => write!(f, "{BALLISTA_SCHEME}{scheduler}"),
        }
    }
}

/// Checks that the scheduler at `address` accepts connections within
/// [`SCHEDULER_CONNECT_TIMEOUT`].
pub async fn reach_scheduler(address: &str) -> Result<(), Diagnostic> {
    let unreachable = |why: String| {
        Diagnostic::new(
            Code::E050,
            format!("cannot reach the Ballista scheduler at {address}: {why}"),
        )
        .hint("start a scheduler there (the `cluster scheduler` command), or run on the `local` engine")
    };
    match tokio::time::timeout(
        SCHEDULER_CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(address),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!(
            "no answer within {} s",
            SCHEDULER_CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// A session whose queries run on the Ballista cluster at `scheduler`: `local`'s settings,
/// functions and memory pool, with Ballista's planner.
#[cfg(feature = "cluster")]
pub async fn on_cluster(
    local: datafusion::prelude::SessionContext,
    scheduler: &str,
) -> Result<datafusion::prelude::SessionContext, Diagnostic> {
    use ballista_core::extension::{SessionConfigExt, SessionStateExt};
    use datafusion::execution::SessionStateBuilder;
    reach_scheduler(scheduler).await?;
    let secret = crate::run::secret::ClusterSecret::from_env().map_err(|e| {
        Diagnostic::new(
            Code::E050,
            format!("cannot use the Ballista cluster at {scheduler}: {e}"),
        )
    })?;
    let state = local.state();
    // Ballista 55's adaptive planner drops the final projections of a plan whose last
    // join adds no column (the rows came back in the join's column order): its static
    // planner runs the plan as planned.
    let mut config = state
        .config()
        .clone()
        .upgrade_for_ballista()
        .with_ballista_adaptive_query_planner(false);
    // Every connection to the scheduler and to the executors (the results) sends the
    // cluster's secret.
    if let Some(secret) = &secret {
        config =
            config.with_ballista_override_create_grpc_client_endpoint(secret.endpoint_override());
    }
    let url = format!("http://{scheduler}");
    let state = SessionStateBuilder::new_from_existing(state)
        .with_config(config)
        .build()
        .upgrade_for_ballista(url.clone())
        .map_err(|e| {
            Diagnostic::new(
                Code::E050,
                format!("cannot set up a session on the Ballista cluster at {scheduler}: {e}"),
            )
        })?;
    // Every cluster job is watched: one its run abandons (a time limit) is cancelled.
    let planner = crate::run::deadline::WatchedPlanner::new(state.query_planner().clone(), url);
    let state = SessionStateBuilder::new_from_existing(state)
        .with_query_planner(std::sync::Arc::new(planner))
        .build();
    Ok(datafusion::prelude::SessionContext::new_with_state(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_parse_and_print_back() {
        assert_eq!("local".parse::<Engine>(), Ok(Engine::Local));
        if cfg!(feature = "cluster") {
            let e: Engine = "ballista://127.0.0.1:50050".parse().unwrap();
            assert_eq!(
                e,
                Engine::Ballista {
                    scheduler: "127.0.0.1:50050".into()
                }
            );
            assert_eq!(e.to_string(), "ballista://127.0.0.1:50050");
        }
        for bad in [
            "",
            "Local",
            "ballista://",
            "ballista://host",
            "ballista://:50050",
            "ballista://host:0",
            "ballista://host:99999",
            "ballista://a b:1",
            "ballista://h@x:1",
            "df://host:50050",
            format!("ballista://{}:1", "h".repeat(254)).as_str(),
            "x".repeat(100_000).as_str(),
        ] {
            let err = bad.parse::<Engine>().unwrap_err();
            assert!(err.contains("engine"), "{bad}: {err}");
            assert!(err.len() < 400, "{err}");
        }
    }
}
