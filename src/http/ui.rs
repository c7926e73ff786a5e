//! `/ui`: the audit console, a single page embedded in the binary, and its sign-in
//! helpers. The page reads data only through the `/v1/audit/*` API with the auditor's
//! bearer token, so it shows nothing the API would not.
//!
//! OIDC sign-in is the authorization-code flow with PKCE for a public client: the browser
//! goes to the identity provider and comes back to `/ui/` with a code; the page posts the
//! code and its PKCE verifier to `POST /ui/oidc/token`, which redeems them at the token
//! endpoint (so the page's Content-Security-Policy can keep `connect-src 'self'`), checks
//! the ID token like any bearer token, and hands it back to the page.

use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::JsonBody;
use crate::config::UiOidc;
use crate::state::AppState;

/// The page's policy: nothing but this origin, no inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
     frame-ancestors 'none'; base-uri 'none'";

const INDEX_HTML: &str = include_str!("../../ui/index.html");
const APP_JS: &str = include_str!("../../ui/app.js");
const CHARTS_JS: &str = include_str!("../../ui/charts.js");
const APP_CSS: &str = include_str!("../../ui/app.css");
const FAVICON_SVG: &str = include_str!("../../ui/favicon.svg");

/// The page and its assets: (path, content type, body).
const ASSETS: [(&str, &str, &str); 5] = [
    ("/ui/", "text/html; charset=utf-8", INDEX_HTML),
    ("/ui/app.js", "text/javascript; charset=utf-8", APP_JS),
    ("/ui/charts.js", "text/javascript; charset=utf-8", CHARTS_JS),
    ("/ui/app.css", "text/css; charset=utf-8", APP_CSS),
    ("/ui/favicon.svg", "image/svg+xml", FAVICON_SVG),
];

/// The console's routes; all 404 when `ui.enabled` is false.
pub fn router() -> Router<AppState> {
    let mut router = Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/config", get(config))
        .route("/ui/oidc/token", post(redeem));
    for (path, content_type, body) in ASSETS {
        router = router.route(path, get(move |s| asset(s, content_type, body)));
    }
    router
}

fn enabled(state: &AppState) -> Result<(), ApiError> {
    if state.generation().config.ui.enabled {
        Ok(())
    } else {
        Err(ApiError::NotFound)
    }
}

/// Headers every console response carries.
fn harden(mut res: Response, cache: &'static str) -> Response {
    let h = res.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
    ] {
        h.insert(name, value);
    }
    res
}

async fn asset(
    State(state): State<AppState>,
    content_type: &'static str,
    body: &'static str,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let res = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    Ok(harden(res, "no-cache"))
}

/// What the page needs to offer sign-in: the identity provider's authorization endpoint
/// and client, if configured, and whether this is an unauthenticated demo broker.
async fn config(State(state): State<AppState>) -> Result<Response, ApiError> {
    enabled(&state)?;
    let generation = state.generation();
    let oidc = match &generation.config.ui.oidc {
        Some(o) => {
            let (authorization_endpoint, _) = endpoints(o).await?;
            json!({
                "issuer": o.issuer,
                "authorization_endpoint": authorization_endpoint,
                "client_id": o.client_id,
                "scope": o.scopes.join(" "),
            })
        }
        None => Value::Null,
    };
    let body = json!({
        "oidc": oidc,
        "unauthenticated": generation.config.server.allow_unauthenticated,
    });
    Ok(harden(Json(body).into_response(), "no-store"))
}

/// The authorization and token endpoints: configured, or from the issuer's discovery
/// document.
async fn endpoints(o: &UiOidc) -> Result<(String, String), ApiError> {
    if let (Some(a), Some(t)) = (&o.authorization_endpoint, &o.token_endpoint) {
        return Ok((a.clone(), t.clone()));
    }
    let unavailable = |what: &str| ApiError::Unavailable {
        detail: format!("the identity provider's discovery document {what}"),
        retry_after: 10,
    };
    let url = format!(
        "{}/.well-known/openid-configuration",
        o.issuer_url.trim_end_matches('/')
    );
    let doc: Value = client()?
        .get(&url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|_| unavailable("could not be fetched"))?
        .json()
        .await
        .map_err(|_| unavailable("is not JSON"))?;
    let field = |name: &str, configured: &Option<String>| {
        configured
            .clone()
            .or_else(|| doc.get(name).and_then(Value::as_str).map(str::to_owned))
            .ok_or_else(|| unavailable(&format!("has no {name}")))
    };
    Ok((
        field("authorization_endpoint", &o.authorization_endpoint)?,
        field("token_endpoint", &o.token_endpoint)?,
    ))
}

