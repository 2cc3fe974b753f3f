//! One call's RTP state as pure code (RFC 3550, RFC 3551, RFC 4733 framing).
//!
//! Owns: writing RTP headers for what we send (sequence numbers, a media clock that keeps
//! running through silence, marker bits, telephone-event packets), reading the headers of
//! what arrives without allocating, the symmetric-RTP latch that decides which remote
//! address is ours, and the receive counters (loss, duplicates, reordering, jitter, last
//! arrival). It must not touch sockets, read clocks or draw random numbers: datagrams,
//! `now` and initial random values are handed in by the shell. Codecs and the meaning of
//! telephone-event payloads live elsewhere.
//!
//! The header is written by hand rather than through the `rtp` crate: twelve fixed bytes
//! need no allocation, no trait imports and no fallible marshal step; the crate serves as
//! the test oracle. Per datagram the expected order is `parse_rtp`, then
//! `SymmetricLatch::handle_packet`, then `RtpReceiver::on_packet` for accepted packets.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Length of an RTP header without CSRCs or extension.
pub const RTP_HEADER_LEN: usize = 12;
/// Length of an RFC 4733 telephone-event payload.
pub const TELEPHONE_EVENT_LEN: usize = 4;
/// Samples in one 20 ms G.711 frame at 8 kHz.
pub const SAMPLES_PER_FRAME: u32 = 160;

const VERSION: u8 = 2;
/// RFC 3550 A.1: a forward jump larger than this is a restart, not loss.
const MAX_DROPOUT: i32 = 3000;
/// RFC 3550 A.1: a backward step larger than this is a restart, not reordering.
const MAX_MISORDER: i32 = 100;
/// How far back the duplicate detector remembers sequence numbers.
const HISTORY: i32 = 64;

/// Why a datagram is not an RTP packet we can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("RTP packet truncated: expected at least {expected} bytes, found {found}")]
    Truncated { expected: usize, found: usize },
    #[error("RTP version: expected 2, found {found}")]
    BadVersion { found: u8 },
    /// Not a fault: RTCP multiplexed on the RTP port (RFC 5761). Count it and move on.
    #[error("RTCP packet (type {packet_type}) on the RTP port, ignored")]
    Rtcp { packet_type: u8 },
    #[error("RTP padding: expected 1 to {available} bytes, found {found}")]
    BadPadding { found: usize, available: usize },
    #[error("RTP output buffer too small: expected at least {expected} bytes, found {found}")]
    BufferTooSmall { expected: usize, found: usize },
}

/// A parsed RTP packet borrowing the datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacketRef<'a> {
    pub pt: u8,
    pub seq: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub marker: bool,
    /// Payload without header, CSRCs, extension or padding.
    pub payload: &'a [u8],
    pub csrc_count: u8,
    /// Header extension profile and body (RFC 3550 §5.3.1), skipped but kept for callers.
    pub extension: Option<(u16, &'a [u8])>,
}

