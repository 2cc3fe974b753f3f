//! RFC 4733 telephone-events: the receiver that turns a stream of event packets into key
//! presses, and the sender that turns a key press into packets.
//!
//! Owns the 4-byte payload codec and the rules for deduplication (updates, redundant end
//! packets, reordering, lost start packets, timestamp wrap, long events split into
//! segments). It must not parse RTP headers, keep timers or read a clock: the caller hands
//! in the RTP timestamp, marker bit, payload and the current time.

use std::time::{Duration, Instant};

use super::Key;

/// One telephone-event payload (RFC 4733 section 2.3):
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// |     event     |E|R| volume    |          duration             |
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code; 0-15 are the DTMF keys.
    pub event: u8,
    /// Set on the final packet(s) of the event.
    pub end: bool,
    /// Power level as a positive number of dB below 0 dBm0 (0-63).
    pub volume: u8,
    /// Duration so far, in RTP timestamp units (1/8000 s for 8 kHz audio).
    pub duration: u16,
}

impl TelephoneEvent {
    /// Length of one event block in bytes.
    pub const LEN: usize = 4;

    /// Parses the first event block of a payload. Shorter payloads are malformed and give
    /// `None`; extra bytes beyond the first block are ignored.
    pub fn parse(payload: &[u8]) -> Option<TelephoneEvent> {
        let [event, flags, d0, d1, ..] = *payload else {
            return None;
        };
        Some(TelephoneEvent {
            event,
            end: flags & 0x80 != 0,
            volume: flags & 0x3F,
            duration: u16::from_be_bytes([d0, d1]),
        })
    }

    /// The wire form. The reserved bit is always sent as zero; volume is clamped to 63.
    pub fn to_bytes(self) -> [u8; 4] {
        let flags = if self.end { 0x80 } else { 0x00 } | self.volume.min(63);
        let [d0, d1] = self.duration.to_be_bytes();
        [self.event, flags, d0, d1]
    }

    /// The DTMF key this event stands for, if it is one.
    pub fn key(self) -> Option<Key> {
        Key::from_event_code(self.event)
    }
}

/// How long after the last packet of an ended event a packet with the same timestamp is
/// taken as a new press rather than a duplicate. Some gateways never advance the timestamp
/// between events; a genuine duplicate arriving this late does not happen on a live path.
const SAME_TIMESTAMP_REUSE_AFTER: Duration = Duration::from_secs(1);

/// How long a packet whose timestamp is behind the current event's is taken as a late
/// straggler of an older event (and dropped) rather than the start of a new stream.
const STRAGGLER_WINDOW: Duration = Duration::from_secs(1);

/// How far behind the current event (in timestamp units, 10 s at 8 kHz) a straggler may be.
/// A larger jump backwards is a new stream (a new source after a transfer, for instance).
const STRAGGLER_MAX_DISTANCE: u32 = 80_000;

/// A long key press is sent as segments of at most 0xFFFF timestamp units; the next
/// segment starts where the previous one ended, without a marker bit. These bound how far
/// after the previous segment's start the next one may begin (missed final packets make
/// the last duration we saw shorter than the real one).
const SEGMENT_MIN_DISTANCE: u32 = 0xF000;
const SEGMENT_MAX_DISTANCE: u32 = 0x1_0000 + 1_600;

/// How long an event with no news is still taken as held down.
const ACTIVE_TIMEOUT: Duration = Duration::from_millis(500);

/// How many earlier event timestamps are remembered to recognise their late packets.
const RECENT: usize = 8;

#[derive(Debug, Clone, Copy)]
struct CurrentEvent {
    timestamp: u32,
    event: u8,
    ended: bool,
    max_duration: u16,
    last_packet: Instant,
}

/// Turns received telephone-event packets into key presses.
///
/// Each press is reported exactly once, on the first packet seen for it, so that a prompt
/// can be interrupted at once. Events are identified by their RTP timestamp: updates and
/// the (usually three) end packets share the start timestamp, and a new timestamp is a
/// new press, even for the same key. Call [`Rfc4733Receiver::reset`] when the RTP source
/// (SSRC) changes.
#[derive(Debug, Clone, Default)]
pub struct Rfc4733Receiver {
    current: Option<CurrentEvent>,
    recent: [Option<u32>; RECENT],
    recent_next: usize,
}

