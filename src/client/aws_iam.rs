//! `--aws-iam`: prove the caller's AWS identity to the broker with a signed
//! `sts:GetCallerIdentity` request (see `auth::aws_iam`). The credentials come from the
//! AWS default chain and never leave this process; only the signature does.

use std::collections::BTreeMap;

use aws_credential_types::provider::ProvideCredentials as _;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use base64::Engine as _;

use super::{ClientError, failed};
use crate::auth::aws_iam::{GET_CALLER_IDENTITY, SERVER_ID_HEADER};
use crate::clock::{Clock as _, SystemClock};

/// Signs GetCallerIdentity requests for one broker.
#[derive(Debug)]
pub struct IamSigner {
    server_id: String,
    url: reqwest::Url,
    region: String,
    credentials: aws_credential_types::provider::SharedCredentialsProvider,
}

impl IamSigner {
    /// `sts_endpoint` overrides the regional endpoint (`https://sts.REGION.amazonaws.com/`,
    /// or the global one when no region is configured).
    pub async fn new(server_id: &str, sts_endpoint: Option<&str>) -> Result<Self, ClientError> {
        use aws_config::meta::region::ProvideRegion as _;
        let region = aws_config::default_provider::region::default_provider()
            .region()
            .await
            .map(|r| r.as_ref().to_owned());
        let (url, region) = match (sts_endpoint, region) {
            (Some(e), r) => (e.to_owned(), r.unwrap_or_else(|| "us-east-1".to_owned())),
            (None, Some(r)) => (format!("https://sts.{r}.amazonaws.com/"), r),
            (None, None) => (
                "https://sts.amazonaws.com/".to_owned(),
                "us-east-1".to_owned(),
            ),
        };
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| ClientError::Message(format!("--sts-endpoint {url}: not a URL ({e})")))?;
        let url = parsed;
        let region_ref = aws_config::Region::new(region.clone());
        let credentials = crate::aws::default_chain_in(region_ref).await;
        Ok(Self {
            server_id: server_id.to_owned(),
            url,
            region,
            credentials,
        })
    }

    /// A fresh `AWS-IAM ...` Authorization value.
    pub async fn authorization(&self) -> Result<String, ClientError> {
        let creds = self.credentials.provide_credentials().await.map_err(|e| {
            failed(
                "--aws-iam: no AWS credentials from the default chain (environment, profile, \
                 web identity, ECS, EC2 instance metadata)",
                e,
            )
        })?;
        let host = match (self.url.host_str(), self.url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            _ => return Err(ClientError::Message("the STS endpoint has no host".into())),
        };
        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let unsigned = [
            ("content-type", content_type),
            ("host", host.as_str()),
            (SERVER_ID_HEADER, self.server_id.as_str()),
        ];
        let identity: Identity = creds.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("sts")
            .time(SystemClock.now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| failed("cannot sign", e))?
            .into();
        let request = SignableRequest::new(
            "POST",
            self.url.as_str(),
            unsigned.iter().copied(),
            SignableBody::Bytes(GET_CALLER_IDENTITY.as_bytes()),
        )
        .map_err(|e| failed("cannot sign", e))?;
        let (instructions, _) = sign(request, &params)
            .map_err(|e| failed("cannot sign", e))?
            .into_parts();
        let mut headers: BTreeMap<String, String> = unsigned
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        for (k, v) in instructions.headers() {
            headers.insert(k.to_ascii_lowercase(), v.to_owned());
        }
        let signed = serde_json::json!({
            "method": "POST",
            "url": self.url.as_str(),
            "headers": headers,
            "body": GET_CALLER_IDENTITY,
        });
        Ok(format!(
            "AWS-IAM {}",
            base64::engine::general_purpose::STANDARD.encode(signed.to_string())
        ))
    }
}
