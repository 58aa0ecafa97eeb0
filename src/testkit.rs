//! A deterministic generator for the retail catalog used by tests, examples and benchmarks.
//!
//! The same `customers` count gives the same files, byte for byte, on every machine: the
//! data comes from a seeded SplitMix64 stream per table. The catalog has realistic nulls
//! and skew, a table that is not unique on the grain (`subscriptions`), a table without
//! `customer_id` (`order_items`) with a view giving it its join path
//! (`customer_order_items.sql`), a multi-file table (`events/`), a domain
//! (`marketing/campaign_touches`), a two-column grain (`customer_snapshots` with the
//! view `events_monthly.sql`), and for point-in-time recipes a cutoff spine
//! (`churn_cutoffs`: up to three cutoffs per customer, some placed exactly on a source
//! row or a window before one) and a plan history with ties (`plan_changes`).
//!
//! Rows per customer (averages): 20 events, 3 orders, 2.5 order items per order,
//! 1.3 subscriptions, 0.6 support tickets, 1.5 campaign touches, 3 monthly snapshots,
//! 2.6 plan changes, 2.9 cutoffs.

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMicrosecondArray,
};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::path::Path;
use std::sync::Arc;

/// Days from 1970-01-01 to 2020-01-01.
const EPOCH_2020: i32 = 18262;
/// Days from 1970-01-01 to 2024-01-01.
const EPOCH_2024: i32 = 19723;
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Rows per Parquet row group: small enough for pruning, large enough to scan fast.
const ROW_GROUP: usize = 128 * 1024;

/// SplitMix64: tiny, fast and the same everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
    /// Picks from weighted choices.
    fn pick<'a>(&mut self, choices: &[(&'a str, f64)]) -> &'a str {
        let total: f64 = choices.iter().map(|c| c.1).sum();
        let mut x = self.unit() * total;
        for (value, weight) in choices {
            if x < *weight {
                return value;
            }
            x -= weight;
        }
        choices.last().map(|c| c.0).unwrap_or("")
    }
    /// A skewed count with the given mean (geometric-like, heavy tail).
    fn count(&mut self, mean: f64) -> usize {
        let u = self.unit().max(1e-12);
        (-u.ln() * mean).floor() as usize
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// How many customers (about 20 events and 3 orders each).
    pub customers: u64,
    /// Parts the `events` table is split into.
    pub event_files: usize,
    /// Draw a progress bar on stderr (for a terminal).
    pub progress: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            customers: 1000,
            event_files: 2,
            progress: false,
        }
    }
}

/// Writes the retail catalog into `dir` (created if missing). Each file is written to a
/// temporary name and renamed when complete, so an interrupted run leaves no partial file.
pub fn generate_retail(dir: &Path, options: &GenerateOptions) -> Result<(), String> {
    if options.customers == 0 {
        return Err("`customers` must be at least 1".into());
    }
    // The catalog reads a folder of one Parquet file as a domain, not a table.
    if options.event_files < 2 {
        return Err(format!(
            "`event_files` must be at least 2 (got {}): the events table is a folder of several files",
            options.event_files
        ));
    }
    if options.event_files as u64 > options.customers {
        return Err(format!(
            "`event_files` ({}) cannot exceed `customers` ({}): each file holds the events of its own customers",
            options.event_files, options.customers
        ));
    }
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(dir.join("events")).map_err(io)?;
    std::fs::create_dir_all(dir.join("marketing")).map_err(io)?;
    let n = options.customers;
    let mut progress = Progress::new(options.progress, 9 + options.event_files);

    let customers = write_customers(dir, n, &mut progress)?;
    write_subscriptions(dir, n, &mut progress)?;
    let first_event = write_events(dir, n, options.event_files, &mut progress)?;
    let first_order = write_orders(dir, n, &customers.signup, &mut progress)?;
    write_support_tickets(dir, n, &mut progress)?;
    write_campaign_touches(dir, n, &mut progress)?;
    write_customer_snapshots(dir, n, &mut progress)?;
    write_plan_changes(dir, n, &mut progress)?;
    let edges = Edges {
        first_event,
        first_order,
    };
    write_churn_cutoffs(dir, &customers, &edges, &mut progress)?;
    Ok(())
}

