//! Where data lives: a local folder, or a prefix in an object store.
//!
//! A catalog or a warehouse is given as a path or as a URL:
//! - `s3://BUCKET/PREFIX` (or `s3a://`): Amazon S3 and S3-compatible stores;
//! - `gs://BUCKET/PREFIX`: Google Cloud Storage;
//! - `az://CONTAINER/PREFIX`, `abfs[s]://CONTAINER@ACCOUNT.dfs.core.windows.net/PREFIX`:
//!   Azure Blob Storage and Data Lake Storage;
//! - `file:///PATH` and plain paths: the local file system.
//!
//! A store's credentials, region and endpoint come from its standard environment only, as
//! its own tools read them: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP` (a plain-HTTP
//! endpoint) for S3; `GOOGLE_SERVICE_ACCOUNT` (or `GOOGLE_APPLICATION_CREDENTIALS`) for
//! GCS; `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY` (or a token) for Azure.
//! Never from a recipe or a request: a recipe names tables, not places.
//!
//! Every request to a store is bounded (a connection within 5 s, a request within 120 s,
//! transient failures retried for 15 s at most: [`retry_config`]): an endpoint that does
//! not answer is an error within seconds, not a hang.

use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, ObjectStore, ObjectStoreScheme, RetryConfig};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// How long a connection to a store may take to open (a store's duration syntax: it is set
/// over what the environment says, with the other settings the environment gives).
const CONNECT_TIMEOUT: &str = "5s";
/// How long one request may take, its body included (a Parquet column chunk of a large
/// table; a part of a multipart upload).
const REQUEST_TIMEOUT: &str = "120s";
/// How long transient failures (a 5xx, a dropped connection) are retried, from the first try.
const RETRY_TIMEOUT: Duration = Duration::from_secs(15);
/// How many times a transient failure is retried.
const MAX_RETRIES: usize = 3;

/// A catalog's or a warehouse's place: a local folder (or file), or a prefix in an object store.
#[derive(Clone)]
pub enum Location {
    /// A path on this machine (a `file://` URL becomes its path).
    Local(PathBuf),
    /// A prefix in an object store.
    Object(ObjectPrefix),
}

/// A prefix in an object store, with the store that reads it.
#[derive(Clone)]
pub struct ObjectPrefix {
    /// The store's root (`s3://bucket`): what a DataFusion session registers the store under.
    base: Url,
    /// The prefix inside the store, without a leading or trailing `/` (empty: the whole bucket).
    prefix: ObjectPath,
    store: Arc<dyn ObjectStore>,
}

impl Location {
    /// Reads `path` as a location: a URL with a scheme is an object store's (or `file://`),
    /// anything else a local path. An object store's client is built here, from the
    /// environment; no request is sent yet. An error says what is wrong, not where (the
    /// caller names the location).
    pub fn parse(path: &Path) -> Result<Location, String> {
        let Some(text) = path.to_str().filter(|t| url_scheme(t).is_some()) else {
            return Ok(Location::Local(path.to_path_buf()));
        };
        let url = Url::parse(text).map_err(|e| format!("not a valid URL: {e}"))?;
        if url.scheme() == "file" {
            return url
                .to_file_path()
                .map(Location::Local)
                .map_err(|()| "the URL names no local path".to_string());
        }
        ObjectPrefix::parse(&url).map(Location::Object)
    }

    /// The local path, if this is one.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Location::Local(path) => Some(path),
            Location::Object(_) => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(path) => write!(f, "{}", path.display()),
            Location::Object(prefix) => write!(f, "{}", prefix.url()),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Location({self})")
    }
}

impl fmt::Debug for ObjectPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectPrefix({})", self.url())
    }
}

impl PartialEq for Location {
    fn eq(&self, other: &Location) -> bool {
        match (self, other) {
            (Location::Local(a), Location::Local(b)) => a == b,
            (Location::Object(a), Location::Object(b)) => a.url() == b.url(),
            _ => false,
        }
    }
}

