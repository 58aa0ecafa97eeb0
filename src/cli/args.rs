//! The command line's arguments: one struct per subcommand, the options several share
//! declared once and flattened in.

use clap::{Args, Parser, Subcommand, ValueEnum};
use featurecraft::run::engine::Engine;
use featurecraft::{Dialect, LabelType};
use std::path::PathBuf;

/// featurecraft's command line.
#[derive(Parser)]
#[command(
    name = "featurecraft",
    version,
    about = "Compile a feature recipe into a checked CREATE TABLE AS SELECT"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Compile a recipe into a CTAS for a dialect.
    #[command(
        after_help = "Example:\n  featurecraft compile fixtures/recipes/good/churn_basic.json --catalog fixtures/retail --dialect duckdb"
    )]
    Compile(CompileArgs),
    /// Compile a recipe and run it on a sample of entities: the validation summary.
    #[command(
        after_help = "Example:\n  featurecraft validate fixtures/recipes/good/churn_basic.json --catalog fixtures/retail --sample-size 500 --show 5"
    )]
    Validate(ValidateArgs),
    /// Retry a failed job (JSON file): compile and validate its recipe again; prints the new job.
    #[command(
        after_help = "Prints the new Job as JSON (the contract's shape). Example:\n  featurecraft retry failed_job.json --catalog fixtures/retail"
    )]
    Retry(RetryArgs),
    /// Serve the job API over HTTP (see the README for the routes).
    #[command(
        after_help = "Example:\n  FEATURECRAFT_JWT_SECRET=$(head -c 32 /dev/urandom | base64) featurecraft serve --catalog fixtures/retail --db jobs.db"
    )]
    Serve(ServeArgs),
    /// Print a development token signed with FEATURECRAFT_JWT_SECRET.
    #[command(
        after_help = "Example:\n  featurecraft token --sub ana@example.com --scope automl:admin --ttl 8h"
    )]
    Token(TokenArgs),
    /// Design a recipe from the catalog: features proposed, checked, validated and pruned.
    #[command(
        after_help = "Example:\n  featurecraft design --catalog fixtures/retail --spine customers --grain customer_id --label-column churned_at \\\n    --derivation 'CASE WHEN churned_at IS NOT NULL THEN 1 ELSE 0 END' --positive-class 1 --max-features 30"
    )]
    Design(DesignArgs),
    /// Compile a recipe and write its full table as Parquet to `WAREHOUSE/DOMAIN/TABLE/`.
    #[command(
        after_help = "Prints `{\"path\", \"rows\", \"format\"}` (and a Delta table's `\"version\"`) as JSON. Example:\n  featurecraft materialize fixtures/recipes/good/churn_basic.json --catalog fixtures/retail --warehouse warehouse"
    )]
    Materialize(MaterializeArgs),
    /// Test recipes: SQL and validation snapshots, and unit tests with given and expected rows.
    #[command(
        after_help = "For each recipe NAME.json: its SQL per dialect against __snapshots__/NAME.DIALECT.sql, its\nvalidation summary against __snapshots__/NAME.validation.json, and the unit tests of NAME.test.json.\nA new snapshot is written as FILE.new for review; --update writes the snapshots instead.\nExit 0: every check passed; 1: a check failed (or a snapshot is new); 2: usage.\nExample:\n  featurecraft test fixtures/recipes/good --catalog fixtures/retail --dialect duckdb,postgres"
    )]
    Test(TestArgs),
    /// Show what a new version of a recipe changes: features, SQL, and values on a sample.
    #[command(
        after_help = "Exit 0 either way (a diff is a report); 1 when a recipe does not compile; 2 for usage.\nExample:\n  featurecraft diff old.json new.json --catalog fixtures/retail --sample-size 500"
    )]
    Diff(DiffArgs),
    /// Fix a recipe's mistakes that have one clear correction (a misspelled column, table or field).
    #[command(
        after_help = "Prints each fix with its path on stderr and the fixed recipe on stdout; --write writes it back\ninstead. Exit 0 when the fixed recipe compiles, 1 when errors are left (each with why it was not\nfixed), 2 for usage. Example:\n  featurecraft fix fixes/E021_unknown_column.json --catalog fixtures/retail --write"
    )]
    Fix(FixArgs),
    /// Print the JSON Schema of a recipe (or of a job, or a design request) for editors.
    #[command(
        after_help = "Generated from the types the recipe reader uses. Example:\n  featurecraft schema > featurecraft-recipe.schema.json\n  # then, in a recipe file: \"$schema\": \"./featurecraft-recipe.schema.json\" (or map it in the editor's settings)"
    )]
    Schema(SchemaArgs),
    /// Print a catalog's schemas as JSON, the form `--catalog FILE.json` reads.
    #[command(
        after_help = "Example:\n  featurecraft describe-catalog --catalog fixtures/retail > retail_catalog.json"
    )]
    DescribeCatalog(DescribeArgs),
    /// Write the deterministic retail catalog used by the fixtures and benchmarks.
    #[command(
        after_help = "Example:\n  featurecraft generate --out bench-data/retail-100k --customers 100000 --event-files 4"
    )]
    Generate(GenerateArgs),
    /// Serve the catalog and recipe tools to an agent over the Model Context Protocol (stdio).
    #[command(
        after_help = "Example (what an MCP client runs; see the README's \"Agents\"):\n  featurecraft mcp --catalog \"$PWD/fixtures/retail\""
    )]
    Mcp(McpArgs),
    /// Run a process of an Apache Ballista cluster that knows featurecraft's functions.
    #[cfg(feature = "cluster")]
    #[command(
        subcommand,
        after_help = "Example (a scheduler and two executors on this machine, then a recipe on them):\n  featurecraft cluster scheduler --bind 127.0.0.1:50050 &\n  featurecraft cluster executor --scheduler 127.0.0.1:50050 --bind 127.0.0.1:50051 &\n  featurecraft cluster executor --scheduler 127.0.0.1:50050 --bind 127.0.0.1:50061 &\n  featurecraft validate fixtures/recipes/good/churn_basic.json --catalog \"$PWD/fixtures/retail\" --engine ballista://127.0.0.1:50050"
    )]
    Cluster(ClusterCommand),
}