/// The customers: one row each, with the signup day every other table starts from.
fn write_customers(dir: &Path, n: u64, progress: &mut Progress) -> Result<Customers, String> {
    let mut rng = Rng::new(1);
    let mut c = Columns::default();
    let mut signup = Vec::with_capacity(n as usize);
    let mut churn = Vec::with_capacity(n as usize);
    for id in 1..=n as i64 {
        let signup_day = EPOCH_2020 + rng.below(1800) as i32;
        signup.push(signup_day);
        let plan = rng.pick(&[("basic", 0.6), ("pro", 0.3), ("enterprise", 0.1)]);
        let base_fee = match plan {
            "basic" => 9.99,
            "pro" => 29.99,
            _ => 99.0,
        };
        let churned = rng.chance(if plan == "basic" { 0.18 } else { 0.06 });
        let churn_ts =
            churned.then(|| (signup_day as i64 + 30 + rng.below(700) as i64) * MICROS_PER_DAY);
        churn.push(churn_ts);
        let fee = (!rng.chance(0.08))
            .then(|| ((base_fee * (0.9 + rng.unit() * 0.2)) * 100.0).round() / 100.0);
        let months = 1.0 + rng.below(48) as f64;
        c.i64("customer_id", Some(id));
        c.date("signup_date", Some(signup_day));
        c.str(
            "country",
            Some(rng.pick(&[
                ("US", 0.5),
                ("DE", 0.15),
                ("FR", 0.1),
                ("GB", 0.1),
                ("BR", 0.08),
                ("JP", 0.05),
                ("NZ", 0.02),
            ])),
        );
        c.str("plan", Some(plan));
        c.f64("monthly_fee", fee);
        c.i32(
            "age",
            (!rng.chance(0.15)).then(|| 18 + rng.below(62) as i32),
        );
        c.bool("is_business", Some(rng.chance(0.2)));
        c.ts("churned_at", churn_ts);
        let segment = if months > 30.0 && plan != "basic" {
            "gold"
        } else if months > 12.0 {
            "silver"
        } else {
            "bronze"
        };
        c.str("segment", Some(segment));
        c.f64(
            "lifetime_value",
            Some(((base_fee * months + rng.unit() * 50.0) * 100.0).round() / 100.0),
        );
        c.str(
            "referral_code",
            rng.chance(0.15)
                .then(|| format!("R{:05}", rng.below(100_000)))
                .as_deref(),
        );
    }
    c.write(&dir.join("customers.parquet"))?;
    progress.step(&dir.join("customers.parquet"));
    Ok(Customers { signup, churn })
}

/// What later tables need of each customer (index `customer_id - 1`).
struct Customers {
    /// The signup day (days since 1970-01-01).
    signup: Vec<i32>,
    /// When the customer churned (microseconds since 1970-01-01), if they did.
    churn: Vec<Option<i64>>,
}

/// Subscriptions: several per customer, so not unique on the grain.
fn write_subscriptions(dir: &Path, n: u64, progress: &mut Progress) -> Result<(), String> {
    let mut rng = Rng::new(2);
    let mut c = Columns::default();
    let mut sid = 0i64;
    for id in 1..=n as i64 {
        let k = rng
            .pick(&[("0", 0.15), ("1", 0.5), ("2", 0.25), ("3", 0.1)])
            .parse::<usize>()
            .unwrap_or(0);
        for _ in 0..k {
            sid += 1;
            let start = (EPOCH_2024 + rng.below(700) as i32) as i64 * MICROS_PER_DAY;
            c.i64("subscription_id", Some(sid));
            c.i64("customer_id", Some(id));
            c.str(
                "product",
                Some(rng.pick(&[
                    ("streaming", 0.4),
                    ("music", 0.3),
                    ("cloud", 0.2),
                    ("news", 0.1),
                ])),
            );
            c.ts("started_at", Some(start));
            c.ts(
                "ended_at",
                rng.chance(0.3)
                    .then(|| start + (30 + rng.below(300) as i64) * MICROS_PER_DAY),
            );
            c.f64("price", Some([4.99, 9.99, 14.99][rng.below(3) as usize]));
        }
    }
    c.write(&dir.join("subscriptions.parquet"))?;
    progress.step(&dir.join("subscriptions.parquet"));
    Ok(())
}