/// Reads an RTP packet without copying. RTCP multiplexed on the same port (second byte
/// 192-223, RFC 5761 §4, which covers SR/RR/SDES/BYE/APP = 200-204) is reported as
/// `RtpError::Rtcp`.
pub fn parse_rtp(buf: &[u8]) -> Result<RtpPacketRef<'_>, RtpError> {
    let truncated = |expected: usize| RtpError::Truncated {
        expected,
        found: buf.len(),
    };
    let (&[b0, b1], _) = buf
        .split_first_chunk::<2>()
        .ok_or(truncated(RTP_HEADER_LEN))?;
    let version = b0 >> 6;
    if version != VERSION {
        return Err(RtpError::BadVersion { found: version });
    }
    if (192..=223).contains(&b1) {
        return Err(RtpError::Rtcp { packet_type: b1 });
    }
    let (header, rest) = buf
        .split_first_chunk::<RTP_HEADER_LEN>()
        .ok_or(truncated(RTP_HEADER_LEN))?;
    let [_, _, s0, s1, t0, t1, t2, t3, c0, c1, c2, c3] = *header;
    let padding = b0 & 0x20 != 0;
    let has_extension = b0 & 0x10 != 0;
    let csrc_count = b0 & 0x0f;

    let csrc_len = usize::from(csrc_count) * 4;
    let rest = rest
        .get(csrc_len..)
        .ok_or(truncated(RTP_HEADER_LEN + csrc_len))?;

    let (extension, rest) = if has_extension {
        let at = RTP_HEADER_LEN + csrc_len;
        let (&[p0, p1, l0, l1], body) = rest.split_first_chunk::<4>().ok_or(truncated(at + 4))?;
        let ext_len = usize::from(u16::from_be_bytes([l0, l1])) * 4;
        let ext = body.get(..ext_len).ok_or(truncated(at + 4 + ext_len))?;
        let after = body.get(ext_len..).unwrap_or_default();
        (Some((u16::from_be_bytes([p0, p1]), ext)), after)
    } else {
        (None, rest)
    };

    let payload = if padding {
        let count = usize::from(rest.last().copied().unwrap_or(0));
        if count == 0 || count > rest.len() {
            return Err(RtpError::BadPadding {
                found: count,
                available: rest.len(),
            });
        }
        rest.get(..rest.len() - count).unwrap_or_default()
    } else {
        rest
    };

    Ok(RtpPacketRef {
        pt: b1 & 0x7f,
        seq: u16::from_be_bytes([s0, s1]),
        timestamp: u32::from_be_bytes([t0, t1, t2, t3]),
        ssrc: u32::from_be_bytes([c0, c1, c2, c3]),
        marker: b1 & 0x80 != 0,
        payload,
        csrc_count,
        extension,
    })
}

fn write_header(
    buf: &mut [u8],
    marker: bool,
    pt: u8,
    seq: u16,
    timestamp: u32,
    ssrc: u32,
    payload: &[u8],
) -> Result<usize, RtpError> {
    let total = RTP_HEADER_LEN + payload.len();
    let found = buf.len();
    let out = buf.get_mut(..total).ok_or(RtpError::BufferTooSmall {
        expected: total,
        found,
    })?;
    let (header, body) =
        out.split_first_chunk_mut::<RTP_HEADER_LEN>()
            .ok_or(RtpError::BufferTooSmall {
                expected: total,
                found,
            })?;
    let [s0, s1] = seq.to_be_bytes();
    let [t0, t1, t2, t3] = timestamp.to_be_bytes();
    let [c0, c1, c2, c3] = ssrc.to_be_bytes();
    *header = [
        VERSION << 6,
        (u8::from(marker) << 7) | (pt & 0x7f),
        s0,
        s1,
        t0,
        t1,
        t2,
        t3,
        c0,
        c1,
        c2,
        c3,
    ];
    body.copy_from_slice(payload);
    Ok(total)
}

/// An RFC 4733 §2.3 telephone-event payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// 0-9, 10 = `*`, 11 = `#`, 12-15 = A-D.
    pub event: u8,
    /// E bit: this packet ends the event.
    pub end: bool,
    /// Power level in -dBm0, 0-63 (larger is quieter); higher bits are dropped.
    pub volume: u8,
    /// Duration so far, in timestamp units (samples).
    pub duration: u16,
}

impl TelephoneEvent {
    pub fn to_bytes(self) -> [u8; TELEPHONE_EVENT_LEN] {
        let [d0, d1] = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3f),
            d0,
            d1,
        ]
    }
}

/// Counters of what we sent (RFC 3550 §6.4.1 sender's packet and octet counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendStats {
    pub packets: u64,
    /// Payload octets, as RTCP counts them.
    pub octets: u64,
}

/// The sending side of one RTP stream.
///
/// The timestamp is a media clock, not a packet counter: it advances by the samples each
/// packet carries and by `skip` for time in which nothing was sent, so it stays in step
/// with real time across prompts and silences. The marker bit goes on the first packet
/// after a gap (RFC 3551 §4.1) and on the first packet of the stream.
#[derive(Debug, Clone)]
pub struct RtpSender {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    pt: u8,
    marker_pending: bool,
    /// Timestamp of the telephone event being sent, if any (RFC 4733 §2.5.1.3).
    event_timestamp: Option<u32>,
    stats: SendStats,
}

