//! Time to authenticate one bearer JWT whose issuer keys are already cached: header and
//! payload decoding, issuer and key selection, signature verification and claim checks,
//! i.e. what `Authenticator::authenticate` adds to a request. RS256 (RSA 2048) and ES256.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::SystemTime;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use criterion::{Criterion, criterion_group, criterion_main};
use rds_token_broker::auth::Authenticator;
use rds_token_broker::clock::{Clock, SystemClock};
use serde_json::json;

const ISS: &str = "https://idp.bench.invalid";

fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("authentication with cached keys should not wait"),
    }
}

fn jwt(alg: &str, kid: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> String {
    let now = SystemClock
        .now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = json!({"alg": alg, "typ": "JWT", "kid": kid});
    let claims = json!({"iss": ISS, "sub": "system:serviceaccount:orders:api", "aud": "rds-token-broker", "iat": now, "exp": now + 3600});
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig))
}

fn auth(c: &mut Criterion) {
    let rng = SystemRandom::new();
    let rsa = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
    let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let p = ec.public_key().as_ref().to_vec();
    let jwks = json!({"keys": [
        {"kty": "RSA", "kid": "rsa", "n": B64.encode(rsa.public_key().modulus().big_endian_without_leading_zero()),
         "e": B64.encode(rsa.public_key().exponent().big_endian_without_leading_zero())},
        {"kty": "EC", "crv": "P-256", "kid": "ec", "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])},
    ]});
    let path = std::env::temp_dir().join(format!(
        "rds-token-broker-bench-{}.jwks.json",
        std::process::id()
    ));
    std::fs::write(&path, jwks.to_string()).unwrap();
    let config = rds_token_broker::config::load_str(&format!(
        "[audit]\nenabled = false\n[[issuers]]\nname = \"idp\"\nissuer = \"{ISS}\"\njwks_file = \"{}\"\naudiences = [\"rds-token-broker\"]\n\
         algorithms = [\"RS256\", \"ES256\"]\n[[targets]]\nname = \"t\"\nhost = \"t.cluster-x.eu-west-1.rds.amazonaws.com\"\n\
         port = 5432\nengine = \"postgres\"\ndb_users = [\"u\"]\n",
        path.display()
    ))
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let authenticator = Authenticator::new(&config, Arc::new(SystemClock)).unwrap();
    runtime
        .block_on(authenticator.issuers()[0].refresh())
        .unwrap();
    let _ = std::fs::remove_file(&path);

    let rs = jwt("RS256", "rsa", |m| {
        let mut sig = vec![0; rsa.public_modulus_len()];
        rsa.sign(&RSA_PKCS1_SHA256, &rng, m, &mut sig).unwrap();
        sig
    });
    let es = jwt("ES256", "ec", |m| {
        ec.sign(&rng, m).unwrap().as_ref().to_vec()
    });
    for t in [&rs, &es] {
        let p = ready(authenticator.authenticate(t)).expect("the bench token is valid");
        assert_eq!(p.subject, "system:serviceaccount:orders:api");
    }

    let mut group = c.benchmark_group("authenticate");
    group.bench_function("RS256 (RSA 2048), cached key", |b| {
        b.iter(|| ready(authenticator.authenticate(black_box(&rs))).unwrap())
    });
    group.bench_function("ES256 (P-256), cached key", |b| {
        b.iter(|| ready(authenticator.authenticate(black_box(&es))).unwrap())
    });
    group.finish();
}

criterion_group!(benches, auth);
criterion_main!(benches);
