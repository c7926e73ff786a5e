//! A JWT identity provider on loopback: real RSA and EC keys made at run time, a JWKS and
//! an OIDC discovery document over HTTP, key rotation, outages, and a JWKS fetch counter.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
    RsaKeyPair,
};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};

use super::config::Issuer;

pub struct RsaKey {
    pub kid: String,
    pub pair: RsaKeyPair,
}

impl RsaKey {
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            pair: RsaKeyPair::generate(KeySize::Rsa2048).unwrap(),
        }
    }

    pub fn jwk(&self) -> Value {
        let public = self.pair.public_key();
        json!({
            "kty": "RSA", "use": "sig", "kid": self.kid,
            "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
            "e": B64.encode(public.exponent().big_endian_without_leading_zero()),
        })
    }

    /// DER of the public key: what an attacker would use as an HMAC secret.
    pub fn public_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

pub struct EcKey {
    pub kid: String,
    pub pair: EcdsaKeyPair,
}

impl EcKey {
    pub fn generate(kid: &str) -> Self {
        Self {
            kid: kid.into(),
            pair: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
        }
    }

    pub fn jwk(&self) -> Value {
        let p = self.pair.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "use": "sig", "kid": self.kid, "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])})
    }
}

/// Encodes header and claims and signs them with `sign`.
pub fn jwt_with(header: &Value, claims: &Value, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

pub fn rs256(key: &RsaKey, claims: &Value) -> String {
    rsa_jwt(key, claims, "RS256")
}

pub fn rsa_jwt(key: &RsaKey, claims: &Value, alg: &str) -> String {
    let header = json!({"alg": alg, "typ": "JWT", "kid": key.kid});
    jwt_with(&header, claims, |m| {
        let mut sig = vec![0; key.pair.public_modulus_len()];
        let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = if alg == "PS256" {
            &RSA_PSS_SHA256
        } else {
            &RSA_PKCS1_SHA256
        };
        key.pair
            .sign(padding, &SystemRandom::new(), m, &mut sig)
            .unwrap();
        sig
    })
}

pub fn es256(key: &EcKey, claims: &Value) -> String {
    let header = json!({"alg": "ES256", "typ": "JWT", "kid": key.kid});
    jwt_with(&header, claims, |m| {
        key.pair
            .sign(&SystemRandom::new(), m)
            .unwrap()
            .as_ref()
            .to_vec()
    })
}

pub fn hs256(secret: &[u8], header: &Value, claims: &Value) -> String {
    use hmac::{Hmac, Mac};
    jwt_with(header, claims, |m| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(m);
        mac.finalize().into_bytes().to_vec()
    })
}

#[derive(Default)]
struct Served {
    keys: Mutex<Vec<Value>>,
    down: AtomicBool,
    jwks_fetches: AtomicUsize,
    issuer: Mutex<String>,
}

pub struct TestIdp {
    /// `http://127.0.0.1:PORT`; also the `iss` of its tokens.
    pub issuer: String,
    served: Arc<Served>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for TestIdp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn jwks(State(s): State<Arc<Served>>) -> Response {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    if s.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    Json(json!({"keys": *s.keys.lock().unwrap()})).into_response()
}

async fn discovery(State(s): State<Arc<Served>>) -> Response {
    if s.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let issuer = s.issuer.lock().unwrap().clone();
    Json(json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")})).into_response()
}

impl TestIdp {
    /// Serves `keys` as its JWKS.
    pub async fn start(keys: Vec<Value>) -> Self {
        let served = Arc::new(Served::default());
        *served.keys.lock().unwrap() = keys;
        let app = axum::Router::new()
            .route("/jwks", get(jwks))
            .route("/.well-known/openid-configuration", get(discovery))
            .with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        *served.issuer.lock().unwrap() = issuer.clone();
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            issuer,
            served,
            server,
        }
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// An RS256 JWT of `sub` for the broker (audience `rds-token-broker`), issued at `iat`
    /// (Unix seconds) and valid for `ttl` seconds, with `extra` claims added.
    pub fn jwt(&self, key: &RsaKey, sub: &str, iat: u64, ttl: u64, extra: Value) -> String {
        let mut claims = json!({"iss": self.issuer, "sub": sub, "aud": "rds-token-broker",
            "iat": iat, "exp": iat + ttl});
        for (k, v) in extra.as_object().unwrap() {
            claims[k] = v.clone();
        }
        rs256(key, &claims)
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.served.keys.lock().unwrap() = keys;
    }

    pub fn set_down(&self, down: bool) {
        self.served.down.store(down, Ordering::SeqCst);
    }

    pub fn jwks_fetches(&self) -> usize {
        self.served.jwks_fetches.load(Ordering::SeqCst)
    }
}

/// Writes `key`'s JWKS to `dir/jwks.json` and returns the issuer `corp` that trusts it
/// for `iss` (audience `rds-token-broker`): a real binary's JWT issuer without a JWKS
/// server. (It displays as its `[[issuers]]` block.)
pub fn file_issuer(dir: &std::path::Path, key: &RsaKey, iss: &str) -> Issuer {
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [key.jwk()]}).to_string()).unwrap();
    Issuer::jwks_file("corp", iss, &jwks)
}
