//! The tracing subscriber: JSON or text to stderr, filtered by `RUST_LOG` (default `info`).
//!
//! Lines are formatted by the thread that logs and written to stderr by a thread of their
//! own, in batches (it pauses 1 ms after each write): under load one `write` carries many
//! lines, and no request waits for the terminal or the log collector's pipe. The queue is
//! bounded ([`QUEUE`] lines) and a logger never waits for it: a tokio worker that blocked
//! on a full queue would stall every request it serves. When the reader of stderr falls
//! that far behind, new lines are dropped and counted
//! (`rds_token_broker_log_lines_dropped_total`), and the writer says how many were lost
//! once the queue drains. The audit trail, not the log, is the record of decisions.
//! [`flush`] waits until every queued line is written.
//!
//! JSON lines are one object each: `timestamp` (RFC 3339 UTC, microseconds), `level`, the
//! event's fields (`message` first), `module` (where it was logged), and `span` with the
//! current span's fields and `name` (a request's `method`, `route` and `request_id`).
//! They are written directly, without building a JSON value per line. The module path is
//! not called `target`, tracing's name for it, because issuances log a field `target` (the
//! database target).

use std::fmt::{self, Write as _};
use std::io::{BufWriter, IsTerminal as _, Write};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;
use crate::metrics::names;

/// Lines waiting for the writer thread before new lines are dropped.
pub const QUEUE: usize = 16 * 1024;
/// How long the writer thread pauses after each write, letting lines gather.
const GATHER: Duration = Duration::from_millis(1);

enum Msg {
    Line(Vec<u8>),
    Flush(SyncSender<()>),
}

static QUEUE_TX: OnceLock<SyncSender<Msg>> = OnceLock::new();
/// Lines dropped since the writer last reported it.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Installs the global subscriber; a second call is a no-op.
pub fn init(format: LogFormat) {
    let Some(lines) = LineQueue::start() else {
        return;
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a person at a terminal (and not with NO_COLOR set), never into a
    // file or a log collector.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(lines);
    let _ = match format {
        LogFormat::Json => builder
            .fmt_fields(JsonFields)
            .event_format(JsonLine)
            .try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Waits (at most about 5 s) until every line logged so far is written to stderr; at exit.
pub fn flush() {
    let Some(tx) = QUEUE_TX.get() else { return };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let (done_tx, done) = sync_channel(1);
    let mut msg = Msg::Flush(done_tx);
    loop {
        match tx.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Full(m)) if std::time::Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(GATHER);
            }
            Err(_) => return,
        }
    }
    let _ = done.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()));
}

/// The subscriber's writer: each line goes to the writer thread's queue.
struct LineQueue(&'static SyncSender<Msg>);

impl LineQueue {
    /// Starts the writer thread; `None` if it is already running.
    fn start() -> Option<Self> {
        if QUEUE_TX.get().is_some() {
            return None;
        }
        let (tx, rx) = sync_channel(QUEUE);
        // If the thread cannot start, `rx` is dropped with it: every send then fails and
        // `Line` writes its line to stderr itself, so logging still works, unbatched.
        let _ = std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_lines(&rx));
        QUEUE_TX.set(tx).ok()?;
        QUEUE_TX.get().map(Self)
    }
}

impl<'a> MakeWriter<'a> for LineQueue {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line {
            buf: Vec::new(),
            tx: self.0,
        }
    }
}

/// One formatted line, queued when dropped.
struct Line {
    buf: Vec<u8>,
    tx: &'static SyncSender<Msg>,
}

impl Write for Line {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.buf);
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                DROPPED.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(names::LOG_LINES_DROPPED.name).increment(1);
            }
            // The writer thread is gone: write directly rather than lose the line.
            Err(TrySendError::Disconnected(Msg::Line(line))) => {
                let _ = std::io::stderr().write_all(&line);
            }
            Err(TrySendError::Disconnected(Msg::Flush(_))) => {}
        }
    }
}

