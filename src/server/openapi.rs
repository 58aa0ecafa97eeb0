//! The service's OpenAPI 3.1 document (`GET /openapi.json`): every route, parameter, body,
//! response and error shape. The schemas are generated from the Rust types the handlers and
//! the parser use (the contract's Job and FeatureRecipe, [`super::api`]'s bodies) through
//! schemars; the route list below names those types, so nothing in it is a hand-written
//! schema. `tests/server.rs` checks that every route of the router is here and every route
//! here is answered.

use super::api::{CreateJob, EngineRequest, ErrorBody, Health};
use crate::contract::answer::{CompileAnswer, ValidateAnswer};
use crate::contract::job::Job;
use schemars::generate::{SchemaGenerator, SchemaSettings};
use serde_json::{Map, Value, json};

/// Where the job API lives.
pub const PREFIX: &str = "/api/automl/feature-engineering";

/// One documented route.
struct Route {
    /// The operation's name (a generated client's function name).
    id: &'static str,
    method: &'static str,
    path: &'static str,
    summary: &'static str,
    params: &'static [Param],
    body: Option<Value>,
    /// (status, description, schema) of each answer other than the common errors.
    answers: Vec<(u16, &'static str, Value)>,
    /// The error statuses this route adds to 401, 422 and 503.
    errors: &'static [(u16, &'static str)],
}

/// A path or query parameter.
struct Param {
    name: &'static str,
    location: &'static str,
    description: &'static str,
    schema: fn() -> Value,
}

const JOB_ID: Param = Param {
    name: "job_id",
    location: "path",
    description: "The job's id (a UUID; anything else is 422).",
    schema: || json!({"type": "string", "format": "uuid"}),
};
const WAIT: Param = Param {
    name: "wait",
    location: "query",
    description: "Answer with the finished job instead of as soon as it is stored.",
    schema: || json!({"type": "boolean", "default": false}),
};
const FIX: Param = Param {
    name: "fix",
    location: "query",
    description: "Apply the recipe's machine-applicable fixes first, recorded in its notes.",
    schema: || json!({"type": "boolean", "default": false}),
};
const LIMIT: Param = Param {
    name: "limit",
    location: "query",
    description: "Jobs per page (the service's default when absent).",
    schema: || json!({"type": "integer", "minimum": 1}),
};
const CURSOR: Param = Param {
    name: "cursor",
    location: "query",
    description: "The `x-next-cursor` of the previous page.",
    schema: || json!({"type": "string"}),
};

const MISSING: (u16, &str) = (404, "No such job, or one the caller may not see.");
const CONFLICT: (u16, &str) = (409, "The job is not in a state the action needs.");

/// Every route the service answers, with the types of its bodies: one table-like list of
/// routes, kept whole so the document reads in one place.
fn routes(generator: &mut SchemaGenerator) -> Vec<Route> {
    let mut schema = |f: fn(&mut SchemaGenerator) -> schemars::Schema| f(generator).to_value();
    let job = schema(|g| g.subschema_for::<Job>());
    let jobs = schema(|g| g.subschema_for::<Vec<Job>>());
    let create = schema(|g| g.subschema_for::<CreateJob>());
    let engine = schema(|g| g.subschema_for::<EngineRequest>());
    let compiled = schema(|g| g.subschema_for::<CompileAnswer>());
    let validated = schema(|g| g.subschema_for::<ValidateAnswer>());
    let health = schema(|g| g.subschema_for::<Health>());
    vec![
        Route {
            id: "create_job",
            method: "post",
            path: "/jobs",
            summary: "Create a job; the crew's recipe (or design request) is compiled and validated.",
            params: &[WAIT],
            body: Some(create),
            answers: vec![(
                201,
                "The job as stored (`running`), or finished with `?wait=true`.",
                job.clone(),
            )],
            errors: &[],
        },
        Route {
            id: "list_jobs",
            method: "get",
            path: "/jobs",
            summary: "The caller's jobs, newest first, a page at a time.",
            params: &[LIMIT, CURSOR],
            body: None,
            answers: vec![(
                200,
                "A page of jobs; `x-next-cursor` and `link` name the next.",
                jobs,
            )],
            errors: &[],
        },
        Route {
            id: "get_job",
            method: "get",
            path: "/jobs/{job_id}",
            summary: "Read one job.",
            params: &[JOB_ID],
            body: None,
            answers: vec![(200, "The job.", job.clone())],
            errors: &[MISSING],
        },
        Route {
            id: "retry_job",
            method: "post",
            path: "/jobs/{job_id}/retry",
            summary: "Re-run the crew on a failed job.",
            params: &[JOB_ID, WAIT, FIX],
            body: None,
            answers: vec![(
                200,
                "The job, `running`, or finished with `?wait=true` (`pending_approval` or `failed` again).",
                job.clone(),
            )],
            errors: &[MISSING, CONFLICT],
        },
        Route {
            id: "approve_job",
            method: "post",
            path: "/jobs/{job_id}/approve",
            summary: "Approve a `pending_approval` job, bound to the data it was validated on.",
            params: &[JOB_ID],
            body: None,
            answers: vec![(200, "The approved job.", job.clone())],
            errors: &[MISSING, CONFLICT],
        },
        Route {
            id: "materialize_job",
            method: "post",
            path: "/jobs/{job_id}/materialize",
            summary: "Write the approved job's full table.",
            params: &[JOB_ID, WAIT],
            body: None,
            answers: vec![(
                200,
                "The job, `materializing`, or `complete` (or `failed`) with `?wait=true`.",
                job,
            )],
            errors: &[MISSING, CONFLICT],
        },
        Route {
            id: "compile",
            method: "post",
            path: "/compile",
            summary: "Compile a recipe (stateless).",
            params: &[],
            body: Some(engine.clone()),
            answers: vec![
                (200, "The recipe compiled.", compiled.clone()),
                (
                    422,
                    "The recipe has errors: the same shape, `sql` null.",
                    compiled,
                ),
            ],
            errors: &[],
        },
        Route {
            id: "validate",
            method: "post",
            path: "/validate",
            summary: "Compile a recipe and validate it on a sample (stateless).",
            params: &[],
            body: Some(engine),
            answers: vec![
                (
                    200,
                    "Validated, or failed on the data (an `E05x` among the diagnostics).",
                    validated.clone(),
                ),
                (
                    422,
                    "The recipe has errors: the same shape, `sql` null.",
                    validated,
                ),
            ],
            errors: &[],
        },
        Route {
            id: "mcp",
            method: "post",
            path: "/mcp",
            summary: "The MCP tools (the catalog and recipe tools, and job tools acting as the token's subject) over MCP's streamable HTTP transport: one JSON-RPC message per request, answered statelessly as JSON.",
            params: &[],
            body: Some(
                json!({"type": "object", "description": "A JSON-RPC 2.0 message of the Model Context Protocol (`initialize`, `tools/list`, `tools/call`, …)."}),
            ),
            answers: vec![
                (
                    200,
                    "The JSON-RPC response (a tool's result, or a JSON-RPC error naming a protocol problem).",
                    json!({"type": "object"}),
                ),
                (202, "A notification, accepted.", json!({})),
            ],
            errors: &[
                (400, "Not a JSON-RPC message MCP accepts."),
                (
                    406,
                    "The request does not accept `application/json` and `text/event-stream`.",
                ),
                (413, "The message is larger than the service's body limit."),
                (415, "The body is not `application/json`."),
            ],
        },
        Route {
            id: "health",
            method: "get",
            path: "/healthz",
            summary: "Liveness: answers while jobs run.",
            params: &[],
            body: None,
            answers: vec![(200, "The service is up.", health)],
            errors: &[],
        },
    ]
}

