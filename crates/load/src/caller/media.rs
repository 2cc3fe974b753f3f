//! The scripted caller's audio: one RTP socket per call, served by a shared clock thread
//! (the same one-tick-serves-all design as the engine's media clock, so a load of a thousand
//! callers costs one wake-up per 20 ms). Every tick it reads what the hotline sent, with the
//! kernel's arrival timestamps so the measured gaps are the engine's and not this thread's,
//! and sends one frame: silence, a DTMF tone, or an RFC 4733 event. Reads and sends go
//! through the batched ring of `hotline-uring` (one system call for every call's frame of
//! a tick), or, where io_uring is missing, one `recvmsg`/`sendto` per packet.

use std::collections::VecDeque;
use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use hotline_uring::Uring;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use nix::sys::time::TimeSpec;
use nix::time::{ClockId, clock_gettime};

use crate::media::dtmf::Key;
use crate::media::g711::{Codec, FRAME_SAMPLES};
use crate::media::prompt::Prompt;
use crate::media::rtp::{RtpSender, TelephoneEvent, parse_rtp};
use crate::media::tone::dtmf_tone;

/// How a scripted caller presses a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMethod {
    /// RFC 4733 telephone-events.
    Rfc4733,
    /// Dual tones in the audio, as an analogue gateway would send them.
    Inband,
}

enum Out {
    Audio([u8; FRAME_SAMPLES]),
    Event(TelephoneEvent, bool),
}

/// One received audio packet.
#[derive(Debug, Clone)]
pub struct Heard {
    pub seq: u16,
    pub payload: [u8; FRAME_SAMPLES],
}

struct State {
    socket: UdpSocket,
    remote: Option<SocketAddr>,
    /// Whether the socket is connected to `remote` (see [`connect_sockets`]).
    connected: bool,
    codec: Codec,
    pt: u8,
    te_pt: Option<u8>,
    sender: RtpSender,
    out: VecDeque<Out>,
    keep_audio: bool,
    audio: Vec<Heard>,
    /// Inter-arrival gaps of audio packets, in microseconds (kernel timestamps).
    gaps_us: Vec<u32>,
    /// When the last audio packet arrived (kernel real time).
    last_arrival: Option<Duration>,
    /// A frame to look for (the start of an expected prompt) and when it was seen.
    watch: Option<([u8; FRAME_SAMPLES], Option<Instant>)>,
    packets_in: u64,
    packets_out: u64,
    closed: bool,
    /// Keys received as RFC 4733 events, in order.
    keys_heard: Vec<char>,
    last_event_ts: Option<u32>,
}

/// The caller side of one call's media.
#[derive(Clone)]
pub struct CallMedia {
    state: Arc<Mutex<State>>,
    pub local: SocketAddr,
}

/// Figures of one call's reception.
#[derive(Debug, Default, Clone)]
pub struct ReceptionStats {
    pub packets_in: u64,
    pub packets_out: u64,
    pub gaps_us: Vec<u32>,
}

fn lock(s: &Mutex<State>) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|e| e.into_inner())
}