/// The processes of a cluster.
#[cfg(feature = "cluster")]
#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Ballista's scheduler: clients send it plans, it splits them into tasks for executors.
    #[command(
        after_help = "Logs JSON lines on stderr; stops on SIGTERM or Ctrl-C. Example:\n  featurecraft cluster scheduler --bind 127.0.0.1:50050"
    )]
    Scheduler(SchedulerArgs),
    /// A Ballista executor with featurecraft's functions: it runs the scheduler's tasks.
    #[command(
        after_help = "Logs JSON lines on stderr; on SIGTERM or Ctrl-C it leaves the cluster after its running tasks.\nThe catalog and warehouse paths of the jobs it runs must be readable and writable here;\n--catalog and --warehouse confine its tasks to them.\nExample:\n  featurecraft cluster executor --scheduler 127.0.0.1:50050 --bind 127.0.0.1:50051 --work-dir /tmp/fc-executor-1 \\\n      --catalog /data/retail --warehouse /data/warehouse"
    )]
    Executor(ExecutorArgs),
}

/// Arguments of `cluster scheduler`.
#[cfg(feature = "cluster")]
#[derive(Args)]
pub struct SchedulerArgs {
    /// Where to listen for clients and executors.
    #[arg(long, default_value = "127.0.0.1:50050")]
    pub bind: std::net::SocketAddr,
}

