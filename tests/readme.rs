//! What the README promises a new user: its annotated recipe compiles, its usage block
//! lists every option each subcommand's `--help` shows, and every `--help` ends with an
//! example.

mod common;

use featurecraft::{CompileOptions, compile};
use std::process::Command;

fn readme() -> String {
    std::fs::read_to_string(common::fixtures().join("../README.md")).expect("README.md")
}

#[test]
fn the_readme_recipe_compiles_and_validates_its_claims() {
    let text = readme();
    let start = text
        .find("<!-- readme-recipe -->")
        .expect("the README marks its recipe");
    let block = &text[start..];
    let open = block.find("```json\n").expect("a json block") + "```json\n".len();
    let close = open + block[open..].find("```").expect("the block ends");
    let recipe = &block[open..close];
    let compiled = compile(recipe, &common::retail_json(), &CompileOptions::default());
    assert!(
        compiled.diagnostics.is_empty(),
        "{:#?}",
        compiled.diagnostics
    );
    assert!(compiled.sql.is_some());
}

const SUBCOMMANDS: &[&str] = &[
    "test",
    "diff",
    "fix",
    "schema",
    "compile",
    "validate",
    "retry",
    "serve",
    "token",
    "design",
    "materialize",
    "describe-catalog",
    "generate",
    "mcp",
    "cluster scheduler",
    "cluster executor",
];

fn help(subcommand: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_featurecraft"))
        .args(subcommand.split(' ').chain(["--help"]))
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{subcommand} --help");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The long options a help text lists (`--catalog <CATALOG>` → `--catalog`).
fn options(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let at = line.find("--")?;
            (at <= 4).then(|| {
                line[at..]
                    .split([' ', '<', ','])
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
        })
        .filter(|o| o != "--help" && o != "--version")
        .collect()
}

#[test]
fn the_usage_block_lists_every_option_of_every_subcommand() {
    let text = readme();
    let start = text.find("## Using it").expect("a usage section");
    let block_start = start + text[start..].find("```\n").expect("a code block") + 4;
    let block_end = block_start + text[block_start..].find("```").expect("it ends");
    let usage = &text[block_start..block_end];
    for subcommand in SUBCOMMANDS {
        // The lines of this subcommand: from its `featurecraft NAME` line to the next one.
        let mine: String = usage
            .split("featurecraft ")
            .filter(|part| part.starts_with(&format!("{subcommand} ")))
            .collect();
        assert!(!mine.is_empty(), "{subcommand} is not in the usage block");
        for option in options(&help(subcommand)) {
            assert!(
                mine.contains(&option),
                "the README's usage of `{subcommand}` lacks {option}"
            );
        }
    }
}

#[test]
fn every_option_has_help_and_every_subcommand_an_example() {
    for subcommand in SUBCOMMANDS {
        let text = help(subcommand);
        assert!(
            text.contains("Example"),
            "{subcommand} --help has no example"
        );
        // clap prints an option without a doc comment as a bare line; with one, the text
        // follows on the same line or the next.
        // The options section: from `Options:` to the blank line after it.
        let lines: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.starts_with("Options:"))
            .take_while(|l| !l.trim().is_empty())
            .collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            if !trimmed.starts_with("--") || trimmed.starts_with("--help") {
                continue;
            }
            // The text after the option; `[default: …]` alone is not a description.
            let after = trimmed
                .split_once("  ")
                .map_or("", |(_, rest)| rest.trim_start());
            let described = (!after.is_empty() && !after.starts_with('['))
                || lines.get(i + 1).is_some_and(|next| {
                    next.starts_with("          ") && !next.trim().starts_with('[')
                });
            assert!(described, "{subcommand}: `{trimmed}` has no help text");
        }
    }
}

#[test]
fn the_walkthrough_leaves_nothing_git_would_pick_up() {
    let ignored = std::fs::read_to_string(common::fixtures().join("../.gitignore")).unwrap();
    for written in ["/jobs.db", "/warehouse", "/server.log"] {
        assert!(
            ignored.lines().any(|l| l == written),
            "{written} is not ignored"
        );
    }
}

/// The `| first | second |` rows of the table after `marker` (`//! ` stripped in crate docs).
fn rows_after(text: &str, marker: &str) -> Vec<(String, String)> {
    let start = text.find(marker).unwrap_or_else(|| panic!("{marker}"));
    text[start..]
        .lines()
        .map(|l| l.trim_start_matches("//!").trim())
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').splitn(2, '|').collect();
            (cells[0].trim().to_string(), cells[1].trim().to_string())
        })
        .collect()
}

#[test]
fn the_code_tables_of_the_readme_and_the_crate_docs_are_the_code_table() {
    use featurecraft::Code;
    let expected: Vec<(String, String)> = Code::ALL
        .iter()
        .filter(|c| !c.is_validation_warning())
        .map(|c| (c.as_str().to_string(), c.meaning().to_string()))
        .collect();
    let text = readme();
    assert_eq!(
        rows_after(&text, "<!-- codes:"),
        expected,
        "README: Diagnostic codes"
    );
    let lib = std::fs::read_to_string(common::fixtures().join("../src/lib.rs")).unwrap();
    assert_eq!(rows_after(&lib, "## Diagnostic codes"), expected, "lib.rs");
    let validation: Vec<(String, String)> = Code::ALL
        .iter()
        .filter(|c| c.is_validation_warning())
        .map(|c| {
            (
                format!("{} {}", c.as_str(), c.slug()),
                c.meaning().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rows_after(&text, "<!-- validation-codes:"),
        validation,
        "README: validation warnings"
    );
}