impl Rfc4733Receiver {
    pub fn new() -> Rfc4733Receiver {
        Rfc4733Receiver::default()
    }

    /// Forgets every event seen so far.
    pub fn reset(&mut self) {
        *self = Rfc4733Receiver::default();
    }

    /// Handles one telephone-event packet and returns the key if it starts a new press.
    ///
    /// `rtp_timestamp` and `marker` come from the RTP header, `payload` is the RTP payload.
    /// Malformed payloads and event codes that are not keys are ignored.
    pub fn handle(
        &mut self,
        now: Instant,
        rtp_timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<Key> {
        let ev = TelephoneEvent::parse(payload)?;
        let key = ev.key()?;

        if let Some(cur) = self.current.as_mut() {
            let since_last = now.saturating_duration_since(cur.last_packet);
            if cur.timestamp == rtp_timestamp {
                let reused = cur.event != ev.event
                    || (cur.ended && since_last >= SAME_TIMESTAMP_REUSE_AFTER);
                if !reused {
                    cur.ended |= ev.end;
                    cur.max_duration = cur.max_duration.max(ev.duration);
                    cur.last_packet = now;
                    return None;
                }
            } else if self.recent.contains(&Some(rtp_timestamp)) {
                return None;
            } else {
                let behind = cur.timestamp.wrapping_sub(rtp_timestamp);
                // A wrapping difference below 2^31 means "earlier", across the wrap too.
                let is_earlier = behind != 0 && behind < 0x8000_0000;
                if is_earlier && behind <= STRAGGLER_MAX_DISTANCE && since_last <= STRAGGLER_WINDOW
                {
                    return None;
                }
                let ahead = rtp_timestamp.wrapping_sub(cur.timestamp);
                let continues_long_event = !marker
                    && !cur.ended
                    && cur.event == ev.event
                    && since_last <= STRAGGLER_WINDOW
                    && (SEGMENT_MIN_DISTANCE..=SEGMENT_MAX_DISTANCE).contains(&ahead);
                if continues_long_event {
                    let previous = cur.timestamp;
                    cur.timestamp = rtp_timestamp;
                    cur.ended = ev.end;
                    cur.max_duration = ev.duration;
                    cur.last_packet = now;
                    self.remember(previous);
                    return None;
                }
            }
        }

        if let Some(previous) = self.current.map(|c| c.timestamp) {
            self.remember(previous);
        }
        self.current = Some(CurrentEvent {
            timestamp: rtp_timestamp,
            event: ev.event,
            ended: ev.end,
            max_duration: ev.duration,
            last_packet: now,
        });
        Some(key)
    }

    /// The key of the event in progress: its end has not been seen and its last packet is
    /// recent (senders update at least every 50 ms; a silent event has lost its end).
    pub fn active_key(&self, now: Instant) -> Option<Key> {
        self.current
            .filter(|c| !c.ended && now.saturating_duration_since(c.last_packet) < ACTIVE_TIMEOUT)
            .and_then(|c| Key::from_event_code(c.event))
    }

    fn remember(&mut self, timestamp: u32) {
        if let Some(slot) = self.recent.get_mut(self.recent_next) {
            *slot = Some(timestamp);
        }
        self.recent_next = (self.recent_next + 1) % RECENT;
    }
}

/// One packet to send for a key press.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc4733Packet {
    /// RTP timestamp: the start of the event, the same for every packet of it.
    pub timestamp: u32,
    /// RTP marker bit: set on the first packet only.
    pub marker: bool,
    /// The 4-byte RTP payload.
    pub payload: [u8; 4],
    /// True for the end packets (E bit set).
    pub end: bool,
    /// True for the second and third copies of the end packet. RFC 4733 lets these reuse
    /// the first end packet's sequence number; the RTP layer decides.
    pub retransmission: bool,
}

/// Produces the packets for one key press: one packet per call to
/// [`Rfc4733Sender::next_packet`], to be sent every packet interval (20 ms).
///
/// The first packet carries the marker bit; each update carries the duration so far; the
/// end packet is sent three times. Durations are capped at 0xFFFF timestamp units (about
/// 8.2 s at 8 kHz), longer than any key press we generate.
#[derive(Debug, Clone)]
pub struct Rfc4733Sender {
    event: u8,
    timestamp: u32,
    total: u16,
    step: u16,
    volume: u8,
    sent_updates: u32,
    sent_ends: u8,
}

