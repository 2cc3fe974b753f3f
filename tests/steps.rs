//! Step kinds that reach outside the call, on live calls: `http` against a real HTTP server
//! on loopback (answers, errors, a slow service that must not hold up other calls) and
//! `record` writing the caller's message to a WAV file (ended by the terminator key, or by
//! the caller hanging up mid-message).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{SECOND, prompt, repo};
use hotline::config::{Config, Protocol};
use hotline::server::{RunningServer, Server};
use hotline_load::caller::KeyMethod;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("flows")).unwrap();
    d
}

async fn serve_flow(dir: &Path, flow: &str, extra_config: &str, rtp: &str) -> RunningServer {
    std::fs::write(dir.join("flows/main.yaml"), flow).unwrap();
    std::fs::write(
        dir.join("hotline.yaml"),
        format!(
            "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: {rtp} }}\nflows: flows\n\
prompts: {}\nrecordings: recordings\n{extra_config}",
            repo().join("prompts").display()
        ),
    )
    .unwrap();
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    Server::start(cfg, 1).await.unwrap().spawn()
}

/// A small web service: `/orders/ok` answers shipped, `/orders/fail` 500, `/orders/slow`
/// never in time. It remembers the request lines it saw.
async fn web_service() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let seen = seen2.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&got).to_string();
                let line = text.lines().next().unwrap_or_default().to_string();
                seen.lock().unwrap().push(line.clone());
                let (status, body) = if line.contains("/orders/ok") {
                    ("200 OK", r#"{"status":"shipped","eta":"2026-11-25"}"#)
                } else if line.contains("/orders/slow") {
                    tokio::time::sleep(Duration::from_secs(20)).await;
                    ("200 OK", "{}")
                } else {
                    ("500 Internal Server Error", "{}")
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, seen)
}

const LOOKUP: &str = r#"
start: lookup
steps:
  lookup:
    http:
      url: "{{ config.crm_url }}/orders/{{ dialed }}"
      timeout: 1s
      into: result
      next: status
      on_error: advisor
  status:
    branch:
      when: [{ if: 'result.status == "shipped"', next: shipped }]
      else: advisor
  shipped:
    play: [order_noted, { say: date, value: "{{ result.eta }}" }]
    next: hangup
  advisor:
    hangup: advisors_busy
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_lookup_answers_errors_and_a_slow_service() {
    let (web, seen) = web_service().await;
    let dir = scratch("http");
    let srv = serve_flow(
        &dir,
        LOOKUP,
        &format!("vars: {{ crm_url: \"http://{web}\" }}\n"),
        "43100-43199",
    )
    .await;
    let sip = srv.server.addr(Protocol::Udp).unwrap();

    // The slow lookup first: while it waits, another call must be served at once.
    let (mut slow_phone, slow_media, _) = common::call(sip, "slow").await;
    let (mut ok_phone, ok_media, _) = common::call(sip, "ok").await;
    let noted = ok_media
        .wait_for_prompt(&prompt("en", "order_noted"), 0, 3 * SECOND)
        .await
        .expect("the shipped order is read out while another lookup hangs");
    // The date follows the prompt as say fragments: "Wednesday the twenty-fifth of November".
    let wednesday = common::prompts()
        .get_exact("en", "say/wednesday")
        .unwrap()
        .clone();
    ok_media
        .wait_for_prompt(&wednesday, noted, 15 * SECOND)
        .await
        .expect("the ETA is spoken");
    ok_phone.expect_bye(20 * SECOND).await.unwrap();

    slow_media
        .wait_for_prompt(&prompt("en", "advisors_busy"), 0, 5 * SECOND)
        .await
        .expect("a lookup that times out goes to on_error");
    slow_phone.expect_bye(15 * SECOND).await.unwrap();

    let (mut fail_phone, fail_media, _) = common::call(sip, "fail").await;
    fail_media
        .wait_for_prompt(&prompt("en", "advisors_busy"), 0, 5 * SECOND)
        .await
        .expect("a 500 goes to on_error");
    fail_phone.expect_bye(15 * SECOND).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|l| l == "GET /orders/ok HTTP/1.1"),
        "{seen:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

