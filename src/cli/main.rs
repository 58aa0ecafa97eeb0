//! The `featurecraft` command line: a thin layer over the library's stages.
//!
//! Exit status: 0 success (warnings allowed unless `--strict`), 1 the recipe has errors,
//! 2 a usage or I/O problem (missing file, unreadable catalog).

mod args;
mod output;
mod report;

use args::ClusterCommand;
use args::{
    Cli, Command, CompileArgs, DescribeArgs, DesignArgs, DiffArgs, EngineChoice, FixArgs, Format,
    GenerateArgs, SchemaArgs, SchemaKind, ServeArgs, TestArgs, TimeLimit, TokenArgs, ValidateArgs,
};
use clap::Parser;
#[cfg(feature = "cluster")]
use featurecraft::run::leakage::DEFAULT_LEAK_THRESHOLD;
use featurecraft::run::sample::DEFAULT_NULL_THRESHOLD;
use featurecraft::run::{RecipeRun, RunOptions, run_recipe};
use featurecraft::{Catalog, CompileOptions, Compiled, Dialect, compile};
use report::{Progress, explain_strict, flags, print_diagnostics, usage_error};
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

/// `println!` that ignores a closed stdout (`featurecraft compile … | head`), which would
/// otherwise panic.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Runs allocate and free large buffers (Parquet column chunks, aggregation tables) over
/// and over; by default glibc maps each from the kernel and unmaps it when freed, so every
/// run pays those page faults again. Keeping buffers up to 64 MiB in the heap, and up to
/// 256 MiB of freed memory with the process, cut validate at 1M customers from 67 500 page
/// faults and 819 ms of CPU to 13 000 and 673 ms (materialize: 188 000 and 4.56 s to
/// 165 000 and 4.37 s), with the same peak RSS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_large_buffers() {
    // SAFETY: mallopt only sets allocator parameters; it runs before any other thread.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
    }
}

fn main() -> ExitCode {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    keep_large_buffers();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return usage_error(&format!("cannot start the runtime: {e}")),
    };
    match cli.command {
        Command::Compile(args) => runtime.block_on(run_compile(&args)),
        Command::Validate(args) => runtime.block_on(validate_command(args)),
        Command::Retry(args) => {
            let options = match job_run_options(
                args.sample.sample_size,
                args.leak.leak_threshold,
                &args.memory.memory_limit,
            ) {
                Ok(o) => on_engine(o, &args.engine, Some(&args.time_limit)),
                Err(e) => return usage_error(&e),
            };
            runtime.block_on(run_retry(&args.job, &args.catalog, &options, args.fix))
        }
        Command::Serve(args) => runtime.block_on(serve_command(args)),
        Command::Token(args) => token_command(&args),
        Command::Design(args) => runtime.block_on(design_command(args)),
        Command::Materialize(args) => {
            let options = match run_options(
                Dialect::DataFusion,
                1,
                DEFAULT_NULL_THRESHOLD,
                DEFAULT_LEAK_THRESHOLD,
                &args.memory.memory_limit,
                false,
            ) {
                Ok(o) => on_engine(o, &args.engine, Some(&args.time_limit)),
                Err(e) => return usage_error(&e),
            };
            runtime.block_on(run_materialize(
                &args.recipe,
                &args.catalog,
                &args.warehouse,
                args.domain.as_deref(),
                &options,
            ))
        }
        Command::Schema(args) => schema_command(&args),
        Command::Fix(args) => runtime.block_on(fix_command(&args)),
        Command::Diff(args) => runtime.block_on(diff_command(&args)),
        Command::Test(args) => runtime.block_on(test_command(&args)),
        Command::DescribeCatalog(args) => runtime.block_on(describe_command(&args)),
        Command::Generate(args) => generate_command(&args),
        #[cfg(feature = "cluster")]
        Command::Cluster(command) => runtime.block_on(cluster_command(command)),
    }
}

async fn validate_command(args: ValidateArgs) -> ExitCode {
    let options = match run_options(
        args.dialect,
        args.sample.sample_size,
        args.nulls.null_threshold,
        args.leak.leak_threshold,
        &args.memory.memory_limit,
        args.strict,
    ) {
        Ok(o) => on_engine(o, &args.engine, Some(&args.time_limit)),
        Err(e) => return usage_error(&e),
    };
    let code = run_validate(&args.recipe, &args.catalog, &options, args.format).await;
    if code != ExitCode::SUCCESS || (args.show.is_none() && args.sample_out.is_none()) {
        return code;
    }
    sampled_rows(
        &args.recipe,
        &args.catalog,
        &options,
        args.show,
        args.sample_out.as_deref(),
    )
    .await
}