impl Rfc4733Sender {
    /// Volume (dB below 0 dBm0) used unless told otherwise; a typical keypad level.
    pub const DEFAULT_VOLUME: u8 = 10;
    /// How many times the end packet is sent.
    pub const END_REPEATS: u8 = 3;
    /// Timestamp units per 20 ms packet at 8 kHz.
    pub const STEP_8K_20MS: u16 = 160;

    /// A press of `key` starting at RTP timestamp `start_timestamp` and lasting `duration`,
    /// at 8 kHz with a 20 ms packet interval.
    pub fn new(key: Key, start_timestamp: u32, duration: Duration) -> Rfc4733Sender {
        let units = duration.as_micros().saturating_mul(8) / 1000;
        let total = u16::try_from(units).unwrap_or(u16::MAX).max(1);
        Rfc4733Sender {
            event: key.event_code(),
            timestamp: start_timestamp,
            total,
            step: Self::STEP_8K_20MS,
            volume: Self::DEFAULT_VOLUME,
            sent_updates: 0,
            sent_ends: 0,
        }
    }

    /// Sets the volume field (dB below 0 dBm0, clamped to 63).
    pub fn with_volume(mut self, volume: u8) -> Rfc4733Sender {
        self.volume = volume.min(63);
        self
    }

    /// The event duration in timestamp units, as it will appear in the end packets.
    pub fn total_duration(&self) -> u16 {
        self.total
    }

    /// True when every packet, including the repeated end packets, has been produced.
    pub fn is_done(&self) -> bool {
        self.sent_ends >= Self::END_REPEATS
    }

    /// The next packet, or `None` when the press has been fully sent.
    pub fn next_packet(&mut self) -> Option<Rfc4733Packet> {
        if self.is_done() {
            return None;
        }
        let first = self.sent_updates == 0 && self.sent_ends == 0;
        let elapsed = (u64::from(self.sent_updates) + 1) * u64::from(self.step);
        let (duration, end) = if self.sent_ends > 0 || elapsed >= u64::from(self.total) {
            (self.total, true)
        } else {
            // elapsed < total <= u16::MAX here.
            (u16::try_from(elapsed).unwrap_or(self.total), false)
        };
        let retransmission = end && self.sent_ends > 0;
        if end {
            self.sent_ends += 1;
        } else {
            self.sent_updates += 1;
        }
        let payload = TelephoneEvent {
            event: self.event,
            end,
            volume: self.volume,
            duration,
        }
        .to_bytes();
        Some(Rfc4733Packet {
            timestamp: self.timestamp,
            marker: first,
            payload,
            end,
            retransmission,
        })
    }
}

impl Iterator for Rfc4733Sender {
    type Item = Rfc4733Packet;