impl RtpSender {
    /// The three initial values must be random (RFC 3550 §5.1, §8); the caller draws them.
    pub fn new(ssrc: u32, initial_seq: u16, initial_timestamp: u32, pt: u8) -> Self {
        Self {
            ssrc,
            seq: initial_seq,
            timestamp: initial_timestamp,
            pt: pt & 0x7f,
            marker_pending: true,
            event_timestamp: None,
            stats: SendStats::default(),
        }
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number of the next packet.
    pub fn seq(&self) -> u16 {
        self.seq
    }

    /// Timestamp of the next audio packet.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }

    pub fn pt(&self) -> u8 {
        self.pt
    }

    pub fn stats(&self) -> SendStats {
        self.stats
    }

    /// Changes the audio payload type (a re-negotiated codec); the clock runs on.
    pub fn set_pt(&mut self, pt: u8) {
        self.pt = pt & 0x7f;
    }

    /// Marks the next audio packet as the start of a talkspurt.
    pub fn start_talkspurt(&mut self) {
        self.marker_pending = true;
    }

    /// Lets `samples` of media time pass without sending (silence, hold, a DTMF event):
    /// the clock keeps running and the next audio packet starts a talkspurt.
    pub fn skip(&mut self, samples: u32) {
        if samples > 0 {
            self.timestamp = self.timestamp.wrapping_add(samples);
            self.marker_pending = true;
        }
    }

    /// Writes header and G.711 payload (one byte per sample) into `buf`; returns the
    /// packet length. Nothing changes when `buf` is too small.
    pub fn next_packet(&mut self, payload: &[u8], buf: &mut [u8]) -> Result<usize, RtpError> {
        // A G.711 payload is never near 4 GiB; saturate rather than wrap if it were.
        let samples = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.next_packet_with_samples(payload, samples, buf)
    }

    /// Like `next_packet` for payloads whose sample count is not their byte count.
    pub fn next_packet_with_samples(
        &mut self,
        payload: &[u8],
        samples: u32,
        buf: &mut [u8],
    ) -> Result<usize, RtpError> {
        let len = write_header(
            buf,
            self.marker_pending,
            self.pt,
            self.seq,
            self.timestamp,
            self.ssrc,
            payload,
        )?;
        self.marker_pending = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(samples);
        self.count(payload.len());
        Ok(len)
    }

    /// Writes one RFC 4733 packet. Every packet of an event carries the timestamp at which
    /// the event began and the marker is set on its first packet; `duration` grows and the
    /// final packets (sent three times by convention) set `end`. Call `finish_event` after
    /// the last one. Audio time keeps running meanwhile: `skip` it each frame.
    pub fn telephone_event_packet(
        &mut self,
        te_pt: u8,
        event: TelephoneEvent,
        buf: &mut [u8],
    ) -> Result<usize, RtpError> {
        let (timestamp, marker) = match self.event_timestamp {
            Some(ts) => (ts, false),
            None => (self.timestamp, true),
        };
        let payload = event.to_bytes();
        let len = write_header(buf, marker, te_pt, self.seq, timestamp, self.ssrc, &payload)?;
        self.event_timestamp = Some(timestamp);
        self.seq = self.seq.wrapping_add(1);
        self.count(payload.len());
        Ok(len)
    }

    /// Ends the current telephone event; the next event gets a new timestamp and marker,
    /// and the next audio packet starts a talkspurt.
    pub fn finish_event(&mut self) {
        if self.event_timestamp.take().is_some() {
            self.marker_pending = true;
        }
    }

    fn count(&mut self, payload_len: usize) {
        self.stats.packets = self.stats.packets.saturating_add(1);
        self.stats.octets = self
            .stats
            .octets
            .saturating_add(u64::try_from(payload_len).unwrap_or(u64::MAX));
    }
}

/// Settings of the symmetric-RTP latch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatchConfig {
    /// Consecutive packets with one SSRC from one source that end learning early.
    pub confirm_packets: u32,
    /// How long after the call starts (or `reset`) sources may still be learned.
    pub window: Duration,
}

