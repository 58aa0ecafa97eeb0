//! The catalog: which tables exist and what their columns are.
//!
//! A catalog comes from a directory, a prefix in an object store, or a JSON description.
//!
//! **Directory** (the default, embedded catalog), local or in an object store
//! (`s3://BUCKET/PREFIX`, `gs://…`, `az://…`: see [`storage`]; a prefix's objects are
//! listed once and read as the entries of a folder):
//! - `NAME.parquet` is table `NAME`;
//! - a folder `NAME/` whose entries are only Parquet files, at least two, sharing one
//!   schema is table `NAME`, read from all of them;
//! - a folder `NAME/` holding a `_delta_log/` is the Delta Lake table `NAME`, read at its
//!   latest version (see [`delta`]);
//! - `NAME.sql` holding one `SELECT` (or `WITH … SELECT`) is view `NAME` over the other tables;
//! - any other folder `DOMAIN/` is a domain: the entries above inside it become
//!   `DOMAIN.NAME`. Domains do not nest. A folder holding a single Parquet file is a domain
//!   of one table. A domain whose only entries are two or more Parquet files of one schema
//!   would read as a multi-file table: give such tables their own folders (`DOMAIN/NAME/`).
//!
//! Files of other kinds (a README, `_SUCCESS`) and hidden files are ignored. Schemas come
//! from Parquet footers (no data is read); a view's schema comes from planning its query
//! in DataFusion over the tables.
//!
//! **JSON** (`compile` with no data): an object of table name → object of column name →
//! type name, in column order, e.g. `{"orders": {"customer_id": "int64", "amount": "double"}}`.
//! Type names are those of [`crate::types::parse_type_name`].
//!
//! Table and column lookups ignore ASCII case; the names as stored are the ones rendered.

pub mod delta;
pub(crate) mod listing;
pub mod storage;

pub use listing::{
    CatalogError, ColumnSpread, ColumnSpreads, DataFile, MAX_OBJECTS, is_catalog_file,
    is_catalog_name, list_objects,
};

use crate::types::parse_type_name;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::context::{SQLOptions, SessionContext};
use listing::{Entry, Reader, catalog_error, has_extension};
use object_store::path::Path as ObjectPath;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use storage::Location;

/// A column of a catalog table.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The name as the catalog spells it (Parquet field or view column).
    pub name: String,
    /// The Arrow type, from the footer or the planned view.
    pub data_type: DataType,
    /// Whether the column may hold NULLs.
    pub nullable: bool,
}

/// Where a table's rows come from.
#[derive(Debug, Clone, PartialEq)]
pub enum TableSource {
    /// Parquet files and their total row count from the footers.
    Parquet {
        /// The table's files, in name order (a Delta table's: those of its version).
        files: Vec<DataFile>,
        /// The Delta table's version read (`None`: plain Parquet files).
        delta_version: Option<u64>,
        /// Their rows, summed from the footers.
        row_count: u64,
        /// How the values of each integer column lie in the files' row groups, from
        /// the footers (see [`ColumnSpread`]).
        spreads: ColumnSpreads,
    },
    /// A view: one query over other catalog tables, as written and as parsed (the parsed
    /// query is what DataFusion plans).
    View {
        /// The view file as written.
        sql: String,
        /// The one query it holds, parsed once.
        query: Box<sqlparser::ast::Query>,
        /// Where the view was read from (a path or a URL), for messages.
        file: PathBuf,
    },
    /// Declared in a JSON catalog: a schema without data.
    Declared,
    /// Rows held in memory: a recipe unit test's given rows ([`Catalog::with_rows`]).
    Memory {
        /// The rows, in the table's schema (every column nullable).
        rows: RecordBatch,
    },
}

/// A table or view of the catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The name recipes use: `NAME` or `DOMAIN.NAME`.
    pub name: String,
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// Where the rows come from.
    pub source: TableSource,
}

