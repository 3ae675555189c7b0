//! Listeners and connections: accept, connection limits, PROXY protocol, TLS, HTTP/1.1 / HTTP/2 / h2c,
//! idle and slow-client timeouts, graceful drain.

use crate::framing::{GuardedIo, HeadVerdicts};
use crate::handler::{handle, ConnInfo};
use crate::metrics::Label;
use crate::runtime::Shared;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rampart_policy::{Limits, Listener};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// Shutdown signal and the count of live connections, to drain on SIGTERM.
#[derive(Clone)]
pub struct Drain {
    signal: watch::Receiver<bool>,
    live: Arc<tokio::sync::Semaphore>,
}

impl Drain {
    /// Waits until no connection is open (across all workers).
    pub async fn wait_idle(&self) {
        if let Ok(all) = self.live.acquire_many(MAX_LIVE).await {
            drop(all);
        }
    }
}

pub struct DrainController {
    tx: watch::Sender<bool>,
    live: Arc<Semaphore>,
}

const MAX_LIVE: u32 = 1 << 24;

impl DrainController {
    pub fn new() -> (DrainController, Drain) {
        let (tx, rx) = watch::channel(false);
        let live = Arc::new(Semaphore::new(MAX_LIVE as usize));
        (DrainController { tx, live: live.clone() }, Drain { signal: rx, live })
    }

    /// Stops accepting, asks every connection to finish its current request and close, and waits for
    /// them up to `grace`. Returns the number of connections still open at the deadline.
    pub async fn drain(self, grace: Duration) -> usize {
        let _ = self.tx.send(true);
        let all = self.live.acquire_many(MAX_LIVE);
        match tokio::time::timeout(grace, all).await {
            Ok(_) => 0,
            Err(_) => MAX_LIVE as usize - self.live.available_permits(),
        }
    }
}

/// Per-IP connection counts for one listener.
#[derive(Default)]
struct PerIp {
    counts: Mutex<HashMap<IpAddr, u32>>,
}