impl Default for LatchConfig {
    fn default() -> Self {
        Self {
            confirm_packets: 5,
            window: Duration::from_secs(2),
        }
    }
}

/// What to do with a packet that passed `parse_rtp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchVerdict {
    Accept,
    /// From a source other than the learned one: drop it (it is counted).
    DropForeign,
}

/// How well a source matches what the SDP announced; better sources win while learning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Other,
    SameIp,
    Exact,
}

#[derive(Debug, Clone, Copy)]
struct Candidate {
    addr: SocketAddr,
    ssrc: u32,
    rank: Rank,
    count: u32,
}

/// Symmetric RTP (RFC 4961 behaviour, "comedia"): send to where the caller's media really
/// comes from, which behind NAT is not the SDP address.
///
/// Learning: until `confirm_packets` consistent packets arrived from one source, or the
/// window after the call start has passed, the best source so far is followed. A packet
/// from exactly the SDP address locks at once; one from the SDP's IP beats any other
/// address; the same SSRC from a new address is the same stream after a NAT rebinding and
/// is followed; a different SSRC from a source no better than the current one is dropped.
/// If nothing arrived by the end of the window, the first source afterwards is locked at
/// once (callers with silence suppression behind NAT start late).
///
/// Locked: only the locked address is accepted, for the rest of the call. Everything else
/// is dropped and counted, and never re-latched ("RTP bleed" injection). A re-INVITE that
/// moves the media calls `reset`.
///
/// Restricted ([`SymmetricLatch::with_signalling`]): for a caller from an untrusted source
/// only two kinds of source are admissible at all, the SDP address itself and the IP
/// address the signalling came from (the caller behind NAT); a third address is dropped
/// while learning, after the window and after the lock alike. Without it any source may be
/// learned during the window, which a proxy in front of the engine needs (its callers'
/// media comes from addresses the signalling never showed).
#[derive(Debug, Clone)]
pub struct SymmetricLatch {
    config: LatchConfig,
    sdp_addr: SocketAddr,
    /// The signalling source's IP when the latch is restricted.
    signalling: Option<IpAddr>,
    /// End of the learning window; `None` if the window is too long to represent.
    learn_until: Option<Instant>,
    candidate: Option<Candidate>,
    locked: Option<SocketAddr>,
    dropped: u64,
}

impl SymmetricLatch {
    pub fn new(sdp_addr: SocketAddr, now: Instant, config: LatchConfig) -> Self {
        Self {
            config,
            sdp_addr,
            signalling: None,
            learn_until: now.checked_add(config.window),
            candidate: None,
            locked: None,
            dropped: 0,
        }
    }

    /// Restricts the sources to the SDP address and `signalling_ip` (see the type's doc).
    pub fn with_signalling(mut self, signalling_ip: IpAddr) -> Self {
        self.signalling = Some(canonical_ip(signalling_ip));
        self
    }

    /// Whether `src` may be learned or accepted at all.
    pub fn is_admissible(&self, src: SocketAddr) -> bool {
        match self.signalling {
            None => true,
            Some(ip) => src == self.sdp_addr || canonical_ip(src.ip()) == ip,
        }
    }

    /// The address the SDP named.
    pub fn sdp_addr(&self) -> SocketAddr {
        self.sdp_addr
    }

    /// The address learned from the caller's packets, if any (a candidate or the lock).
    pub fn learned(&self) -> Option<SocketAddr> {
        self.locked.or(self.candidate.map(|c| c.addr))
    }

    /// Starts learning afresh for a new SDP address (re-INVITE). The drop count is kept.
    pub fn reset(&mut self, sdp_addr: SocketAddr, now: Instant) {
        self.sdp_addr = sdp_addr;
        self.learn_until = now.checked_add(self.config.window);
        self.candidate = None;
        self.locked = None;
    }

    /// Where to send our RTP now.
    pub fn remote(&self) -> SocketAddr {
        self.locked
            .or(self.candidate.map(|c| c.addr))
            .unwrap_or(self.sdp_addr)
    }