impl Table {
    /// The column named `name`, ignoring ASCII case.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name).or_else(|| {
            self.columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
        })
    }

    /// The table's name split into its parts (`["retail", "orders"]`).
    pub fn name_parts(&self) -> Vec<&str> {
        self.name.split('.').collect()
    }

    /// The Arrow schema of the table.
    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type.clone(), c.nullable))
                .collect::<Vec<_>>(),
        ))
    }

    fn table_reference(&self) -> TableReference {
        match self.name.split_once('.') {
            Some((domain, name)) => TableReference::partial(domain, name),
            None => TableReference::bare(self.name.as_str()),
        }
    }
}

/// The tables and views a recipe may read.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    tables: BTreeMap<String, Table>,
    root: Option<Location>,
    /// The views (lower-case names) in the order they planned, each after the views it
    /// reads: a session registers them in this order, planning each once.
    view_order: Vec<String>,
}

impl Catalog {
    /// A catalog of the given tables (names must be unique ignoring case).
    pub fn from_tables(tables: impl IntoIterator<Item = Table>) -> Catalog {
        let mut catalog = Catalog::default();
        for table in tables {
            catalog
                .tables
                .insert(table.name.to_ascii_lowercase(), table);
        }
        catalog
    }

    /// This catalog with some tables replaced by others of the same name (a recipe's view
    /// of a table with derived columns); the files stay where they are.
    pub fn with_tables_replaced(&self, tables: &[Table]) -> Catalog {
        let mut catalog = self.clone();
        for table in tables {
            catalog
                .tables
                .insert(table.name.to_ascii_lowercase(), table.clone());
        }
        catalog
    }

    /// This catalog with its data replaced by rows held in memory, as a recipe's unit test
    /// gives them: each table takes its rows from `rows` (keyed by table name, ignoring
    /// case), and a table without given rows is empty. A view keeps its query (over the
    /// given rows of its tables) unless rows are given for the view itself. Every column
    /// becomes nullable: a column a test leaves out is NULL.
    pub fn with_rows(&self, rows: &BTreeMap<String, RecordBatch>) -> Catalog {
        let given: BTreeMap<String, &RecordBatch> = rows
            .iter()
            .map(|(name, batch)| (name.to_ascii_lowercase(), batch))
            .collect();
        let mut catalog = self.clone();
        for (key, table) in catalog.tables.iter_mut() {
            let is_view = matches!(table.source, TableSource::View { .. });
            let batch = match given.get(key) {
                Some(batch) => (*batch).clone(),
                None if is_view => continue,
                None => RecordBatch::new_empty(nullable(&table.arrow_schema())),
            };
            for column in &mut table.columns {
                column.nullable = true;
            }
            table.source = TableSource::Memory { rows: batch };
        }
        catalog
    }

    /// Each Parquet file's table's [`ColumnSpreads`], by the file's path in its store (the
    /// location DataFusion's scans name it by): how `run::one_phase` tells how a scan's
    /// rows lie. No file is touched (registering a table checks its files).
    pub fn spreads_by_location(&self) -> HashMap<ObjectPath, Arc<ColumnSpreads>> {
        let mut by_location = HashMap::new();
        for table in self.tables.values() {
            let TableSource::Parquet { files, spreads, .. } = &table.source else {
                continue;
            };
            let spreads = Arc::new(spreads.clone());
            for file in files {
                if let Ok(url) = file_url(file) {
                    by_location.insert(url.prefix().clone(), Arc::clone(&spreads));
                }
            }
        }
        by_location
    }