/// The full path of a documented route (`/healthz`, `/mcp` and `/openapi.json` are outside
/// the API's prefix).
fn full_path(path: &str) -> String {
    if path == "/healthz" || path == "/mcp" {
        path.to_string()
    } else {
        format!("{PREFIX}{path}")
    }
}

/// (method, full path) of every documented route, for the test that holds the document to
/// the router.
pub fn documented_routes() -> Vec<(String, String)> {
    let mut generator = settings().into_generator();
    routes(&mut generator)
        .into_iter()
        .map(|r| (r.method.to_uppercase(), full_path(r.path)))
        .collect()
}

fn settings() -> SchemaSettings {
    SchemaSettings::draft2020_12().with(|s| {
        s.definitions_path = "#/components/schemas/".into();
    })
}

/// The OpenAPI 3.1 document of the service.
pub fn document() -> Value {
    let mut generator = settings().into_generator();
    let error = generator.subschema_for::<ErrorBody>().to_value();
    let mut paths = Map::new();
    for route in routes(&mut generator) {
        let mut responses = Map::new();
        for (status, description, schema) in &route.answers {
            responses.insert(
                status.to_string(),
                json!({"description": description, "content": {"application/json": {"schema": schema}}}),
            );
        }
        let public = route.path == "/healthz";
        let mut errors: Vec<(u16, &str)> = route.errors.to_vec();
        if !public {
            errors.push((401, "No valid bearer token."));
            errors.push((
                503,
                "The service is busy (with `Retry-After`) or its catalog cannot be read.",
            ));
            if !responses.contains_key("422") {
                errors.push((
                    422,
                    "A malformed body, parameter or job id; `detail` names the field.",
                ));
            }
        }
        for (status, description) in errors {
            responses.insert(
                status.to_string(),
                json!({"description": description, "content": {"application/json": {"schema": error}}}),
            );
        }
        let parameters: Vec<Value> = route
            .params
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "in": p.location,
                    "required": p.location == "path",
                    "description": p.description,
                    "schema": (p.schema)(),
                })
            })
            .collect();
        let mut operation = json!({
            "operationId": route.id,
            "summary": route.summary,
            "parameters": parameters,
            "responses": responses,
        });
        if let Some(body) = &route.body {
            operation["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": body}}});
        }
        if public {
            operation["security"] = json!([]);
        }
        let entry = paths
            .entry(full_path(route.path))
            .or_insert_with(|| json!({}));
        entry[route.method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "featurecraft feature-engineering jobs",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The contract's job API (create, read, list, retry, approve, materialize) and the stateless compile and validate routes. Every error body is `{\"detail\": \"…\"}`.",
        },
        "paths": paths,
        "components": {
            "schemas": generator.take_definitions(true),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
    })
}
