//! SDP offer/answer (RFC 3264 over RFC 4566) for a G.711 IVR.
//!
//! Owns: reading a remote session description into typed media lines, choosing the codec
//! (PCMU or PCMA at 8 kHz, RFC 3551), the RFC 4733 telephone-event payload type and the
//! stream direction (hold), and printing our answers and offers. It must not open sockets,
//! pick ports, read clocks or draw random numbers: addresses, ports and origin numbers are
//! handed in, and what the call does with the result (send or not, where to) is the
//! caller's business.
//!
//! Reading is two-layered. The `sdp` crate's parser is tried first; it is strict, and
//! refuses some descriptions RFC 4566 allows or that real equipment sends (unknown line
//! types such as `y=`, protocols it does not list such as `TCP/MSRP`, attributes before a
//! media-level `c=`, a missing `t=`, session ids past 64 bits, a malformed `u=`). When it
//! refuses, a small tolerant reader takes over that keeps only what offer/answer needs
//! (`v=`, `o=`, `c=`, `m=`, `a=`) and skips every other line. Both produce the same raw
//! form, so one typed layer interprets the result either way; `RemoteSdp::lenient` says
//! which reader was used. Strictness lives in the typed layer, on the fields we act on:
//! the payload types of audio lines we might answer, and their connection address.
//!
//! SRTP (RFC 4568 SDES): `RTP/SAVP` audio lines are read with their acceptable `a=crypto`
//! lines (see `sip::sdes`). [`negotiate`] answers plain `RTP/AVP` only, as a peer without
//! SRTP does; [`negotiate_srtp`] applies an [`SrtpPolicy`] and answers an `RTP/SAVP` line
//! with the offer's tag and suite and our own key, which the caller draws and hands in.

use std::fmt;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::media::srtp::{MasterKey, SrtpKeys, SrtpSuite};
use crate::sip::sdes::{self, Crypto, SrtpPolicy};

/// Largest body we read. SIP over UDP cannot carry more, and real offers are under 2 KiB.
pub const MAX_SDP_BYTES: usize = 64 * 1024;
/// Largest number of `m=` lines we read; offers in the wild carry one to four.
pub const MAX_MEDIA_LINES: usize = 16;
/// Largest number of formats on one `m=` line: RTP has only 128 payload types.
pub const MAX_FORMATS: usize = 128;
/// Packetisation time we send and ask for, in milliseconds (160 samples at 8 kHz).
pub const PTIME_MS: u32 = 20;
/// Acceptable `a=crypto` lines kept per media line (offers carry one to four).
const MAX_CRYPTO_LINES: usize = 8;
/// Telephone-event payload type we use in our own offers.
pub const OFFER_TELEPHONE_EVENT_PT: u8 = 101;
/// Events we accept in telephone-event (RFC 4733 §3.2): digits 0-9, `*`, `#`, A-D.
const TELEPHONE_EVENTS: &str = "0-15";
/// A remote `a=ptime` outside this range is ignored as nonsense rather than failing the call.
const PTIME_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;
/// How much of an offending value an error message quotes.
const SNIPPET_CHARS: usize = 48;

pub use crate::media::g711::Codec;

/// The rtpmap encoding name of a codec.
fn codec_name(codec: Codec) -> &'static str {
    codec.name()
}

/// One row of the RFC 3551 static audio payload table (§6, table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticPayload {
    pub pt: u8,
    pub name: &'static str,
    pub clock_rate: u32,
    pub channels: u8,
}

/// The static audio payload types of RFC 3551, so an offer such as `m=audio 6000 RTP/AVP 0`
/// without `a=rtpmap` lines still names its codecs. Video types (25-34) are left out: we
/// never look them up.
pub fn static_payload(pt: u8) -> Option<StaticPayload> {
    let (name, clock_rate, channels) = match pt {
        0 => ("PCMU", 8000, 1),
        3 => ("GSM", 8000, 1),
        4 => ("G723", 8000, 1),
        5 => ("DVI4", 8000, 1),
        6 => ("DVI4", 16000, 1),
        7 => ("LPC", 8000, 1),
        8 => ("PCMA", 8000, 1),
        9 => ("G722", 8000, 1),
        10 => ("L16", 44100, 2),
        11 => ("L16", 44100, 1),
        12 => ("QCELP", 8000, 1),
        13 => ("CN", 8000, 1),
        14 => ("MPA", 90000, 1),
        15 => ("G728", 8000, 1),
        16 => ("DVI4", 11025, 1),
        17 => ("DVI4", 22050, 1),
        18 => ("G729", 8000, 1),
        _ => return None,
    };
    Some(StaticPayload {
        pt,
        name,
        clock_rate,
        channels,
    })
}

/// Stream direction (RFC 3264 §5.1), always from the point of view of the side that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn from_flags(sends: bool, receives: bool) -> Self {
        match (sends, receives) {
            (true, true) => Direction::SendRecv,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::Inactive,
        }
    }

    /// Whether the writer of this direction sends media.
    pub const fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether the writer of this direction wants to receive media.
    pub const fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The direction the other side answers with (sendonly ↔ recvonly).
    pub fn reversed(self) -> Self {
        Self::from_flags(self.receives(), self.sends())
    }

    /// The attribute name as it appears after `a=`.
    pub const fn as_attribute(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(key: &str) -> Option<Self> {
        [
            Direction::SendRecv,
            Direction::SendOnly,
            Direction::RecvOnly,
            Direction::Inactive,
        ]
        .into_iter()
        .find(|d| key.eq_ignore_ascii_case(d.as_attribute()))
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_attribute())
    }
}