/// Events, split over `parts` files of one schema.
/// Returns each customer's first generated event time, for the cutoff spine's edge cases.
fn write_events(
    dir: &Path,
    n: u64,
    parts: usize,
    progress: &mut Progress,
) -> Result<Vec<Option<i64>>, String> {
    let mut rng = Rng::new(3);
    let mut first_event = vec![None; n as usize];
    let per_part = (n as usize).div_ceil(parts);
    let mut eid = 0i64;
    for part in 0..parts {
        // The columns in order up front: a part whose customers have no events still
        // has the table's schema.
        let mut c = Columns::default();
        c.entry("event_id", || Data::I64(Vec::new()));
        c.entry("customer_id", || Data::I64(Vec::new()));
        c.entry("event_type", || Data::Str(Vec::new()));
        c.entry("event_ts", || Data::Ts(Vec::new()));
        c.entry("amount", || Data::F64(Vec::new()));
        c.entry("session_seconds", || Data::I32(Vec::new()));
        let first = (part * per_part) as i64 + 1;
        let last = (((part + 1) * per_part) as i64).min(n as i64);
        for id in first..=last {
            let k = if rng.chance(0.05) { 0 } else { rng.count(20.0) };
            for _ in 0..k {
                eid += 1;
                let kind = rng.pick(&[
                    ("view", 0.55),
                    ("click", 0.3),
                    ("purchase", 0.1),
                    ("support", 0.05),
                ]);
                c.i64("event_id", Some(eid));
                c.i64("customer_id", Some(id));
                c.str("event_type", Some(kind));
                let at = (EPOCH_2024 as i64 + rng.below(730) as i64) * MICROS_PER_DAY
                    + rng.below(MICROS_PER_DAY as u64) as i64;
                first_event[(id - 1) as usize].get_or_insert(at);
                c.ts("event_ts", Some(at));
                c.f64(
                    "amount",
                    (kind == "purchase")
                        .then(|| ((5.0 + rng.unit() * 195.0) * 100.0).round() / 100.0),
                );
                c.i32("session_seconds", Some(rng.count(120.0) as i32 + 1));
            }
        }
        let file = dir.join("events").join(format!("part-{part:03}.parquet"));
        c.write(&file)?;
        progress.step(&file);
    }
    Ok(first_event)
}

/// Orders, their items, and the view that gives the items their customer.
/// Returns each customer's first generated order day, for the cutoff spine's edge cases.
fn write_orders(
    dir: &Path,
    n: u64,
    signup: &[i32],
    progress: &mut Progress,
) -> Result<Vec<Option<i32>>, String> {
    let mut rng = Rng::new(4);
    let mut first_order = vec![None; n as usize];
    let mut orders = Columns::default();
    let mut items = Columns::default();
    let mut oid = 0i64;
    for id in 1..=n as i64 {
        let k = if rng.chance(0.25) {
            0
        } else {
            1 + rng.count(3.0)
        };
        for _ in 0..k {
            oid += 1;
            orders.i64("order_id", Some(oid));
            orders.i64("customer_id", Some(id));
            let day = signup[(id - 1) as usize].max(EPOCH_2024) + rng.below(700) as i32;
            first_order[(id - 1) as usize].get_or_insert(day);
            orders.date("order_date", Some(day));
            orders.f64(
                "amount",
                Some(((10.0 + rng.unit() * 290.0) * 100.0).round() / 100.0),
            );
            orders.str(
                "status",
                Some(rng.pick(&[("completed", 0.85), ("returned", 0.1), ("cancelled", 0.05)])),
            );
            orders.f64(
                "discount",
                rng.chance(0.3)
                    .then(|| [0.05, 0.1, 0.2][rng.below(3) as usize]),
            );
            for _ in 0..1 + rng.below(4) {
                items.i64("order_id", Some(oid));
                items.i64("product_id", Some(1 + rng.below(500) as i64));
                items.i32("quantity", Some(1 + rng.below(5) as i32));
                items.f64(
                    "unit_price",
                    Some(((2.0 + rng.unit() * 98.0) * 100.0).round() / 100.0),
                );
            }
        }
    }
    orders.write(&dir.join("orders.parquet"))?;
    progress.step(&dir.join("orders.parquet"));
    items.write(&dir.join("order_items.parquet"))?;
    progress.step(&dir.join("order_items.parquet"));
    write_text(
        &dir.join("customer_order_items.sql"),
        "-- order_items has no customer_id: this view gives it its join path through orders.\n\
         SELECT o.customer_id, i.order_id, i.product_id, i.quantity, i.unit_price\n\
         FROM order_items i\n\
         JOIN orders o ON i.order_id = o.order_id\n",
    )?;
    Ok(first_order)
}

