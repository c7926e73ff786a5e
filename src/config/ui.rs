//! Validation of `[ui]`: the audit console and its optional OIDC sign-in.
//!
//! `[ui.oidc] issuer` names an `[[issuers]]` entry whose audiences include the console's
//! `client_id` (ID tokens are issued for the client). That entry may be one of its own:
//! several entries may share an `iss`, so the API issuer need not accept the console's
//! audience, and console ID tokens then are no `/v1/tokens` credentials.
//!
//! The redirect URI the console may use is `<ui.public_url>/ui/`; without `public_url`
//! only a loopback `Host` is believed, so `[ui.oidc]` then needs a loopback
//! `server.listen`.

use std::net::SocketAddr;

use super::access::{Declared, fetch_allowed, is_loopback_host};
use super::raw::RawUi;
use super::validate::Errors;
use super::{IssuerConfig, UiConfig, UiOidc};

pub(super) fn ui(
    raw: RawUi,
    issuers: &[IssuerConfig],
    declared: &Declared,
    listen: Option<SocketAddr>,
    e: &mut Errors<'_>,
) -> UiConfig {
    let public_url = raw.public_url.as_deref().and_then(|u| match origin(u) {
        Ok(o) => Some(o),
        Err(why) => {
            e.push("ui.public_url", why);
            None
        }
    });
    if raw.oidc.is_some()
        && raw.public_url.is_none()
        && listen.is_some_and(|l| !l.ip().is_loopback())
    {
        e.push(
            "ui.public_url",
            "required with [ui.oidc] unless server.listen is a loopback address: the \
             console's address (such as \"https://broker.example.com\") is the only \
             redirect URI sign-in accepts",
        );
    }
    let oidc = raw.oidc.and_then(|o| {
        let issuer = issuers.iter().find(|i| i.name == o.issuer);
        // An entry with an error of its own is reported at its own key.
        if issuer.is_none() && !declared.issuers.contains(&o.issuer) {
            e.push(
                "ui.oidc.issuer",
                format!("{:?} is not the name of an [[issuers]] entry", o.issuer),
            );
        }
        let client_id = o.client_id.trim().to_owned();
        if client_id.is_empty() || client_id.len() > 256 {
            e.push("ui.oidc.client_id", "must be 1 to 256 characters");
        }
        if let Some(i) = issuer
            && !i.audiences.contains(&client_id)
        {
            e.push(
                "ui.oidc.client_id",
                format!(
                    "ID tokens are issued for the client id: add {client_id:?} to the audiences of issuer {:?} \
                     (or name an [[issuers]] entry of its own with the same issuer URL and that audience)",
                    i.name
                ),
            );
        }
        let scopes = o.scopes.unwrap_or_else(|| vec!["openid".into()]);
        if !scopes.iter().any(|s| s == "openid") {
            e.push("ui.oidc.scopes", "must include \"openid\"");
        }
        if scopes
            .iter()
            .any(|s| s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'))
        {
            e.push("ui.oidc.scopes", "scopes are non-empty printable words without spaces");
        }
        let insecure_http = issuer.is_some_and(|i| i.insecure_http);
        let mut endpoint = |key: &str, v: Option<String>| {
            v.filter(|u| match reqwest::Url::parse(u) {
                Ok(url) if matches!(url.scheme(), "https" | "http") => {
                    match fetch_allowed(u, insecure_http) {
                        Ok(()) => true,
                        Err(why) => {
                            e.push(format!("ui.oidc.{key}"), why);
                            false
                        }
                    }
                }
                _ => {
                    e.push(format!("ui.oidc.{key}"), "must be an http(s) URL");
                    false
                }
            })
        };
        let authorization_endpoint = endpoint("authorization_endpoint", o.authorization_endpoint);
        let token_endpoint = endpoint("token_endpoint", o.token_endpoint);
        // Without both endpoints the console reads the issuer's discovery document.
        if let Some(i) = issuer
            && (authorization_endpoint.is_none() || token_endpoint.is_none())
            && i.issuer.starts_with("http://")
            && let Err(why) = fetch_allowed(&i.issuer, i.insecure_http)
        {
            e.push(
                "ui.oidc.issuer",
                format!("{why} (the console reads the issuer's discovery document)"),
            );
        }
        issuer.map(|i| UiOidc {
            issuer: i.name.clone(),
            issuer_url: i.issuer.clone(),
            client_id,
            scopes,
            authorization_endpoint,
            token_endpoint,
            insecure_http: i.insecure_http,
        })
    });
    UiConfig {
        enabled: raw.enabled.unwrap_or(true),
        public_url,
        oidc,
    }
}

/// `https://host[:port]` (or `http://` to a loopback host) with nothing after it but an
/// optional `/`, as the origin without the slash.
fn origin(url: &str) -> Result<String, &'static str> {
    const SHAPE: &str = "must be the console's origin, such as \"https://broker.example.com\" \
                         (https, or http on a loopback host; no path, query or user)";
    let u = reqwest::Url::parse(url).map_err(|_| SHAPE)?;
    let scheme_ok = match u.scheme() {
        "https" => true,
        "http" => u.host_str().is_some_and(is_loopback_host),
        _ => false,
    };
    if !scheme_ok
        || u.host_str().is_none()
        || u.path() != "/"
        || u.query().is_some()
        || u.fragment().is_some()
        || !u.username().is_empty()
        || u.password().is_some()
    {
        return Err(SHAPE);
    }
    Ok(u.origin().ascii_serialization())
}
