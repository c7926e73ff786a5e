//! The Amazon S3 checkpoint sink (aws-sdk-s3): one object per checkpoint, key
//! `<prefix>/<chain_id>/<tree size zero-padded to 20 digits>`, body the signed note. With
//! a bucket in Object Lock compliance mode nobody, the broker included, can delete or
//! overwrite them (docs/audit.md). Also reads them back for offline verification.

use aws_credential_types::provider::SharedCredentialsProvider;
use aws_sdk_s3::config::{BehaviorVersion, Region as SdkRegion};
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::primitives::ByteStream;

use crate::audit::TreeHead;
use crate::audit::note::MAX_NOTE_BYTES;
use crate::config::S3SinkConfig;

/// Region used when neither `s3_region` nor `aws.region` is set.
const DEFAULT_REGION: &str = "us-east-1";
/// Most objects [`read_s3_notes`] reads.
pub const MAX_OBJECTS: usize = 1_000_000;

/// A bucket and prefix with a client for them.
#[derive(Debug, Clone)]
pub struct S3Sink {
    client: aws_sdk_s3::Client,
    bucket: String,
    prefix: String,
}

/// Why reading checkpoints from S3 failed.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The location is not `s3://bucket[/prefix]`.
    #[error("not an s3://bucket/prefix location: {0}")]
    Location(String),
    /// An S3 call failed.
    #[error("S3 {call} failed: {why}")]
    Call {
        /// `ListObjectsV2` or `GetObject`.
        call: &'static str,
        /// The SDK's error, with its context.
        why: String,
    },
    /// An object is not a note (too large, not UTF-8).
    #[error("s3://{bucket}/{key} is not a checkpoint note")]
    NotANote {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// More objects than [`MAX_OBJECTS`].
    #[error("more than {MAX_OBJECTS} objects under the prefix")]
    TooMany,
}

/// The object key of a checkpoint.
pub fn object_key(prefix: &str, chain_id: &str, tree_size: u64) -> String {
    if prefix.is_empty() {
        format!("{chain_id}/{tree_size:020}")
    } else {
        format!("{prefix}/{chain_id}/{tree_size:020}")
    }
}

fn client(
    region: Option<&str>,
    endpoint: Option<&str>,
    credentials: SharedCredentialsProvider,
) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(SdkRegion::new(region.unwrap_or(DEFAULT_REGION).to_owned()))
        .credentials_provider(credentials);
    if let Some(ep) = endpoint {
        // S3-compatible endpoints (and moto) address buckets by path.
        b = b.endpoint_url(ep).force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}

impl S3Sink {
    /// The sink `cfg` describes, signing with `credentials`; `aws_region` (`aws.region`)
    /// when `s3_region` is not set.
    pub fn new(
        cfg: &S3SinkConfig,
        aws_region: Option<&str>,
        credentials: SharedCredentialsProvider,
    ) -> Self {
        let region = cfg.region.as_ref().map(|r| r.as_str()).or(aws_region);
        Self {
            client: client(region, cfg.endpoint.as_deref(), credentials),
            bucket: cfg.bucket.clone(),
            prefix: cfg.prefix.clone(),
        }
    }

    /// Writes `head` as its object, only if no object has that key yet (`If-None-Match:
    /// *`, S3's conditional write), so a checkpoint once published is never replaced, even
    /// in a bucket without Object Lock. When one is there already (a retry whose first
    /// answer was lost, or a restart re-publishing), identical bytes count as published; a
    /// different note under the same chain and size is a fork and an error.
    pub async fn put(&self, head: &TreeHead) -> Result<(), String> {
        let key = object_key(&self.prefix, &head.chain_id, head.tree_size);
        let put = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .if_none_match("*")
            .content_type("text/plain; charset=utf-8")
            .body(ByteStream::from(head.note.clone().into_bytes()))
            .send()
            .await;
        let e = match put {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let failed = |e: &dyn std::fmt::Display| {
            format!("S3 PutObject s3://{}/{key} failed: {e}", self.bucket)
        };
        if e.raw_response().map(|r| r.status().as_u16()) != Some(412) {
            return Err(failed(&DisplayErrorContext(&e)));
        }
        match read_one(&self.client, &self.bucket, &key).await {
            Ok(existing) if existing == head.note => Ok(()),
            Ok(_) => Err(format!(
                "s3://{}/{key} already holds a different checkpoint of this chain and size \
                 (a fork, or another signer using this chain id); it is left as it is",
                self.bucket
            )),
            Err(e) => Err(failed(&e)),
        }
    }
}

/// Splits `s3://bucket/prefix` into bucket and prefix (without slashes at its ends).
pub fn parse_location(url: &str) -> Result<(String, String), S3Error> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| S3Error::Location(url.to_owned()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(S3Error::Location(url.to_owned()));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// Every checkpoint note under `s3://bucket/prefix` (`url`), in key order (by chain, then
/// tree size), read with the SDK's default credentials; `endpoint` for an S3-compatible
/// service. For `audit verify --checkpoints s3://...`.
pub async fn read_s3_notes(
    url: &str,
    region: Option<&str>,
    endpoint: Option<&str>,
) -> Result<Vec<String>, S3Error> {
    let (bucket, prefix) = parse_location(url)?;
    let region_ref = region.map(str::to_owned);
    let credentials = crate::aws::default_chain_in(SdkRegion::new(
        region_ref.unwrap_or_else(|| DEFAULT_REGION.to_owned()),
    ))
    .await;
    let c = client(region, endpoint, credentials);
    read_notes(&c, &bucket, &prefix).await
}

/// Every note under `prefix` in `bucket`, in key order.
pub async fn read_notes(
    c: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<Vec<String>, S3Error> {
    let list_prefix = if prefix.is_empty() {
        String::new()
    } else {
        format!("{prefix}/")
    };
    let mut keys = Vec::new();
    let mut pages = c
        .list_objects_v2()
        .bucket(bucket)
        .prefix(&list_prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| S3Error::Call {
            call: "ListObjectsV2",
            why: DisplayErrorContext(&e).to_string(),
        })?;
        for o in page.contents() {
            if let Some(k) = o.key() {
                keys.push(k.to_owned());
            }
        }
        if keys.len() > MAX_OBJECTS {
            return Err(S3Error::TooMany);
        }
    }
    keys.sort();
    let mut notes = Vec::with_capacity(keys.len());
    for key in keys {
        notes.push(read_one(c, bucket, &key).await?);
    }
    Ok(notes)
}

/// The note stored at `key`, refused when it is too large or not UTF-8.
async fn read_one(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<String, S3Error> {
    let out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(|e| S3Error::Call {
            call: "GetObject",
            why: DisplayErrorContext(&e).to_string(),
        })?;
    let not_a_note = || S3Error::NotANote {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    };
    if out.content_length().unwrap_or(0) > MAX_NOTE_BYTES as i64 {
        return Err(not_a_note());
    }
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| S3Error::Call {
            call: "GetObject",
            why: e.to_string(),
        })?
        .into_bytes();
    if bytes.len() > MAX_NOTE_BYTES {
        return Err(not_a_note());
    }
    String::from_utf8(bytes.to_vec()).map_err(|_| not_a_note())
}
