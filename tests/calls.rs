//! Calls to a real hotline on loopback, placed by the project's scripted caller over UDP and
//! TCP: what the caller hears is compared frame by frame with the sample prompts, keys go
//! in as RFC 4733 events, in-band tones and SIP INFO, and each call ends cleanly.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use common::{SECOND, addr, prompt, server};
use hotline::config::Protocol;
use hotline::sip::message::{HeaderName, Message, Method};
use hotline_load::caller::{CallMedia, KeyMethod, Offer, Phone};

const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn place(phone: &mut Phone, offer: Offer) -> (hotline_load::caller::Established, CallMedia) {
    let media = CallMedia::bind(LOCALHOST, true).unwrap();
    let call = phone
        .call("hotline", &media, offer)
        .await
        .expect("call answered");
    media.connect(
        call.remote_rtp,
        call.codec,
        call.payload_type,
        call.telephone_event_pt,
    );
    (call, media)
}

/// The caller hears the welcome, presses 1 during it (type-ahead through the language menu),
/// hears the English main menu, presses 0 (the global key), hears the whole advisors-busy
/// message and the goodbye, and the hotline hangs up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_call_walks_the_menu_with_rfc4733_keys() {
    let srv = server(|_| {}).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let (_call, media) = place(&mut phone, Offer::Default).await;

    let welcome = prompt("en", "welcome");
    let w = media
        .wait_for_prompt(&welcome, 0, 5 * SECOND)
        .await
        .expect("the welcome plays");
    // Hear a full second of it, exactly as recorded, then press 1 to barge in.
    while media.frames_matching(&welcome, w) < 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    media.press_all("1", KeyMethod::Rfc4733);

    let menu = prompt("en", "main_menu");
    let m = media
        .wait_for_prompt(&menu, w, 5 * SECOND)
        .await
        .expect("the English main menu follows the key");
    let welcome_heard = media.frames_matching(&welcome, w);
    assert!(
        welcome_heard < welcome.frame_count(),
        "the key barged in: {welcome_heard} of {} welcome frames played",
        welcome.frame_count()
    );
    // The language menu was skipped: its prompt never started.
    assert_eq!(media.find_prompt(&prompt("en", "choose_language"), w), None);
    assert!(
        m - (w + welcome_heard) < 15,
        "no long gap after the barge-in"
    );

    media.press_all("0", KeyMethod::Rfc4733);
    let busy = prompt("en", "advisors_busy");
    let b = media
        .wait_for_prompt(&busy, m, 5 * SECOND)
        .await
        .expect("the global key 0 leads to the advisors");
    media
        .wait_for_whole_prompt(&busy, b, 10 * SECOND)
        .await
        .expect("the whole advisors-busy message is heard, frame for frame");
    let bye_prompt = prompt("en", "goodbye");
    let g = media
        .wait_for_prompt(&bye_prompt, b, 5 * SECOND)
        .await
        .expect("goodbye");
    media
        .wait_for_whole_prompt(&bye_prompt, g, 10 * SECOND)
        .await
        .expect("the whole goodbye is heard, frame for frame");
    phone
        .expect_bye(10 * SECOND)
        .await
        .expect("the hotline hangs up");
}

/// Over TCP, with keys sent as in-band tones: 2 chooses German.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_call_with_inband_tones_chooses_german() {
    let srv = server(|_| {}).await;
    let mut phone = Phone::new(Protocol::Tcp, addr(&srv, Protocol::Tcp))
        .await
        .unwrap();
    let (mut call, media) = place(&mut phone, Offer::Default).await;
    let welcome = prompt("en", "welcome");
    let w = media
        .wait_for_prompt(&welcome, 0, 5 * SECOND)
        .await
        .expect("welcome");
    media.press_all("2", KeyMethod::Inband);
    media
        .wait_for_prompt(&prompt("de", "main_menu"), w, 5 * SECOND)
        .await
        .expect("the German main menu");
    let ok = phone.hang_up(&mut call).await.expect("BYE answered");
    assert_eq!(ok.status, 200);
}

