//! `featurecraft serve` and `featurecraft token`: the HTTP service and its development
//! tokens.

use super::*;

pub(super) async fn serve_command(args: ServeArgs) -> ExitCode {
    use featurecraft::server::auth::Verifier;
    let run = match job_run_options(
        args.sample.sample_size,
        args.leak.leak_threshold,
        &args.memory.memory_limit,
    ) {
        Ok(o) => on_engine(o, &args.engine, None),
        Err(e) => return usage_error(&e),
    };
    let crew = match args.crew.crew() {
        Ok(crew) => crew,
        Err(e) => return usage_error(&e),
    };
    let jwt = match (&args.jwks, &args.jwks_url, jwt_secret()) {
        (Some(path), _, _) => {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) => return usage_error(&format!("cannot read {}: {e}", path.display())),
            };
            match Verifier::rs256_from(&text) {
                Ok(v) => v,
                Err(e) => return usage_error(&format!("{}: {e}", path.display())),
            }
        }
        (None, Some(url), _) => {
            // Fetching blocks; the runtime's threads are not for that.
            let url = url.clone();
            let fetched = tokio::task::spawn_blocking(move || {
                Verifier::rs256_from_url(&url, std::time::Duration::from_secs(60))
            })
            .await;
            match fetched {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return usage_error(&e),
                Err(e) => return usage_error(&e.to_string()),
            }
        }
        (None, None, Some(secret)) => match Verifier::hs256(&secret) {
            Ok(v) => v,
            Err(e) => return usage_error(&format!("FEATURECRAFT_JWT_SECRET: {e}")),
        },
        (None, None, None) => {
            return usage_error(
                "set FEATURECRAFT_JWT_SECRET (HS256, at least 32 bytes), or give --jwks FILE or --jwks-url URL (RS256), to verify tokens",
            );
        }
    }
    .with_issuer(args.jwt_issuer)
    .with_audience(args.jwt_audience);
    let mut limits = featurecraft::server::Limits::default();
    match args.max_jobs {
        Some(0) => return usage_error("--max-jobs must be at least 1"),
        Some(n) => limits.max_jobs = n,
        None => {}
    }
    use featurecraft::catalog::storage::Location;
    for (flag, path) in [
        ("--catalog", &args.catalog),
        ("--warehouse", &args.warehouse),
    ] {
        if let Err(why) = Location::parse(path) {
            return usage_error(&format!("{flag} {}: {why}", path.display()));
        }
    }
    if let Ok(Location::Local(catalog)) = Location::parse(&args.catalog)
        && !catalog.is_dir()
    {
        return usage_error(&format!(
            "--catalog {}: the service runs queries on the catalog's data: give a catalog directory (Parquet files and SQL views), not a JSON description",
            args.catalog.display()
        ));
    }
    let config = featurecraft::server::ServiceConfig {
        catalog: args.catalog,
        warehouse: args.warehouse,
        table_format: args.table_format.table_format,
        jwt,
        run,
        job_timeout: std::time::Duration::from_secs(args.job_timeout),
        limits,
        crew,
    };
    serve(config, &args.db, &args.addr).await
}

pub(super) fn token_command(args: &TokenArgs) -> ExitCode {
    let Some(secret) = jwt_secret() else {
        return usage_error("set FEATURECRAFT_JWT_SECRET to the secret that signs tokens (HS256)");
    };
    let seconds = match parse_duration(&args.ttl) {
        Ok(s) => s,
        Err(e) => return usage_error(&e),
    };
    match featurecraft::server::auth::sign(&secret, &args.sub, args.scope.as_deref(), seconds) {
        Ok(token) => {
            out!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => usage_error(&e),
    }
}

pub(super) fn jwt_secret() -> Option<Vec<u8>> {
    std::env::var("FEATURECRAFT_JWT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
        .map(String::into_bytes)
}

/// Parses `30s`, `15m`, `1h`, `7d` (or plain seconds).
pub(super) fn parse_duration(text: &str) -> Result<i64, String> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 30m, 1h or 7d)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{text}` (use s, m, h or d)"
            ));
        }
    };
    // A token lives at most ten years: beyond, `exp` would overflow or mean nothing.
    const LONGEST: i64 = 10 * 366 * 86_400;
    match n.checked_mul(scale) {
        Some(seconds) if (1..=LONGEST).contains(&seconds) => Ok(seconds),
        _ => Err(format!(
            "`{text}` is not a usable lifetime: from 1s to 3660d (ten years)"
        )),
    }
}

pub(super) async fn serve(
    config: featurecraft::server::ServiceConfig,
    db: &Path,
    addr: &str,
) -> ExitCode {
    init_json_logs();
    let header_timeout = config.limits.header_timeout;
    let (router, handle) = match featurecraft::server::service(config, db) {
        Ok(s) => s,
        Err(e) => return usage_error(&e),
    };
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => return usage_error(&format!("cannot listen on {addr}: {e}")),
    };
    let bound = listener
        .local_addr()
        .map_or_else(|_| addr.to_string(), |a| a.to_string());
    tracing::info!(addr = %bound, pid = std::process::id(), "serving");
    let shutdown = async {
        stop_signal().await;
        tracing::info!("shutting down: finishing running jobs");
    };
    featurecraft::server::listen::serve(listener, router, header_timeout, shutdown).await;
    handle.drain().await;
    ExitCode::SUCCESS
}
