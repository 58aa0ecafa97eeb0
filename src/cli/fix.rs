//! `featurecraft fix`: the fixes a finding names one clear candidate for, applied.

use super::*;

pub(super) async fn fix_command(args: &FixArgs) -> ExitCode {
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