impl CallMedia {
    /// Binds an RTP socket on `ip` and registers it with the shared caller clock. With
    /// `keep_audio` every received frame is kept for the test to inspect.
    pub fn bind(ip: IpAddr, keep_audio: bool) -> std::io::Result<CallMedia> {
        let socket = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        socket.set_nonblocking(true)?;
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).map_err(std::io::Error::from)?;
        let local = socket.local_addr()?;
        let state = Arc::new(Mutex::new(State {
            socket,
            remote: None,
            connected: false,
            codec: Codec::Pcmu,
            pt: 0,
            te_pt: None,
            sender: RtpSender::new(rand::random(), rand::random(), rand::random(), 0),
            out: VecDeque::new(),
            keep_audio,
            audio: Vec::new(),
            gaps_us: Vec::new(),
            last_arrival: None,
            watch: None,
            packets_in: 0,
            packets_out: 0,
            closed: false,
            keys_heard: Vec::new(),
            last_event_ts: None,
        }));
        let _ = clock().send(state.clone());
        Ok(CallMedia { state, local })
    }

    /// SDP offering `pts` (static payload types) and, with `dtmf`, telephone-event 101.
    pub fn offer(&self, pts: &[u8], dtmf: bool) -> String {
        let ip = self.local.ip();
        let (net, addr) = match ip {
            IpAddr::V4(_) => ("IP4", ip.to_string()),
            IpAddr::V6(_) => ("IP6", ip.to_string()),
        };
        let mut fmts: Vec<String> = pts.iter().map(u8::to_string).collect();
        let mut attrs = String::new();
        for pt in pts {
            match pt {
                0 => attrs.push_str("a=rtpmap:0 PCMU/8000\r\n"),
                8 => attrs.push_str("a=rtpmap:8 PCMA/8000\r\n"),
                _ => {}
            }
        }
        if dtmf {
            fmts.push("101".into());
            attrs.push_str("a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n");
        }
        format!(
            "v=0\r\no=caller 1 1 IN {net} {addr}\r\ns=-\r\nc=IN {net} {addr}\r\nt=0 0\r\n\
m=audio {port} RTP/AVP {fmts}\r\n{attrs}a=ptime:20\r\na=sendrecv\r\n",
            port = self.local.port(),
            fmts = fmts.join(" "),
        )
    }

    /// Starts sending to the hotline with the negotiated codec. Where the callers'
    /// sockets are connected ([`connect_sockets`]), it hears only `remote` from then on.
    pub fn connect(&self, remote: SocketAddr, codec: Codec, pt: u8, te_pt: Option<u8>) {
        let mut s = lock(&self.state);
        s.remote = Some(remote);
        s.connected = CONNECT_SOCKETS.load(Ordering::Relaxed) && s.socket.connect(remote).is_ok();
        s.codec = codec;
        s.pt = pt;
        s.te_pt = te_pt;
        s.sender.set_pt(pt);
    }

    /// Queues a key press (100 ms, then a 60 ms pause).
    pub fn press(&self, key: Key, method: KeyMethod) {
        let mut s = lock(&self.state);
        match (method, s.te_pt) {
            (KeyMethod::Rfc4733, Some(_)) => {
                for i in 0..5u16 {
                    let ev = TelephoneEvent {
                        event: key.event_code(),
                        end: i == 4,
                        volume: 10,
                        duration: (i + 1) * FRAME_SAMPLES as u16,
                    };
                    s.out.push_back(Out::Event(ev, false));
                }
                let end = TelephoneEvent {
                    event: key.event_code(),
                    end: true,
                    volume: 10,
                    duration: 5 * FRAME_SAMPLES as u16,
                };
                s.out.push_back(Out::Event(end, false));
                s.out.push_back(Out::Event(end, true));
            }
            _ => {
                let pcm = dtmf_tone(key, Duration::from_millis(100), -8.0);
                let codec = s.codec;
                for chunk in pcm.chunks(FRAME_SAMPLES) {
                    let mut f = [codec.silence_byte(); FRAME_SAMPLES];
                    codec.encode_into(chunk, &mut f);
                    s.out.push_back(Out::Audio(f));
                }
            }
        }
        let silence = [s.codec.silence_byte(); FRAME_SAMPLES];
        for _ in 0..3 {
            s.out.push_back(Out::Audio(silence));
        }
    }

    /// Queues 8 kHz audio to send (what the caller says), after anything already queued.
    pub fn say_pcm(&self, pcm: &[i16]) {
        let mut s = lock(&self.state);
        let codec = s.codec;
        for chunk in pcm.chunks(FRAME_SAMPLES) {
            let mut f = [codec.silence_byte(); FRAME_SAMPLES];
            codec.encode_into(chunk, &mut f);
            s.out.push_back(Out::Audio(f));
        }
    }

    /// Presses each key of `keys` in turn.
    pub fn press_all(&self, keys: &str, method: KeyMethod) {
        for c in keys.chars() {
            if let Some(k) = Key::from_char(c) {
                self.press(k, method);
            }
        }
    }

    /// Whether the key presses queued so far have all been sent.
    pub fn keys_sent(&self) -> bool {
        lock(&self.state).out.is_empty()
    }

    /// Every audio frame received so far (with `keep_audio`).
    pub fn heard(&self) -> Vec<Heard> {
        lock(&self.state).audio.clone()
    }

    /// Keys the far end sent as RFC 4733 events, in order.
    pub fn keys_heard(&self) -> Vec<char> {
        lock(&self.state).keys_heard.clone()
    }

    /// Number of audio frames received so far.
    pub fn heard_len(&self) -> usize {
        lock(&self.state).audio.len()
    }

    /// Where `prompt` starts in what was heard at or after frame `from`, if it does.
    pub fn find_prompt(&self, prompt: &Prompt, from: usize) -> Option<usize> {
        let s = lock(&self.state);
        find_frames(
            &s.audio,
            prompt,
            s.codec,
            from,
            prompt.frame_count().min(10),
        )
    }

    /// How many of `prompt`'s frames were heard in order from frame `at`.
    pub fn frames_matching(&self, prompt: &Prompt, at: usize) -> usize {
        let s = lock(&self.state);
        matching(&s.audio, prompt, s.codec, at)
    }

    /// Why `prompt` was not found from frame `from`, for a failing test to say: how much
    /// was heard, where its first frame came and how far it matched, or else which of
    /// its frames came first (its start was lost).
    pub fn search_report(&self, prompt: &Prompt, from: usize) -> String {
        let s = lock(&self.state);
        let codec = s.codec;
        let heard = s.audio.len().saturating_sub(from);
        let first = prompt.frame(codec, 0);
        let starts: Vec<String> = (from..s.audio.len())
            .filter(|&i| Some(&s.audio[i].payload) == first)
            .take(5)
            .map(|i| {
                format!(
                    "frame {i} (seq {}): {} matching",
                    s.audio[i].seq,
                    matching(&s.audio, prompt, codec, i)
                )
            })
            .collect();
        if !starts.is_empty() {
            return format!(
                "{heard} frames heard from frame {from}; the prompt's first frame at {}",
                starts.join(", ")
            );
        }
        let later = (from..s.audio.len()).find_map(|i| {
            prompt
                .frames(codec)
                .position(|f| *f == s.audio[i].payload)
                .filter(|&k| k > 0)
                .map(|k| (i, k))
        });
        match later {
            Some((i, k)) => format!(
                "{heard} frames heard from frame {from}; not the prompt's first frame, but its frame {k} at frame {i} (seq {})",
                s.audio[i].seq
            ),
            None => format!("{heard} frames heard from frame {from}; none of the prompt's"),
        }
    }

    /// Waits until `prompt` starts (at or after frame `from`); returns where.
    pub async fn wait_for_prompt(
        &self,
        prompt: &Prompt,
        from: usize,
        timeout: Duration,
    ) -> Option<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.find_prompt(prompt, from) {
                return Some(i);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until `prompt`, started at frame `at`, has been heard to its last frame.
    /// Fails, saying what was heard instead, when a frame other than the prompt's next
    /// arrives before its end (it was cut off) or when `timeout` passes.
    pub async fn wait_for_whole_prompt(
        &self,
        prompt: &Prompt,
        at: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            // The count and what follows it are read under one lock: a frame arriving
            // between two looks would pass for a mismatch.
            let n = {
                let s = lock(&self.state);
                let n = matching(&s.audio, prompt, s.codec, at);
                if n >= prompt.frame_count() {
                    return Ok(());
                }
                if let Some(other) = s.audio.get(at + n) {
                    return Err(cut_off(&s.audio, prompt, s.codec, at, n, other));
                }
                n
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "{n} of {} frames heard from frame {at} in {timeout:?}, then nothing more",
                    prompt.frame_count()
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Watches for the first frame of `prompt` (used by the load tool, which keeps no
    /// audio); `watch_seen` tells when it arrived.
    pub fn watch(&self, prompt: &Prompt) {
        let mut s = lock(&self.state);
        let codec = s.codec;
        s.watch = prompt.frame(codec, 0).map(|f| (*f, None));
    }

    pub fn watch_seen(&self) -> Option<Instant> {
        lock(&self.state).watch.and_then(|(_, t)| t)
    }

    pub fn stats(&self) -> ReceptionStats {
        let s = lock(&self.state);
        ReceptionStats {
            packets_in: s.packets_in,
            packets_out: s.packets_out,
            gaps_us: s.gaps_us.clone(),
        }
    }

    /// Stops sending and leaves the clock.
    pub fn close(&self) {
        lock(&self.state).closed = true;
    }
}

impl Drop for State {
    fn drop(&mut self) {
        self.closed = true;
    }
}

/// How many of `prompt`'s frames `audio` holds in order from frame `at`.
fn matching(audio: &[Heard], prompt: &Prompt, codec: Codec, at: usize) -> usize {
    audio
        .get(at..)
        .unwrap_or(&[])
        .iter()
        .zip(prompt.frames(codec))
        .take_while(|(h, f)| &h.payload == *f)
        .count()
}

/// What was heard where frame `n` of `prompt` (started at frame `at`) was due: which
/// packet, and whether it is another frame of the prompt (one lost or repeated), silence,
/// or something else.
fn cut_off(
    audio: &[Heard],
    prompt: &Prompt,
    codec: Codec,
    at: usize,
    n: usize,
    other: &Heard,
) -> String {
    let what = if let Some(k) = prompt.frames(codec).position(|f| *f == other.payload) {
        format!("the prompt's frame {k}")
    } else if other.payload.iter().all(|&b| b == codec.silence_byte()) {
        "silence".to_string()
    } else {
        "audio not of the prompt".to_string()
    };
    let after = match n.checked_sub(1).and_then(|i| audio.get(at + i)) {
        Some(prev) => format!(" (after seq {})", prev.seq),
        None => String::new(),
    };
    format!(
        "cut off after {n} of {} frames from frame {at}: seq {}{after} was {what}",
        prompt.frame_count(),
        other.seq
    )
}

fn find_frames(
    audio: &[Heard],
    prompt: &Prompt,
    codec: Codec,
    from: usize,
    need: usize,
) -> Option<usize> {
    let first = prompt.frame(codec, 0)?;
    let need = need.max(1);
    (from..audio.len()).find(|&i| {
        &audio[i].payload == first
            && audio.get(i..i + need).is_some_and(|w| {
                w.iter()
                    .zip(prompt.frames(codec))
                    .all(|(h, f)| &h.payload == f)
            })
    })
}

/// How the shared caller clock keeps up, for the load tool: if serving every call takes
/// longer than a tick, key presses and prompt detection run late (the gap figures do not
/// suffer: they come from kernel timestamps).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CallerClockStats {
    /// Calls served in the last tick.
    pub calls: u64,
    pub ticks: u64,
    /// Ticks that started more than 5 ms after their due time.
    pub late_ticks: u64,
    pub max_lateness_us: u64,
    /// Time spent serving calls, summed over all ticks.
    pub busy_us: u64,
    /// The longest single tick.
    pub max_tick_us: u64,
}

struct ClockCounters {
    calls: AtomicU64,
    ticks: AtomicU64,
    late_ticks: AtomicU64,
    max_lateness_us: AtomicU64,
    busy_us: AtomicU64,
    max_tick_us: AtomicU64,
}

static COUNTERS: ClockCounters = ClockCounters {
    calls: AtomicU64::new(0),
    ticks: AtomicU64::new(0),
    late_ticks: AtomicU64::new(0),
    max_lateness_us: AtomicU64::new(0),
    busy_us: AtomicU64::new(0),
    max_tick_us: AtomicU64::new(0),
};

/// The shared caller clock's figures since the process started.
pub fn clock_stats() -> CallerClockStats {
    let c = &COUNTERS;
    CallerClockStats {
        calls: c.calls.load(Ordering::Relaxed),
        ticks: c.ticks.load(Ordering::Relaxed),
        late_ticks: c.late_ticks.load(Ordering::Relaxed),
        max_lateness_us: c.max_lateness_us.load(Ordering::Relaxed),
        busy_us: c.busy_us.load(Ordering::Relaxed),
        max_tick_us: c.max_tick_us.load(Ordering::Relaxed),
    }
}

/// Whether callers connect their RTP sockets to the hotline's media address.
static CONNECT_SOCKETS: AtomicBool = AtomicBool::new(false);

/// Makes every caller connect its RTP socket to the hotline's media address once the SDP
/// answer names it: sends then name no address, the kernel keeps the route, and
/// datagrams from anywhere else are not delivered. The load tool turns it on (it costs
/// about a fifth less; see docs/performance.md, "The floor under CPU per call"). Tests
/// leave it off, keeping callers that hear any source as they were written for: with it
/// on, one Kamailio test lost its bridged audio in 2 runs of 23, for a reason not found
/// (leftover Kamailio workers, since stopped, were then sending SIP to the tests' ports).
pub fn connect_sockets(on: bool) {
    CONNECT_SOCKETS.store(on, Ordering::Relaxed);
}

/// Starts the shared caller clock now rather than with the first call (so that its thread
/// can be found, e.g. to raise its priority, before the calls start).
pub fn start_clock() {
    clock();
}

fn clock() -> &'static Sender<Arc<Mutex<State>>> {
    static CLOCK: OnceLock<Sender<Arc<Mutex<State>>>> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("caller-media".into())
            .spawn(move || run_clock(rx))
            .expect("spawning the caller media thread");
        tx
    })
}

