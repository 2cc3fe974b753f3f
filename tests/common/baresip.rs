//! Driving baresip (Debian's package, 1.0) in the interop tests: finding it and its
//! modules, a free SIP port, its configuration folder, the process (killed on drop), and
//! reading what it recorded with `sndfile`. Without baresip a test is skipped with a
//! notice, unless `HOTLINE_REQUIRE_BARESIP` is set (CI), which makes it a failure.

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hotline::media::g711::FRAME_SAMPLES;

/// The tone an agent's baresip plays (its `ausine` microphone, Hz).
pub const AGENT_TONE: f32 = 440.0;
/// The tone the caller plays to the agent (Hz).
pub const CALLER_TONE: f32 = 1000.0;
/// baresip retries a failed registration after 30 to 60 s, and its first one may fail.
/// Generous for a loaded machine.
pub const REGISTER_TIMEOUT: Duration = Duration::from_secs(150);

/// Where Debian and a source build put baresip's modules.
const MODULE_DIRS: [&str; 3] = [
    "/usr/lib/baresip/modules",
    "/usr/lib/x86_64-linux-gnu/baresip/modules",
    "/usr/local/lib/baresip/modules",
];
/// What every test's baresip loads: G.711, a tone as its microphone, no sound card, and
/// a recording of what it hears.
pub const BASE_MODULES: [&str; 5] = ["g711", "ausine", "aubridge", "sndfile", "account"];

/// A test that cannot run here fails when `HOTLINE_REQUIRE_BARESIP` is set and is
/// otherwise skipped with a notice.
pub fn cannot_run(test: &str, why: &str) {
    if std::env::var_os("HOTLINE_REQUIRE_BARESIP").is_some() {
        panic!("HOTLINE_REQUIRE_BARESIP is set but {why}");
    }
    // Straight to stderr: the harness captures eprintln!, and an unseen skip looks like a pass.
    let _ = writeln!(
        std::io::stderr(),
        "skipping {test}: {why}; set HOTLINE_REQUIRE_BARESIP=1 to make this an error"
    );
}

/// baresip's module folder, if baresip and `modules` are installed.
pub fn baresip_modules(modules: &[&str]) -> Result<PathBuf, String> {
    match Command::new("baresip")
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => {}
        Err(e) => {
            return Err(format!(
                "baresip cannot be run ({e}); apt-get install baresip"
            ));
        }
    }
    MODULE_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| modules.iter().all(|m| d.join(format!("{m}.so")).exists()))
        .ok_or_else(|| format!("baresip's modules {modules:?} are not in any of {MODULE_DIRS:?}"))
}

/// A port free on loopback for both UDP and TCP (baresip listens on both).
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("a UDP port");
        let port = udp.local_addr().expect("its address").port();
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

/// The README's account line for agent `alice` at `hotline`, with auto answer: over UDP
/// (`transport` None) or with `;transport=tls` and the like.
pub fn alice_account(hotline: SocketAddr, transport: Option<&str>) -> String {
    let param = transport
        .map(|t| format!(";transport={t}"))
        .unwrap_or_default();
    format!(
        "<sip:alice@127.0.0.1:{}{param}>;auth_pass=alice-change-me;answermode=auto",
        hotline.port()
    )
}

/// The caller's tone for an agent to hear: 3 s at [`CALLER_TONE`].
pub fn caller_tone() -> Vec<i16> {
    (0..150 * FRAME_SAMPLES)
        .map(|i| {
            let t = i as f32 / 8000.0;
            (6000.0 * (2.0 * std::f32::consts::PI * CALLER_TONE * t).sin()) as i16
        })
        .collect()
}

