//! Relationships: how a feature's source that lacks the entity key reaches it.
//!
//! A recipe may declare many-to-one links, each a child column pointing at its parent's
//! unique key (`order_items.order_id → orders.order_id`). A source without the entity key
//! is joined, inside its own CTE, along the shortest chain of links to a table that has
//! the key; its features aggregate per entity over the joined rows. The chain must be the
//! only shortest one: featurecraft never picks between two ways of reaching the entity.
//! The parent column must be unique in its table (the recipe says so; the built-in crew
//! checks it on the data): a duplicated parent key would count a child row twice.

use crate::catalog::{Catalog, Table};
use crate::contract::recipe::Relationship;
use crate::diagnostic::{Code, Diagnostic, RecipePath};
use crate::types::TypeFamily;

/// A checked relationship, in the catalog's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// The child table.
    pub child_table: String,
    /// Its column pointing at the parent.
    pub child_column: String,
    /// The parent table.
    pub parent_table: String,
    /// The parent's unique key.
    pub parent_column: String,
}

/// One step of a join path: the next table, joined on the previous table's `from` column
/// equal to this table's `to` column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// The table joined, as the catalog spells it.
    pub table: String,
    /// The column of the previous table (the source, or the previous hop).
    pub from: String,
    /// The column of this table.
    pub to: String,
}

/// The recipe's relationships, checked against the catalog: each side `table.column` of a
/// known table and column (`E020`, `E021`), both sides of one type family and of two
/// tables (`E027`). The wrong ones are reported and left out.
pub fn check(
    relationships: &[Relationship],
    catalog: &Catalog,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<Link> {
    let mut links = Vec::new();
    for (i, relationship) in relationships.iter().enumerate() {
        if let Some(link) = check_one(i, relationship, catalog, diagnostics) {
            links.push(link);
        }
    }
    links
}

fn check_one(
    i: usize,
    relationship: &Relationship,
    catalog: &Catalog,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Link> {
    let side = |name: &str, text: &str, diagnostics: &mut Vec<Diagnostic>| {
        let path = RecipePath::Relationship(i, Some(name.to_string()));
        let Some((table, column)) = Relationship::split(text) else {
            diagnostics.push(
                Diagnostic::new(
                    Code::E027,
                    format!("relationship side `{text}` is not `table.column`"),
                )
                .at(path)
                .hint("write e.g. `\"child\": \"order_items.order_id\", \"parent\": \"orders.order_id\"`"),
            );
            return None;
        };
        let Some(found) = catalog.table(table) else {
            diagnostics.push(
                Diagnostic::new(
                    Code::E020,
                    format!("unknown table `{table}` in a relationship"),
                )
                .at(path),
            );
            return None;
        };
        let Some(col) = found.column(column) else {
            diagnostics.push(
                Diagnostic::new(
                    Code::E021,
                    format!("table `{}` has no column `{column}`", found.name),
                )
                .at(path),
            );
            return None;
        };
        Some((found, col.name.clone(), TypeFamily::of(&col.data_type)))
    };
    let child = side("child", &relationship.child, diagnostics);
    let parent = side("parent", &relationship.parent, diagnostics);
    let ((child_table, child_column, child_type), (parent_table, parent_column, parent_type)) =
        (child?, parent?);
    let path = RecipePath::Relationship(i, None);
    if child_table.name == parent_table.name {
        diagnostics.push(
            Diagnostic::new(
                Code::E027,
                format!("relationship links `{}` to itself", child_table.name),
            )
            .at(path),
        );
        return None;
    }
    if child_type != parent_type {
        diagnostics.push(
            Diagnostic::new(
                Code::E027,
                format!(
                    "relationship links `{}.{child_column}` ({child_type:?}) to `{}.{parent_column}` ({parent_type:?}): the types differ",
                    child_table.name, parent_table.name
                ),
            )
            .at(path),
        );
        return None;
    }
    Some(Link {
        child_table: child_table.name.clone(),
        child_column,
        parent_table: parent_table.name.clone(),
        parent_column,
    })
}

/// The longest join path followed.
const MAX_HOPS: usize = 4;

/// Whether `table` holds every column of `key`.
pub fn holds(table: &Table, key: &[String]) -> bool {
    key.iter().all(|k| table.column(k).is_some())
}

/// The one shortest path from `from` to a table holding `key`: `Ok(None)` when there is
/// none within [`MAX_HOPS`], `Err` naming the candidates when there are several.
pub fn path(
    links: &[Link],
    catalog: &Catalog,
    from: &str,
    key: &[String],
) -> Result<Option<Vec<Hop>>, String> {
    let mut frontier: Vec<(String, Vec<Hop>)> = vec![(from.to_string(), Vec::new())];
    let mut seen: Vec<String> = vec![from.to_ascii_lowercase()];
    for _ in 0..MAX_HOPS {
        let mut next: Vec<(String, Vec<Hop>)> = Vec::new();
        for (table, hops) in &frontier {
            for link in links
                .iter()
                .filter(|l| l.child_table.eq_ignore_ascii_case(table))
            {
                if seen.contains(&link.parent_table.to_ascii_lowercase()) {
                    continue;
                }
                let mut hops = hops.clone();
                hops.push(Hop {
                    table: link.parent_table.clone(),
                    from: link.child_column.clone(),
                    to: link.parent_column.clone(),
                });
                next.push((link.parent_table.clone(), hops));
            }
        }
        let arrived: Vec<&Vec<Hop>> = next
            .iter()
            .filter(|(table, _)| catalog.table(table).is_some_and(|t| holds(t, key)))
            .map(|(_, hops)| hops)
            .collect();
        match arrived.as_slice() {
            [] => {}
            [one] => return Ok(Some((*one).clone())),
            several => {
                let shown: Vec<String> = several.iter().map(|h| describe(from, h)).collect();
                return Err(shown.join(" or "));
            }
        }
        seen.extend(next.iter().map(|(t, _)| t.to_ascii_lowercase()));
        frontier = next;
        if frontier.is_empty() {
            break;
        }
    }
    Ok(None)
}

/// `order_items.order_id → orders.order_id`, hop after hop.
pub fn describe(from: &str, hops: &[Hop]) -> String {
    let mut text = String::new();
    let mut previous = from;
    for hop in hops {
        if !text.is_empty() {
            text.push_str(", ");
        }
        text.push_str(&format!(
            "{previous}.{} → {}.{}",
            hop.from, hop.table, hop.to
        ));
        previous = &hop.table;
    }
    text
}