/// Arguments of `cluster executor`.
#[cfg(feature = "cluster")]
#[derive(Args)]
pub struct ExecutorArgs {
    /// The scheduler's HOST:PORT.
    #[arg(long)]
    pub scheduler: String,
    /// Where to serve results (Arrow Flight); the gRPC port is the next one.
    #[arg(long, default_value = "127.0.0.1:50051")]
    pub bind: std::net::SocketAddr,
    /// The gRPC port the scheduler sends tasks to (default: the --bind port + 1).
    #[arg(long)]
    pub grpc_port: Option<u16>,
    /// Where to keep shuffle files (default: a temporary folder).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Tasks to run at once (default: the machine's cores).
    #[arg(long)]
    pub concurrent_tasks: Option<usize>,
    /// Memory the executor's tasks may hold together, e.g. 2G (spilling past it).
    #[arg(long)]
    pub memory_limit: Option<String>,
    /// Seconds to wait for the scheduler to accept connections before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = featurecraft::cluster::SCHEDULER_WAIT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub scheduler_wait: u64,
    /// A catalog folder (or object store prefix, s3://BUCKET/PREFIX) the tasks may read
    /// (repeatable). With --catalog or --warehouse a task reads and writes nowhere else.
    #[arg(long, value_name = "DIR")]
    pub catalog: Vec<PathBuf>,
    /// A warehouse folder (or object store prefix) the tasks may read and write (repeatable).
    #[arg(long, value_name = "DIR")]
    pub warehouse: Vec<PathBuf>,
}

/// How a report is printed.
#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// For people.
    Text,
    /// For programs.
    Json,
}

