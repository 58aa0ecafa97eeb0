//! What the benchmarks over a wide recipe share: the recipe and the median of timed runs.

use std::time::Duration;

/// `n` aggregate features spread over three sources, as a recipe author's wide table would be.
pub fn wide_recipe(n: usize) -> String {
    let tables = [
        ("orders", "amount"),
        ("events", "amount"),
        ("support_tickets", "satisfaction"),
    ];
    let features: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            let (table, column) = tables[i % tables.len()];
            serde_json::json!({"name": format!("f{i}"), "expression": format!("SUM({column} * {i})"), "source_table": table})
        })
        .collect();
    serde_json::json!({
        "target_table": "wide",
        "entity_grain": ["customer_id"],
        "label": {"column": "churned_at", "derivation": "CASE WHEN churned_at IS NULL THEN 0 ELSE 1 END"},
        "features": features
    })
    .to_string()
}

pub fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}
