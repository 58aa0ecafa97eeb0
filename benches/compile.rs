#![expect(
    missing_docs,
    reason = "criterion_group! writes an undocumented public function"
)]
//! Compile time (parse + analyze + render) for recipes of 10, 50, 100 and 1000 features over
//! the bundled retail catalog's JSON description.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use featurecraft::compile::fragment::{parse_fragment, parse_fragments};
use featurecraft::{
    AnalyzeOptions, Catalog, CompileOptions, Dialect, analyze, compile, parse_recipe, render,
};
use serde_json::json;
use std::hint::black_box;

/// A recipe of `n` features cycling over aggregate and row-level shapes on four sources.
fn recipe(n: usize) -> String {
    let shapes = [
        (
            "events",
            "COUNT(CASE WHEN event_type = 'purchase' AND amount > {k} THEN 1 END)",
        ),
        ("events", "SUM(amount * {k}) / NULLIF(COUNT(*), 0)"),
        (
            "orders",
            "MAX(CASE WHEN status = 'returned' THEN amount + {k} END)",
        ),
        ("support_tickets", "AVG(satisfaction) + {k}"),
        ("customers", "monthly_fee * {k} + COALESCE(age, 0)"),
    ];
    let features: Vec<_> = (0..n)
        .map(|i| {
            let (source, shape) = shapes[i % shapes.len()];
            json!({
                "name": format!("f_{i}"),
                "expression": shape.replace("{k}", &i.to_string()),
                "source_table": source,
                "description": "generated",
                "data_type": "float64",
            })
        })
        .collect();
    json!({
        "target_table": "bench.wide",
        "entity_grain": ["customer_id"],
        "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END"},
        "features": features,
        "notes": "",
    })
    .to_string()
}

/// The bundled retail catalog, from its JSON description.
fn catalog() -> Catalog {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/retail_catalog.json");
    Catalog::from_json(&std::fs::read_to_string(path).expect("catalog")).expect("catalog parses")
}

fn bench_compile(c: &mut Criterion) {
    let catalog = catalog();
    let mut group = c.benchmark_group("compile");
    for n in [10, 50, 100, 1000] {
        let text = recipe(n);
        let check = compile(&text, &catalog, &CompileOptions::default());
        assert!(
            check.sql.is_some(),
            "the bench recipe compiles: {:?}",
            check.diagnostics.first()
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, text| {
            b.iter(|| compile(black_box(text), &catalog, &CompileOptions::default()))
        });
    }
    group.finish();
}

/// The stages of compiling the 1000-feature recipe, to see which one dominates.
fn bench_stages(c: &mut Criterion) {
    let catalog = catalog();
    let text = recipe(1000);
    let parsed = parse_recipe(&text).recipe.expect("the bench recipe parses");
    let plan = analyze(&parsed, &catalog, &AnalyzeOptions::default())
        .plan
        .expect("the bench recipe analyzes");
    let mut group = c.benchmark_group("compile_stage_1000");
    group.bench_function("parse_recipe", |b| {
        b.iter(|| parse_recipe(black_box(&text)))
    });
    let texts: Vec<&str> = parsed
        .features
        .iter()
        .map(|f| f.expression.as_str())
        .collect();
    group.bench_function("parse_fragments", |b| {
        b.iter(|| {
            parse_fragments(black_box(&texts), |i| {
                featurecraft::RecipePath::feature(i, featurecraft::FeatureField::Expression)
            })
        })
    });
    group.bench_function("parse_fragments_one_at_a_time", |b| {
        b.iter(|| {
            for text in &texts {
                let _ = black_box(parse_fragment(
                    text,
                    featurecraft::RecipePath::Field("test".into()),
                ));
            }
        })
    });
    group.bench_function("analyze", |b| {
        b.iter(|| analyze(black_box(&parsed), &catalog, &AnalyzeOptions::default()))
    });
    group.bench_function("render", |b| {
        b.iter(|| render(black_box(&plan), Dialect::default()))
    });
    group.finish();
}

criterion_group!(benches, bench_compile, bench_stages);
criterion_main!(benches);