/// Writes queued lines, flushing whenever the queue runs empty.
fn write_lines(rx: &Receiver<Msg>) {
    let mut out = BufWriter::with_capacity(64 * 1024, std::io::stderr());
    while let Ok(msg) = rx.recv() {
        let mut next = Some(msg);
        while let Some(m) = next {
            match m {
                Msg::Line(line) => {
                    let _ = out.write_all(&line);
                }
                Msg::Flush(done) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        let dropped = DROPPED.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            // Queued like any line (there is room now), in the configured format.
            tracing::warn!(
                dropped,
                "log lines were dropped: the log queue was full (stderr is read too slowly)"
            );
        }
        let _ = out.flush();
        // Let lines gather for a moment: under load one write (and no wake-up of this
        // thread per line) carries many; a quiet broker's line waits at most this long.
        std::thread::sleep(GATHER);
    }
}

/// The JSON line of an event (see the module documentation).
struct JsonLine;

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::with_capacity(512);
        line.push_str("{\"timestamp\":\"");
        // Log lines carry the real time, whatever clock the broker runs on (tests).
        #[allow(clippy::disallowed_methods)]
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        crate::clock::push_date_time(&mut line, now.as_secs());
        line.push('.');
        crate::clock::push_digits(&mut line, u64::from(now.subsec_micros()), 6);
        line.push_str("Z\",\"level\":\"");
        line.push_str(event.metadata().level().as_str());
        line.push('"');
        event.record(&mut JsonPairs {
            out: &mut line,
            first: false,
        });
        line.push_str(",\"module\":");
        push_json_str(&mut line, event.metadata().target());
        if let Some(span) = ctx.lookup_current() {
            line.push_str(",\"span\":{");
            let extensions = span.extensions();
            if let Some(fields) = extensions.get::<FormattedFields<N>>()
                && !fields.fields.is_empty()
            {
                line.push_str(&fields.fields);
                line.push(',');
            }
            line.push_str("\"name\":");
            push_json_str(&mut line, span.name());
            line.push('}');
        }
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// Span fields as `"key":value` pairs separated by commas (the inside of a JSON object),
/// stored with the span and copied into each line logged within it.
struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut out = String::new();
        fields.record(&mut JsonPairs {
            out: &mut out,
            first: true,
        });
        writer.write_str(&out)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        fields.record(&mut JsonPairs {
            out: &mut current.fields,
            first,
        });
        Ok(())
    }
}

/// Writes each field as `"key":value`, preceded by a comma unless it is the first.
struct JsonPairs<'a> {
    out: &'a mut String,
    first: bool,
}

impl JsonPairs<'_> {
    fn key(&mut self, field: &Field) {
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        push_json_str(self.out, field.name());
        self.out.push(':');
    }
}

impl Visit for JsonPairs<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.key(field);
        push_json_str(self.out, value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let mut text = String::new();
        let _ = write!(text, "{value:?}");
        self.record_str(field, &text);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = String::new();
        let _ = write!(text, "{value}");
        self.record_str(field, &text);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.key(field);
        let _ = write!(self.out, "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field);
        self.out.push_str(if value { "true" } else { "false" });
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.key(field);
        if value.is_finite() {
            let _ = write!(self.out, "{value}");
        } else {
            self.out.push_str("null");
        }
    }
}

/// `s` as a JSON string literal: runs of characters that need no escaping are copied whole.
fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut plain = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        // Only ASCII bytes end a run, so `plain..i` lies on character boundaries.
        out.push_str(&s[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        plain = i + 1;
    }
    out.push_str(&s[plain..]);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_escape_what_json_requires() {
        let cases = [
            "plain",
            "quote \" backslash \\ slash /",
            "new\nline\ttab\rreturn",
            "\u{0}\u{1f}\u{7f} é ∑ 🙂",
        ];
        for s in cases {
            let mut out = String::new();
            push_json_str(&mut out, s);
            let back: String = serde_json::from_str(&out).unwrap();
            assert_eq!(back, s, "{out}");
        }
    }
}