fn run_clock(rx: Receiver<Arc<Mutex<State>>>) {
    // Each call with its socket's descriptor (fixed for the call's life).
    let mut calls: Vec<(RawFd, Arc<Mutex<State>>)> = Vec::new();
    let mut buf = vec![0u8; 2048];
    let mut cmsg = nix::cmsg_space!(TimeSpec);
    // Where io_uring is missing (or fails), one system call per packet.
    let mut ring = Uring::new().ok();
    // A ring that failed is kept, never used again: the kernel may still hold its buffers.
    let mut _failed_ring = None;
    let tick = Duration::from_millis(20);
    let mut next = Instant::now() + tick;
    loop {
        while let Ok(s) = rx.try_recv() {
            let fd = lock(&s).socket.as_raw_fd();
            if let Some(r) = ring.as_mut() {
                r.register(fd);
            }
            calls.push((fd, s));
        }
        let now = Instant::now();
        let due = next - tick;
        let late = micros(now.saturating_duration_since(due));
        if late > 5_000 {
            COUNTERS.late_ticks.fetch_add(1, Ordering::Relaxed);
        }
        COUNTERS.max_lateness_us.fetch_max(late, Ordering::Relaxed);
        let fresh_after = clock_gettime(ClockId::CLOCK_REALTIME)
            .ok()
            .map(|t| realtime(t).saturating_sub(tick));
        calls.retain(|(fd, c)| {
            let keep = !lock(c).closed && Arc::strong_count(c) > 1;
            if !keep && let Some(r) = ring.as_mut() {
                // Before the socket closes: a registered socket stays open.
                r.unregister(*fd);
            }
            keep
        });
        match ring.as_mut() {
            Some(r) => {
                if serve_batched(r, &calls, now, fresh_after).is_err() {
                    r.unregister_all();
                    _failed_ring = ring.take();
                }
            }
            None => {
                for (_, c) in &calls {
                    let mut s = lock(c);
                    receive(&mut s, &mut buf, &mut cmsg, now, fresh_after);
                    if let Some((len, remote)) = next_packet(&mut s, &mut buf)
                        && if s.connected {
                            s.socket.send(&buf[..len])
                        } else {
                            s.socket.send_to(&buf[..len], remote)
                        }
                        .is_ok()
                    {
                        s.packets_out += 1;
                    }
                }
            }
        }
        let after = Instant::now();
        let work = micros(after.saturating_duration_since(now));
        COUNTERS.calls.store(calls.len() as u64, Ordering::Relaxed);
        COUNTERS.ticks.fetch_add(1, Ordering::Relaxed);
        COUNTERS.busy_us.fetch_add(work, Ordering::Relaxed);
        COUNTERS.max_tick_us.fetch_max(work, Ordering::Relaxed);
        if after < next {
            std::thread::sleep(next - after);
        } else if after - next > tick * 5 {
            next = after;
        }
        next += tick;
    }
}

