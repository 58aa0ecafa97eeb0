//! The crew's relationships: which table points at which, found on the profile.
//!
//! A child column is linked to a parent table's key when the parent has a column of the
//! same name and type family whose profiled values are all distinct (a unique key on the
//! rows profiled) and the child is another table. A child column that would link to more
//! than one parent is ambiguous: reported, never guessed. Declared relationships replace
//! what was discovered for their child column.

use crate::catalog::Catalog;
use crate::contract::recipe::Relationship;
use crate::design::profile::ColumnProfile;
use crate::types::TypeFamily;
use std::collections::BTreeMap;

/// What discovery found: the links to use, and what it could not decide.
#[derive(Debug, Clone, Default)]
pub struct Found {
    /// Declared links, then discovered ones, in catalog order.
    pub links: Vec<Relationship>,
    /// Child columns with several candidate parents (`table.column` → the parents).
    pub ambiguous: Vec<(String, Vec<String>)>,
}

/// Whether a profiled column is a unique key on its profiled rows.
fn unique(profile: &ColumnProfile) -> bool {
    profile.non_null > 0 && profile.distinct == profile.non_null
}

/// Links between the catalog's tables from their profiles (`profiles[table]`, one per
/// column in catalog order), with `declared` taking precedence.
pub fn discover(
    catalog: &Catalog,
    profiles: &BTreeMap<String, Vec<ColumnProfile>>,
    declared: &[Relationship],
) -> Found {
    let mut found = Found {
        links: declared.to_vec(),
        ambiguous: Vec::new(),
    };
    let declared_child = |child: &str| declared.iter().any(|r| r.child.eq_ignore_ascii_case(child));
    // Unique keys: (lower-case column name, type family) → the tables holding one.
    let mut keys: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for table in catalog.tables() {
        let Some(table_profiles) = profiles.get(&table.name) else {
            continue;
        };
        for (column, profile) in table.columns.iter().zip(table_profiles) {
            let family = TypeFamily::of(&column.data_type);
            if matches!(family, TypeFamily::Integer | TypeFamily::String) && unique(profile) {
                keys.entry((column.name.to_ascii_lowercase(), format!("{family:?}")))
                    .or_default()
                    .push((table.name.clone(), column.name.clone()));
            }
        }
    }
    for table in catalog.tables() {
        if !profiles.contains_key(&table.name) {
            continue;
        }
        for column in &table.columns {
            let family = TypeFamily::of(&column.data_type);
            let child = format!("{}.{}", table.name, column.name);
            if declared_child(&child) {
                continue;
            }
            let Some(parents) =
                keys.get(&(column.name.to_ascii_lowercase(), format!("{family:?}")))
            else {
                continue;
            };
            let parents: Vec<&(String, String)> =
                parents.iter().filter(|(t, _)| *t != table.name).collect();
            match parents.as_slice() {
                [] => {}
                [(parent_table, parent_column)] => found.links.push(Relationship {
                    child,
                    parent: format!("{parent_table}.{parent_column}"),
                }),
                several => found.ambiguous.push((
                    child,
                    several.iter().map(|(t, c)| format!("{t}.{c}")).collect(),
                )),
            }
        }
    }
    found
}
