//! Bearer tokens: JSON Web Tokens verified locally with the `jsonwebtoken` crate.
//!
//! Either HS256 with a shared secret of at least [`MIN_SECRET_BYTES`]
//! (`FEATURECRAFT_JWT_SECRET`), or RS256 with the identity provider's public keys: a JWKS
//! document or a PEM public key from a file, or a JWKS fetched from a URL and fetched again
//! when a token names a key id it does not hold (at most once per
//! the refetch interval given to [`Verifier::rs256_from_url`], so made-up key ids cannot make the service hammer the
//! provider). The algorithm is the verifier's, never the token's: a token whose header
//! names another is refused, as is one with a `crit` header (no extension is understood).
//!
//! A token must carry `sub` (the caller) and `exp`; `exp` and `nbf` are checked with
//! [`LEEWAY_SECONDS`] of clock skew; `iss` and `aud` are checked when the service is
//! configured with them. `scope` (space-separated) may grant [`ADMIN_SCOPE`], which sees
//! every job.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The scope that sees and acts on every job.
const ADMIN_SCOPE: &str = "automl:admin";
/// Clock skew allowed on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;
/// The shortest HS256 secret accepted: 256 bits, the hash's own size (RFC 7518 §3.2).
pub const MIN_SECRET_BYTES: usize = 32;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`.
    pub subject: String,
    /// Holds the admin scope: sees every job.
    pub admin: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Signs a development token (HS256) for `subject` valid for `ttl_seconds`.
pub fn sign(
    secret: &[u8],
    subject: &str,
    scope: Option<&str>,
    ttl_seconds: i64,
) -> Result<String, String> {
    check_secret(secret)?;
    let claims = Claims {
        sub: subject.to_string(),
        exp: chrono::Utc::now()
            .timestamp()
            .checked_add(ttl_seconds)
            .ok_or("the token's lifetime overflows")?,
        scope: scope.map(str::to_string),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| format!("cannot sign the token: {e}"))
}

fn check_secret(secret: &[u8]) -> Result<(), String> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(format!(
            "the HS256 secret is {} bytes; it must be at least {MIN_SECRET_BYTES} (e.g. `openssl rand -hex 32`)",
            secret.len()
        ));
    }
    Ok(())
}

/// How tokens are checked.
#[derive(Clone)]
pub struct Verifier {
    keys: Keys,
    issuer: Option<String>,
    audience: Option<String>,
}

#[derive(Clone)]
enum Keys {
    Hs256(DecodingKey),
    Rs256(Arc<KeySet>),
}

/// RS256 public keys by key id, and where they came from.
struct KeySet {
    keys: RwLock<Vec<(Option<String>, DecodingKey)>>,
    /// The JWKS URL to fetch again on an unknown key id, if the keys came from one.
    url: Option<String>,
    last_fetch: Mutex<Option<Instant>>,
    refetch_interval: Duration,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.keys {
            Keys::Hs256(_) => f.write_str("Verifier::Hs256(…)"),
            Keys::Rs256(set) => write!(
                f,
                "Verifier::Rs256({} keys{})",
                set.keys.read().map_or(0, |k| k.len()),
                set.url
                    .as_deref()
                    .map_or(String::new(), |u| format!(" from {u}"))
            ),
        }
    }
}

impl Verifier {
    /// HS256 with `secret`, refused when shorter than [`MIN_SECRET_BYTES`].
    pub fn hs256(secret: &[u8]) -> Result<Verifier, String> {
        check_secret(secret)?;
        Ok(Verifier::with_keys(Keys::Hs256(DecodingKey::from_secret(
            secret,
        ))))
    }

    /// RS256 with the keys of a JWKS document (`{"keys": [{"kty": "RSA", "n", "e", "kid"}]}`)
    /// or a PEM public key.
    pub fn rs256_from(text: &str) -> Result<Verifier, String> {
        let keys = if text.trim_start().starts_with("-----BEGIN") {
            let key = DecodingKey::from_rsa_pem(text.as_bytes())
                .map_err(|e| format!("not a PEM RSA public key: {e}"))?;
            vec![(None, key)]
        } else {
            jwks_keys(text)?
        };
        Ok(Verifier::with_keys(Keys::Rs256(Arc::new(KeySet {
            keys: RwLock::new(keys),
            url: None,
            last_fetch: Mutex::new(None),
            refetch_interval: Duration::ZERO,
        }))))
    }

    /// RS256 with the keys of the JWKS at `url`, fetched now (blocking) and again when a
    /// token names an unknown key id, at most once per `refetch_interval`.
    pub fn rs256_from_url(url: &str, refetch_interval: Duration) -> Result<Verifier, String> {
        let keys = fetch_jwks(url)?;
        Ok(Verifier::with_keys(Keys::Rs256(Arc::new(KeySet {
            keys: RwLock::new(keys),
            url: Some(url.to_string()),
            last_fetch: Mutex::new(Some(Instant::now())),
            refetch_interval,
        }))))
    }

    fn with_keys(keys: Keys) -> Verifier {
        Verifier {
            keys,
            issuer: None,
            audience: None,
        }
    }

    /// Tokens must carry this `iss`.
    pub fn with_issuer(mut self, issuer: Option<String>) -> Verifier {
        self.issuer = issuer;
        self
    }

    /// Tokens must carry this `aud` (or a list holding it).
    pub fn with_audience(mut self, audience: Option<String>) -> Verifier {
        self.audience = audience;
        self
    }

    /// Verifies a token; the error says why it was refused.
    pub async fn verify(&self, token: &str) -> Result<Caller, String> {
        let algorithm = match self.keys {
            Keys::Hs256(_) => Algorithm::HS256,
            Keys::Rs256(_) => Algorithm::RS256,
        };
        if has_critical_header(token) {
            return Err(
                "the token has a `crit` header naming extensions this service does not understand"
                    .into(),
            );
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| "the token is not a JWT (header.payload.signature)".to_string())?;
        if header.alg != algorithm {
            return Err(format!("the token must be signed with {algorithm:?}"));
        }
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        let mut required = vec!["exp", "sub"];
        match &self.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let claims = match &self.keys {
            Keys::Hs256(key) => decode(token, key, &validation)?,
            Keys::Rs256(set) => {
                let kid = header.kid.as_deref();
                if !set.holds(kid) {
                    set.refetch(kid).await?;
                }
                set.decode(token, kid, &validation)?
            }
        };
        if claims.sub.is_empty() {
            return Err("the token has an empty `sub`".into());
        }
        let admin = claims
            .scope
            .as_deref()
            .is_some_and(|s| s.split_whitespace().any(|s| s == ADMIN_SCOPE));
        Ok(Caller {
            subject: claims.sub,
            admin,
        })
    }
}

impl KeySet {
    /// Whether a key for `kid` is held (any key, for a token without one).
    fn holds(&self, kid: Option<&str>) -> bool {
        self.keys.read().is_ok_and(|keys| {
            kid.is_none()
                || keys
                    .iter()
                    .any(|(id, _)| id.is_none() || id.as_deref() == kid)
        })
    }

    /// Fetches the JWKS again for a key id it does not hold, unless it was fetched within
    /// the refetch interval.
    async fn refetch(&self, kid: Option<&str>) -> Result<(), String> {
        let Some(url) = self.url.clone() else {
            return Ok(());
        };
        {
            let Ok(mut last) = self.last_fetch.lock() else {
                return Ok(());
            };
            if last.is_some_and(|at| at.elapsed() < self.refetch_interval) {
                return Err(format!(
                    "the token's key id `{}` is not among the provider's keys",
                    kid.unwrap_or("")
                ));
            }
            *last = Some(Instant::now());
        }
        let fetched = tokio::task::spawn_blocking(move || fetch_jwks(&url))
            .await
            .map_err(|e| format!("cannot fetch the JWKS: {e}"))??;
        if let Ok(mut keys) = self.keys.write() {
            *keys = fetched;
        }
        Ok(())
    }

    fn decode(
        &self,
        token: &str,
        kid: Option<&str>,
        validation: &Validation,
    ) -> Result<Claims, String> {
        let keys = self
            .keys
            .read()
            .map_err(|_| "the key set is unusable".to_string())?;
        let mut last_error = format!(
            "the token's key id `{}` is not among the provider's keys",
            kid.unwrap_or("")
        );
        for (_, key) in keys
            .iter()
            .filter(|(id, _)| kid.is_none() || id.is_none() || id.as_deref() == kid)
        {
            match decode(token, key, validation) {
                Ok(claims) => return Ok(claims),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, String> {
    jsonwebtoken::decode::<Claims>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => "the token signature is invalid".to_string(),
            ErrorKind::ExpiredSignature => "the token has expired".to_string(),
            ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)".to_string(),
            ErrorKind::InvalidIssuer => "the token's issuer (`iss`) is not accepted".to_string(),
            ErrorKind::InvalidAudience => {
                "the token's audience (`aud`) is not this service".to_string()
            }
            ErrorKind::MissingRequiredClaim(claim) => format!("the token lacks `{claim}`"),
            ErrorKind::InvalidAlgorithm => "the token's algorithm is not accepted".to_string(),
            _ => format!("the token is not valid: {e}"),
        })
}

/// Whether the token's header has a `crit` member (RFC 7515 §4.1.11).
fn has_critical_header(token: &str) -> bool {
    use base64::Engine;
    token
        .split('.')
        .next()
        .and_then(|h| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(h)
                .ok()
        })
        .and_then(|h| serde_json::from_slice::<serde_json::Value>(&h).ok())
        .is_some_and(|h| h.get("crit").is_some())
}

/// The RSA keys of a JWKS document, each with its `kid`.
fn jwks_keys(text: &str) -> Result<Vec<(Option<String>, DecodingKey)>, String> {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &jwks.keys {
        if let jsonwebtoken::jwk::AlgorithmParameters::RSA(_) = &jwk.algorithm {
            let key =
                DecodingKey::from_jwk(jwk).map_err(|e| format!("a JWKS key is not valid: {e}"))?;
            keys.push((jwk.common.key_id.clone(), key));
        }
    }
    if keys.is_empty() {
        return Err("the JWKS document has no RSA key".into());
    }
    Ok(keys)
}

/// Fetches a JWKS document (blocking), with a time limit.
fn fetch_jwks(url: &str) -> Result<Vec<(Option<String>, DecodingKey)>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let text = agent
        .get(url)
        .call()
        .map_err(|e| format!("cannot fetch the JWKS at {url}: {e}"))?
        .body_mut()
        .with_config()
        .limit(1024 * 1024)
        .read_to_string()
        .map_err(|e| format!("cannot read the JWKS at {url}: {e}"))?;
    jwks_keys(&text).map_err(|e| format!("{url}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const SECRET: &[u8] = b"a-test-secret-of-thirty-two-bytes";

    fn hs256(claims: serde_json::Value, header: serde_json::Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(header.to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET).unwrap();
        mac.update(input.as_bytes());
        format!(
            "{input}.{}",
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        )
    }

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    #[tokio::test]
    async fn a_signed_token_verifies_and_a_tampered_or_expired_one_does_not() {
        let verifier = Verifier::hs256(SECRET).unwrap();
        let token = sign(SECRET, "ana@example.com", Some("automl:admin other"), 60).unwrap();
        let caller = verifier.verify(&token).await.unwrap();
        assert_eq!(
            caller,
            Caller {
                subject: "ana@example.com".into(),
                admin: true
            }
        );
        let other = Verifier::hs256(b"another-secret-of-thirty-two-bytes").unwrap();
        assert_eq!(
            other.verify(&token).await.unwrap_err(),
            "the token signature is invalid"
        );
        let expired = sign(SECRET, "ana", None, -(LEEWAY_SECONDS as i64) - 5).unwrap();
        assert_eq!(
            verifier.verify(&expired).await.unwrap_err(),
            "the token has expired"
        );
        // Within the leeway, a token just expired by clock skew still passes.
        let skewed = sign(SECRET, "ana", None, -5).unwrap();
        assert!(verifier.verify(&skewed).await.is_ok());
        assert!(verifier.verify("nonsense").await.is_err());
    }

    #[tokio::test]
    async fn a_short_secret_is_refused() {
        assert!(Verifier::hs256(b"change-me").is_err());
        assert!(sign(b"change-me", "ana", None, 60).is_err());
    }

    #[tokio::test]
    async fn nbf_in_the_future_crit_issuer_and_audience_are_checked() {
        let verifier = Verifier::hs256(SECRET).unwrap();
        let standard = serde_json::json!({"alg": "HS256", "typ": "JWT"});
        let later = hs256(
            serde_json::json!({"sub": "ana", "exp": now() + 600, "nbf": now() + 300}),
            standard.clone(),
        );
        assert_eq!(
            verifier.verify(&later).await.unwrap_err(),
            "the token is not valid yet (`nbf`)"
        );
        let critical = hs256(
            serde_json::json!({"sub": "ana", "exp": now() + 600}),
            serde_json::json!({"alg": "HS256", "typ": "JWT", "crit": ["exp-ext"], "exp-ext": 1}),
        );
        let refused = verifier.verify(&critical).await.unwrap_err();
        assert!(refused.contains("crit"), "{refused}");
        let strict = Verifier::hs256(SECRET)
            .unwrap()
            .with_issuer(Some("https://idp.example".into()))
            .with_audience(Some("featurecraft".into()));
        let good = hs256(
            serde_json::json!({"sub": "ana", "exp": now() + 600, "iss": "https://idp.example", "aud": ["other", "featurecraft"]}),
            standard.clone(),
        );
        assert_eq!(strict.verify(&good).await.unwrap().subject, "ana");
        let wrong_issuer = hs256(
            serde_json::json!({"sub": "ana", "exp": now() + 600, "iss": "https://evil.example", "aud": "featurecraft"}),
            standard.clone(),
        );
        assert!(
            strict
                .verify(&wrong_issuer)
                .await
                .unwrap_err()
                .contains("iss")
        );
        let wrong_audience = hs256(
            serde_json::json!({"sub": "ana", "exp": now() + 600, "iss": "https://idp.example", "aud": "billing"}),
            standard.clone(),
        );
        assert!(
            strict
                .verify(&wrong_audience)
                .await
                .unwrap_err()
                .contains("aud")
        );
        let no_audience = hs256(
            serde_json::json!({"sub": "ana", "exp": now() + 600, "iss": "https://idp.example"}),
            standard,
        );
        assert!(strict.verify(&no_audience).await.is_err());
        // Without configured values, `iss` and `aud` are not required.
        assert!(verifier.verify(&wrong_audience).await.is_ok());
    }

    /// A key pair as (its JWKS entry, a signer of tokens carrying its key id).
    fn rsa_key(kid: &str) -> (serde_json::Value, impl Fn(&str) -> String) {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let public = private.to_public_key();
        let entry = serde_json::json!({"kty": "RSA", "kid": kid, "alg": "RS256",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be())});
        let key = EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes());
        let kid = kid.to_string();
        let signer = move |header_kid: &str| {
            let mut header = Header::new(Algorithm::RS256);
            header.kid = Some(if header_kid.is_empty() {
                kid.clone()
            } else {
                header_kid.to_string()
            });
            let claims = Claims {
                sub: "ana".into(),
                exp: now() + 60,
                scope: None,
            };
            jsonwebtoken::encode(&header, &claims, &key).unwrap()
        };
        (entry, signer)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_jwks_url_is_fetched_again_for_an_unknown_key_id_at_most_once_per_interval() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (first, sign_first) = rsa_key("k1");
        let (second, sign_second) = rsa_key("k2");
        let served = Arc::new(Mutex::new(serde_json::json!({"keys": [first]})));
        let fetches = Arc::new(AtomicUsize::new(0));
        let (to_serve, counter) = (served.clone(), fetches.clone());
        let app = axum::Router::new().route(
            "/jwks",
            axum::routing::get(move || {
                let (to_serve, counter) = (to_serve.clone(), counter.clone());
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    let body = to_serve.lock().unwrap().clone();
                    axum::Json(body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let fetch = |interval: Duration| {
            let url = url.clone();
            tokio::task::spawn_blocking(move || Verifier::rs256_from_url(&url, interval))
        };

        let verifier = fetch(Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(
            verifier.verify(&sign_first("")).await.unwrap().subject,
            "ana"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        // The provider rotates its key: a token with the new key id makes the service fetch.
        *served.lock().unwrap() = serde_json::json!({"keys": [second]});
        assert_eq!(
            verifier.verify(&sign_second("")).await.unwrap().subject,
            "ana"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2);

        // Within the interval, made-up key ids do not reach the provider.
        let patient = fetch(Duration::from_secs(3600)).await.unwrap().unwrap();
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
        for made_up in ["x1", "x2", "x3"] {
            assert!(patient.verify(&sign_second(made_up)).await.is_err());
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
        assert!(fetch(Duration::ZERO).await.unwrap().is_ok());
        let missing = tokio::task::spawn_blocking(|| {
            Verifier::rs256_from_url("http://127.0.0.1:9/jwks", Duration::ZERO)
        })
        .await
        .unwrap();
        assert!(missing.unwrap_err().contains("cannot fetch the JWKS"));
    }

    #[tokio::test]
    async fn rs256_tokens_verify_against_a_jwks_and_hs256_ones_do_not() {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let public = private.to_public_key();
        let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be())}]});
        let verifier = Verifier::rs256_from(&jwks.to_string()).unwrap();
        let key = EncodingKey::from_rsa_der(private.to_pkcs1_der().unwrap().as_bytes());
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        let claims = Claims {
            sub: "ana".into(),
            exp: now() + 60,
            scope: None,
        };
        let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
        assert_eq!(verifier.verify(&token).await.unwrap().subject, "ana");
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"bob","exp":{}}}"#, now() + 60)),
            parts[2]
        );
        assert_eq!(
            verifier.verify(&tampered).await.unwrap_err(),
            "the token signature is invalid"
        );
        let hs = sign(SECRET, "ana", None, 60).unwrap();
        assert_eq!(
            verifier.verify(&hs).await.unwrap_err(),
            "the token must be signed with RS256"
        );
    }
}