/// The scheme of `text` when it starts like a URL (`s3://…`): letters, digits, `+-.`,
/// then `://`. Without this check a URL would be taken for a relative folder named `s3:`.
pub fn url_scheme(text: &str) -> Option<&str> {
    let (scheme, _) = text.split_once("://")?;
    let is_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    is_scheme.then_some(scheme)
}

impl ObjectPrefix {
    /// The store and prefix `url` names, the store configured from the environment.
    fn parse(url: &Url) -> Result<ObjectPrefix, String> {
        let shown = url.as_str();
        let (scheme, prefix) = ObjectStoreScheme::parse(url).map_err(|_| {
            format!(
                "unknown storage scheme `{}://`; use s3://, gs://, az://, abfss:// or a local path",
                url.scheme()
            )
        })?;
        let store: Arc<dyn ObjectStore> = match scheme {
            ObjectStoreScheme::AmazonS3 => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(shown)
                    .with_config(
                        object_store::aws::AmazonS3ConfigKey::Client(
                            ClientConfigKey::ConnectTimeout,
                        ),
                        CONNECT_TIMEOUT,
                    )
                    .with_config(
                        object_store::aws::AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                        REQUEST_TIMEOUT,
                    )
                    .with_retry(retry_config())
                    .build()
                    .map_err(|e| store_message(&e))?,
            ),
            ObjectStoreScheme::GoogleCloudStorage => Arc::new(
                object_store::gcp::GoogleCloudStorageBuilder::from_env()
                    .with_url(shown)
                    .with_config(
                        object_store::gcp::GoogleConfigKey::Client(ClientConfigKey::ConnectTimeout),
                        CONNECT_TIMEOUT,
                    )
                    .with_config(
                        object_store::gcp::GoogleConfigKey::Client(ClientConfigKey::Timeout),
                        REQUEST_TIMEOUT,
                    )
                    .with_retry(retry_config())
                    .build()
                    .map_err(|e| store_message(&e))?,
            ),
            ObjectStoreScheme::MicrosoftAzure => Arc::new(
                object_store::azure::MicrosoftAzureBuilder::from_env()
                    .with_url(shown)
                    .with_config(
                        object_store::azure::AzureConfigKey::Client(
                            ClientConfigKey::ConnectTimeout,
                        ),
                        CONNECT_TIMEOUT,
                    )
                    .with_config(
                        object_store::azure::AzureConfigKey::Client(ClientConfigKey::Timeout),
                        REQUEST_TIMEOUT,
                    )
                    .with_retry(retry_config())
                    .build()
                    .map_err(|e| store_message(&e))?,
            ),
            _ => {
                return Err(format!(
                    "`{}://` is not a storage featurecraft reads; use s3://, gs://, az://, abfss:// or a local path",
                    url.scheme()
                ));
            }
        };
        let mut base = url.clone();
        base.set_path("");
        base.set_query(None);
        base.set_fragment(None);
        Ok(ObjectPrefix {
            base,
            prefix,
            store,
        })
    }

    /// The local folder `path` as a prefix of the local file system's store (`file:///…`),
    /// so that a local table is written as an object store's is.
    pub fn local(path: &Path) -> Result<ObjectPrefix, String> {
        let absolute = std::path::absolute(path).map_err(|e| e.to_string())?;
        let prefix = ObjectPath::from_absolute_path(&absolute).map_err(|e| e.to_string())?;
        let base = Url::parse("file:///").map_err(|e| e.to_string())?;
        Ok(ObjectPrefix {
            base,
            prefix,
            store: Arc::new(object_store::local::LocalFileSystem::new()),
        })
    }

    /// The prefix's URL, without a trailing `/`: `s3://bucket/prefix`.
    pub fn url(&self) -> String {
        self.url_of(&self.prefix)
    }

    /// The URL of `path`, a path in this prefix's store.
    pub fn url_of(&self, path: &ObjectPath) -> String {
        if self.base.scheme() == "file" {
            return format!("file:///{path}");
        }
        let base = self.base.as_str().trim_end_matches('/');
        if path.as_ref().is_empty() {
            base.to_string()
        } else {
            format!("{base}/{path}")
        }
    }

    /// The store's root URL (`s3://bucket`), under which a session registers the store.
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// The prefix inside the store.
    pub fn prefix(&self) -> &ObjectPath {
        &self.prefix
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The prefix `part` below this one (one path segment, as the store encodes it).
    pub fn child(&self, part: &str) -> ObjectPrefix {
        ObjectPrefix {
            base: self.base.clone(),
            prefix: self.prefix.clone().join(part),
            store: Arc::clone(&self.store),
        }
    }

    /// The part of `path` below this prefix (`domain/orders.parquet`), or `None` when
    /// `path` is not under it.
    pub fn relative(&self, path: &ObjectPath) -> Option<Vec<String>> {
        let parts = path.prefix_match(&self.prefix)?;
        Some(parts.map(|part| part.as_ref().to_string()).collect())
    }
}