/// Arguments of `test`.
#[derive(Args)]
pub struct TestArgs {
    /// Recipe files, or folders whose `.json` recipes are tested (recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Catalog directory (Parquet files and SQL views), or a JSON catalog (no validation snapshot then).
    #[arg(long)]
    pub catalog: PathBuf,
    /// Dialects whose SQL is snapshotted (default: all seven).
    #[arg(long, value_delimiter = ',')]
    pub dialect: Vec<Dialect>,
    /// Write the snapshots instead of comparing them (accepts every change: review the diff first).
    #[arg(long)]
    pub update: bool,
    #[command(flatten)]
    pub sample: SampleSize,
    #[command(flatten)]
    pub memory: MemoryLimit,
    /// text: each check and a summary line; json: `{"passed", "failed", "results": [...]}`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Arguments of `diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// The recipe as it was.
    pub old: PathBuf,
    /// The recipe as it is now.
    pub new: PathBuf,
    /// Catalog directory (a JSON catalog compares features and SQL only).
    #[arg(long)]
    pub catalog: PathBuf,
    /// The dialect of the SQL diff.
    #[arg(long, default_value = "generic")]
    pub dialect: Dialect,
    /// How many entities the value comparison samples.
    #[arg(long, default_value_t = 1_000)]
    pub sample_size: usize,
    #[command(flatten)]
    pub memory: MemoryLimit,
    /// text for people; json: `{"features", "fields", "sql_diff", "values"}`.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Arguments of `fix`.
#[derive(Args)]
pub struct FixArgs {
    /// The recipe JSON file.
    pub recipe: PathBuf,
    /// Catalog directory or JSON catalog file.
    #[arg(long)]
    pub catalog: PathBuf,
    /// The dialect the recipe is compiled for while fixing.
    #[arg(long, default_value = "generic")]
    pub dialect: Dialect,
    /// Write the fixed recipe back to its file (when anything was fixed).
    #[arg(long)]
    pub write: bool,
}

/// Arguments of `schema`.
#[derive(Args)]
pub struct SchemaArgs {
    /// Which shape: a recipe file, a Job as the service returns it, or a design request.
    #[arg(long, value_enum, default_value_t = SchemaKind::Recipe)]
    pub kind: SchemaKind,
}

/// The shapes `schema` describes.
#[derive(Clone, Copy, ValueEnum)]
pub enum SchemaKind {
    /// A FeatureRecipe (with featurecraft's extensions).
    Recipe,
    /// A Job.
    Job,
    /// The `design` object of a job, or `featurecraft design`'s request.
    DesignRequest,
}

/// The kind of label, for `design`.
#[derive(Clone, Copy, ValueEnum)]
pub enum LabelTypeArg {
    Binary,
    Multiclass,
    Regression,
}

impl From<LabelTypeArg> for LabelType {
    fn from(arg: LabelTypeArg) -> LabelType {
        match arg {
            LabelTypeArg::Binary => LabelType::Binary,
            LabelTypeArg::Multiclass => LabelType::Multiclass,
            LabelTypeArg::Regression => LabelType::Regression,
        }
    }
}

/// How many entities a run samples.
#[derive(Args)]
pub struct SampleSize {
    /// How many entities (grain keys) to sample.
    #[arg(long, default_value_t = featurecraft::run::sample::DEFAULT_SAMPLE_SIZE)]
    pub sample_size: usize,
}

/// What a run may hold in memory.
#[derive(Args)]
pub struct MemoryLimit {
    /// Memory a run may use, e.g. 512M or 2G.
    #[arg(long, default_value = featurecraft::run::sample::DEFAULT_MEMORY_LIMIT)]
    pub memory_limit: String,
}

/// Where the queries run.
#[derive(Args)]
pub struct EngineChoice {
    /// local (DataFusion in this process), or ballista://HOST:PORT (a cluster started with
    /// `featurecraft cluster`, whose executors read the same catalog paths).
    #[arg(long, default_value = "local")]
    pub engine: Engine,
}

/// How long a run may take.
#[derive(Args)]
pub struct TimeLimit {
    /// Seconds the run may take before it is stopped with E054 (its cluster jobs
    /// cancelled); no limit by default.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS))]
    pub timeout: Option<u64>,
}

/// The longest `--timeout`: the library's longest time limit, 30 days.
const MAX_TIMEOUT_SECONDS: u64 = featurecraft::run::deadline::MAX_TIME_LIMIT.as_secs();

/// The threshold of the high-null columns.
#[derive(Args)]
pub struct NullThreshold {
    /// Null fraction above which a column is listed as high-null.
    #[arg(long, default_value_t = featurecraft::run::sample::DEFAULT_NULL_THRESHOLD)]
    pub null_threshold: f64,
}

/// The threshold of the leakage screen.
#[derive(Args)]
pub struct LeakThreshold {
    /// Score (AUC, or |Spearman ρ| for a numeric label) from which a feature alone is
    /// flagged as likely target leakage (W125), above 0 and at most 1.
    #[arg(long, default_value_t = featurecraft::run::leakage::DEFAULT_LEAK_THRESHOLD)]
    pub leak_threshold: f64,
}

/// `featurecraft compile`.
#[derive(Args)]
pub struct CompileArgs {
    /// The recipe JSON file.
    pub recipe: PathBuf,
    /// The catalog: a directory of Parquet/SQL files, or a JSON description.
    #[arg(long)]
    pub catalog: PathBuf,
    /// generic, datafusion, duckdb, postgres, snowflake, bigquery or databricks.
    #[arg(long, default_value = "generic")]
    pub dialect: Dialect,
    /// text: the CTAS on stdout, diagnostics on stderr; json: `{"dialect", "sql",
    /// "reparsed", "diagnostics"}` for programs.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Fail (exit 1) on warnings too, naming them; suspected leakage is an error.
    #[arg(long)]
    pub strict: bool,
}

/// `featurecraft mcp`.
#[derive(Args)]
pub struct McpArgs {
    /// The catalog directory (Parquet files and SQL views), loaded once at start; or a JSON
    /// catalog (schemas only), for the tools that need no data.
    #[arg(long)]
    pub catalog: PathBuf,
    #[command(flatten)]
    pub sample: SampleSize,
    #[command(flatten)]
    pub nulls: NullThreshold,
    #[command(flatten)]
    pub leak: LeakThreshold,
    #[command(flatten)]
    pub memory: MemoryLimit,
    #[command(flatten)]
    pub engine: EngineChoice,
    /// Seconds a validation or a design may take before it answers E054.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS))]
    pub timeout: u64,
    /// Fail a compile or validation on warnings too.
    #[arg(long)]
    pub strict: bool,
}

/// `featurecraft validate`.
#[derive(Args)]
pub struct ValidateArgs {
    /// The recipe JSON file.
    pub recipe: PathBuf,
    /// The catalog directory (Parquet files and SQL views).
    #[arg(long)]
    pub catalog: PathBuf,
    #[command(flatten)]
    pub sample: SampleSize,
    #[command(flatten)]
    pub nulls: NullThreshold,
    #[command(flatten)]
    pub leak: LeakThreshold,
    #[command(flatten)]
    pub memory: MemoryLimit,
    #[command(flatten)]
    pub engine: EngineChoice,
    #[command(flatten)]
    pub time_limit: TimeLimit,
    /// The dialect of the SQL shown with the summary.
    #[arg(long, default_value = "datafusion")]
    pub dialect: Dialect,
    /// text: a report for people; json: `{"sql", "validation", "diagnostics"}` for programs.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Fail (exit 1) on warnings too, naming them; suspected leakage is an error.
    #[arg(long)]
    pub strict: bool,
    /// Also print the first N sampled rows (in grain order) as a table (text format).
    #[arg(long, value_name = "N")]
    pub show: Option<usize>,
    /// Also write the sampled rows (grain, features, label) to this Parquet file, to
    /// compare them with a full run.
    #[arg(long)]
    pub sample_out: Option<PathBuf>,
}

/// `featurecraft retry`.
#[derive(Args)]
pub struct RetryArgs {
    /// The job JSON file.
    pub job: PathBuf,
    /// The catalog directory (Parquet files and SQL views).
    #[arg(long)]
    pub catalog: PathBuf,
    #[command(flatten)]
    pub sample: SampleSize,
    #[command(flatten)]
    pub leak: LeakThreshold,
    #[command(flatten)]
    pub memory: MemoryLimit,
    #[command(flatten)]
    pub engine: EngineChoice,
    #[command(flatten)]
    pub time_limit: TimeLimit,
    /// Apply the recipe's machine-applicable fixes first (as `featurecraft fix`), recorded in its notes.
    #[arg(long)]
    pub fix: bool,
    #[command(flatten)]
    pub crew: CrewArgs,
}

/// An external crew that proposes the recipe on a retry.
#[derive(Args)]
pub struct CrewArgs {
    /// `PROGRAM ARGS…` run (no shell) on a retry instead of the built-in crew: it reads
    /// `{"job", "diagnostics", "catalog", "round"}` on stdin and prints a recipe.
    #[arg(long, value_name = "COMMAND")]
    pub crew_command: Option<String>,
    /// How many times the crew may propose before the retry gives up.
    #[arg(long, value_name = "N", default_value_t = featurecraft::jobs::crew::DEFAULT_CREW_ROUNDS, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub crew_rounds: u32,
    /// Seconds one round of the crew may take (the process group is killed past it).
    #[arg(long, value_name = "SECONDS", default_value_t = featurecraft::jobs::crew::DEFAULT_CREW_ROUND_LIMIT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS))]
    pub crew_timeout: u64,
}

impl CrewArgs {
    /// The crew, if a command was given.
    pub fn crew(&self) -> Result<Option<featurecraft::jobs::crew::Crew>, String> {
        self.crew_command
            .as_deref()
            .map(|command| {
                featurecraft::jobs::crew::Crew::parse(
                    command,
                    self.crew_rounds,
                    std::time::Duration::from_secs(self.crew_timeout),
                )
                .map_err(|e| format!("--crew-command: {e}"))
            })
            .transpose()
    }
}

/// `featurecraft serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The catalog directory jobs read.
    #[arg(long)]
    pub catalog: PathBuf,
    /// The SQLite job database (created if missing).
    #[arg(long)]
    pub db: PathBuf,
    /// The address to listen on (`127.0.0.1:0` picks a free port, logged at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: String,
    /// Where materialized tables are written (`DOMAIN/TABLE/`).
    #[arg(long, default_value = "warehouse")]
    pub warehouse: PathBuf,
    #[command(flatten)]
    pub table_format: TableFormatChoice,
    #[command(flatten)]
    pub sample: SampleSize,
    #[command(flatten)]
    pub leak: LeakThreshold,
    #[command(flatten)]
    pub memory: MemoryLimit,
    #[command(flatten)]
    pub engine: EngineChoice,
    /// Seconds a validation or materialization may run before its job fails (1 to 30 days'
    /// worth, as `--timeout`).
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_SECONDS))]
    pub job_timeout: u64,
    /// Jobs and stateless compiles/validations running at once; more are refused with
    /// 503 (default: the number of cores). Each run may hold up to --memory-limit.
    #[arg(long)]
    pub max_jobs: Option<usize>,
    /// Verify RS256 tokens with these public keys (a JWKS file or a PEM public key)
    /// instead of HS256 with FEATURECRAFT_JWT_SECRET.
    #[arg(long, conflicts_with = "jwks_url")]
    pub jwks: Option<PathBuf>,
    /// Verify RS256 tokens with the identity provider's JWKS at this URL (fetched at
    /// start, and again for a key id it does not hold, at most once a minute).
    #[arg(long)]
    pub jwks_url: Option<String>,
    /// Tokens must carry this issuer (`iss`).
    #[arg(long)]
    pub jwt_issuer: Option<String>,
    /// Tokens must carry this audience (`aud`).
    #[arg(long)]
    pub jwt_audience: Option<String>,
    #[command(flatten)]
    pub crew: CrewArgs,
}

