//! `featurecraft diff`: two recipes compared feature by feature on the same sample.

use super::*;

pub(super) async fn diff_command(args: &DiffArgs) -> ExitCode {
    use featurecraft::author::diff::{FeatureChange, diff};
    let run = match job_run_options(
        args.sample_size,
        DEFAULT_LEAK_THRESHOLD,
        &args.memory.memory_limit,
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
    match args.format {
        Format::Json => {
            let report = found.report();
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
                        out!("  {name:<28} {:>6.1}% equal", 100.0 * c.equal_share());
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
