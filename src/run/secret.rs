//! The shared secret of a Ballista cluster: what its scheduler and executors ask of every
//! gRPC call, from a client and from each other, so that reaching a port is not enough to
//! run a plan (a plan may read and write files as the executor's user).
//!
//! It comes from the environment, never from a command line (which every user of the
//! machine can read): [`SECRET_ENV`] holds it, or [`SECRET_FILE_ENV`] names a file that
//! does (one line; a final newline is ignored). At least [`MIN_SECRET_BYTES`] bytes of
//! visible ASCII without spaces (`openssl rand -hex 32` gives one).
//!
//! On the wire it is the first word of the `user-agent` header
//! (`featurecraft-cluster/SECRET tonic/…`): Ballista 55 opens its connections between its
//! processes itself and lets featurecraft set only their endpoint's settings, of which the
//! user agent is the one a server sees on every request. There is no TLS between the
//! processes (Ballista 55 builds its executors' servers without it), so the secret travels
//! in clear: it keeps out whoever can reach a port, not whoever can read the network
//! between the processes.

use std::fmt;
use std::sync::Arc;

/// The environment variable that holds the secret.
pub const SECRET_ENV: &str = "FEATURECRAFT_CLUSTER_SECRET";
/// The environment variable that names a file holding the secret.
pub const SECRET_FILE_ENV: &str = "FEATURECRAFT_CLUSTER_SECRET_FILE";
/// The shortest secret accepted: 256 bits, as the service's HS256 secret.
pub const MIN_SECRET_BYTES: usize = 32;
/// The longest secret accepted (a header value a proxy passes unchanged).
const MAX_SECRET_BYTES: usize = 1024;
/// The first part of the user agent that carries the secret.
const USER_AGENT_PREFIX: &str = "featurecraft-cluster/";
/// The biggest secret file read: a file much larger than a secret is not one.
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// A cluster's shared secret. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret(Arc<str>);

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(…)")
    }
}

impl ClusterSecret {
    /// A secret from its text, checked: long enough, and visible ASCII without spaces.
    pub fn new(text: &str) -> Result<ClusterSecret, String> {
        if text.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the cluster secret is {} bytes; it must be at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)",
                text.len()
            ));
        }
        if text.len() > MAX_SECRET_BYTES {
            return Err(format!(
                "the cluster secret is {} bytes; it must be at most {MAX_SECRET_BYTES}",
                text.len()
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the cluster secret must be visible ASCII without spaces (e.g. `openssl rand -hex 32`)"
                    .into(),
            );
        }
        Ok(ClusterSecret(text.into()))
    }

    /// The secret this process's environment gives ([`SECRET_ENV`], else the file
    /// [`SECRET_FILE_ENV`] names), or `None` when it gives none.
    pub fn from_env() -> Result<Option<ClusterSecret>, String> {
        if let Some(text) = std::env::var_os(SECRET_ENV) {
            let text = text
                .into_string()
                .map_err(|_| format!("{SECRET_ENV} is not UTF-8"))?;
            return ClusterSecret::new(&text)
                .map(Some)
                .map_err(|e| format!("{SECRET_ENV}: {e}"));
        }
        let Some(path) = std::env::var_os(SECRET_FILE_ENV) else {
            return Ok(None);
        };
        let path = std::path::PathBuf::from(path);
        let read = || -> Result<String, String> {
            let size = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
            if size > MAX_SECRET_FILE_BYTES {
                return Err(format!(
                    "{size} bytes; a secret file holds one line of at most {MAX_SECRET_BYTES} bytes"
                ));
            }
            std::fs::read_to_string(&path).map_err(|e| e.to_string())
        };
        let text = read().map_err(|e| {
            format!(
                "{SECRET_FILE_ENV}: cannot read the cluster secret from {}: {e}",
                path.display()
            )
        })?;
        let line = text.strip_suffix('\n').unwrap_or(&text);
        let line = line.strip_suffix('\r').unwrap_or(line);
        ClusterSecret::new(line)
            .map(Some)
            .map_err(|e| format!("{SECRET_FILE_ENV} ({}): {e}", path.display()))
    }

    /// The user agent a process of the cluster or its client sends.
    pub fn user_agent(&self) -> String {
        format!("{USER_AGENT_PREFIX}{}", self.0)
    }

    /// Whether a request whose `user-agent` header is `user_agent` carries this secret (as
    /// the header's first word), compared in constant time.
    fn admits(&self, user_agent: Option<&[u8]>) -> bool {
        let Some(header) = user_agent else {
            return false;
        };
        let first_word = header.split(|b| *b == b' ').next().unwrap_or_default();
        let expected = self.user_agent();
        let expected = expected.as_bytes();
        if first_word.len() != expected.len() {
            return false;
        }
        first_word
            .iter()
            .zip(expected)
            .fold(0u8, |differ, (a, b)| differ | (a ^ b))
            == 0
    }

    /// A Ballista endpoint setting that makes every connection send this secret.
    #[cfg(feature = "cluster")]
    pub fn endpoint_override(&self) -> ballista_core::extension::EndpointOverrideFn {
        let user_agent = self.user_agent();
        Arc::new(move |endpoint: tonic::transport::Endpoint| {
            Ok(endpoint.user_agent(user_agent.clone())?)
        })
    }
}

/// A tonic interceptor that refuses, and logs, a call without `secret` (and admits every
/// call when there is none: a process on loopback without a secret).
#[cfg(feature = "cluster")]
pub fn interceptor(
    secret: Option<ClusterSecret>,
    serving: &'static str,
) -> impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone {
    move |request: tonic::Request<()>| {
        let Some(secret) = &secret else {
            return Ok(request);
        };
        let user_agent = request.metadata().get("user-agent").map(|v| v.as_bytes());
        if secret.admits(user_agent) {
            return Ok(request);
        }
        let from = request
            .remote_addr()
            .map_or_else(|| "an unknown address".to_string(), |a| a.to_string());
        log::warn!("{serving}: refused a call from {from} without the cluster secret");
        Err(tonic::Status::unauthenticated(format!(
            "the {serving} needs the cluster's shared secret ({SECRET_ENV} or {SECRET_FILE_ENV} on the client)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_long_visible_ascii_and_admitted_only_whole() {
        assert!(ClusterSecret::new("short").is_err());
        assert!(ClusterSecret::new(&format!("{} x", "a".repeat(40))).is_err());
        assert!(ClusterSecret::new(&"é".repeat(20)).is_err());
        let secret = ClusterSecret::new(&"s".repeat(40)).unwrap();
        assert!(!format!("{secret:?}").contains("sss"));
        let ua = format!("{} tonic/0.14.9", secret.user_agent());
        assert!(secret.admits(Some(ua.as_bytes())));
        assert!(secret.admits(Some(secret.user_agent().as_bytes())));
        for wrong in [
            "tonic/0.14.9".to_string(),
            format!("featurecraft-cluster/{}", "s".repeat(39)),
            format!("featurecraft-cluster/{}", "s".repeat(41)),
            format!("x {}", secret.user_agent()),
            String::new(),
        ] {
            assert!(!secret.admits(Some(wrong.as_bytes())), "{wrong}");
        }
        assert!(!secret.admits(None));
    }
}
