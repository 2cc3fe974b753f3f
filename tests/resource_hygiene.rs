//! Resource hygiene: after a couple of thousand short calls, in sequence and in parallel,
//! the engine holds the same open files, tasks and RTP ports as before them.
//!
//! The engine runs in this process, so the descriptors counted (`/proc/self/fd`) are the
//! test's callers' too: every caller is dropped before the count. Bounded in count and in
//! time; the settle waits poll, they do not sleep a fixed time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{SECOND, addr, server};
use hotline::config::Protocol;
use hotline_load::caller::{CallMedia, Offer, Phone};

/// Calls in all; each caller hangs up as soon as the call is set up.
const CALLS: usize = 2000;
/// Callers at once in the parallel half.
const PARALLEL: usize = 40;
/// The calls stop being placed after this long, whatever their count.
const BUDGET: Duration = Duration::from_secs(40);

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// One caller placing calls one after the other until `left` runs out or time is up.
async fn caller(
    sip: std::net::SocketAddr,
    left: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
    until: Instant,
) {
    let mut phone = Phone::new(Protocol::Udp, sip).await.unwrap();
    while Instant::now() < until
        && left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    {
        let media = CallMedia::bind(std::net::Ipv4Addr::LOCALHOST.into(), false).unwrap();
        let Ok(mut call) = phone.call("100", &media, Offer::Default).await else {
            continue;
        };
        if phone.hang_up(&mut call).await.is_ok() {
            done.fetch_add(1, Ordering::Relaxed);
        }
        media.close();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_calls_leave_nothing_behind() {
    let srv = server(|c| {
        c.rtp_ports = hotline::config::PortRange {
            first: 36000,
            last: 37999,
        };
        // Admission is not what this test is about: calls come as fast as the engine
        // answers them, far above the default rate of new calls.
        c.admission.calls_per_second = 1_000_000.0;
        c.admission.burst = 1_000_000;
    })
    .await;
    let sip = addr(&srv, Protocol::Udp);
    let deps = srv.server.deps.clone();
    let done = Arc::new(AtomicUsize::new(0));

    // A few calls first: what the engine sets up once (pools, lazy tables) is not a leak.
    let warm = Arc::new(AtomicUsize::new(10));
    caller(sip, warm, done.clone(), Instant::now() + 20 * SECOND).await;
    let settle = |want: Option<(usize, usize)>| {
        let deps = deps.clone();
        async move {
            let until = Instant::now() + 30 * SECOND;
            loop {
                let r = deps.resources();
                let (fds, tasks) = (open_fds(), r.tasks);
                let idle = r.call_tasks == 0 && r.rtp_ports == 0 && deps.media.session_count() == 0;
                let back = want.is_none_or(|(f, t)| fds <= f && tasks <= t);
                if idle && back {
                    return (fds, tasks);
                }
                assert!(
                    Instant::now() < until,
                    "not back after 30 s: {r:?}, {fds} fds (want {want:?}), {} sessions",
                    deps.media.session_count()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let (fds0, tasks0) = settle(None).await;

    let t0 = Instant::now();
    let until = t0 + BUDGET;
    // Half in sequence, from one caller...
    let left = Arc::new(AtomicUsize::new(CALLS / 2));
    caller(sip, left, done.clone(), t0 + BUDGET / 2).await;
    // ...half in parallel.
    let left = Arc::new(AtomicUsize::new(CALLS - CALLS / 2));
    let callers: Vec<_> = (0..PARALLEL)
        .map(|_| tokio::spawn(caller(sip, left.clone(), done.clone(), until)))
        .collect();
    for c in callers {
        c.await.unwrap();
    }
    let placed = done.load(Ordering::Relaxed) - 10;
    let took = t0.elapsed();
    eprintln!("{placed} calls in {took:?}; before: {fds0} fds, {tasks0} tasks");
    assert!(placed >= 500, "only {placed} calls completed in {took:?}");

    let (fds1, tasks1) = settle(Some((fds0, tasks0))).await;
    eprintln!("after: {fds1} fds, {tasks1} tasks, {:?}", deps.resources());
    assert_eq!(deps.resources().rtp_ports, 0);
    assert_eq!(deps.resources().call_tasks, 0);
    assert_eq!(deps.registry.len(), 0);
}
