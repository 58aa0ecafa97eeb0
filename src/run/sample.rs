//! The sampled query: the DataFusion session recipes run in, the choice of entities, and
//! the recipe's query restricted to them.
//!
//! Every spine key gets a stable hash (`featurecraft_key_hash`); the `sample_size` keys
//! with the smallest hashes are the sample: the same keys on every run and machine, spread
//! over the whole spine. In a point-in-time plan the key is the entity key, so a sampled
//! entity keeps all its cutoffs. Every CTE is restricted to the sampled keys
//! (`featurecraft_key_hash(key) <= threshold`) *before* it aggregates, so each sampled
//! entity's features are exactly those of the full CTAS and the cost follows the sample.
//! (A float `SUM`/`AVG` can differ in its last bit where the full run merges an entity's
//! rows in an order the partitions decide: a source not clustered by its key. README,
//! "Where a float sum's last bit can move".)
//! When the spine has at most `sample_size` keys the query runs unrestricted.

use crate::catalog::{Catalog, plan_query};
use crate::compile::analyze::Plan;
use crate::compile::dialect::Dialect;
use crate::compile::render::build_query;
use crate::diagnostic::{Code, Diagnostic};
use crate::run::cutoffs_once::{OnCluster, run_cutoffs_once};
use crate::run::deadline::within_time_limit;
use crate::run::engine::Engine;
use crate::run::keyhash::{KEY_HASH, key_hash_udf};
use crate::run::pool::{SharedPool, reserve_in_pool};
use datafusion::arrow::array::{ArrayRef, AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::DataFusionError;
use datafusion::execution::memory_pool::{MemoryConsumer, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, ident};
use datafusion::prelude::{DataFrame, SessionConfig, SessionContext};
use futures::StreamExt;
use sqlparser::ast::{BinaryOperator, Expr as SqlExpr, Value as SqlValue};

/// Knobs of a validation run.
#[derive(Debug, Clone)]
pub struct ValidateOptions {
    /// How many entities (grain keys) to sample.
    pub sample_size: usize,
    /// Null fraction above which a column is listed in `high_null_columns`.
    pub null_threshold: f64,
    /// Score from which the leakage screen flags a feature (`W125`), in (0, 1].
    pub leak_threshold: f64,
    /// Bytes the query may hold in memory; past it the run fails with `E051`.
    pub memory_limit: usize,
    /// DataFusion's `target_partitions`.
    pub target_partitions: usize,
    /// Features per sampled query of the summary ([`FEATURES_PER_QUERY`] by default).
    pub features_per_query: usize,
    /// Where the queries run: this process, or a Ballista cluster.
    pub engine: Engine,
    /// How long a run may take before it is stopped with `E054` (its cluster jobs
    /// cancelled); `None` for no limit. The service bounds its jobs with its own limit.
    pub time_limit: Option<std::time::Duration>,
}

/// Entities (grain keys) a validation samples unless told otherwise.
pub const DEFAULT_SAMPLE_SIZE: usize = 10_000;
/// The NULL share from which a column is listed as high-null unless told otherwise.
pub const DEFAULT_NULL_THRESHOLD: f64 = 0.5;
/// The memory a run may hold unless told otherwise, as the front ends spell it
/// ([`parse_size`] reads it as [`DEFAULT_MEMORY_LIMIT_BYTES`]).
pub const DEFAULT_MEMORY_LIMIT: &str = "2G";
/// [`DEFAULT_MEMORY_LIMIT`] in bytes.
const DEFAULT_MEMORY_LIMIT_BYTES: usize = 2 << 30;

impl Default for ValidateOptions {
    fn default() -> Self {
        ValidateOptions {
            sample_size: DEFAULT_SAMPLE_SIZE,
            null_threshold: DEFAULT_NULL_THRESHOLD,
            leak_threshold: crate::run::leakage::DEFAULT_LEAK_THRESHOLD,
            memory_limit: DEFAULT_MEMORY_LIMIT_BYTES,
            target_partitions: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            features_per_query: FEATURES_PER_QUERY,
            engine: Engine::Local,
            time_limit: None,
        }
    }
}

/// Parses a memory limit such as `512M`, `2G`, `1GiB` or a plain number of bytes (at
/// least 1 MiB): the one spelling the command line and the Python package accept.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits_end = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(digits_end);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (try 512M or 2G)"))?;
    let scale: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "K" | "KB" | "KIB" => 1024.0,
        "M" | "MB" | "MIB" => 1024.0 * 1024.0,
        "G" | "GB" | "GIB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{text}` (use K, M or G)"
            ));
        }
    };
    let bytes = number * scale;
    if bytes < 1024.0 * 1024.0 {
        return Err(format!(
            "memory limit `{text}` is too small: give at least 1M"
        ));
    }
    Ok(bytes as usize)
}

/// Registers featurecraft's functions in a DataFusion session: the SQL of the DataFusion
/// dialect needs them (as-of values are `featurecraft_latest`), so a session of your own
/// that runs it needs them too. The key hash (sampling), `count` with a compact, pool-tracked
/// grouped `COUNT(DISTINCT)` (see `distinct`), `min` and `max` with a compact grouped
/// extreme of strings (see `extremes`), `median` with a float's values in one buffer (see
/// `median`), and the as-of `featurecraft_latest` (see `latest`).
pub fn register_functions(ctx: &SessionContext) {
    let (scalars, aggregates) = own_functions();
    for f in scalars {
        ctx.register_udf(f);
    }
    for f in aggregates {
        ctx.register_udaf(f);
    }
}

