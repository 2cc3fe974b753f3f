//! DTMF keys, and the two ways they reach us: RFC 4733 telephone-events (`rfc4733`) and
//! in-band tones heard in the audio (`goertzel`).
//!
//! This module owns the `Key` type that the rest of the engine (flow machine, call
//! records) sees. It must not know about calls, timers or sockets: the receivers here are
//! pure state machines fed with packets or samples.

pub mod goertzel;
pub mod rfc4733;

pub use goertzel::InbandDetector;
pub use rfc4733::{Rfc4733Packet, Rfc4733Receiver, Rfc4733Sender, TelephoneEvent};

/// One DTMF key: 0-9, `*`, `#` and the rarely seen A-D column.
///
/// The discriminant is the RFC 4733 event code, so conversions both ways are free.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Key {
    Zero = 0,
    One = 1,
    Two = 2,
    Three = 3,
    Four = 4,
    Five = 5,
    Six = 6,
    Seven = 7,
    Eight = 8,
    Nine = 9,
    Star = 10,
    Pound = 11,
    A = 12,
    B = 13,
    C = 14,
    D = 15,
}

/// Row (low group) frequencies in Hz, top row of the keypad first.
pub const ROW_FREQS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// Column (high group) frequencies in Hz, left column first.
pub const COL_FREQS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];

/// The keypad as rows and columns, indexed like `ROW_FREQS` and `COL_FREQS`.
const KEYPAD: [[Key; 4]; 4] = [
    [Key::One, Key::Two, Key::Three, Key::A],
    [Key::Four, Key::Five, Key::Six, Key::B],
    [Key::Seven, Key::Eight, Key::Nine, Key::C],
    [Key::Star, Key::Zero, Key::Pound, Key::D],
];

impl Key {
    /// Every key, in event-code order.
    pub const ALL: [Key; 16] = [
        Key::Zero,
        Key::One,
        Key::Two,
        Key::Three,
        Key::Four,
        Key::Five,
        Key::Six,
        Key::Seven,
        Key::Eight,
        Key::Nine,
        Key::Star,
        Key::Pound,
        Key::A,
        Key::B,
        Key::C,
        Key::D,
    ];

    /// The RFC 4733 event code (0-15).
    pub const fn event_code(self) -> u8 {
        self as u8
    }

    /// The key for an RFC 4733 event code; codes above 15 (flash, modem tones...) are not keys.
    pub const fn from_event_code(code: u8) -> Option<Key> {
        if (code as usize) < Key::ALL.len() {
            Some(Key::ALL[code as usize])
        } else {
            None
        }
    }

    /// The character on the keypad: `'0'..='9'`, `'*'`, `'#'`, `'A'..='D'`.
    pub const fn as_char(self) -> char {
        match self {
            Key::Star => '*',
            Key::Pound => '#',
            Key::A => 'A',
            Key::B => 'B',
            Key::C => 'C',
            Key::D => 'D',
            digit => (b'0' + digit as u8) as char,
        }
    }

    /// Parses a keypad character; `a`-`d` are accepted in lower case too.
    pub const fn from_char(c: char) -> Option<Key> {
        match c {
            '0'..='9' => Key::from_event_code(c as u8 - b'0'),
            '*' => Some(Key::Star),
            '#' => Some(Key::Pound),
            'A' | 'a' => Some(Key::A),
            'B' | 'b' => Some(Key::B),
            'C' | 'c' => Some(Key::C),
            'D' | 'd' => Some(Key::D),
            _ => None,
        }
    }

    /// True for 0-9.
    pub const fn is_digit(self) -> bool {
        (self as u8) <= 9
    }

    /// The (row, column) indexes of the key on the keypad.
    pub const fn position(self) -> (usize, usize) {
        let mut row = 0;
        while row < 4 {
            let mut col = 0;
            while col < 4 {
                if KEYPAD[row][col] as u8 == self as u8 {
                    return (row, col);
                }
                col += 1;
            }
            row += 1;
        }
        // Every key is on the keypad; this line is never reached.
        (0, 0)
    }

    /// The key at a keypad position; `None` outside 0..4.
    pub fn at(row: usize, col: usize) -> Option<Key> {
        KEYPAD.get(row)?.get(col).copied()
    }

    /// The (low, high) tone pair in Hz.
    pub const fn frequencies(self) -> (f32, f32) {
        let (row, col) = self.position();
        (ROW_FREQS[row], COL_FREQS[col])
    }
}

impl From<Key> for char {
    fn from(key: Key) -> char {
        key.as_char()
    }
}

/// A character that is not a DTMF key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a DTMF key (expected 0-9, *, #, A-D)")]
pub struct NotAKey(pub char);

impl TryFrom<char> for Key {
    type Error = NotAKey;

    fn try_from(c: char) -> Result<Key, NotAKey> {
        Key::from_char(c).ok_or(NotAKey(c))
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        f.write_char(self.as_char())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chars_and_event_codes_round_trip() {
        for (code, key) in Key::ALL.iter().enumerate() {
            assert_eq!(key.event_code() as usize, code);
            assert_eq!(Key::from_event_code(code as u8), Some(*key));
            assert_eq!(Key::from_char(key.as_char()), Some(*key));
            assert_eq!(Key::try_from(char::from(*key)), Ok(*key));
        }
        assert_eq!(Key::from_event_code(16), None);
        assert_eq!(Key::from_char('d'), Some(Key::D));
        assert_eq!(Key::try_from('x'), Err(NotAKey('x')));
        assert_eq!(
            "0123456789*#ABCD",
            Key::ALL.iter().map(|k| k.to_string()).collect::<String>()
        );
    }

    #[test]
    fn keypad_positions() {
        assert_eq!(Key::One.frequencies(), (697.0, 1209.0));
        assert_eq!(Key::Zero.frequencies(), (941.0, 1336.0));
        assert_eq!(Key::Pound.frequencies(), (941.0, 1477.0));
        assert_eq!(Key::D.frequencies(), (941.0, 1633.0));
        for key in Key::ALL {
            let (r, c) = key.position();
            assert_eq!(Key::at(r, c), Some(key));
        }
        assert_eq!(Key::at(4, 0), None);
        assert!(Key::Nine.is_digit() && !Key::Star.is_digit());
    }
}