/// Support tickets: most customers have none.
fn write_support_tickets(dir: &Path, n: u64, progress: &mut Progress) -> Result<(), String> {
    let mut rng = Rng::new(5);
    let mut c = Columns::default();
    let mut tid = 0i64;
    for id in 1..=n as i64 {
        let k = if rng.chance(0.6) {
            0
        } else {
            1 + rng.count(0.6)
        };
        for _ in 0..k {
            tid += 1;
            c.i64("ticket_id", Some(tid));
            c.i64("customer_id", Some(id));
            c.ts(
                "opened_at",
                Some((EPOCH_2024 as i64 + rng.below(730) as i64) * MICROS_PER_DAY),
            );
            c.str(
                "priority",
                Some(rng.pick(&[("low", 0.5), ("medium", 0.35), ("high", 0.15)])),
            );
            c.bool("resolved", Some(rng.chance(0.8)));
            c.i32(
                "satisfaction",
                rng.chance(0.4).then(|| 1 + rng.below(5) as i32),
            );
        }
    }
    c.write(&dir.join("support_tickets.parquet"))?;
    progress.step(&dir.join("support_tickets.parquet"));
    Ok(())
}

/// `marketing.campaign_touches`: a table in a domain.
fn write_campaign_touches(dir: &Path, n: u64, progress: &mut Progress) -> Result<(), String> {
    let mut rng = Rng::new(6);
    let mut c = Columns::default();
    for id in 1..=n as i64 {
        for _ in 0..rng.count(1.5) {
            c.i64("customer_id", Some(id));
            c.str(
                "campaign",
                Some(rng.pick(&[("spring_sale", 0.4), ("winback", 0.3), ("newsletter", 0.3)])),
            );
            c.str(
                "channel",
                Some(rng.pick(&[("email", 0.6), ("sms", 0.25), ("push", 0.15)])),
            );
            c.ts(
                "touched_at",
                Some((EPOCH_2024 as i64 + rng.below(730) as i64) * MICROS_PER_DAY),
            );
        }
    }
    c.write(&dir.join("marketing").join("campaign_touches.parquet"))?;
    progress.step(&dir.join("marketing").join("campaign_touches.parquet"));
    Ok(())
}

/// Monthly snapshots with a two-column grain, and the view of events by month.
fn write_customer_snapshots(dir: &Path, n: u64, progress: &mut Progress) -> Result<(), String> {
    let mut rng = Rng::new(7);
    let mut c = Columns::default();
    let months = [20362, 20393, 20423]; // 2025-10-01, 2025-11-01, 2025-12-01
    for id in 1..=n as i64 {
        for month in months {
            c.i64("customer_id", Some(id));
            c.date("snapshot_date", Some(month));
            c.i32("active_days", Some(rng.below(31) as i32));
            c.i32("churned_next_month", Some(i32::from(rng.chance(0.07))));
        }
    }
    c.write(&dir.join("customer_snapshots.parquet"))?;
    progress.step(&dir.join("customer_snapshots.parquet"));
    write_text(
        &dir.join("events_monthly.sql"),
        "-- Events keyed by (customer_id, month), to join customer_snapshots on both grain columns.\n\
         SELECT customer_id, CAST(date_trunc('month', event_ts) AS DATE) AS snapshot_date, event_type, amount, session_seconds\n\
         FROM events\n",
    )?;
    Ok(())
}

