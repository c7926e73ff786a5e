//! An OpenID Connect provider on loopback for the console's sign-in: discovery, JWKS, an
//! authorization endpoint that signs the user in at once (no login page) and redirects
//! back with a code, and a token endpoint that checks the code, the redirect URI, the
//! client and the PKCE verifier (S256) before answering with an RS256 ID token.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::idp::{RsaKey, rs256};

struct Pending {
    challenge: String,
    redirect_uri: String,
    client_id: String,
    nonce: Option<String>,
}

struct Provider {
    issuer: String,
    key: RsaKey,
    claims: Value,
    codes: Mutex<HashMap<String, Pending>>,
    redeemed: AtomicUsize,
}

pub struct OidcProvider {
    /// `http://127.0.0.1:PORT`, the `iss` of its ID tokens.
    pub issuer: String,
    provider: Arc<Provider>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl OidcProvider {
    /// Signs everyone in as `claims` (plus `iss`, `aud`, `iat`, `exp`, `nonce`).
    pub async fn start(key: RsaKey, claims: Value) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let provider = Arc::new(Provider {
            issuer: issuer.clone(),
            key,
            claims,
            codes: Mutex::new(HashMap::new()),
            redeemed: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .with_state(provider.clone());
        let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            issuer,
            provider,
            server,
        }
    }

    /// A JWT from this provider for `aud` with `claims` (plus `iss`, `iat`, `exp`): what
    /// a caller or an auditor would paste.
    pub fn jwt(&self, aud: &str, claims: Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = claims;
        claims["iss"] = json!(self.issuer);
        claims["aud"] = json!(aud);
        claims["iat"] = json!(now);
        claims["exp"] = json!(now + 3600);
        rs256(&self.provider.key, &claims)
    }

    /// Codes redeemed for ID tokens.
    pub fn redeemed(&self) -> usize {
        self.provider.redeemed.load(Ordering::SeqCst)
    }
}

async fn discovery(State(p): State<Arc<Provider>>) -> Json<Value> {
    Json(json!({
        "issuer": p.issuer,
        "jwks_uri": format!("{}/jwks", p.issuer),
        "authorization_endpoint": format!("{}/authorize", p.issuer),
        "token_endpoint": format!("{}/token", p.issuer),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
    }))
}

async fn jwks(State(p): State<Arc<Provider>>) -> Json<Value> {
    Json(json!({"keys": [p.key.jwk()]}))
}

fn oauth_error(code: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": code}))).into_response()
}

async fn authorize(
    State(p): State<Arc<Provider>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    if get("response_type") != "code"
        || get("code_challenge_method") != "S256"
        || get("code_challenge").len() != 43
        || !get("scope").split(' ').any(|s| s == "openid")
    {
        return oauth_error("invalid_request");
    }
    let code = format!("code-{}", uuid::Uuid::new_v4().simple());
    p.codes.lock().unwrap().insert(
        code.clone(),
        Pending {
            challenge: get("code_challenge"),
            redirect_uri: get("redirect_uri"),
            client_id: get("client_id"),
            nonce: q.get("nonce").cloned(),
        },
    );
    let mut back = reqwest::Url::parse(&get("redirect_uri")).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &get("state"));
    Redirect::to(back.as_str()).into_response()
}

async fn token(State(p): State<Arc<Provider>>, Form(f): Form<HashMap<String, String>>) -> Response {
    let get = |k: &str| f.get(k).cloned().unwrap_or_default();
    if get("grant_type") != "authorization_code" {
        return oauth_error("unsupported_grant_type");
    }
    // A code is good for one redemption.
    let Some(pending) = p.codes.lock().unwrap().remove(&get("code")) else {
        return oauth_error("invalid_grant");
    };
    let challenge = B64.encode(Sha256::digest(get("code_verifier").as_bytes()));
    if challenge != pending.challenge
        || get("redirect_uri") != pending.redirect_uri
        || get("client_id") != pending.client_id
    {
        return oauth_error("invalid_grant");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = p.claims.clone();
    let extra = json!({
        "iss": p.issuer, "aud": pending.client_id, "iat": now, "exp": now + 600,
        "nonce": pending.nonce,
    });
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    p.redeemed.fetch_add(1, Ordering::SeqCst);
    Json(json!({
        "access_token": "opaque-access-token",
        "token_type": "Bearer",
        "expires_in": 600,
        "id_token": rs256(&p.key, &claims),
    }))
    .into_response()
}