/// A key can also arrive as SIP INFO (application/dtmf-relay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_info_keys_are_heard() {
    let srv = server(|_| {}).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let (mut call, media) = place(&mut phone, Offer::Default).await;
    let w = media
        .wait_for_prompt(&prompt("en", "welcome"), 0, 5 * SECOND)
        .await
        .unwrap();
    let info = phone.in_dialog_text(
        &mut call,
        "INFO",
        "Content-Type: application/dtmf-relay\r\n",
        "Signal=2\r\nDuration=160\r\n",
    );
    phone.send_raw(info.as_bytes()).await.unwrap();
    let r = phone
        .response(&call.call_id, &Method::Info, 200, 5 * SECOND)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    media
        .wait_for_prompt(&prompt("de", "main_menu"), w, 5 * SECOND)
        .await
        .expect("INFO key 2 chose German");
    phone.hang_up(&mut call).await.unwrap();
}

/// PCMA only, and a late offer (no SDP in the INVITE): both get the welcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pcma_and_late_offer_calls_hear_the_welcome() {
    let srv = server(|_| {}).await;
    let welcome = prompt("en", "welcome");
    for offer in [Offer::Codecs(vec![8]), Offer::Late] {
        let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
            .await
            .unwrap();
        let (mut call, media) = place(&mut phone, offer.clone()).await;
        if matches!(offer, Offer::Codecs(_)) {
            assert_eq!(call.payload_type, 8);
        }
        let w = media
            .wait_for_prompt(&welcome, 0, 5 * SECOND)
            .await
            .unwrap_or_else(|| panic!("welcome with {offer:?}"));
        while media.frames_matching(&welcome, w) < 25 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        phone.hang_up(&mut call).await.unwrap();
    }
}

/// An offer with no codec we speak gets 488 and no call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_common_codec_is_488() {
    let srv = server(|_| {}).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let media = CallMedia::bind(LOCALHOST, false).unwrap();
    let err = phone
        .call("hotline", &media, Offer::Codecs(vec![18]))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("488"), "{err}");
}

/// A caller that the hotline rings first can cancel: 200 for the CANCEL, 487 for the INVITE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_while_ringing() {
    let srv = server(|c| c.answer_after = 30 * SECOND).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let media = CallMedia::bind(LOCALHOST, false).unwrap();
    let invite = phone.invite_text(
        "hotline",
        "cancel-1@test",
        "t1",
        1,
        &media.offer(&[0], true),
    );
    phone.send_raw(invite.as_bytes()).await.unwrap();
    let ringing = phone
        .response("cancel-1@test", &Method::Invite, 180, 5 * SECOND)
        .await
        .unwrap();
    assert_eq!(ringing.status, 180);
    // CANCEL: same Request-URI, Call-ID, From, CSeq number and top Via as the INVITE.
    let via = invite.lines().find(|l| l.starts_with("Via:")).unwrap();
    let cancel = format!(
        "CANCEL sip:hotline@{srv} SIP/2.0\r\n{via}\r\nMax-Forwards: 70\r\n\
From: \"Test Caller\" <sip:+4930123456@{local}>;tag=t1\r\nTo: <sip:hotline@{srv}>\r\n\
Call-ID: cancel-1@test\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
        srv = phone.server,
        local = phone.local
    );
    phone.send_raw(cancel.as_bytes()).await.unwrap();
    let ok = phone
        .response("cancel-1@test", &Method::Cancel, 200, 5 * SECOND)
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
    let tag = |r: &hotline::sip::message::Response| {
        r.headers.to_addr().unwrap().tag().map(str::to_string)
    };
    assert_eq!(
        tag(&ok),
        tag(&ringing),
        "one To tag for the whole exchange (§9.2)"
    );
    let terminated = phone
        .response("cancel-1@test", &Method::Invite, 300, 5 * SECOND)
        .await
        .unwrap();
    assert_eq!(terminated.status, 487);
    assert_eq!(tag(&terminated), tag(&ringing));
    let ack = phone.ack_text("hotline", "cancel-1@test", "t1", &terminated, 1, "", true);
    phone.send_raw(ack.as_bytes()).await.unwrap();
}

/// Our 200 is retransmitted until the ACK comes; with no ACK at all the hotline gives up
/// after 64*T1 and hangs up with BYE. (T1 is shortened so the test takes seconds.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_ack_retransmits_200_then_byes() {
    let srv = server(|c| c.t1 = Duration::from_millis(50)).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let media = CallMedia::bind(LOCALHOST, false).unwrap();
    let invite = phone.invite_text("hotline", "noack@test", "t2", 1, &media.offer(&[0], true));
    phone.send_raw(invite.as_bytes()).await.unwrap();
    let mut oks = 0;
    let bye = loop {
        match phone
            .recv(10 * SECOND)
            .await
            .expect("traffic from the hotline")
        {
            Message::Response(r) if r.status == 200 => oks += 1,
            Message::Response(_) => {}
            Message::Request(r) if r.method == Method::Bye => break r,
            Message::Request(_) => {}
        }
    };
    // 0, T1, 3T1, 7T1 ... capped at T2 = 4 s: within 64*T1 = 3.2 s that is 6 sends.
    assert!(oks >= 5, "200 sent {oks} times before the BYE");
    assert_eq!(bye.headers.call_id().unwrap(), "noack@test");
}

