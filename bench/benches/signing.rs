//! Time to sign one RDS auth token: rds-token-broker's signer against aws-sdk-rds's
//! `AuthTokenGenerator`, on the same inputs, in the same run.
//!
//! Each timed iteration of either side takes (host, port, region, user, static credentials,
//! a fixed time) and returns the finished token string: SigV4 key derivation, canonical
//! request, signature and assembly. The generator and its config are built once, outside
//! the loop; its async `auth_token` completes on its first poll (static credentials, no
//! I/O), so it is polled once with a no-op waker rather than through a runtime, which
//! would add scheduling cost to its side only.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sdk_rds::auth_token::{AuthTokenGenerator, Config};
use aws_smithy_async::time::StaticTimeSource;
use aws_types::SdkConfig;
use aws_types::region::Region;
use criterion::{Criterion, criterion_group, criterion_main};
use rds_token_broker::token::{TokenParams, sign_token};
use secrecy::ExposeSecret;

const HOST: &str = "orders.cluster-abc123xyz.eu-west-1.rds.amazonaws.com";
const PORT: u16 = 5432;
const REGION: &str = "eu-west-1";
const USER: &str = "orders_svc";

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

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_773_065_489)
}

fn ours(creds: &Credentials) -> String {
    let params = TokenParams {
        host: HOST,
        port: PORT,
        region: REGION,
        db_user: USER,
    };
    let token = sign_token(black_box(params), black_box(creds), now()).expect("signs");
    token.expose_secret().to_owned()
}

/// Polls a future that must complete without waiting.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("AuthTokenGenerator::auth_token did not complete on first poll"),
    }
}

fn theirs(generator: &AuthTokenGenerator, sdk: &SdkConfig) -> String {
    let token = ready(black_box(generator).auth_token(black_box(sdk))).expect("signs");
    token.as_str().to_owned()
}

fn setup(session: bool) -> (Credentials, AuthTokenGenerator, SdkConfig) {
    let creds = credentials(session);
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
    (creds, AuthTokenGenerator::new(config), sdk)
}

fn signing(c: &mut Criterion) {
    for session in [true, false] {
        let (creds, generator, sdk) = setup(session);
        // Both must produce a token for these inputs before anything is timed. On them the
        // two agree except for the parameter order when a session token is present.
        let (a, b) = (ours(&creds), theirs(&generator, &sdk));
        assert!(a.starts_with(&format!("{HOST}:{PORT}/?Action=connect&DBUser={USER}&")));
        assert!(b.starts_with(&format!("{HOST}:{PORT}/?Action=connect&DBUser={USER}&")));
        let sig = |t: &str| {
            t.split("X-Amz-Signature=")
                .nth(1)
                .map(|s| s[..64].to_owned())
        };
        assert_eq!(sig(&a), sig(&b), "both sign the same canonical request");

        let suffix = if session {
            "session token"
        } else {
            "long-term key"
        };
        let mut group = c.benchmark_group(format!("sign_token/{suffix}"));
        group.bench_function("rds-token-broker", |bch| bch.iter(|| ours(&creds)));
        group.bench_function("aws-sdk-rds AuthTokenGenerator", |bch| {
            bch.iter(|| theirs(&generator, &sdk))
        });
        group.finish();
    }
}

criterion_group!(benches, signing);
criterion_main!(benches);