async fn serve_command(args: ServeArgs) -> ExitCode {
    use featurecraft::server::auth::Verifier;
    let run = match job_run_options(
        args.sample.sample_size,
        args.leak.leak_threshold,
        &args.memory.memory_limit,
    ) {
        Ok(o) => on_engine(o, &args.engine, None),
        Err(e) => return usage_error(&e),
    };
    let jwt = match (&args.jwks, &args.jwks_url, jwt_secret()) {
        (Some(path), _, _) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => return usage_error(&format!("cannot read {}: {e}", path.display())),
            };
            match Verifier::rs256_from(&text) {
                Ok(v) => v,
                Err(e) => return usage_error(&format!("{}: {e}", path.display())),
            }
        }
        (None, Some(url), _) => {
            // Fetching blocks; the runtime's threads are not for that.
            let url = url.clone();
            let fetched = tokio::task::spawn_blocking(move || {
                Verifier::rs256_from_url(&url, std::time::Duration::from_secs(60))
            })
            .await;
            match fetched {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return usage_error(&e),
                Err(e) => return usage_error(&e.to_string()),
            }
        }
        (None, None, Some(secret)) => match Verifier::hs256(&secret) {
            Ok(v) => v,
            Err(e) => return usage_error(&format!("FEATURECRAFT_JWT_SECRET: {e}")),
        },
        (None, None, None) => {
            return usage_error(
                "set FEATURECRAFT_JWT_SECRET (HS256, at least 32 bytes), or give --jwks FILE or --jwks-url URL (RS256), to verify tokens",
            );
        }
    }
    .with_issuer(args.jwt_issuer)
    .with_audience(args.jwt_audience);
    let mut limits = featurecraft::server::Limits::default();
    match args.max_jobs {
        Some(0) => return usage_error("--max-jobs must be at least 1"),
        Some(n) => limits.max_jobs = n,
        None => {}
    }
    for (flag, path, verb) in [
        ("--catalog", &args.catalog, "reads a catalog from"),
        ("--warehouse", &args.warehouse, "writes tables into"),
    ] {
        if let Some(refusal) = featurecraft::catalog::object_store_refusal(path, verb) {
            return usage_error(&format!("{flag} {}: {refusal}", path.display()));
        }
    }
    if !args.catalog.is_dir() {
        return usage_error(&format!(
            "--catalog {}: the service runs queries on the catalog's data: give a catalog directory (Parquet files and SQL views), not a JSON description",
            args.catalog.display()
        ));
    }
    let config = featurecraft::server::ServiceConfig {
        catalog: args.catalog,
        warehouse: args.warehouse,
        jwt,
        run,
        job_timeout: std::time::Duration::from_secs(args.job_timeout),
        limits,
    };
    serve(config, &args.db, &args.addr).await
}

fn token_command(args: &TokenArgs) -> ExitCode {
    let Some(secret) = jwt_secret() else {
        return usage_error("set FEATURECRAFT_JWT_SECRET to the secret that signs tokens (HS256)");
    };
    let seconds = match parse_duration(&args.ttl) {
        Ok(s) => s,
        Err(e) => return usage_error(&e),
    };
    match featurecraft::server::auth::sign(&secret, &args.sub, args.scope.as_deref(), seconds) {
        Ok(token) => {
            out!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e),
    }
}

