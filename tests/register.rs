//! Agents' phones logging in to a real hotline on loopback: REGISTER over UDP and TCP,
//! challenged with SHA-256 and MD5 digest, answered with a password-derived response, and
//! what the registrar then holds (the Contact, the NAT source, the expiry) as the queues see
//! it through the shared view and the event channel.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{SECOND, addr, server_with_credentials};
use hotline::config::Protocol;
use hotline::server::RunningServer;
use hotline::sip::digest::{Algorithm, Authorization, Challenge, Secret};
use hotline::sip::message::{HeaderName, Method, Response};
use hotline::sip::registrar::{Credentials, RegistrarEvent};
use hotline_load::caller::Phone;

async fn registrar_server() -> RunningServer {
    let creds = Credentials::new()
        .with("alice", Secret::Password("secret".into()))
        .with(
            "bob",
            // Only hashes in the configuration: H(bob:hotline:pw) for MD5.
            Secret::hashed(Some(&Algorithm::Md5.ha1("bob", "hotline", "pw")), None).unwrap(),
        );
    server_with_credentials(|_| {}, Some(Arc::new(creds))).await
}

struct Registering {
    phone: Phone,
    call_id: String,
    cseq: u32,
}

impl Registering {
    async fn new(srv: &RunningServer, t: Protocol) -> Registering {
        let phone = Phone::new(t, addr(srv, t)).await.unwrap();
        let call_id = format!("reg-{}@test", phone.local.port());
        Registering {
            phone,
            call_id,
            cseq: 0,
        }
    }

    /// Sends a REGISTER for `user` and waits for the final response.
    async fn send(
        &mut self,
        user: &str,
        expires: u32,
        contact: Option<&str>,
        auth: Option<&Authorization>,
    ) -> Response {
        self.cseq += 1;
        let local = self.phone.local;
        let contact = contact
            .map(str::to_string)
            .unwrap_or_else(|| format!("<sip:{user}@{local}>"));
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let text = format!(
            "REGISTER sip:hotline SIP/2.0\r\nVia: {via}\r\nMax-Forwards: 70\r\n\
             From: <sip:{user}@hotline>;tag=r{cseq}\r\nTo: <sip:{user}@hotline>\r\n\
             Call-ID: {cid}\r\nCSeq: {cseq} REGISTER\r\nContact: {contact}\r\n\
             Expires: {expires}\r\n{auth}Content-Length: 0\r\n\r\n",
            via = self.phone.via(),
            cseq = self.cseq,
            cid = self.call_id,
        );
        self.phone.send_raw(text.as_bytes()).await.unwrap();
        self.phone
            .response(&self.call_id, &Method::Register, 200, 5 * SECOND)
            .await
            .expect("REGISTER answered")
    }

    /// Challenge, then answer with `alg`: the final response.
    async fn login(
        &mut self,
        user: &str,
        password: &str,
        alg: Algorithm,
        expires: u32,
    ) -> Response {
        let challenge = self.send(user, expires, None, None).await;
        assert_eq!(challenge.status, 401);
        let ch = challenges(&challenge)
            .into_iter()
            .find(|c| c.algorithm == alg)
            .expect("a challenge for the algorithm");
        let a = Authorization::answer(&ch, user, password, "REGISTER", "sip:hotline", "c0ffee", 1);
        self.send(user, expires, None, Some(&a)).await
    }
}

fn challenges(resp: &Response) -> Vec<Challenge> {
    resp.headers
        .get_all(HeaderName::WwwAuthenticate)
        .map(|v| Challenge::parse(v.as_str().unwrap()).unwrap())
        .collect()
}