fn client() -> Result<reqwest::Client, ApiError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ApiError::Internal(format!("cannot build the HTTP client: {e}")))
}

/// Body of `POST /ui/oidc/token`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redeem {
    code: SecretString,
    code_verifier: SecretString,
    redirect_uri: String,
}

/// Checks the body's shape: a code, an RFC 7636 verifier, and this console's address
/// (`/ui/` on the host the browser asked for).
fn check(body: &Redeem, host: Option<&str>) -> Result<(), ApiError> {
    let bad = |m: &str| Err(ApiError::BadRequest(m.into()));
    let code = body.code.expose_secret();
    if code.is_empty() || code.len() > 4096 || !code.bytes().all(|b| b.is_ascii_graphic()) {
        return bad("code: must be 1 to 4096 printable characters");
    }
    let verifier = body.code_verifier.expose_secret();
    if !(43..=128).contains(&verifier.len())
        || !verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return bad("code_verifier: must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~");
    }
    match reqwest::Url::parse(&body.redirect_uri) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && host.is_some_and(|h| authority(&u).eq_ignore_ascii_case(h))
                && u.path() == "/ui/"
                && u.query().is_none()
                && u.fragment().is_none()
                && u.username().is_empty() => {}
        _ => return bad("redirect_uri: must be this console's address, ending in /ui/"),
    }
    Ok(())
}

/// `host[:port]` of `u`, as a `Host` header would carry it.
fn authority(u: &reqwest::Url) -> String {
    match (u.host_str(), u.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        _ => String::new(),
    }
}

/// Redeems an authorization code for an ID token and checks it as a bearer token.
async fn redeem(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<Redeem>,
) -> Result<Response, ApiError> {
    enabled(&state)?;
    let generation = state.generation();
    let Some(oidc) = &generation.config.ui.oidc else {
        return Err(ApiError::NotFound);
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    check(&body, host)?;
    let (_, token_endpoint) = endpoints(oidc).await?;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", body.code.expose_secret()),
        ("code_verifier", body.code_verifier.expose_secret()),
        ("redirect_uri", body.redirect_uri.as_str()),
        ("client_id", oidc.client_id.as_str()),
    ];
    let res = client()?
        .post(&token_endpoint)
        .header(header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|_| ApiError::Unavailable {
            detail: "the identity provider's token endpoint did not answer".into(),
            retry_after: 10,
        })?;
    let status = res.status();
    let answer: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        // The OAuth error code is a fixed word (invalid_grant, ...): safe to pass on.
        let code = answer
            .get("error")
            .and_then(Value::as_str)
            .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            .unwrap_or("no error code");
        return Err(ApiError::Unauthorized(format!(
            "the identity provider refused the code ({code}); sign in again"
        )));
    }
    let Some(id_token) = answer.get("id_token").and_then(Value::as_str) else {
        return Err(ApiError::BadGateway(
            "the identity provider's answer has no id_token".into(),
        ));
    };
    let principal = generation
        .auth
        .authenticate(id_token)
        .await
        .map_err(ApiError::from)?;
    if principal.issuer != oidc.issuer {
        return Err(ApiError::Unauthorized(
            "the ID token is not from the console's issuer".into(),
        ));
    }
    let auditor = crate::policy::is_auditor(&generation.config, &principal);
    let body = json!({
        "id_token": id_token,
        "issuer": principal.issuer,
        "subject": principal.subject,
        "auditor": auditor,
    });
    Ok(harden(Json(body).into_response(), "no-store"))
}
