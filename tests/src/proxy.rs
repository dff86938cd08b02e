//! [`RpcProxy`]: a TCP proxy between nodes and anvil, for putting faults on the JSON-RPC path.
//!
//! ```text
//!  node ──TCP──▶ proxy (127.0.0.1:random) ──TCP──▶ anvil
//!                 │ cut():     drop every live connection, close the listener (new ones are
//!                 │            refused) until restore() listens again on the same port
//!                 │ trap(..):  the next request that sends a transaction (eth_sendRawTransaction)
//!                 │            is held (never reaches anvil) or passed, and the test is told
//! ```
//!
//! It only copies bytes; it looks into what a client sends just far enough to spot the method
//! name of a transaction (alloy's HTTP transport sends plain JSON over HTTP/1.1).

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use anyhow::Context as _;
use reqwest::Url;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::{JoinHandle, JoinSet},
};

/// What a [`RpcProxy::trap`] does with the transaction it catches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trap {
    /// Do not forward it: the transaction never reaches the chain (the connection stays open
    /// and silent, as if the sender died while sending).
    Hold,
    /// Forward it, then tell the test: the transaction is in the chain's pool.
    Pass,
}

/// The JSON-RPC method that broadcasts a signed transaction.
const SEND_RAW: &[u8] = b"eth_sendRawTransaction";

/// A TCP proxy to a JSON-RPC endpoint; stops (and drops every connection) when dropped.
#[derive(Debug)]
pub struct RpcProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    state: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// The accept loop while the proxy is up.
    accept: Mutex<Option<JoinHandle<()>>>,
    /// One task per proxied connection.
    conns: Mutex<JoinSet<()>>,
    /// The armed trap and whom to tell when it springs.
    trap: Mutex<Option<(Trap, oneshot::Sender<()>)>>,
}

impl Shared {
    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        // Plain data behind these locks: a panicking holder cannot leave it half-written.
        m.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl RpcProxy {
    /// Starts a proxy on a free local port forwarding to `upstream` (an `http://host:port` URL).
    pub async fn start(upstream: &Url) -> anyhow::Result<Self> {
        let host = upstream
            .host_str()
            .context("the upstream URL has no host")?;
        let port = upstream
            .port_or_known_default()
            .context("the upstream URL has no port")?;
        let upstream = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .with_context(|| format!("{host}:{port} does not resolve"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let this = Self {
            addr: listener.local_addr()?,
            upstream,
            state: Arc::default(),
        };
        this.listen(listener);
        Ok(this)
    }

    /// The URL nodes use instead of the upstream's.
    pub fn url(&self) -> Url {
        Url::parse(&format!("http://{}", self.addr)).expect("a socket address makes a valid URL")
    }

    /// Cuts the link: drops every live connection and stops listening (connections are refused).
    /// Returns once both are done.
    pub async fn cut(&self) {
        let accept = Shared::lock(&self.state.accept).take();
        if let Some(accept) = accept {
            accept.abort();
            let _ = accept.await;
        }
        let mut conns = std::mem::take(&mut *Shared::lock(&self.state.conns));
        conns.abort_all();
        while conns.join_next().await.is_some() {}
    }

    /// Listens again on the same port after a [`cut`](Self::cut).
    pub async fn restore(&self) -> anyhow::Result<()> {
        // tokio sets SO_REUSEADDR, so the port can be bound again at once.
        let listener = TcpListener::bind(self.addr)
            .await
            .with_context(|| format!("listening again on {}", self.addr))?;
        self.listen(listener);
        Ok(())
    }

    /// Arms a one-shot trap for the next request that sends a transaction; the receiver fires
    /// when it has been held or passed (see [`Trap`]). Replaces a trap that has not sprung.
    pub fn trap(&self, what: Trap) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        *Shared::lock(&self.state.trap) = Some((what, tx));
        rx
    }

    fn listen(&self, listener: TcpListener) {
        let state = self.state.clone();
        let upstream = self.upstream;
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state2 = state.clone();
                let mut conns = Shared::lock(&state.conns);
                while conns.try_join_next().is_some() {} // reap the finished ones
                conns.spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, &state2).await;
                    }
                });
            }
        });
        *Shared::lock(&self.state.accept) = Some(accept);
    }
}

