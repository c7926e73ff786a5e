//! `access`: make, list, approve, deny and revoke access requests
//! (`/v1/access-requests`, `docs/cli.md#access-requests`).

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{BrokerClient, ClientError, fail, failed};
use crate::audit::display::neutralise;

/// Longest `--wait` for a decision.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);

/// `--for`: `30m`, `2h`, `90` (minutes) to whole minutes.
pub fn parse_duration(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (n, unit) = match s.strip_suffix('h') {
        Some(n) => (n, 60),
        None => (s.strip_suffix('m').unwrap_or(s), 1),
    };
    n.parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .filter(|m| *m > 0)
        .ok_or_else(|| format!("{s:?} is not a duration: use minutes (30m) or hours (2h)"))
}

/// `POST /v1/access-requests`.
pub async fn request(
    client: &BrokerClient,
    target: &str,
    db_user: &str,
    minutes: u32,
    reason: &str,
    break_glass: bool,
) -> Result<Value, ClientError> {
    let body = json!({"target": target, "db_user": db_user, "duration_minutes": minutes,
        "reason": reason, "break_glass": break_glass});
    let req = client
        .request(Method::POST, "v1/access-requests")
        .await?
        .json(&body);
    read(client.send_access(req).await?).await
}

/// `GET /v1/access-requests/{id}`.
pub async fn get(client: &BrokerClient, id: &str) -> Result<Value, ClientError> {
    let req = client
        .request(Method::GET, &format!("v1/access-requests/{}", path_id(id)?))
        .await?;
    read(client.send_access(req).await?).await
}

/// `GET /v1/access-requests` with `query` (`state=…`, `mine=true`, `to_review=true`).
pub async fn list(client: &BrokerClient, query: &[(&str, String)]) -> Result<Value, ClientError> {
    let req = client
        .request(Method::GET, "v1/access-requests")
        .await?
        .query(query);
    read(client.send_access(req).await?).await
}

/// `POST /v1/access-requests/{id}/{action}` (`approve`, `deny`, `revoke`).
pub async fn decide(
    client: &BrokerClient,
    id: &str,
    action: &str,
    comment: Option<&str>,
) -> Result<Value, ClientError> {
    let path = format!("v1/access-requests/{}/{action}", path_id(id)?);
    let body = json!({"comment": comment.unwrap_or("")});
    let req = client.request(Method::POST, &path).await?.json(&body);
    read(client.send_access(req).await?).await
}

/// Polls request `id` every `every` until it is no longer pending (or `max` passes).
pub async fn wait(
    client: &BrokerClient,
    id: &str,
    every: Duration,
    max: Duration,
) -> Result<Value, ClientError> {
    let mut waited = Duration::ZERO;
    loop {
        let r = get(client, id).await?;
        if text(&r, "/state") != "pending" {
            return Ok(r);
        }
        if waited >= max {
            return Err(fail(format!(
                "access request {id} is still pending after {} s",
                waited.as_secs()
            )));
        }
        tokio::time::sleep(every).await;
        waited += every;
    }
}

fn path_id(id: &str) -> Result<String, ClientError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.to_string())
        .map_err(|_| fail(format!("{:?} is not an access request id", neutralise(id))))
}

/// The string at JSON pointer `ptr` of `v` (`/state`, `/requester/subject`), or `-`.
pub fn text<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("-")
}

async fn read(res: reqwest::Response) -> Result<Value, ClientError> {
    res.json()
        .await
        .map_err(|e| failed("the broker's answer is not JSON", e))
}

/// One line per request: id, state, target, DB user, requester, expiry.
pub fn line(r: &Value) -> String {
    let s = |k: &str| neutralise(text(r, &format!("/{k}"))).into_owned();
    let flag = if r.get("break_glass") == Some(&Value::Bool(true)) {
        " BREAK-GLASS"
    } else {
        ""
    };
    format!(
        "{}  {}{flag}  {} as {}  by {}/{}  expires {}  reason: {}",
        s("id"),
        s("state"),
        s("target"),
        s("db_user"),
        neutralise(text(r, "/requester/issuer")),
        neutralise(text(r, "/requester/subject")),
        s("expires_at"),
        s("reason"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_minutes_or_hours() {
        assert_eq!(parse_duration("30m"), Ok(30));
        assert_eq!(parse_duration("2h"), Ok(120));
        assert_eq!(parse_duration("45"), Ok(45));
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