    pub fn is_locked(&self) -> bool {
        self.locked.is_some()
    }

    /// Packets dropped because they came from a foreign source.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Judges a packet from `src` (already parsed as RTP) at `now`.
    pub fn handle_packet(&mut self, src: SocketAddr, ssrc: u32, now: Instant) -> LatchVerdict {
        if !self.is_admissible(src) {
            self.dropped = self.dropped.saturating_add(1);
            return LatchVerdict::DropForeign;
        }
        if self.locked.is_none() && self.learn_until.is_some_and(|end| now >= end) {
            // Window over: keep what was learned, or take this first late source.
            self.locked = Some(self.candidate.map_or(src, |c| c.addr));
        }
        if let Some(locked) = self.locked {
            return self.judge_locked(locked, src);
        }

        let rank = if src == self.sdp_addr {
            Rank::Exact
        } else if src.ip() == self.sdp_addr.ip() {
            Rank::SameIp
        } else {
            Rank::Other
        };
        if rank == Rank::Exact {
            self.locked = Some(src);
            self.candidate = None;
            return LatchVerdict::Accept;
        }
        let fresh = Candidate {
            addr: src,
            ssrc,
            rank,
            count: 1,
        };
        let next = match self.candidate {
            None => fresh,
            Some(c) if c.addr == src && c.ssrc == ssrc => Candidate {
                count: c.count.saturating_add(1),
                ..c
            },
            // Same source, new stream (the far end restarted its sender).
            Some(c) if c.addr == src => fresh,
            // Same stream, new source: a NAT rebinding during the first packets.
            Some(c) if c.ssrc == ssrc => Candidate {
                count: c.count.saturating_add(1),
                ..fresh
            },
            Some(c) if rank > c.rank => fresh,
            Some(_) => {
                self.dropped = self.dropped.saturating_add(1);
                return LatchVerdict::DropForeign;
            }
        };
        if next.count >= self.config.confirm_packets {
            self.locked = Some(next.addr);
            self.candidate = None;
        } else {
            self.candidate = Some(next);
        }
        LatchVerdict::Accept
    }

