//! A run's time limit, and the cancellation of the cluster jobs a stopped run leaves.
//!
//! A run past its time limit ([`within_time_limit`]) is stopped with `E054`: locally,
//! dropping DataFusion's streams stops its work. On a Ballista cluster dropping the client's
//! stream stops only the client (Ballista 55 sends no cancellation when its stream goes),
//! and the job would run on, holding executors and writing into a staging folder nobody
//! publishes. So every cluster query runs through [`WatchedPlanner`]: its stream learns the
//! scheduler's job id, and when it is dropped before the job's last batch (a time limit,
//! the service's job time limit, a client gone) it asks the scheduler to cancel the job.
//! [`within_time_limit`] waits for those cancellations (at most [`CANCEL_TIMEOUT`] each)
//! before it reports, so a command-line run that stops cancels its job before it exits.

use crate::diagnostic::{Code, Diagnostic};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

/// The longest time limit a caller may set: 30 days (a longer one is a mistake, and
/// far-future deadlines are where timer arithmetic overflows).
pub const MAX_TIME_LIMIT: Duration = Duration::from_secs(30 * 24 * 3600);

/// How long a cancellation may take to reach the scheduler before the run reports anyway.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// A cancellation sent for a cluster job: the run that stopped it (when known), its job
/// id and the request under way.
struct Cancellation {
    run: Option<u64>,
    job_id: String,
    request: tokio::task::JoinHandle<Result<(), String>>,
}

tokio::task_local! {
    /// The run a query belongs to, set by [`within_time_limit`] around its work (and
    /// still set while the work is dropped, when its streams send their cancellations).
    static RUN: u64;
}

/// The next run's number.
static NEXT_RUN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Cancellations sent and not yet awaited, in this process. Finished ones that nobody
/// awaits (a service job stopped by the service's own time limit) are pruned as new ones
/// come, so the list holds only requests under way.
static SENT: Mutex<Vec<Cancellation>> = Mutex::new(Vec::new());

/// Sends a cancellation of `job_id` to the scheduler at `scheduler_url`, on the current
/// Tokio runtime; without one (a drop outside any runtime) nothing can be sent.
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
fn send_cancellation(scheduler_url: String, job_id: String) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let run = RUN.try_with(|run| *run).ok();
    let request = runtime.spawn(cancel(scheduler_url, job_id.clone()));
    if let Ok(mut sent) = SENT.lock() {
        sent.retain(|c| !c.request.is_finished());
        sent.push(Cancellation {
            run,
            job_id,
            request,
        });
    }
}

/// Asks the scheduler to cancel `job_id`.
#[cfg(feature = "cluster")]
async fn cancel(scheduler_url: String, job_id: String) -> Result<(), String> {
    use ballista_core::serde::protobuf::CancelJobParams;
    use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
    use ballista_core::utils::{GrpcClientConfig, create_grpc_client_endpoint};
    let config = GrpcClientConfig {
        connect_timeout_seconds: CANCEL_TIMEOUT.as_secs(),
        timeout_seconds: CANCEL_TIMEOUT.as_secs(),
        ..GrpcClientConfig::default()
    };
    let mut endpoint =
        create_grpc_client_endpoint(scheduler_url, Some(&config)).map_err(|e| e.to_string())?;
    if let Some(secret) = crate::run::secret::ClusterSecret::from_env()? {
        endpoint = endpoint
            .user_agent(secret.user_agent())
            .map_err(|e| e.to_string())?;
    }
    let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
    let answer = SchedulerGrpcClient::new(channel)
        .cancel_job(CancelJobParams { job_id })
        .await
        .map_err(|e| e.message().to_string())?;
    if answer.into_inner().cancelled {
        Ok(())
    } else {
        Err("the scheduler did not cancel it".into())
    }
}

#[cfg(not(feature = "cluster"))]
#[allow(
    dead_code,
    reason = "a build without the cluster feature never cancels a job"
)]
async fn cancel(_scheduler_url: String, _job_id: String) -> Result<(), String> {
    Err("this build has no cluster support".into())
}

/// Waits for the cancellations `run` sent (and those of no known run); one line per job
/// says how it went. Other runs' cancellations are left to them.
async fn settle(run: u64) -> Vec<String> {
    let mine: Vec<Cancellation> = match SENT.lock() {
        Ok(mut sent) => {
            let (mine, others) = std::mem::take(&mut *sent)
                .into_iter()
                .partition(|c| c.run.is_none_or(|r| r == run));
            *sent = others;
            mine
        }
        Err(_) => Vec::new(),
    };
    let mut lines = Vec::new();
    for Cancellation {
        job_id, request, ..
    } in mine
    {
        let outcome = tokio::time::timeout(CANCEL_TIMEOUT, request).await;
        lines.push(match outcome {
            Ok(Ok(Ok(()))) => format!("cluster job {job_id} was cancelled"),
            Ok(Ok(Err(why))) => format!("cluster job {job_id} could not be cancelled: {why}"),
            Ok(Err(_)) => format!("cluster job {job_id} could not be cancelled"),
            Err(_) => format!(
                "cluster job {job_id}: the scheduler did not answer the cancellation within {} s",
                CANCEL_TIMEOUT.as_secs()
            ),
        });
    }
    lines
}

