//! The least any reader of these Parquet files pays for a sample spread over every page:
//! each source's key column decoded in full (every row's key decides whether it is
//! sampled) and every page of every other column the recipe reads fetched and
//! decompressed, not decoded (a sampled row in a page needs the page, and its row group's
//! dictionary). BENCHMARKS.md compares validation with it.
//!
//! ```text
//! CARGO_TARGET_DIR=target/rel cargo bench --bench page_floor -- THREADS SOURCE:KEY[:COLUMN,…] …
//! ```
//! A SOURCE is a Parquet file or a folder of them; the row groups of all of them are shared
//! out to THREADS threads. It prints the wall time, the keys decoded and the megabytes of
//! pages decompressed, and the time again as `engine_s` for `benches/compare-duckdb`, which
//! runs it beside validation when its wrapper has built it.

use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

type Failure = Box<dyn Error + Send + Sync>;

/// One row group of one file, and the columns read from it.
struct Work {
    file: PathBuf,
    row_group: usize,
    key: String,
    values: Vec<String>,
}

fn main() {
    if let Err(error) = run() {
        eprintln!("page_floor: {error}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let Some((threads, sources)) = args.split_first() else {
        return Err("usage: page_floor THREADS SOURCE:KEY[:COLUMN,…] …".into());
    };
    let threads: usize = threads
        .parse()
        .map_err(|_| format!("THREADS must be a number, not `{threads}`"))?;
    let mut work = Vec::new();
    for spec in sources {
        let mut parts = spec.split(':');
        let (Some(source), Some(key)) = (parts.next(), parts.next()) else {
            return Err(format!("`{spec}` is not SOURCE:KEY[:COLUMN,…]").into());
        };
        let values: Vec<String> = parts
            .next()
            .map(|v| v.split(',').map(String::from).collect())
            .unwrap_or_default();
        for file in parquet_files(Path::new(source))? {
            let opened = std::fs::File::open(&file)
                .map_err(|e| format!("cannot open {}: {e}", file.display()))?;
            let reader = SerializedFileReader::new(opened)?;
            for row_group in 0..reader.num_row_groups() {
                work.push(Work {
                    file: file.clone(),
                    row_group,
                    key: key.to_string(),
                    values: values.clone(),
                });
            }
        }
    }
    let started = std::time::Instant::now();
    let next = AtomicUsize::new(0);
    let (keys, bytes) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                s.spawn(|| -> Result<(usize, usize), Failure> {
                    let (mut keys, mut bytes) = (0, 0);
                    while let Some(w) = work.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let (k, b) = read(w)?;
                        keys += k;
                        bytes += b;
                    }
                    Ok((keys, bytes))
                })
            })
            .collect();
        handles.into_iter().try_fold((0, 0), |(k, b), handle| {
            let (k2, b2) = handle.join().map_err(|_| "a reading thread panicked")??;
            Ok::<_, Failure>((k + k2, b + b2))
        })
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{elapsed:.3} s, {keys} key values decoded, {} MB of pages decompressed",
        bytes / 1_000_000
    );
    // The work's own time, as `benches/compare-duckdb` reads it from its peers (the files'
    // footers, read to share out the row groups, are not the floor's).
    println!("engine_s {elapsed}");
    Ok(())
}

/// The Parquet files of `source`: itself, or the `.parquet` files of the folder.
fn parquet_files(source: &Path) -> Result<Vec<PathBuf>, Failure> {
    if !source.is_dir() {
        return Ok(vec![source.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(source)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "parquet") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Decodes the key column of one row group and decompresses every page of its other
/// columns: the keys decoded and the bytes decompressed.
fn read(w: &Work) -> Result<(usize, usize), Failure> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&w.file)?)?;
    let schema = builder.parquet_schema();
    let index = |name: &str| {
        (0..schema.num_columns())
            .find(|&c| schema.column(c).name() == name)
            .ok_or_else(|| format!("{} has no column `{name}`", w.file.display()))
    };
    let mask = ProjectionMask::leaves(schema, [index(&w.key)?]);
    let value_columns = w
        .values
        .iter()
        .map(|v| index(v))
        .collect::<Result<Vec<_>, _>>()?;
    let reader = builder
        .with_projection(mask)
        .with_row_groups(vec![w.row_group])
        .with_batch_size(65_536)
        .build()?;
    let mut keys = 0;
    for batch in reader {
        keys += batch?.num_rows();
    }
    let reader = SerializedFileReader::new(std::fs::File::open(&w.file)?)?;
    let row_group = reader.get_row_group(w.row_group)?;
    let mut bytes = 0;
    for column in value_columns {
        let mut pages = row_group.get_column_page_reader(column)?;
        while let Some(page) = pages.get_next_page()? {
            bytes += page.buffer().len();
        }
    }
    Ok((keys, bytes))
}