/// How transient failures are retried: a few times, within [`RETRY_TIMEOUT`].
pub fn retry_config() -> RetryConfig {
    RetryConfig {
        max_retries: MAX_RETRIES,
        retry_timeout: RETRY_TIMEOUT,
        ..RetryConfig::default()
    }
}

/// A store's error as one line: the store's own words with the causes it carries
/// (`access denied`, `no such bucket`, a timeout).
pub fn store_message(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    store_text(&text)
}

/// A store's answer as one line, its XML error body cut to `Code: Message`.
pub fn store_text(text: &str) -> String {
    one_line(&without_xml_body(text))
}

/// `text` with a store's XML error body (S3's and Azure's `<Error><Code>…</Code>
/// <Message>…</Message>…</Error>`) cut down to `Code: Message`: the request ids and host
/// ids after them say nothing to the user.
fn without_xml_body(text: &str) -> String {
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = start + text[start..].find(&format!("</{name}>"))?;
        Some(text[start..end].trim().to_string())
    };
    let body = text.find("<?xml").or_else(|| text.find("<Error>"));
    match (body, element("Code")) {
        (Some(body), Some(code)) => {
            let mut short = format!("{}{code}", &text[..body]);
            if let Some(message) = element("Message") {
                short.push_str(": ");
                short.push_str(&message);
            }
            short
        }
        _ => text.to_string(),
    }
}

/// `text` on one line, at most 2 000 characters: a store's answer may be a whole body (an
/// XML one is cut before this; a proxy's HTML page is not), while a cluster's error
/// carries the executor's own message, roots and path included.
fn one_line(text: &str) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match flat.char_indices().nth(2_000) {
        Some((end, _)) => format!("{}…", &flat[..end]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_file_urls_are_local_and_object_urls_name_their_store() {
        assert_eq!(
            Location::parse(Path::new("fixtures/retail")).unwrap(),
            Location::Local(PathBuf::from("fixtures/retail"))
        );
        assert_eq!(
            Location::parse(Path::new("file:///data/retail")).unwrap(),
            Location::Local(PathBuf::from("/data/retail"))
        );
        let Location::Object(prefix) = Location::parse(Path::new("s3://bucket/a/retail/")).unwrap()
        else {
            panic!("an s3 URL is an object store's");
        };
        assert_eq!(prefix.url(), "s3://bucket/a/retail");
        assert_eq!(prefix.base().as_str(), "s3://bucket");
        assert_eq!(
            prefix.child("orders.parquet").url(),
            "s3://bucket/a/retail/orders.parquet"
        );
        let refused = Location::parse(Path::new("ftp://host/retail")).unwrap_err();
        assert!(refused.contains("ftp://"), "{refused}");
    }

    #[test]
    fn an_xml_error_body_is_cut_to_its_code_and_message() {
        let answer = "403 Forbidden: <?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error>\
            <Code>AccessDenied</Code><Message>Access Denied</Message>\
            <RequestId>q6Cy</RequestId><HostId>9Gjj</HostId></Error>";
        assert_eq!(
            store_text(answer),
            "403 Forbidden: AccessDenied: Access Denied"
        );
        let plain = "Connection refused (os error 111)";
        assert_eq!(without_xml_body(plain), plain);
    }
}
