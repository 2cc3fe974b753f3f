//! One call's media as seen by the media clock: what plays, what is heard. Each tick the
//! clock first drains what the caller sent (keys, latching, liveness), then sends one frame.
//! Prompt frames are shared, pre-encoded slices; nothing here decodes a prompt or allocates
//! per packet. The session owns no timer: the clock that serves every session drives it.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedSender;

use crate::media::bridge::BridgeBuffers;
use crate::media::dtmf::{InbandDetector, Key, Rfc4733Receiver};
use crate::media::g711::Codec;
use crate::media::ports::RtpPort;
use crate::media::prompt::Prompt;
use crate::media::recorder::{Recorder, Recording, StopReason};
use crate::media::rtp::{
    LatchConfig, LatchVerdict, RtpReceiver, RtpSender, SymmetricLatch, TelephoneEvent, parse_rtp,
};

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

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
    /// A re-INVITE moved the far end, or put it on hold (`send == false`).
    Update {
        remote: SocketAddr,
        send: bool,
        /// The far end moved: learn its address again.
        reset_latch: bool,
    },
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
}

struct Playing {
    id: u64,
    prompts: VecDeque<Prompt>,
    frame: usize,
    barge_in: bool,
}

/// Counters a session keeps for the call record and for load measurement.
#[derive(Debug, Default, Clone, Copy)]
pub struct SessionStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub foreign_dropped: u64,
    pub malformed: u64,
    pub keys: u64,
}

pub struct Session {
    port: RtpPort,
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
    events: UnboundedSender<MediaEvent>,
    pub stats: SessionStats,
    pcm: [i16; FRAME_SAMPLES],
    /// A key being sent as RFC 4733: the key and how many packets of it went out.
    sending_key: Option<(Key, u16)>,
    recorder: Option<Recorder>,
    /// Audio frames that arrived in the current tick (a recording fills gaps with silence).
    frames_this_tick: u32,
    /// Set while this session is bridged to another (see `media::bridge`).
    bridge: Option<Box<BridgeBuffers>>,
}

/// A key we send lasts this many frames (100 ms), then three end packets follow.
const KEY_FRAMES: u16 = 5;

impl Session {
    pub fn new(
        port: RtpPort,
        params: SessionParams,
        events: UnboundedSender<MediaEvent>,
        now: Instant,
    ) -> Self {
        let sender = RtpSender::new(
            params.ssrc,
            params.initial_seq,
            params.initial_timestamp,
            params.payload_type,
        );
        let latch = SymmetricLatch::new(params.remote, now, LatchConfig::default());
        Session {
            port,
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
            events,
            stats: SessionStats::default(),
            pcm: [0; FRAME_SAMPLES],
            sending_key: None,
            recorder: None,
            frames_this_tick: 0,
            bridge: None,
            params,
        }
    }

    pub fn local_port(&self) -> u16 {
        self.port.port
    }