/// featurecraft's functions ([`register_functions`]): scalar, then aggregate. A cluster's
/// scheduler and executors register the same by name.
pub(crate) fn own_functions() -> (Vec<ScalarUDF>, Vec<AggregateUDF>) {
    (
        vec![key_hash_udf()],
        vec![
            crate::run::distinct::count_udaf(),
            crate::run::extremes::min_udaf(),
            crate::run::extremes::max_udaf(),
            crate::run::median::median_udaf(),
            crate::run::latest::latest_udaf(),
        ],
    )
}

/// A DataFusion session for running recipes: the memory limit, the partitions, the key
/// hash function and the catalog's tables, running its queries where `options.engine` says.
pub async fn session(
    catalog: &Catalog,
    options: &ValidateOptions,
) -> Result<SessionContext, Diagnostic> {
    // Spilling operators (aggregations, repartitions) share most of the limit and spill to
    // the OS temporary directory past it; the rest is kept for those that cannot spill
    // (see `pool`). The tracking names the largest consumers in an E051.
    let pool = TrackConsumersPool::new(
        SharedPool::new(options.memory_limit),
        std::num::NonZeroUsize::new(5).unwrap_or(std::num::NonZeroUsize::MIN),
    );
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(std::sync::Arc::new(pool))
        .build_arc()
        .map_err(runtime_error)?;
    // DataFusion's own settings can be tuned through `DATAFUSION_*` variables, as in
    // datafusion-cli (`DATAFUSION_EXECUTION_BATCH_SIZE=16384`); the partitions and the
    // memory limit are featurecraft's options and win.
    let config = SessionConfig::from_env()
        .map_err(|e| {
            let set: Vec<String> = std::env::vars_os()
                .filter_map(|(name, _)| name.into_string().ok())
                .filter(|name| name.starts_with("DATAFUSION_"))
                .collect();
            Diagnostic::new(
                Code::E050,
                format!(
                    "a DataFusion setting from the environment ({}) is invalid: {e}",
                    set.join(", ")
                ),
            )
            .hint("fix or unset the variable; `DATAFUSION_EXECUTION_BATCH_SIZE=8192` is the form")
        })?
        .with_target_partitions(options.target_partitions.max(1));
    let config = with_featurecraft_defaults(config);
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    // On a cluster, Ballista sets the session's functions: ours are registered after.
    let ctx = match &options.engine {
        // Aggregations by one integer key run in one phase where a scan's rows lie spread
        // by it (`run::one_phase`) and number it by offset while keys are dense
        // (`run::clustered`, `run::keyed_final`); outer joins on a side grouped by the key are lookups
        // (`run::lookup_join`). A cluster's scheduler plans with Ballista's rules.
        Engine::Local => SessionContext::new_with_state(
            datafusion::execution::SessionStateBuilder::new_from_existing(ctx.state())
                .with_physical_optimizer_rule(std::sync::Arc::new(
                    crate::run::one_phase::OnePhase::new(catalog.spreads_by_location()),
                ))
                .with_physical_optimizer_rule(std::sync::Arc::new(
                    crate::run::clustered::ClusteredKeys,
                ))
                .with_physical_optimizer_rule(std::sync::Arc::new(
                    crate::run::keyed_final::KeyedFinals,
                ))
                .with_physical_optimizer_rule(std::sync::Arc::new(
                    crate::run::lookup_join::LookupJoins,
                ))
                .build(),
        ),
        Engine::Ballista { scheduler } => {
            let ctx = on_cluster(ctx, scheduler, catalog).await?;
            ctx.state_ref()
                .write()
                .config_mut()
                .set_extension(std::sync::Arc::new(OnCluster));
            ctx
        }
    };
    register_functions(&ctx);
    ctx.add_optimizer_rule(std::sync::Arc::new(
        crate::run::filtered::ConditionalAsFilter,
    ));
    ctx.remove_optimizer_rule(SINGLE_DISTINCT_TO_GROUP_BY);
    catalog
        .session_context(ctx)
        .await
        .map_err(|e| Diagnostic::new(Code::E052, e.to_string()))
}

/// The DataFusion optimizer rule featurecraft's sessions go without.
///
/// It rewrites a grouping whose aggregates are one `COUNT(DISTINCT x)` beside only `SUM`,
/// `MIN` and `MAX` (`SELECT k, COUNT(DISTINCT x), MAX(y) … GROUP BY k`) into two: by
/// `(k, x)`, then by `k`. That spares DataFusion's per-group hash sets, but featurecraft's
/// `count` keeps distinct values compactly in the source's one grouping (see `distinct`),
/// and the rewrite doubles the grouping work: measured at L, a `plan_changes` source with
/// `COUNT(DISTINCT to_plan)`, `MAX(to_plan)`, `MAX(fee)` and `SUM(seats)` materialized in
/// 1.1 s against DuckDB's 0.58 s with it (see BENCHMARKS.md for the figures without).
const SINGLE_DISTINCT_TO_GROUP_BY: &str = "single_distinct_aggregation_to_group_by";

/// featurecraft's values of DataFusion settings, each set unless its variable is in the
/// environment (where `SessionConfig::from_env` read it, so the environment wins): the
/// variable and what it sets. Why each value, and what it gave, is on its constant.
const FEATURECRAFT_DEFAULTS: [Tuned; 4] = [
    ("DATAFUSION_EXECUTION_BATCH_SIZE", |c| {
        c.with_batch_size(BATCH_SIZE)
    }),
    ("DATAFUSION_EXECUTION_PARQUET_COMPRESSION", |mut c| {
        c.options_mut().execution.parquet.compression = Some(OUTPUT_COMPRESSION.to_string());
        c
    }),
    (
        "DATAFUSION_EXECUTION_PARQUET_DICTIONARY_PAGE_SIZE_LIMIT",
        |mut c| {
            c.options_mut().execution.parquet.dictionary_page_size_limit = OUTPUT_DICTIONARY_LIMIT;
            c
        },
    ),
    (
        "DATAFUSION_OPTIMIZER_SUBSET_REPARTITION_THRESHOLD",
        |mut c| {
            c.options_mut().optimizer.subset_repartition_threshold = SUBSET_REPARTITION_THRESHOLD;
            c
        },
    ),
];