    fn next(&mut self) -> Option<Rfc4733Packet> {
        self.next_packet()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn payload(key: Key, end: bool, duration: u16) -> [u8; 4] {
        TelephoneEvent {
            event: key.event_code(),
            end,
            volume: 10,
            duration,
        }
        .to_bytes()
    }

    /// Feeds packets `(offset from t0 in ms, timestamp, marker, payload)` and collects keys.
    fn feed(
        rx: &mut Rfc4733Receiver,
        t0: Instant,
        packets: &[(u64, u32, bool, [u8; 4])],
    ) -> String {
        packets
            .iter()
            .filter_map(|&(at, ts, m, p)| rx.handle(t0 + ms(at), ts, m, &p))
            .map(|k| k.as_char())
            .collect()
    }

    /// A whole press as a sender would produce it, at 20 ms per packet from `start_ms`.
    fn press(key: Key, ts: u32, start_ms: u64, length: Duration) -> Vec<(u64, u32, bool, [u8; 4])> {
        Rfc4733Sender::new(key, ts, length)
            .enumerate()
            .map(|(i, p)| (start_ms + 20 * i as u64, p.timestamp, p.marker, p.payload))
            .collect()
    }

    #[test]
    fn payload_round_trip_and_malformed() {
        let ev = TelephoneEvent {
            event: 11,
            end: true,
            volume: 7,
            duration: 0x1234,
        };
        assert_eq!(ev.to_bytes(), [11, 0x87, 0x12, 0x34]);
        assert_eq!(TelephoneEvent::parse(&ev.to_bytes()), Some(ev));
        assert_eq!(TelephoneEvent::parse(&[1, 2, 3]), None);
        assert_eq!(TelephoneEvent::parse(&[]), None);
        // The reserved bit is ignored.
        assert_eq!(
            TelephoneEvent::parse(&[5, 0x40 | 10, 0, 160]).map(|e| e.volume),
            Some(10)
        );
        assert_eq!(ev.key(), Some(Key::Pound));
    }

    #[test]
    fn sender_produces_start_updates_and_three_ends() {
        let packets: Vec<_> = Rfc4733Sender::new(Key::Five, 1000, ms(100)).collect();
        let durations: Vec<u16> = packets
            .iter()
            .map(|p| {
                TelephoneEvent::parse(&p.payload)
                    .map(|e| e.duration)
                    .unwrap_or(0)
            })
            .collect();
        assert_eq!(durations, [160, 320, 480, 640, 800, 800, 800]);
        assert!(packets.iter().all(|p| p.timestamp == 1000));
        assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
        assert!(packets[0].marker);
        let ends: Vec<bool> = packets.iter().map(|p| p.end).collect();
        assert_eq!(ends, [false, false, false, false, true, true, true]);
        let retrans: Vec<bool> = packets.iter().map(|p| p.retransmission).collect();
        assert_eq!(retrans, [false, false, false, false, false, true, true]);
        assert!(
            packets
                .iter()
                .all(|p| p.payload[0] == 5 && p.payload[1] & 0x3F == 10)
        );
    }

    #[test]
    fn sender_short_and_long_presses() {
        // Shorter than one packet: the first packet already ends the event.
        let short: Vec<_> = Rfc4733Sender::new(Key::Star, 7, ms(10)).collect();
        assert_eq!(short.len(), 3);
        assert!(short[0].marker && short[0].end);
        // Longer than the duration field: capped.
        let mut long = Rfc4733Sender::new(Key::Zero, 7, Duration::from_secs(20));
        assert_eq!(long.total_duration(), u16::MAX);
        let last = long.by_ref().last();
        assert_eq!(
            last.and_then(|p| TelephoneEvent::parse(&p.payload))
                .map(|e| e.duration),
            Some(u16::MAX)
        );
        assert!(long.is_done());
        assert_eq!(long.next_packet(), None);
    }

    #[test]
    fn one_report_per_press_on_the_first_packet() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        let packets = press(Key::Seven, 5000, 0, ms(200));
        assert_eq!(
            rx.handle(t0, packets[0].1, packets[0].2, &packets[0].3),
            Some(Key::Seven)
        );
        assert_eq!(rx.active_key(t0), Some(Key::Seven));
        assert_eq!(rx.active_key(t0 + ms(600)), None);
        assert_eq!(feed(&mut rx, t0, &packets[1..]), "");
        assert_eq!(rx.active_key(t0), None);
    }

