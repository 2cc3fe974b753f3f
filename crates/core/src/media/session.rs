//! One call's media as a pure state machine: what plays, what is heard. The media clock
//! feeds it the packets that arrived (`handle_packet`), marks each 20 ms tick (`tick`), takes
//! the one packet a tick owes (`poll_transmit`, into the clock's buffer, with its
//! destination) and the events for the call (`poll_event`). It owns no socket, no channel,
//! no timer and reads no clock: time comes in as `now`, so tests drive it with a fake clock.
//! Prompt frames are shared, pre-encoded slices; nothing here decodes a prompt or allocates
//! per packet.
//!
//! It also guards the call's media against the network: no audio leaves before the caller
//! has proven its address (the ACK arrived, or RTP came from an admissible source), so a
//! spoofed INVITE cannot aim the engine's audio at a third party; only the SDP address or,
//! for a caller behind NAT, the signalling source's IP is ever learned as the caller's
//! media address (see [`MediaOrigin`]); and keys are bounded per second, decoded audio per
//! packet, so a flood of events or giant packets costs bounded work.
//!
//! A leg whose offer/answer agreed SRTP (`SessionParams::srtp`) has its own SRTP context
//! (`media::srtp`): each datagram is authenticated and decrypted before it is read as RTP
//! (one that fails is counted and dropped, never decoded, and never teaches the latch an
//! address), and each packet out is protected in the clock's buffer. Bridging works on
//! decoded audio, so an SRTP leg bridges to a plain one like any other.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::media::bridge::BridgeBuffers;
use crate::media::dtmf::{InbandDetector, Key, Rfc4733Receiver};
use crate::media::g711::{Codec, FRAME_SAMPLES};
use crate::media::prompt::Prompt;
use crate::media::recorder::{Recorder, Recording, StopReason};
use crate::media::rtp::{
    LatchConfig, LatchVerdict, RtpReceiver, RtpSender, SymmetricLatch, TelephoneEvent,
    canonical_ip, parse_rtp,
};
use crate::media::srtp::{SrtpError, SrtpKeys, SrtpReceiver, SrtpSender};

/// Where a key came from; kept in the call's story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Rfc4733,
    Inband,
    SipInfo,
}

/// What the media side tells the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A key, reported at its first packet. `stopped_play` is set when the key barged in on
    /// a prompt and the session already stopped it in this same tick.
    Key {
        key: Key,
        source: KeySource,
        stopped_play: Option<u64>,
    },
    /// The last frame of play `id` has been sent.
    PlayFinished { id: u64 },
    /// Nothing arrived from the caller for the configured time.
    NoMedia,
    /// A recording ended (by its limits, the terminator key, or `StopRecording`).
    Recorded(Recording),
}

/// What a call asks of its session.
#[derive(Debug)]
pub enum SessionCommand {
    Play {
        id: u64,
        prompts: Vec<Prompt>,
        barge_in: bool,
    },
    /// Stops play `id` if it is still the one playing.
    Stop { id: u64 },
    /// A key to send to the far end as RFC 4733 events.
    SendKey(Key),
    /// Starts recording what the caller says.
    Record {
        id: u64,
        max_duration: Duration,
        silence_timeout: Option<Duration>,
        terminator: Option<Key>,
    },
    /// Ends recording `id` now; the session answers with `MediaEvent::Recorded`.
    StopRecording { id: u64 },
    /// The caller's ACK arrived: the signalling source has proven it receives what is
    /// sent to it, so media may flow (see [`MediaOrigin`]).
    Confirmed,
    /// A re-INVITE moved the far end, or put it on hold (`send == false`).
    Update {
        remote: SocketAddr,
        send: bool,
        /// The far end moved: learn its address again.
        reset_latch: bool,
    },
}

/// Who set the call up, which decides when media may be sent and from where it may come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaOrigin {
    /// A call the engine placed (a leg to an agent, a transfer target, a callback): the
    /// answer came to a request of ours, so the address is taken as given and audio flows
    /// at once; the latch learns as for a trusted source.
    Placed,
    /// A call from a trusted source (`limits.trusted`: a trunk, a proxy in front): audio
    /// waits for the proof (ACK or RTP), then goes to the SDP address or to whatever
    /// source the latch learns in its window (a proxy's callers send from addresses the
    /// signalling never showed).
    Trusted,
    /// A call from anywhere else, whose signalling came from `signalling`. Audio waits for
    /// the proof; it goes to the SDP address only when that is the signalling source's IP,
    /// otherwise to the address the caller's RTP came from. Only the SDP address and the
    /// signalling IP (with the negotiated payload types) may be learned.
    Untrusted { signalling: IpAddr },
}

/// Why a datagram on the call's port was thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpRejection {
    /// Not an RTP packet we can read (too short, wrong version, bad padding, RTCP).
    Malformed,
    /// From an address that is not the caller's media address.
    Foreign,
    /// An SRTP leg's packet whose authentication tag did not match (forged, damaged, or
    /// sent with another key).
    SrtpAuth,
    /// An SRTP leg's packet seen before, or older than the replay window.
    SrtpReplay,
}

impl RtpRejection {
    pub fn as_str(self) -> &'static str {
        match self {
            RtpRejection::Malformed => "malformed",
            RtpRejection::Foreign => "foreign",
            RtpRejection::SrtpAuth => "srtp_auth",
            RtpRejection::SrtpReplay => "srtp_replay",
        }
    }
}

/// The negotiated parameters the session needs from SDP.
#[derive(Debug, Clone)]
pub struct SessionParams {
    pub codec: Codec,
    pub payload_type: u8,
    pub telephone_event_pt: Option<u8>,
    pub remote: SocketAddr,
    pub no_media_timeout: Duration,
    pub ssrc: u32,
    pub initial_seq: u16,
    pub initial_timestamp: u32,
    pub origin: MediaOrigin,
    /// The SRTP keys when the leg's media is SRTP; `None` for plain RTP.
    pub srtp: Option<SrtpKeys>,
}

/// Largest SRTP datagram read: the clock's receive buffers are no larger.
pub const MAX_SRTP_PACKET: usize = 2048;

/// One SRTP leg's contexts and the buffer a datagram is decrypted in (the clock's own
/// buffer is shared by every session, and may be the kernel's).
struct SrtpLeg {
    tx: SrtpSender,
    rx: SrtpReceiver,
    scratch: [u8; MAX_SRTP_PACKET],
}

struct Playing {
    id: u64,
    prompts: VecDeque<Prompt>,
    frame: usize,
    barge_in: bool,
}

impl Playing {
    /// Drops the prompts already played through, so the front one has `frame` left.
    fn drop_played(&mut self) {
        while let Some(prompt) = self.prompts.front() {
            if self.frame < prompt.frame_count() {
                break;
            }
            self.prompts.pop_front();
            self.frame = 0;
        }
    }

    /// Whether the frame just taken was the last of the last prompt.
    fn is_over(&self) -> bool {
        self.prompts.len() <= 1
            && self
                .prompts
                .front()
                .is_none_or(|pr| self.frame >= pr.frame_count())
    }
}

/// Counters a session keeps for the call record and for load measurement.
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub foreign_dropped: u64,
    pub malformed: u64,
    pub keys: u64,
    /// Keys over the per-second bound, not reported to the call.
    pub keys_dropped: u64,
    /// SRTP packets whose authentication failed (dropped unread).
    pub srtp_auth_failed: u64,
    /// SRTP packets replayed or older than the replay window (dropped unread).
    pub srtp_replayed: u64,
    /// The source and reason of the last datagram thrown away, for the log.
    pub last_rejected: Option<(SocketAddr, RtpRejection)>,
}

/// One packet the session wants sent: the first `len` bytes of the buffer given to
/// [`Session::poll_transmit`], to `destination`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub len: usize,
}

