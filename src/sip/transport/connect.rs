//! The TLS connections the engine opens itself: to a trunk or any `sips:` (or
//! `;transport=tls`) target of a leg. The server's certificate is checked against
//! `tls.ca` for the target's host; an open connection to the same address is reused, and
//! once open it is served like an accepted one (same caps, idle close, writer, framing).

use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::ServerName;
use thiserror::Error;
use tokio::net::TcpStream;
use tracing::info;

use super::{Listener, Peer, Transports, open_conn, stream_conn};
use crate::config::Protocol;
use crate::metrics::TcpClose;

/// How long connecting (before the handshake) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a TLS connection could not be opened.
#[derive(Debug, Error)]
pub enum ConnectError {
    #[error("no tls.ca to check the server's certificate with")]
    NoCa,
    #[error("'{0}' cannot be checked against a certificate")]
    Name(String),
    #[error("connecting to {remote} failed: {why}")]
    Connect { remote: SocketAddr, why: String },
    #[error("TCP connections are at their limit")]
    Full,
    #[error("the TLS handshake with {remote} failed: {why}")]
    Handshake { remote: SocketAddr, why: String },
}

impl Transports {
    /// A TLS connection to `remote` whose certificate names `host`: the one open, or a new
    /// one. Returns the peer to send to.
    pub async fn connect_tls(&self, remote: SocketAddr, host: &str) -> Result<Peer, ConnectError> {
        let key = (Protocol::Tls, remote);
        let open = self.conns.lock().ok().and_then(|c| c.get(&key).cloned());
        if let Some(conn) = open.filter(|c| !c.tx.is_closed()) {
            return Ok(Peer {
                transport: Protocol::Tls,
                remote,
                local: conn.local,
            });
        }
        let config = self.tls_client.clone().ok_or(ConnectError::NoCa)?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| ConnectError::Name(host.to_owned()))?;
        let failed = |why: String| ConnectError::Connect { remote, why };
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(remote))
            .await
            .map_err(|_| failed("timed out".into()))?
            .map_err(|e| failed(e.to_string()))?;
        let slot = self
            .edge
            .take_slot(remote.ip())
            .map_err(|_| ConnectError::Full)?;
        let _ = tcp.set_nodelay(true);
        let limit = self.edge.idle.min(super::TLS_HANDSHAKE);
        let connector = tokio_rustls::TlsConnector::from(config);
        let tls = match tokio::time::timeout(limit, connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                self.edge
                    .closed(Protocol::Tls, remote, TcpClose::TlsHandshake);
                return Err(ConnectError::Handshake {
                    remote,
                    why: e.to_string(),
                });
            }
            Err(_) => {
                self.edge
                    .closed(Protocol::Tls, remote, TcpClose::TlsHandshake);
                return Err(ConnectError::Handshake {
                    remote,
                    why: "timed out".into(),
                });
            }
        };
        // Our TLS listener's address when there is one (the far end can connect back to
        // it), else the connection's own.
        let listener = self
            .stream_local
            .iter()
            .find(|(t, a)| *t == Protocol::Tls && a.is_ipv4() == remote.is_ipv4())
            .map(|(_, a)| *a);
        let local = match listener {
            Some(a) => a,
            None => tls
                .get_ref()
                .0
                .local_addr()
                .map_err(|e| failed(e.to_string()))?,
        };
        info!(%remote, host, "TLS connection opened");
        let l = Listener {
            local,
            transport: Protocol::Tls,
            inbound: self.inbound.clone(),
            conns: self.conns.clone(),
            edge: self.edge.clone(),
        };
        let opened = open_conn(&self.conns, key, local);
        let (rd, wr) = tokio::io::split(tls);
        tokio::spawn(stream_conn(rd, wr, remote, l, slot, opened));
        Ok(Peer {
            transport: Protocol::Tls,
            remote,
            local,
        })
    }
}
