//! Serving HTTP/1.1 connections with bounds a public service needs: a request's headers
//! must arrive within a time limit, and a keep-alive connection idle for that long is
//! closed (hyper's header-read timer also runs while it waits for the next request).
//! `axum::serve` sets neither, so one slow client could hold a connection forever.
//!
//! A request hyper cannot parse (headers past its buffer: 431, a URL past `http`'s limit:
//! 414, a bad request line, header or `Content-Length`: 400) never reaches the router:
//! hyper answers it itself, with no body. `BodiedErrors` gives those answers the body
//! every other error has, `{"detail": …}`.

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;

/// Serves `router` on `listener` until `shutdown` completes, then lets open connections
/// finish their requests (new ones are refused) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        // Reap finished connections so the set holds only open ones.
        while connections.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                tracing::warn!(error = %e, "cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let service = TowerToHyperService::new(router.clone());
        let mut stopped = stopped.clone();
        connections.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection =
                builder.serve_connection(TokioIo::new(BodiedErrors::new(stream)), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopped.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
}

/// A connection whose bodiless error answers from hyper itself (400, 414, 431) get a JSON
/// body: a head hyper writes for such a status with `content-length: 0` is replaced by the
/// same head with the body's type and length, and the body. The router's own answers
/// always have a body, so no head of theirs matches.
struct BodiedErrors<S> {
    inner: S,
    /// A replacement being written: its bytes, how many are written, and how many bytes of
    /// hyper's to report written when it is done.
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<S> BodiedErrors<S> {
    fn new(inner: S) -> BodiedErrors<S> {
        BodiedErrors {
            inner,
            pending: None,
        }
    }
}

/// The detail of an answer hyper writes without a body.
fn hyper_error_detail(status: &[u8]) -> Option<&'static str> {
    match status {
        b"400" => Some(
            "the request is not valid HTTP/1.1 (its request line, a header or its Content-Length cannot be read)",
        ),
        b"414" => Some("the request's URL is too long"),
        b"431" => Some("the request's headers are too large"),
        _ => None,
    }
}

/// `head` with a JSON body, when it is a bodiless answer hyper wrote for a request it
/// could not parse.
fn with_json_body(head: &[u8]) -> Option<Vec<u8>> {
    let rest = head.strip_prefix(b"HTTP/1.1 ")?;
    let detail = hyper_error_detail(rest.get(..3)?)?;
    let head = std::str::from_utf8(head).ok()?.strip_suffix("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let mut headers = Vec::new();
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        if name.eq_ignore_ascii_case("content-length") {
            empty = value.trim() == "0";
        } else if !name.eq_ignore_ascii_case("content-type") {
            headers.push(line);
        }
    }
    if !empty {
        return None;
    }
    let body = serde_json::to_vec(&super::api::ErrorBody {
        detail: detail.to_string(),
    })
    .ok()?;
    let mut out = format!("{status_line}\r\n");
    for line in headers {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!(
        "content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    ));
    let mut out = out.into_bytes();
    out.extend_from_slice(&body);
    Some(out)
}

impl<S: AsyncWrite + Unpin> BodiedErrors<S> {
    /// Writes the pending replacement; ready with the length hyper gave once it is out.
    fn drive(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((bytes, written, claimed)) = &mut self.pending {
            if *written == bytes.len() {
                let claimed = *claimed;
                self.pending = None;
                return Poll::Ready(Ok(claimed));
            }
            match Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for BodiedErrors<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for BodiedErrors<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.pending.is_none() {
            match with_json_body(buf) {
                Some(replacement) => self.pending = Some((replacement, 0, buf.len())),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        self.drive(cx)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_some() {
            std::task::ready!(self.drive(cx))?;
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_some() {
            std::task::ready!(self.drive(cx))?;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored: hyper then hands each head over as one buffer, which is what
    // `with_json_body` reads.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bodiless_parse_error_gets_a_json_body_and_nothing_else_changes() {
        let head = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Fri, 04 Dec 2026 00:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(with_json_body(head).unwrap()).unwrap();
        let (new_head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(new_head.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(new_head.contains("connection: close"));
        assert!(new_head.contains("content-type: application/json"));
        assert!(new_head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(
            json["detail"]
                .as_str()
                .unwrap()
                .contains("headers are too large")
        );
        // A head with a body, another status, or a body's bytes: left as they are.
        for other in [
            &b"HTTP/1.1 431 X\r\ncontent-length: 12\r\n\r\n"[..],
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"{\"detail\": \"HTTP/1.1 400\"}",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
        ] {
            assert!(
                with_json_body(other).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }
}