/// `plan_changes`: each customer's plan history, a timed source for as-of values. About
/// one customer in ten has two changes at the same instant (a tie the as-of rule breaks).
fn write_plan_changes(dir: &Path, n: u64, progress: &mut Progress) -> Result<(), String> {
    let mut rng = Rng::new(8);
    let mut c = Columns::default();
    let plans = [("basic", 9.99), ("pro", 29.99), ("enterprise", 99.0)];
    for id in 1..=n as i64 {
        let changes = 1 + rng.count(1.5);
        let tie = rng.chance(0.1);
        for k in 0..changes {
            let at = (EPOCH_2024 as i64 + rng.below(730) as i64) * MICROS_PER_DAY
                + rng.below(MICROS_PER_DAY as u64) as i64;
            let copies = if tie && k == 0 { 2 } else { 1 };
            for _ in 0..copies {
                let (plan, fee) = plans[rng.below(3) as usize];
                c.i64("customer_id", Some(id));
                c.ts("changed_at", Some(at));
                c.str("to_plan", Some(plan));
                c.f64("fee", Some(fee));
                c.i32(
                    "seats",
                    (!rng.chance(0.1)).then(|| 1 + rng.below(20) as i32),
                );
            }
        }
    }
    c.write(&dir.join("plan_changes.parquet"))?;
    progress.step(&dir.join("plan_changes.parquet"));
    Ok(())
}

/// Source times the cutoff spine places cutoffs on, so the edges of the point-in-time
/// rules are in the data: a row exactly at a cutoff, exactly a window before one.
struct Edges {
    /// Each customer's first generated event time.
    first_event: Vec<Option<i64>>,
    /// Each customer's first generated order day.
    first_order: Vec<Option<i32>>,
}

/// Month starts from 2024-07-01 to 2025-12-01, in days since 1970-01-01.
const CUTOFF_MONTHS: [i32; 18] = [
    19905, 19936, 19967, 19997, 20028, 20058, 20089, 20120, 20148, 20179, 20209, 20240, 20270,
    20301, 20332, 20362, 20393, 20423,
];

/// `churn_cutoffs`: the point-in-time spine. Each customer still active gets up to three
/// monthly cutoffs (none at or after their churn); a churned customer's last month start
/// before churning is one of them. `churned_30d` is 1 when the customer churns in the 30
/// days after the cutoff. Customers by `customer_id % 7` get one cutoff on an edge: at their
/// first event, 30, 7 or 90 days after it, at their first order day, or 30 days after it.
fn write_churn_cutoffs(
    dir: &Path,
    customers: &Customers,
    edges: &Edges,
    progress: &mut Progress,
) -> Result<(), String> {
    let mut rng = Rng::new(9);
    let mut c = Columns::default();
    for (index, churn) in customers.churn.iter().enumerate() {
        let id = index as i64 + 1;
        let mut months = CUTOFF_MONTHS;
        for i in 0..3 {
            let j = i + rng.below((months.len() - i) as u64) as usize;
            months.swap(i, j);
        }
        let mut cutoffs: Vec<i64> = months[..3]
            .iter()
            .map(|&day| day as i64 * MICROS_PER_DAY)
            .collect();
        if let Some(churn) = *churn {
            let last_before = CUTOFF_MONTHS
                .iter()
                .map(|&day| day as i64 * MICROS_PER_DAY)
                .rfind(|&start| start < churn);
            if let Some(start) = last_before
                && !cutoffs.contains(&start)
            {
                cutoffs[0] = start;
            }
        }
        let day = |days: i64| days * MICROS_PER_DAY;
        let edge = match id % 7 {
            0 => edges.first_event[index],
            1 => edges.first_event[index].map(|t| t + day(30)),
            2 => edges.first_event[index].map(|t| t + day(7)),
            3 => edges.first_event[index].map(|t| t + day(90)),
            4 => edges.first_order[index].map(|d| day(d as i64)),
            5 => edges.first_order[index].map(|d| day(d as i64 + 30)),
            _ => None,
        };
        if let Some(edge) = edge {
            let edge_day = edge.div_euclid(MICROS_PER_DAY);
            let clashes = cutoffs[..2]
                .iter()
                .any(|t| t.div_euclid(MICROS_PER_DAY) == edge_day);
            if !clashes {
                cutoffs[2] = edge;
            }
        }
        cutoffs.retain(|&t| churn.is_none_or(|churn| t < churn));
        cutoffs.sort_unstable();
        for cutoff in cutoffs {
            let churned_30d =
                churn.is_some_and(|churn| churn > cutoff && churn <= cutoff + day(30));
            c.i64("customer_id", Some(id));
            c.ts("cutoff_time", Some(cutoff));
            c.date(
                "cutoff_date",
                Some(cutoff.div_euclid(MICROS_PER_DAY) as i32),
            );
            c.i32("churned_30d", Some(i32::from(churned_30d)));
        }
    }
    c.write(&dir.join("churn_cutoffs.parquet"))?;
    progress.step(&dir.join("churn_cutoffs.parquet"));
    Ok(())
}