/// Why an offer (or answer) cannot be used. `status_code` gives the SIP response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP body too large: at most {max} bytes accepted, found {len}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed SDP: expected {expected}, found {found:?}")]
    Malformed {
        expected: &'static str,
        found: String,
    },
    #[error("SDP has too many media lines: at most {max} accepted, found {count}")]
    TooManyMedia { count: usize, max: usize },
    #[error("SDP media line {index} has too many formats: at most {max} accepted, found {count}")]
    TooManyFormats {
        index: usize,
        count: usize,
        max: usize,
    },
    #[error("SDP media line {index}: expected an RTP payload type 0-127, found {found:?}")]
    InvalidPayloadType { index: usize, found: String },
    #[error(
        "SDP media line {index}: expected a connection line (c=) at media or session level, found none"
    )]
    MissingConnection { index: usize },
    #[error("SDP connection: expected `IN IP4 <address>` or `IN IP6 <address>`, found {found:?}")]
    BadAddress { found: String },
    #[error(
        "SDP connection: expected a unicast IP address, found {found:?} (host names and multicast are not supported)"
    )]
    UnsupportedAddress { found: String },
    #[error("SDP has no usable audio stream: expected m=audio with RTP/AVP and a non-zero port")]
    NoAudio,
    #[error("SDP has no common codec: expected PCMU/8000 or PCMA/8000, found {offered}")]
    NoCommonCodec { offered: String },
    #[error(
        "SDP offers RTP/SAVP without an acceptable a=crypto line: expected AES_CM_128_HMAC_SHA1_80 or _32 with a 30-byte inline key, no MKI"
    )]
    NoUsableCrypto,
    #[error("SDP offers only plain RTP/AVP audio: SRTP (RTP/SAVP with a=crypto) is required here")]
    SrtpRequired,
    #[error("SDP offers only RTP/SAVP audio: SRTP is off here")]
    SrtpOff,
    #[error(
        "SDP changes the call's SRTP (plain to secure, or the key): re-keying is not supported"
    )]
    SrtpRekey,
    #[error(
        "SDP answer does not keep our SRTP offer: expected RTP/SAVP with a=crypto tag {tag} {suite}"
    )]
    SrtpAnswerMismatch { tag: u32, suite: &'static str },
}

impl SdpError {
    /// The SIP status to reject the INVITE (or re-INVITE) with: 488 Not Acceptable Here when
    /// the description is understood but unusable, 400 Bad Request when it is not understood.
    pub fn status_code(&self) -> u16 {
        match self {
            SdpError::UnsupportedAddress { .. }
            | SdpError::NoAudio
            | SdpError::NoCommonCodec { .. }
            | SdpError::NoUsableCrypto
            | SdpError::SrtpRequired
            | SdpError::SrtpOff
            | SdpError::SrtpRekey
            | SdpError::SrtpAnswerMismatch { .. } => 488,
            SdpError::TooLarge { .. }
            | SdpError::Malformed { .. }
            | SdpError::TooManyMedia { .. }
            | SdpError::TooManyFormats { .. }
            | SdpError::InvalidPayloadType { .. }
            | SdpError::MissingConnection { .. }
            | SdpError::BadAddress { .. } => 400,
        }
    }
}

/// The remote `o=` line, kept as text: only equality matters (an unchanged version means
/// an unchanged description, RFC 3264 §8), and some senders exceed 64-bit numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteOrigin {
    pub username: String,
    pub session_id: String,
    pub version: String,
}

/// A parsed remote description: every `m=` line in order, as RFC 3264 requires the answer
/// to mirror them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSdp {
    pub origin: RemoteOrigin,
    pub media: Vec<MediaLine>,
    /// True when the strict parser refused the body and the tolerant reader was used.
    pub lenient: bool,
}

impl RemoteSdp {
    /// Whether `other` carries the same origin and version, i.e. is a repeat of this
    /// description (a session refresh) rather than a new offer.
    pub fn same_version_as(&self, other: &RemoteSdp) -> bool {
        self.origin == other.origin
    }
}

/// One `m=` line of the remote description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    /// `audio`, `video`, `image`, ...
    pub media: String,
    pub port: u16,
    /// `RTP/AVP`, `RTP/SAVP`, `udptl`, ...
    pub proto: String,
    /// The format tokens as written (payload types for RTP).
    pub formats: Vec<String>,
    /// Present for audio lines we could answer (RTP/AVP or RTP/SAVP, non-zero port).
    pub audio: Option<MediaOffer>,
}

/// A usable remote audio stream: where to send, in which formats, in which direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaOffer {
    /// Connection address (media level, else session level). `0.0.0.0` or `::` means the
    /// remote does not want media now (old-style hold).
    pub addr: IpAddr,
    pub port: u16,
    /// Codecs we know, by payload type, in the remote's preference order.
    pub codecs: Vec<(u8, Codec)>,
    /// Every format on the line with what it names, in order (for logs and errors).
    pub payloads: Vec<Payload>,
    /// The payload type mapped to `telephone-event/8000`, if offered.
    pub telephone_event_pt: Option<u8>,
    /// The `a=fmtp` value of that payload type (such as `0-16`), if any.
    pub telephone_event_fmtp: Option<String>,
    /// `a=ptime`, when present and sensible.
    pub ptime: Option<u32>,
    /// The direction attribute as written (media level, else session level, else sendrecv).
    pub direction: Direction,
    /// The line is `RTP/SAVP`: its media is SRTP, keyed by one of `crypto`.
    pub secure: bool,
    /// The acceptable `a=crypto` lines of an `RTP/SAVP` line, in the offer's order
    /// (unacceptable ones are skipped, see `sdes::CryptoRefusal`).
    pub crypto: Vec<Crypto>,
}

