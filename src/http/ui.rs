//! `/ui`: the audit console, a single page embedded in the binary, and its sign-in
//! helpers. The page reads data only through the `/v1/audit/*` API with the auditor's
//! bearer token, so it shows nothing the API would not.
//!
//! OIDC sign-in is the authorization-code flow with PKCE for a public client: the browser
//! goes to the identity provider and comes back to `/ui/` with a code; the page posts the
//! code and its PKCE verifier to `POST /ui/oidc/token`, which redeems them at the token
//! endpoint (so the page's Content-Security-Policy can keep `connect-src 'self'`), checks
//! the ID token like any bearer token, and hands it back to the page. The only redirect
//! URI it passes on is `<ui.public_url>/ui/` (without `public_url`, `/ui/` on a loopback
//! `Host`); it answers 404 from the request head, before any body is read, when sign-in
//! is off. The provider's endpoints and HTTP client come from
//! [`crate::auth::oidc::ConsoleIdp`], which caches the discovery document.

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::extract::JsonBody;
use crate::auth::oidc::{DiscoveryError, MAX_ANSWER_BYTES};
use crate::auth::outbound::read_capped;
use crate::config::is_loopback_host;
use crate::state::{AppState, Generation};

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

/// The console's routes; all 404 when `ui.enabled` is false (the console gate in
/// `http/mod.rs`, in front of them and of `/docs`, decides that).
pub fn router() -> Router<AppState> {
    let mut router = Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/config", get(config))
        .route("/ui/oidc/token", post(redeem));
    for (path, content_type, body) in ASSETS {
        router = router.route(path, get(move || asset(content_type, body)));
    }
    router
}

/// Headers every console (and API reference) response carries.
pub(super) fn harden(mut res: Response, cache: &'static str) -> Response {
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

/// An embedded file of a browser page (the console's, `/docs`'), with the pages' headers.
pub(super) async fn asset(content_type: &'static str, body: &'static str) -> Response {
    harden(
        ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        "no-cache",
    )
}

/// What the page needs to offer sign-in: the identity provider's authorization endpoint
/// and client, if configured, and whether this is an unauthenticated demo broker.
async fn config(State(state): State<AppState>) -> Result<Response, ApiError> {
    let generation = state.generation();
    let oidc = match &generation.config.ui.oidc {
        Some(o) => {
            let endpoints = generation
                .auth
                .console()
                .endpoints(o)
                .await
                .map_err(unavailable)?;
            json!({
                "issuer": o.issuer,
                "authorization_endpoint": endpoints.authorization_endpoint,
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

fn unavailable(e: DiscoveryError) -> ApiError {
    ApiError::Unavailable {
        detail: e.to_string(),
        retry_after: 10,
    }
}

/// `POST /ui/oidc/token` is served: the console is on and has `[ui.oidc]`. Checked from
/// the request head, before the body is read, so a disabled endpoint costs no waiting
/// for a body.
struct OidcSignIn(Arc<Generation>);

impl FromRequestParts<AppState> for OidcSignIn {
    type Rejection = ApiError;

    async fn from_request_parts(_: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let generation = state.generation();
        let ui = &generation.config.ui;
        if ui.enabled && ui.oidc.is_some() {
            Ok(Self(generation))
        } else {
            Err(ApiError::NotFound)
        }
    }
}

/// Body of `POST /ui/oidc/token`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Redeem {
    code: SecretString,
    code_verifier: SecretString,
    redirect_uri: String,
}

/// Checks the body's shape: a code, an RFC 7636 verifier, and this console's address:
/// `<ui.public_url>/ui/`, or without `public_url`, `/ui/` on the loopback host the request
/// was sent to (a `Host` that is not loopback is not believed).
fn check(body: &Redeem, public_url: Option<&str>, host: Option<&str>) -> Result<(), ApiError> {
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
    let Ok(u) = reqwest::Url::parse(&body.redirect_uri) else {
        return bad("redirect_uri: must be this console's address, ending in /ui/");
    };
    let shape_ok = matches!(u.scheme(), "http" | "https")
        && u.path() == "/ui/"
        && u.query().is_none()
        && u.fragment().is_none()
        && u.username().is_empty()
        && u.password().is_none();
    let address_ok = match public_url {
        Some(origin) => u.origin().ascii_serialization() == origin,
        None => host.is_some_and(|h| {
            authority(&u).eq_ignore_ascii_case(h) && u.host_str().is_some_and(is_loopback_host)
        }),
    };
    if !(shape_ok && address_ok) {
        return bad(if public_url.is_some() {
            "redirect_uri: must be this console's address, ui.public_url followed by /ui/"
        } else {
            "redirect_uri: must be this console's address, ending in /ui/; without \
             ui.public_url only a loopback address is accepted"
        });
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

/// Redeems an authorization code for an ID token and checks it as a bearer token; the
/// sign-in is recorded (outcome `signed_in`) before the ID token leaves, or refused (503)
/// when it cannot be.
async fn redeem(
    State(state): State<AppState>,
    super::extract::Meta(meta): super::extract::Meta,
    OidcSignIn(generation): OidcSignIn,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody<Redeem>,
) -> Result<Response, ApiError> {
    let ui = &generation.config.ui;
    let Some(oidc) = &ui.oidc else {
        return Err(ApiError::NotFound);
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    check(&body, ui.public_url.as_deref(), host)?;
    let console = generation.auth.console();
    let token_endpoint = console
        .endpoints(oidc)
        .await
        .map_err(unavailable)?
        .token_endpoint;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", body.code.expose_secret()),
        ("code_verifier", body.code_verifier.expose_secret()),
        ("redirect_uri", body.redirect_uri.as_str()),
        ("client_id", oidc.client_id.as_str()),
    ];
    let res = console
        .http()
        .post(&token_endpoint)
        .header(header::ACCEPT, "application/json")
        .form(&form)
        .send()
        .await
        .map_err(|e| {
            // The cause (logged) without the URL; the form (code, verifier) is never in it.
            ApiError::unavailable("the identity provider's token endpoint did not answer", 10)
                .caused_by(e.without_url())
        })?;
    let status = res.status();
    let answer: Value = read_capped(res, MAX_ANSWER_BYTES)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
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
    state
        .broker
        .record_sign_in(&meta, &principal, "console sign-in with OIDC", auditor)
        .await
        .map_err(|e| {
            ApiError::unavailable("this sign-in could not be recorded in the audit trail", 5)
                .caused_by(e)
        })?;
    let body = json!({
        "id_token": id_token,
        "issuer": principal.issuer,
        "subject": principal.subject,
        "auditor": auditor,
    });
    Ok(harden(Json(body).into_response(), "no-store"))
}
