//! `transfer` on live calls: the hotline places a second leg to a fixed SIP address,
//! plays ringback meanwhile, and once the target answers relays audio and keys both ways
//! on the media clock. Each test uses a real server on loopback, the project's caller,
//! and the scripted answering phone as the target; the audio that crosses the bridge is
//! compared sample by sample.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use common::bridge::{decoded, encode, longest_run, payloads, sweep, wait_until};
use common::{SECOND, prompt, repo};
use hotline::config::{Config, Protocol};
use hotline::media::g711::Codec;
use hotline::media::prompt::Prompt;
use hotline::server::{RunningServer, Server};
use hotline_load::caller::answerer::{Answered, Answerer, Incoming};
use hotline_load::caller::{CallMedia, Established, KeyMethod, Phone};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-transfer-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

/// Serves a flow that transfers at once to `target`, with `advisors_busy` on failure.
async fn serve(dir: &Path, target: &str, timeout: &str, rtp: &str) -> RunningServer {
    let flow = format!(
        "start: desk\nsteps:\n  desk:\n    transfer: \"{target}\"\n    timeout: {timeout}\n    \
on_failure: sorry\n  sorry:\n    play: advisors_busy\n    next: hangup\n"
    );
    std::fs::write(dir.join("flows/main.yaml"), flow).unwrap();
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: {rtp} }}\nflows: flows\nprompts: {}\n",
            repo().join("prompts").display()
        ),
    )
    .unwrap();
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    Server::start(cfg, 1).await.unwrap().spawn()
}

struct Setup {
    _server: RunningServer,
    phone: Phone,
    media: CallMedia,
    call: Established,
    desk: Answerer,
    incoming: Incoming,
}

