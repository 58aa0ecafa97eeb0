//! The MCP server agents use (`featurecraft mcp`): the catalog and recipe tools over the
//! Model Context Protocol, on its official Rust SDK (`rmcp`), over stdio.
//!
//! An agent designing a training table loops on a compiler: compile, read the structured
//! findings (code, path, span, did-you-mean), fix, validate, read a lean summary. The six
//! tools give it that loop, each read-only, each with an input and an output schema
//! generated from the same serde/schemars types the CLI and the service serialize:
//!
//! | tool | answers |
//! | --- | --- |
//! | `list_tables` | the tables and views, with column counts (and row counts of Parquet tables, from their footers) |
//! | `describe_table` | one table's columns and types, or `E020` with a did-you-mean |
//! | `compile_recipe` | `{dialect, sql, reparsed, diagnostics}`, as `compile --format json` |
//! | `validate_recipe` | `{sql, validation, diagnostics}`, as `validate --format json` |
//! | `design_recipe` | the built-in crew's recipe, what it dropped, and its validation |
//! | `fix_recipe` | the recipe with its machine-applicable fixes, and what is left |
//!
//! A recipe with errors is a tool result with `isError: true` whose structured content
//! carries the diagnostics and whose text block is the same JSON; a protocol problem (an
//! unknown tool, arguments that do not read as the input schema, a dialect that does not
//! exist) is a JSON-RPC error naming it. Every result fits in 10 000 bytes
//! ([`fit`]). Arguments are bounded ([`MAX_ARGUMENT_BYTES`]), a validation or a design by
//! the run's time limit.

mod fit;
pub mod tools;

use crate::run::deadline::AbortOnDrop;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::sync::Arc;
use tools::ToolContext;

pub use fit::MAX_RESULT_BYTES;

/// The most a tool call's arguments may take, in bytes of JSON: a recipe of thousands of
/// features fits many times over.
pub const MAX_ARGUMENT_BYTES: usize = 8 * 1024 * 1024;

/// The longest message the stdio transport reads; a longer line is dropped by the SDK with
/// no answer, so this is well above [`MAX_ARGUMENT_BYTES`], which answers with an error.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The featurecraft MCP server: the tools over one catalog.
#[derive(Clone)]
pub struct McpServer {
    context: Arc<ToolContext>,
}

impl McpServer {
    /// A server whose tools read `context`'s catalog with its run settings.
    pub fn new(context: ToolContext) -> McpServer {
        McpServer {
            context: Arc::new(context),
        }
    }

    /// Serves MCP over this process's stdin and stdout until the client disconnects.
    pub async fn serve_stdio(self) -> Result<(), String> {
        let transport = rmcp::transport::async_rw::AsyncRwTransport::<RoleServer, _, _>::new(
            tokio::io::stdin(),
            tokio::io::stdout(),
        )
        .with_max_line_length(MAX_MESSAGE_BYTES);
        let running = self
            .serve(transport)
            .await
            .map_err(|e| format!("the MCP session did not start: {e}"))?;
        running
            .waiting()
            .await
            .map(|_| ())
            .map_err(|e| format!("the MCP session ended with an error: {e}"))
    }

    /// Runs one tool: its answer, made to fit, or a JSON-RPC error for a protocol problem.
    pub async fn call(&self, name: &str, arguments: Value) -> Result<CallToolResult, ErrorData> {
        let size = serde_json::to_vec(&arguments).map_or(usize::MAX, |b| b.len());
        if size > MAX_ARGUMENT_BYTES {
            return Err(ErrorData::invalid_params(
                format!(
                    "the arguments of `{name}` are {:.1} MB; the limit is {} MB",
                    size as f64 / (1024.0 * 1024.0),
                    MAX_ARGUMENT_BYTES / (1024 * 1024)
                ),
                None,
            ));
        }
        // On a task of its own: the tool's future lives on the heap, not on the stack of
        // the session loop that polls the call, and is aborted if the call is dropped.
        let context = Arc::clone(&self.context);
        let tool = name.to_string();
        let mut task = AbortOnDrop(tokio::spawn(async move {
            run_tool(&context, &tool, arguments).await
        }));
        let answer = match (&mut task.0).await {
            Ok(answer) => answer?,
            Err(e) => {
                return Err(ErrorData::internal_error(
                    format!("the tool `{name}` stopped: {e}"),
                    None,
                ));
            }
        };
        let answer = answer.map_err(|why| ErrorData::invalid_params(why, None))?;
        Ok(tool_result(answer.value, answer.is_error))
    }
}

/// A tool's result: `value` cut to fit ([`fit`]) as the structured content, and the same
/// JSON as its text block; `isError` when the caller's input is what is wrong.
pub fn tool_result(value: Value, is_error: bool) -> CallToolResult {
    let value = fit::fit(value);
    let text = serde_json::to_string(&value).unwrap_or_default();
    let mut result = if is_error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    result.structured_content = Some(value);
    result
}

/// What the server says of itself when a session starts.
pub fn server_info() -> ServerConfig {
    ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
        .with_server_info(Implementation::new("featurecraft", env!("CARGO_PKG_VERSION")))
        .with_instructions(
            "featurecraft compiles a feature recipe (a training table: entity grain, label, features as SQL expressions) into one CREATE TABLE … AS SELECT, and validates it on a sample. Loop: list_tables, describe_table, compile_recipe until no error (read each diagnostic's path and suggestion, or call fix_recipe), then validate_recipe.",
        )
}

