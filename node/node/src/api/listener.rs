//! Serving the API's HTTP/1 connections with limits a client cannot talk around: at most
//! `max_connections` at once (the rest are closed as they arrive), headers within
//! `header_timeout` (so half-sent requests and idle keep-alive connections are closed), and
//! each request answered within `request_timeout` (a body sent byte by byte ends there).
//!
//! axum's own `serve` sets none of these (hyper's header timeout needs a timer axum does not
//! give it), so the accept loop is written here on hyper-util's pieces.

use std::{sync::Arc, time::Duration};

use axum::{Router, body::Body, extract::Request, http::StatusCode, response::Response};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use prometheus::IntCounter;
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Connections served at once.
    pub(crate) max_connections: usize,
    /// Time a client has to send a request's headers, and to start the next one on a kept-alive
    /// connection.
    pub(crate) header_timeout: Duration,
    /// Time from a request's headers to its answer's headers.
    pub(crate) request_timeout: Duration,
}

/// Serves `app` on `listener` until `cancel`; connections run in `tasks`. `refused` counts the
/// connections closed because `max_connections` were open.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    cancel: CancellationToken,
    tasks: TaskTracker,
    refused: IntCounter,
) {
    let app = app.layer(axum::middleware::from_fn(move |req: Request, next| {
        answer_within(limits.request_timeout, req, next)
    }));
    let open = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let stream = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(err = %e, "accepting an API connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refused.inc();
            tracing::debug!(
                limit = limits.max_connections,
                "API connection refused: too many open"
            );
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let cancel = cancel.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(err = %e, "API connection ended with an error");
                    }
                }
                _ = cancel.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
        });
    }
}

/// Answers 408 when the handler (body reading included) takes longer than `limit`.
async fn answer_within(limit: Duration, req: Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => {
            let mut r = Response::new(Body::from(format!(
                "{{\"error\":\"the request took longer than {} s\"}}",
                limit.as_secs()
            )));
            *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn start(limits: Limits) -> (std::net::SocketAddr, CancellationToken, IntCounter) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/echo", post(|body: String| async move { body }));
        let cancel = CancellationToken::new();
        let refused = IntCounter::new("refused", "refused").expect("counter");
        tokio::spawn(serve(
            listener,
            app,
            limits,
            cancel.clone(),
            TaskTracker::new(),
            refused.clone(),
        ));
        (addr, cancel, refused)
    }

    /// Reads until the server closes the connection; returns what it sent.
    async fn until_closed(s: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        out
    }

    #[tokio::test]
    async fn idle_and_half_sent_connections_are_closed_after_the_header_timeout() {
        let limits = Limits {
            max_connections: 1000,
            header_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_secs(30),
        };
        let (addr, _cancel, _) = start(limits).await;
        let mut idle = Vec::new();
        for i in 0..100 {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            if i % 2 == 0 {
                s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
                    .await
                    .expect("half");
            }
            idle.push(s);
        }
        let started = Instant::now();
        for s in &mut idle {
            // The server hangs up (an EOF, maybe after a 408): nothing waits forever.
            let got = tokio::time::timeout(Duration::from_secs(10), until_closed(s))
                .await
                .expect("closed by the server within 10 s");
            assert!(
                got.is_empty() || got.starts_with(b"HTTP/1.1 408"),
                "{got:?}"
            );
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        // A kept-alive connection is closed after its answer once it idles past the timeout.
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .expect("request");
        let answer = tokio::time::timeout(Duration::from_secs(10), until_closed(&mut s))
            .await
            .expect("closed after idling");
        assert!(
            answer.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&answer)
        );
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_refused_and_the_cap_frees_up() {
        let limits = Limits {
            max_connections: 8,
            header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        };
        let (addr, _cancel, refused) = start(limits).await;
        let mut held = Vec::new();
        for _ in 0..8 {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("request");
            let mut buf = [0u8; 12];
            s.read_exact(&mut buf).await.expect("answered");
            assert_eq!(&buf, b"HTTP/1.1 200");
            held.push(s);
        }
        let mut ninth = tokio::net::TcpStream::connect(addr)
            .await
            .expect("tcp connects");
        let _ = ninth
            .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
            .await;
        assert!(
            until_closed(&mut ninth).await.is_empty(),
            "closed unanswered"
        );
        assert_eq!(refused.get(), 1);
        drop(held);
        // Once the held connections are gone, new ones are served again.
        let answered = async {
            loop {
                let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
                s.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await
                    .expect("request");
                if until_closed(&mut s).await.starts_with(b"HTTP/1.1 200") {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), answered)
            .await
            .expect("served again");
    }

    #[tokio::test]
    async fn a_body_sent_too_slowly_gets_408() {
        let limits = Limits {
            max_connections: 8,
            header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_millis(300),
        };
        let (addr, _cancel, _) = start(limits).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab")
            .await
            .expect("start");
        let mut buf = [0u8; 12];
        tokio::time::timeout(Duration::from_secs(10), s.read_exact(&mut buf))
            .await
            .expect("answered in time")
            .expect("read");
        assert_eq!(&buf, b"HTTP/1.1 408");
    }
}
