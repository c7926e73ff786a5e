//! A closed-loop HTTP load generator for the benchmark suite.
//!
//! `rtb-load keys --dir DIR --issuer ISS --principals N`: an RSA key's JWKS (DIR/jwks.json)
//! and N RS256 JWTs for distinct subjects (DIR/jwts.txt, one per line).
//!
//! `rtb-load run --url URL --concurrency C --seconds S [--warmup S] [--jwts FILE] [--body JSON] [--once]`:
//! C clients, each on its own keep-alive connection and with its own JWT (round robin),
//! POST the body back to back for S seconds after the warm-up; prints one JSON object:
//! requests, non-200 answers, requests per second, and latency percentiles in ms. With
//! `--once` each client sends one request, all at once, and `seconds` is the wall time.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hdrhistogram::Histogram;
use serde_json::json;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn keys(args: &[String]) {
    let dir = std::path::PathBuf::from(arg(args, "--dir").expect("--dir"));
    let issuer = arg(args, "--issuer").expect("--issuer");
    let n: usize = arg(args, "--principals").map_or(64, |v| v.parse().expect("--principals"));
    let key = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key");
    let public = key.public_key();
    let jwks = json!({"keys": [{
        "kty": "RSA", "kid": "bench", "use": "sig",
        "n": B64.encode(public.modulus().big_endian_without_leading_zero()),
        "e": B64.encode(public.exponent().big_endian_without_leading_zero()),
    }]});
    std::fs::write(dir.join("jwks.json"), jwks.to_string()).expect("write jwks");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let header = B64.encode(json!({"alg": "RS256", "typ": "JWT", "kid": "bench"}).to_string());
    let rng = SystemRandom::new();
    let mut lines = String::new();
    for i in 0..n {
        let claims = json!({"iss": issuer, "sub": format!("bench-caller-{i}"),
            "aud": "rds-token-broker", "iat": now, "exp": now + 6 * 3600});
        let input = format!("{header}.{}", B64.encode(claims.to_string()));
        let mut sig = vec![0u8; key.public_modulus_len()];
        key.sign(&RSA_PKCS1_SHA256, &rng, input.as_bytes(), &mut sig)
            .expect("sign");
        lines.push_str(&format!("{input}.{}\n", B64.encode(sig)));
    }
    std::fs::write(dir.join("jwts.txt"), lines).expect("write jwts");
}

async fn run(args: &[String]) {
    let url = arg(args, "--url").expect("--url");
    let concurrency: usize = arg(args, "--concurrency").map_or(1, |v| v.parse().expect("n"));
    let seconds: f64 = arg(args, "--seconds").map_or(5.0, |v| v.parse().expect("s"));
    let warmup: f64 = arg(args, "--warmup").map_or(1.0, |v| v.parse().expect("s"));
    let body = arg(args, "--body").unwrap_or_else(|| r#"{"target":"orders-db"}"#.to_owned());
    // --once: every client sends exactly one request, all at the same time (cold paths).
    let once = args.iter().any(|a| a == "--once");
    let jwts: Vec<String> = arg(args, "--jwts")
        .map(|p| {
            std::fs::read_to_string(p)
                .expect("jwts")
                .lines()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let start = if once {
        Instant::now()
    } else {
        Instant::now() + Duration::from_secs_f64(warmup)
    };
    let end = start + Duration::from_secs_f64(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client");
            let (url, body) = (url.clone(), body.clone());
            let jwt = (!jwts.is_empty()).then(|| jwts[i % jwts.len()].clone());
            tokio::spawn(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("hist");
                let mut failed = 0u64;
                loop {
                    let t0 = Instant::now();
                    // --once: every client sends its one request, however late it starts.
                    if t0 >= end && !once {
                        break;
                    }
                    let mut req = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone());
                    if let Some(j) = &jwt {
                        req = req.bearer_auth(j);
                    }
                    let ok = match req.send().await {
                        Ok(res) => {
                            let ok = res.status() == 200;
                            let _ = res.bytes().await;
                            ok
                        }
                        Err(_) => false,
                    };
                    if t0 >= start || once {
                        if ok {
                            let us = u64::try_from(t0.elapsed().as_micros()).unwrap_or(u64::MAX);
                            let _ = hist.record(us.max(1));
                        } else {
                            failed += 1;
                        }
                    }
                    if once {
                        break;
                    }
                }
                (hist, failed)
            })
        })
        .collect();
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("hist");
    let mut failed = 0;
    for t in tasks {
        let (h, f) = t.await.expect("task");
        all.add(h).expect("merge");
        failed += f;
    }
    let seconds = if once {
        start.elapsed().as_secs_f64()
    } else {
        seconds
    };
    let ms = |q: f64| all.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{}",
        json!({
            "concurrency": concurrency,
            "seconds": seconds,
            "requests": all.len(),
            "failed": failed,
            "rps": all.len() as f64 / seconds,
            "p50_ms": ms(0.5),
            "p99_ms": ms(0.99),
            "p999_ms": ms(0.999),
            "max_ms": all.max() as f64 / 1000.0,
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("keys") => keys(&args),
        Some("run") => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(run(&args));
        }
        _ => {
            eprintln!(
                "usage: rtb-load keys --dir DIR --issuer ISS --principals N | run --url URL --concurrency C --seconds S [--warmup S] [--jwts FILE] [--body JSON]"
            );
            std::process::exit(2);
        }
    }
}
