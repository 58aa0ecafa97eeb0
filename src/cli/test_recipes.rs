//! `featurecraft test`: the authors' snapshots and unit tests of recipe files.

use super::*;

pub(super) async fn test_command(args: &TestArgs) -> ExitCode {
    use featurecraft::author::{TestOptions, recipes_under, test_recipe};
    let run = match job_run_options(
        args.sample.sample_size,
        DEFAULT_LEAK_THRESHOLD,
        &args.memory.memory_limit,
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