impl MediaOffer {
    /// The remote's direction once an unspecified connection address is taken into
    /// account: nobody can send to `0.0.0.0`, whatever the attribute says.
    pub fn effective_direction(&self) -> Direction {
        let receives = self.direction.receives() && !self.addr.is_unspecified();
        Direction::from_flags(self.direction.sends(), receives)
    }

    /// The remote's RTP address.
    pub fn rtp_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

/// What one format of an audio line names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub pt: u8,
    /// From `a=rtpmap`, else from the RFC 3551 table; empty when neither knows it.
    pub encoding: String,
    pub clock_rate: u32,
    pub channels: u8,
}

impl Payload {
    fn is(&self, name: &str, clock_rate: u32) -> bool {
        self.encoding.eq_ignore_ascii_case(name) && self.clock_rate == clock_rate
    }

    fn codec(&self) -> Option<Codec> {
        if self.channels != 1 {
            return None;
        }
        [Codec::Pcmu, Codec::Pcma]
            .into_iter()
            .find(|&c| self.is(codec_name(c), 8000))
    }
}

/// The result of offer/answer: what to send, where, and what our answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// The payload type the remote uses for `codec` (normally its static type).
    pub pt: u8,
    /// The remote's telephone-event payload type; we send and expect events with it.
    pub telephone_event_pt: Option<u8>,
    /// Where to send RTP (the address may be unspecified on hold; see `direction`).
    pub remote_rtp: SocketAddr,
    pub remote_ptime: Option<u32>,
    /// Our direction as answered: whether we send (`sends()`) and receive (`receives()`).
    pub direction: Direction,
    /// Index of the answered audio line among the remote's `m=` lines.
    pub audio_index: usize,
    /// The SRTP keys when the answered line is `RTP/SAVP`; `None` for plain RTP.
    pub srtp: Option<SrtpKeys>,
    /// One entry per remote `m=` line, in order, for the answer.
    pub lines: Vec<AnswerLine>,
}

impl Negotiated {
    /// True when the remote has put us on hold: we must not send media.
    pub fn on_hold(&self) -> bool {
        !self.direction.sends()
    }
}

/// How our answer treats one remote `m=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerLine {
    /// The accepted audio stream.
    Audio,
    /// Refused with port 0; media, protocol and one format echoed (sanitised) from the offer.
    Rejected {
        media: String,
        proto: String,
        format: String,
    },
}

/// Our own `o=` numbers. RFC 3264 §8: the version goes up by one with every new
/// description we send in the session, and stays put when we repeat one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalOrigin {
    pub session_id: u64,
    pub version: u64,
}

impl LocalOrigin {
    /// Both numbers come from the caller (random or clock-based, RFC 4566 §5.2).
    pub fn new(session_id: u64, version: u64) -> Self {
        Self {
            session_id,
            version,
        }
    }

    /// Advances the version for a changed description and returns it.
    pub fn next_version(&mut self) -> u64 {
        // Wrapping rather than saturating: a stuck version would be read as "unchanged".
        self.version = self.version.wrapping_add(1);
        self.version
    }
}

/// Reads a remote offer (or answer) from a SIP body.
pub fn parse_offer(body: &[u8]) -> Result<RemoteSdp, SdpError> {
    if body.len() > MAX_SDP_BYTES {
        return Err(SdpError::TooLarge {
            len: body.len(),
            max: MAX_SDP_BYTES,
        });
    }
    let (raw, lenient) = match read_strict(body) {
        Some(raw) => (raw, false),
        None => (read_tolerant(body)?, true),
    };
    interpret(raw, lenient)
}

/// Chooses the audio stream and codec for our answer: the first usable plain `RTP/AVP`
/// audio line with a codec in `supported`, and on it the first such codec in the remote's
/// order. `RTP/SAVP` lines are refused, as by a peer without SRTP.
pub fn negotiate(remote: &RemoteSdp, supported: &[Codec]) -> Result<Negotiated, SdpError> {
    choose(remote, supported, SrtpPolicy::Off, None)
}

/// [`negotiate`] under an SRTP policy: with `Optional` or `Required`, an `RTP/SAVP` line
/// with an acceptable `a=crypto` line is usable too, and answering it protects our packets
/// with `local_key` (drawn by the caller, fresh for the leg); with `Required` plain lines
/// are not. The first usable line in the remote's order wins.
pub fn negotiate_srtp(
    remote: &RemoteSdp,
    supported: &[Codec],
    policy: SrtpPolicy,
    local_key: &MasterKey,
) -> Result<Negotiated, SdpError> {
    choose(remote, supported, policy, Some(local_key))
}