async fn design_command(args: DesignArgs) -> ExitCode {
    let run = match run_options(
        Dialect::DataFusion,
        args.sample.sample_size,
        args.nulls.null_threshold,
        args.leak.leak_threshold,
        &args.memory.memory_limit,
        false,
    ) {
        Ok(o) => on_engine(o, &args.engine, Some(&args.time_limit)),
        Err(e) => return usage_error(&e),
    };
    let point_in_time = match design_point_in_time(&args) {
        Ok(p) => p,
        Err(e) => return usage_error(&e),
    };
    let mut relationships = Vec::new();
    for pair in &args.relationships {
        match pair.split_once('=') {
            Some((child, parent))
                if featurecraft::contract::recipe::Relationship::split(child).is_some()
                    && featurecraft::contract::recipe::Relationship::split(parent).is_some() =>
            {
                relationships.push(featurecraft::contract::recipe::Relationship {
                    child: child.to_string(),
                    parent: parent.to_string(),
                })
            }
            _ => {
                return usage_error(&format!(
                    "--relationship `{pair}`: write CHILD_TABLE.COLUMN=PARENT_TABLE.KEY, e.g. --relationship order_items.order_id=orders.order_id"
                ));
            }
        }
    }
    let request = match &args.request {
        Some(path) => match read_design_request(path) {
            Ok(request) => featurecraft::design::DesignRequest {
                max_features: args.max_features.or(request.max_features),
                ..request
            },
            Err(e) => return usage_error(&e),
        },
        None => featurecraft::design::DesignRequest {
            point_in_time,
            relationships,
            windows: args.windows,
            spine: args.spine.unwrap_or_default(),
            entity_grain: args.grain,
            label: featurecraft::LabelSpec {
                name: "label".into(),
                label_type: args.label_type.into(),
                column: args.label_column,
                derivation: args.derivation,
                positive_class_value: args
                    .positive_class
                    .map(|v| serde_json::from_str(&v).unwrap_or(serde_json::Value::String(v))),
                ..Default::default()
            },
            max_features: args.max_features,
            max_depth: Some(args.max_depth),
            primitives: args.primitives,
        },
    };
    let options = featurecraft::design::DesignOptions {
        run,
        target_table: args.target_table,
        ..Default::default()
    };
    run_design(
        &args.catalog,
        &request,
        &options,
        args.format,
        args.dropped.as_deref(),
    )
    .await
}

/// A design request from a JSON file (`--request`), as the service reads its `design`.
fn read_design_request(path: &Path) -> Result<featurecraft::design::DesignRequest, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--request {}: cannot read it: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("--request {}: not a design request: {e}", path.display()))
}

/// The point-in-time part of a design request from `--cutoff-column`, `--time-column`,
/// `--static-table` and `--include-cutoff`.
fn design_point_in_time(
    args: &DesignArgs,
) -> Result<Option<featurecraft::contract::recipe::PointInTime>, String> {
    use featurecraft::contract::recipe::{PointInTime, TimeColumns};
    let Some(cutoff) = &args.cutoff_column else {
        if !args.time_columns.is_empty()
            || !args.static_tables.is_empty()
            || !args.windows.is_empty()
            || args.include_cutoff
        {
            return Err("--time-column, --static-table, --windows and --include-cutoff need --cutoff-column".into());
        }
        return Ok(None);
    };
    let mut columns: Vec<(String, Option<String>)> = Vec::new();
    for pair in &args.time_columns {
        match pair.split_once('=') {
            Some((table, column)) if !table.is_empty() && !column.is_empty() => {
                columns.push((table.to_string(), Some(column.to_string())))
            }
            _ => {
                return Err(format!(
                    "--time-column `{pair}`: write TABLE=COLUMN, e.g. --time-column events=event_ts"
                ));
            }
        }
    }
    columns.extend(args.static_tables.iter().map(|t| (t.clone(), None)));
    Ok(Some(PointInTime {
        cutoff_column: cutoff.clone(),
        time_columns: TimeColumns(columns),
        include_cutoff: args.include_cutoff.then_some(true),
        schedule: None,
    }))
}

