//! `featurecraft validate`: the recipe compiled and validated on a sample, the summary
//! printed, the sampled rows shown or written when asked.

use super::*;
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

/// Runs the sampled query again and writes its rows to `out` (Parquet).
/// The validation sample's rows: the first `show` printed as a table, all of them written
/// to `out` as Parquet (to a temporary name first, so a failure leaves no partial file).
pub(super) async fn sampled_rows(
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

pub(super) async fn run_validate(
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
            let out = ValidateAnswer {
                sql: run.sql.clone(),
                validation: run.validation.clone(),
                diagnostics: run.diagnostics.clone(),
            };
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
