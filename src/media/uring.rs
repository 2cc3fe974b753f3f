//! How a media worker moves its datagrams: through the batched ring of `hotline-uring`
//! (one system call for a tick's sends and one per read pass), or one `sendto`/`recvfrom`
//! per packet. `HOTLINE_MEDIA_IO=sendto` forces the plain path (for A/B and for kernels or
//! sandboxes where io_uring is missing); `uring`, the default, falls back to it when a ring
//! cannot be set up.

pub use hotline_uring::{RECV_SLOT, Received, SEND_SLOT, SendReport, Uring, watch_arrivals};

/// How a media worker moves its datagrams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaIo {
    /// One `sendto` per packet and one `recvfrom` per datagram.
    Sendto,
    /// One `io_uring_enter` for all the packets of a tick, and one per read pass.
    Uring,
}

impl MediaIo {
    /// The environment variable that chooses the IO path.
    pub const ENV: &'static str = "HOTLINE_MEDIA_IO";

    /// `HOTLINE_MEDIA_IO` (`sendto` or `uring`); io_uring when unset or not understood.
    pub fn from_env() -> MediaIo {
        MediaIo::from_setting(std::env::var(Self::ENV).ok().as_deref())
    }

    /// The path a setting asks for; io_uring when there is none or it is not understood.
    pub fn from_setting(value: Option<&str>) -> MediaIo {
        value.and_then(MediaIo::parse).unwrap_or(MediaIo::Uring)
    }

    pub fn parse(s: &str) -> Option<MediaIo> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sendto" => Some(MediaIo::Sendto),
            "uring" | "io_uring" | "io-uring" => Some(MediaIo::Uring),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MediaIo::Sendto => "sendto",
            MediaIo::Uring => "uring",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switch_reads_both_names_and_defaults_to_uring() {
        assert_eq!(MediaIo::parse("sendto"), Some(MediaIo::Sendto));
        assert_eq!(MediaIo::parse(" URING "), Some(MediaIo::Uring));
        assert_eq!(MediaIo::parse("epoll"), None);
        assert_eq!(MediaIo::from_setting(None), MediaIo::Uring);
        assert_eq!(MediaIo::from_setting(Some("epoll")), MediaIo::Uring);
        assert_eq!(MediaIo::from_setting(Some("sendto")), MediaIo::Sendto);
    }
}