    #[test]
    fn redundant_updates_and_duplicates_are_ignored() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        let mut packets = press(Key::One, 100, 0, ms(120));
        // Every packet delivered twice (network duplication), plus extra end packets.
        packets = packets.iter().flat_map(|p| [*p, *p]).collect();
        packets.push((400, 100, false, payload(Key::One, true, 960)));
        assert_eq!(feed(&mut rx, t0, &packets), "1");
    }

    #[test]
    fn lost_start_packets_still_report_once() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        let packets = press(Key::Two, 100, 0, ms(100));
        // Only the end packets arrive.
        let ends: Vec<_> = packets
            .iter()
            .copied()
            .filter(|p| p.3[1] & 0x80 != 0)
            .collect();
        assert_eq!(feed(&mut rx, t0, &ends), "2");
        // Only a middle update arrives for the next press.
        let next = press(Key::Three, 2000, 300, ms(100));
        assert_eq!(feed(&mut rx, t0, &next[2..3]), "3");
    }

    #[test]
    fn back_to_back_same_key_is_two_presses() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        let mut packets = press(Key::Nine, 1000, 0, ms(80));
        packets.extend(press(Key::Nine, 1000 + 960, 120, ms(80)));
        packets.extend(press(Key::Nine, 1000 + 1920, 240, ms(80)));
        assert_eq!(feed(&mut rx, t0, &packets), "999");
    }

    #[test]
    fn reordered_packets() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        let a = press(Key::Four, 1000, 0, ms(80));
        let b = press(Key::Five, 1800, 100, ms(80));
        // An update overtakes the start packet, and the end packets of the first press
        // arrive after the second press has begun.
        let order = [
            a[1], a[0], a[2], b[0], a[3], a[4], b[2], b[1], a[5], b[3], b[4], b[5],
        ];
        assert_eq!(feed(&mut rx, t0, &order), "45");
    }

    #[test]
    fn straggler_from_an_unseen_older_event_is_dropped() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        let order = [
            (0, 5000, true, payload(Key::Six, false, 160)),
            (10, 4000, false, payload(Key::Eight, true, 480)),
        ];
        assert_eq!(feed(&mut rx, t0, &order), "6");
    }

    #[test]
    fn timestamp_wrap() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        let mut packets = press(Key::One, u32::MAX - 200, 0, ms(80));
        packets.extend(press(Key::Two, 600, 120, ms(80)));
        // A late end packet of the first press, after the wrap.
        packets.push((300, u32::MAX - 200, false, payload(Key::One, true, 640)));
        packets.extend(press(Key::Three, 2000, 400, ms(80)));
        assert_eq!(feed(&mut rx, t0, &packets), "123");
    }

    #[test]
    fn an_event_whose_end_is_lost_does_not_block_the_next_key() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        let mut packets: Vec<_> = press(Key::Star, 100, 0, ms(100))
            .into_iter()
            .filter(|p| p.3[1] & 0x80 == 0)
            .collect();
        packets.extend(press(Key::Star, 1500, 200, ms(100)));
        packets.extend(press(Key::Pound, 3000, 400, ms(100)));
        assert_eq!(feed(&mut rx, t0, &packets), "**#");
    }

    #[test]
    fn non_key_events_and_malformed_payloads_are_ignored() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        assert_eq!(rx.handle(t0, 10, true, &[16, 0, 0, 160]), None); // flash
        assert_eq!(rx.handle(t0, 10, true, &[1, 0, 0]), None);
        assert_eq!(rx.handle(t0, 10, true, &[]), None);
        assert_eq!(rx.handle(t0, 20, true, &[12, 10, 0, 160]), Some(Key::A));
        assert_eq!(rx.handle(t0, 30, true, &[15, 10, 0, 160]), Some(Key::D));
    }

    #[test]
    fn same_timestamp_reused_by_a_sender() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        // A different key with the same timestamp is a new press at once.
        let packets = [
            (0, 77, true, payload(Key::One, false, 160)),
            (20, 77, false, payload(Key::One, true, 320)),
            (200, 77, true, payload(Key::Two, false, 160)),
            (220, 77, false, payload(Key::Two, true, 320)),
            // The same key again, long after the end: a new press.
            (2000, 77, true, payload(Key::Two, false, 160)),
            // A late duplicate shortly after: not a press.
            (2100, 77, false, payload(Key::Two, true, 320)),
        ];
        assert_eq!(feed(&mut rx, t0, &packets), "122");
    }

    #[test]
    fn long_press_split_into_segments_is_one_press() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        let packets = [
            (0, 1000, true, payload(Key::Zero, false, 160)),
            (8000, 1000, false, payload(Key::Zero, false, 0xFF00)),
            (8190, 1000, false, payload(Key::Zero, false, 0xFFFF)),
            (8210, 1000 + 0xFFFF, false, payload(Key::Zero, false, 160)),
            (8400, 1000 + 0xFFFF, false, payload(Key::Zero, true, 1600)),
            (
                9000,
                1000 + 0xFFFF + 5000,
                true,
                payload(Key::Zero, false, 160),
            ),
        ];
        assert_eq!(feed(&mut rx, t0, &packets), "00");
    }

    #[test]
    fn new_stream_with_earlier_timestamps_after_a_pause() {
        let mut rx = Rfc4733Receiver::new();
        let t0 = Instant::now();
        let mut packets = press(Key::One, 50_000, 0, ms(80));
        // Same source restarted with lower timestamps, seconds later.
        packets.extend(press(Key::Two, 10_000, 5000, ms(80)));
        assert_eq!(feed(&mut rx, t0, &packets), "12");
        rx.reset();
        assert_eq!(
            rx.handle(t0, 50_000, true, &payload(Key::One, false, 160)),
            Some(Key::One)
        );
    }
}