/// A caller calls; the desk phone receives the transfer's INVITE.
async fn call_until_desk_rings(name: &str, timeout: &str, rtp: &str) -> Setup {
    let desk = Answerer::bind(LOCALHOST).await.unwrap();
    let server = serve(&scratch(name), &desk.uri("desk"), timeout, rtp).await;
    let addr = common::addr(&server, Protocol::Udp);
    let (phone, media, call) = common::call(addr, "hotline").await;
    let mut desk = desk;
    let incoming = desk.next_invite(10 * SECOND).await.unwrap();
    Setup {
        _server: server,
        phone,
        media,
        call,
        desk,
        incoming,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_is_called_with_the_callers_number_and_audio_crosses_both_ways() {
    let mut s = call_until_desk_rings("bridge", "20s", "46000-46019").await;
    let inv = &s.incoming.invite;
    let text = String::from_utf8_lossy(&inv.to_bytes()).into_owned();
    assert!(
        text.contains("P-Asserted-Identity: <sip:+4930123456@"),
        "the caller's number goes to the target:\n{text}"
    );
    let from = inv.headers.from_addr().unwrap();
    assert_eq!(from.uri.user(), Some("+4930123456"));
    assert_eq!(from.display_name.as_deref(), Some("Test Caller"));

    // While it rings, the caller hears ringback.
    s.desk.ring(&s.incoming).await.unwrap();
    let ringback = Prompt::tone(425.0, SECOND, -13.0);
    assert!(
        s.media
            .wait_for_prompt(&ringback, 0, 10 * SECOND)
            .await
            .is_some(),
        "ringback while the target rings"
    );

    let desk_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let mut answered: Answered = s.desk.accept(&s.incoming, &desk_media).await.unwrap();

    // Caller to target.
    let from_caller = sweep(50, 300.0);
    s.media.say_pcm(&from_caller);
    let sent = encode(&from_caller, Codec::Pcmu);
    wait_until("the caller's words at the desk", 10 * SECOND, || {
        longest_run(&payloads(&desk_media), &sent) >= 30
    })
    .await;

    // Target to caller.
    let from_desk = sweep(50, 900.0);
    desk_media.say_pcm(&from_desk);
    let sent = encode(&from_desk, Codec::Pcmu);
    wait_until("the desk's words at the caller", 10 * SECOND, || {
        longest_run(&payloads(&s.media), &sent) >= 30
    })
    .await;

    // Keys pass as RFC 4733 events, both ways.
    s.media.press_all("42", KeyMethod::Rfc4733);
    wait_until("the caller's keys at the desk", 10 * SECOND, || {
        desk_media.keys_heard() == vec!['4', '2']
    })
    .await;
    desk_media.press_all("9", KeyMethod::Rfc4733);
    wait_until("the desk's key at the caller", 10 * SECOND, || {
        s.media.keys_heard() == vec!['9']
    })
    .await;

    // The target hangs up: the caller's call ends too.
    s.desk.hang_up(&mut answered).await.unwrap();
    s.phone.expect_bye(10 * SECOND).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_is_transcoded_when_the_target_answers_with_another_codec() {
    let mut s = call_until_desk_rings("transcode", "20s", "46020-46039").await;
    let desk_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let answered = s
        .desk
        .accept_with(&s.incoming, &desk_media, &[Codec::Pcma])
        .await
        .unwrap();
    assert_eq!(answered.codec, Codec::Pcma);
    let words = sweep(50, 300.0);
    s.media.say_pcm(&words);
    // The caller speaks PCMU; the desk must hear the same sound in PCMA.
    let sent = encode(&words, Codec::Pcma);
    wait_until("the caller's words, transcoded", 10 * SECOND, || {
        // μ-law to linear to A-law moves a sample by up to a quantisation step of each law
        // (about 1/16 of its size); compare decoded samples with that tolerance.
        let heard = decoded(&payloads(&desk_media), Codec::Pcma);
        let want = decoded(&sent, Codec::Pcma);
        let close = |a: &[i16], b: &[i16]| {
            a.iter().zip(b).all(|(x, y)| {
                (i32::from(*x) - i32::from(*y)).abs() <= 16 + i32::from(y.unsigned_abs() / 8)
            })
        };
        let Some(start) = heard.iter().position(|d| close(d, want[10].as_slice())) else {
            return false;
        };
        heard[start..]
            .iter()
            .zip(&want[10..])
            .take_while(|(d, w)| close(d.as_slice(), w.as_slice()))
            .count()
            >= 30
    })
    .await;
    s.phone.hang_up(&mut s.call).await.unwrap();
    s.desk.expect_bye(&answered, 10 * SECOND).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_target_sends_the_caller_to_on_failure() {
    let mut s = call_until_desk_rings("busy", "20s", "46040-46059").await;
    s.desk.refuse(&s.incoming, 486, "Busy Here").await.unwrap();
    let sorry = prompt("en", "advisors_busy");
    assert!(
        s.media
            .wait_for_prompt(&sorry, 0, 10 * SECOND)
            .await
            .is_some(),
        "the on_failure step plays"
    );
    s.phone.expect_bye(30 * SECOND).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_target_is_cancelled_after_the_timeout() {
    let mut s = call_until_desk_rings("noanswer", "2s", "46060-46079").await;
    s.desk.ring(&s.incoming).await.unwrap();
    let cancel = s
        .desk
        .expect_cancel(&s.incoming, 15 * SECOND)
        .await
        .unwrap();
    assert_eq!(cancel.headers.cseq().unwrap().seq, 1);
    let sorry = prompt("en", "advisors_busy");
    assert!(
        s.media
            .wait_for_prompt(&sorry, 0, 10 * SECOND)
            .await
            .is_some(),
        "the on_failure step plays"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caller_hanging_up_ends_both_legs() {
    // While bridged: the target gets BYE.
    let mut s = call_until_desk_rings("hangup-bridged", "20s", "46080-46099").await;
    let desk_media = CallMedia::bind(LOCALHOST, true).unwrap();
    let answered = s.desk.accept(&s.incoming, &desk_media).await.unwrap();
    s.phone.hang_up(&mut s.call).await.unwrap();
    s.desk.expect_bye(&answered, 10 * SECOND).await.unwrap();

    // While ringing: the target gets CANCEL.
    let mut s = call_until_desk_rings("hangup-ringing", "20s", "46100-46119").await;
    s.desk.ring(&s.incoming).await.unwrap();
    s.phone.hang_up(&mut s.call).await.unwrap();
    s.desk
        .expect_cancel(&s.incoming, 10 * SECOND)
        .await
        .unwrap();
}