/// `featurecraft token`.
#[derive(Args)]
pub struct TokenArgs {
    /// The caller (`sub` claim): not empty, since the service refuses a token without one.
    #[arg(long, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub sub: String,
    /// Space-separated scopes, e.g. `automl:admin`.
    #[arg(long)]
    pub scope: Option<String>,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    pub ttl: String,
}

/// `featurecraft design`.
#[derive(Args)]
pub struct DesignArgs {
    /// The catalog directory (Parquet files and SQL views).
    #[arg(long)]
    pub catalog: PathBuf,
    /// The whole design request as JSON (the service's `design` object: a schedule, a
    /// label from the future, …) instead of --spine, --grain and the label's options.
    #[arg(long, value_name = "FILE.json", conflicts_with_all = ["spine", "grain", "label_column", "derivation", "cutoff_column"])]
    pub request: Option<PathBuf>,
    /// The table whose rows are the training rows; it holds the label.
    #[arg(long, required_unless_present = "request")]
    pub spine: Option<String>,
    /// The grain columns, comma-separated.
    #[arg(long, value_delimiter = ',', required_unless_present = "request")]
    pub grain: Vec<String>,
    /// The label's source column.
    #[arg(long, required_unless_present = "request")]
    pub label_column: Option<String>,
    /// A SQL expression computing the label (default: the column itself).
    #[arg(long)]
    pub derivation: Option<String>,
    /// The kind of label.
    #[arg(long, value_enum, default_value_t = LabelTypeArg::Binary)]
    pub label_type: LabelTypeArg,
    /// For binary labels: the value meaning "positive".
    #[arg(long)]
    pub positive_class: Option<String>,
    /// Keep at most this many features, the most informative first.
    #[arg(long)]
    pub max_features: Option<usize>,
    /// The designed recipe's target table.
    #[arg(long, default_value = "designed_features")]
    pub target_table: String,
    /// Design a point-in-time recipe: the grain column holding each row's cutoff.
    #[arg(long)]
    pub cutoff_column: Option<String>,
    /// With --cutoff-column: a table's time column, `TABLE=COLUMN` (repeatable).
    #[arg(long = "time-column", value_name = "TABLE=COLUMN")]
    pub time_columns: Vec<String>,
    /// With --cutoff-column: a table read whole, declared static (repeatable).
    #[arg(long = "static-table", value_name = "TABLE")]
    pub static_tables: Vec<String>,
    /// With --cutoff-column: windows each aggregate of a timed table is also computed over.
    #[arg(long, value_delimiter = ',', value_name = "7d,30d,…")]
    pub windows: Vec<String>,
    /// With --cutoff-column: a source row exactly at the cutoff counts.
    #[arg(long)]
    pub include_cutoff: bool,
    /// A relationship to follow, `CHILD_TABLE.COLUMN=PARENT_TABLE.KEY` (repeatable); it
    /// replaces what the crew discovers for that child column.
    #[arg(long = "relationship", value_name = "CHILD.COL=PARENT.KEY")]
    pub relationships: Vec<String>,
    /// How deep aggregates stack: 1, or 2 to also aggregate a table's rows' aggregates of
    /// their children (the average spend per session).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u8).range(1..=2))]
    pub max_depth: u8,
    /// The aggregate primitives proposed (Featuretools' names), comma-separated; all by default.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "count,sum,mean,max,min,std,num_unique"
    )]
    pub primitives: Vec<String>,
    #[command(flatten)]
    pub sample: SampleSize,
    #[command(flatten)]
    pub nulls: NullThreshold,
    #[command(flatten)]
    pub leak: LeakThreshold,
    #[command(flatten)]
    pub memory: MemoryLimit,
    #[command(flatten)]
    pub engine: EngineChoice,
    #[command(flatten)]
    pub time_limit: TimeLimit,
    /// text: the recipe with a report of what was dropped; json: the recipe alone.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also write `{"considered", "dropped": [{"name", "reason"}]}` to this file.
    #[arg(long)]
    pub dropped: Option<PathBuf>,
}

