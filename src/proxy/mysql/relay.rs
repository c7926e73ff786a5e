//! After sign-in: bytes copied both ways until either side closes. Server to client is a
//! plain copy; client to server goes packet by packet through a fixed buffer so that a
//! `COM_CHANGE_USER` (which would sign in again, with a password the client does not
//! have) is answered with a clear error packet instead of being forwarded.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::packet::{self, MAX_PAYLOAD};

/// `COM_CHANGE_USER`.
const COM_CHANGE_USER: u8 = 0x11;
/// Copy buffer size per direction.
const BUF: usize = 16 * 1024;

/// Bytes copied each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Client to server.
    pub to_server: u64,
    /// Server to client.
    pub to_client: u64,
}

/// Copies until either side closes, then closes the other.
pub async fn run<C, S>(client: C, server: S) -> std::io::Result<Copied>
where
    C: AsyncRead + AsyncWrite + Unpin + Send,
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let (mut cr, cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(server);
    let cw = tokio::sync::Mutex::new(cw);
    let up_total = AtomicU64::new(0);
    let down_total = AtomicU64::new(0);
    let up = async {
        let r = client_to_server(&mut cr, &mut sw, &cw, &up_total).await;
        let _ = sw.shutdown().await;
        r
    };
    let down = async {
        let mut buf = vec![0u8; BUF];
        loop {
            let n = sr.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let mut w = cw.lock().await;
            w.write_all(buf.get(..n).unwrap_or_default()).await?;
            w.flush().await?;
            down_total.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = cw.lock().await.shutdown().await;
        Ok::<(), std::io::Error>(())
    };
    // Whichever side ends first ends the connection.
    let ended = tokio::select! {
        r = up => r,
        r = down => r,
    };
    let copied = Copied {
        to_server: up_total.load(Ordering::Relaxed),
        to_client: down_total.load(Ordering::Relaxed),
    };
    ended.map(|()| copied)
}

async fn client_to_server<R, W, CW>(
    cr: &mut R,
    sw: &mut W,
    cw: &tokio::sync::Mutex<CW>,
    total: &AtomicU64,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    CW: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    // Whether the next packet continues a payload of exactly MAX_PAYLOAD bytes.
    let mut continuation = false;
    loop {
        let mut head = [0u8; 4];
        match cr.read_exact(&mut head).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        let (len, seq) = packet::header(head);
        let mut left = len;
        let command = seq == 0 && !continuation && len > 0;
        continuation = len == MAX_PAYLOAD;
        if command {
            let mut first = [0u8; 1];
            cr.read_exact(&mut first).await?;
            left -= 1;
            if first == [COM_CHANGE_USER] {
                discard(cr, left, &mut buf).await?;
                let err = packet::error(
                    1235,
                    "42000",
                    "rds-token-broker proxy: COM_CHANGE_USER is not supported: the proxy \
                     signs in with an IAM token for one user; open a new connection as the \
                     other user instead.",
                );
                packet::write(&mut *cw.lock().await, 1, &err).await?;
                continue;
            }
            sw.write_all(&head).await?;
            sw.write_all(&first).await?;
            total.fetch_add(5, Ordering::Relaxed);
        } else {
            sw.write_all(&head).await?;
            total.fetch_add(4, Ordering::Relaxed);
        }
        while left > 0 {
            let want = left.min(buf.len());
            let chunk = buf.get_mut(..want).unwrap_or_default();
            cr.read_exact(chunk).await?;
            sw.write_all(chunk).await?;
            left -= want;
            total.fetch_add(want as u64, Ordering::Relaxed);
        }
        sw.flush().await?;
    }
}

async fn discard<R: AsyncRead + Unpin>(
    r: &mut R,
    mut left: usize,
    buf: &mut [u8],
) -> std::io::Result<()> {
    while left > 0 {
        let want = left.min(buf.len());
        r.read_exact(buf.get_mut(..want).unwrap_or_default())
            .await?;
        left -= want;
    }
    Ok(())
}