/// A DataFusion setting's environment variable, and how featurecraft sets it otherwise.
type Tuned = (&'static str, fn(SessionConfig) -> SessionConfig);

/// `config` with [`FEATURECRAFT_DEFAULTS`] applied where the environment does not set them.
fn with_featurecraft_defaults(mut config: SessionConfig) -> SessionConfig {
    for (variable, set) in FEATURECRAFT_DEFAULTS {
        if std::env::var_os(variable).is_none() {
            config = set(config);
        }
    }
    config
}

/// Rows per batch: 8 times DataFusion's 8192.
///
/// A recipe's plan is a few scans and aggregations per source over millions of rows, and
/// each batch pays a fixed cost in every operator (a hash-table probe loop, a repartition,
/// an expression's evaluation, a state emitted). Measured at L (1M customers) with the
/// release binary, interleaved runs: materialize of the churn bench recipe 1.67 → 1.59 s,
/// of the 50-feature recipe 3.31 → 2.95 s, of the point-in-time recipe 4.27 → 4.03 s;
/// peak memory −4 % to +12 %; validation unchanged.
pub const BATCH_SIZE: usize = 65_536;

/// The codec of Parquet output: Snappy (DataFusion's own default is ZSTD level 3).
///
/// Snappy is what DuckDB, Spark and PyArrow write by default and what every Parquet reader
/// reads. Measured at L on the 50-feature bench recipe, interleaved runs: materialize 2.659 →
/// 2.534 s (median of 5), the table 61 → 73 MiB (DuckDB's `COPY` of the same query, Snappy
/// too: 81 MiB).
const OUTPUT_COMPRESSION: &str = "snappy";

/// The dictionary page limit of Parquet output, in bytes (DataFusion's default is 1 MiB).
///
/// A column chunk is dictionary-encoded until its dictionary outgrows the limit, then
/// written plain. Most feature columns are floats and counts with many distinct values: at
/// 1 MiB the writer interned up to 131 072 values of each such column chunk before it fell
/// back to plain encoding. At 64 KiB a column of up to 8 192 distinct 8-byte values (a plan,
/// a flag, a small count) keeps its dictionary. Measured at L, interleaved runs of the
/// release binary (the limit from the environment): materialize of the churn bench recipe
/// 1.349 → 1.276 s (median of 7), the 50-feature recipe 2.676 → 2.566 s (median of 7), the
/// point-in-time recipe 3.638 → 3.535 s (median of 3); the tables 33 → 33 MiB and 73 → 81
/// MiB (DuckDB's `COPY` of the 50-feature query: 81 MiB); without dictionaries at all they
/// grew to 43 and 110 MiB.
pub const OUTPUT_DICTIONARY_LIMIT: usize = 64 * 1024;

/// The partitions from which rows already hash-partitioned on a subset of a grouping's
/// keys stay where they are: 1, any number (joins still repartition both sides alike).
///
/// featurecraft's plans join every source on the entity key and then group by the entity
/// key and the cutoff: the join's output is already partitioned by the entity key, a subset
/// of the grouping, and a high-cardinality one (it is the grain). DataFusion reuses such a
/// partitioning only from 4 partitions on (`subset_repartition_threshold`), fearing too few
/// distinct values for parallelism; below it, every timed source's aggregation ran in two
/// phases with a repartition between them. Measured on the point-in-time benchmark at L with
/// 2 partitions: materialize 6.0–7.2 s instead of 7.4–7.9 s, same rows.
const SUBSET_REPARTITION_THRESHOLD: usize = 1;

/// The session `local` turned into one whose queries run on the cluster at `scheduler`,
/// when every table of `catalog` can travel to the executors.
async fn on_cluster(
    local: SessionContext,
    scheduler: &str,
    catalog: &Catalog,
) -> Result<SessionContext, Diagnostic> {
    if let Some(table) = catalog
        .tables()
        .find(|t| matches!(t.source, crate::catalog::TableSource::Memory { .. }))
    {
        return Err(Diagnostic::new(
            Code::E050,
            format!(
                "table `{}` is held in memory, and a Ballista cluster reads only files: run it with the local engine",
                table.name
            ),
        ));
    }
    #[cfg(feature = "cluster")]
    {
        crate::run::engine::on_cluster(local, scheduler).await
    }
    #[cfg(not(feature = "cluster"))]
    {
        drop(local);
        Err(Diagnostic::new(
            Code::E050,
            format!("cannot run on ballista://{scheduler}: this build has no cluster support"),
        ))
    }
}

/// The sampled query's rows (grain, features, label, in output order) and what the key
/// scan learned on the way.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Grain, features and label, in output order.
    pub rows: RecordBatch,
    /// Rows of the spine (its keys, when grouped).
    pub spine_rows: u64,
    /// Distinct keys of the spine.
    pub spine_keys: u64,
    /// Keys held by more than one spine row, and the rows holding them.
    pub duplicate_keys: u64,
    /// Spine rows holding a duplicated key.
    pub duplicate_rows: u64,
    /// The hash threshold of the sample; `None` when the sample is the whole spine.
    pub threshold: Option<i64>,
}