/// A retransmitted INVITE (same branch) makes no second call; it gets the answer again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmitted_invite_is_absorbed() {
    let srv = server(|_| {}).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let media = CallMedia::bind(LOCALHOST, false).unwrap();
    let invite = phone.invite_text("hotline", "rtx@test", "t3", 1, &media.offer(&[0], true));
    for _ in 0..3 {
        phone.send_raw(invite.as_bytes()).await.unwrap();
    }
    let ok = phone
        .response("rtx@test", &Method::Invite, 200, 5 * SECOND)
        .await
        .unwrap();
    let ack = phone.ack_text("hotline", "rtx@test", "t3", &ok, 1, "", false);
    phone.send_raw(ack.as_bytes()).await.unwrap();
    tokio::time::sleep(SECOND / 2).await;
    let stats = &srv.server.endpoint_stats;
    assert_eq!(
        stats.calls_total.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

/// OPTIONS gets 200 with Allow; unknown dialogs get 481; unsupported methods 405/501 with
/// Allow; a required extension 420; a body that is not SDP 415.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_outside_a_call_get_the_rfc_answers() {
    let srv = server(|_| {}).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let mut n = 0;
    let mut ask = |method: &str, extra: &str, body: &str, to_tag: bool| {
        n += 1;
        let call_id = format!("misc{n}@test");
        let tag = if to_tag { ";tag=nope" } else { "" };
        let text = format!(
            "{method} sip:hotline@{srv} SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
From: <sip:a@{local}>;tag=f{n}\r\nTo: <sip:hotline@{srv}>{tag}\r\nCall-ID: {call_id}\r\n\
CSeq: 1 {method}\r\nContact: <sip:a@{local}>\r\n{extra}Content-Length: {len}\r\n\r\n{body}",
            srv = phone.server,
            local = phone.local,
            via = phone.via(),
            len = body.len()
        );
        (call_id, Method::from_token(method), text)
    };
    let cases = [
        (ask("OPTIONS", "", "", false), 200, true),
        (ask("BYE", "", "", true), 481, false),
        (ask("SUBSCRIBE", "", "", false), 405, true),
        (ask("FOOBAR", "", "", false), 501, true),
        (ask("INVITE", "Require: 100rel\r\n", "", false), 420, false),
        (
            ask("INVITE", "Content-Type: text/plain\r\n", "hello", false),
            415,
            false,
        ),
    ];
    let mut cases = cases.to_vec();
    let mailto = ask("OPTIONS", "", "", false);
    let mailto_text = mailto
        .2
        .replacen("OPTIONS sip:hotline@", "OPTIONS mailto:hotline@", 1);
    cases.push(((mailto.0, mailto.1, mailto_text), 416, false));
    for ((call_id, method, text), status, allow) in cases {
        phone.send_raw(text.as_bytes()).await.unwrap();
        let r = phone
            .response(&call_id, &method, 200, 5 * SECOND)
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        assert_eq!(r.status, status, "{method}");
        if allow {
            let a = r
                .headers
                .get(HeaderName::Allow)
                .expect("Allow")
                .to_str_lossy();
            assert!(a.contains("INVITE"), "{method}: {a}");
        }
        if status == 420 {
            assert!(r.headers.get(HeaderName::Unsupported).is_some());
        }
    }
}