    /// Loads a catalog from a directory (a path, or an object store's prefix: see
    /// [`storage::Location`]), or from a `.json` description.
    pub async fn load(path: &Path) -> Result<Catalog, CatalogError> {
        match Location::parse(path).map_err(|m| catalog_error(path, m))? {
            Location::Object(prefix) => {
                let entries = listing::object_entries(&prefix).await?;
                Catalog::load_entries(Location::Object(prefix), entries).await
            }
            Location::Local(path) if path.is_dir() => Catalog::load_dir(&path).await,
            Location::Local(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| catalog_error(&path, format!("cannot read: {e}")))?;
                Catalog::from_json(&text).map_err(|e| CatalogError {
                    path: path.clone(),
                    message: e.message,
                })
            }
        }
    }

    /// Reads a JSON catalog: table name → column name → type name.
    pub fn from_json(text: &str) -> Result<Catalog, CatalogError> {
        let here = Path::new("<json>");
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| catalog_error(here, format!("not valid JSON: {e}")))?;
        let tables = value
            .as_object()
            .ok_or_else(|| catalog_error(here, "expected an object of table name → columns"))?;
        let mut catalog = Catalog::default();
        for (table_name, columns) in tables {
            check_table_name(table_name).map_err(|m| catalog_error(here, m))?;
            let columns = columns.as_object().ok_or_else(|| {
                catalog_error(
                    here,
                    format!("table `{table_name}`: expected an object of column → type"),
                )
            })?;
            let mut parsed = Vec::with_capacity(columns.len());
            for (column, type_name) in columns {
                let type_text = type_name.as_str().ok_or_else(|| {
                    catalog_error(
                        here,
                        format!(
                            "table `{table_name}`, column `{column}`: the type must be a string"
                        ),
                    )
                })?;
                let data_type = parse_type_name(type_text).ok_or_else(|| {
                    catalog_error(
                        here,
                        format!(
                            "table `{table_name}`, column `{column}`: unknown type `{type_text}`"
                        ),
                    )
                })?;
                parsed.push(Column {
                    name: column.clone(),
                    data_type,
                    nullable: true,
                });
            }
            catalog.insert(
                Table {
                    name: table_name.clone(),
                    columns: parsed,
                    source: TableSource::Declared,
                },
                here,
            )?;
        }
        Ok(catalog)
    }

    /// Loads a directory catalog (see the module docs for the layout).
    pub async fn load_dir(root: &Path) -> Result<Catalog, CatalogError> {
        let entries = listing::local_entries(root, 3)?;
        Catalog::load_entries(Location::Local(root.to_path_buf()), entries).await
    }

    /// The catalog the entries of the folder at `root` hold (the layout of the module docs).
    async fn load_entries(root: Location, entries: Vec<Entry>) -> Result<Catalog, CatalogError> {
        let store = match &root {
            Location::Object(prefix) => Some(Arc::clone(prefix.store())),
            Location::Local(_) => None,
        };
        let mut reader = Reader::new(store);
        let mut catalog = Catalog {
            root: Some(root),
            ..Catalog::default()
        };
        let mut views = Vec::new();
        for entry in entries {
            match entry {
                Entry::Folder {
                    name,
                    place,
                    entries,
                } => match folder_table(&mut reader, &entries).await? {
                    Some(table) => catalog.insert(table_named(name, table), &place)?,
                    None => {
                        check_table_name(&name)
                            .map_err(|m| catalog_error(&place, format!("domain folder: {m}")))?;
                        for inner in entries {
                            let qualified = format!("{name}.{}", inner.stem());
                            catalog
                                .load_entry(&mut reader, inner, qualified, &mut views)
                                .await?;
                        }
                    }
                },
                Entry::Delta { name, place, table } => {
                    let read = delta_table(&mut reader, &table, &place).await?;
                    catalog.insert(table_named(name, read), &place)?;
                }
                file => {
                    let name = file.stem();
                    catalog
                        .load_entry(&mut reader, file, name, &mut views)
                        .await?;
                }
            }
        }
        catalog.plan_views(views).await?;
        Ok(catalog)
    }

    async fn load_entry(
        &mut self,
        reader: &mut Reader,
        entry: Entry,
        name: String,
        views: &mut Vec<(String, PathBuf, String)>,
    ) -> Result<(), CatalogError> {
        match entry {
            Entry::Folder { place, entries, .. } => match folder_table(reader, &entries).await? {
                Some(table) => self.insert(table_named(name, table), &place),
                None => Err(catalog_error(
                    &place,
                    "domains do not nest: a folder inside a domain must hold only Parquet files",
                )),
            },
            Entry::Delta { place, table, .. } => {
                let read = delta_table(reader, &table, &place).await?;
                self.insert(table_named(name, read), &place)
            }
            Entry::File(file) if has_extension(&file, "parquet") => {
                let place = file.place();
                let table = parquet_table(reader, vec![file]).await?;
                self.insert(table_named(name, table), &place)
            }
            Entry::File(file) if has_extension(&file, "sql") => {
                let place = file.place();
                check_table_name(&name).map_err(|m| catalog_error(&place, m))?;
                let sql = reader.text(&file).await?;
                views.push((name, place, sql));
                Ok(())
            }
            Entry::File(_) => Ok(()),
        }
    }

    fn insert(&mut self, table: Table, at: &Path) -> Result<(), CatalogError> {
        check_table_name(&table.name).map_err(|m| catalog_error(at, m))?;
        let key = table.name.to_ascii_lowercase();
        if let Some(existing) = self.tables.get(&key) {
            return Err(catalog_error(
                at,
                format!(
                    "table `{}` is defined twice (also as `{}`)",
                    table.name, existing.name
                ),
            ));
        }
        self.tables.insert(key, table);
        Ok(())
    }

    /// Plans views in dependency order in one session: each view is registered there as
    /// soon as it plans, and the views are taken in the order of the tables they read (a
    /// view after the views it names), so a chain of views plans each once. A view whose
    /// inputs are not known yet waits for the next pass; a pass that plans nothing reports
    /// the first error.
    async fn plan_views(
        &mut self,
        pending: Vec<(String, PathBuf, String)>,
    ) -> Result<(), CatalogError> {
        let ctx = self.session_context(SessionContext::new()).await?;
        let mut parsed = Vec::with_capacity(pending.len());
        for (name, file, sql) in pending {
            let query = view_query(&sql).map_err(|m| catalog_error(&file, m))?;
            parsed.push((name, file, sql, query));
        }
        let mut pending = in_reading_order(parsed);
        while !pending.is_empty() {
            let before = pending.len();
            let mut still_pending = Vec::new();
            let mut errors: Vec<CatalogError> = Vec::new();
            for (name, file, sql, query) in pending {
                match plan_query(&ctx.state(), query.clone()).await {
                    Ok(plan) => {
                        let columns = columns_of(plan.schema().as_arrow());
                        let table = Table {
                            name,
                            columns,
                            source: TableSource::View {
                                sql,
                                query: Box::new(query),
                                file: file.clone(),
                            },
                        };
                        let frame = datafusion::dataframe::DataFrame::new(ctx.state(), plan);
                        register(&ctx, &table, frame.into_view(), &file)?;
                        self.view_order.push(table.name.to_ascii_lowercase());
                        self.insert(table, &file)?;
                    }
                    Err(e) => {
                        errors.push(catalog_error(
                            &file,
                            format!("view does not plan: {}", first_line(&e.to_string())),
                        ));
                        still_pending.push((name, file, sql, query));
                    }
                }
            }
            if still_pending.len() == before {
                return Err(errors.remove(0));
            }
            pending = still_pending;
        }
        Ok(())
    }

    /// The catalog as the JSON description [`Catalog::from_json`] reads (schemas only), so
    /// that `compile` can run where the data is not.
    pub fn to_json(&self) -> Result<serde_json::Value, CatalogError> {
        let mut tables = serde_json::Map::new();
        for table in self.tables.values() {
            let mut columns = serde_json::Map::new();
            for column in &table.columns {
                let name = crate::types::type_name(&column.data_type).ok_or_else(|| {
                    catalog_error(
                        &self.root_place(),
                        format!(
                            "table `{}`, column `{}`: type {} has no JSON name",
                            table.name, column.name, column.data_type
                        ),
                    )
                })?;
                columns.insert(column.name.clone(), serde_json::Value::String(name));
            }
            tables.insert(table.name.clone(), serde_json::Value::Object(columns));
        }
        Ok(serde_json::Value::Object(tables))
    }

    /// Where each table's rows come from: `{"NAME": {"parquet": [FILE, …]} | {"view": SQL}}`.
    /// Tools that load the catalog into another engine read this instead of re-implementing
    /// the directory rules above.
    pub fn sources_json(&self) -> serde_json::Value {
        let mut tables = serde_json::Map::new();
        for table in self.tables.values() {
            let source = match &table.source {
                TableSource::Parquet { files, .. } => {
                    let files: Vec<String> = files.iter().map(DataFile::shown).collect();
                    serde_json::json!({ "parquet": files })
                }
                TableSource::View { sql, .. } => serde_json::json!({ "view": sql }),
                TableSource::Declared => serde_json::json!({ "declared": true }),
                TableSource::Memory { rows } => serde_json::json!({ "memory": rows.num_rows() }),
            };
            tables.insert(table.name.clone(), source);
        }
        serde_json::Value::Object(tables)
    }

    /// The table named `name`, ignoring ASCII case.
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.get(&name.to_ascii_lowercase())
    }

    /// All tables and views, ordered by name.
    pub fn tables(&self) -> impl Iterator<Item = &Table> {
        self.tables.values()
    }

    /// The directory the catalog was read from (a path or an object store's prefix), if any.
    pub fn root(&self) -> Option<&Location> {
        self.root.as_ref()
    }

    /// The catalog's directory as the `path` of a [`CatalogError`].
    fn root_place(&self) -> PathBuf {
        self.root
            .as_ref()
            .map(|root| PathBuf::from(root.to_string()))
            .unwrap_or_default()
    }

    /// Registers every table and view of the catalog in `ctx` (Parquet tables read their
    /// files; views are planned over them). Declared tables, which have no data, are skipped.
    pub async fn session_context(
        &self,
        ctx: SessionContext,
    ) -> Result<SessionContext, CatalogError> {
        let here = self.root_place();
        if let Some(Location::Object(prefix)) = &self.root {
            ctx.runtime_env()
                .register_object_store(prefix.base(), Arc::clone(prefix.store()));
        }
        let mut views = Vec::new();
        for table in self.tables.values() {
            match &table.source {
                TableSource::Parquet { files, .. } => {
                    let urls = files
                        .iter()
                        .map(|file| listing_url(file, &table.name))
                        .collect::<Result<Vec<_>, _>>()?;
                    // The files are listed one by one: no extension filter, which would
                    // read `NAME.PARQUET` (matched in any case at load) as empty.
                    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
                        .with_file_extension("");
                    let config = ListingTableConfig::new_with_multi_paths(urls)
                        .with_listing_options(options)
                        .with_schema(table.arrow_schema());
                    let provider = ListingTable::try_new(config)
                        .map_err(|e| catalog_error(&here, e.to_string()))?;
                    register(&ctx, table, Arc::new(provider), &here)?;
                }
                TableSource::View { query, file, .. } => views.push((table, query, file)),
                TableSource::Memory { rows } => {
                    let provider = datafusion::datasource::MemTable::try_new(
                        rows.schema(),
                        vec![vec![rows.clone()]],
                    )
                    .map_err(|e| catalog_error(&here, e.to_string()))?;
                    register(&ctx, table, Arc::new(provider), &here)?;
                }
                TableSource::Declared => {}
            }
        }
        // Views may read views: in the order they planned at load, each after those it
        // reads; then in rounds until every view plans (a catalog built otherwise).
        views.sort_by_key(|(table, _, _)| {
            let key = table.name.to_ascii_lowercase();
            self.view_order
                .iter()
                .position(|v| *v == key)
                .unwrap_or(usize::MAX)
        });
        while !views.is_empty() {
            let before = views.len();
            let mut waiting = Vec::new();
            let mut last_error = None;
            for (table, query, file) in views {
                match plan_query(&ctx.state(), query.as_ref().clone()).await {
                    Ok(plan) => {
                        let frame = datafusion::dataframe::DataFrame::new(ctx.state(), plan);
                        register(&ctx, table, frame.into_view(), file)?
                    }
                    Err(e) => {
                        last_error = Some(catalog_error(
                            file,
                            format!("view does not plan: {}", first_line(&e.to_string())),
                        ));
                        waiting.push((table, query, file));
                    }
                }
            }
            if waiting.len() == before {
                return Err(last_error.unwrap_or_else(|| catalog_error(&here, "views do not plan")));
            }
            views = waiting;
        }
        Ok(ctx)
    }
}

