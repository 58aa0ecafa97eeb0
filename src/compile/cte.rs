//! The names featurecraft gives the CTEs (and the one session table) of the SQL it writes,
//! in one place. A catalog table of one of these names is refused where a query would read
//! it (`E029`); names made from a table's (`src_orders`, `derived_sessions`) start with a
//! prefix below and are made unique with `sql::fresh_name`.

/// The spine: one row per training row. Source CTEs are named `src_…`, so they never
/// clash with it.
pub const SPINE_CTE: &str = "spine";
/// The spine's distinct (entity key, cutoff) pairs.
pub const CUTOFFS_CTE: &str = "cutoffs";
/// The prefix of a source table's CTE (`src_orders`).
pub const SOURCE_PREFIX: &str = "src_";
/// The prefix of a derived table's CTE (`derived_sessions_events`).
pub const DERIVED_PREFIX: &str = "derived";
/// The cutoff pairs with their windows' starts, when a source's windows need them.
pub const CUTOFF_PAIRS_CTE: &str = "featurecraft_cutoff_pairs";
/// The generated entities, with their first and last times.
pub const ENTITIES_CTE: &str = "featurecraft_entities";
/// The generated (entity, cutoff) rows.
pub const SCHEDULE_CTE: &str = "featurecraft_schedule";
/// The label's (entity, cutoff) pairs with their windows' edges.
pub const LABEL_PAIRS_CTE: &str = "featurecraft_label_pairs";
/// The label per pair whose window holds rows.
pub const LABEL_CTE: &str = "featurecraft_label";
/// The label source's latest time.
pub const HORIZON_CTE: &str = "featurecraft_horizon";
/// The labelled rows before the first N per entity are kept.
pub const LABELLED_CTE: &str = "featurecraft_labelled";
/// The session table that holds a run's cutoff pairs once (`run::cutoffs_once`).
pub const HELD_CUTOFFS_TABLE: &str = "featurecraft_cutoffs";
