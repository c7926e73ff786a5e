//! The in-process broker's logs, zero-to-production's `TEST_LOG` way: one subscriber for
//! the test binary, installed by the first [`super::app::TestApp`], writes each line to the
//! output of the test whose thread (or whose runtime's threads) logged it. The test
//! harness keeps that output and prints it only when the test fails; with `TEST_LOG` set
//! every line goes straight to stderr as it is logged. `RUST_LOG` filters (default
//! `info`).
//!
//! The real binary's stderr is captured by `support::binary` and printed the same way.

use std::sync::Once;

use tracing_subscriber::EnvFilter;

/// Whether `TEST_LOG` asks for every broker log line, failing test or not.
pub fn shown() -> bool {
    std::env::var_os("TEST_LOG").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Installs the subscriber once; later calls do nothing.
pub fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt().with_env_filter(filter);
        // Another subscriber already installed (none is, today) would keep its own place.
        let _ = if shown() {
            builder.with_writer(std::io::stderr).try_init()
        } else {
            // Plain text: the harness prints it after the failure, maybe to a file.
            builder.with_ansi(false).with_test_writer().try_init()
        };
    });
}