fn choose(
    remote: &RemoteSdp,
    supported: &[Codec],
    policy: SrtpPolicy,
    local_key: Option<&MasterKey>,
) -> Result<Negotiated, SdpError> {
    let mut chosen: Option<(usize, &MediaOffer, u8, Codec)> = None;
    let mut offered = String::new();
    let mut saw_audio = false;
    let (mut saw_plain, mut saw_secure, mut saw_crypto) = (false, false, false);
    for (index, line) in remote.media.iter().enumerate() {
        let Some(audio) = &line.audio else { continue };
        if audio.secure {
            saw_secure = true;
            if policy == SrtpPolicy::Off || local_key.is_none() {
                continue;
            }
            if audio.crypto.is_empty() {
                continue;
            }
            saw_crypto = true;
        } else {
            saw_plain = true;
            if policy == SrtpPolicy::Required {
                continue;
            }
        }
        saw_audio = true;
        if let Some(&(pt, codec)) = audio.codecs.iter().find(|(_, c)| supported.contains(c)) {
            chosen = Some((index, audio, pt, codec));
            break;
        }
        describe_payloads(&mut offered, &audio.payloads);
    }
    let Some((audio_index, audio, pt, codec)) = chosen else {
        if !saw_audio {
            // Say what kept the offer out, in the order a caller would fix it.
            return Err(match policy {
                _ if saw_secure && !saw_crypto && policy != SrtpPolicy::Off => {
                    SdpError::NoUsableCrypto
                }
                SrtpPolicy::Required if saw_plain => SdpError::SrtpRequired,
                SrtpPolicy::Off if saw_secure && !saw_plain => SdpError::SrtpOff,
                _ => SdpError::NoAudio,
            });
        }
        return Err(SdpError::NoCommonCodec { offered });
    };
    let srtp = match (audio.secure, audio.crypto.first(), local_key) {
        (true, Some(c), Some(local)) => Some(SrtpKeys {
            suite: c.suite,
            tag: c.tag,
            inbound: c.key.clone(),
            outbound: local.clone(),
        }),
        _ => None,
    };
    let lines = remote
        .media
        .iter()
        .enumerate()
        .map(|(i, line)| {
            if i == audio_index {
                AnswerLine::Audio
            } else {
                rejected(line)
            }
        })
        .collect();
    Ok(Negotiated {
        codec,
        pt,
        telephone_event_pt: audio.telephone_event_pt,
        remote_rtp: audio.rtp_addr(),
        remote_ptime: audio.ptime,
        // We always want both ways; the remote's hold narrows it.
        direction: audio.effective_direction().reversed(),
        audio_index,
        srtp,
        lines,
    })
}

/// Reads the remote's answer to our offer from `build_offer` (late offer: INVITE without a
/// body, our offer in the 200, their answer in the ACK; or an agent leg). The answer must
/// keep our single audio line (RFC 3264 §6) and pick from what we offered. When we offered
/// SRTP (`srtp`: our crypto line), the answer must be `RTP/SAVP` with a crypto line of our
/// tag and suite (RFC 4568 §7.1.2), whose key protects what the remote sends.
pub fn accept_answer(
    answer: &RemoteSdp,
    offered: &[Codec],
    srtp: Option<&OfferedCrypto>,
) -> Result<Negotiated, SdpError> {
    if answer.media.len() > 1 {
        return Err(SdpError::Malformed {
            expected: "one m= line answering our single audio offer",
            found: format!("{} m= lines", answer.media.len()),
        });
    }
    let Some(ours) = srtp else {
        return negotiate(answer, offered);
    };
    let mismatch = SdpError::SrtpAnswerMismatch {
        tag: ours.tag,
        suite: ours.suite.name(),
    };
    let audio = answer
        .media
        .first()
        .and_then(|m| m.audio.as_ref())
        .ok_or(SdpError::NoAudio)?;
    let theirs = audio
        .crypto
        .iter()
        .find(|c| c.tag == ours.tag && c.suite == ours.suite)
        .filter(|_| audio.secure)
        .ok_or(mismatch)?;
    let mut n = choose(answer, offered, SrtpPolicy::Required, Some(&ours.key))?;
    n.srtp = Some(SrtpKeys {
        suite: ours.suite,
        tag: ours.tag,
        inbound: theirs.key.clone(),
        outbound: ours.key.clone(),
    });
    Ok(n)
}

/// The `a=crypto` line of an SRTP offer of ours: the tag, the suite and our master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferedCrypto {
    pub tag: u32,
    pub suite: SrtpSuite,
    pub key: MasterKey,
}

impl OfferedCrypto {
    /// The one crypto line we offer: tag 1, the 80-bit tag suite RFC 4568 makes the default.
    pub fn new(key: MasterKey) -> OfferedCrypto {
        OfferedCrypto {
            tag: 1,
            suite: SrtpSuite::AesCm128HmacSha1_80,
            key,
        }
    }
}

/// Prints our answer: the chosen codec and telephone-event on the audio line, port 0 for
/// every other line, in the remote's order.
pub fn build_answer(
    local_ip: IpAddr,
    local_port: u16,
    neg: &Negotiated,
    session_id: u64,
    version: u64,
) -> Vec<u8> {
    let mut out = String::with_capacity(320);
    write_session_header(&mut out, local_ip, session_id, version);
    for line in &neg.lines {
        match line {
            AnswerLine::Audio => {
                let codecs = [(neg.pt, neg.codec)];
                let crypto = neg.srtp.as_ref().map(|k| OfferedCrypto {
                    tag: k.tag,
                    suite: k.suite,
                    key: k.outbound.clone(),
                });
                write_audio(
                    &mut out,
                    local_port,
                    &codecs,
                    neg.telephone_event_pt,
                    neg.direction,
                    crypto.as_ref(),
                );
            }
            AnswerLine::Rejected {
                media,
                proto,
                format,
            } => {
                let _ = write!(out, "m={media} 0 {proto} {format}\r\n");
            }
        }
    }
    out.into_bytes()
}

/// Prints our offer (for a call that arrived without one, or a leg we place): PCMU, PCMA
/// and telephone-event 101, sendrecv; `RTP/SAVP` with our crypto line when `srtp` is
/// given, else `RTP/AVP`. For a re-offer pass a higher `version` (see `LocalOrigin`).
pub fn build_offer(
    local_ip: IpAddr,
    local_port: u16,
    session_id: u64,
    version: u64,
    srtp: Option<&OfferedCrypto>,
) -> Vec<u8> {
    let mut out = String::with_capacity(400);
    write_session_header(&mut out, local_ip, session_id, version);
    let codecs = [(0, Codec::Pcmu), (8, Codec::Pcma)];
    write_audio(
        &mut out,
        local_port,
        &codecs,
        Some(OFFER_TELEPHONE_EVENT_PT),
        Direction::SendRecv,
        srtp,
    );
    out.into_bytes()
}

