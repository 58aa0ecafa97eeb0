//! The compiled CTAS of every good recipe runs in DataFusion over the bundled Parquet
//! catalog and gives one row per spine row; entities with no rows in a source get the
//! aggregate's value over no rows.

mod common;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Float64Type, Int64Type};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::prelude::SessionContext;
use featurecraft::{CompileOptions, Dialect, Plan, compile};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Runs the DataFusion CTAS and returns the created table's rows.
async fn run(ctx: &SessionContext, plan: &Plan, sql: &str) -> Vec<RecordBatch> {
    if let [domain, _] = plan.target_table.as_slice() {
        let catalog = ctx.catalog("datafusion").unwrap();
        if catalog.schema(domain).is_none() {
            catalog
                .register_schema(domain, Arc::new(MemorySchemaProvider::new()))
                .unwrap();
        }
    }
    ctx.sql(sql)
        .await
        .unwrap_or_else(|e| panic!("CTAS plans: {e}\n{sql}"))
        .collect()
        .await
        .expect("CTAS runs");
    let target = plan
        .target_table
        .iter()
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".");
    ctx.sql(&format!("SELECT * FROM {target}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap()
}

async fn count(ctx: &SessionContext, sql: &str) -> i64 {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    batches[0].column(0).as_primitive::<Int64Type>().value(0)
}

#[tokio::test]
async fn every_good_recipe_runs_and_yields_one_row_per_spine_row() {
    let catalog = common::retail().await;
    for (stem, text) in common::recipes("good") {
        let compiled = compile(
            &text,
            &catalog,
            &CompileOptions::for_dialect(Dialect::DataFusion),
        );
        let (Some(plan), Some(sql)) = (compiled.plan, compiled.sql) else {
            panic!("{stem} compiles: {:#?}", compiled.diagnostics)
        };
        let ctx = catalog
            .session_context(with_functions(SessionContext::new()))
            .await
            .unwrap();
        let batches = run(&ctx, &plan, &sql).await;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if plan.spine.schedule.is_some() {
            // Generated rows (tests/future_labels.rs checks which): one per (entity, cutoff).
            let all = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
            assert!(all.num_rows() > 0, "{stem}: rows were generated");
            assert_eq!(
                common::rows_by_key(&all, plan.grain.len()).len(),
                rows,
                "{stem}: one row per generated (entity, cutoff)"
            );
            continue;
        }
        // The spine's size, computed independently of the compiled query.
        let table = plan
            .spine
            .table
            .split('.')
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(".");
        let grain = plan
            .grain
            .iter()
            .map(|g| format!("\"{g}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let spine_rows = if plan.spine.grouped {
            count(
                &ctx,
                &format!("SELECT COUNT(*) FROM (SELECT DISTINCT {grain} FROM {table})"),
            )
            .await
        } else {
            count(&ctx, &format!("SELECT COUNT(*) FROM {table}")).await
        };
        assert!(spine_rows > 0, "{stem}: the spine has rows");
        let fans_out = plan.sources.iter().any(|s| !s.grouped && s.time.is_none());
        if fans_out {
            assert!(
                rows as i64 >= spine_rows,
                "{stem}: a row-level source keeps at least every spine row"
            );
        } else {
            assert_eq!(rows as i64, spine_rows, "{stem}: one row per spine row");
        }
    }
}

#[tokio::test]
async fn entities_without_rows_get_zero_counts_and_null_sums() {
    let catalog = common::retail().await;
    let text = common::recipes("good")
        .into_iter()
        .find(|(s, _)| s == "empty_set_semantics")
        .unwrap()
        .1;
    let compiled = compile(
        &text,
        &catalog,
        &CompileOptions::for_dialect(Dialect::DataFusion),
    );
    let plan = compiled.plan.unwrap();
    let ctx = catalog
        .session_context(with_functions(SessionContext::new()))
        .await
        .unwrap();
    let batches = run(&ctx, &plan, &compiled.sql.unwrap()).await;

    // Ground truth straight from the source tables.
    let tickets = per_customer(
        &ctx,
        "SELECT customer_id, COUNT(*) FROM support_tickets GROUP BY customer_id",
    )
    .await;
    let orders = per_customer(
        &ctx,
        "SELECT customer_id, COUNT(*) FROM orders GROUP BY customer_id",
    )
    .await;

    let (mut without_tickets, mut without_orders, mut with_tickets) = (0, 0, 0);
    for batch in &batches {
        let col = |name: &str| batch.column(batch.schema().index_of(name).unwrap()).clone();
        let id = col("customer_id");
        let ids = id.as_primitive::<Int64Type>();
        let n_tickets = col("n_tickets");
        let plus_one = col("n_tickets_plus_one");
        let sum = col("satisfaction_sum");
        let avg = col("satisfaction_avg");
        let share = col("rated_share");
        let n_orders = col("n_orders");
        let order_max = col("order_max");
        for row in 0..batch.num_rows() {
            let customer = ids.value(row);
            match tickets.get(&customer) {
                None => {
                    without_tickets += 1;
                    assert_eq!(
                        n_tickets.as_primitive::<Int64Type>().value(row),
                        0,
                        "customer {customer}"
                    );
                    assert!(n_tickets.is_valid(row));
                    assert_eq!(
                        plus_one.as_primitive::<Int64Type>().value(row),
                        1,
                        "customer {customer}"
                    );
                    assert!(
                        sum.is_null(row),
                        "customer {customer}: SUM over no rows is NULL"
                    );
                    assert!(
                        avg.is_null(row),
                        "customer {customer}: AVG over no rows is NULL"
                    );
                    assert!(
                        share.is_null(row),
                        "customer {customer}: 0 / NULLIF(0, 0) is NULL"
                    );
                }
                Some(n) => {
                    with_tickets += 1;
                    assert_eq!(n_tickets.as_primitive::<Int64Type>().value(row), *n);
                    assert_eq!(plus_one.as_primitive::<Int64Type>().value(row), n + 1);
                    assert!(share.is_valid(row));
                    let s = share.as_primitive::<Float64Type>().value(row);
                    assert!((0.0..=1.0).contains(&s));
                }
            }
            if !orders.contains_key(&customer) {
                without_orders += 1;
                assert_eq!(n_orders.as_primitive::<Int64Type>().value(row), 0);
                assert!(order_max.is_null(row));
            }
        }
    }
    assert!(
        without_tickets > 100 && with_tickets > 100,
        "the fixture has both kinds of customers"
    );
    assert!(
        without_orders > 50,
        "the fixture has customers without orders"
    );
}

async fn per_customer(ctx: &SessionContext, sql: &str) -> BTreeMap<i64, i64> {
    let mut out = BTreeMap::new();
    for batch in ctx.sql(sql).await.unwrap().collect().await.unwrap() {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let counts = batch.column(1).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            out.insert(ids.value(row), counts.value(row));
        }
    }
    out
}

/// A plain DataFusion session with featurecraft's functions, which the DataFusion dialect's
/// SQL needs (as-of values are `featurecraft_latest`).
fn with_functions(ctx: SessionContext) -> SessionContext {
    featurecraft::run::sample::register_functions(&ctx);
    ctx
}
