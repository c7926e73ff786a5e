//! Time to sign one RDS auth token: rds-token-broker's signer against aws-sdk-rds's
//! `AuthTokenGenerator`, on the same inputs, in the same run.
//!
//! One criterion group, `sign_token`, with two functions, `rds-token-broker` and
//! `aws-sdk-rds AuthTokenGenerator`, each measured on two inputs: `session token`
//! (temporary credentials, `X-Amz-Security-Token` in the token) and `long-term key` (no
//! session token). Both are given the same host, port, region, user, credentials and the
//! same frozen time. For each input ours runs immediately before theirs, so the two
//! numbers that are compared are measured next to each other.
//!
//! What one timed iteration includes:
//!
//! * **rds-token-broker**: one call of `token::sign_token` (user encoding, host
//!   lower-casing, SigV4 key derivation, canonical request, string to sign, signature and
//!   assembly of the token) and dropping the returned `Result<SecretString, _>` (the
//!   secret is zeroed on drop). This is exactly what the broker runs on a cache miss.
//! * **aws-sdk-rds**: one call of `AuthTokenGenerator::auth_token` with the generator, its
//!   `Config` (same static credentials) and the `SdkConfig` (frozen time source) built once
//!   outside the loop: fetching the static credentials from the provider, the same SigV4
//!   work, its `url::Url` re-parse and assembly, and dropping the returned
//!   `Result<AuthToken, _>`. The future completes on its first poll (static credentials,
//!   no I/O), so it is polled once with a no-op waker rather than through a runtime,
//!   which would add scheduling cost to its side only.
//!
//! Inputs go through `black_box` and outputs are returned to criterion (which
//! `black_box`es them), so nothing can be constant-folded or optimised away. Before
//! anything is timed, both outputs are checked: a non-empty token that starts with the
//! host, and the same signature (same canonical request).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_rds::auth_token::{AuthToken, AuthTokenGenerator, Config};
use aws_smithy_async::time::StaticTimeSource;
use aws_types::SdkConfig;
use aws_types::region::Region;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rds_token_broker::token::{SignError, TokenParams, sign_token};
use secrecy::{ExposeSecret, SecretString};

const HOST: &str = "orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com";
const PORT: u16 = 5432;
const REGION: &str = "eu-west-1";
const USER: &str = "orders_svc";

/// Temporary credentials (`session: true`) or a long-term access key.
fn credentials(session: bool) -> Credentials {
    Credentials::new(
        if session {
            "ASIAQEXAMPLE2TESTKEY"
        } else {
            "AKIAIOSFODNN7EXAMPLE"
        },
        "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        session.then(|| "FwoGZXIvYXdzE/+Ab==".to_owned()),
        None,
        "bench",
    )
}

/// The frozen signing time both sides use.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_773_065_489)
}

/// One token from rds-token-broker.
fn ours(creds: &Credentials, time: SystemTime) -> Result<SecretString, SignError> {
    let params = TokenParams {
        host: HOST,
        port: PORT,
        region: REGION,
        db_user: USER,
    };
    sign_token(black_box(params), black_box(creds), black_box(time))
}

/// Polls a future that must complete without waiting.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("AuthTokenGenerator::auth_token did not complete on first poll"),
    }
}

/// One token from aws-sdk-rds.
fn theirs(
    generator: &AuthTokenGenerator,
    sdk: &SdkConfig,
) -> Result<AuthToken, aws_sdk_rds::error::BoxError> {
    ready(black_box(generator).auth_token(black_box(sdk)))
}

/// The aws-sdk-rds generator and the SDK config carrying the frozen time, built once.
fn generator(creds: &Credentials) -> (AuthTokenGenerator, SdkConfig) {
    let config = Config::builder()
        .hostname(HOST)
        .port(u64::from(PORT))
        .username(USER)
        .region(Region::new(REGION))
        .credentials(creds.clone())
        .build()
        .expect("generator config");
    let sdk = SdkConfig::builder()
        .time_source(StaticTimeSource::new(now()))
        .build();
    (AuthTokenGenerator::new(config), sdk)
}

/// Checks one output before timing: a non-empty token for these inputs; returns its
/// signature.
fn check(side: &str, token: &str, session: bool) -> String {
    assert!(!token.is_empty(), "{side}: empty token");
    assert!(
        token.starts_with(&format!("{HOST}:{PORT}/?Action=connect&DBUser={USER}&")),
        "{side}: token does not start with the host: {token}"
    );
    assert_eq!(
        token.contains("X-Amz-Security-Token="),
        session,
        "{side}: session token presence"
    );
    token
        .split_once("X-Amz-Signature=")
        .and_then(|(_, s)| s.get(..64))
        .unwrap_or_else(|| panic!("{side}: no signature in {token}"))
        .to_owned()
}

fn signing(c: &mut Criterion) {
    let mut group = c.benchmark_group("sign_token");
    for (case, session) in [("session token", true), ("long-term key", false)] {
        let creds = credentials(session);
        let (generator, sdk) = generator(&creds);

        // Both must produce a valid token for these inputs before anything is timed. On
        // them the two agree except for the parameter order when a session token is
        // present, so the signatures are equal.
        let a = ours(&creds, now()).expect("rds-token-broker signs");
        let b = theirs(&generator, &sdk).expect("aws-sdk-rds signs");
        assert_eq!(
            check("rds-token-broker", a.expose_secret(), session),
            check("aws-sdk-rds", b.as_str(), session),
            "both sign the same canonical request"
        );

        group.bench_function(BenchmarkId::new("rds-token-broker", case), |bch| {
            bch.iter(|| ours(&creds, now()))
        });
        group.bench_function(
            BenchmarkId::new("aws-sdk-rds AuthTokenGenerator", case),
            |bch| bch.iter(|| theirs(&generator, &sdk)),
        );
    }
    group.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