/// One baresip's configuration folder.
pub struct BaresipConfig<'a> {
    /// The folder written.
    pub dir: &'a Path,
    /// baresip's module folder (from [`baresip_modules`]).
    pub modules: &'a Path,
    /// The `accounts` file's one line.
    pub account: String,
    /// The tone its `ausine` microphone plays (Hz).
    pub tone: u32,
    /// Where `sndfile` writes what it hears.
    pub snd: &'a Path,
    /// Modules besides [`BASE_MODULES`] (such as `srtp`).
    pub extra_modules: &'a [&'a str],
    /// More configuration lines.
    pub extra: String,
}

impl BaresipConfig<'_> {
    /// Writes the folder: `ausine` as the microphone (48 kHz stereo only; baresip
    /// resamples it for PCMU), no sound card (`aubridge` plays into nothing), `sndfile`
    /// recording. Returns the SIP port baresip listens on.
    pub fn write(&self) -> u16 {
        fs::create_dir_all(self.dir).unwrap();
        fs::create_dir_all(self.snd).unwrap();
        fs::write(self.dir.join("accounts"), format!("{}\n", self.account)).unwrap();
        let port = free_port();
        let mut config = format!(
            "sip_listen\t\t127.0.0.1:{port}\n\
audio_player\t\taubridge,nowhere\n\
audio_alert\t\taubridge,nowhere\n\
audio_source\t\tausine,{tone}\n\
ausrc_srate\t\t48000\n\
ausrc_channels\t\t2\n\
module_path\t\t{modules}\n\
module\t\t\tg711.so\n\
module\t\t\tausine.so\n\
module\t\t\taubridge.so\n\
module\t\t\tsndfile.so\n\
module_app\t\taccount.so\n\
snd_path\t\t{snd}\n",
            tone = self.tone,
            modules = self.modules.display(),
            snd = self.snd.display(),
        );
        for m in self.extra_modules {
            config.push_str(&format!("module\t\t\t{m}.so\n"));
        }
        config.push_str(&self.extra);
        fs::write(self.dir.join("config"), config).unwrap();
        // baresip asks for a contacts file and writes one if missing; an empty one is enough.
        fs::write(self.dir.join("contacts"), "").unwrap();
        port
    }
}

/// The baresip process; killed when dropped, whatever happened.
pub struct Baresip {
    child: Child,
    log: PathBuf,
}