/// How a materialized table is written.
#[derive(Args)]
pub struct TableFormatChoice {
    /// `parquet` (a folder of Parquet files, published whole) or `delta` (a Delta Lake
    /// table, each materialization one commit that overwrites it).
    #[arg(long, value_name = "parquet|delta", default_value = "parquet")]
    pub table_format: featurecraft::contract::job::TableFormat,
}

/// `featurecraft materialize`.
#[derive(Args)]
pub struct MaterializeArgs {
    /// The recipe JSON file.
    pub recipe: PathBuf,
    /// The catalog directory (Parquet files and SQL views).
    #[arg(long)]
    pub catalog: PathBuf,
    /// Where the table is written.
    #[arg(long, default_value = "warehouse")]
    pub warehouse: PathBuf,
    #[command(flatten)]
    pub table_format: TableFormatChoice,
    /// The folder under the warehouse (a job's domain); by default the recipe's
    /// `target_table` prefix (`retail.churn` → `retail`), or `default`.
    #[arg(long)]
    pub domain: Option<String>,
    #[command(flatten)]
    pub memory: MemoryLimit,
    #[command(flatten)]
    pub engine: EngineChoice,
    #[command(flatten)]
    pub time_limit: TimeLimit,
}

/// `featurecraft describe-catalog`.
#[derive(Args)]
pub struct DescribeArgs {
    /// The catalog directory.
    #[arg(long)]
    pub catalog: PathBuf,
    /// Print where each table's rows come from (Parquet files or view SQL) instead.
    #[arg(long)]
    pub sources: bool,
}

/// `featurecraft generate`.
#[derive(Args)]
pub struct GenerateArgs {
    /// Directory to write into.
    #[arg(long)]
    pub out: PathBuf,
    /// Number of customers (about 20 events and 3 orders each).
    #[arg(long, default_value_t = 1000)]
    pub customers: u64,
    /// Files the events table is split into (at least 2, at most the customers).
    #[arg(long, default_value_t = 2)]
    pub event_files: usize,
}