/// One tick of every call through the ring: each pass reads one datagram from every
/// socket it asks (the first asks all; later ones only those whose datagram was not the
/// newest, see `hear`), then every call's frame goes out in one submission.
fn serve_batched(
    ring: &mut Uring,
    calls: &[(RawFd, Arc<Mutex<State>>)],
    now: Instant,
    fresh_after: Option<Duration>,
) -> std::io::Result<()> {
    let mut again: Vec<usize> = (0..calls.len()).collect();
    for _ in 0..64 {
        if again.is_empty() {
            break;
        }
        ring.clear_recvs();
        for i in again.drain(..) {
            ring.queue_recv(i as u64, calls[i].0);
        }
        // The sockets are the calls', which `calls` keeps alive until this returns.
        ring.receive()?;
        for r in ring.received() {
            let i = r.token as usize;
            if !hear(&mut lock(&calls[i].1), r.data, r.arrived, now, fresh_after) {
                again.push(i);
            }
        }
    }
    ring.clear_recvs();
    for (fd, c) in calls {
        let mut s = lock(c);
        let connected = s.connected;
        let mut queued = false;
        let mut fill = |buf: &mut [u8]| {
            let p = next_packet(&mut s, buf);
            queued = p.is_some();
            p
        };
        if connected {
            ring.queue_send_connected_with(*fd, |buf| fill(buf).map(|(len, _)| len));
        } else {
            ring.queue_send_with(*fd, fill);
        }
        if queued {
            s.packets_out += 1;
        }
    }
    ring.flush_sends().map(|_| ())
}

