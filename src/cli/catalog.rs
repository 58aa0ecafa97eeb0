//! `featurecraft schema`, `describe-catalog` and `generate`: the JSON Schemas, a catalog's
//! tables, the retail data.

use super::*;

pub(super) fn schema_command(args: &SchemaArgs) -> ExitCode {
    use featurecraft::contract::schema;
    let schema = match args.kind {
        SchemaKind::Recipe => schema::recipe_schema(),
        SchemaKind::Job => schema::job_schema(),
        SchemaKind::DesignRequest => schema::design_request_schema(),
    };
    match serde_json::to_string_pretty(&schema) {
        Ok(text) => {
            out!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e.to_string()),
    }
}

pub(super) async fn describe_command(args: &DescribeArgs) -> ExitCode {
    let loaded = Catalog::load(&args.catalog).await;
    let described = match loaded.and_then(|c| {
        if args.sources {
            Ok(c.sources_json())
        } else {
            c.to_json()
        }
    }) {
        Ok(json) => json,
        Err(e) => return usage_error(&e.to_string()),
    };
    match serde_json::to_string_pretty(&described) {
        Ok(text) => {
            out!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e.to_string()),
    }
}

pub(super) fn generate_command(args: &GenerateArgs) -> ExitCode {
    let options = featurecraft::testkit::GenerateOptions {
        customers: args.customers,
        event_files: args.event_files,
        progress: std::io::stderr().is_terminal(),
    };
    match featurecraft::testkit::generate_retail(&args.out, &options) {
        Ok(()) => {
            eprintln!(
                "wrote the retail catalog for {} customers to {}",
                args.customers,
                args.out.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e),
    }
}