pub struct Session {
    params: SessionParams,
    sender: RtpSender,
    latch: SymmetricLatch,
    receiver: RtpReceiver,
    rfc4733: Rfc4733Receiver,
    last_ssrc: Option<u32>,
    inband: InbandDetector,
    playing: Option<Playing>,
    sending: bool,
    last_rx: Instant,
    no_media_reported: bool,
    events: VecDeque<MediaEvent>,
    pub stats: SessionStats,
    /// A key being sent as RFC 4733: the key and how many packets of it went out.
    sending_key: Option<(Key, u16)>,
    recorder: Option<Recorder>,
    /// A key was heard since the last tick.
    key_this_tick: bool,
    /// The current tick's frame has not been taken yet.
    frame_due: bool,
    /// The current tick's frame waits until then for the call's answer to a key.
    hold_until: Option<Instant>,
    /// Set while this session is bridged to another (see `media::bridge`).
    bridge: Option<Box<BridgeBuffers>>,
    /// The caller proved its address: audio may be sent.
    proven: bool,
    /// Samples heard but not yet a whole 20 ms frame (callers with 10 or 30 ms packets).
    partial: [i16; FRAME_SAMPLES],
    partial_len: usize,
    /// Time minus audio heard, in samples, for the recorder: a recording hears silence
    /// only when the caller is behind by more than a packet (loss, silence suppression),
    /// not between the packets of a caller whose packets are longer than a tick.
    behind: i64,
    /// The largest packet heard, in samples: how far behind a caller may fall normally.
    packet_samples: usize,
    /// Keys that may still be reported now (a token bucket) and when it was last filled.
    key_tokens: u32,
    key_refill: Instant,
    /// Set on an SRTP leg.
    srtp: Option<Box<SrtpLeg>>,
}

/// A key we send lasts this many frames (100 ms), then three end packets follow.
const KEY_FRAMES: u16 = 5;

/// The most audio one packet may carry (120 ms, the longest `maxptime` G.711 phones use);
/// the rest of a giant packet is ignored, so a packet costs bounded work.
pub const MAX_PACKET_SAMPLES: usize = 960;

/// Keys reported per call: a burst of `KEY_BURST`, then one per `KEY_INTERVAL`. Human
/// and auto-dialled DTMF is at most about 10 keys a second (ITU-T Q.24: 40 ms tone, 40 ms
/// pause); more is a storm, and each key costs the flow a step.
pub const KEY_BURST: u32 = 20;
pub const KEY_INTERVAL: Duration = Duration::from_millis(100);

/// How long the frame of a tick that heard a key waits for the call's answer (usually the
/// next prompt). The answer then starts in this tick instead of the next, and the session
/// still sends exactly one frame per tick; the held frame is only late, never doubled.
pub const ANSWER_WAIT: Duration = Duration::from_millis(10);

impl Session {
    pub fn new(params: SessionParams, now: Instant) -> Self {
        let sender = RtpSender::new(
            params.ssrc,
            params.initial_seq,
            params.initial_timestamp,
            params.payload_type,
        );
        let mut latch = SymmetricLatch::new(params.remote, now, LatchConfig::default());
        if let MediaOrigin::Untrusted { signalling } = params.origin {
            latch = latch.with_signalling(signalling);
        }
        Session {
            sender,
            latch,
            receiver: RtpReceiver::new(now, 8000, Some(params.payload_type)),
            rfc4733: Rfc4733Receiver::new(),
            last_ssrc: None,
            inband: InbandDetector::new(),
            playing: None,
            sending: true,
            last_rx: now,
            no_media_reported: false,
            events: VecDeque::new(),
            stats: SessionStats::default(),
            sending_key: None,
            recorder: None,
            key_this_tick: false,
            frame_due: false,
            hold_until: None,
            bridge: None,
            proven: params.origin == MediaOrigin::Placed,
            partial: [0; FRAME_SAMPLES],
            partial_len: 0,
            behind: 0,
            packet_samples: FRAME_SAMPLES,
            key_tokens: KEY_BURST,
            key_refill: now,
            srtp: params.srtp.as_ref().map(|k| {
                Box::new(SrtpLeg {
                    tx: SrtpSender::new(&k.outbound, k.suite),
                    rx: SrtpReceiver::new(&k.inbound, k.suite),
                    scratch: [0; MAX_SRTP_PACKET],
                })
            }),
            params,
        }
    }

    pub fn command(&mut self, cmd: SessionCommand, now: Instant) {
        // Anything but a Stop is the call's answer: a frame held for it may go now.
        if !matches!(cmd, SessionCommand::Stop { .. }) {
            self.hold_until = None;
        }
        match cmd {
            SessionCommand::Play {
                id,
                prompts,
                barge_in,
            } => {
                self.playing = Some(Playing {
                    id,
                    prompts: prompts.into(),
                    frame: 0,
                    barge_in,
                });
            }
            SessionCommand::Stop { id } => {
                if self.playing.as_ref().is_some_and(|p| p.id == id) {
                    self.playing = None;
                }
            }
            SessionCommand::SendKey(key) => self.sending_key = Some((key, 0)),
            SessionCommand::Record {
                id,
                max_duration,
                silence_timeout,
                terminator,
            } => {
                self.recorder = Some(Recorder::new(id, max_duration, silence_timeout, terminator));
            }
            SessionCommand::StopRecording { id } => {
                if self.recorder.as_ref().is_some_and(|r| r.id() == id) {
                    self.finish_recording(StopReason::Stopped);
                }
            }
            SessionCommand::Confirmed => self.proven = true,
            SessionCommand::Update {
                remote,
                send,
                reset_latch,
            } => {
                if reset_latch {
                    self.latch.reset(remote, now);
                }
                self.sending = send;
                // A held caller sends nothing; that silence is not a dead call.
                self.last_rx = now;
            }
        }
    }

    /// One datagram that arrived from `from`. Malformed, foreign, forged or replayed input
    /// is counted and dropped; nothing here panics on what the network sends.
    pub fn handle_packet(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let Some(mut leg) = self.srtp.take() else {
            return self.handle_rtp(now, from, data);
        };
        // RTCP (SRTCP here; packet types 192-223 where RTP has marker and payload type) is
        // not read, as on a plain leg; it is not a failed authentication either. Nothing
        // on an SRTP leg is ever read without passing authentication.
        let rtcp = data.get(1).is_some_and(|b| (192..=223).contains(b));
        match leg.scratch.get_mut(..data.len()) {
            Some(plain) if !rtcp => {
                plain.copy_from_slice(data);
                match leg.rx.unprotect(plain) {
                    Ok(n) => {
                        let plain = leg.scratch.get(..n).unwrap_or_default();
                        self.handle_rtp(now, from, plain);
                    }
                    Err(e) => self.srtp_refused(from, e),
                }
            }
            _ => {
                self.stats.malformed += 1;
                self.stats.last_rejected = Some((from, RtpRejection::Malformed));
            }
        }
        self.srtp = Some(leg);
    }

    fn srtp_refused(&mut self, from: SocketAddr, e: SrtpError) {
        let reason = match e {
            SrtpError::AuthFailed => {
                self.stats.srtp_auth_failed += 1;
                RtpRejection::SrtpAuth
            }
            SrtpError::Replayed => {
                self.stats.srtp_replayed += 1;
                RtpRejection::SrtpReplay
            }
            SrtpError::TooShort { .. } | SrtpError::BadHeader { .. } | SrtpError::NoRoom { .. } => {
                self.stats.malformed += 1;
                RtpRejection::Malformed
            }
        };
        self.stats.last_rejected = Some((from, reason));
    }