/// Runs the sampled query: up to `sample_size` entities, chosen by key hash, each with its
/// exact feature values.
pub async fn sample(
    plan: &Plan,
    catalog: &Catalog,
    options: &ValidateOptions,
) -> Result<Sample, Diagnostic> {
    within_time_limit(options.time_limit, async {
        let ctx = session(catalog, options).await?;
        sample_in(&ctx, plan, options).await
    })
    .await?
}

async fn sample_in(
    ctx: &SessionContext,
    plan: &Plan,
    options: &ValidateOptions,
) -> Result<Sample, Diagnostic> {
    let keys = key_scan(ctx, plan, options).await?;
    let rows = sampled_rows(ctx, plan, keys.threshold).await?;
    let (spine_rows, threshold) = (keys.spine_rows, keys.threshold);
    let counts = keys.counts().await?;
    Ok(Sample {
        rows,
        spine_rows,
        spine_keys: counts.spine_keys,
        duplicate_keys: counts.duplicate_keys,
        duplicate_rows: counts.duplicate_rows,
        threshold,
    })
}

/// What the spine's key scan learned: its size and the hash threshold of the sample
/// (`None` when the sample is the whole spine) at once, its distinct and repeated keys
/// once [`KeyScan::counts`] has them.
pub(crate) struct KeyScan {
    pub(crate) spine_rows: u64,
    pub(crate) threshold: Option<i64>,
    /// Sorting every hash to count the keys took 20 ms of a 0.27 s validation at 1M keys,
    /// on one core: it runs on a blocking thread while the sampled query is planned and run.
    counting: tokio::task::JoinHandle<KeyCounts>,
}

/// The spine's distinct keys, and its keys held by more than one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyCounts {
    /// Distinct keys of the spine (entities, in a point-in-time plan).
    pub(crate) spine_keys: u64,
    /// Keys (of the grain) held by more than one spine row, and the rows holding them.
    pub(crate) duplicate_keys: u64,
    pub(crate) duplicate_rows: u64,
}

impl KeyScan {
    /// The spine's key counts, waiting for them if they are still being counted.
    pub(crate) async fn counts(self) -> Result<KeyCounts, Diagnostic> {
        self.counting.await.map_err(|e| {
            Diagnostic::new(
                Code::E050,
                format!("counting the spine's keys did not finish: {e}"),
            )
        })
    }
}

/// The hint of a key scan refused memory (in place of `runtime_error`'s, which suggests a
/// smaller sample).
const KEY_SCAN_REFUSED_HINT: &str = "the key scan holds every spine row's hash whatever the sample size: raise the memory limit (`memory_limit`)";

/// The spine's keys, hashed: the sample, the spine size, duplicate keys.
///
/// Streams the spine's grain columns once. Duplicate rows are found by a hash of the
/// grain's values (DataFusion's, typed: a timestamp is hashed as its integer, not its text,
/// which was a sixth of a point-in-time validation's time); the sample is chosen by
/// `featurecraft_key_hash` of the entity key, the hash the sampled query filters on.
pub(crate) async fn key_scan(
    ctx: &SessionContext,
    plan: &Plan,
    options: &ValidateOptions,
) -> Result<KeyScan, Diagnostic> {
    let spine = spine_frame(ctx, plan).await?;
    let keys = if plan.spine.grouped {
        spine
            .aggregate(plan.grain.iter().map(ident).collect(), vec![])
            .map_err(runtime_error)?
    } else {
        spine
    };
    // The grain's columns find duplicate rows; the entity key's hash (the grain itself,
    // unless the plan is point-in-time) chooses the sample, so an entity keeps all its
    // cutoffs.
    let entity_hash = key_hash_udf()
        .call(plan.entity_key().iter().map(ident).collect())
        .alias("featurecraft_entity_hash");
    let mut columns: Vec<_> = plan.grain.iter().map(ident).collect();
    columns.push(entity_hash);
    let mut stream = keys
        .select(columns)
        .map_err(runtime_error)?
        .execute_stream()
        .await
        .map_err(runtime_error)?;
    let grain_columns = plan.grain.len();
    // Where the grain is the entity key, the entity hash finds duplicate rows as well: the
    // grain is not hashed a second time.
    let grain_is_entity = plan.entity_key() == plan.grain;
    let rows_state = datafusion::common::hash_utils::QualityRandomState::with_seed(0);
    let (mut rows, mut entities): (Vec<u64>, Vec<i64>) = (Vec::new(), Vec::new());
    // 8 or 16 bytes a spine row, held until the keys are counted: within the pool's limit
    // (`E051` past it), beside the sampled query that runs meanwhile.
    // Refused, a smaller sample would not help: every spine row is hashed.
    let refused = |error| Diagnostic {
        hints: vec![KEY_SCAN_REFUSED_HINT.into()],
        ..runtime_error(error)
    };
    let reservation =
        MemoryConsumer::new("featurecraft key scan").register(&ctx.runtime_env().memory_pool);
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(runtime_error)?;
        reserve_in_pool(&mut entities, batch.num_rows(), &reservation).map_err(refused)?;
        if !grain_is_entity {
            reserve_in_pool(&mut rows, batch.num_rows(), &reservation).map_err(refused)?;
            let start = rows.len();
            rows.resize(start + batch.num_rows(), 0);
            datafusion::common::hash_utils::create_hashes(
                &batch.columns()[..grain_columns],
                &rows_state,
                &mut rows[start..],
            )
            .map_err(runtime_error)?;
        }
        entities.extend_from_slice(
            batch
                .column(grain_columns)
                .as_primitive::<Int64Type>()
                .values(),
        );
    }
    let spine_rows = entities.len() as u64;
    let threshold = sample_threshold(&mut entities, options.sample_size);
    let counting = tokio::task::spawn_blocking(move || {
        let duplicated = (!grain_is_entity).then_some(rows);
        let counts = key_counts(entities, duplicated);
        drop(reservation);
        counts
    });
    Ok(KeyScan {
        spine_rows,
        threshold,
        counting,
    })
}