const VOICEMAIL: &str = r##"
start: voicemail
steps:
  voicemail:
    record:
      prompt: please_choose
      max_duration: 30s
      silence_timeout: 10s
      terminator: "#"
      into: message
      next: goodbye
  goodbye:
    hangup: goodbye
"##;

fn tone(seconds: f32) -> Vec<i16> {
    (0..(8000.0 * seconds) as usize)
        .map(|i| (8000.0 * (i as f32 * 440.0 * std::f32::consts::TAU / 8000.0).sin()) as i16)
        .collect()
}

fn wav_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

async fn wait_for_file(dir: &Path) -> Option<PathBuf> {
    for _ in 0..200 {
        if let Some(f) = wav_files(dir)
            .into_iter()
            .find(|p| p.extension().is_some_and(|e| e == "wav"))
        {
            return Some(f);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// Seconds of the file whose 20 ms windows are loud (the caller's tone, not silence).
fn loud_seconds(path: &Path) -> f32 {
    let r = hound::WavReader::open(path).unwrap();
    assert_eq!(r.spec().sample_rate, 8000);
    let samples: Vec<i16> = r.into_samples::<i16>().filter_map(Result::ok).collect();
    let loud = samples
        .chunks(160)
        .filter(|w| {
            let e: f64 = w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / w.len() as f64;
            e.sqrt() > 1000.0
        })
        .count();
    loud as f32 * 0.02
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voicemail_is_recorded_to_the_terminator_and_on_hang_up() {
    let dir = scratch("record");
    let srv = serve_flow(&dir, VOICEMAIL, "", "43200-43299").await;
    let sip = srv.server.addr(Protocol::Udp).unwrap();
    let recordings = dir.join("recordings");

    // Speak for two seconds after the beep, then press #.
    let (mut phone, media, _) = common::call(sip, "voicemail").await;
    let p = media
        .wait_for_prompt(&prompt("en", "please_choose"), 0, 5 * SECOND)
        .await
        .unwrap();
    media
        .wait_for_whole_prompt(&prompt("en", "please_choose"), p, 10 * SECOND)
        .await
        .expect("the prompt is heard to its end, frame for frame");
    tokio::time::sleep(SECOND).await; // the beep
    media.say_pcm(&tone(2.0));
    media.press_all("#", KeyMethod::Rfc4733);
    media
        .wait_for_prompt(&prompt("en", "goodbye"), p, 10 * SECOND)
        .await
        .expect("the terminator ends the message and the flow goes on");
    phone.expect_bye(15 * SECOND).await.unwrap();
    let file = wait_for_file(&recordings)
        .await
        .expect("the message is saved");
    let spoken = loud_seconds(&file);
    assert!(
        (1.5..3.0).contains(&spoken),
        "{spoken} s of speech in {}",
        file.display()
    );
    std::fs::remove_file(&file).unwrap();

    // Hang up in the middle of the message: it is kept, whole and playable.
    let (mut phone, media, mut est) = common::call(sip, "voicemail").await;
    let p = media
        .wait_for_prompt(&prompt("en", "please_choose"), 0, 5 * SECOND)
        .await
        .unwrap();
    media
        .wait_for_whole_prompt(&prompt("en", "please_choose"), p, 10 * SECOND)
        .await
        .expect("the prompt is heard to its end, frame for frame");
    tokio::time::sleep(SECOND).await;
    media.say_pcm(&tone(1.5));
    tokio::time::sleep(SECOND * 2).await;
    phone.hang_up(&mut est).await.unwrap();
    let file = wait_for_file(&recordings)
        .await
        .expect("a message cut short is kept");
    let spoken = loud_seconds(&file);
    assert!((1.0..2.5).contains(&spoken), "{spoken} s of speech");
    let _ = std::fs::remove_dir_all(&dir);
}
