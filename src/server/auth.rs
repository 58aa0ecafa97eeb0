//! Bearer tokens: JSON Web Tokens verified locally.
//!
//! Either HS256 with a shared secret (`FEATURECRAFT_JWT_SECRET`), or RS256 with the
//! identity provider's public keys (a JWKS file, or one PEM public key). A token must carry
//! a `sub` (the caller) and an `exp` in the future; `scope` (space-separated) may grant
//! `automl:admin`, which sees every job. The algorithm is the verifier's, never the token's:
//! a token whose header names another algorithm is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The scope that sees and acts on every job.
pub const ADMIN_SCOPE: &str = "automl:admin";

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub admin: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
}

/// Signs a development token for `subject` valid for `ttl_seconds`.
pub fn sign(
    secret: &[u8],
    subject: &str,
    scope: Option<&str>,
    ttl_seconds: i64,
) -> Result<String, String> {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = Claims {
        sub: subject.to_string(),
        exp: chrono::Utc::now().timestamp() + ttl_seconds,
        scope: scope.map(str::to_string),
    };
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).map_err(|e| e.to_string())?);
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(format!("{signing_input}.{signature}"))
}

/// How tokens are checked.
#[derive(Clone)]
pub enum Verifier {
    /// HS256 with a shared secret.
    Hs256(Vec<u8>),
    /// RS256 with public keys, each with its optional `kid`.
    Rs256(Vec<(Option<String>, rsa::RsaPublicKey)>),
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verifier::Hs256(_) => f.write_str("Verifier::Hs256(…)"),
            Verifier::Rs256(keys) => write!(f, "Verifier::Rs256({} keys)", keys.len()),
        }
    }
}

impl Verifier {
    /// Reads RS256 public keys from a JWKS document (`{"keys": [{"kty": "RSA", "n", "e", "kid"}]}`)
    /// or a PEM public key (`-----BEGIN PUBLIC KEY-----` or `RSA PUBLIC KEY`).
    pub fn rs256_from(text: &str) -> Result<Verifier, String> {
        use rsa::pkcs1::DecodeRsaPublicKey;
        use rsa::pkcs8::DecodePublicKey;
        if text.trim_start().starts_with("-----BEGIN") {
            let key = rsa::RsaPublicKey::from_public_key_pem(text)
                .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(text))
                .map_err(|e| format!("not a PEM RSA public key: {e}"))?;
            return Ok(Verifier::Rs256(vec![(None, key)]));
        }
        let jwks: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
        let keys = jwks
            .get("keys")
            .and_then(|k| k.as_array())
            .ok_or("a JWKS document needs a `keys` array")?;
        let mut parsed = Vec::new();
        for key in keys
            .iter()
            .filter(|k| k.get("kty").and_then(|t| t.as_str()) == Some("RSA"))
        {
            let number = |field: &str| -> Result<rsa::BigUint, String> {
                let text = key
                    .get(field)
                    .and_then(|v| v.as_str())
                    .ok_or(format!("a JWKS key lacks `{field}`"))?;
                let bytes = URL_SAFE_NO_PAD
                    .decode(text)
                    .map_err(|_| format!("JWKS `{field}` is not base64url"))?;
                Ok(rsa::BigUint::from_bytes_be(&bytes))
            };
            let public = rsa::RsaPublicKey::new(number("n")?, number("e")?)
                .map_err(|e| format!("a JWKS key is not valid: {e}"))?;
            parsed.push((
                key.get("kid").and_then(|k| k.as_str()).map(str::to_string),
                public,
            ));
        }
        if parsed.is_empty() {
            return Err("the JWKS document has no RSA key".into());
        }
        Ok(Verifier::Rs256(parsed))
    }

    /// Verifies a token; the error says why it was refused.
    pub fn verify(&self, token: &str) -> Result<Caller, String> {
        match self {
            Verifier::Hs256(secret) => verify(secret, token),
            Verifier::Rs256(keys) => verify_rs256(keys, token),
        }
    }
}

