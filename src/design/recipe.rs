//! The recipe the crew hands back: the request's grain, label and point in time with the
//! kept features, declaring exactly the relationships, derived columns and time columns
//! they use, and notes that say what was generated, left out and dropped, and why.

use super::propose::Proposal;
use crate::contract::design::DesignRequest;
use crate::contract::recipe::{FeatureRecipe, FeatureSpec, PointInTime, Relationship, TimeColumns};

/// A recipe of the request's grain, label and point in time with `features`, declaring
/// the relationships of the paths they use and the derived columns they read.
pub(super) fn recipe_with(
    request: &DesignRequest,
    target_table: &str,
    proposal: &Proposal,
    features: Vec<FeatureSpec>,
    notes: String,
) -> FeatureRecipe {
    let mut relationships: Vec<Relationship> = Vec::new();
    let mut used: Vec<usize> = Vec::new();
    for f in &features {
        let derived = proposal.uses.get(&f.name).map(|&d| &proposal.derived[d]);
        let reached = proposal.paths.get(&f.source_table).into_iter().flatten();
        for r in reached.chain(derived.map(|(_, r)| r)) {
            if !relationships.contains(r) {
                relationships.push(r.clone());
            }
        }
        if let Some(&d) = proposal.uses.get(&f.name)
            && !used.contains(&d)
        {
            used.push(d);
        }
    }
    used.sort_unstable();
    let derived_columns = used
        .into_iter()
        .map(|d| proposal.derived[d].0.clone())
        .collect();
    FeatureRecipe {
        target_table: target_table.to_string(),
        entity_grain: request.entity_grain.clone(),
        label: request.label.clone(),
        point_in_time: point_in_time_for(request, &features, &relationships),
        relationships,
        derived_columns,
        features,
        notes,
    }
}

/// The request's point-in-time object, with the time columns of the tables the features
/// read and of the tables on their paths (so the recipe declares exactly what it used).
fn point_in_time_for(
    request: &DesignRequest,
    features: &[FeatureSpec],
    relationships: &[Relationship],
) -> Option<PointInTime> {
    let pit = request.point_in_time.as_ref()?;
    // The schedule's and the label's sources keep their time columns: the recipe needs them.
    let needed = |table: &str| {
        [
            pit.schedule.as_ref().map(|s| s.source_table.as_str()),
            request.label.source_table.as_deref(),
        ]
        .into_iter()
        .flatten()
        .any(|t| t.trim().eq_ignore_ascii_case(table))
    };
    let generated = pit.schedule.is_some();
    let on_a_path = |table: &str| {
        relationships.iter().any(|r| {
            [&r.parent, &r.child].iter().any(|side| {
                Relationship::split(side).is_some_and(|(t, _)| t.eq_ignore_ascii_case(table))
            })
        })
    };
    let used = pit
        .time_columns
        .0
        .iter()
        .filter(|(table, _)| {
            needed(table)
                || on_a_path(table)
                || features.iter().any(|f| {
                    f.source_table.eq_ignore_ascii_case(table)
                        && (generated || !f.source_table.eq_ignore_ascii_case(&request.spine))
                })
        })
        .cloned()
        .collect();
    Some(PointInTime {
        time_columns: TimeColumns(used),
        ..pit.clone()
    })
}

/// The recipe's notes: what was considered and from where, the relationships used, what
/// was left out and dropped (at most 40 of each listed), and how the kept ones were ranked.
pub(super) fn notes(
    request: &DesignRequest,
    relationships: &[String],
    left_out: &[(String, String)],
    considered: usize,
    dropped: &[(String, String)],
    ranking: &str,
) -> String {
    const SHOWN: usize = 40;
    let list = |items: &[(String, String)]| {
        let mut text: Vec<String> = items
            .iter()
            .take(SHOWN)
            .map(|(what, why)| format!("{what} ({why})"))
            .collect();
        if items.len() > SHOWN {
            text.push(format!("and {} more", items.len() - SHOWN));
        }
        text.join("; ")
    };
    let mut notes = match &request.point_in_time {
        None => format!(
            "Designed by featurecraft from the catalog: {considered} features considered, row-level from `{}` and aggregated per ({}) from every table holding the grain.",
            request.spine,
            request.entity_grain.join(", ")
        ),
        Some(pit) => {
            let key: Vec<&str> = request
                .entity_grain
                .iter()
                .filter(|g| !g.eq_ignore_ascii_case(&pit.cutoff_column))
                .map(String::as_str)
                .collect();
            let windows = if request.windows.is_empty() {
                String::new()
            } else {
                format!(" and within {}", request.windows.join(", "))
            };
            format!(
                "Designed by featurecraft from the catalog, point in time: {considered} features considered, row-level from `{}`, and per ({}) from every table holding it: aggregates of the rows before each `{}`{windows}, and the latest row's values (as-of) for timed tables.",
                request.spine,
                key.join(", "),
                pit.cutoff_column
            )
        }
    };
    if !relationships.is_empty() {
        notes.push_str(&format!(" Relationships: {}.", relationships.join("; ")));
    }
    if !left_out.is_empty() {
        notes.push_str(&format!(" Left out: {}.", list(left_out)));
    }
    let (pruned, ranked): (Vec<_>, Vec<_>) = dropped
        .iter()
        .cloned()
        .partition(|(_, why)| !why.starts_with("less informative"));
    if !pruned.is_empty() {
        notes.push_str(&format!(" Dropped after checking: {}.", list(&pruned)));
    }
    if !ranked.is_empty() {
        notes.push_str(ranking);
    }
    notes
}
