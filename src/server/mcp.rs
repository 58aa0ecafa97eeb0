//! `POST /mcp`: the MCP tools over MCP's streamable HTTP transport (stateless, JSON
//! answers), behind the service's Bearer auth (401 without a token, before MCP sees the
//! request). Besides the catalog and recipe tools ([`crate::mcp`]), run on the engine with
//! the stateless routes' bounds, five job tools act as the token's subject: each calls
//! the REST route's own handler, so the rules are the routes' (ownership, lifecycle, 409s).

use super::jobs::{
    PageParams, RetryParams, WaitParam, approve_job, create_job, get_job, list_jobs, retry_job,
};
use super::stateless::{current_catalog, on_engine};
use super::*;
use crate::contract::job::Job;
use crate::mcp::tools::ToolContext;
use crate::mcp::{McpServer, read, schema, server_info, tool, tool_result};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ListToolsResult,
    PaginatedRequestParams, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use schemars::JsonSchema;
use serde::Serialize;

/// The MCP endpoint: a new stateless handler per request.
pub(super) fn service(state: Shared) -> StreamableHttpService<ServiceTools, NeverSessionManager> {
    let mut config = StreamableHttpServerConfig::default()
        // The service is reached by the names its operators give it; the Bearer token,
        // checked before MCP sees the request, is what guards it.
        .disable_allowed_hosts();
    config.legacy_session_mode = false;
    config.json_response = true;
    config.max_request_body_bytes = BODY_LIMIT;
    StreamableHttpService::new(
        move || {
            Ok(ServiceTools {
                state: state.clone(),
            })
        },
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// 401 before MCP sees a request without a valid token.
pub(super) async fn require_caller(
    State(state): State<Shared>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    caller(&state, request.headers()).await?;
    Ok(next.run(request).await)
}

/// The tools of one `/mcp` request.
#[derive(Clone)]
pub(super) struct ServiceTools {
    state: Shared,
}

/// Arguments of `create_job`: the body of `POST /jobs`, and whether to wait for the run.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
struct CreateJobArguments {
    #[serde(flatten)]
    job: api::CreateJob,
    /// Answer with the finished job instead of as soon as it is stored.
    #[serde(default)]
    wait: bool,
}

/// Arguments naming one job.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct JobArguments {
    /// The job's id (a UUID).
    job_id: String,
}

/// Arguments of `retry_job`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RetryArguments {
    /// The job's id (a UUID).
    job_id: String,
    /// Answer with the finished job instead of as soon as the retry is stored.
    #[serde(default)]
    wait: bool,
    /// Apply the recipe's machine-applicable fixes first.
    #[serde(default)]
    fix: bool,
}

/// Arguments of `list_jobs`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListArguments {
    /// Jobs per page (the service's default when absent).
    #[serde(default)]
    limit: Option<usize>,
    /// The `next_cursor` of the page before.
    #[serde(default)]
    cursor: Option<String>,
}

/// A page of the caller's jobs, newest first.
#[derive(Debug, Clone, Serialize, JsonSchema)]
struct JobList {
    /// The jobs.
    jobs: Vec<Job>,
    /// Pass it as `cursor` for the next page; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
}

/// A job tool's answer: the job, or the REST route's refusal.
#[derive(Serialize, JsonSchema)]
#[serde(untagged)]
#[expect(
    dead_code,
    reason = "only its schema is used: the answer is the route's own JSON"
)]
enum JobOutcome {
    /// The job.
    Job(Box<Job>),
    /// The route's refusal.
    Refused(Refusal),
}

/// A REST route's refusal, as its status and `detail`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
struct Refusal {
    /// The HTTP status the route answered (404, 409, 422, 503, …).
    status: u16,
    /// What is wrong.
    detail: String,
}

/// The job tools, with their annotations.
fn job_tools() -> Vec<Tool> {
    let changes = |title: &'static str, idempotent: bool| {
        ToolAnnotations::with_title(title)
            .read_only(false)
            .destructive(false)
            .idempotent(idempotent)
            .open_world(false)
    };
    let reads = |title: &'static str| {
        ToolAnnotations::with_title(title)
            .read_only(true)
            .open_world(false)
    };
    vec![
        tool(
            (
                "create_job",
                "Create a job",
                "Creates a job from a recipe (or a design request) as `POST /jobs` does, owned by the token's subject; its first run compiles and validates the recipe. With `wait`, answers with the finished job.",
            ),
            schema::<CreateJobArguments>(),
            schema::<JobOutcome>(),
            changes("Create a job", false),
        ),
        tool(
            (
                "get_job",
                "Get a job",
                "One of the caller's jobs (`GET /jobs/{job_id}`).",
            ),
            schema::<JobArguments>(),
            schema::<JobOutcome>(),
            reads("Get a job"),
        ),
        tool(
            (
                "list_jobs",
                "List jobs",
                "The caller's jobs, newest first, a page at a time (`GET /jobs`).",
            ),
            schema::<ListArguments>(),
            schema::<JobList>(),
            reads("List jobs"),
        ),
        tool(
            (
                "retry_job",
                "Retry a job",
                "Runs a failed job again (`POST /jobs/{job_id}/retry`): the crew proposes, featurecraft validates.",
            ),
            schema::<RetryArguments>(),
            schema::<JobOutcome>(),
            changes("Retry a job", false),
        ),
        tool(
            (
                "approve_job",
                "Approve a job",
                "Approves a job pending approval (`POST /jobs/{job_id}/approve`), bound to the data it was validated on.",
            ),
            schema::<JobArguments>(),
            schema::<JobOutcome>(),
            changes("Approve a job", true),
        ),
    ]
}