/// A burst of malformed messages: requests that can be answered get 400 with the reason;
/// garbage is dropped; afterwards the hotline still takes calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_burst_then_still_answers() {
    let srv = server(|_| {}).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let local = phone.local;
    let bad_to = format!(
        "OPTIONS sip:hotline@x SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbad1\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:hotline@x\r\nCall-ID: bad1\r\nCSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n"
    );
    let bad_cseq = format!(
        "OPTIONS sip:hotline@x SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKbad2\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:hotline@x>\r\nCall-ID: bad2\r\nCSeq: 99999999999 OPTIONS\r\n\
Content-Length: 0\r\n\r\n"
    );
    let mut garbage: Vec<Vec<u8>> = vec![
        b"\xde\xad\xbe\xef\x00\xff\r\n\r\n".to_vec(),
        b"INVITE sip:a@b SIP/2.0\r\n".to_vec(),
        b"SIP/2.0 999 Nope\r\n\r\n".to_vec(),
        vec![b'A'; 60_000],
    ];
    let mut seed = 0x2545F491u32;
    for _ in 0..200 {
        let mut m = bad_to.clone().into_bytes();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let i = seed as usize % m.len();
            m[i] = (seed >> 8) as u8;
        }
        garbage.push(m);
    }
    for g in &garbage {
        phone.send_raw(g).await.unwrap();
    }
    // After the burst, the two well-aimed ones each get a 400 naming the fault. On a
    // loaded machine the kernel may drop the end of a burst the hotline has not read yet
    // (a UDP socket's buffer is finite), so they are sent again each quiet second until
    // both are answered or a generous deadline passes.
    let mut reasons: Vec<String> = Vec::new();
    let until = tokio::time::Instant::now() + 30 * SECOND;
    let found = |reasons: &[String]| {
        reasons.iter().any(|r| r.contains("To")) && reasons.iter().any(|r| r.contains("CSeq"))
    };
    while !found(&reasons) && tokio::time::Instant::now() < until {
        match phone.recv(SECOND).await {
            Some(Message::Response(r)) if r.status == 400 => reasons.push(r.reason.clone()),
            Some(_) => {}
            None => {
                phone.send_raw(bad_to.as_bytes()).await.unwrap();
                phone.send_raw(bad_cseq.as_bytes()).await.unwrap();
            }
        }
    }
    assert!(reasons.iter().any(|r| r.contains("To")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("CSeq")), "{reasons:?}");
    let stats = &srv.server.transport_stats;
    assert!(
        stats
            .dropped_garbage
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );

    let (mut call, media) = place(&mut phone, Offer::Default).await;
    media
        .wait_for_prompt(&prompt("en", "welcome"), 0, 5 * SECOND)
        .await
        .expect("still serving calls");
    phone.hang_up(&mut call).await.unwrap();
}

/// Hold (a=sendonly) stops our audio; unhold resumes it. Both answered in the dialog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reinvite_hold_and_unhold() {
    let srv = server(|_| {}).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let (mut call, media) = place(&mut phone, Offer::Default).await;
    media
        .wait_for_prompt(&prompt("en", "welcome"), 0, 5 * SECOND)
        .await
        .unwrap();
    let hold_sdp = media.offer(&[0], true).replace("a=sendrecv", "a=sendonly");
    let hold = phone.in_dialog_text(
        &mut call,
        "INVITE",
        "Content-Type: application/sdp\r\n",
        &hold_sdp,
    );
    phone.send_raw(hold.as_bytes()).await.unwrap();
    let ok = phone
        .response(&call.call_id, &Method::Invite, 200, 5 * SECOND)
        .await
        .unwrap();
    let body = String::from_utf8_lossy(&ok.body).to_string();
    assert!(body.contains("a=recvonly"), "{body}");
    let ack = phone.ack_text(
        "hotline",
        &call.call_id,
        &call.from_tag,
        &ok,
        call.cseq,
        "",
        false,
    );
    phone.send_raw(ack.as_bytes()).await.unwrap();
    tokio::time::sleep(SECOND / 5).await;
    let before = media.heard_len();
    tokio::time::sleep(SECOND / 2).await;
    let during = media.heard_len() - before;
    assert!(during <= 2, "{during} frames arrived while on hold");

    let unhold = phone.in_dialog_text(
        &mut call,
        "INVITE",
        "Content-Type: application/sdp\r\n",
        &media.offer(&[0], true),
    );
    phone.send_raw(unhold.as_bytes()).await.unwrap();
    let ok = phone
        .response(&call.call_id, &Method::Invite, 200, 5 * SECOND)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&ok.body).contains("a=sendrecv"));
    let ack = phone.ack_text(
        "hotline",
        &call.call_id,
        &call.from_tag,
        &ok,
        call.cseq,
        "",
        false,
    );
    phone.send_raw(ack.as_bytes()).await.unwrap();
    let resumed = media.heard_len();
    tokio::time::sleep(SECOND / 2).await;
    assert!(
        media.heard_len() > resumed + 10,
        "audio resumed after unhold"
    );
    phone.hang_up(&mut call).await.unwrap();
}