fn verify_rs256(
    keys: &[(Option<String>, rsa::RsaPublicKey)],
    token: &str,
) -> Result<Caller, String> {
    use rsa::signature::Verifier as _;
    let (header, signature) = split_token(token)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("RS256") {
        return Err("the token must be signed with RS256".into());
    }
    let kid = header.get("kid").and_then(|k| k.as_str());
    let candidates: Vec<&rsa::RsaPublicKey> = keys
        .iter()
        .filter(|(key_id, _)| kid.is_none() || key_id.is_none() || key_id.as_deref() == kid)
        .map(|(_, key)| key)
        .collect();
    let signature = rsa::pkcs1v15::Signature::try_from(signature.as_slice())
        .map_err(|_| "the token signature is invalid")?;
    let signed = signing_input(token);
    let valid = candidates.iter().any(|key| {
        rsa::pkcs1v15::VerifyingKey::<Sha256>::new((*key).clone())
            .verify(signed.as_bytes(), &signature)
            .is_ok()
    });
    if !valid {
        return Err("the token signature is invalid".into());
    }
    claims_of(token)
}

/// The header as JSON and the decoded signature.
fn split_token(token: &str) -> Result<(serde_json::Value, Vec<u8>), String> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("the token is not a JWT (header.payload.signature)".into());
    };
    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or("the token header is not base64url JSON")?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| "the token signature is not base64url")?;
    Ok((header, signature))
}

fn signing_input(token: &str) -> String {
    format!("{}.{}", token_part(token, 0), token_part(token, 1))
}

/// The caller named by verified claims, once `exp` and `sub` are checked.
fn claims_of(token: &str) -> Result<Caller, String> {
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(token_part(token, 1))
        .ok()
        .and_then(|p| serde_json::from_slice(&p).ok())
        .ok_or("the token claims must be JSON with `sub` and `exp`")?;
    if claims.exp <= chrono::Utc::now().timestamp() {
        return Err("the token has expired".into());
    }
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

/// Verifies an HS256 token; the error says why it was refused.
pub fn verify(secret: &[u8], token: &str) -> Result<Caller, String> {
    let (header, signature) = split_token(token)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err("the token must be signed with HS256".into());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|e| e.to_string())?;
    mac.update(signing_input(token).as_bytes());
    mac.verify_slice(&signature)
        .map_err(|_| "the token signature is invalid")?;
    claims_of(token)
}

fn token_part(token: &str, index: usize) -> &str {
    token.split('.').nth(index).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_and_a_tampered_one_does_not() {
        let token = sign(b"s3cret", "ana@example.com", Some("automl:admin other"), 60).unwrap();
        let caller = verify(b"s3cret", &token).unwrap();
        assert_eq!(
            caller,
            Caller {
                subject: "ana@example.com".into(),
                admin: true
            }
        );
        assert_eq!(
            verify(b"other", &token).unwrap_err(),
            "the token signature is invalid"
        );
        let expired = sign(b"s3cret", "ana", None, -5).unwrap();
        assert_eq!(
            verify(b"s3cret", &expired).unwrap_err(),
            "the token has expired"
        );
        assert!(verify(b"s3cret", "nonsense").is_err());
    }

    #[test]
    fn rs256_tokens_verify_against_a_jwks_and_hs256_ones_do_not() {
        use rsa::pkcs1v15::SigningKey;
        use rsa::signature::{SignatureEncoding, Signer};
        use rsa::traits::PublicKeyParts;
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let public = private.to_public_key();
        let jwks = serde_json::json!({"keys": [{"kty": "RSA", "kid": "k1",
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()), "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be())}]});
        let verifier = Verifier::rs256_from(&jwks.to_string()).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT","kid":"k1"}"#);
        let exp = chrono::Utc::now().timestamp() + 60;
        let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"ana","exp":{exp}}}"#));
        let input = format!("{header}.{payload}");
        let signature = SigningKey::<Sha256>::new(private)
            .sign(input.as_bytes())
            .to_vec();
        let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature));
        assert_eq!(verifier.verify(&token).unwrap().subject, "ana");
        let tampered = format!(
            "{header}.{}.{}",
            URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"bob","exp":{exp}}}"#)),
            token_part(&token, 2)
        );
        assert_eq!(
            verifier.verify(&tampered).unwrap_err(),
            "the token signature is invalid"
        );
        let hs = sign(b"secret", "ana", None, 60).unwrap();
        assert_eq!(
            verifier.verify(&hs).unwrap_err(),
            "the token must be signed with RS256"
        );
    }
}
