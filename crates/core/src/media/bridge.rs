//! The audio path between two bridged sessions (a caller and a transfer target or an
//! agent). Each side keeps what it heard this tick in a small ring of decoded frames; the
//! media clock moves those frames to the other side between its receive and send passes,
//! and the other side sends one frame per tick from them in its own codec. Keys that
//! arrive as RFC 4733 events are passed across as events.
//!
//! Both sessions live on the same media worker, so the move is two plain borrows: no
//! lock, no channel, no allocation per frame. The ring is small on purpose: it absorbs
//! jitter of a few frames, and beyond that the oldest audio is dropped rather than let the
//! delay grow.

use crate::media::dtmf::Key;
use crate::media::g711::FRAME_SAMPLES;

/// Frames a ring holds (100 ms).
const RING_FRAMES: usize = 5;
/// When more than this many frames have waited to be sent for [`TRIM_AFTER`] ticks in a
/// row, one is skipped, so a delay that jitter added once shrinks back. Two clocks 20 ms
/// apart but out of phase routinely deliver 0 or 2 frames in a tick; that must not cost
/// audio, so only a lasting excess is trimmed.
const TARGET_DEPTH: usize = 2;
const TRIM_AFTER: u32 = 50;

type Frame = [i16; FRAME_SAMPLES];

/// A fixed ring of decoded 20 ms frames.
pub struct FrameRing {
    frames: [Frame; RING_FRAMES],
    head: usize,
    len: usize,
}

impl Default for FrameRing {
    fn default() -> Self {
        FrameRing {
            frames: [[0; FRAME_SAMPLES]; RING_FRAMES],
            head: 0,
            len: 0,
        }
    }
}

impl FrameRing {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a frame (shorter input is padded with silence); a full ring drops its oldest.
    pub fn push(&mut self, pcm: &[i16]) {
        if self.len == RING_FRAMES {
            self.head = (self.head + 1) % RING_FRAMES;
            self.len -= 1;
        }
        let slot = &mut self.frames[(self.head + self.len) % RING_FRAMES];
        let n = pcm.len().min(FRAME_SAMPLES);
        slot[..n].copy_from_slice(&pcm[..n]);
        slot[n..].fill(0);
        self.len += 1;
    }

    /// The oldest frame, if any.
    pub fn pop(&mut self) -> Option<&Frame> {
        if self.len == 0 {
            return None;
        }
        let at = self.head;
        self.head = (self.head + 1) % RING_FRAMES;
        self.len -= 1;
        Some(&self.frames[at])
    }

    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

/// What a bridged session keeps: what it heard (to go across) and what came across (to
/// send). Allocated when a session is bridged, so unbridged calls carry none of it.
#[derive(Default)]
pub struct BridgeBuffers {
    pub heard: FrameRing,
    pub to_send: FrameRing,
    /// A key heard as RFC 4733, to be sent to the other side as RFC 4733.
    pub heard_key: Option<Key>,
    /// Ticks in a row with more than [`TARGET_DEPTH`] frames waiting.
    deep_ticks: u32,
}

impl BridgeBuffers {
    /// The frame to send this tick, keeping the delay near [`TARGET_DEPTH`] frames.
    pub fn next_frame(&mut self) -> Option<&Frame> {
        if self.to_send.len() > TARGET_DEPTH {
            self.deep_ticks += 1;
            if self.deep_ticks >= TRIM_AFTER {
                self.deep_ticks = 0;
                self.to_send.pop();
            }
        } else {
            self.deep_ticks = 0;
        }
        self.to_send.pop()
    }
}

/// Moves what `from` heard to `to`'s queue to send.
pub fn relay(from: &mut BridgeBuffers, to: &mut BridgeBuffers) -> Option<Key> {
    while let Some(f) = from.heard.pop() {
        to.to_send.push(f);
    }
    from.heard_key.take()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Vec<i16> {
        vec![v; FRAME_SAMPLES]
    }

    #[test]
    fn frames_come_out_in_order_and_a_full_ring_drops_the_oldest() {
        let mut r = FrameRing::default();
        for v in 1..=7 {
            r.push(&frame(v));
        }
        assert_eq!(r.len(), RING_FRAMES);
        let got: Vec<i16> = std::iter::from_fn(|| r.pop().map(|f| f[0])).collect();
        assert_eq!(got, vec![3, 4, 5, 6, 7]);
    }

    #[test]
    fn short_frames_are_padded_with_silence() {
        let mut r = FrameRing::default();
        r.push(&frame(9));
        r.pop();
        r.push(&[5; 10]);
        let f = r.pop().unwrap();
        assert_eq!(f[9], 5);
        assert_eq!(f[10], 0);
    }

    #[test]
    fn relay_moves_heard_audio_across_and_sending_trims_the_delay() {
        let mut a = BridgeBuffers::default();
        let mut b = BridgeBuffers::default();
        for v in 1..=4 {
            a.heard.push(&frame(v));
        }
        a.heard_key = Key::from_char('5');
        assert_eq!(relay(&mut a, &mut b), Key::from_char('5'));
        assert!(a.heard.is_empty());
        assert_eq!(b.to_send.len(), 4);
        // A passing burst costs nothing: every frame is sent in order.
        for want in 1..=4 {
            assert_eq!(b.next_frame().map(|f| f[0]), Some(want));
        }
        assert_eq!(b.next_frame(), None);
    }

    #[test]
    fn a_lasting_excess_of_waiting_frames_is_trimmed() {
        let mut b = BridgeBuffers::default();
        for v in 0..4 {
            b.to_send.push(&frame(v));
        }
        // One frame in and one out per tick: the depth stays at four until trimmed.
        let mut sent = Vec::new();
        for v in 4..(4 + TRIM_AFTER as i16 + 10) {
            b.to_send.push(&frame(v));
            sent.push(b.next_frame().map(|f| f[0]).unwrap());
        }
        let skipped = sent.windows(2).filter(|w| w[1] != w[0] + 1).count();
        assert_eq!(skipped, 1, "{sent:?}");
        assert!(b.to_send.len() <= 4);
    }
}