/// A kernel timestamp as time since the epoch.
fn realtime(t: TimeSpec) -> Duration {
    Duration::new(
        u64::try_from(t.tv_sec()).unwrap_or(0),
        u32::try_from(t.tv_nsec()).unwrap_or(0),
    )
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Reads what the hotline sent. A hotline sends one packet per 20 ms, so a packet that
/// arrived less than a tick before this tick began (`fresh_after`) is the newest there is:
/// reading on would almost always cost a system call that only says "nothing more". Older
/// packets mean a backlog (a burst, or this thread ran late), which is drained to the end.
/// Without kernel timestamps every socket is drained to the end.
fn receive(
    s: &mut State,
    buf: &mut [u8],
    cmsg: &mut Vec<u8>,
    now: Instant,
    fresh_after: Option<Duration>,
) {
    loop {
        let fd = s.socket.as_raw_fd();
        let (len, ts) = {
            let mut iov = [IoSliceMut::new(buf)];
            let Ok(msg) =
                recvmsg::<SockaddrStorage>(fd, &mut iov, Some(&mut *cmsg), MsgFlags::MSG_DONTWAIT)
            else {
                return;
            };
            let mut ts = None;
            if let Ok(cmsgs) = msg.cmsgs() {
                for c in cmsgs {
                    if let ControlMessageOwned::ScmTimestampns(t) = c {
                        ts = Some(realtime(t));
                    }
                }
            }
            (msg.bytes, ts)
        };
        if hear(s, &buf[..len], ts, now, fresh_after) {
            return;
        }
    }
}

/// Takes in one datagram that arrived at `arrived` (kernel real time). Returns true when
/// it is the newest the socket can hold (see `receive`), false when more may wait.
fn hear(
    s: &mut State,
    data: &[u8],
    arrived: Option<Duration>,
    now: Instant,
    fresh_after: Option<Duration>,
) -> bool {
    let newest = matches!((arrived, fresh_after), (Some(t), Some(f)) if t > f);
    let Ok(pkt) = parse_rtp(data) else {
        return newest;
    };
    s.packets_in += 1;
    if Some(pkt.pt) == s.te_pt {
        // One key per event (RFC 4733 keeps the timestamp for all packets of an event).
        if let Some(&code) = pkt.payload.first()
            && s.last_event_ts != Some(pkt.timestamp)
            && let Some(k) = Key::from_event_code(code)
        {
            s.last_event_ts = Some(pkt.timestamp);
            s.keys_heard.push(k.as_char());
        }
        return newest;
    }
    if pkt.pt != s.pt || pkt.payload.len() != FRAME_SAMPLES {
        return newest;
    }
    if let Some(t) = arrived {
        if let Some(prev) = s.last_arrival {
            let us = micros(t.saturating_sub(prev));
            s.gaps_us.push(us.min(u64::from(u32::MAX)) as u32);
        }
        s.last_arrival = Some(t);
    }
    let mut payload = [0u8; FRAME_SAMPLES];
    payload.copy_from_slice(pkt.payload);
    if let Some((frame, seen)) = s.watch.as_mut()
        && seen.is_none()
        && *frame == payload
    {
        *seen = Some(now);
    }
    if s.keep_audio {
        s.audio.push(Heard {
            seq: pkt.seq,
            payload,
        });
    }
    newest
}

/// Writes the call's next frame into `buf`: what it was asked to say or press, else
/// silence. Returns its length and where it goes, or `None` before the call has somewhere
/// to send.
fn next_packet(s: &mut State, buf: &mut [u8]) -> Option<(usize, SocketAddr)> {
    let remote = s.remote?;
    let len = match s.out.pop_front() {
        Some(Out::Event(ev, last)) => {
            let te = s.te_pt.unwrap_or(101);
            let r = s.sender.telephone_event_packet(te, ev, buf);
            s.sender.skip(FRAME_SAMPLES as u32);
            if last {
                s.sender.finish_event();
            }
            r
        }
        Some(Out::Audio(f)) => s.sender.next_packet(&f, buf),
        None => {
            let f = [s.codec.silence_byte(); FRAME_SAMPLES];
            s.sender.next_packet(&f, buf)
        }
    };
    len.ok().map(|len| (len, remote))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a caller heard: `frames` of `prompt` by index (`None` for silence), with
    /// sequence numbers from 100.
    fn heard(prompt: &Prompt, frames: &[Option<usize>]) -> Vec<Heard> {
        let codec = Codec::Pcmu;
        frames
            .iter()
            .zip(100u16..)
            .map(|(f, seq)| Heard {
                seq,
                payload: match f {
                    Some(i) => *prompt.frame(codec, *i).expect("frame"),
                    None => [codec.silence_byte(); FRAME_SAMPLES],
                },
            })
            .collect()
    }

    #[test]
    fn a_prompt_cut_off_says_what_came_in_its_place() {
        let p = Prompt::tone(440.0, Duration::from_millis(100), -10.0);
        assert_eq!(p.frame_count(), 5);
        let c = Codec::Pcmu;

        let whole = heard(
            &p,
            &[None, Some(0), Some(1), Some(2), Some(3), Some(4), None],
        );
        assert_eq!(matching(&whole, &p, c, 1), 5);

        let lost = heard(&p, &[None, Some(0), Some(1), Some(3)]);
        assert_eq!(matching(&lost, &p, c, 1), 2);
        assert_eq!(
            cut_off(&lost, &p, c, 1, 2, &lost[3]),
            "cut off after 2 of 5 frames from frame 1: seq 103 (after seq 102) was the prompt's frame 3"
        );

        let silenced = heard(&p, &[Some(0), None]);
        assert_eq!(
            cut_off(&silenced, &p, c, 0, 1, &silenced[1]),
            "cut off after 1 of 5 frames from frame 0: seq 101 (after seq 100) was silence"
        );
    }
}