impl Drop for RpcProxy {
    fn drop(&mut self) {
        if let Some(accept) = Shared::lock(&self.state.accept).take() {
            accept.abort();
        }
        Shared::lock(&self.state.conns).abort_all();
    }
}

/// Copies both ways until either side closes; watches the client's bytes for a transaction.
async fn relay(client: TcpStream, server: TcpStream, state: &Shared) {
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        // The end of the previous read, so a method name split across two reads is still seen.
        let mut tail: Vec<u8> = Vec::new();
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let mut window = std::mem::take(&mut tail);
            window.extend_from_slice(&buf[..n]);
            let sprung = if contains(&window, SEND_RAW) {
                Shared::lock(&state.trap).take()
            } else {
                None
            };
            tail = window[window.len().saturating_sub(SEND_RAW.len())..].to_vec();
            match sprung {
                Some((Trap::Hold, tell)) => {
                    let _ = tell.send(());
                    // Swallow everything the client sends from now on; answer nothing.
                    while matches!(client_rx.read(&mut buf).await, Ok(n) if n > 0) {}
                    break;
                }
                Some((Trap::Pass, tell)) => {
                    let sent = server_tx.write_all(&buf[..n]).await.is_ok();
                    let _ = tell.send(());
                    if !sent {
                        break;
                    }
                }
                None => {
                    if server_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = server_tx.shutdown().await;
    };
    let down = async {
        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
        let _ = client_tx.shutdown().await;
    };
    tokio::join!(up, down);
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upstream that answers every read with its length, as text.
    async fn echo_len() -> anyhow::Result<Url> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(n.to_string().as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Ok(Url::parse(&format!("http://{addr}"))?)
    }

    async fn ask(s: &mut TcpStream, what: &[u8]) -> anyhow::Result<String> {
        s.write_all(what).await?;
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await??;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[tokio::test]
    async fn relays_cuts_restores_and_traps() -> anyhow::Result<()> {
        let proxy = RpcProxy::start(&echo_len().await?).await?;
        let addr = proxy.addr;
        let mut s = TcpStream::connect(addr).await?;
        assert_eq!(ask(&mut s, b"hello").await?, "5");

        // Cut: the live connection is closed and new ones are refused.
        proxy.cut().await;
        let mut buf = [0u8; 8];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), s.read(&mut buf)).await?;
        assert!(
            matches!(n, Ok(0) | Err(_)),
            "the live connection survived the cut"
        );
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "a new connection was accepted"
        );

        proxy.restore().await?;
        let mut s = TcpStream::connect(addr).await?;
        assert_eq!(ask(&mut s, b"abc").await?, "3");

        // Pass: forwarded, and the test is told.
        let tx = b"{\"method\":\"eth_sendRawTransaction\"}";
        let sprung = proxy.trap(Trap::Pass);
        assert_eq!(ask(&mut s, tx).await?, tx.len().to_string());
        sprung.await?;
        // Hold: not forwarded (no answer), the test is told, later requests are not forwarded.
        let sprung = proxy.trap(Trap::Hold);
        s.write_all(tx).await?;
        sprung.await?;
        let quiet =
            tokio::time::timeout(std::time::Duration::from_millis(300), s.read(&mut buf)).await;
        assert!(quiet.is_err(), "a held request was answered");
        // The trap is one-shot: another connection is relayed as usual.
        let mut s = TcpStream::connect(addr).await?;
        assert_eq!(ask(&mut s, b"eth_sendRawTransaction").await?, "22");
        Ok(())
    }
}
