//! `featurecraft design`: the built-in crew's recipe for a spine and a label.

use super::*;

pub(super) async fn design_command(args: DesignArgs) -> ExitCode {
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
pub(super) fn read_design_request(
    path: &Path,
) -> Result<featurecraft::design::DesignRequest, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--request {}: cannot read it: {e}", path.display()))?;
    serde_json::from_str(&text)
        .map_err(|e| format!("--request {}: not a design request: {e}", path.display()))
}

/// The point-in-time part of a design request from `--cutoff-column`, `--time-column`,
/// `--static-table` and `--include-cutoff`.
pub(super) fn design_point_in_time(
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

pub(super) async fn run_design(
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
        let written = serde_json::to_string(&design.report())
            .map_err(std::io::Error::other)
            .and_then(|report| std::fs::write(path, report));
        if let Err(e) = written {
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