/// A caller behind NAT: its SDP names an address it does not receive on; the hotline
/// learns the real one from the caller's first packets and sends there. A third party
/// spraying RTP later is ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symmetric_rtp_follows_the_caller_and_ignores_strangers() {
    let srv = server(|_| {}).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let media = CallMedia::bind(LOCALHOST, true).unwrap();
    // The SDP points at a socket nobody reads (the NAT's private view).
    let decoy = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sdp = media.offer(&[0], true).replace(
        &format!("m=audio {} ", media.local.port()),
        &format!("m=audio {} ", decoy.local_addr().unwrap().port()),
    );
    let call_id = "nat@test";
    let invite = phone.invite_text("hotline", call_id, "t9", 1, &sdp);
    phone.send_raw(invite.as_bytes()).await.unwrap();
    let ok = phone
        .response(call_id, &Method::Invite, 200, 5 * SECOND)
        .await
        .unwrap();
    let ack = phone.ack_text("hotline", call_id, "t9", &ok, 1, "", false);
    phone.send_raw(ack.as_bytes()).await.unwrap();
    let answer = hotline::sip::sdp::parse_offer(&ok.body).unwrap();
    let engine_rtp: SocketAddr = answer.media[0].audio.as_ref().unwrap().rtp_addr();
    media.connect(engine_rtp, hotline::media::g711::Codec::Pcmu, 0, Some(101));
    // The first frames went to the SDP address before the caller's packets arrived; once
    // the hotline has latched, the caller hears the welcome from wherever it had reached.
    let welcome = prompt("en", "welcome");
    let deadline = std::time::Instant::now() + 5 * SECOND;
    while media.heard_len() < 60 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Leading silence frames all look alike, so try every offset.
    let heard = media.heard();
    let pcmu = hotline::media::g711::Codec::Pcmu;
    let continues = (0..welcome.frame_count()).any(|offset| {
        (0..50).all(|i| {
            welcome
                .frame(pcmu, offset + i)
                .is_some_and(|f| heard[i].payload == *f)
        })
    });
    assert!(
        continues,
        "what arrives is the welcome, frame for frame, after the latch"
    );
    // A stranger sprays RTP at the engine's port with a different SSRC.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    tokio::time::sleep(SECOND).await;
    let mut pkt = vec![0x80, 0, 0, 1, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef];
    pkt.extend_from_slice(&[0xff; 160]);
    for _ in 0..50 {
        stranger.send_to(&pkt, engine_rtp).unwrap();
    }
    let at = media.heard_len();
    tokio::time::sleep(SECOND / 2).await;
    assert!(
        media.heard_len() > at + 15,
        "audio keeps coming to the caller after the spray"
    );
}

/// A caller whose RTP stops is hung up after the no-media timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_media_ends_the_call() {
    let srv = server(|c| c.no_media_timeout = 2 * SECOND).await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let media = CallMedia::bind(LOCALHOST, false).unwrap();
    // Answered, but the caller never sends a packet.
    let _call = phone.call("hotline", &media, Offer::Default).await.unwrap();
    phone
        .expect_bye(10 * SECOND)
        .await
        .expect("BYE after the no-media timeout");
}

/// IPv6: signalling and media on [::1], SDP with IN IP6.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_call() {
    if UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback on this machine; skipping");
        return;
    }
    let srv = server(|c| {
        c.listen = vec!["udp:[::1]:0".parse().unwrap()];
    })
    .await;
    let mut phone = Phone::new(Protocol::Udp, addr(&srv, Protocol::Udp))
        .await
        .unwrap();
    let media = CallMedia::bind("::1".parse().unwrap(), true).unwrap();
    let mut call = phone
        .call("hotline", &media, Offer::Default)
        .await
        .expect("answered over IPv6");
    assert!(String::from_utf8_lossy(&call.answer.body).contains("IN IP6 ::1"));
    media.connect(
        call.remote_rtp,
        call.codec,
        call.payload_type,
        call.telephone_event_pt,
    );
    media
        .wait_for_prompt(&prompt("en", "welcome"), 0, 5 * SECOND)
        .await
        .expect("welcome over IPv6");
    phone.hang_up(&mut call).await.unwrap();
}