    /// One plain RTP packet (decrypted first on an SRTP leg).
    fn handle_rtp(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let pkt = match parse_rtp(data) {
            Ok(p) => p,
            Err(e) => {
                self.receiver.on_error(&e);
                self.stats.malformed += 1;
                self.stats.last_rejected = Some((from, RtpRejection::Malformed));
                return;
            }
        };
        let expected_pt =
            pkt.pt == self.params.payload_type || Some(pkt.pt) == self.params.telephone_event_pt;
        // A source other than the SDP address is learned only from media of the negotiated
        // types: a stray datagram that happens to parse as RTP is not a caller.
        let learning = !self.latch.is_locked() && from != self.latch.sdp_addr();
        if (learning && !expected_pt)
            || self.latch.handle_packet(from, pkt.ssrc, now) == LatchVerdict::DropForeign
        {
            self.stats.foreign_dropped += 1;
            self.stats.last_rejected = Some((from, RtpRejection::Foreign));
            return;
        }
        // RTP from an admissible source proves the caller is there.
        self.proven = true;
        if self.last_ssrc != Some(pkt.ssrc) {
            // A new source restarts event numbering; old timestamps mean nothing now.
            self.last_ssrc = Some(pkt.ssrc);
            self.rfc4733.reset();
        }
        self.stats.packets_in += 1;
        self.last_rx = now;
        if !self.receiver.on_packet(&pkt, now).is_fresh() {
            return;
        }
        let key = if Some(pkt.pt) == self.params.telephone_event_pt {
            self.rfc4733
                .handle(now, pkt.timestamp, pkt.marker, pkt.payload)
                .map(|k| (k, KeySource::Rfc4733))
        } else if pkt.pt == self.params.payload_type {
            let payload = pkt.payload.get(..MAX_PACKET_SAMPLES).unwrap_or(pkt.payload);
            self.packet_samples = self.packet_samples.max(payload.len());
            self.hear_payload(payload)
        } else {
            None
        };
        if let Some((key, source)) = key {
            if source == KeySource::Rfc4733
                && let Some(b) = self.bridge.as_mut()
            {
                b.heard_key = Some(key);
            }
            self.key_heard(now, key, source);
        }
    }

    /// Decodes a packet's audio (one code word a sample) straight into 20 ms frames for
    /// the bridge, the recorder and the in-band detector, whatever the caller's packet
    /// time: a 10 ms packet waits for the next, a 30 ms one leaves half a frame for the
    /// next. Returns an in-band key. No buffer of a whole packet is kept per session.
    fn hear_payload(&mut self, payload: &[u8]) -> Option<(Key, KeySource)> {
        let n = payload.len();
        let mut key = None;
        let mut at = 0;
        while at < n {
            let take = (FRAME_SAMPLES - self.partial_len).min(n - at);
            let (Some(dst), Some(src)) = (
                self.partial
                    .get_mut(self.partial_len..self.partial_len + take),
                payload.get(at..at + take),
            ) else {
                break;
            };
            self.params.codec.decode_into(src, dst);
            self.partial_len += take;
            at += take;
            if self.partial_len == FRAME_SAMPLES {
                self.partial_len = 0;
                let frame = self.partial;
                if let Some(k) = self.hear_frame(&frame) {
                    key = Some(k);
                }
            }
        }
        key
    }

    /// One whole 20 ms frame of what the caller said.
    fn hear_frame(&mut self, frame: &[i16; FRAME_SAMPLES]) -> Option<(Key, KeySource)> {
        if let Some(b) = self.bridge.as_mut() {
            b.heard.push(frame);
        }
        if let Some(r) = self.recorder.as_mut() {
            // Ahead of the clock by at most a packet: a burst after jitter is not a credit
            // that would hide a later gap.
            self.behind = (self.behind - FRAME_SAMPLES as i64).max(-(self.packet_samples as i64));
            if let Some(reason) = r.push(frame) {
                self.finish_recording(reason);
            }
        }
        self.inband
            .push_frame(frame)
            .map(|k| (k, KeySource::Inband))
    }

    /// Marks a 20 ms tick, after the packets that arrived before it were handled: a
    /// recording hears silence if nothing came, liveness is checked, and one frame becomes
    /// due (taken by `poll_transmit`). A frame of the last tick still not taken is dropped,
    /// so a late caller never makes the session burst.
    pub fn tick(&mut self, now: Instant) {
        if self.recorder.is_some() {
            self.behind += FRAME_SAMPLES as i64;
            // Nothing arrived for longer than a packet (silence suppression, loss): the
            // message still takes time, so it hears silence.
            let slack = (self.packet_samples + FRAME_SAMPLES) as i64;
            while self.behind > slack
                && let Some(r) = self.recorder.as_mut()
            {
                self.behind -= FRAME_SAMPLES as i64;
                if let Some(reason) = r.push(&[0; FRAME_SAMPLES]) {
                    self.finish_recording(reason);
                }
            }
        }
        self.check_liveness(now);
        if self.frame_due {
            self.sender.skip(FRAME_SAMPLES as u32);
        }
        self.frame_due = true;
        self.hold_until = self
            .key_this_tick
            .then(|| now.checked_add(ANSWER_WAIT))
            .flatten();
        self.key_this_tick = false;
    }

    /// The packet this tick owes, written into `buf`, or `None` when there is none yet
    /// (already taken, held for the call's answer to a key until `poll_timeout`, on hold, or
    /// no address to send to). A held caller's frame is skipped in the RTP clock, so the
    /// timestamps stay true when sending resumes.
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmit> {
        if !self.frame_due || self.hold_until.is_some_and(|t| now < t) {
            return None;
        }
        self.frame_due = false;
        self.hold_until = None;
        let Some(remote) = self.destination().filter(|_| self.sending) else {
            self.sender.skip(FRAME_SAMPLES as u32);
            if self.proven && !self.sending {
                // On hold the prompt still runs by the clock: a menu's timeout starts when
                // it would have ended, so a held or silent caller cannot stall the flow.
                self.advance_unsent();
            }
            // Before the caller has proven its address (or while there is nowhere to send
            // yet) what plays waits, so the caller hears the greeting from its start.
            return None;
        };
        let len = self.next_frame(buf)?;
        if remote.ip().is_unspecified() || remote.port() == 0 {
            return None;
        }
        let len = match self.srtp.as_mut() {
            // The clock's buffer has room for the tag; if not, the frame is lost.
            Some(leg) => leg.tx.protect(buf, len).ok()?,
            None => len,
        };
        self.stats.packets_out += 1;
        Some(Transmit {
            destination: remote,
            len,
        })
    }

    /// Where audio may go now, if anywhere: nothing before the caller proved its address;
    /// then what the latch learned or, when nothing was learned, the SDP address if the
    /// origin vouches for it.
    pub fn destination(&self) -> Option<SocketAddr> {
        if !self.proven {
            return None;
        }
        match self.params.origin {
            MediaOrigin::Placed | MediaOrigin::Trusted => Some(self.latch.remote()),
            MediaOrigin::Untrusted { signalling } => self.latch.learned().or_else(|| {
                let sdp = self.latch.sdp_addr();
                (canonical_ip(sdp.ip()) == canonical_ip(signalling)).then_some(sdp)
            }),
        }
    }