struct IpSlot {
    table: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn acquire(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<IpSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.table.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Binds a listener socket with SO_REUSEADDR, SO_REUSEPORT (so each worker thread gets its own socket on
/// the same address and the kernel spreads connections across them) and a deep backlog.
pub fn bind_std(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// What all the workers serving one listener share: its limits, TLS acceptor and HTTP settings.
pub struct ListenerShared {
    spec: Listener,
    name: Arc<str>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    conn_limit: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    limits: Limits,
}

impl ListenerShared {
    pub fn new(spec: Listener, limits: &Limits) -> anyhow::Result<Arc<Self>> {
        let tls = match &spec.tls {
            Some(settings) => Some(tokio_rustls::TlsAcceptor::from(crate::tls::server_config(settings)?)),
            None => None,
        };
        Ok(Arc::new(ListenerShared {
            name: Arc::from(spec.name.as_str()),
            tls,
            builder: Arc::new(http_builder(limits)),
            conn_limit: Arc::new(Semaphore::new(spec.max_connections as usize)),
            per_ip: Arc::new(PerIp::default()),
            limits: limits.clone(),
            spec,
        }))
    }
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(limits.max_headers.max(1))
        .keep_alive(true)
        .half_close(false);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_resets)
        .max_local_error_reset_streams(limits.h2_max_local_error_resets)
        .max_header_list_size(limits.max_header_bytes as u32)
        .keep_alive_interval(Some(limits.idle_timeout / 2))
        .keep_alive_timeout(Duration::from_secs(20))
        .enable_connect_protocol();
    b
}

/// Accepts connections on `listener` (one worker's socket) until the drain signal.
pub async fn serve_listener(ls: Arc<ListenerShared>, listener: TcpListener, shared: Arc<Shared>, drain: Drain) {
    let spec = &ls.spec;
    let name = ls.name.clone();
    let label = Label("listener", name.clone());
    let mut signal = drain.signal.clone();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(listener = %name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = signal.changed() => break,
        };
        shared.metrics.connections_total.get_or_create(&label).inc();
        let Ok(conn_permit) = ls.conn_limit.clone().try_acquire_owned() else {
            shared
                .metrics
                .connections_rejected
                .get_or_create(&Label("reason", Arc::from("listener_limit")))
                .inc();
            continue;
        };
        let peer_ip = rampart_policy::canonical_ip(peer.ip());
        let Some(ip_slot) = ls.per_ip.acquire(peer_ip, spec.max_connections_per_ip) else {
            shared
                .metrics
                .connections_rejected
                .get_or_create(&Label("reason", Arc::from("ip_limit")))
                .inc();
            continue;
        };
        let Ok(live) = drain.live.clone().try_acquire_owned() else {
            continue;
        };
        let ctx = ConnTask {
            shared: shared.clone(),
            builder: ls.builder.clone(),
            tls: ls.tls.clone(),
            listener: name.clone(),
            proxy_protocol: spec.proxy_protocol,
            limits: ls.limits.clone(),
            signal: drain.signal.clone(),
        };
        tokio::spawn(async move {
            let _permits = (conn_permit, ip_slot, live);
            ctx.run(stream, peer_ip).await;
        });
    }
    tracing::info!(listener = %name, "listener stopped accepting");
}

struct ConnTask {
    shared: Arc<Shared>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    listener: Arc<str>,
    proxy_protocol: bool,
    limits: Limits,
    signal: watch::Receiver<bool>,
}

impl ConnTask {
    async fn run(self, mut stream: TcpStream, peer: IpAddr) {
        let _ = stream.set_nodelay(true);
        let gauge = self
            .shared
            .metrics
            .connections_active
            .get_or_create(&Label("listener", self.listener.clone()))
            .clone();
        gauge.inc();
        let _gauge_guard = GaugeGuard(gauge);

        let mut client = peer;
        if self.proxy_protocol {
            // Only a trusted peer may tell us who the client is; from anyone else the header is an error.
            let trusted = self.shared.load().policy.trusted_proxies.contains(peer);
            if !trusted {
                self.reject("proxy_protocol_untrusted");
                return;
            }
            match tokio::time::timeout(
                self.limits.header_read_timeout,
                crate::proxy_protocol::read_header(&mut stream),
            )
            .await
            {
                Ok(Ok(Some(src))) => client = rampart_policy::canonical_ip(src.ip()),
                Ok(Ok(None)) => {}
                _ => {
                    self.reject("proxy_protocol");
                    return;
                }
            }
        }

        let activity = Arc::new(AtomicU64::new(0));
        let epoch = Instant::now();
        // hyper refuses heads larger than its read buffer; the raw-head guard uses the same bound.
        let max_head = self.limits.max_header_bytes.max(8192);
        match &self.tls {
            None => {
                let heads = Arc::new(HeadVerdicts::default());
                let io = IdleIo {
                    inner: GuardedIo::new(stream, max_head, heads.clone()),
                    activity: activity.clone(),
                    epoch,
                };
                let info = Arc::new(ConnInfo {
                    peer,
                    client,
                    tls: false,
                    listener: self.listener.clone(),
                    heads: Some(heads),
                });
                self.serve(io, info, &self.builder, activity, epoch).await;
            }
            Some(acceptor) => {
                let tls = match tokio::time::timeout(self.limits.tls_handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    _ => {
                        self.reject("tls");
                        return;
                    }
                };
                let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                let info = |heads| {
                    Arc::new(ConnInfo {
                        peer,
                        client,
                        tls: true,
                        listener: self.listener.clone(),
                        heads,
                    })
                };
                // ALPN already chose the protocol: don't sniff.
                if h2 {
                    let io = IdleIo {
                        inner: tls,
                        activity: activity.clone(),
                        epoch,
                    };
                    let builder = (*self.builder).clone().http2_only();
                    self.serve(io, info(None), &builder, activity, epoch).await;
                } else {
                    let heads = Arc::new(HeadVerdicts::default());
                    let io = IdleIo {
                        inner: GuardedIo::new(tls, max_head, heads.clone()),
                        activity: activity.clone(),
                        epoch,
                    };
                    let builder = (*self.builder).clone().http1_only();
                    self.serve(io, info(Some(heads)), &builder, activity, epoch).await;
                }
            }
        }
    }

    fn reject(&self, reason: &'static str) {
        self.shared
            .metrics
            .connections_rejected
            .get_or_create(&Label("reason", Arc::from(reason)))
            .inc();
    }

    async fn serve<I>(
        &self,
        io: I,
        info: Arc<ConnInfo>,
        builder: &auto::Builder<TokioExecutor>,
        activity: Arc<AtomicU64>,
        epoch: Instant,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let shared = self.shared.clone();
        // The request's future is some kilobytes (the whole pipeline's state): boxed once here, hyper moves
        // a pointer instead of copying that state into its stream task and dispatcher (copies that showed
        // as memmove in the profile of every request).
        let service = hyper::service::service_fn(move |req| Box::pin(handle(req, info.clone(), shared.clone())));
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let mut signal = self.signal.clone();
        let idle = self.limits.idle_timeout;
        let mut shutting_down = *signal.borrow();
        if shutting_down {
            conn.as_mut().graceful_shutdown();
        }
        loop {
            let since = Duration::from_millis(
                (epoch.elapsed().as_millis() as u64).saturating_sub(activity.load(Ordering::Relaxed)),
            );
            let wait = idle.saturating_sub(since);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "connection ended with error");
                    }
                    return;
                }
                _ = signal.changed(), if !shutting_down => {
                    shutting_down = true;
                    conn.as_mut().graceful_shutdown();
                }
                _ = tokio::time::sleep(wait) => {
                    let last = activity.load(Ordering::Relaxed);
                    if (epoch.elapsed().as_millis() as u64).saturating_sub(last) >= idle.as_millis() as u64 {
                        if shutting_down {
                            return;
                        }
                        shutting_down = true;
                        conn.as_mut().graceful_shutdown();
                        // Give an in-flight exchange one more idle period, then cut.
                        activity.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

struct GaugeGuard(prometheus_client::metrics::gauge::Gauge);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Records the time of the last read or write, for the idle timeout.
struct IdleIo<T> {
    inner: T,
    activity: Arc<AtomicU64>,
    epoch: Instant,
}

impl<T> IdleIo<T> {
    fn touch(&self) {
        self.activity
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
