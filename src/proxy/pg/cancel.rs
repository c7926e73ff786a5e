//! Backend keys: the client gets a random key of the proxy's own for each connection; a
//! `CancelRequest` carrying it is sent, with the server's real key, to the server that
//! connection signed in to (over TLS). Unknown keys are dropped silently, as PostgreSQL does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};

use super::backend;
use crate::proxy::signin::SignIn;

#[derive(Debug)]
struct Real {
    sign_in: Arc<SignIn>,
    pid: i32,
    secret: Vec<u8>,
}

type ProxyKey = (i32, Vec<u8>);

/// The proxy's backend keys and the real ones behind them.
#[derive(Debug, Default)]
pub struct Cancels {
    map: Mutex<HashMap<ProxyKey, Real>>,
}

/// Removes its key from the map when the connection ends.
#[derive(Debug)]
pub struct Registration {
    cancels: Arc<Cancels>,
    key: ProxyKey,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut map) = self.cancels.map.lock() {
            map.remove(&self.key);
        }
    }
}

impl Cancels {
    /// Records the server's BackendKeyData `body` (pid, secret) and returns the body of
    /// the proxy's own key for the client, with the registration that keeps it.
    pub async fn register(
        self: &Arc<Self>,
        sign_in: &Arc<SignIn>,
        body: &[u8],
    ) -> (Vec<u8>, Registration) {
        let (pid, secret) = match body.split_first_chunk::<4>() {
            Some((p, s)) => (i32::from_be_bytes(*p), s.to_vec()),
            None => (0, Vec::new()),
        };
        let rng = SystemRandom::new();
        let len = secret.len().clamp(4, 256);
        loop {
            let mut p = [0u8; 4];
            let mut s = vec![0u8; len];
            if rng.fill(&mut p).is_err() || rng.fill(&mut s).is_err() {
                continue;
            }
            // Positive pids, as PostgreSQL's own.
            let key = (i32::from_be_bytes(p) & 0x7fff_ffff, s);
            let Ok(mut map) = self.map.lock() else {
                continue;
            };
            if map.contains_key(&key) {
                continue;
            }
            map.insert(
                key.clone(),
                Real {
                    sign_in: sign_in.clone(),
                    pid,
                    secret: secret.clone(),
                },
            );
            let mut out = key.0.to_be_bytes().to_vec();
            out.extend_from_slice(&key.1);
            return (
                out,
                Registration {
                    cancels: self.clone(),
                    key,
                },
            );
        }
    }

    /// Forwards a cancel for the proxy key (`pid`, `secret`), if it is known.
    pub async fn cancel(&self, pid: i32, secret: &[u8]) {
        let real = self.map.lock().ok().and_then(|map| {
            map.get(&(pid, secret.to_vec()))
                .map(|r| (r.sign_in.clone(), r.pid, r.secret.clone()))
        });
        match real {
            Some((sign_in, pid, secret)) => {
                if let Err(e) = backend::cancel(&sign_in, pid, &secret).await {
                    tracing::warn!(target_name = %sign_in.target, error = %e, "could not forward a CancelRequest");
                }
            }
            None => tracing::info!("a CancelRequest for an unknown backend key was dropped"),
        }
    }
}