    fn judge_locked(&mut self, locked: SocketAddr, src: SocketAddr) -> LatchVerdict {
        if src == locked {
            LatchVerdict::Accept
        } else {
            self.dropped = self.dropped.saturating_add(1);
            LatchVerdict::DropForeign
        }
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`, a dual-stack socket) is the IPv4
/// address, so the two forms compare equal.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// How an accepted packet fits the sequence so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// The first packet, or the next one after `lost` missing packets.
    InOrder { lost: u16 },
    /// Older than the newest, not seen before: fills a gap counted as lost.
    Late,
    /// Seen before: drop it.
    Duplicate,
    /// A large jump in sequence numbers confirmed by a second packet, or a new SSRC: the
    /// sender restarted; counting starts again from here.
    Restart,
    /// A large jump not yet confirmed (RFC 3550 A.1): drop it.
    Stray,
}

impl Arrival {
    /// Whether the packet carries media to play, decode or detect DTMF in.
    pub fn is_fresh(self) -> bool {
        matches!(
            self,
            Arrival::InOrder { .. } | Arrival::Late | Arrival::Restart
        )
    }
}

/// Receive counters of one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReceiveStats {
    /// Packets accepted by the latch, including duplicates.
    pub packets: u64,
    /// Their payload octets.
    pub octets: u64,
    /// Sequence numbers skipped and not (yet) filled by late packets.
    pub lost: u64,
    pub duplicates: u64,
    /// Late packets and unconfirmed jumps.
    pub out_of_order: u64,
    pub restarts: u64,
    /// RTCP packets seen on the RTP port.
    pub rtcp: u64,
    /// Datagrams that were not RTP.
    pub malformed: u64,
    /// RFC 3550 A.8 interarrival jitter, in timestamp units (samples).
    pub jitter: u32,
    pub last_arrival: Option<Instant>,
}

#[derive(Debug, Clone, Copy)]
struct SeqState {
    ssrc: u32,
    highest: u16,
    /// Bit i set: sequence number `highest - i` was received.
    seen: u64,
    /// Sequence number that would confirm a large jump.
    bad_seq: Option<u16>,
}

/// The receiving side of one RTP stream: sequence tracking and counters.
#[derive(Debug, Clone)]
pub struct RtpReceiver {
    clock_rate: u32,
    audio_pt: Option<u8>,
    started: Instant,
    seq: Option<SeqState>,
    /// Previous relative transit time, for jitter.
    transit: Option<u32>,
    /// Jitter scaled by 16, as RFC 3550 A.8 keeps it.
    jitter_q4: u64,
    stats: ReceiveStats,
}

impl RtpReceiver {
    /// `clock_rate` is the audio's (8000 for G.711). When `audio_pt` is set, only that
    /// payload type feeds the jitter estimate: telephone-event packets repeat one
    /// timestamp for the whole event and would read as jitter.
    pub fn new(now: Instant, clock_rate: u32, audio_pt: Option<u8>) -> Self {
        Self {
            clock_rate,
            audio_pt,
            started: now,
            seq: None,
            transit: None,
            jitter_q4: 0,
            stats: ReceiveStats::default(),
        }
    }

    pub fn set_audio_pt(&mut self, pt: Option<u8>) {
        self.audio_pt = pt;
        self.transit = None;
    }

    pub fn stats(&self) -> ReceiveStats {
        self.stats
    }

    /// Counts a datagram `parse_rtp` refused.
    pub fn on_error(&mut self, err: &RtpError) {
        match err {
            RtpError::Rtcp { .. } => self.stats.rtcp = self.stats.rtcp.saturating_add(1),
            _ => self.stats.malformed = self.stats.malformed.saturating_add(1),
        }
    }

    /// The instant media was last heard, or the start if never.
    pub fn idle_since(&self) -> Instant {
        self.stats.last_arrival.unwrap_or(self.started)
    }

    /// When the "no media for `limit`" check fires unless a packet arrives first
    /// (`None` if that lies beyond what `Instant` can represent).
    pub fn poll_timeout(&self, limit: Duration) -> Option<Instant> {
        self.idle_since().checked_add(limit)
    }

    /// Whether no media has arrived for at least `limit`.
    pub fn is_idle(&self, now: Instant, limit: Duration) -> bool {
        now.saturating_duration_since(self.idle_since()) >= limit
    }

    /// Records a packet the latch accepted.
    pub fn on_packet(&mut self, pkt: &RtpPacketRef<'_>, now: Instant) -> Arrival {
        let s = &mut self.stats;
        s.packets = s.packets.saturating_add(1);
        s.octets = s
            .octets
            .saturating_add(u64::try_from(pkt.payload.len()).unwrap_or(u64::MAX));
        s.last_arrival = Some(now);

        let arrival = self.track_seq(pkt);
        if arrival.is_fresh() && self.audio_pt.is_none_or(|pt| pt == pkt.pt) {
            self.update_jitter(pkt.timestamp, now);
        }
        arrival
    }

    fn track_seq(&mut self, pkt: &RtpPacketRef<'_>) -> Arrival {
        let restart = SeqState {
            ssrc: pkt.ssrc,
            highest: pkt.seq,
            seen: 1,
            bad_seq: None,
        };
        let st = match &mut self.seq {
            Some(st) if st.ssrc == pkt.ssrc => st,
            Some(_) => {
                self.seq = Some(restart);
                self.transit = None;
                self.stats.restarts = self.stats.restarts.saturating_add(1);
                return Arrival::Restart;
            }
            None => {
                self.seq = Some(restart);
                return Arrival::InOrder { lost: 0 };
            }
        };
        let delta = i32::from(pkt.seq.wrapping_sub(st.highest) as i16);
        let stats = &mut self.stats;
        if delta == 0 {
            stats.duplicates = stats.duplicates.saturating_add(1);
            Arrival::Duplicate
        } else if (1..MAX_DROPOUT).contains(&delta) {
            let gap = delta - 1;
            st.seen = if delta >= HISTORY {
                1
            } else {
                (st.seen << delta) | 1
            };
            st.highest = pkt.seq;
            st.bad_seq = None;
            stats.lost = stats.lost.saturating_add(gap.unsigned_abs().into());
            Arrival::InOrder {
                lost: u16::try_from(gap).unwrap_or(u16::MAX),
            }
        } else if (-MAX_MISORDER..0).contains(&delta) {
            let back = -delta;
            if back >= HISTORY {
                stats.out_of_order = stats.out_of_order.saturating_add(1);
                return Arrival::Late;
            }
            let bit = 1u64 << back;
            if st.seen & bit != 0 {
                stats.duplicates = stats.duplicates.saturating_add(1);
                Arrival::Duplicate
            } else {
                st.seen |= bit;
                stats.out_of_order = stats.out_of_order.saturating_add(1);
                stats.lost = stats.lost.saturating_sub(1);
                Arrival::Late
            }
        } else if st.bad_seq == Some(pkt.seq) {
            *st = restart;
            self.transit = None;
            stats.restarts = stats.restarts.saturating_add(1);
            Arrival::Restart
        } else {
            st.bad_seq = Some(pkt.seq.wrapping_add(1));
            stats.out_of_order = stats.out_of_order.saturating_add(1);
            Arrival::Stray
        }
    }

    fn update_jitter(&mut self, timestamp: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.started);
        // Arrival time in timestamp units; only differences matter, so wrapping is fine.
        let arrival = (elapsed.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000) as u32;
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(prev) = self.transit {
            let d = u64::from((transit.wrapping_sub(prev) as i32).unsigned_abs());
            // J += (|D| - J) / 16, in the fixed point of RFC 3550 A.8.
            let decay = self.jitter_q4.saturating_add(8) >> 4;
            self.jitter_q4 = self.jitter_q4.saturating_add(d).saturating_sub(decay);
        }
        self.transit = Some(transit);
        self.stats.jitter = u32::try_from(self.jitter_q4 >> 4).unwrap_or(u32::MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_by_hand() {
        let mut s = RtpSender::new(0xdead_beef, 0x1234, 0x0102_0304, 8);
        let mut buf = [0u8; 200];
        let n = s.next_packet(&[0xd5; 160], &mut buf).expect("fits");
        assert_eq!(n, 172);
        assert_eq!(
            buf[..12],
            [
                0x80, 0x88, 0x12, 0x34, 0x01, 0x02, 0x03, 0x04, 0xde, 0xad, 0xbe, 0xef
            ]
        );
        assert!(buf[12..172].iter().all(|&b| b == 0xd5));
        let n = s.next_packet(&[0xd5; 160], &mut buf).expect("fits");
        assert_eq!(n, 172);
        assert_eq!(
            buf[..12],
            [
                0x80, 0x08, 0x12, 0x35, 0x01, 0x02, 0x03, 0xa4, 0xde, 0xad, 0xbe, 0xef
            ]
        );
    }

    #[test]
    fn jitter_is_zero_for_perfect_pacing_and_grows_with_wobble() {
        let t0 = Instant::now();
        let mut r = RtpReceiver::new(t0, 8000, Some(0));
        let pkt = |seq: u16, ts: u32| RtpPacketRef {
            pt: 0,
            seq,
            timestamp: ts,
            ssrc: 1,
            marker: false,
            payload: &[],
            csrc_count: 0,
            extension: None,
        };
        for i in 0..50u16 {
            let now = t0 + Duration::from_millis(20 * u64::from(i));
            r.on_packet(&pkt(i, 1000 + 160 * u32::from(i)), now);
        }
        assert_eq!(r.stats().jitter, 0);
        for i in 50..100u16 {
            let wobble = if i % 2 == 0 { 5 } else { 0 };
            let now = t0 + Duration::from_millis(20 * u64::from(i) + wobble);
            r.on_packet(&pkt(i, 1000 + 160 * u32::from(i)), now);
        }
        // Alternating 5 ms (40 samples) offsets converge to |D| = 40 samples.
        let j = r.stats().jitter;
        assert!((30..=40).contains(&j), "jitter {j}");
    }
}