fn write_session_header(out: &mut String, ip: IpAddr, session_id: u64, version: u64) {
    let family = ip_family(ip);
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "v=0\r\no=hotline {session_id} {version} IN {family} {ip}\r\ns=hotline\r\nc=IN {family} {ip}\r\nt=0 0\r\n"
    );
}

fn write_audio(
    out: &mut String,
    port: u16,
    codecs: &[(u8, Codec)],
    te: Option<u8>,
    direction: Direction,
    crypto: Option<&OfferedCrypto>,
) {
    let proto = if crypto.is_some() {
        "RTP/SAVP"
    } else {
        "RTP/AVP"
    };
    let _ = write!(out, "m=audio {port} {proto}");
    for (pt, _) in codecs {
        let _ = write!(out, " {pt}");
    }
    if let Some(te) = te {
        let _ = write!(out, " {te}");
    }
    out.push_str("\r\n");
    for &(pt, codec) in codecs {
        let _ = write!(out, "a=rtpmap:{pt} {}/8000\r\n", codec_name(codec));
    }
    if let Some(te) = te {
        let _ = write!(
            out,
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} {TELEPHONE_EVENTS}\r\n"
        );
    }
    let _ = write!(out, "a=ptime:{PTIME_MS}\r\na={direction}\r\n");
    if let Some(c) = crypto {
        sdes::write_crypto(out, c.tag, c.suite, &c.key);
    }
}