/// A bar on stderr, one step per file written.
struct Progress {
    enabled: bool,
    done: usize,
    total: usize,
}

impl Progress {
    fn new(enabled: bool, total: usize) -> Progress {
        Progress {
            enabled,
            done: 0,
            total,
        }
    }

    fn step(&mut self, file: &Path) {
        self.done += 1;
        if !self.enabled {
            return;
        }
        let width = 30;
        let filled = width * self.done / self.total.max(1);
        eprint!(
            "\r\x1b[2K[{}{}] {}/{} {}",
            "#".repeat(filled),
            ".".repeat(width - filled),
            self.done,
            self.total,
            file.file_name()
                .map(|f| f.to_string_lossy())
                .unwrap_or_default()
        );
        if self.done == self.total {
            eprintln!();
        }
    }
}

fn write_text(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Column builders in insertion order.
#[derive(Default)]
struct Columns {
    order: Vec<&'static str>,
    data: std::collections::HashMap<&'static str, Data>,
}

enum Data {
    I64(Vec<Option<i64>>),
    I32(Vec<Option<i32>>),
    F64(Vec<Option<f64>>),
    Str(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
    Date(Vec<Option<i32>>),
    Ts(Vec<Option<i64>>),
}

macro_rules! push_fn {
    ($name:ident, $variant:ident, $t:ty) => {
        fn $name(&mut self, column: &'static str, value: Option<$t>) {
            let entry = self.entry(column, || Data::$variant(Vec::new()));
            if let Data::$variant(values) = entry {
                values.push(value);
            }
        }
    };
}

impl Columns {
    fn entry(&mut self, column: &'static str, make: impl FnOnce() -> Data) -> &mut Data {
        if !self.data.contains_key(column) {
            self.order.push(column);
        }
        self.data.entry(column).or_insert_with(make)
    }
    push_fn!(i64, I64, i64);
    push_fn!(i32, I32, i32);
    push_fn!(f64, F64, f64);
    push_fn!(bool, Bool, bool);
    push_fn!(date, Date, i32);
    push_fn!(ts, Ts, i64);

    fn str(&mut self, column: &'static str, value: Option<&str>) {
        if let Data::Str(values) = self.entry(column, || Data::Str(Vec::new())) {
            values.push(value.map(str::to_string));
        }
    }

    fn write(self, path: &Path) -> Result<(), String> {
        let mut arrays: Vec<(&str, ArrayRef)> = Vec::new();
        for name in &self.order {
            let array: ArrayRef = match &self.data[name] {
                Data::I64(v) => Arc::new(Int64Array::from(v.clone())),
                Data::I32(v) => Arc::new(Int32Array::from(v.clone())),
                Data::F64(v) => Arc::new(Float64Array::from(v.clone())),
                Data::Str(v) => Arc::new(StringArray::from(v.clone())),
                Data::Bool(v) => Arc::new(BooleanArray::from(v.clone())),
                Data::Date(v) => Arc::new(Date32Array::from(v.clone())),
                Data::Ts(v) => Arc::new(TimestampMicrosecondArray::from(v.clone())),
            };
            arrays.push((name, array));
        }
        let batch =
            RecordBatch::try_from_iter(arrays).map_err(|e| format!("{}: {e}", path.display()))?;
        let tmp = path.with_extension("parquet.tmp");
        let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let file = std::fs::File::create(&tmp).map_err(|e| err(&e))?;
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROW_GROUP))
            .build();
        let mut writer =
            ArrowWriter::try_new(file, batch.schema(), Some(props)).map_err(|e| err(&e))?;
        writer.write(&batch).map_err(|e| err(&e))?;
        writer.close().map_err(|e| err(&e))?;
        std::fs::rename(&tmp, path).map_err(|e| err(&e))
    }
}
