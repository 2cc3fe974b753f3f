//! The sample hotline end to end, as `hotline serve` runs it: the repository's flows and
//! prompts, a real demo shop on loopback for the order lookup, recordings in a temporary
//! folder. Time of day is made deterministic with the test's own `service_hours`
//! schedule: open all week round the clock, or never open. The project's scripted caller
//! places the calls, and what it hears is compared frame by frame with the prompts.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{SECOND, hears, prompt, prompts, repo};
use hotline::config::{Config, Protocol};
use hotline::media::prompt::Prompt;
use hotline::server::{RunningServer, Server};
use hotline::tools::demo_shop::DemoShop;
use hotline_load::caller::KeyMethod;

const ALWAYS_OPEN: &str = "{ timezone: Europe/Berlin, weekly: { mon-sun: 00:00-24:00 } }";
const NEVER_OPEN: &str = "{ timezone: Europe/Berlin }";

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("hotline-sample-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The sample's flows and prompts behind a config of the test's own: its schedule, the
/// shop at `shop`, recordings in `dir/recordings`.
async fn serve_sample(dir: &Path, schedule: &str, shop: &str, rtp: &str) -> RunningServer {
    let quote = |p: PathBuf| format!("{:?}", p.display().to_string());
    let text = format!(
        "sip: {{ listen: [\"udp:127.0.0.1:0\"] }}\nrtp: {{ ports: {rtp} }}\n\
flows: {}\nprompts: {}\nrecordings: recordings\n\
schedules:\n  service_hours: {schedule}\n\
vars: {{ shop_url: \"{shop}\", crm_url: \"{shop}\" }}\n",
        quote(repo().join("flows")),
        quote(repo().join("prompts")),
    );
    std::fs::write(dir.join("hotline.yaml"), text).unwrap();
    let cfg = Config::load(&dir.join("hotline.yaml")).unwrap();
    assert!(cfg.demo_shop.is_none(), "the test starts its own shop");
    Server::start(cfg, 1).await.expect("server starts").spawn()
}

fn fragment(lang: &str, name: &str) -> Prompt {
    prompts()
        .get_exact(lang, &format!("say/{name}"))
        .unwrap_or_else(|| panic!("say fragment {lang}/{name}"))
        .clone()
}

/// Open hours: English, option 2, order 123456 of the demo shop (shipped, arriving on
/// Thursday 26 November): the caller hears the number read back, the shipped prompt and
/// the date, then rates the call with 5, leaves no comment and hears the goodbye.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shipped_order_is_read_out_from_the_demo_shop() {
    let shop = DemoShop::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let dir = scratch("open");
    let srv = serve_sample(&dir, ALWAYS_OPEN, &shop.url(), "43400-43499").await;
    let (mut phone, media, _call) =
        common::call(srv.server.addr(Protocol::Udp).unwrap(), "hotline").await;

    let w = hears(&media, "welcome", 0, 5 * SECOND).await;
    media.press_all("1", KeyMethod::Rfc4733);
    let m = hears(&media, "main_menu", w, 5 * SECOND).await;
    media.press_all("2", KeyMethod::Rfc4733);
    let e = hears(&media, "enter_order_number", m, 5 * SECOND).await;
    media.press_all("123456#", KeyMethod::Rfc4733);

    let y = hears(&media, "your_order", e, 10 * SECOND).await;
    // "one two three four five six", then "was shipped and arrives on".
    let one = media
        .wait_for_prompt(&fragment("en", "1"), y, 5 * SECOND)
        .await
        .expect("the order number is read back");
    let s = hears(&media, "order_shipped", one, 10 * SECOND).await;
    media
        .wait_for_whole_prompt(&prompt("en", "order_shipped"), s, 10 * SECOND)
        .await
        .expect("the shipped prompt plays to its end, frame for frame");
    let thursday = media
        .wait_for_prompt(&fragment("en", "thursday"), s, 5 * SECOND)
        .await
        .expect("the delivery date starts with its weekday");
    media
        .wait_for_prompt(&fragment("en", "november"), thursday, 5 * SECOND)
        .await
        .expect("and ends with its month");
    let a = hears(&media, "anything_else", thursday, 20 * SECOND).await;

    media.press_all("2", KeyMethod::Rfc4733);
    let r = hears(&media, "survey_rating", a, 5 * SECOND).await;
    media.press_all("5", KeyMethod::Rfc4733);
    let c = hears(&media, "survey_comment_offer", r, 5 * SECOND).await;
    media.press_all("2", KeyMethod::Rfc4733);
    let t = hears(&media, "survey_thanks", c, 5 * SECOND).await;
    hears(&media, "goodbye", t, 10 * SECOND).await;
    phone
        .expect_bye(20 * SECOND)
        .await
        .expect("the hotline hangs up");
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

fn tone(seconds: f32) -> Vec<i16> {
    (0..(8000.0 * seconds) as usize)
        .map(|i| (8000.0 * (i as f32 * 440.0 * std::f32::consts::TAU / 8000.0).sin()) as i16)
        .collect()
}

async fn wait_for_wav(dir: &Path, within: Duration) -> Option<PathBuf> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let found = std::fs::read_dir(dir).ok().and_then(|r| {
            r.filter_map(|e| e.ok().map(|e| e.path()))
                .find(|p| p.extension().is_some_and(|e| e == "wav"))
        });
        if found.is_some() || std::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Out of hours: the caller chooses English, hears that the hotline is closed and when
/// it opens, speaks after the beep, ends the message with #, hears the thank-you and the
/// goodbye. The message is a playable 8 kHz WAV file holding the caller's speech.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_hours_the_caller_leaves_a_voicemail() {
    common::logs();
    let dir = scratch("closed");
    // No shop: the closed path never looks anything up.
    let srv = serve_sample(&dir, NEVER_OPEN, "http://127.0.0.1:9", "43500-43599").await;
    let (mut phone, media, _call) =
        common::call(srv.server.addr(Protocol::Udp).unwrap(), "hotline").await;

    let w = hears(&media, "welcome", 0, 5 * SECOND).await;
    media.press_all("1", KeyMethod::Rfc4733);
    let c = hears(&media, "closed_now", w, 5 * SECOND).await;
    assert_eq!(
        media.find_prompt(&prompt("en", "main_menu"), w),
        None,
        "no menu out of hours"
    );
    let h = hears(&media, "opening_hours_info", c, 10 * SECOND).await;
    let l = hears(&media, "leave_a_message", h, 15 * SECOND).await;
    media
        .wait_for_whole_prompt(&prompt("en", "leave_a_message"), l, 20 * SECOND)
        .await
        .expect("the voicemail prompt is heard to its end");
    // The beep lasts half a second; speak after it.
    tokio::time::sleep(SECOND).await;
    media.say_pcm(&tone(2.0));
    media.press_all("#", KeyMethod::Rfc4733);
    let s = hears(&media, "message_saved", l, 15 * SECOND).await;
    hears(&media, "goodbye", s, 15 * SECOND).await;
    phone
        .expect_bye(20 * SECOND)
        .await
        .expect("the hotline hangs up");

    let file = wait_for_wav(&dir.join("recordings"), 10 * SECOND)
        .await
        .expect("the message is saved in the recordings folder");
    let reader = hound::WavReader::open(&file).expect("a playable WAV file");
    let spec = reader.spec();
    assert_eq!((spec.sample_rate, spec.channels), (8000, 1));
    let samples: Vec<i16> = reader
        .into_samples::<i16>()
        .filter_map(Result::ok)
        .collect();
    let loud = samples
        .chunks(160)
        .filter(|w| {
            let e: f64 = w.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / w.len() as f64;
            e.sqrt() > 1000.0
        })
        .count();
    let spoken = loud as f32 * 0.02;
    assert!(
        (1.5..3.0).contains(&spoken),
        "{spoken} s of speech in {}",
        file.display()
    );
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}