async fn test_command(args: &TestArgs) -> ExitCode {
    use featurecraft::author::{TestOptions, recipes_under, test_recipe};
    let run = match run_options(
        Dialect::DataFusion,
        args.sample.sample_size,
        DEFAULT_NULL_THRESHOLD,
        DEFAULT_LEAK_THRESHOLD,
        &args.memory.memory_limit,
        false,
    ) {
        Ok(o) => o,
        Err(e) => return usage_error(&e),
    };
    let recipes = match recipes_under(&args.paths) {
        Ok(r) if r.is_empty() => return usage_error("no recipe (.json) under the given paths"),
        Ok(r) => r,
        Err(e) => return usage_error(&e),
    };
    // A file that cannot be read as text is a usage problem (2), as in every command.
    for recipe in &recipes {
        if let Err(e) = std::fs::read_to_string(recipe) {
            return usage_error(&format!("cannot read recipe {}: {e}", recipe.display()));
        }
    }
    let catalog = match Catalog::load(&args.catalog).await {
        Ok(c) => c,
        Err(e) => return usage_error(&e.to_string()),
    };
    let options = TestOptions {
        dialects: if args.dialect.is_empty() {
            Dialect::ALL.to_vec()
        } else {
            args.dialect.clone()
        },
        update: args.update,
        validate: run.validate,
    };
    let mut results = Vec::new();
    for recipe in &recipes {
        let found = test_recipe(recipe, &catalog, &options).await;
        if matches!(args.format, Format::Text) {
            out!("{}", recipe.display());
            for r in &found {
                out!("  {:<8} {}", r.status.as_str(), r.check);
                for line in r.detail.lines() {
                    out!("           {line}");
                }
            }
        }
        results.extend(found);
    }
    let failed = results.iter().filter(|r| r.status.fails()).count();
    let new = results
        .iter()
        .filter(|r| r.status == featurecraft::author::Status::New)
        .count();
    let passed = results.len() - failed;
    match args.format {
        Format::Text => {
            let pending = if new > 0 {
                format!(" ({new} new snapshot(s) to review)")
            } else {
                String::new()
            };
            out!("{passed} passed, {failed} failed{pending}");
        }
        Format::Json => {
            let results: Vec<serde_json::Value> = results
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "recipe": r.recipe,
                        "check": r.check,
                        "status": r.status.as_str(),
                        "detail": r.detail,
                    })
                })
                .collect();
            let report =
                serde_json::json!({"passed": passed, "failed": failed, "results": results});
            match serde_json::to_string_pretty(&report) {
                Ok(text) => out!("{text}"),
                Err(e) => return usage_error(&e.to_string()),
            }
        }
    }
    if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn diff_command(args: &DiffArgs) -> ExitCode {
    use featurecraft::author::diff::{FeatureChange, diff};
    let run = match run_options(
        Dialect::DataFusion,
        args.sample_size,
        DEFAULT_NULL_THRESHOLD,
        DEFAULT_LEAK_THRESHOLD,
        &args.memory.memory_limit,
        false,
    ) {
        Ok(o) => o,
        Err(e) => return usage_error(&e),
    };
    let (old, catalog) = match recipe_and_catalog(&args.old, &args.catalog).await {
        Ok(inputs) => inputs,
        Err(code) => return code,
    };
    let new = match std::fs::read_to_string(&args.new) {
        Ok(text) => text,
        Err(e) => return usage_error(&format!("cannot read recipe {}: {e}", args.new.display())),
    };
    let found = match diff(&old, &new, &catalog, args.dialect, &run.validate).await {
        Ok(found) => found,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let share = |equal: usize, compared: usize| {
        if compared == 0 {
            0.0
        } else {
            equal as f64 / compared as f64
        }
    };
    match args.format {
        Format::Json => {
            let features: Vec<serde_json::Value> = found
                .features
                .iter()
                .map(|c| match c {
                    FeatureChange::Added(n) => serde_json::json!({"change": "added", "name": n}),
                    FeatureChange::Removed(n) => {
                        serde_json::json!({"change": "removed", "name": n})
                    }
                    FeatureChange::Changed(n, fields) => {
                        serde_json::json!({"change": "changed", "name": n, "fields": fields})
                    }
                    FeatureChange::Renamed(from, to) => {
                        serde_json::json!({"change": "renamed", "name": to, "from": from})
                    }
                })
                .collect();
            let values = match &found.values {
                Ok(columns) => {
                    serde_json::json!({"columns": columns.iter().map(|c| serde_json::json!({
                    "column": c.column,
                    "old_column": c.old_column,
                    "compared": c.compared,
                    "equal": c.equal,
                    "equal_share": share(c.equal, c.compared),
                    "examples": c.examples.iter().map(|(key, old, new)| serde_json::json!({"key": key, "old": old, "new": new})).collect::<Vec<_>>(),
                })).collect::<Vec<_>>()})
                }
                Err(why) => serde_json::json!({"skipped": why}),
            };
            let report = serde_json::json!({
                "features": features,
                "fields": found.fields,
                "sql_diff": found.sql,
                "values": values,
            });
            match serde_json::to_string_pretty(&report) {
                Ok(text) => out!("{text}"),
                Err(e) => return usage_error(&e.to_string()),
            }
        }
        Format::Text => {
            out!("features:");
            if found.features.is_empty() {
                out!("  (no change)");
            }
            for change in &found.features {
                match change {
                    FeatureChange::Added(n) => out!("  + added    {n}"),
                    FeatureChange::Removed(n) => out!("  - removed  {n}"),
                    FeatureChange::Changed(n, fields) => {
                        out!("  ~ changed  {n} ({})", fields.join(", "))
                    }
                    FeatureChange::Renamed(from, to) => out!("  > renamed  {from} → {to}"),
                }
            }
            if !found.fields.is_empty() {
                out!("recipe fields changed: {}", found.fields.join(", "));
            }
            if found.sql.is_empty() {
                out!("SQL ({}): unchanged", args.dialect.name());
            } else {
                out!("SQL ({}):", args.dialect.name());
                out!("{}", found.sql.trim_end());
            }
            match &found.values {
                Err(why) => out!("values: {why}"),
                Ok(columns) => {
                    let rows = columns.first().map_or(0, |c| c.compared);
                    out!("values on {rows} sampled rows:");
                    for c in columns {
                        let name = if c.column == c.old_column {
                            c.column.clone()
                        } else {
                            format!("{} (was {})", c.column, c.old_column)
                        };
                        out!(
                            "  {name:<28} {:>6.1}% equal",
                            100.0 * share(c.equal, c.compared)
                        );
                        for (key, old, new) in &c.examples {
                            out!("      {key}: {old} → {new}");
                        }
                    }
                }
            }
        }
    }
    ExitCode::SUCCESS
}

async fn fix_command(args: &FixArgs) -> ExitCode {
    let (text, catalog) = match recipe_and_catalog(&args.recipe, &args.catalog).await {
        Ok(inputs) => inputs,
        Err(code) => return code,
    };
    let fixed = match featurecraft::author::fix::fix(
        &text,
        &catalog,
        &CompileOptions::for_dialect(args.dialect),
    ) {
        Ok(f) => f,
        // A recipe that is not a JSON object is the recipe's error (exit 1), as for compile.
        Err(e) => {
            eprintln!("featurecraft: {}: {e}", args.recipe.display());
            return ExitCode::from(1);
        }
    };
    for f in &fixed.fixes {
        eprintln!("fixed {f}");
    }
    for (d, why) in &fixed.left {
        eprintln!("left  {} ({why})", d.summary_line());
    }
    let json = match serde_json::to_string_pretty(&fixed.recipe) {
        Ok(json) => json + "\n",
        Err(e) => return usage_error(&e.to_string()),
    };
    if args.write {
        if !fixed.fixes.is_empty() {
            let written = output::write_replacing(&args.recipe, |mut file| {
                use std::io::Write;
                file.write_all(json.as_bytes()).map_err(|e| e.to_string())
            });
            if let Err(e) = written {
                return usage_error(&e);
            }
        }
        eprintln!(
            "{}: {} fix(es) written",
            args.recipe.display(),
            fixed.fixes.len()
        );
    } else {
        print!("{json}");
    }
    if fixed.compiles() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

fn schema_command(args: &SchemaArgs) -> ExitCode {
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

async fn describe_command(args: &DescribeArgs) -> ExitCode {
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

fn generate_command(args: &GenerateArgs) -> ExitCode {
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

/// The recipe's text and the loaded catalog, or the exit code of a usage error naming what
/// could not be read.
async fn recipe_and_catalog(recipe: &Path, catalog: &Path) -> Result<(String, Catalog), ExitCode> {
    let text = std::fs::read_to_string(recipe)
        .map_err(|e| usage_error(&format!("cannot read recipe {}: {e}", recipe.display())))?;
    let catalog = Catalog::load(catalog)
        .await
        .map_err(|e| usage_error(&e.to_string()))?;
    Ok((text, catalog))
}

/// A catalog with data, for the commands that run queries: a JSON catalog (schemas only)
/// is a usage error that says what they need.
fn with_data(catalog: Catalog, path: &Path, command: &str) -> Result<Catalog, ExitCode> {
    if catalog.root().is_some() {
        return Ok(catalog);
    }
    Err(usage_error(&format!(
        "{} is a JSON catalog: it describes schemas and holds no data, and {command} runs the query on the data; give the catalog directory (Parquet files and SQL views) instead, e.g. --catalog fixtures/retail",
        path.display()
    )))
}

/// The recipe compiled for DataFusion (the engine that runs it here) and the catalog, or
/// exit code 1 when it has errors (printed when `show` is set).
async fn datafusion_plan(
    recipe: &Path,
    catalog: &Path,
    show: bool,
) -> Result<(featurecraft::Plan, Catalog), ExitCode> {
    let (text, loaded) = recipe_and_catalog(recipe, catalog).await?;
    let catalog = with_data(loaded, catalog, "this command")?;
    let compiled = compile(
        &text,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    if show {
        print_diagnostics(&compiled, recipe);
    }
    match compiled.plan {
        Some(plan) if !compiled.diagnostics.iter().any(|d| d.is_error()) => Ok((plan, catalog)),
        _ => Err(ExitCode::from(1)),
    }
}

async fn run_compile(args: &CompileArgs) -> ExitCode {
    let (recipe, catalog, dialect, format, strict) = (
        args.recipe.as_path(),
        args.catalog.as_path(),
        args.dialect,
        args.format,
        args.strict,
    );
    let (text, catalog) = match recipe_and_catalog(recipe, catalog).await {
        Ok(inputs) => inputs,
        Err(code) => return code,
    };
    let compiled = compile(
        &text,
        &catalog,
        &CompileOptions {
            strict,
            ..CompileOptions::for_dialect(dialect)
        },
    );
    let failed = featurecraft::diagnostic::fail(&compiled.diagnostics, strict);
    if failed {
        explain_strict(strict, &compiled.diagnostics);
    }
    match format {
        Format::Json => {
            let sql = if failed {
                None
            } else {
                compiled.sql.as_deref()
            };
            // Compiling reads the printed SQL back in the dialect's own grammar and withholds
            // it (E042) unless that gives exactly the analyzed statement: printed SQL has
            // passed that check, which stands in for execution where no engine runs here.
            let reparsed = sql.map(|_| serde_json::json!({"ok": true}));
            let out = serde_json::json!({
                "dialect": dialect.name(),
                "sql": sql,
                "reparsed": reparsed,
                "diagnostics": compiled.diagnostics,
            });
            match serde_json::to_string_pretty(&out) {
                Ok(text) => out!("{text}"),
                Err(e) => return usage_error(&e.to_string()),
            }
        }
        Format::Text => {
            print_diagnostics(&compiled, recipe);
            if !failed && let Some(sql) = &compiled.sql {
                out!("{sql};");
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn run_design(
    catalog: &Path,
    request: &featurecraft::design::DesignRequest,
    options: &featurecraft::design::DesignOptions,
    format: Format,
    dropped_file: Option<&Path>,
) -> ExitCode {
    let catalog = match Catalog::load(catalog).await {
        Ok(c) => match with_data(c, catalog, "design") {
            Ok(c) => c,
            Err(code) => return code,
        },
        Err(e) => return usage_error(&e.to_string()),
    };
    let progress = Progress::start("designing");
    let result = featurecraft::design::design(request, &catalog, options).await;
    progress.stop();
    let design = match result {
        Ok(d) => d,
        Err(diagnostics) => {
            for d in &diagnostics {
                eprint!("{}", flags(&d.render(None)));
            }
            return ExitCode::from(1);
        }
    };
    if let Some(path) = dropped_file {
        let dropped: Vec<serde_json::Value> = design
            .dropped
            .iter()
            .map(|(name, reason)| serde_json::json!({"name": name, "reason": reason}))
            .collect();
        let report = serde_json::json!({"considered": design.considered, "dropped": dropped});
        if let Err(e) = std::fs::write(path, report.to_string()) {
            return usage_error(&format!("cannot write {}: {e}", path.display()));
        }
    }
    let text = match serde_json::to_string_pretty(&design.recipe) {
        Ok(t) => t,
        Err(e) => return usage_error(&e.to_string()),
    };
    match format {
        Format::Json => out!("{text}"),
        Format::Text => {
            out!("{text}");
            eprintln!(
                "designed {} features ({} considered, {} dropped)",
                design.recipe.features.len(),
                design.considered,
                design.dropped.len()
            );
            for (name, why) in &design.dropped {
                eprintln!("  dropped {name}: {why}");
            }
            if let Some(summary) = &design.run.validation {
                eprintln!("estimated rows: {}", summary.estimated_row_count);
            }
        }
    }
    if design.run.has_errors() {
        if let Some(reason) = design.run.error_paragraph() {
            eprintln!("featurecraft: {reason}");
        }
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn run_materialize(
    recipe: &Path,
    catalog: &Path,
    warehouse: &Path,
    domain: Option<&str>,
    options: &RunOptions,
) -> ExitCode {
    let (plan, catalog) = match datafusion_plan(recipe, catalog, true).await {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let plan = &plan;
    let table = plan.target_table.last().cloned().unwrap_or_default();
    // `retail.churn` lands in WAREHOUSE/retail/churn/, as a job with domain `retail` would.
    let domain = domain
        .map(str::to_string)
        .unwrap_or_else(|| match plan.target_table.as_slice() {
            [.., domain, _] => domain.clone(),
            _ => "default".to_string(),
        });
    let domain = domain.as_str();
    let progress = Progress::start("materializing");
    let result = featurecraft::run::materialize::materialize(
        plan,
        &catalog,
        warehouse,
        domain,
        &table,
        &options.validate,
    )
    .await;
    progress.stop();
    match result {
        Ok(done) => {
            out!(
                "{}",
                serde_json::json!({"path": done.path, "rows": done.rows})
            );
            ExitCode::SUCCESS
        }
        Err(d) => {
            eprint!("{}", flags(&d.render(None)));
            ExitCode::from(1)
        }
    }
}

fn jwt_secret() -> Option<Vec<u8>> {
    std::env::var("FEATURECRAFT_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .map(String::into_bytes)
}

/// Parses `30s`, `15m`, `1h`, `7d` (or plain seconds).
fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 30m, 1h or 7d)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}` (use s, m, h or d)"
            ));
        }
    };
    // A token lives at most ten years: beyond, `exp` would overflow or mean nothing.
    const LONGEST: i64 = 10 * 366 * 86_400;
    match n.checked_mul(scale) {
        Some(seconds) if (1..=LONGEST).contains(&seconds) => Ok(seconds),
        _ => Err(format!(
            "`{text}` is not a usable lifetime: from 1s to 3660d (ten years)"
        )),
    }
}

async fn serve(config: featurecraft::server::ServiceConfig, db: &Path, addr: &str) -> ExitCode {
    init_json_logs();
    let header_timeout = config.limits.header_timeout;
    let (router, handle) = match featurecraft::server::service(config, db) {
        Ok(s) => s,
        Err(e) => return usage_error(&e),
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => return usage_error(&format!("cannot listen on {addr}: {e}")),
    };
    let bound = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    tracing::info!(addr = %bound, pid = std::process::id(), "serving");
    let shutdown = async {
        stop_signal().await;
        tracing::info!("shutting down: finishing running jobs");
    };
    featurecraft::server::listen::serve(listener, router, header_timeout, shutdown).await;
    handle.drain().await;
    ExitCode::SUCCESS
}

/// The options with their queries running where `--engine` says, within `--timeout`.
fn on_engine(
    mut options: RunOptions,
    choice: &EngineChoice,
    limit: Option<&TimeLimit>,
) -> RunOptions {
    options.validate.engine = choice.engine.clone();
    options.validate.time_limit = limit
        .and_then(|l| l.timeout)
        .map(std::time::Duration::from_secs)
        .or_else(|| choice.engine.default_time_limit());
    options
}

/// Runs a process of a Ballista cluster until it is told to stop, logging as `serve` does.
#[cfg(feature = "cluster")]
async fn cluster_command(command: ClusterCommand) -> ExitCode {
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

/// JSON log lines on stderr, for `serve` and the cluster's processes.
fn init_json_logs() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .try_init();
}

/// Completes on SIGTERM or Ctrl-C.
async fn stop_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}

/// How a job runs (`retry`, `serve`): DataFusion, the default null threshold, not strict.
fn job_run_options(
    sample_size: usize,
    leak_threshold: f64,
    memory_limit: &str,
) -> Result<RunOptions, String> {
    run_options(
        Dialect::DataFusion,
        sample_size,
        DEFAULT_NULL_THRESHOLD,
        leak_threshold,
        memory_limit,
        false,
    )
}

/// The run options of the flags (checked by the library; `on_engine` adds the engine and
/// the time limit, which clap has already checked).
fn run_options(
    dialect: Dialect,
    sample_size: usize,
    null_threshold: f64,
    leak_threshold: f64,
    memory_limit: &str,
    strict: bool,
) -> Result<RunOptions, String> {
    featurecraft::run::RunSettings {
        dialect,
        sample_size,
        null_threshold,
        leak_threshold,
        memory_limit,
        strict,
        engine: featurecraft::run::engine::Engine::Local,
        time_limit: None,
    }
    .check()
}

/// Runs the sampled query again and writes its rows to `out` (Parquet).
/// The validation sample's rows: the first `show` printed as a table, all of them written
/// to `out` as Parquet (to a temporary name first, so a failure leaves no partial file).
async fn sampled_rows(
    recipe: &Path,
    catalog: &Path,
    options: &RunOptions,
    show: Option<usize>,
    out: Option<&Path>,
) -> ExitCode {
    let (plan, catalog) = match datafusion_plan(recipe, catalog, false).await {
        Ok(compiled) => compiled,
        Err(code) => return code,
    };
    let sample = match featurecraft::run::validate::sample(&plan, &catalog, &options.validate).await
    {
        Ok(s) => s,
        Err(d) => {
            eprint!("{}", flags(&d.render(None)));
            return ExitCode::from(1);
        }
    };
    if let Some(n) = show {
        let shown = sample.rows.slice(0, n.min(sample.rows.num_rows()));
        match arrow::util::pretty::pretty_format_batches(&[shown]) {
            Ok(table) => {
                out!(
                    "first {} of {} sampled rows:",
                    n.min(sample.rows.num_rows()),
                    sample.rows.num_rows()
                );
                out!("{table}");
            }
            Err(e) => return usage_error(&format!("cannot show the rows: {e}")),
        }
    }
    let Some(out) = out else {
        return ExitCode::SUCCESS;
    };
    let written = output::write_replacing(out, |file| {
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, sample.rows.schema(), None)
            .map_err(|e| e.to_string())?;
        writer.write(&sample.rows).map_err(|e| e.to_string())?;
        writer.close().map(|_| ()).map_err(|e| e.to_string())
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => usage_error(&e),
    }
}

async fn run_validate(
    recipe: &Path,
    catalog: &Path,
    options: &RunOptions,
    format: Format,
) -> ExitCode {
    let (text, catalog) = match recipe_and_catalog(recipe, catalog).await {
        Ok((text, loaded)) => match with_data(loaded, catalog, "validate") {
            Ok(catalog) => (text, catalog),
            Err(code) => return code,
        },
        Err(code) => return code,
    };
    let parsed = featurecraft::parse_recipe(&text);
    let run = match &parsed.recipe {
        Some(r) => {
            let progress = Progress::start("validating on a sample");
            let mut run = run_recipe(r, &catalog, options).await;
            progress.stop();
            let mut all = parsed.diagnostics.clone();
            all.append(&mut run.diagnostics);
            run.diagnostics = all;
            run
        }
        None => RecipeRun {
            sql: None,
            validation: None,
            diagnostics: parsed.diagnostics.clone(),
            leaks: Vec::new(),
        },
    };
    let failed = featurecraft::diagnostic::fail(&run.diagnostics, options.strict);
    if failed {
        explain_strict(options.strict, &run.diagnostics);
    }
    match format {
        Format::Json => {
            let out = serde_json::json!({"sql": run.sql, "validation": run.validation, "diagnostics": run.diagnostics});
            match serde_json::to_string_pretty(&out) {
                Ok(text) => out!("{text}"),
                Err(e) => return usage_error(&e.to_string()),
            }
        }
        Format::Text => {
            let compiled = Compiled {
                recipe: parsed.recipe.clone(),
                plan: None,
                sql: run.sql.clone(),
                diagnostics: run.diagnostics.clone(),
            };
            print_diagnostics(&compiled, recipe);
            if let Some(summary) = &run.validation {
                out!("estimated rows: {}", summary.estimated_row_count);
                out!("label distribution:");
                for (key, value) in &summary.label_distribution {
                    out!("  {key}: {value}");
                }
                if !summary.high_null_columns.is_empty() {
                    out!("high-null columns:");
                    for (key, value) in &summary.high_null_columns {
                        out!("  {key}: {value}");
                    }
                }
                if !summary.warnings.is_empty() {
                    out!("warnings:");
                    for w in &summary.warnings {
                        out!("  {w}");
                    }
                }
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

async fn run_retry(job: &Path, catalog: &Path, options: &RunOptions, fix: bool) -> ExitCode {
    let text = match std::fs::read_to_string(job) {
        Ok(text) => text,
        Err(e) => return usage_error(&format!("cannot read job {}: {e}", job.display())),
    };
    let job: featurecraft::Job = match serde_json::from_str(&text) {
        Ok(job) => job,
        Err(e) => return usage_error(&format!("not a job: {e}")),
    };
    let catalog = match Catalog::load(catalog).await {
        Ok(c) => match with_data(c, catalog, "retry") {
            Ok(c) => c,
            Err(code) => return code,
        },
        Err(e) => return usage_error(&e.to_string()),
    };
    let job = if fix {
        let (fixed, fixes) =
            featurecraft::author::fix::fix_job(&job, &catalog, &options.compile_options());
        for f in &fixes {
            eprintln!("fixed {f}");
        }
        fixed
    } else {
        job
    };
    let progress = Progress::start("retrying the job");
    let result = featurecraft::jobs::retry::retry(&job, &catalog, options).await;
    progress.stop();
    match result {
        Ok(next) => {
            match serde_json::to_string_pretty(&next) {
                Ok(text) => out!("{text}"),
                Err(e) => return usage_error(&e.to_string()),
            }
            if next.status == featurecraft::JobStatus::Failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => usage_error(&e.to_string()),
    }
}