    /// When a held frame must go even if the call has not answered.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.hold_until.filter(|_| self.frame_due)
    }

    /// The next event for the call.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Starts or stops relaying audio to and from a bridged peer.
    pub fn set_bridged(&mut self, on: bool) {
        self.bridge = on.then(Box::default);
    }

    pub fn bridge_buffers(&mut self) -> Option<&mut BridgeBuffers> {
        self.bridge.as_deref_mut()
    }

    /// Sends `key` to the far end as RFC 4733 events.
    pub fn send_key(&mut self, key: Key) {
        self.sending_key = Some((key, 0));
    }

    /// Barge-in happens here, in the tick that heard the key, so the caller hears the
    /// prompt stop within one frame rather than after a round trip through the call.
    fn key_heard(&mut self, now: Instant, key: Key, source: KeySource) {
        if !self.take_key_token(now) {
            self.stats.keys_dropped += 1;
            return;
        }
        self.stats.keys += 1;
        self.key_this_tick = true;
        if let Some(reason) = self.recorder.as_ref().and_then(|r| r.key(key)) {
            self.finish_recording(reason);
        }
        let stopped_play = match &self.playing {
            Some(p) if p.barge_in => {
                let id = p.id;
                self.playing = None;
                Some(id)
            }
            _ => None,
        };
        self.events.push_back(MediaEvent::Key {
            key,
            source,
            stopped_play,
        });
    }

    /// Whether one more key may be reported now (see [`KEY_BURST`]).
    fn take_key_token(&mut self, now: Instant) -> bool {
        let since = now.saturating_duration_since(self.key_refill);
        let earned = (since.as_nanos() / KEY_INTERVAL.as_nanos()).min(u128::from(KEY_BURST)) as u32;
        if earned > 0 {
            self.key_tokens = (self.key_tokens + earned).min(KEY_BURST);
            self.key_refill = if self.key_tokens == KEY_BURST {
                now
            } else {
                self.key_refill + KEY_INTERVAL * earned
            };
        }
        if self.key_tokens == 0 {
            return false;
        }
        self.key_tokens -= 1;
        true
    }

    fn finish_recording(&mut self, reason: StopReason) {
        if let Some(r) = self.recorder.take() {
            self.events
                .push_back(MediaEvent::Recorded(r.finish(reason)));
        }
    }

    fn check_liveness(&mut self, now: Instant) {
        // A far end that talked and then put the call on hold is silent by right; its call
        // stays bounded by the call's maximum length. One that never sent a packet is not
        // on hold but absent, whatever its SDP's direction says (an INVITE offering
        // `a=inactive` must not hold a call slot forever).
        if self.no_media_reported || (!self.sending && self.stats.packets_in > 0) {
            return;
        }
        if now.saturating_duration_since(self.last_rx) >= self.params.no_media_timeout {
            self.no_media_reported = true;
            self.events.push_back(MediaEvent::NoMedia);
        }
    }

    /// This tick's frame is not sent (on hold): the prompt moves on by one frame as if it
    /// had been, and reports its end on time; a key to send and bridged audio are dropped.
    fn advance_unsent(&mut self) {
        self.sending_key = None;
        if let Some(b) = self.bridge.as_mut() {
            let _ = b.next_frame();
        }
        let Some(p) = self.playing.as_mut() else {
            return;
        };
        p.drop_played();
        if p.prompts.front().is_some() {
            p.frame += 1;
        }
        if p.is_over() {
            let id = p.id;
            self.playing = None;
            self.events.push_back(MediaEvent::PlayFinished { id });
        }
    }

    /// Builds this tick's packet: a key being sent, else the prompt, else bridged audio,
    /// else silence. Returns its length.
    fn next_frame(&mut self, buf: &mut [u8]) -> Option<usize> {
        if let Some((key, sent)) = self.sending_key {
            if let Some(te) = self.params.telephone_event_pt {
                return self.key_packet(te, key, sent, buf);
            }
            self.sending_key = None;
        }
        let codec = self.params.codec;
        let silence = silence_frame(codec);
        let mut finished = None;
        let mut relayed = [0u8; FRAME_SAMPLES];
        let mut frame: &[u8; FRAME_SAMPLES] = &silence;
        if self.playing.is_none()
            && let Some(pcm) = self.bridge.as_mut().and_then(|b| b.next_frame())
        {
            codec.encode_into(pcm, &mut relayed);
            frame = &relayed;
        }
        if let Some(p) = self.playing.as_mut() {
            p.drop_played();
            if let Some(f) = p.prompts.front().and_then(|pr| pr.frame(codec, p.frame)) {
                frame = f;
                p.frame += 1;
            }
            // Report the end with the last frame, so the caller's timeout starts when the
            // prompt really stops.
            if p.is_over() {
                finished = Some(p.id);
            }
        }
        let sent = self.sender.next_packet(frame, buf);
        if let Some(id) = finished {
            self.playing = None;
            self.events.push_back(MediaEvent::PlayFinished { id });
        }
        sent.ok()
    }

    fn key_packet(&mut self, te: u8, key: Key, sent: u16, buf: &mut [u8]) -> Option<usize> {
        let end = sent + 1 >= KEY_FRAMES;
        let ev = TelephoneEvent {
            event: key.event_code(),
            end,
            volume: 10,
            duration: (sent.min(KEY_FRAMES - 1) + 1) * FRAME_SAMPLES as u16,
        };
        let len = self.sender.telephone_event_packet(te, ev, buf).ok();
        self.sender.skip(FRAME_SAMPLES as u32);
        if sent + 1 >= KEY_FRAMES + 2 {
            // Start packet, updates, and the end packet three times (RFC 4733 §2.5.1.4).
            self.sender.finish_event();
            self.sending_key = None;
        } else {
            self.sending_key = Some((key, sent + 1));
        }
        len
    }
}

