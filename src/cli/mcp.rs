//! `featurecraft mcp`: the catalog and recipe tools served to an agent over stdio. Stdout
//! is the protocol's: nothing else is printed there. A JSON catalog (schemas only) serves
//! the tools that need no data; validating and designing then say why they cannot.

use super::*;
use args::McpArgs;
use featurecraft::mcp::McpServer;
use featurecraft::mcp::tools::ToolContext;

pub(super) async fn mcp_command(args: McpArgs) -> ExitCode {
    let options = match run_options(
        Dialect::DataFusion,
        args.sample.sample_size,
        args.nulls.null_threshold,
        args.leak.leak_threshold,
        &args.memory.memory_limit,
        args.strict,
    ) {
        Ok(o) => {
            let limit = TimeLimit {
                timeout: Some(args.timeout),
            };
            on_engine(o, &args.engine, Some(&limit))
        }
        Err(e) => return usage_error(&e),
    };
    let catalog = match Catalog::load(&args.catalog).await {
        Ok(catalog) => catalog,
        Err(e) => return usage_error(&e.to_string()),
    };
    let context = ToolContext {
        catalog: std::sync::Arc::new(catalog),
        run: options,
    };
    match McpServer::new(context).serve_stdio().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("featurecraft mcp: {e}");
            ExitCode::from(1)
        }
    }
}