/// The hash threshold of a sample of `sample_size` entities: the `sample_size`-th smallest
/// distinct hash, or `None` when there are no more distinct hashes than that (the sample is
/// the whole spine). Reorders `hashes`.
///
/// Only the smallest hashes are sorted: the `n` smallest hold every distinct value up to
/// their largest, so once they hold more than `sample_size` distinct values the threshold
/// is among them. `n` starts at one more than the sample (a spine without repeated keys)
/// and grows fourfold (an entity's cutoffs repeat its hash).
fn sample_threshold(hashes: &mut [i64], sample_size: usize) -> Option<i64> {
    if hashes.len() <= sample_size {
        return None;
    }
    let mut n = sample_size + 1;
    loop {
        n = n.min(hashes.len());
        if n < hashes.len() {
            hashes.select_nth_unstable(n - 1);
        }
        // Sorted where they are (no copy beside the spine's hashes).
        hashes[..n].sort_unstable();
        let distinct = || hashes[..n].chunk_by(|a, b| a == b).map(|run| run[0]);
        if distinct().nth(sample_size).is_some() {
            return distinct().nth(sample_size.saturating_sub(1));
        }
        if n == hashes.len() {
            return None;
        }
        n = n.saturating_mul(4);
    }
}

/// The spine's key counts from its entity hashes and, where the grain is not the entity
/// key, the hashes of its rows' grains (which tell its duplicate rows).
fn key_counts(mut entities: Vec<i64>, rows: Option<Vec<u64>>) -> KeyCounts {
    entities.sort_unstable();
    let (duplicate_keys, duplicate_rows) = match rows {
        Some(mut rows) => {
            rows.sort_unstable();
            duplicates(&rows)
        }
        None => duplicates(&entities),
    };
    KeyCounts {
        spine_keys: entities.chunk_by(|a, b| a == b).count() as u64,
        duplicate_keys,
        duplicate_rows,
    }
}

/// The runs of equal values in `sorted` longer than one: how many, and their rows.
fn duplicates<T: PartialEq>(sorted: &[T]) -> (u64, u64) {
    sorted
        .chunk_by(|a, b| a == b)
        .filter(|run| run.len() > 1)
        .fold((0, 0), |(keys, rows), run| {
            (keys + 1, rows + run.len() as u64)
        })
}

/// The sampled query's rows: every CTE restricted to the keys whose hash is at most
/// `threshold` before it aggregates (the whole spine without one).
pub(crate) async fn sampled_rows(
    ctx: &SessionContext,
    plan: &Plan,
    threshold: Option<i64>,
) -> Result<RecordBatch, Diagnostic> {
    let caps = Dialect::DataFusion.capabilities();
    let filter = |grain: &[SqlExpr]| threshold.map(|t| key_filter(grain, t));
    let mut query =
        build_query(plan, &caps, Some(&filter)).map_err(|mut errors| errors.remove(0))?;
    let mut state = state_for(ctx, plan);
    if threshold.is_some() {
        // Late materialization: each scan decodes the grain columns, keeps the sampled
        // rows, and decodes the other columns for those rows only. Measured at 1M
        // customers it cuts the sampled run by about a quarter; a full run gets slower
        // with it, so only the sampled query's own session state turns it on.
        let parquet = &mut state.config_mut().options_mut().execution.parquet;
        parquet.pushdown_filters = true;
        parquet.reorder_filters = true;
    }
    let held = run_cutoffs_once(ctx, &state, &mut query)
        .await
        .map_err(runtime_error)?;
    let logical_plan = plan_query(&state, query).await.map_err(runtime_error)?;
    let frame = DataFrame::new(state, logical_plan);
    let logical = std::sync::Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(runtime_error)?;
    drop(held);
    // The batches' own schema: `frame.schema()` is the plan's before type coercion (a
    // `CASE WHEN … THEN 0 ELSE <double> END` reads Int64 there, Float64 once run).
    let schema = batches.first().map(|b| b.schema()).unwrap_or(logical);
    let rows = concat_batches(&schema, &batches).map_err(|e| runtime_error(e.into()))?;
    in_key_order(rows, plan.grain.len())
}

/// `rows` ordered by their first `grain` columns, rows of one key by all their columns.
///
/// The sampled query's own order is its partitions' interleaving, which changes from run to
/// run; the sample's rows are shown (`--show`), written (`--sample-out`) and returned
/// (`return_sample`) in this order, the same on every run. Where Arrow's row format cannot
/// order a column (it orders every common type), the query's order is kept for the rows
/// that column would have told apart.
fn in_key_order(rows: RecordBatch, grain: usize) -> Result<RecordBatch, Diagnostic> {
    let ordered_by = |columns: &[ArrayRef]| -> Option<Rows> {
        let fields = columns
            .iter()
            .map(|c| SortField::new(c.data_type().clone()))
            .collect();
        RowConverter::new(fields)
            .and_then(|converter| converter.convert_columns(columns))
            .ok()
    };
    let Some(keys) = ordered_by(&rows.columns()[..grain.min(rows.num_columns())]) else {
        return Ok(rows);
    };
    let mut order: Vec<u32> = (0..rows.num_rows() as u32).collect();
    order.sort_unstable_by(|&a, &b| keys.row(a as usize).cmp(&keys.row(b as usize)));
    let tied = order
        .windows(2)
        .any(|pair| keys.row(pair[0] as usize) == keys.row(pair[1] as usize));
    if tied && let Some(whole) = ordered_by(rows.columns()) {
        order.sort_unstable_by(|&a, &b| whole.row(a as usize).cmp(&whole.row(b as usize)));
    }
    take_record_batch(&rows, &UInt32Array::from(order)).map_err(|e| runtime_error(e.into()))
}