/// 401 with SHA-256 and MD5 challenges, a SHA-256 answer, 200 with the Contact and its
/// expiry; the binding (with the phone's real source address) is visible to the queues and
/// announced on the event channel; Expires: 0 removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_sha256_and_unregister_over_udp() {
    let srv = registrar_server().await;
    let mut events = srv.server.registrar_events.subscribe();
    let mut r = Registering::new(&srv, Protocol::Udp).await;

    let first = r.send("alice", 120, None, None).await;
    assert_eq!(first.status, 401);
    let chs = challenges(&first);
    let algs: Vec<Algorithm> = chs.iter().map(|c| c.algorithm).collect();
    assert_eq!(algs, [Algorithm::Sha256, Algorithm::Md5]);
    assert!(
        chs.iter()
            .all(|c| c.realm == "hotline" && c.qop_auth && !c.stale)
    );
    assert!(first.headers.to_addr().unwrap().tag().is_some());

    let a = Authorization::answer(
        &chs[0],
        "alice",
        "secret",
        "REGISTER",
        "sip:hotline",
        "abc",
        1,
    );
    let ok = r.send("alice", 120, None, Some(&a)).await;
    assert_eq!(ok.status, 200, "{}", ok.reason);
    let local = r.phone.local;
    assert_eq!(
        ok.headers.get(HeaderName::Contact).unwrap().as_str(),
        Some(format!("<sip:alice@{local}>;expires=120").as_str())
    );

    let now = Instant::now();
    let bound = srv.server.registrations.contacts("alice", now);
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].contact.to_string(), format!("sip:alice@{local}"));
    assert_eq!(bound[0].source.remote, local);
    assert!(bound[0].expires_in(now) > Duration::from_secs(110));
    match tokio::time::timeout(5 * SECOND, events.recv()).await {
        Ok(Ok(RegistrarEvent::Registered { user, source, .. })) => {
            assert_eq!(user, "alice");
            assert_eq!(source.remote, local);
        }
        other => panic!("expected a Registered event, got {other:?}"),
    }

    // The same nonce with the next count unregisters (no new challenge needed).
    let a2 = Authorization::answer(
        &chs[0],
        "alice",
        "secret",
        "REGISTER",
        "sip:hotline",
        "abc",
        2,
    );
    let gone = r.send("alice", 0, None, Some(&a2)).await;
    assert_eq!(gone.status, 200);
    assert!(!gone.headers.contains(HeaderName::Contact));
    assert!(
        srv.server
            .registrations
            .contacts("alice", Instant::now())
            .is_empty()
    );
    match tokio::time::timeout(5 * SECOND, events.recv()).await {
        Ok(Ok(RegistrarEvent::Unregistered { user, .. })) => assert_eq!(user, "alice"),
        other => panic!("expected an Unregistered event, got {other:?}"),
    }
    // Replaying the last answer is challenged again, not accepted.
    let replay = r.send("alice", 0, None, Some(&a2)).await;
    assert_eq!(replay.status, 401);
}

/// A wrong password and an unknown user are both challenged first and refused with 403
/// after answering, so the answers do not tell which users exist.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_get_403_after_the_challenge() {
    let srv = registrar_server().await;
    let mut r = Registering::new(&srv, Protocol::Udp).await;
    let wrong = r.login("alice", "guess", Algorithm::Sha256, 120).await;
    assert_eq!(wrong.status, 403);
    let unknown = r.login("mallory", "secret", Algorithm::Sha256, 120).await;
    assert_eq!(unknown.status, 403);
    assert!(srv.server.registrations.snapshot(Instant::now()).is_empty());
}

/// MD5 against a hashed secret, over TCP; an interval below the minimum gets 423 with
/// Min-Expires.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn md5_with_a_hashed_secret_over_tcp() {
    let srv = registrar_server().await;
    let mut r = Registering::new(&srv, Protocol::Tcp).await;
    let ok = r.login("bob", "pw", Algorithm::Md5, 300).await;
    assert_eq!(ok.status, 200, "{}", ok.reason);
    let bound = srv.server.registrations.contacts("bob", Instant::now());
    assert_eq!(bound.len(), 1);
    assert_eq!(bound[0].source.transport, Protocol::Tcp);
    let brief = r.login("bob", "pw", Algorithm::Md5, 10).await;
    assert_eq!(brief.status, 423);
    assert_eq!(
        brief.headers.get(HeaderName::MinExpires).unwrap().as_str(),
        Some("60")
    );
}
