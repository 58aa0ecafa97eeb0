//! `featurecraft compile`: the recipe checked against the catalog and rendered in a
//! dialect.

use super::*;

pub(super) async fn run_compile(args: &CompileArgs) -> ExitCode {
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
    let options = CompileOptions {
        strict,
        ..CompileOptions::for_dialect(dialect)
    };
    let compiled = compile(&text, &catalog, &options);
    let failed = featurecraft::diagnostic::fail(&compiled.diagnostics, strict);
    if failed {
        explain_strict(strict, &compiled.diagnostics);
    }
    match format {
        Format::Json => {
            let out = compiled.answer(&options);
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