fn ip_family(ip: IpAddr) -> &'static str {
    match ip {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn rejected(line: &MediaLine) -> AnswerLine {
    // Echoed tokens come from the network: keep only plain token characters so nothing the
    // remote wrote can break the lines of our answer.
    let clean = |s: &str, default: &str| {
        if !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.+*".contains(&b))
        {
            s.to_owned()
        } else {
            default.to_owned()
        }
    };
    AnswerLine::Rejected {
        media: clean(&line.media, "audio"),
        proto: clean(&line.proto, "RTP/AVP"),
        format: clean(line.formats.first().map_or("", String::as_str), "0"),
    }
}

fn describe_payloads(out: &mut String, payloads: &[Payload]) {
    for p in payloads {
        if out.len() > 200 {
            out.push_str(" ...");
            return;
        }
        if !out.is_empty() {
            out.push_str(", ");
        }
        let name = if p.encoding.is_empty() {
            "unknown".to_owned()
        } else {
            snippet(&p.encoding)
        };
        let _ = write!(out, "{} {}/{}", p.pt, name, p.clock_rate);
    }
}

/// A short, printable excerpt of remote text for error messages: these may end up in
/// logs or a SIP Warning header, where a stray CR or LF would forge lines.
fn snippet(s: &str) -> String {
    s.chars()
        .take(SNIPPET_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Raw form shared by both readers.

#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct RawSdp {
    /// Always set by both readers; `Option` only while the tolerant one is reading.
    origin: Option<RemoteOrigin>,
    connection: Option<RawConnection>,
    attributes: Vec<RawAttribute>,
    media: Vec<RawMedia>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RawConnection {
    network: String,
    address_type: String,
    address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RawAttribute {
    key: String,
    value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RawMedia {
    media: String,
    port: u16,
    proto: String,
    formats: Vec<String>,
    connection: Option<RawConnection>,
    attributes: Vec<RawAttribute>,
}

/// The `sdp` crate's parser; `None` when it refuses the body.
fn read_strict(body: &[u8]) -> Option<RawSdp> {
    let mut cursor = std::io::Cursor::new(body);
    let sd = ::sdp::SessionDescription::unmarshal(&mut cursor).ok()?;
    let conn = |c: &::sdp::description::common::ConnectionInformation| RawConnection {
        network: c.network_type.clone(),
        address_type: c.address_type.clone(),
        address: c.address.as_ref().map(|a| a.address.clone()),
    };
    let attrs = |list: &[::sdp::description::common::Attribute]| {
        list.iter()
            .map(|a| RawAttribute {
                key: a.key.clone(),
                value: a.value.clone(),
            })
            .collect()
    };
    let mut media = Vec::with_capacity(sd.media_descriptions.len());
    for md in &sd.media_descriptions {
        media.push(RawMedia {
            media: md.media_name.media.clone(),
            port: u16::try_from(md.media_name.port.value).ok()?,
            proto: md.media_name.protos.join("/"),
            formats: md.media_name.formats.clone(),
            connection: md.connection_information.as_ref().map(conn),
            attributes: attrs(&md.attributes),
        });
    }
    Some(RawSdp {
        origin: Some(RemoteOrigin {
            username: sd.origin.username.clone(),
            session_id: sd.origin.session_id.to_string(),
            version: sd.origin.session_version.to_string(),
        }),
        connection: sd.connection_information.as_ref().map(conn),
        attributes: attrs(&sd.attributes),
        media,
    })
}

/// The fallback reader: one `x=value` line at a time, skipping what offer/answer ignores.
fn read_tolerant(body: &[u8]) -> Result<RawSdp, SdpError> {
    let mut raw = RawSdp::default();
    let mut seen_version = false;
    for line in body.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let (kind, value) = match line {
            [kind, b'=', value @ ..] => (*kind, value),
            _ if !seen_version => {
                return Err(SdpError::Malformed {
                    expected: "`v=0` as the first line",
                    found: snippet(&String::from_utf8_lossy(line)),
                });
            }
            // A line that is not `x=...` carries nothing we could use.
            _ => continue,
        };
        if !seen_version {
            if kind != b'v' || value.trim_ascii() != b"0" {
                return Err(SdpError::Malformed {
                    expected: "`v=0` as the first line",
                    found: snippet(&String::from_utf8_lossy(line)),
                });
            }
            seen_version = true;
            continue;
        }
        let text = match std::str::from_utf8(value) {
            Ok(text) => text.trim(),
            Err(_) if kind == b'm' || kind == b'c' => {
                return Err(SdpError::Malformed {
                    expected: "a UTF-8 text line",
                    found: snippet(&String::from_utf8_lossy(line)),
                });
            }
            // Free-text fields may be in another charset (RFC 4566 `a=charset`).
            Err(_) => continue,
        };
        match kind {
            b'o' => {
                raw.origin = Some(read_origin(text).ok_or_else(|| SdpError::Malformed {
                    expected: "`o=<username> <session id> <version> IN <IP4|IP6> <address>`",
                    found: snippet(text),
                })?);
            }
            b'c' => {
                let c = read_connection(text)?;
                match raw.media.last_mut() {
                    Some(m) => m.connection = Some(c),
                    None => raw.connection = Some(c),
                }
            }
            b'm' => {
                if raw.media.len() >= MAX_MEDIA_LINES {
                    return Err(SdpError::TooManyMedia {
                        count: raw.media.len().saturating_add(1),
                        max: MAX_MEDIA_LINES,
                    });
                }
                raw.media.push(read_media(raw.media.len(), text)?);
            }
            b'a' => {
                let (key, value) = match text.split_once(':') {
                    Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                    None => (text.to_owned(), None),
                };
                let attr = RawAttribute { key, value };
                match raw.media.last_mut() {
                    Some(m) => m.attributes.push(attr),
                    None => raw.attributes.push(attr),
                }
            }
            _ => {}
        }
    }
    if !seen_version {
        return Err(SdpError::Malformed {
            expected: "`v=0` as the first line",
            found: "an empty body".to_owned(),
        });
    }
    Ok(raw)
}

fn read_origin(text: &str) -> Option<RemoteOrigin> {
    let mut fields = text.split_whitespace();
    let username = fields.next()?.to_owned();
    let session_id = fields.next()?.to_owned();
    let version = fields.next()?.to_owned();
    Some(RemoteOrigin {
        username,
        session_id,
        version,
    })
}

fn read_connection(text: &str) -> Result<RawConnection, SdpError> {
    let mut fields = text.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(network), Some(address_type)) => Ok(RawConnection {
            network: network.to_owned(),
            address_type: address_type.to_owned(),
            address: fields.next().map(str::to_owned),
        }),
        _ => Err(SdpError::BadAddress {
            found: snippet(text),
        }),
    }
}

fn read_media(index: usize, text: &str) -> Result<RawMedia, SdpError> {
    let malformed = || SdpError::Malformed {
        expected: "`m=<media> <port> <proto> <format>...`",
        found: snippet(text),
    };
    let mut fields = text.split_whitespace();
    let media = fields.next().ok_or_else(malformed)?.to_owned();
    let port_field = fields.next().ok_or_else(malformed)?;
    let proto = fields.next().ok_or_else(malformed)?.to_owned();
    // `port/count` (RFC 4566 §5.14): the count is irrelevant for one unicast stream.
    let port = port_field
        .split('/')
        .next()
        .and_then(|p| p.parse::<u16>().ok())
        .ok_or_else(malformed)?;
    // Bounded before collecting so a hostile line cannot make us build a huge list.
    let formats: Vec<String> = fields
        .by_ref()
        .take(MAX_FORMATS)
        .map(str::to_owned)
        .collect();
    let extra = fields.count();
    if extra > 0 {
        return Err(SdpError::TooManyFormats {
            index,
            count: MAX_FORMATS.saturating_add(extra),
            max: MAX_FORMATS,
        });
    }
    Ok(RawMedia {
        media,
        port,
        proto,
        formats,
        connection: None,
        attributes: Vec::new(),
    })
}

// ---------------------------------------------------------------------------------------
// Typed layer.

fn interpret(raw: RawSdp, lenient: bool) -> Result<RemoteSdp, SdpError> {
    // Every sender writes `o=`; a body without one is not a description gone slightly
    // wrong but something else, and should not be answered.
    let origin = raw.origin.ok_or_else(|| SdpError::Malformed {
        expected: "an `o=` line",
        found: "none".to_owned(),
    })?;
    if raw.media.len() > MAX_MEDIA_LINES {
        return Err(SdpError::TooManyMedia {
            count: raw.media.len(),
            max: MAX_MEDIA_LINES,
        });
    }
    let session_direction = direction_of(&raw.attributes);
    let mut media = Vec::with_capacity(raw.media.len());
    for (index, m) in raw.media.into_iter().enumerate() {
        if m.formats.len() > MAX_FORMATS {
            return Err(SdpError::TooManyFormats {
                index,
                count: m.formats.len(),
                max: MAX_FORMATS,
            });
        }
        let secure = m.proto.eq_ignore_ascii_case("RTP/SAVP");
        let usable = m.media.eq_ignore_ascii_case("audio")
            && (m.proto.eq_ignore_ascii_case("RTP/AVP") || secure)
            && m.port != 0;
        let audio = if usable {
            let connection = m
                .connection
                .as_ref()
                .or(raw.connection.as_ref())
                .ok_or(SdpError::MissingConnection { index })?;
            let addr = connection_address(connection)?;
            Some(audio_offer(index, &m, addr, session_direction, secure)?)
        } else {
            None
        };
        media.push(MediaLine {
            media: m.media,
            port: m.port,
            proto: m.proto,
            formats: m.formats,
            audio,
        });
    }
    Ok(RemoteSdp {
        origin,
        media,
        lenient,
    })
}

fn audio_offer(
    index: usize,
    m: &RawMedia,
    addr: IpAddr,
    session_direction: Option<Direction>,
    secure: bool,
) -> Result<MediaOffer, SdpError> {
    let mut pts = Vec::with_capacity(m.formats.len());
    for f in &m.formats {
        match f.parse::<u8>() {
            Ok(pt) if pt <= 127 => pts.push(pt),
            _ => {
                return Err(SdpError::InvalidPayloadType {
                    index,
                    found: snippet(f),
                });
            }
        }
    }

    // One pass over the attributes; the first mapping of a payload type wins.
    let mut rtpmap: [Option<(String, u32, u8)>; 128] = std::array::from_fn(|_| None);
    let mut fmtp: [Option<&str>; 128] = [None; 128];
    let mut ptime = None;
    let mut crypto = Vec::new();
    for a in &m.attributes {
        let Some(value) = a.value.as_deref() else {
            continue;
        };
        if a.key.eq_ignore_ascii_case("rtpmap") {
            if let Some((pt, name, rate, channels)) = parse_rtpmap(value)
                && let Some(slot) = rtpmap.get_mut(usize::from(pt))
                && slot.is_none()
            {
                *slot = Some((name.to_owned(), rate, channels));
            }
        } else if a.key.eq_ignore_ascii_case("fmtp") {
            if let Some((pt, params)) = value.trim().split_once(' ')
                && let Ok(pt) = pt.parse::<u8>()
                && let Some(slot) = fmtp.get_mut(usize::from(pt))
                && slot.is_none()
            {
                *slot = Some(params.trim());
            }
        } else if a.key.eq_ignore_ascii_case("crypto") {
            // Bounded like the formats: a line cannot make us keep many keys.
            if secure
                && crypto.len() < MAX_CRYPTO_LINES
                && let Ok(c) = sdes::parse_crypto(value)
                && !crypto.iter().any(|o: &Crypto| o.tag == c.tag)
            {
                crypto.push(c);
            }
        } else if a.key.eq_ignore_ascii_case("ptime") && ptime.is_none() {
            ptime = value
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|p| PTIME_RANGE.contains(p));
        }
    }

    let mut payloads = Vec::with_capacity(pts.len());
    let mut codecs = Vec::new();
    let mut telephone_event_pt = None;
    for &pt in &pts {
        let payload = match rtpmap.get(usize::from(pt)).and_then(Option::as_ref) {
            Some((name, rate, channels)) => Payload {
                pt,
                encoding: name.clone(),
                clock_rate: *rate,
                channels: *channels,
            },
            None => match static_payload(pt) {
                Some(s) => Payload {
                    pt,
                    encoding: s.name.to_owned(),
                    clock_rate: s.clock_rate,
                    channels: s.channels,
                },
                None => Payload {
                    pt,
                    encoding: String::new(),
                    clock_rate: 0,
                    channels: 0,
                },
            },
        };
        if let Some(codec) = payload.codec() {
            if !codecs.iter().any(|&(_, c)| c == codec) {
                codecs.push((pt, codec));
            }
        } else if telephone_event_pt.is_none() && payload.is("telephone-event", 8000) {
            telephone_event_pt = Some(pt);
        }
        payloads.push(payload);
    }
    let telephone_event_fmtp = telephone_event_pt
        .and_then(|pt| fmtp.get(usize::from(pt)).copied().flatten())
        .map(snippet);

    Ok(MediaOffer {
        addr,
        port: m.port,
        codecs,
        payloads,
        telephone_event_pt,
        telephone_event_fmtp,
        ptime,
        direction: direction_of(&m.attributes)
            .or(session_direction)
            .unwrap_or_default(),
        secure,
        crypto,
    })
}

/// `<pt> <name>/<rate>[/<channels>]`; malformed maps are ignored (the static table, if any,
/// then applies).
fn parse_rtpmap(value: &str) -> Option<(u8, &str, u32, u8)> {
    let (pt, encoding) = value.trim().split_once(' ')?;
    let pt = pt.parse::<u8>().ok().filter(|&pt| pt <= 127)?;
    let mut parts = encoding.trim().split('/');
    let name = parts.next()?;
    let rate = parts.next()?.parse::<u32>().ok()?;
    let channels = match parts.next() {
        Some(c) => c.parse::<u8>().ok()?,
        None => 1,
    };
    Some((pt, name, rate, channels))
}

fn direction_of(attributes: &[RawAttribute]) -> Option<Direction> {
    attributes
        .iter()
        .filter(|a| a.value.is_none())
        .find_map(|a| Direction::from_attribute(&a.key))
}

fn connection_address(c: &RawConnection) -> Result<IpAddr, SdpError> {
    let found = || {
        snippet(&format!(
            "{} {} {}",
            c.network,
            c.address_type,
            c.address.as_deref().unwrap_or("")
        ))
    };
    if !c.network.eq_ignore_ascii_case("IN") {
        return Err(SdpError::BadAddress { found: found() });
    }
    let Some(address) = c.address.as_deref() else {
        return Err(SdpError::BadAddress { found: found() });
    };
    // Multicast addresses carry `/ttl[/count]`; the base address decides.
    let base = address.split('/').next().unwrap_or(address);
    let ip = if c.address_type.eq_ignore_ascii_case("IP4") {
        base.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
    } else if c.address_type.eq_ignore_ascii_case("IP6") {
        base.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
    } else {
        return Err(SdpError::BadAddress { found: found() });
    };
    match ip {
        Some(ip) if ip.is_multicast() => Err(SdpError::UnsupportedAddress { found: found() }),
        Some(ip) => Ok(ip),
        None if looks_like_host_name(base) => Err(SdpError::UnsupportedAddress { found: found() }),
        None => Err(SdpError::BadAddress { found: found() }),
    }
}

fn looks_like_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes().any(|b| b.is_ascii_alphabetic())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_table_names() {
        let names: Vec<_> = [0u8, 3, 4, 8, 9, 18]
            .iter()
            .map(|&pt| static_payload(pt).map(|s| s.name))
            .collect();
        assert_eq!(
            names,
            [
                Some("PCMU"),
                Some("GSM"),
                Some("G723"),
                Some("PCMA"),
                Some("G722"),
                Some("G729")
            ]
        );
        assert_eq!(static_payload(96), None);
        assert_eq!(static_payload(9).map(|s| s.clock_rate), Some(8000));
    }

    #[test]
    fn direction_reversal() {
        assert_eq!(Direction::SendOnly.reversed(), Direction::RecvOnly);
        assert_eq!(Direction::RecvOnly.reversed(), Direction::SendOnly);
        assert_eq!(Direction::SendRecv.reversed(), Direction::SendRecv);
        assert_eq!(Direction::Inactive.reversed(), Direction::Inactive);
    }

    #[test]
    fn rtpmap_parsing() {
        assert_eq!(
            parse_rtpmap("101 telephone-event/8000"),
            Some((101, "telephone-event", 8000, 1))
        );
        assert_eq!(parse_rtpmap("10 L16/44100/2"), Some((10, "L16", 44100, 2)));
        assert_eq!(parse_rtpmap("300 PCMU/8000"), None);
        assert_eq!(parse_rtpmap("0 PCMU"), None);
        assert_eq!(parse_rtpmap("0 PCMU/99999999999"), None);
    }

    const STRICT_OK: &[&str] = &[
        "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
        "v=0\no=- 1 2 IN IP6 2001:db8::1\ns=-\nt=0 0\nm=audio 4000 RTP/AVP 8\nc=IN IP6 2001:db8::1\na=sendonly\nm=image 0 udptl t38\n",
        "v=0\r\no=u 9 9 IN IP4 0.0.0.0\r\ns=x\r\nc=IN IP4 0.0.0.0\r\nb=AS:64\r\nt=0 0\r\na=recvonly\r\nm=audio 1 RTP/AVP 0 96\r\nb=AS:80\r\na=rtpmap:96 opus/48000/2\r\na=rtcp:4001 IN IP4 1.2.3.4\r\nm=video 0 RTP/AVP 31\r\n",
    ];

    /// Both readers must agree wherever the strict one accepts, so the fallback changes
    /// nothing for well-formed bodies.
    #[test]
    fn readers_agree_on_well_formed_bodies() {
        for body in STRICT_OK {
            let strict = read_strict(body.as_bytes()).expect("strict reader accepts");
            let tolerant = read_tolerant(body.as_bytes()).expect("tolerant reader accepts");
            assert_eq!(strict, tolerant, "{body}");
        }
    }

    /// The edge cases of a public number's offers, each read by both readers (CRLF for
    /// the strict one, bare LF and an unknown line for the tolerant one): an answer or a
    /// refusal with its status, never a panic.
    #[test]
    fn edge_offers_get_an_answer_or_their_status_from_both_readers() {
        let v4 = "c=IN IP4 192.0.2.1";
        let many: String = (0..129).map(|i| format!(" {}", i % 128)).collect();
        let all: String = (0..128).map(|i| format!(" {i}")).collect();
        let cases: Vec<(String, Result<u8, u16>)> = vec![
            (format!("{v4}\nm=audio 4000 RTP/AVP 0"), Ok(0)),
            (format!("{v4}\nm=audio 4000 RTP/AVP 128"), Err(400)),
            (format!("{v4}\nm=audio 4000 RTP/AVP 255 0"), Err(400)),
            (format!("{v4}\nm=audio 0 RTP/AVP 0"), Err(488)),
            (format!("{v4}\nm=audio 65536 RTP/AVP 0"), Err(400)),
            (format!("{v4}\nm=audio 4000 RTP/AVP 8\na=ptime:0"), Ok(8)),
            (
                format!("{v4}\nm=audio 4000 RTP/AVP 8\na=ptime:65535"),
                Ok(8),
            ),
            (format!("{v4}\nm=video 4000 RTP/AVP 31"), Err(488)),
            (v4.to_string(), Err(488)),
            (format!("{v4}\nm=audio 4000 RTP/AVP{many}"), Err(400)),
            (format!("{v4}\nm=audio 4000 RTP/AVP{all}"), Ok(0)),
            (
                "c=IN IP6 2001:db8::7\nm=audio 4000 RTP/AVP 8".to_string(),
                Ok(8),
            ),
            (format!("{v4}\nm=audio 4000 RTP/AVP 0\0"), Err(400)),
        ];
        for (media, want) in cases {
            let head = "v=0\no=- 1 1 IN IP4 192.0.2.1\ns=-\nt=0 0\n";
            let strict = format!("{head}{media}\n").replace('\n', "\r\n");
            let tolerant = format!("{head}y=unknown\n{media}\n");
            for body in [strict, tolerant] {
                let got = parse_offer(body.as_bytes())
                    .and_then(|r| negotiate(&r, &[Codec::Pcmu, Codec::Pcma]))
                    .map(|n| n.pt)
                    .map_err(|e| e.status_code());
                assert_eq!(got, want, "{body:?}");
                if let Ok(r) = parse_offer(body.as_bytes())
                    && let Some(ip6) = r.media.first().and_then(|m| m.audio.as_ref())
                    && ip6.addr.is_ipv6()
                {
                    let n = negotiate(&r, &[Codec::Pcma]).expect("answered");
                    let answer = String::from_utf8(build_answer(
                        "2001:db8::1".parse().expect("address"),
                        20000,
                        &n,
                        1,
                        1,
                    ))
                    .expect("text");
                    assert!(answer.contains("c=IN IP6 2001:db8::1"), "{answer}");
                }
            }
        }
    }
}