impl Baresip {
    /// Starts baresip on the configuration folder `conf`, its output to `log`, with the
    /// commands `-e` runs at start.
    pub fn start(conf: &Path, log: &Path, commands: &[&str]) -> Baresip {
        let out = fs::File::create(log).unwrap();
        let mut cmd = Command::new("baresip");
        cmd.arg("-f").arg(conf);
        for c in commands {
            cmd.arg("-e").arg(c);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("baresip starts");
        Baresip {
            child,
            log: log.to_owned(),
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The share of a frame's energy at `hz` (Goertzel), and its RMS.
pub fn tone_share(pcm: &[i16], hz: f32) -> (f32, f32) {
    let w = 2.0 * std::f32::consts::PI * hz / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f32, 0.0f32);
    let mut energy = 0.0f32;
    for &x in pcm {
        let x = f32::from(x);
        let s = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
        energy += x * x;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = pcm.len() as f32;
    let rms = (energy / n).sqrt();
    if energy == 0.0 {
        return (0.0, 0.0);
    }
    // A pure tone of amplitude A over n samples: power = (A n / 2)^2, energy = A^2 n / 2.
    (power / (energy * n / 2.0), rms)
}

/// How many of `frames` (20 ms each) hold a clear tone at `hz`.
pub fn tone_frames(frames: &[[i16; FRAME_SAMPLES]], hz: f32) -> usize {
    frames
        .iter()
        .filter(|f| {
            let (share, rms) = tone_share(&f[..], hz);
            share > 0.6 && rms > 300.0
        })
        .count()
}

/// How many of `frames` are not silence (speech, a prompt).
pub fn loud_frames(frames: &[[i16; FRAME_SAMPLES]]) -> usize {
    frames
        .iter()
        .filter(|f| tone_share(&f[..], 1.0).1 > 300.0)
        .count()
}

/// What baresip's `sndfile` recorded of the call's received audio (the `-dec` file), as
/// 8 kHz frames.
pub fn heard_frames(snd: &Path) -> Vec<[i16; FRAME_SAMPLES]> {
    let mut frames = Vec::new();
    let Ok(dir) = fs::read_dir(snd) else {
        return frames;
    };
    for entry in dir.flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if !name.ends_with("-dec.wav") {
            continue;
        }
        let Ok(reader) = hound::WavReader::open(&path) else {
            continue;
        };
        let samples: Vec<i16> = reader.into_samples::<i16>().map_while(Result::ok).collect();
        for c in samples.chunks_exact(FRAME_SAMPLES) {
            let mut f = [0i16; FRAME_SAMPLES];
            f.copy_from_slice(c);
            frames.push(f);
        }
    }
    frames
}

/// Waits until `ok`, checking every 100 ms, for at most `limit`.
pub async fn wait_for(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ok()
}

/// A caller on UDP dials the queue at `sip`, and the agent `baresip` (playing
/// [`AGENT_TONE`], recording to `snd`) takes the call: the caller must hear the agent's
/// tone through the bridge, then the agent the caller's [`CALLER_TONE`], after the caller
/// has hung up (baresip closes its recording then). `context` is added to each failure.
pub async fn caller_and_agent_hear_each_other(
    sip: SocketAddr,
    baresip: &Baresip,
    snd: &Path,
    context: impl Fn() -> String,
) {
    use super::bridge::{decoded, payloads};
    use hotline::config::Protocol;
    use hotline_load::caller::{CallMedia, Offer, Phone};

    let mut phone = Phone::new(Protocol::Udp, sip).await.expect("caller");
    let media = CallMedia::bind(Ipv4Addr::LOCALHOST.into(), true).expect("caller RTP");
    let mut call = phone
        .call("hotline", &media, Offer::Default)
        .await
        .expect("the hotline answers");
    media.connect(
        call.remote_rtp,
        call.codec,
        call.payload_type,
        call.telephone_event_pt,
    );
    let codec = call.codec;
    let heard_tone = wait_for(Duration::from_secs(30), || {
        tone_frames(&decoded(&payloads(&media), codec), AGENT_TONE) >= 25
    })
    .await;
    assert!(
        heard_tone,
        "the caller never heard the agent's {AGENT_TONE} Hz tone ({} frames heard; {})\n--- baresip ---\n{}",
        media.heard_len(),
        context(),
        baresip.log_text()
    );
    // The caller speaks (a tone) while the agent listens.
    media.say_pcm(&caller_tone());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let bye = phone.hang_up(&mut call).await.expect("BYE answered");
    assert_eq!(bye.status, 200);
    media.close();
    let agent_heard_tone = wait_for(Duration::from_secs(20), || {
        tone_frames(&heard_frames(snd), CALLER_TONE) >= 50
    })
    .await;
    assert!(
        agent_heard_tone,
        "the agent never heard the caller's {CALLER_TONE} Hz tone ({} frames recorded; {})\n--- baresip ---\n{}",
        heard_frames(snd).len(),
        context(),
        baresip.log_text()
    );
}

/// Waits up to [`REGISTER_TIMEOUT`] for `baresip` to register as `user` at `srv`, and
/// fails the test with baresip's log when it does not.
pub async fn wait_registered(srv: &hotline::server::RunningServer, baresip: &Baresip, user: &str) {
    let registrations = srv.server.deps.registrations().clone();
    let registered = wait_for(REGISTER_TIMEOUT, || {
        registrations.is_registered(user, Instant::now())
    })
    .await;
    assert!(
        registered,
        "baresip did not register as {user} within {REGISTER_TIMEOUT:?}\n--- baresip ---\n{}",
        baresip.log_text()
    );
}
