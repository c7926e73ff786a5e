//! Validation of `[ui]`: the audit console and its optional OIDC sign-in.

use super::raw::RawUi;
use super::validate::Errors;
use super::{IssuerConfig, UiConfig, UiOidc};

pub(super) fn ui(raw: RawUi, issuers: &[IssuerConfig], e: &mut Errors<'_>) -> UiConfig {
    let oidc = raw.oidc.and_then(|o| {
        let issuer = issuers.iter().find(|i| i.name == o.issuer);
        if issuer.is_none() {
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
            && !i.audiences.is_empty()
            && !i.audiences.contains(&client_id)
        {
            e.push(
                "ui.oidc.client_id",
                format!(
                    "ID tokens are issued for the client id: add {client_id:?} to the audiences of issuer {:?}",
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
        let mut endpoint = |key: &str, v: Option<String>| {
            v.filter(|u| match reqwest::Url::parse(u) {
                Ok(url) if matches!(url.scheme(), "https" | "http") => true,
                _ => {
                    e.push(format!("ui.oidc.{key}"), "must be an http(s) URL");
                    false
                }
            })
        };
        let authorization_endpoint = endpoint("authorization_endpoint", o.authorization_endpoint);
        let token_endpoint = endpoint("token_endpoint", o.token_endpoint);
        issuer.map(|i| UiOidc {
            issuer: i.name.clone(),
            issuer_url: i.issuer.clone(),
            client_id,
            scopes,
            authorization_endpoint,
            token_endpoint,
        })
    });
    UiConfig {
        enabled: raw.enabled.unwrap_or(true),
        oidc,
    }
}