/// Runs the tool `name`: its answer, an error of its arguments (`Err` inside), or a JSON-RPC
/// error for an unknown tool.
async fn run_tool(
    context: &ToolContext,
    name: &str,
    arguments: Value,
) -> Result<Result<tools::ToolAnswer, String>, ErrorData> {
    Ok(match name {
        "list_tables" => {
            read::<tools::NoArguments>(name, arguments)?;
            tools::list_tables(context)
        }
        "describe_table" => tools::describe_table(context, read(name, arguments)?),
        "compile_recipe" => tools::compile_recipe(context, read(name, arguments)?),
        "validate_recipe" => tools::validate_recipe(context, read(name, arguments)?).await,
        "design_recipe" => tools::design_recipe(context, read(name, arguments)?).await,
        "fix_recipe" => tools::fix_recipe(context, read(name, arguments)?),
        other => {
            let names = TOOLS.iter().map(|t| t.name);
            let hint = crate::diagnostic::suggestions(other, names)
                .first()
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            return Err(ErrorData::invalid_params(
                format!("unknown tool `{other}`{hint}"),
                None,
            ));
        }
    })
}

/// A tool's arguments read as its input type: a mismatch names its path.
pub fn read<T: DeserializeOwned>(tool: &str, arguments: Value) -> Result<T, ErrorData> {
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(" at `{path}`")
        };
        ErrorData::invalid_params(
            format!(
                "the arguments of `{tool}` do not match its input schema{at}: {}",
                e.inner()
            ),
            None,
        )
    })
}

/// One tool as listed: its schemas come from its argument and answer types.
struct ToolSpec {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    input: fn() -> Value,
    output: fn() -> Value,
}

/// The JSON Schema of `T`.
pub fn schema<T: JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default()
}

/// The tools, in the order they are listed.
const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "list_tables",
        title: "List tables",
        description: "The catalog's tables and views, with their column counts (and row counts of Parquet tables). Start here.",
        input: schema::<tools::NoArguments>,
        output: schema::<tools::TableList>,
    },
    ToolSpec {
        name: "describe_table",
        title: "Describe a table",
        description: "One table's or view's columns and their types. An unknown name is an error result with a did-you-mean.",
        input: schema::<tools::DescribeTable>,
        output: schema::<tools::DescribeOutcome>,
    },
    ToolSpec {
        name: "compile_recipe",
        title: "Compile a recipe",
        description: "Checks a FeatureRecipe against the catalog and prints its CREATE TABLE … AS SELECT in a dialect. Errors come back as diagnostics (code, message, path, span, hints, suggestion) in an error result: fix them and compile again.",
        input: schema::<tools::CompileRecipe>,
        output: schema::<crate::contract::answer::CompileAnswer>,
    },
    ToolSpec {
        name: "validate_recipe",
        title: "Validate a recipe",
        description: "Compiles a FeatureRecipe and runs it on a sample of entities: the estimated row count, the label distribution, the columns mostly NULL, and warnings (leakage, fan-out, constant features).",
        input: schema::<tools::ValidateRecipe>,
        output: schema::<crate::contract::answer::ValidateAnswer>,
    },
    ToolSpec {
        name: "design_recipe",
        title: "Design a recipe",
        description: "The built-in crew's recipe for a spine, a grain and a label: features proposed from every table holding the grain (Deep Feature Synthesis in SQL), pruned by validation and the leakage screen; what it dropped and why.",
        input: schema::<crate::contract::design::DesignRequest>,
        output: schema::<tools::DesignOutcome>,
    },
    ToolSpec {
        name: "fix_recipe",
        title: "Fix a recipe",
        description: "Applies the machine-applicable fixes (misspelled tables, columns and fields) to a recipe: the fixed recipe, each change, and the findings left.",
        input: schema::<tools::FixRecipe>,
        output: schema::<tools::FixAnswer>,
    },
];

/// The listed tools: read-only, closed-world.
pub fn tool_list() -> Vec<Tool> {
    TOOLS
        .iter()
        .map(|spec| {
            tool(
                (spec.name, spec.title, spec.description),
                (spec.input)(),
                (spec.output)(),
                ToolAnnotations::with_title(spec.title)
                    .read_only(true)
                    .open_world(false),
            )
        })
        .collect()
}

/// A tool as listed: (name, title, description), its input schema, and its output schema
/// with the marks a cut answer carries.
pub fn tool(
    (name, title, description): (&'static str, &'static str, &'static str),
    input: Value,
    output: Value,
    annotations: ToolAnnotations,
) -> Tool {
    let mut output = object(output);
    output.insert("type".into(), Value::String("object".into()));
    let properties = output
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        properties.extend(fit::mark_properties());
    }
    Tool::new(name, description, object(input))
        .with_title(title)
        .with_raw_output_schema(Arc::new(output))
        .with_annotations(annotations)
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        server_info()
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tool_list()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        self.call(&request.name, arguments).await.map(Into::into)
    }
}