    pub fn command(&mut self, cmd: SessionCommand, now: Instant) {
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

    /// One media tick: read everything that arrived, then send one frame.
    pub fn tick(&mut self, now: Instant, buf: &mut [u8]) {
        self.receive_phase(now, buf);
        self.send_phase(buf);
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

    /// The first half of a tick: what arrived, keys, recording, liveness.
    pub fn receive_phase(&mut self, now: Instant, buf: &mut [u8]) {
        self.frames_this_tick = 0;
        self.receive(now, buf);
        if self.frames_this_tick == 0
            && let Some(r) = self.recorder.as_mut()
        {
            // Nothing arrived (silence suppression, loss): the message still takes time.
            if let Some(reason) = r.push(&[0; FRAME_SAMPLES]) {
                self.finish_recording(reason);
            }
        }
        self.check_liveness(now);
    }

    /// The second half of a tick: one frame out (or a held caller's silence skipped).
    pub fn send_phase(&mut self, buf: &mut [u8]) {
        if self.sending {
            self.send_frame(buf);
        } else {
            self.sender.skip(FRAME_SAMPLES as u32);
        }
    }

    fn receive(&mut self, now: Instant, buf: &mut [u8]) {
        loop {
            let (len, src) = match self.port.socket.recv_from(buf) {
                Ok(x) => x,
                // WouldBlock ends the drain; ICMP errors surface here on Linux and say
                // nothing about our caller. Either way there is nothing more to read now.
                Err(_) => return,
            };
            let Some(data) = buf.get(..len) else { return };
            let pkt = match parse_rtp(data) {
                Ok(p) => p,
                Err(e) => {
                    self.receiver.on_error(&e);
                    self.stats.malformed += 1;
                    continue;
                }
            };
            if self.latch.handle_packet(src, pkt.ssrc, now) == LatchVerdict::DropForeign {
                self.stats.foreign_dropped += 1;
                continue;
            }
            if self.last_ssrc != Some(pkt.ssrc) {
                // A new source restarts event numbering; old timestamps mean nothing now.
                self.last_ssrc = Some(pkt.ssrc);
                self.rfc4733.reset();
            }
            self.stats.packets_in += 1;
            self.last_rx = now;
            if !self.receiver.on_packet(&pkt, now).is_fresh() {
                continue;
            }
            let key = if Some(pkt.pt) == self.params.telephone_event_pt {
                self.rfc4733
                    .handle(now, pkt.timestamp, pkt.marker, pkt.payload)
                    .map(|k| (k, KeySource::Rfc4733))
            } else if pkt.pt == self.params.payload_type {
                let n = self.params.codec.decode_into(pkt.payload, &mut self.pcm);
                self.frames_this_tick += 1;
                if let Some(b) = self.bridge.as_mut() {
                    b.heard.push(&self.pcm[..n]);
                }
                if let Some(r) = self.recorder.as_mut()
                    && let Some(reason) = r.push(&self.pcm[..n])
                {
                    self.finish_recording(reason);
                }
                self.inband
                    .push_frame(&self.pcm[..n])
                    .map(|k| (k, KeySource::Inband))
            } else {
                None
            };
            if let Some((key, source)) = key {
                if source == KeySource::Rfc4733
                    && let Some(b) = self.bridge.as_mut()
                {
                    b.heard_key = Some(key);
                }
                self.key_heard(key, source);
            }
        }
    }

    /// Barge-in happens here, in the tick that heard the key, so the caller hears the
    /// prompt stop within one frame rather than after a round trip through the call task.
    fn key_heard(&mut self, key: Key, source: KeySource) {
        self.stats.keys += 1;
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
        let _ = self.events.send(MediaEvent::Key {
            key,
            source,
            stopped_play,
        });
    }

    fn finish_recording(&mut self, reason: StopReason) {
        if let Some(r) = self.recorder.take() {
            let _ = self.events.send(MediaEvent::Recorded(r.finish(reason)));
        }
    }

    fn check_liveness(&mut self, now: Instant) {
        if self.no_media_reported || !self.sending {
            return;
        }
        if now.saturating_duration_since(self.last_rx) >= self.params.no_media_timeout {
            self.no_media_reported = true;
            let _ = self.events.send(MediaEvent::NoMedia);
        }
    }

    fn send_frame(&mut self, buf: &mut [u8]) {
        let remote = self.latch.remote();
        if let Some((key, sent)) = self.sending_key {
            if let Some(te) = self.params.telephone_event_pt {
                self.send_key_packet(te, key, sent, remote, buf);
                return;
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
            while let Some(prompt) = p.prompts.front() {
                if p.frame < prompt.frame_count() {
                    break;
                }
                p.prompts.pop_front();
                p.frame = 0;
            }
            if let Some(f) = p.prompts.front().and_then(|pr| pr.frame(codec, p.frame)) {
                frame = f;
                p.frame += 1;
            }
            // Report the end with the last frame, so the caller's timeout starts when the
            // prompt really stops.
            let last = p.prompts.len() <= 1
                && p.prompts
                    .front()
                    .is_none_or(|pr| p.frame >= pr.frame_count());
            if last {
                finished = Some(p.id);
            }
        }
        let sent = self.sender.next_packet(frame, buf);
        if finished.is_some() {
            self.playing = None;
        }
        if let Ok(len) = sent {
            self.transmit(remote, len, buf);
        }
        if let Some(id) = finished {
            let _ = self.events.send(MediaEvent::PlayFinished { id });
        }
    }

    fn send_key_packet(&mut self, te: u8, key: Key, sent: u16, remote: SocketAddr, buf: &mut [u8]) {
        let end = sent + 1 >= KEY_FRAMES;
        let ev = TelephoneEvent {
            event: key.event_code(),
            end,
            volume: 10,
            duration: (sent.min(KEY_FRAMES - 1) + 1) * FRAME_SAMPLES as u16,
        };
        if let Ok(len) = self.sender.telephone_event_packet(te, ev, buf) {
            self.transmit(remote, len, buf);
        }
        self.sender.skip(FRAME_SAMPLES as u32);
        if sent + 1 >= KEY_FRAMES + 2 {
            // Start packet, updates, and the end packet three times (RFC 4733 §2.5.1.4).
            self.sender.finish_event();
            self.sending_key = None;
        } else {
            self.sending_key = Some((key, sent + 1));
        }
    }

    fn transmit(&mut self, remote: SocketAddr, len: usize, buf: &[u8]) {
        if remote.ip().is_unspecified() || remote.port() == 0 {
            return;
        }
        if let Some(pkt) = buf.get(..len)
            && self.port.socket.send_to(pkt, remote).is_ok()
        {
            self.stats.packets_out += 1;
        }
    }
}

fn silence_frame(codec: Codec) -> [u8; FRAME_SAMPLES] {
    [codec.silence_byte(); FRAME_SAMPLES]
}
