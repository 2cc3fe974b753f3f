//! Deterministic mutation fuzzing of the codec: seeded xorshift, bounded count.
//! Every mutant is parsed; accepted ones have every accessor called, are printed and
//! re-parsed (printing must be stable). Nothing may panic. 180 000 mutants in all
//! (90k datagrams, 60k under tight limits, 30k through the stream framer; ~6 s in debug).

mod codec_common;
use codec_common as common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use hotline::sip::message::{
    Frame, Header, HeaderName, Headers, Limits, Message, StreamFramer, parse, parse_bytes,
};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INSERTS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b";",
    b":",
    b"<",
    b">",
    b"\"",
    b"[",
    b"]",
    b",",
    b"=",
    b"sip:",
    b"SIP/2.0/",
    b";branch=",
    b"\\",
    b"%",
    b"\0",
    b"\xff",
    b"@",
    b"?",
    b"*",
    b"\r\n ",
    b"\r\n\r\n",
    b"Via: ",
    b"Content-Length: 5\r\n",
    b"99999999999999999999",
];

fn mutate(rng: &mut XorShift, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let n = 1 + rng.below(4);
                let end = (at + n).min(v.len());
                v.drain(at.min(end)..end);
            }
            2 | 3 => {
                let ins = INSERTS[rng.below(INSERTS.len())];
                v.splice(at..at, ins.iter().copied());
            }
            4 if v.len() > 1 => {
                let j = rng.below(v.len());
                let i = at.min(v.len() - 1);
                v.swap(i, j);
            }
            _ => v.truncate(at),
        }
    }
    v
}

fn check_one(input: &[u8], limits: &Limits) {
    let Ok(m) = parse(input, limits) else { return };
    common::exercise(&m);
    let printed = m.to_bytes();
    // Printing may add a Content-Length line, CRs, and unfolded (longer) lines: allow for it.
    let roomy = Limits {
        max_message_bytes: limits.max_message_bytes * 2 + 64,
        max_headers: limits.max_headers + 1,
        max_line_bytes: limits.max_message_bytes * 2 + 64,
        max_body_bytes: limits.max_body_bytes,
    };
    let again = parse(&printed, &roomy).unwrap_or_else(|e| {
        panic!(
            "printed form does not parse: {e}\n{}",
            String::from_utf8_lossy(&printed)
        )
    });
    // Printing adds or fixes Content-Length; everything else must read back identical.
    let other = |h: &Headers| -> Vec<Header> {
        h.iter()
            .filter(|x| *x.name() != HeaderName::ContentLength)
            .cloned()
            .collect()
    };
    assert_eq!(other(m.headers()), other(again.headers()));
    assert_eq!(m.body(), again.body());
    assert_eq!(
        again.headers().content_length().ok().flatten(),
        Some(m.body().len())
    );
    match (&m, &again) {
        (Message::Request(a), Message::Request(b)) => {
            assert_eq!((&a.method, &a.uri), (&b.method, &b.uri))
        }
        (Message::Response(a), Message::Response(b)) => {
            assert_eq!((a.status, &a.reason), (b.status, &b.reason))
        }
        _ => panic!("kind changed on reprint"),
    }
    let _ = limits;
    assert_eq!(again.to_bytes(), printed, "printing is not stable");
}

fn run(seed: u64, count: usize, check: impl Fn(&[u8])) {
    let corpus = common::corpus();
    let mut rng = XorShift(seed);
    for i in 0..count {
        let base = &corpus[rng.below(corpus.len())];
        let input = mutate(&mut rng, base);
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            panic!(
                "iteration {i} (seed {seed:#x}) panicked on input {:?}",
                String::from_utf8_lossy(&input)
            );
        }
    }
}

#[test]
fn corpus_itself_is_stable() {
    let limits = Limits::default();
    for m in common::corpus() {
        check_one(&m, &limits);
    }
}

#[test]
fn mutated_datagrams_never_panic() {
    let limits = Limits::default();
    run(0x9E37_79B9_7F4A_7C15, 90_000, |input| {
        check_one(input, &limits)
    });
}

#[test]
fn mutated_datagrams_with_tight_limits_never_panic() {
    let limits = Limits {
        max_message_bytes: 300,
        max_headers: 6,
        max_line_bytes: 60,
        max_body_bytes: 20,
    };
    run(0xD1B5_4A32_D192_ED03, 60_000, |input| {
        check_one(input, &limits)
    });
}

#[test]
fn mutated_streams_never_panic() {
    let limits = Limits::default();
    run(0x2545_F491_4F6C_DD1D, 30_000, |input| {
        let mut f = StreamFramer::new(limits);
        let mut rng = XorShift(input.len() as u64 | 1);
        let mut rest = input;
        // Two copies back to back, fed in random chunks.
        let doubled = [input, input].concat();
        rest = if rest.len() % 2 == 0 { &doubled } else { rest };
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(64));
            f.push(&rest[..n]);
            rest = &rest[n..];
            loop {
                match f.pop() {
                    Ok(Some(Frame::Message(b))) => {
                        if let Ok(m) = parse_bytes(b, &limits) {
                            common::exercise(&m);
                        }
                    }
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
    });
}