/// A spawned task, aborted when this is dropped: whoever waited for it (a request, a tool
/// call) is gone, so its work stops too.
pub struct AbortOnDrop<T>(pub tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs `work`, stopped with `E054` when it outlives `limit` (`None`: no limit); the
/// cluster jobs it leaves running are cancelled before this returns.
pub async fn within_time_limit<T>(
    limit: Option<Duration>,
    work: impl Future<Output = T>,
) -> Result<T, Diagnostic> {
    let Some(limit) = limit else {
        return Ok(work.await);
    };
    let run = NEXT_RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match tokio::time::timeout(limit, RUN.scope(run, work)).await {
        Ok(outcome) => Ok(outcome),
        Err(_) => {
            let cancelled = settle(run).await;
            let mut message = format!(
                "the run did not finish within its time limit of {}, and was stopped",
                shown_duration(limit)
            );
            if !cancelled.is_empty() {
                message = format!("{message}; {}", cancelled.join("; "));
            }
            Err(Diagnostic::new(Code::E054, message).hint(
                "raise the time limit (`time_limit`), sample fewer entities, or run it again if a cluster lost an executor",
            ))
        }
    }
}

/// `90 s`, `1.5 s`, `250 ms`.
fn shown_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(feature = "cluster")]
pub use watched::WatchedPlanner;

/// The planner and stream that cancel an abandoned cluster job.
#[cfg(feature = "cluster")]
mod watched {
    use crate::run::deadline::send_cancellation;
    use ballista_core::execution_plans::DistributedQueryExec;
    use datafusion::arrow::datatypes::SchemaRef;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::common::Result;
    use datafusion::common::tree_node::TreeNodeRecursion;
    use datafusion::execution::context::QueryPlanner;
    use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream, TaskContext};
    use datafusion::logical_expr::LogicalPlan;
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
    use datafusion_proto::protobuf::LogicalPlanNode;
    use futures::Stream;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{Context, Poll};

    type ClusterQuery = DistributedQueryExec<LogicalPlanNode>;

    /// Ballista's planner, with every query it sends to the cluster watched: a query whose
    /// stream is dropped before its end has its job cancelled.
    #[derive(Debug)]
    pub struct WatchedPlanner {
        inner: Arc<dyn QueryPlanner + Send + Sync>,
        scheduler_url: String,
    }

    impl WatchedPlanner {
        /// Watches the queries `inner` (Ballista's planner) sends to `scheduler_url`.
        pub fn new(inner: Arc<dyn QueryPlanner + Send + Sync>, scheduler_url: String) -> Self {
            WatchedPlanner {
                inner,
                scheduler_url,
            }
        }
    }

    #[async_trait::async_trait]
    impl QueryPlanner for WatchedPlanner {
        async fn create_physical_plan(
            &self,
            logical_plan: &LogicalPlan,
            session: &dyn datafusion::catalog::Session,
        ) -> Result<Arc<dyn ExecutionPlan>> {
            let plan = self
                .inner
                .create_physical_plan(logical_plan, session)
                .await?;
            if plan.downcast_ref::<ClusterQuery>().is_none() {
                // Planned to run here (Ballista runs catalog queries locally).
                return Ok(plan);
            }
            Ok(Arc::new(WatchedQuery {
                inner: plan,
                scheduler_url: self.scheduler_url.clone(),
            }))
        }
    }

    /// A cluster query whose job is cancelled when its stream is dropped before its end.
    #[derive(Debug)]
    struct WatchedQuery {
        /// Ballista's `DistributedQueryExec`.
        inner: Arc<dyn ExecutionPlan>,
        scheduler_url: String,
    }

    impl DisplayAs for WatchedQuery {
        fn fmt_as(&self, t: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "WatchedQuery: ")?;
            self.inner.fmt_as(t, f)
        }
    }

    impl ExecutionPlan for WatchedQuery {
        fn name(&self) -> &str {
            "WatchedQuery"
        }

        fn properties(&self) -> &Arc<PlanProperties> {
            self.inner.properties()
        }

        fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
            vec![]
        }

        fn apply_expressions(
            &self,
            _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
        ) -> Result<TreeNodeRecursion> {
            Ok(TreeNodeRecursion::Continue)
        }

        fn with_new_children(
            self: Arc<Self>,
            _children: Vec<Arc<dyn ExecutionPlan>>,
        ) -> Result<Arc<dyn ExecutionPlan>> {
            Ok(self)
        }

        fn execute(
            &self,
            partition: usize,
            context: Arc<TaskContext>,
        ) -> Result<SendableRecordBatchStream> {
            let inner = self.inner.execute(partition, context)?;
            Ok(Box::pin(WatchedStream {
                inner,
                query: Arc::clone(&self.inner),
                scheduler_url: self.scheduler_url.clone(),
                job_id: None,
                ended: false,
            }))
        }
    }

    /// The query's batches; dropped before the last one, it cancels the job.
    struct WatchedStream {
        inner: SendableRecordBatchStream,
        query: Arc<dyn ExecutionPlan>,
        scheduler_url: String,
        /// The scheduler's id of the job, once it accepted the query.
        job_id: Option<String>,
        /// Whether the stream gave its last batch.
        ended: bool,
    }

    impl Stream for WatchedStream {
        type Item = Result<RecordBatch>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = &mut *self;
            let poll = this.inner.as_mut().poll_next(cx);
            if this.job_id.is_none() {
                this.job_id = this
                    .query
                    .downcast_ref::<ClusterQuery>()
                    .and_then(|q| q.job_id())
                    .map(|id| id.to_string());
            }
            if let Poll::Ready(None) = poll {
                this.ended = true;
            }
            poll
        }
    }

    impl RecordBatchStream for WatchedStream {
        fn schema(&self) -> SchemaRef {
            self.inner.schema()
        }
    }

    impl Drop for WatchedStream {
        fn drop(&mut self) {
            // An error ends no job for sure (the scheduler may have gone away mid-job):
            // only the last batch does. Cancelling a job that already failed is harmless.
            if !self.ended
                && let Some(job_id) = self.job_id.take()
            {
                send_cancellation(self.scheduler_url.clone(), job_id);
            }
        }
    }
}
