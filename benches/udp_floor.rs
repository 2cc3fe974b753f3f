//! The floor under the engine's CPU per call: what the kernel alone charges for a call's
//! RTP when there is no session, no prompt, no detector, only the packets. Two threads
//! stand in for the engine's media worker and the load tool's caller clock. Each owns one
//! UDP socket per call on loopback, registered with its own ring, and every 20 ms it
//! reads each of its sockets once (arrival times on, as both real ones do) and sends one
//! 172-byte packet (a 20 ms G.711 frame with its RTP header) from each to its peer, in
//! one batched submission: the IO the engine does per call, done the cheapest way it
//! does it. As in the real pair, the callers' sockets are connected to their peers and
//! the engine's are not (`HOTLINE_FLOOR_ENGINE_CONNECTED=1` connects them too, to show
//! what that would save: the engine keeps them unconnected so that RTP from a foreign
//! address still reaches the session, which counts and logs it). What each thread is charged (user and system time, which on loopback
//! includes the delivery into the receiver's socket, paid by the sender) is the least
//! any engine built on one socket per call pays on this kernel.
//!
//! It is a test marked `#[ignore]`, run only when asked for:
//!
//! ```text
//! ulimit -n 20000
//! HOTLINE_FLOOR_CALLS=1000 HOTLINE_FLOOR_SECONDS=20 \
//!     cargo test --release --bench udp_floor -- --ignored --nocapture
//! ```
//!
//! It prints each side's share of a core and of a core per call; nothing is asserted
//! about the figures. Where io_uring is missing it says so and measures nothing.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use hotline::media::uring::{Uring, watch_arrivals};

const TICK: Duration = Duration::from_millis(20);
/// A 20 ms G.711 frame and its 12-byte RTP header.
const PACKET: usize = 172;
/// Time left for both sides to settle before the measured window.
const WARM_UP: Duration = Duration::from_secs(3);

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// This thread's user plus system time so far.
fn thread_cpu() -> Duration {
    // SAFETY: getrusage writes one rusage into the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_THREAD names the calling thread.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// One side: its sockets, their peers, and what it measured.
struct Side {
    sockets: Vec<UdpSocket>,
    peers: Vec<SocketAddr>,
    /// Whether each socket is connected to its peer (its sends then name no address).
    connected: bool,
}

struct Measured {
    cpu: Duration,
    wall: Duration,
    received: u64,
    sent: u64,
    late_ticks: u64,
}

fn bind_many(n: usize) -> Vec<UdpSocket> {
    (0..n)
        .map(|_| {
            let s = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback socket");
            s.set_nonblocking(true).expect("nonblocking");
            s
        })
        .collect()
}

/// Ticks every 20 ms until `end`, measuring from `start` on.
fn run(side: Side, start: Instant, end: Instant, ready: Arc<Barrier>) -> Option<Measured> {
    let mut ring = Uring::new().ok();
    if let Some(r) = ring.as_mut() {
        for s in &side.sockets {
            r.register(s.as_raw_fd());
            watch_arrivals(s.as_raw_fd()).expect("SO_TIMESTAMPNS");
        }
    }
    ready.wait();
    let mut ring = ring?;
    let payload = [0x55u8; PACKET];
    let mut next = Instant::now();
    let (mut cpu0, mut measuring) = (Duration::ZERO, false);
    let (mut received, mut sent, mut late_ticks) = (0u64, 0u64, 0u64);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if !measuring && now >= start {
            measuring = true;
            cpu0 = thread_cpu();
            (received, sent, late_ticks) = (0, 0, 0);
        }
        for (i, s) in side.sockets.iter().enumerate() {
            ring.queue_recv(i as u64, s.as_raw_fd());
        }
        ring.receive().expect("read pass");
        received += ring.received().count() as u64;
        ring.clear_recvs();
        for (s, &to) in side.sockets.iter().zip(&side.peers) {
            if side.connected {
                ring.queue_send_connected_with(s.as_raw_fd(), |buf| {
                    buf.get_mut(..PACKET)?.copy_from_slice(&payload);
                    Some(PACKET)
                });
            } else {
                ring.queue_send(s.as_raw_fd(), to, &payload);
            }
        }
        sent += ring.flush_sends().expect("send pass").sent;
        next += TICK;
        match next.checked_duration_since(Instant::now()) {
            Some(wait) => thread::sleep(wait),
            None => {
                late_ticks += 1;
                next = Instant::now();
            }
        }
    }
    for s in &side.sockets {
        ring.unregister(s.as_raw_fd());
    }
    Some(Measured {
        cpu: thread_cpu().saturating_sub(cpu0),
        wall: end.saturating_duration_since(start),
        received,
        sent,
        late_ticks,
    })
}

#[test]
#[ignore]
fn the_kernels_share_of_a_calls_rtp() {
    let calls = setting("HOTLINE_FLOOR_CALLS", 1000) as usize;
    let seconds = setting("HOTLINE_FLOOR_SECONDS", 20);
    let engine = bind_many(calls);
    let callers = bind_many(calls);
    let addrs = |v: &[UdpSocket]| -> Vec<SocketAddr> {
        v.iter()
            .map(|s| s.local_addr().expect("local address"))
            .collect()
    };
    let (engine_addrs, caller_addrs) = (addrs(&engine), addrs(&callers));
    let engine_connected = setting("HOTLINE_FLOOR_ENGINE_CONNECTED", 0) == 1;
    for ((e, c), (&ea, &ca)) in engine
        .iter()
        .zip(&callers)
        .zip(engine_addrs.iter().zip(&caller_addrs))
    {
        c.connect(ea).expect("connect a caller's socket");
        if engine_connected {
            e.connect(ca).expect("connect an engine socket");
        }
    }
    let start = Instant::now() + WARM_UP;
    let end = start + Duration::from_secs(seconds);
    let ready = Arc::new(Barrier::new(2));
    let spawn = |name: &str, side: Side, ready: Arc<Barrier>| {
        thread::Builder::new()
            .name(name.into())
            .spawn(move || run(side, start, end, ready))
            .expect("spawn")
    };
    let engine_side = spawn(
        "engine",
        Side {
            sockets: engine,
            peers: caller_addrs,
            connected: engine_connected,
        },
        ready.clone(),
    );
    let caller_side = spawn(
        "callers",
        Side {
            sockets: callers,
            peers: engine_addrs,
            connected: true,
        },
        ready,
    );
    let (e, c) = (
        engine_side.join().expect("engine side"),
        caller_side.join().expect("caller side"),
    );
    let (Some(e), Some(c)) = (e, c) else {
        println!("io_uring is unavailable here: nothing measured");
        return;
    };
    println!(
        "calls {calls}, {seconds} s measured, one packet each way per call per 20 ms; \
         engine sockets {}",
        if engine_connected {
            "connected"
        } else {
            "unconnected"
        }
    );
    for (name, m) in [("engine side", e), ("caller side", c)] {
        let share = 100.0 * m.cpu.as_secs_f64() / m.wall.as_secs_f64();
        println!(
            "{name:<12} {share:6.1} % of a core, {:.4} % per call; sent {}, received {}, late ticks {}",
            share / calls as f64,
            m.sent,
            m.received,
            m.late_ticks
        );
    }
}
