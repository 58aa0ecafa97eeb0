//! `featurecraft validate`: the recipe compiled and validated on a sample, the summary
//! printed, the sampled rows shown or written when asked.

use super::*;
use arrow::array::RecordBatch;
use featurecraft::contract::answer::ValidateAnswer;

pub(super) async fn validate_command(args: ValidateArgs) -> ExitCode {
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
    let (code, rows) = run_validate(&args.recipe, &args.catalog, &options, args.format).await;
    if code != ExitCode::SUCCESS || (args.show.is_none() && args.sample_out.is_none()) {
        return code;
    }
    let rows = match rows {
        Some(rows) => rows,
        None => match sample_again(&args.recipe, &args.catalog, &options).await {
            Ok(rows) => rows,
            Err(code) => return code,
        },
    };
    sampled_rows(&rows, args.show, args.sample_out.as_deref())
}

/// The sampled query run again, for a validation that ran its features in several queries
/// and so holds no single table of the sampled rows.
async fn sample_again(
    recipe: &Path,
    catalog: &Path,
    options: &RunOptions,
) -> Result<RecordBatch, ExitCode> {
    let (plan, catalog) = datafusion_plan(recipe, catalog, false).await?;
    match featurecraft::run::validate::sample(&plan, &catalog, &options.validate).await {
        Ok(sample) => Ok(sample.rows),
        Err(d) => {
            eprint!("{}", flags(&d.render(None)));
            Err(ExitCode::from(1))
        }
    }
}

/// The validation sample's rows: the first `show` printed as a table, all of them written
/// to `out` as Parquet (to a temporary name first, so a failure leaves no partial file).
fn sampled_rows(rows: &RecordBatch, show: Option<usize>, out: Option<&Path>) -> ExitCode {
    if let Some(n) = show {
        let shown = rows.slice(0, n.min(rows.num_rows()));
        match arrow::util::pretty::pretty_format_batches(&[shown]) {
            Ok(table) => {
                out!(
                    "first {} of {} sampled rows:",
                    n.min(rows.num_rows()),
                    rows.num_rows()
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
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, rows.schema(), None)
            .map_err(|e| e.to_string())?;
        writer.write(rows).map_err(|e| e.to_string())?;
        writer.close().map(|_| ()).map_err(|e| e.to_string())
    });
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => usage_error(&e),
    }
}

/// Validates and prints the summary; the exit code, and the sampled rows when the
/// validation's one query gave them.
async fn run_validate(
    recipe: &Path,
    catalog: &Path,
    options: &RunOptions,
    format: Format,
) -> (ExitCode, Option<RecordBatch>) {
    let (text, catalog) = match recipe_and_catalog(recipe, catalog).await {
        Ok((text, loaded)) => match with_data(loaded, catalog, "validate") {
            Ok(catalog) => (text, catalog),
            Err(code) => return (code, None),
        },
        Err(code) => return (code, None),
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
            rows: None,
        },
    };
    let failed = featurecraft::diagnostic::fail(&run.diagnostics, options.strict);
    if failed {
        explain_strict(options.strict, &run.diagnostics);
    }
    match format {
        Format::Json => {
            let out = ValidateAnswer {
                sql: run.sql.clone(),
                validation: run.validation.clone(),
                diagnostics: run.diagnostics.clone(),
            };
            match serde_json::to_string_pretty(&out) {
                Ok(text) => out!("{text}"),
                Err(e) => return (usage_error(&e.to_string()), None),
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
        (ExitCode::from(1), None)
    } else {
        (ExitCode::SUCCESS, run.rows)
    }
}