/// Features per sampled query of a validation summary, by default. DataFusion resolves every column
/// against a schema by a linear search, and its SQL planner compares each select item's
/// name with every earlier one: planning one query of N features costs N² (4 000 features
/// took 6 s to plan, 9.4 s in all). The summary needs each feature only beside the label,
/// so it runs the features in groups of this many, sources kept together: planning cost
/// grows with N, and each source is still read by as few queries as its features need.
/// A recipe this wide or narrower runs as one query, as before.
pub const FEATURES_PER_QUERY: usize = 256;

/// `featurecraft_key_hash(grain…) <= threshold`.
fn key_filter(grain: &[SqlExpr], threshold: i64) -> SqlExpr {
    let call = crate::sql::call(KEY_HASH, grain.to_vec());
    SqlExpr::BinaryOp {
        left: Box::new(call),
        op: BinaryOperator::LtEq,
        right: Box::new(SqlExpr::Value(
            SqlValue::Number(threshold.to_string(), false).into(),
        )),
    }
}

/// The session state a plan's queries run in: the session's, with DataFusion's join
/// dynamic filters off for a plan whose spine is generated or labelled from the future.
/// DataFusion 55 waits forever on such a query over a tiny catalog (a scan waiting for a
/// hash join's filter that is never published; a one-row schedule with `keep_empty: false`
/// reproduced it, tests/future_labels.rs). `DATAFUSION_OPTIMIZER_ENABLE_JOIN_DYNAMIC_FILTER_PUSHDOWN`
/// set in the environment wins.
pub(crate) fn state_for(ctx: &SessionContext, plan: &Plan) -> datafusion::execution::SessionState {
    let mut state = ctx.state();
    if crate::compile::spine::is_rendered_here(plan)
        && std::env::var_os("DATAFUSION_OPTIMIZER_ENABLE_JOIN_DYNAMIC_FILTER_PUSHDOWN").is_none()
    {
        state
            .config_mut()
            .options_mut()
            .optimizer
            .enable_join_dynamic_filter_pushdown = false;
    }
    state
}

/// The spine's rows: the spine table, or the rows a schedule generates (grain columns).
pub(crate) async fn spine_frame(
    ctx: &SessionContext,
    plan: &Plan,
) -> Result<DataFrame, Diagnostic> {
    let caps = Dialect::DataFusion.capabilities();
    match crate::compile::render::spine_rows_query(plan, &caps) {
        None => ctx
            .table(table_reference(&plan.spine.table))
            .await
            .map_err(runtime_error),
        Some(query) => {
            let query = query.map_err(|mut errors| errors.remove(0))?;
            let state = state_for(ctx, plan);
            let logical = plan_query(&state, query).await.map_err(runtime_error)?;
            Ok(DataFrame::new(state, logical))
        }
    }
}

pub(crate) fn table_reference(name: &str) -> datafusion::common::TableReference {
    match name.split_once('.') {
        Some((domain, table)) => datafusion::common::TableReference::partial(domain, table),
        None => datafusion::common::TableReference::bare(name),
    }
}

/// Turns a DataFusion failure into a diagnostic that says what went wrong in user terms.
pub fn runtime_error(error: DataFusionError) -> Diagnostic {
    let root = error.find_root();
    let text = root.to_string();
    let first = text.lines().next().unwrap_or(&text).to_string();
    let data_file = || {
        Diagnostic::new(
            Code::E052,
            format!("a data file is missing or unreadable: {first}"),
        )
    };
    match root {
        // DataFusion lists the largest consumers and the failed allocation on lines of
        // their own: kept, on one line, since they say what to change.
        DataFusionError::ResourcesExhausted(_) => Diagnostic::new(
            Code::E051,
            format!(
                "the run exceeded the memory limit: {}",
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            ),
        )
        .hint("raise the memory limit (`memory_limit`), or sample fewer entities (`sample_size`)"),
        DataFusionError::ObjectStore(_)
        | DataFusionError::IoError(_)
        | DataFusionError::ParquetError(_) => data_file(),
        _ if reads_like_a_file_error(&text) => data_file(),
        _ => Diagnostic::new(
            Code::E050,
            format!("the query failed while running: {first}"),
        ),
    }
}