impl ServiceTools {
    /// A job tool: the REST route's handler with the request's own headers.
    async fn job_tool(
        &self,
        name: &str,
        arguments: Value,
        headers: HeaderMap,
    ) -> Result<CallToolResult, ErrorData> {
        let state = self.state.clone();
        let answered = match name {
            "create_job" => {
                let args: CreateJobArguments = read(name, arguments)?;
                let body = serde_json::to_vec(&args.job)
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                let wait = WaitParam { wait: args.wait };
                create_job(State(state), headers, Query(wait), Bytes::from(body)).await
            }
            "get_job" => {
                let args: JobArguments = read(name, arguments)?;
                get_job(State(state), headers, UrlPath(args.job_id))
                    .await
                    .map(IntoResponse::into_response)
            }
            "list_jobs" => {
                let args: ListArguments = read(name, arguments)?;
                let page = PageParams {
                    limit: args.limit,
                    cursor: args.cursor,
                };
                list_jobs(State(state), headers, Query(page)).await
            }
            "retry_job" => {
                let args: RetryArguments = read(name, arguments)?;
                let params = RetryParams {
                    wait: args.wait,
                    fix: args.fix,
                };
                retry_job(State(state), headers, UrlPath(args.job_id), Query(params)).await
            }
            "approve_job" => {
                let args: JobArguments = read(name, arguments)?;
                approve_job(State(state), headers, UrlPath(args.job_id))
                    .await
                    .map(IntoResponse::into_response)
            }
            other => {
                return Err(ErrorData::invalid_params(
                    format!("unknown tool `{other}`"),
                    None,
                ));
            }
        };
        let response = answered.unwrap_or_else(IntoResponse::into_response);
        let status = response.status();
        let next_cursor = response
            .headers()
            .get("x-next-cursor")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
            .await
            .map_err(|e| ErrorData::internal_error(format!("the route's answer: {e}"), None))?;
        let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if !status.is_success() {
            let refusal = Refusal {
                status: status.as_u16(),
                detail: value["detail"].as_str().unwrap_or_default().to_string(),
            };
            let value = serde_json::to_value(refusal).unwrap_or_default();
            return Ok(tool_result(value, true));
        }
        let value = if name == "list_jobs" {
            let mut page = serde_json::Map::new();
            page.insert("jobs".into(), value);
            if let Some(next) = next_cursor {
                page.insert("next_cursor".into(), Value::String(next));
            }
            Value::Object(page)
        } else {
            value
        };
        Ok(tool_result(value, false))
    }

    /// A catalog or recipe tool, on the engine like the stateless routes (a permit, the
    /// service's time limit); a refusal there (503, 504) is an error result saying so.
    async fn engine_tool(&self, name: &str, arguments: Value) -> Result<CallToolResult, ErrorData> {
        let state = self.state.clone();
        let tool = name.to_string();
        let ran = on_engine(&self.state, async move {
            let catalog = current_catalog(&state).await?;
            let server = McpServer::new(ToolContext {
                catalog,
                run: state.config.run.clone(),
            });
            Ok::<_, ApiError>(server.call(&tool, arguments).await)
        })
        .await;
        match ran.and_then(|inner| inner) {
            Ok(result) => result,
            Err(refused) => {
                let refusal = Refusal {
                    status: refused.status.as_u16(),
                    detail: refused.detail,
                };
                Ok(tool_result(
                    serde_json::to_value(refusal).unwrap_or_default(),
                    true,
                ))
            }
        }
    }
}

impl ServerHandler for ServiceTools {
    fn get_info(&self) -> ServerConfig {
        server_info()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = crate::mcp::tool_list();
        tools.extend(job_tools());
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let is_job_tool = job_tools().iter().any(|t| t.name == request.name);
        let result = if is_job_tool {
            let headers = context
                .extensions
                .get::<axum::http::request::Parts>()
                .map(|parts| parts.headers.clone())
                .unwrap_or_default();
            self.job_tool(&request.name, arguments, headers).await
        } else {
            self.engine_tool(&request.name, arguments).await
        };
        result.map(Into::into)
    }
}