fn silence_frame(codec: Codec) -> [u8; FRAME_SAMPLES] {
    [codec.silence_byte(); FRAME_SAMPLES]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::rtp::RTP_HEADER_LEN;
    use crate::media::tone::dtmf_tone;

    const TICK: Duration = Duration::from_millis(20);

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Every call has a session (two when bridged) for its whole life: no scratch of a
    /// whole packet is kept in it (it was 4,272 bytes with a 1,920-byte decode buffer).
    #[test]
    fn a_session_keeps_no_packet_sized_scratch() {
        let size = std::mem::size_of::<Session>();
        assert!(size <= 3072, "Session: {size} bytes");
    }

    fn key(c: char) -> Key {
        Key::from_char(c).unwrap()
    }

    /// A session on a fake clock with a far end that sends from its SDP address.
    struct Far {
        s: Session,
        now: Instant,
        from: SocketAddr,
        rtp: RtpSender,
        buf: [u8; 2048],
    }

    /// What came out of one tick.
    #[derive(Debug)]
    struct Out {
        to: SocketAddr,
        pt: u8,
        seq: u16,
        timestamp: u32,
        payload: Vec<u8>,
    }

    impl Far {
        fn new(no_media_timeout: Duration) -> Far {
            Far::with(
                MediaOrigin::Placed,
                addr("127.0.0.1:40000"),
                no_media_timeout,
            )
        }

        /// A caller whose SDP names `remote`, sending from there.
        fn with(origin: MediaOrigin, remote: SocketAddr, no_media_timeout: Duration) -> Far {
            let now = Instant::now();
            let params = SessionParams {
                codec: Codec::Pcmu,
                payload_type: 0,
                telephone_event_pt: Some(101),
                remote,
                no_media_timeout,
                ssrc: 0x1234,
                initial_seq: 100,
                initial_timestamp: 1000,
                origin,
                srtp: None,
            };
            Far {
                s: Session::new(params, now),
                now,
                from: remote,
                rtp: RtpSender::new(0x9999, 1, 0, 0),
                buf: [0; 2048],
            }
        }

        fn audio(&mut self, pcm: &[i16]) -> Vec<u8> {
            let mut frame = [0u8; FRAME_SAMPLES];
            Codec::Pcmu.encode_into(pcm, &mut frame);
            let mut b = [0u8; 256];
            let n = self.rtp.next_packet(&frame, &mut b).unwrap();
            b[..n].to_vec()
        }

        fn silence(&mut self) -> Vec<u8> {
            self.audio(&[0; FRAME_SAMPLES])
        }

        /// One key press as RFC 4733: start, updates, three end packets, one timestamp.
        fn key_packets(&mut self, k: Key) -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            for i in 0..7u16 {
                let ev = TelephoneEvent {
                    event: k.event_code(),
                    end: i >= 4,
                    volume: 10,
                    duration: (i.min(4) + 1) * FRAME_SAMPLES as u16,
                };
                let mut b = [0u8; 64];
                let n = self.rtp.telephone_event_packet(101, ev, &mut b).unwrap();
                out.push(b[..n].to_vec());
            }
            self.rtp.finish_event();
            out
        }

        fn hear(&mut self, pkt: &[u8]) {
            let from = self.from;
            self.s.handle_packet(self.now, from, pkt);
        }

        /// Ends the tick at `now` and starts the next one; returns its frame unless held.
        fn tick(&mut self) -> Option<Out> {
            self.now += TICK;
            self.s.tick(self.now);
            self.take(self.now)
        }

        fn take(&mut self, at: Instant) -> Option<Out> {
            let t = self.s.poll_transmit(at, &mut self.buf)?;
            let p = parse_rtp(&self.buf[..t.len]).unwrap();
            Some(Out {
                to: t.destination,
                pt: p.pt,
                seq: p.seq,
                timestamp: p.timestamp,
                payload: p.payload.to_vec(),
            })
        }

        fn events(&mut self) -> Vec<MediaEvent> {
            std::iter::from_fn(|| self.s.poll_event()).collect()
        }
    }

    fn prompt(frames: usize) -> Prompt {
        // Each frame a different level, so frames can be told apart after G.711.
        let samples = (0..frames * FRAME_SAMPLES)
            .map(|i| ((i / FRAME_SAMPLES) as i16 + 1) * 1000)
            .collect();
        Prompt::from_samples("p", samples)
    }

    fn play(id: u64, p: &Prompt, barge_in: bool) -> SessionCommand {
        SessionCommand::Play {
            id,
            prompts: vec![p.clone()],
            barge_in,
        }
    }

    fn is_silence(o: &Out) -> bool {
        o.payload.iter().all(|&b| b == Codec::Pcmu.silence_byte())
    }

    #[test]
    fn a_prompt_comes_out_one_frame_per_tick_in_order() {
        let mut f = Far::new(Duration::from_secs(60));
        let p = prompt(3);
        f.s.command(play(7, &p, false), f.now);
        let mut outs = Vec::new();
        for i in 0..4 {
            let o = f.tick().expect("a frame each tick");
            // One frame per tick, never two.
            assert!(f.take(f.now + Duration::from_millis(5)).is_none());
            if i < 3 {
                assert_eq!(&o.payload[..], &p.frame(Codec::Pcmu, i).unwrap()[..]);
            }
            let ev = f.events();
            if i == 2 {
                assert_eq!(ev, vec![MediaEvent::PlayFinished { id: 7 }]);
            } else {
                assert!(ev.is_empty(), "{ev:?}");
            }
            outs.push(o);
        }
        assert!(is_silence(&outs[3]));
        for w in outs.windows(2) {
            assert_eq!(w[1].seq, w[0].seq.wrapping_add(1));
            assert_eq!(w[1].timestamp, w[0].timestamp.wrapping_add(160));
        }
        assert!(
            outs.iter()
                .all(|o| o.to == addr("127.0.0.1:40000") && o.pt == 0)
        );
        assert_eq!(outs[0].seq, 100);
        assert_eq!(outs[0].timestamp, 1000);
    }

    #[test]
    fn nothing_is_sent_before_the_first_tick() {
        let mut f = Far::new(Duration::from_secs(60));
        f.s.command(play(1, &prompt(2), false), f.now);
        assert!(f.take(f.now).is_none());
    }

    #[test]
    fn the_session_latches_onto_where_the_caller_really_sends_from() {
        let mut f = Far::new(Duration::from_secs(60));
        f.from = addr("192.0.2.7:5004"); // behind a NAT: not the SDP address
        for _ in 0..5 {
            let pkt = f.silence();
            f.hear(&pkt);
        }
        let o = f.tick().unwrap();
        assert_eq!(o.to, addr("192.0.2.7:5004"));
        // Once learned, another source is dropped and counted.
        f.from = addr("198.51.100.1:9999");
        let pkt = f.silence();
        f.hear(&pkt);
        assert_eq!(f.s.stats.foreign_dropped, 1);
        assert_eq!(f.tick().unwrap().to, addr("192.0.2.7:5004"));
        // A re-INVITE that moves the far end learns again.
        f.s.command(
            SessionCommand::Update {
                remote: addr("203.0.113.5:6000"),
                send: true,
                reset_latch: true,
            },
            f.now,
        );
        assert_eq!(f.tick().unwrap().to, addr("203.0.113.5:6000"));
    }

    #[test]
    fn an_rfc4733_key_is_reported_once() {
        let mut f = Far::new(Duration::from_secs(60));
        let pkts = f.key_packets(key('5'));
        for pkt in &pkts {
            f.hear(pkt);
            f.tick();
        }
        for _ in 0..3 {
            let pkt = f.silence();
            f.hear(&pkt);
            f.tick();
        }
        let keys: Vec<_> = f
            .events()
            .into_iter()
            .filter(|e| matches!(e, MediaEvent::Key { .. }))
            .collect();
        assert_eq!(
            keys,
            vec![MediaEvent::Key {
                key: key('5'),
                source: KeySource::Rfc4733,
                stopped_play: None
            }]
        );
        assert_eq!(f.s.stats.keys, 1);
    }

    #[test]
    fn an_inband_key_is_reported_once() {
        let mut f = Far::new(Duration::from_secs(60));
        let tone = dtmf_tone(key('8'), Duration::from_millis(120), -10.0);
        let mut frames: Vec<Vec<i16>> = tone.chunks(FRAME_SAMPLES).map(<[i16]>::to_vec).collect();
        frames.extend(std::iter::repeat_n(vec![0; FRAME_SAMPLES], 5));
        let mut events = Vec::new();
        for fr in &frames {
            let pkt = f.audio(fr);
            f.hear(&pkt);
            f.tick();
            events.extend(f.events());
        }
        assert_eq!(
            events,
            vec![MediaEvent::Key {
                key: key('8'),
                source: KeySource::Inband,
                stopped_play: None
            }]
        );
    }

    #[test]
    fn a_key_barges_in_on_a_prompt_in_the_tick_that_heard_it() {
        let mut f = Far::new(Duration::from_secs(60));
        let p = prompt(50);
        f.s.command(play(3, &p, true), f.now);
        for _ in 0..3 {
            assert!(!is_silence(&f.tick().unwrap()));
        }
        let pkts = f.key_packets(key('1'));
        f.hear(&pkts[0]);
        // The tick that heard the key holds its frame for the call's answer...
        assert!(f.tick().is_none());
        assert_eq!(
            f.events(),
            vec![MediaEvent::Key {
                key: key('1'),
                source: KeySource::Rfc4733,
                stopped_play: Some(3)
            }]
        );
        let wait = f.s.poll_timeout().expect("held");
        assert_eq!(wait, f.now + ANSWER_WAIT);
        // ...and with no answer sends silence when the wait is over: the prompt has stopped.
        assert!(f.take(wait - Duration::from_millis(1)).is_none());
        let o = f.take(wait).unwrap();
        assert!(is_silence(&o));
        assert!(f.s.poll_timeout().is_none());
        assert!(is_silence(&f.tick().unwrap()));
    }

    #[test]
    fn a_key_without_barge_in_leaves_the_prompt_playing() {
        let mut f = Far::new(Duration::from_secs(60));
        let p = prompt(10);
        f.s.command(play(4, &p, false), f.now);
        f.tick();
        let pkts = f.key_packets(key('2'));
        f.hear(&pkts[0]);
        assert!(f.tick().is_none());
        assert_eq!(
            f.events(),
            vec![MediaEvent::Key {
                key: key('2'),
                source: KeySource::Rfc4733,
                stopped_play: None
            }]
        );
        let o = f.take(f.now + ANSWER_WAIT).unwrap();
        assert_eq!(&o.payload[..], &p.frame(Codec::Pcmu, 1).unwrap()[..]);
    }

    #[test]
    fn the_answer_to_a_key_starts_in_the_same_tick_and_keeps_the_cadence() {
        let mut f = Far::new(Duration::from_secs(60));
        f.s.command(play(1, &prompt(50), true), f.now);
        f.tick();
        let pkts = f.key_packets(key('3'));
        f.hear(&pkts[0]);
        assert!(f.tick().is_none());
        f.events();
        let tick_start = f.now;
        let next = prompt(4);
        // The call answers 3 ms into the tick.
        let at = tick_start + Duration::from_millis(3);
        f.s.command(play(2, &next, true), at);
        let first = f.take(at).expect("the new prompt's first frame at once");
        assert_eq!(&first.payload[..], &next.frame(Codec::Pcmu, 0).unwrap()[..]);
        // No second frame in this tick, then one per tick.
        assert!(f.take(at + Duration::from_millis(10)).is_none());
        let second = f.tick().unwrap();
        assert_eq!(
            &second.payload[..],
            &next.frame(Codec::Pcmu, 1).unwrap()[..]
        );
        assert_eq!(second.seq, first.seq.wrapping_add(1));
        assert_eq!(second.timestamp, first.timestamp.wrapping_add(160));
    }

    #[test]
    fn a_stop_is_not_an_answer() {
        let mut f = Far::new(Duration::from_secs(60));
        f.tick();
        let pkts = f.key_packets(key('4'));
        f.hear(&pkts[0]);
        assert!(f.tick().is_none());
        f.s.command(SessionCommand::Stop { id: 99 }, f.now);
        assert!(f.take(f.now).is_none());
        assert!(f.s.poll_timeout().is_some());
    }

    #[test]
    fn silence_from_the_caller_ends_in_one_no_media_event() {
        let mut f = Far::new(Duration::from_millis(100));
        let mut events = Vec::new();
        for _ in 0..4 {
            let pkt = f.silence();
            f.hear(&pkt);
            f.tick();
        }
        events.extend(f.events());
        assert!(events.is_empty());
        for _ in 0..20 {
            f.tick();
            events.extend(f.events());
        }
        assert_eq!(events, vec![MediaEvent::NoMedia]);
    }

    fn hold(f: &mut Far, on: bool) {
        let now = f.now;
        f.s.command(
            SessionCommand::Update {
                remote: addr("127.0.0.1:40000"),
                send: !on,
                reset_latch: false,
            },
            now,
        );
    }

    #[test]
    fn a_caller_on_hold_is_not_dead_hears_nothing_and_the_prompt_runs_on() {
        let mut f = Far::new(Duration::from_millis(100));
        let p = prompt(40);
        f.s.command(play(1, &p, false), f.now);
        let pkt = f.silence();
        f.hear(&pkt);
        let before = f.tick().unwrap();
        hold(&mut f, true);
        for _ in 0..20 {
            assert!(f.tick().is_none(), "nothing is sent on hold");
            assert!(f.take(f.now + TICK / 2).is_none());
        }
        assert!(f.events().is_empty(), "silence on hold is not a dead call");
        hold(&mut f, false);
        let after = f.tick().unwrap();
        // The prompt went on by the clock while held, and so did the RTP clock; the
        // sequence numbers have no gap (nothing was lost, nothing was sent).
        assert_eq!(&after.payload[..], &p.frame(Codec::Pcmu, 21).unwrap()[..]);
        assert_eq!(after.seq, before.seq.wrapping_add(1));
        assert_eq!(after.timestamp, before.timestamp.wrapping_add(21 * 160));
    }

    #[test]
    fn a_prompt_to_a_held_call_ends_on_time() {
        let mut f = Far::new(Duration::from_secs(30));
        hold(&mut f, true);
        f.s.command(play(7, &prompt(5), false), f.now);
        let mut finished_at = None;
        for tick in 1..=10 {
            assert!(f.tick().is_none());
            if f.events().contains(&MediaEvent::PlayFinished { id: 7 }) {
                finished_at.get_or_insert(tick);
            }
        }
        assert_eq!(
            finished_at,
            Some(5),
            "the fifth frame's tick ends the prompt"
        );
    }

    #[test]
    fn a_far_end_that_never_sent_is_ended_whatever_its_direction() {
        // An INVITE offering `a=inactive` (or `a=sendonly` and then nothing) starts held.
        let mut f = Far::new(Duration::from_millis(100));
        hold(&mut f, true);
        let mut events = Vec::new();
        for _ in 0..4 {
            f.tick();
            events.extend(f.events());
        }
        assert!(events.is_empty(), "not before the timeout");
        for _ in 0..20 {
            f.tick();
            events.extend(f.events());
        }
        assert_eq!(events, vec![MediaEvent::NoMedia]);
    }

    fn record(id: u64, silence: Option<Duration>, terminator: Option<Key>) -> SessionCommand {
        SessionCommand::Record {
            id,
            max_duration: Duration::from_secs(30),
            silence_timeout: silence,
            terminator,
        }
    }

    #[test]
    fn a_recording_ends_after_the_silence_timeout() {
        let mut f = Far::new(Duration::from_secs(60));
        f.s.command(record(5, Some(Duration::from_millis(200)), None), f.now);
        let loud = vec![4000i16; FRAME_SAMPLES];
        for _ in 0..10 {
            let pkt = f.audio(&loud);
            f.hear(&pkt);
            f.tick();
        }
        assert!(f.events().is_empty());
        // The caller goes quiet; no packets at all count as silence too.
        let mut events = Vec::new();
        for _ in 0..12 {
            f.tick();
            events.extend(f.events());
        }
        match &events[..] {
            [MediaEvent::Recorded(r)] => {
                assert_eq!(r.id, 5);
                assert_eq!(r.reason, StopReason::Silence);
                assert!(r.samples.len() >= 10 * FRAME_SAMPLES);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_terminator_key_ends_a_recording() {
        let mut f = Far::new(Duration::from_secs(60));
        f.s.command(record(6, None, Some(key('#'))), f.now);
        for _ in 0..5 {
            let pkt = f.audio(&[3000; FRAME_SAMPLES]);
            f.hear(&pkt);
            f.tick();
        }
        let pkts = f.key_packets(key('#'));
        f.hear(&pkts[0]);
        f.tick();
        let events = f.events();
        assert!(matches!(
            &events[..],
            [MediaEvent::Recorded(r), MediaEvent::Key { .. }]
                if r.id == 6 && r.reason == StopReason::Terminator
                    && r.samples.len() == 5 * FRAME_SAMPLES
        ));
        // StopRecording after the end is a no-op.
        f.s.command(SessionCommand::StopRecording { id: 6 }, f.now);
        assert!(f.events().is_empty());
    }

    #[test]
    fn stop_recording_answers_with_what_was_heard() {
        let mut f = Far::new(Duration::from_secs(60));
        f.s.command(record(8, None, None), f.now);
        for _ in 0..3 {
            let pkt = f.audio(&[2000; FRAME_SAMPLES]);
            f.hear(&pkt);
            f.tick();
        }
        f.s.command(SessionCommand::StopRecording { id: 8 }, f.now);
        assert!(matches!(
            &f.events()[..],
            [MediaEvent::Recorded(r)] if r.reason == StopReason::Stopped && r.samples.len() == 3 * FRAME_SAMPLES
        ));
    }

    #[test]
    fn send_key_goes_out_as_rfc4733_then_audio_resumes() {
        let mut f = Far::new(Duration::from_secs(60));
        f.tick();
        f.s.command(SessionCommand::SendKey(key('9')), f.now);
        let outs: Vec<Out> = (0..8).map(|_| f.tick().unwrap()).collect();
        let events: Vec<_> = outs[..7]
            .iter()
            .map(|o| {
                assert_eq!(o.pt, 101);
                crate::media::dtmf::TelephoneEvent::parse(&o.payload).unwrap()
            })
            .collect();
        assert!(events.iter().all(|e| e.event == 9));
        assert_eq!(events.iter().filter(|e| e.end).count(), 3);
        assert!(events[6].end && !events[0].end);
        // One event: every packet carries the start timestamp.
        assert!(outs[..7].iter().all(|o| o.timestamp == outs[0].timestamp));
        assert_eq!(outs[7].pt, 0);
        assert_eq!(outs[7].timestamp, outs[0].timestamp.wrapping_add(7 * 160));
    }

    #[test]
    fn garbage_from_the_network_is_counted_not_fatal() {
        let mut f = Far::new(Duration::from_secs(60));
        for pkt in [
            &[][..],
            &[0x80][..],
            &[0xff; 12][..],
            &[0x80, 0, 0, 1, 0, 0][..],
        ] {
            f.hear(pkt);
        }
        assert_eq!(f.s.stats.malformed, 4);
        assert!(f.tick().is_some());
    }

    #[test]
    fn a_bridged_session_hands_on_what_it_heard() {
        let mut f = Far::new(Duration::from_secs(60));
        f.s.set_bridged(true);
        let pkt = f.audio(&[1000; FRAME_SAMPLES]);
        f.hear(&pkt);
        let b = f.s.bridge_buffers().unwrap();
        assert_eq!(b.heard.len(), 1);
        b.to_send.push(&[3000; FRAME_SAMPLES]);
        let o = f.tick().unwrap();
        let mut want = [0u8; FRAME_SAMPLES];
        Codec::Pcmu.encode_into(&[3000; FRAME_SAMPLES], &mut want);
        assert_eq!(&o.payload[..], &want[..]);
    }

    // ------------------------------------------------------------ reflection, hijack

    fn untrusted(signalling: &str) -> MediaOrigin {
        MediaOrigin::Untrusted {
            signalling: signalling.parse().unwrap(),
        }
    }

    #[test]
    fn nothing_is_sent_before_the_caller_proves_its_address() {
        for origin in [MediaOrigin::Trusted, untrusted("127.0.0.1")] {
            let mut f = Far::with(origin, addr("127.0.0.1:40000"), Duration::from_secs(60));
            let p = prompt(10);
            f.s.command(play(1, &p, false), f.now);
            // A spoofed INVITE: no ACK, no RTP. Thirty seconds of ticks send nothing.
            for _ in 0..1500 {
                assert!(f.tick().is_none(), "{origin:?}");
            }
            assert_eq!(f.s.stats.packets_out, 0);
            // The ACK proves the signalling address, which is the SDP's: the greeting
            // starts from its first frame.
            f.s.command(SessionCommand::Confirmed, f.now);
            let o = f.tick().expect("audio after the ACK");
            assert_eq!(o.to, addr("127.0.0.1:40000"));
            assert_eq!(&o.payload[..], &p.frame(Codec::Pcmu, 0).unwrap()[..]);
        }
    }

    #[test]
    fn rtp_from_the_caller_proves_its_address_without_the_ack() {
        let mut f = Far::with(
            untrusted("192.0.2.1"),
            addr("192.0.2.1:4000"),
            Duration::from_secs(60),
        );
        assert!(f.tick().is_none());
        let pkt = f.silence();
        f.hear(&pkt);
        assert_eq!(
            f.tick().expect("audio once RTP came").to,
            addr("192.0.2.1:4000")
        );
    }

    #[test]
    fn an_sdp_address_unlike_the_signalling_source_gets_audio_only_where_rtp_came_from() {
        // The INVITE came from 192.0.2.1 but names 198.51.100.9 (a victim, or a private
        // address behind NAT): even after the ACK, nothing goes there.
        let mut f = Far::with(
            untrusted("192.0.2.1"),
            addr("198.51.100.9:4000"),
            Duration::from_secs(60),
        );
        f.s.command(SessionCommand::Confirmed, f.now);
        for _ in 0..200 {
            assert!(f.tick().is_none());
        }
        // The caller's RTP from its NAT address (the signalling IP) is where audio goes.
        f.from = addr("192.0.2.1:30000");
        let pkt = f.silence();
        f.hear(&pkt);
        assert_eq!(f.tick().unwrap().to, addr("192.0.2.1:30000"));
    }

    #[test]
    fn a_third_address_is_never_learned_early_or_mid_call() {
        let third = addr("203.0.113.66:5000");
        let mut f = Far::with(
            untrusted("192.0.2.1"),
            addr("10.0.0.5:4000"),
            Duration::from_millis(400),
        );
        f.s.command(SessionCommand::Confirmed, f.now);
        let spray = |f: &mut Far, n: usize| {
            let caller = f.from;
            f.from = third;
            for i in 0..n {
                let pkt = if i % 2 == 0 {
                    f.silence()
                } else {
                    f.key_packets(key('9')).remove(0)
                };
                f.hear(&pkt);
            }
            f.from = caller;
        };
        // Right after the 200: the spray comes before the caller's first packet.
        f.from = addr("192.0.2.1:30000");
        spray(&mut f, 50);
        assert!(f.tick().is_none(), "no audio to the sprayer");
        // The caller's own packets, with a stray of an unexpected type from its IP first.
        let mut stray = f.silence();
        stray[1] = 13; // comfort noise is not media to learn an address from
        let caller = f.from;
        f.from = addr("192.0.2.1:31000");
        f.hear(&stray);
        f.from = caller;
        let mut keys = Vec::new();
        for i in 0..300 {
            let pkt = f.silence();
            f.hear(&pkt);
            if i == 150 {
                // Mid-call, and long after the learning window.
                spray(&mut f, 50);
                for k in f.key_packets(key('4')) {
                    f.hear(&k);
                }
            }
            let o = f.tick();
            if let Some(o) = o.or_else(|| f.take(f.now + ANSWER_WAIT)) {
                assert_eq!(o.to, caller);
            }
            keys.extend(f.events());
        }
        assert_eq!(
            keys,
            vec![MediaEvent::Key {
                key: key('4'),
                source: KeySource::Rfc4733,
                stopped_play: None
            }],
            "only the caller's key, and no NoMedia"
        );
        assert_eq!(f.s.stats.foreign_dropped, 101);
        assert_eq!(
            f.s.stats.last_rejected,
            Some((third, RtpRejection::Foreign))
        );
    }

    // ------------------------------------------------------------ abuse

    /// One RFC 4733 packet of `event` at `timestamp`.
    fn event_packet(f: &mut Far, event: u8, timestamp: u32, end: bool, duration: u16) -> Vec<u8> {
        let mut b = [0u8; 64];
        let mut rtp = RtpSender::new(0x9999, f.rtp.seq(), timestamp, 0);
        let ev = TelephoneEvent {
            event,
            end,
            volume: 10,
            duration,
        };
        let n = rtp.telephone_event_packet(101, ev, &mut b).unwrap();
        f.rtp = RtpSender::new(0x9999, rtp.seq(), 0, 0);
        b[..n].to_vec()
    }

    fn reported_keys(f: &mut Far) -> usize {
        f.events()
            .iter()
            .filter(|e| matches!(e, MediaEvent::Key { .. }))
            .count()
    }

    #[test]
    fn an_event_storm_is_bounded_in_keys_per_second() {
        let mut f = Far::new(Duration::from_secs(60));
        let mut reported = 0;
        // 5000 distinct events in one second: five every millisecond.
        for ms in 0..1000u32 {
            for j in 0..5u32 {
                let pkt = event_packet(&mut f, (j % 10) as u8, ms * 5 + j + 1, false, 160);
                f.hear(&pkt);
            }
            f.now += Duration::from_millis(1);
            reported += reported_keys(&mut f);
        }
        let bound = KEY_BURST as usize + 1000 / KEY_INTERVAL.as_millis() as usize;
        assert!(reported <= bound, "{reported} keys in one second");
        assert!(reported >= KEY_BURST as usize);
        assert_eq!(f.s.stats.keys_dropped as usize, 5000 - reported);
        // A person pressing keys at a normal pace afterwards is heard in full.
        f.now += Duration::from_secs(3);
        let mut heard = 0;
        for i in 0..40u32 {
            for p in f.key_packets(key(char::from(b'0' + (i % 10) as u8))) {
                f.hear(&p);
                f.tick();
            }
            f.tick();
            heard += reported_keys(&mut f);
        }
        assert_eq!(heard, 40);
    }

    #[test]
    fn events_that_never_end_overlap_or_rewind_make_no_storm() {
        let mut f = Far::new(Duration::from_secs(60));
        // One event updated for a minute without an end: one key.
        for i in 0..3000u32 {
            let pkt = event_packet(&mut f, 5, 8000, false, (i.min(400) * 160) as u16);
            f.hear(&pkt);
            f.tick();
        }
        assert_eq!(reported_keys(&mut f), 1);
        // Overlapping events and timestamps running backwards, 20 a tick for 10 s.
        let mut reported = 0;
        for t in 0..500u32 {
            for j in 0..20u32 {
                let ts = 1_000_000u32.wrapping_sub(t * 160 + j * 7);
                let pkt = event_packet(&mut f, (j % 16) as u8, ts, j % 3 == 0, 320);
                f.hear(&pkt);
            }
            f.tick();
            reported += reported_keys(&mut f);
        }
        // Ten seconds allow at most the burst and one key per interval.
        assert!(reported <= KEY_BURST as usize + 100, "{reported}");
    }

    #[test]
    fn tiny_giant_and_wrong_version_packets_cost_bounded_work_and_no_panic() {
        let mut f = Far::new(Duration::from_secs(60));
        f.s.set_bridged(true);
        f.s.command(record(1, None, None), f.now);
        let good = f.silence();
        let mut giant = good.clone();
        giant.resize(RTP_HEADER_LEN + 65_000, 0x7f);
        let mut v1 = good.clone();
        v1[0] = 0x40;
        let mut v3 = good.clone();
        v3[0] = 0xc0;
        let mut short_event = event_packet(&mut f, 1, 5, false, 160);
        short_event.truncate(RTP_HEADER_LEN + 2);
        for pkt in [
            &good[..1],
            &good[..11],
            &v1[..],
            &v3[..],
            &giant[..],
            &short_event[..],
        ] {
            f.hear(pkt);
        }
        assert_eq!(f.s.stats.malformed, 4);
        f.tick();
        // The giant packet counts for at most MAX_PACKET_SAMPLES of audio.
        let b = f.s.bridge_buffers().unwrap();
        assert!(b.heard.len() <= MAX_PACKET_SAMPLES / FRAME_SAMPLES);
        f.s.command(SessionCommand::StopRecording { id: 1 }, f.now);
        match &f.events()[..] {
            [MediaEvent::Recorded(r)] => {
                assert!(r.samples.len() <= MAX_PACKET_SAMPLES + FRAME_SAMPLES)
            }
            other => panic!("{other:?}"),
        }
    }

    // ------------------------------------------------------------ packet time

    /// A caller with `ptime` ms packets speaking `pcm` in real time; the session ticks every
    /// 20 ms. Returns per tick what the bridge heard, after `each_tick`.
    fn speak(f: &mut Far, ptime: u32, pcm: &[i16], mut each_tick: impl FnMut(&mut Far)) {
        let per = (ptime * 8) as usize;
        let start = f.now;
        let mut sent = 0;
        let mut t = 0u32;
        let end = (pcm.len() / 8) as u32 + 100;
        while t <= end {
            if t.is_multiple_of(ptime) && sent < pcm.len() {
                let chunk = &pcm[sent..(sent + per).min(pcm.len())];
                let mut enc = vec![0u8; chunk.len()];
                Codec::Pcmu.encode_into(chunk, &mut enc);
                let mut b = [0u8; 2048];
                let n = f.rtp.next_packet(&enc, &mut b).unwrap();
                f.s.handle_packet(start + Duration::from_millis(t.into()), f.from, &b[..n]);
                sent += chunk.len();
            }
            if t.is_multiple_of(20) {
                f.now = start + Duration::from_millis(t.into());
                f.s.tick(f.now);
                let mut buf = [0u8; 2048];
                let _ = f.s.poll_transmit(f.now, &mut buf);
                each_tick(f);
            }
            t += 10;
        }
    }

    fn voice(samples: usize) -> Vec<i16> {
        (0..samples)
            .map(|i| ((i as f32 * 0.07).sin() * 6000.0 + (i as f32 * 0.011).sin() * 3000.0) as i16)
            .collect()
    }

    fn through_g711(pcm: &[i16]) -> Vec<i16> {
        pcm.iter()
            .map(|&s| Codec::Pcmu.decode_sample(Codec::Pcmu.encode_sample(s)))
            .collect()
    }

    #[test]
    fn recordings_of_10_30_and_40_ms_callers_have_the_right_length_and_content() {
        for ptime in [10, 20, 30, 40] {
            let mut f = Far::new(Duration::from_secs(60));
            f.s.command(
                SessionCommand::Record {
                    id: 1,
                    max_duration: Duration::from_secs(30),
                    silence_timeout: None,
                    terminator: None,
                },
                f.now,
            );
            let said = voice(3 * 8000);
            speak(&mut f, ptime, &said, |_| {});
            f.s.command(SessionCommand::StopRecording { id: 1 }, f.now);
            let r = match &f.events()[..] {
                [MediaEvent::Recorded(r)] => r.clone(),
                other => panic!("{other:?}"),
            };
            let want = through_g711(&said);
            // The whole message and only it, plus the silence after it (100 ms).
            assert!(
                r.samples.len() >= want.len() && r.samples.len() <= want.len() + 1000,
                "ptime {ptime}: {} samples for {}",
                r.samples.len(),
                want.len()
            );
            assert_eq!(&r.samples[..want.len()], &want[..], "ptime {ptime}");
        }
    }

    #[test]
    fn a_bridge_hears_10_30_and_40_ms_callers_without_gaps_or_garbling() {
        for ptime in [10, 20, 30, 40] {
            let mut f = Far::new(Duration::from_secs(60));
            f.s.set_bridged(true);
            let said = voice(2 * 8000);
            let mut peer = BridgeBuffers::default();
            let mut out: Vec<i16> = Vec::new();
            let mut gaps = 0;
            let mut ticks = 0;
            speak(&mut f, ptime, &said, |f| {
                let b = f.s.bridge_buffers().unwrap();
                crate::media::bridge::relay(b, &mut peer);
                ticks += 1;
                match peer.next_frame() {
                    Some(fr) => out.extend_from_slice(fr),
                    // The first ticks fill the jitter room; the last ones follow the end.
                    None if ticks > 3 && out.len() < said.len() => gaps += 1,
                    None => {}
                }
            });
            assert_eq!(gaps, 0, "ptime {ptime}");
            let want = through_g711(&said);
            assert_eq!(&out[..want.len()], &want[..], "ptime {ptime}");
        }
    }

    #[test]
    fn keys_of_10_30_and_40_ms_callers_are_heard_once() {
        for ptime in [10, 30, 40] {
            let mut f = Far::new(Duration::from_secs(60));
            let mut pcm = vec![0i16; 800];
            pcm.extend(dtmf_tone(key('7'), Duration::from_millis(120), -10.0));
            pcm.extend(vec![0i16; 1600]);
            let mut events = Vec::new();
            speak(&mut f, ptime, &pcm, |f| events.extend(f.events()));
            assert_eq!(
                events,
                vec![MediaEvent::Key {
                    key: key('7'),
                    source: KeySource::Inband,
                    stopped_play: None
                }],
                "ptime {ptime}"
            );
        }
    }

    // ------------------------------------------------------------ faults

    /// A small deterministic generator (xorshift), so a lossy network replays exactly.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn at_5_percent_loss_with_duplicates_and_reordering_no_key_is_lost_or_doubled() {
        for seed in [1u64, 7, 42, 1234, 99_999] {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let mut f = Far::new(Duration::from_secs(60));
            let typed: Vec<Key> = (0..200)
                .map(|i| key(b"0123456789*#"[i % 12] as char))
                .collect();
            let mut heard = Vec::new();
            for &k in &typed {
                // Each press, then a pause of audio, on a path that loses 5 %, duplicates
                // 1 % and swaps neighbours 5 % of the time.
                let mut pkts = f.key_packets(k);
                for _ in 0..4 {
                    pkts.push(f.silence());
                }
                let mut on_wire: Vec<Vec<u8>> = Vec::new();
                for p in pkts {
                    if rng.below(100) < 5 {
                        continue;
                    }
                    if rng.below(100) < 1 {
                        on_wire.push(p.clone());
                    }
                    on_wire.push(p);
                }
                for i in 1..on_wire.len() {
                    if rng.below(100) < 5 {
                        on_wire.swap(i - 1, i);
                    }
                }
                for p in &on_wire {
                    f.hear(p);
                    f.tick();
                    heard.extend(f.events().into_iter().filter_map(|e| match e {
                        MediaEvent::Key { key, .. } => Some(key),
                        _ => None,
                    }));
                }
            }
            assert_eq!(heard, typed, "seed {seed}");
        }
    }
}