/// Whether DataFusion's text names a missing or unreadable file: some of its file errors
/// reach us as plain text inside other variants. The wording is DataFusion 55's;
/// `runtime_failures_are_diagnostics_not_panics` (tests/validate.rs) deletes and corrupts
/// a Parquet file and fails if an upgrade words it otherwise.
fn reads_like_a_file_error(text: &str) -> bool {
    text.contains("No such file")
        || (text.contains("not found") && text.contains("Object at location"))
        || text.contains("Parquet")
        || text.contains("parquet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn output_keeps_small_dictionaries_and_writes_many_distinct_values_plain() {
        use datafusion::arrow::array::{Float64Array, StringArray};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use datafusion::dataframe::DataFrameWriteOptions;
        use parquet::basic::{Compression, Encoding, PageType};
        use parquet::file::reader::{FileReader, SerializedFileReader};
        if FEATURECRAFT_DEFAULTS
            .iter()
            .any(|(variable, _)| std::env::var_os(variable).is_some())
        {
            return; // the environment's settings win, as documented
        }
        // 20 000 distinct floats (160 000 bytes: past 64 KiB, within DataFusion's 1 MiB) and
        // three plans.
        let rows = 20_000;
        let schema = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Float64, false),
            Field::new("plan", DataType::Utf8, false),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Float64Array::from_iter_values(
                    (0..rows).map(|i| i as f64 / 7.0),
                )),
                Arc::new(StringArray::from_iter_values(
                    (0..rows).map(|i| ["basic", "pro", "team"][i % 3]),
                )),
            ],
        )
        .expect("a batch");
        let config = with_featurecraft_defaults(SessionConfig::new().with_target_partitions(1));
        let ctx = SessionContext::new_with_config(config);
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = dir.path().join("t.parquet");
        ctx.read_batch(batch)
            .expect("a frame")
            .write_parquet(
                out.to_str().expect("a UTF-8 path"),
                DataFrameWriteOptions::new().with_single_file_output(true),
                None,
            )
            .await
            .expect("written");
        let reader =
            SerializedFileReader::new(std::fs::File::open(&out).expect("the file")).expect("read");
        let group = reader.metadata().row_group(0);
        let (x, plan) = (group.column(0), group.column(1));
        assert_eq!(x.compression(), Compression::SNAPPY);
        // The floats' data pages fell back to plain; the plans' stayed dictionary-encoded.
        let plain_data_pages = |column: usize| {
            let pages = reader
                .get_row_group(0)
                .and_then(|g| g.get_column_page_reader(column))
                .expect("a page reader");
            pages
                .map(|page| page.expect("a page"))
                .filter(|p| p.page_type() != PageType::DICTIONARY_PAGE)
                .filter(|p| p.encoding() == Encoding::PLAIN)
                .count()
        };
        assert!(plain_data_pages(0) > 0, "the floats kept a dictionary");
        assert!(plan.dictionary_page_offset().is_some());
        assert_eq!(plain_data_pages(1), 0, "the plans lost their dictionary");
    }

    #[test]
    fn sampled_rows_are_in_grain_order_ties_by_their_other_columns() {
        use datafusion::arrow::array::{Float64Array, StringArray};
        let rows = RecordBatch::try_from_iter([
            (
                "customer_id",
                Arc::new(Int64Array::from(vec![
                    Some(3),
                    Some(1),
                    None,
                    Some(2),
                    Some(1),
                ])) as ArrayRef,
            ),
            (
                "plan",
                Arc::new(StringArray::from(vec!["a", "c", "z", "b", "b"])) as ArrayRef,
            ),
            (
                "spend",
                Arc::new(Float64Array::from(vec![0.5, f64::NAN, 1.0, -0.0, 2.0])) as ArrayRef,
            ),
        ])
        .unwrap();
        let ordered = in_key_order(rows.clone(), 1).unwrap();
        let ids = ordered.column(0).as_primitive::<Int64Type>();
        // NULL keys first, as in an ascending ORDER BY of DataFusion's; then 1 (b before c), 2, 3.
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            vec![None, Some(1), Some(1), Some(2), Some(3)]
        );
        let plans = ordered.column(1).as_string::<i32>();
        assert_eq!(
            plans.iter().flatten().collect::<Vec<_>>(),
            vec!["z", "b", "c", "b", "a"]
        );
        // Any order of the same rows gives the same batch.
        let reversed = take_record_batch(&rows, &UInt32Array::from(vec![4, 3, 2, 1, 0])).unwrap();
        assert_eq!(in_key_order(reversed, 1).unwrap(), ordered);
    }

    #[test]
    fn the_default_memory_limit_reads_as_its_bytes() {
        assert_eq!(
            parse_size(DEFAULT_MEMORY_LIMIT),
            Ok(DEFAULT_MEMORY_LIMIT_BYTES)
        );
    }
    use datafusion::arrow::array::Int64Array;
    use datafusion::datasource::MemTable;
    use std::path::Path;
    use std::sync::Arc;

    /// A two-column table of `rows` rows in two partitions: `customer_id`, `day`.
    fn table(rows: i64) -> Arc<MemTable> {
        let batch = |range: std::ops::Range<i64>| {
            let ids: ArrayRef = Arc::new(Int64Array::from_iter_values(range.clone()));
            let days: ArrayRef = Arc::new(Int64Array::from_iter_values(range.map(|i| i % 7)));
            RecordBatch::try_from_iter([("customer_id", ids), ("day", days)]).unwrap()
        };
        let (first, second) = (batch(0..rows / 2), batch(rows / 2..rows));
        Arc::new(MemTable::try_new(first.schema(), vec![vec![first], vec![second]]).unwrap())
    }

    /// The physical plan of a grouping by the entity key and a day over a join on the
    /// entity key, in a featurecraft session of 2 partitions.
    async fn plan_of_grouped_join(subset_threshold: Option<usize>) -> String {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/retail");
        let catalog = Catalog::load(&root).await.unwrap();
        let options = ValidateOptions {
            target_partitions: 2,
            ..ValidateOptions::default()
        };
        let ctx = session(&catalog, &options).await.unwrap();
        {
            let state = ctx.state_ref();
            let mut state = state.write();
            let optimizer = &mut state.config_mut().options_mut().optimizer;
            // Small tables: without these the join would collect one side instead.
            optimizer.hash_join_single_partition_threshold = 0;
            optimizer.hash_join_single_partition_threshold_rows = 0;
            if let Some(threshold) = subset_threshold {
                optimizer.subset_repartition_threshold = threshold;
            }
        }
        ctx.register_table("people", table(100)).unwrap();
        ctx.register_table("visits", table(1000)).unwrap();
        let sql = "EXPLAIN SELECT v.customer_id, v.day, COUNT(*) AS n \
                   FROM people p JOIN visits v ON p.customer_id = v.customer_id \
                   GROUP BY v.customer_id, v.day";
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string()
    }

    #[tokio::test]
    async fn a_grouping_by_the_joined_entity_key_runs_in_one_phase() {
        let ours = plan_of_grouped_join(None).await;
        assert!(ours.contains("mode=SinglePartitioned"), "{ours}");
        assert!(!ours.contains("mode=Partial"), "{ours}");
        // DataFusion's default for fewer than 4 partitions: two phases and a repartition.
        let default = plan_of_grouped_join(Some(4)).await;
        assert!(default.contains("mode=Partial"), "{default}");
    }

    #[tokio::test]
    async fn a_distinct_count_beside_sums_and_extremes_groups_once_by_the_key() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/retail");
        let catalog = Catalog::load(&root).await.unwrap();
        let ctx = session(&catalog, &ValidateOptions::default())
            .await
            .unwrap();
        ctx.register_table("visits", table(1000)).unwrap();
        // `day` is `customer_id % 7`: ids 0..499 are the first partition, 500..999 the second.
        let sql = "SELECT customer_id % 10 AS k, COUNT(DISTINCT day) AS days, MAX(day) AS last, \
                   SUM(customer_id) AS total FROM visits GROUP BY customer_id % 10";
        let plan_in = |ctx: SessionContext| async move {
            let explain = ctx.sql(&format!("EXPLAIN {sql}")).await.unwrap();
            arrow::util::pretty::pretty_format_batches(&explain.collect().await.unwrap())
                .unwrap()
                .to_string()
        };
        // DataFusion's own session groups by (k, day) first (`alias1`), then by k.
        let plain = SessionContext::new();
        plain.register_table("visits", table(1000)).unwrap();
        let rewritten = plan_in(plain).await;
        assert!(rewritten.contains("alias1"), "{rewritten}");
        assert_eq!(rewritten.matches("gby=").count(), 4, "{rewritten}");
        let plan = plan_in(ctx.clone()).await;
        assert!(!plan.contains("alias1"), "{plan}");
        assert_eq!(plan.matches("gby=").count(), 2, "{plan}");
        let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        let rows = concat_batches(&rows[0].schema(), &rows).unwrap();
        assert_eq!(rows.num_rows(), 10);
        for row in 0..rows.num_rows() {
            let k = rows.column(0).as_primitive::<Int64Type>().value(row);
            // Ids ≡ k (mod 10) cover every residue mod 7; the largest is 990 + k.
            assert_eq!(rows.column(1).as_primitive::<Int64Type>().value(row), 7);
            assert_eq!(rows.column(2).as_primitive::<Int64Type>().value(row), 6);
            let total: i64 = (0..1000).filter(|i| i % 10 == k).sum();
            assert_eq!(rows.column(3).as_primitive::<Int64Type>().value(row), total);
        }
    }

    /// The threshold as it was computed before: every hash sorted, repeats removed.
    fn threshold_by_sorting(hashes: &[i64], sample_size: usize) -> Option<i64> {
        let mut distinct = hashes.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        (distinct.len() > sample_size).then(|| distinct[sample_size.saturating_sub(1)])
    }

    #[test]
    fn sample_threshold_is_the_sorted_distinct_hashes_one() {
        // Hashes drawn from wide ranges (no repeats), narrow ones (repeats among the
        // smallest: more of them sorted, fourfold each time) and one value; sample sizes
        // around the spine's size.
        // Fibonacci hashing scatters the indexes without a generator.
        let scattered = |i: u64, spread: u64| (i + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) % spread;
        for spread in [u64::MAX >> 1, 1 << 20, 64, 3, 1] {
            for len in [0_u64, 1, 2, 5, 100, 1000] {
                let hashes: Vec<i64> = (0..len).map(|i| scattered(i, spread) as i64).collect();
                for sample_size in [0, 1, 2, 4, 5, 6, 99, 100, 101, 500, 1000] {
                    let mut reordered = hashes.clone();
                    assert_eq!(
                        sample_threshold(&mut reordered, sample_size),
                        threshold_by_sorting(&hashes, sample_size),
                        "{len} hashes under {spread}, sample of {sample_size}"
                    );
                    reordered.sort_unstable();
                    let mut sorted = hashes.clone();
                    sorted.sort_unstable();
                    assert_eq!(reordered, sorted, "only reordered");
                }
            }
        }
    }

    #[test]
    fn key_counts_count_distinct_keys_and_repeated_rows() {
        let counts = key_counts(vec![5, 1, 5, 3, 5, 1], None);
        assert_eq!(
            counts,
            KeyCounts {
                spine_keys: 3,
                duplicate_keys: 2,
                duplicate_rows: 5
            }
        );
        // A point-in-time grain: entities repeat by design, the rows' grains do not.
        let counts = key_counts(vec![7, 7, 7, 2], Some(vec![10, 11, 12, 13]));
        assert_eq!(
            counts,
            KeyCounts {
                spine_keys: 2,
                duplicate_keys: 0,
                duplicate_rows: 0
            }
        );
    }
}