/// Where DataFusion reads `file` of table `table`: a local file's absolute path (checked to
/// be there still: a file that vanished would read as an empty table), an object's URL.
fn listing_url(file: &DataFile, table: &str) -> Result<ListingTableUrl, CatalogError> {
    if let DataFile::Local(path) = file
        && !path.is_file()
    {
        return Err(catalog_error(
            path,
            format!(
                "data file of table `{table}` is missing (moved or deleted since the catalog was read)"
            ),
        ));
    }
    file_url(file)
}

/// The URL DataFusion reads `file` by (no file is touched).
fn file_url(file: &DataFile) -> Result<ListingTableUrl, CatalogError> {
    let text = match file {
        DataFile::Local(path) => {
            let absolute =
                std::path::absolute(path).map_err(|e| catalog_error(path, e.to_string()))?;
            absolute.to_string_lossy().into_owned()
        }
        DataFile::Object { url, .. } => url.clone(),
    };
    ListingTableUrl::parse(&text).map_err(|e| catalog_error(&file.place(), e.to_string()))
}

/// Views ordered so that each comes after the views it reads (by the table names its query
/// names, ignoring case); views in a cycle, or reading what no view defines, keep their
/// place at the end, where planning reports them.
fn in_reading_order(
    views: Vec<(String, PathBuf, String, sqlparser::ast::Query)>,
) -> Vec<(String, PathBuf, String, sqlparser::ast::Query)> {
    let names: Vec<String> = views.iter().map(|v| v.0.to_ascii_lowercase()).collect();
    let reads: Vec<Vec<usize>> = views
        .iter()
        .map(|(_, _, _, query)| {
            let mut found = Vec::new();
            let _ = sqlparser::ast::visit_relations(query, |relation| {
                let name = relation
                    .0
                    .iter()
                    .map(|part| part.to_string().trim_matches('"').to_ascii_lowercase())
                    .collect::<Vec<_>>()
                    .join(".");
                if let Some(i) = names.iter().position(|n| *n == name) {
                    found.push(i);
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            found
        })
        .collect();
    let mut placed = vec![false; views.len()];
    let mut order = Vec::with_capacity(views.len());
    loop {
        let before = order.len();
        for i in 0..views.len() {
            if !placed[i] && reads[i].iter().all(|&r| placed[r] || r == i) {
                placed[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            break;
        }
    }
    order.extend((0..views.len()).filter(|&i| !placed[i]));
    let mut slots: Vec<Option<_>> = views.into_iter().map(Some).collect();
    order.into_iter().filter_map(|i| slots[i].take()).collect()
}

/// `schema` with every field nullable.
pub fn nullable(schema: &Schema) -> SchemaRef {
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect::<Vec<_>>(),
    ))
}

/// SQL options that refuse DDL, DML and statements: catalog views and validation only read.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// Plans a query featurecraft parsed or built, read-only. DataFusion is handed the AST
/// that was analyzed, never text printed and parsed again, so what runs is exactly what
/// was checked.
pub async fn plan_query(
    state: &datafusion::execution::SessionState,
    query: sqlparser::ast::Query,
) -> datafusion::common::Result<datafusion::logical_expr::LogicalPlan> {
    let statement = datafusion::sql::parser::Statement::Statement(Box::new(
        sqlparser::ast::Statement::Query(Box::new(query)),
    ));
    let plan = state.statement_to_plan(statement).await?;
    read_only().verify_plan(&plan)?;
    Ok(plan)
}

fn register(
    ctx: &SessionContext,
    table: &Table,
    provider: Arc<dyn datafusion::catalog::TableProvider>,
    at: &Path,
) -> Result<(), CatalogError> {
    let reference = table.table_reference();
    if let Some(domain) = reference.schema() {
        let catalog = ctx
            .catalog("datafusion")
            .ok_or_else(|| catalog_error(at, "the session has no default catalog"))?;
        if catalog.schema(domain).is_none() {
            catalog
                .register_schema(domain, Arc::new(MemorySchemaProvider::new()))
                .map_err(|e| catalog_error(at, e.to_string()))?;
        }
    }
    ctx.register_table(reference, provider)
        .map_err(|e| catalog_error(at, e.to_string()))?;
    Ok(())
}

/// The one query a view file holds, parsed once: the same AST is checked here and
/// planned by DataFusion.
fn view_query(sql: &str) -> Result<sqlparser::ast::Query, String> {
    use sqlparser::ast::Statement;
    let mut statements =
        sqlparser::parser::Parser::parse_sql(&sqlparser::dialect::GenericDialect {}, sql)
            .map_err(|e| format!("view does not parse: {e}"))?;
    // The same bound as a recipe fragment's: DataFusion walks the view's expressions
    // recursively when it plans it.
    let depth = crate::sql::depth(&statements);
    if depth > crate::sql::MAX_EXPRESSION_DEPTH {
        crate::sql::drop_deep(statements, depth);
        return Err(format!(
            "view nests expressions {depth} levels deep; the limit is {}",
            crate::sql::MAX_EXPRESSION_DEPTH
        ));
    }
    if let [Statement::Query(_)] = statements.as_slice()
        && let Some(Statement::Query(query)) = statements.pop()
    {
        return Ok(*query);
    }
    match statements.as_slice() {
        [] => Err("view file is empty: it must hold one SELECT".into()),
        [_] => {
            Err("a view file must hold one SELECT (or WITH … SELECT), not another statement".into())
        }
        _ => Err(format!(
            "a view file must hold one statement, found {}",
            statements.len()
        )),
    }
}

/// Names must be one or two portable identifiers joined by a dot (`orders`, `retail.orders`).
fn check_table_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('.').collect();
    let portable = |p: &str| {
        let mut chars = p.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if parts.len() > 2 || !parts.iter().all(|p| portable(p)) {
        return Err(format!(
            "`{name}` is not a usable table name: use letters, digits and underscores, optionally `domain.name`"
        ));
    }
    Ok(())
}

/// A folder is a table when it holds only Parquet files (and ignorable files), at least two,
/// sharing one schema.
async fn folder_table(
    reader: &mut Reader,
    entries: &[Entry],
) -> Result<Option<Table>, CatalogError> {
    let mut parquet_files = Vec::new();
    for entry in entries {
        match entry {
            Entry::Folder { .. } | Entry::Delta { .. } => return Ok(None),
            Entry::File(file) if has_extension(file, "sql") => return Ok(None),
            Entry::File(file) if has_extension(file, "parquet") => parquet_files.push(file.clone()),
            Entry::File(_) => {}
        }
    }
    // One file is a domain holding one table: a one-file table is written `NAME.parquet`.
    if parquet_files.len() < 2 {
        return Ok(None);
    }
    let first = reader.footer(&parquet_files[0]).await?.0;
    for other in &parquet_files[1..] {
        if !same_columns(&first, &reader.footer(other).await?.0) {
            return Ok(None);
        }
    }
    parquet_table(reader, parquet_files).await.map(Some)
}

async fn parquet_table(reader: &mut Reader, files: Vec<DataFile>) -> Result<Table, CatalogError> {
    let mut schema: Option<SchemaRef> = None;
    let mut row_count = 0u64;
    let mut spreads: Option<ColumnSpreads> = None;
    for file in &files {
        let (file_schema, rows, file_spreads) = reader.footer(file).await?;
        spreads = Some(listing::with_file_spreads(spreads, &file_spreads));
        match &schema {
            None => schema = Some(file_schema),
            Some(first) if !same_columns(first, &file_schema) => {
                return Err(catalog_error(
                    &file.place(),
                    "schema differs from the other files of its table",
                ));
            }
            // A column is nullable when it is in any file (writers mark a column that
            // happens to hold no NULL in one file as not nullable).
            Some(first) => {
                let fields: Vec<Field> = first
                    .fields()
                    .iter()
                    .zip(file_schema.fields())
                    .map(|(a, b)| {
                        a.as_ref()
                            .clone()
                            .with_nullable(a.is_nullable() || b.is_nullable())
                    })
                    .collect();
                schema = Some(Arc::new(Schema::new(fields)));
            }
        }
        row_count += rows;
    }
    let schema = schema
        .ok_or_else(|| catalog_error(Path::new("."), "a table needs at least one Parquet file"))?;
    let columns = columns_of(&schema);
    Ok(Table {
        name: String::new(),
        columns,
        source: TableSource::Parquet {
            files,
            row_count,
            delta_version: None,
            spreads: spreads.unwrap_or_default(),
        },
    })
}

/// The Delta table at `table` at its latest version: its files, its schema as the log
/// states it, and its rows from the files' footers.
async fn delta_table(
    reader: &mut Reader,
    table: &storage::ObjectPrefix,
    place: &Path,
) -> Result<Table, CatalogError> {
    let snapshot = delta::snapshot(table.store(), table.prefix())
        .await
        .map_err(|m| catalog_error(place, format!("cannot read the Delta table: {m}")))?
        .ok_or_else(|| catalog_error(place, "the Delta table's log has no commit"))?;
    let local = table.base().scheme() == "file";
    let mut files = Vec::with_capacity(snapshot.files.len());
    let mut row_count = 0;
    let mut spreads: Option<ColumnSpreads> = None;
    for (path, size) in &snapshot.files {
        let file = if local {
            DataFile::Local(place.join(path))
        } else {
            let key = path
                .split('/')
                .fold(table.prefix().clone(), |key, part| key.join(part));
            DataFile::Object {
                url: table.url_of(&key),
                key: key.to_string(),
                size: *size,
                e_tag: None,
            }
        };
        let (_, rows, file_spreads) = reader.footer(&file).await?;
        row_count += rows;
        spreads = Some(listing::with_file_spreads(spreads, &file_spreads));
        files.push(file);
    }
    Ok(Table {
        name: String::new(),
        columns: columns_of(&snapshot.schema),
        source: TableSource::Parquet {
            files,
            row_count,
            delta_version: Some(snapshot.version),
            spreads: spreads.unwrap_or_default(),
        },
    })
}

/// The same column names and types in the same order, whatever each file says of NULLs.
fn same_columns(a: &Schema, b: &Schema) -> bool {
    a.fields().len() == b.fields().len()
        && a.fields()
            .iter()
            .zip(b.fields())
            .all(|(x, y)| x.name() == y.name() && x.data_type() == y.data_type())
}

fn columns_of(schema: &Schema) -> Vec<Column> {
    schema
        .fields()
        .iter()
        .map(|f| Column {
            name: f.name().clone(),
            data_type: f.data_type().clone(),
            nullable: f.is_nullable(),
        })
        .collect()
}

fn table_named(name: String, mut table: Table) -> Table {
    table.name = name;
    table
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_nested_too_deep_is_refused_before_it_is_planned() {
        assert!(view_query("SELECT customer_id, amount + amount AS doubled FROM orders").is_ok());
        let deep = format!(
            "SELECT customer_id, amount{} AS x FROM orders",
            "+1".repeat(40_000)
        );
        let refused = view_query(&deep).unwrap_err();
        assert!(
            refused.starts_with("view nests expressions 40001 levels deep; the limit is 256"),
            "{refused}"
        );
    }

    #[test]
    fn json_catalog_keeps_column_order_and_types() {
        let catalog =
            Catalog::from_json(r#"{"orders": {"customer_id": "int64", "amount": "DOUBLE"}}"#)
                .unwrap();
        let orders = catalog.table("ORDERS").unwrap();
        let names: Vec<_> = orders.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["customer_id", "amount"]);
        assert_eq!(
            orders.column("Amount").unwrap().data_type,
            DataType::Float64
        );
    }

    #[test]
    fn json_catalog_errors_name_the_place() {
        let err = Catalog::from_json(r#"{"orders": {"amount": "money"}}"#).unwrap_err();
        assert!(
            err.message.contains("orders") && err.message.contains("money"),
            "{err}"
        );
        let err = Catalog::from_json(r#"{"bad name": {}}"#).unwrap_err();
        assert!(err.message.contains("bad name"), "{err}");
    }
}
