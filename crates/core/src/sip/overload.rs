//! RFC 7339 overload control, the server's side: a proxy that announces support (an `oc`
//! parameter in its Via) is told in the response's Via how much of its new traffic to
//! hold back (`oc`, a loss percentage under the default `loss` algorithm), for how long
//! (`oc-validity`, milliseconds) and in which order the advice was given (`oc-seq`). The
//! figure follows the admission controller (`sip::admission`): 100 while no new call can
//! be taken at all (calls in progress, RTP ports, the media clock, draining), the share of
//! the last second's new INVITEs refused while only the rate is exceeded, 0 otherwise,
//! sent with validity 0 so that a proxy stops holding back at once. Pure: time comes in.

use std::time::{Duration, Instant};

use crate::sip::admission::Refusal;
use crate::sip::message::Response;

/// How long a non-zero advice holds unless renewed: a proxy that stops sending us traffic
/// hears nothing newer, so the advice must lapse by itself.
pub const VALIDITY: Duration = Duration::from_secs(2);

/// The window over which the refused share of new INVITEs is counted.
const WINDOW: Duration = Duration::from_secs(1);

/// The server's overload-control state.
#[derive(Debug)]
pub struct OverloadControl {
    /// Wall-clock seconds at `start` (passed in), so `oc-seq` grows across restarts too.
    seq_base_secs: u64,
    start: Option<Instant>,
    window_start: Option<Instant>,
    offered: u32,
    refused: u32,
    /// The last whole window's counts.
    last_offered: u32,
    last_refused: u32,
}

impl OverloadControl {
    /// `seq_base_secs`: the wall clock's Unix seconds when the engine starts.
    pub fn new(seq_base_secs: u64) -> OverloadControl {
        OverloadControl {
            seq_base_secs,
            start: None,
            window_start: None,
            offered: 0,
            refused: 0,
            last_offered: 0,
            last_refused: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        let start = *self.window_start.get_or_insert(now);
        let age = now.saturating_duration_since(start);
        if age >= WINDOW {
            // A window with no traffic at all leaves nothing to go by.
            let whole = age >= WINDOW * 2;
            self.last_offered = if whole { 0 } else { self.offered };
            self.last_refused = if whole { 0 } else { self.refused };
            self.offered = 0;
            self.refused = 0;
            self.window_start = Some(now);
        }
    }

    /// A new INVITE was admitted (`refused` false) or refused.
    pub fn count(&mut self, now: Instant, refused: bool) {
        self.roll(now);
        self.offered = self.offered.saturating_add(1);
        self.refused = self.refused.saturating_add(u32::from(refused));
    }

    /// The loss percentage to ask of proxies while the admission controller says
    /// `refusing` (None: new calls are taken).
    pub fn loss(&mut self, now: Instant, refusing: Option<Refusal>) -> u8 {
        self.roll(now);
        match refusing {
            None => 0,
            Some(Refusal::Rate) => {
                let (offered, refused) = if self.last_offered > 0 {
                    (self.last_offered, self.last_refused)
                } else {
                    (self.offered, self.refused)
                };
                let share = (u64::from(refused) * 100)
                    .checked_div(u64::from(offered))
                    .unwrap_or(0);
                share.clamp(1, 100) as u8
            }
            Some(_) => 100,
        }
    }

    /// Adds the advice to `resp`'s top Via when the proxy announced support there (`oc`,
    /// and `loss` among its `oc-algo`, or no `oc-algo`: loss is the default). `refusing`
    /// (what the admission controller says now) is asked only then. Returns the loss
    /// given, if any.
    pub fn advise(
        &mut self,
        now: Instant,
        refusing: impl FnOnce() -> Option<Refusal>,
        resp: &mut Response,
    ) -> Option<u8> {
        let supports = resp
            .headers
            .top_via()
            .ok()
            .is_some_and(|v| v.params.get("oc").is_some() && offers_loss(&v));
        if !supports {
            return None;
        }
        let loss = self.loss(now, refusing());
        let since = now.saturating_duration_since(*self.start.get_or_insert(now));
        let seq = format!(
            "{}.{:03}",
            self.seq_base_secs + since.as_secs(),
            since.subsec_millis()
        );
        let validity = if loss == 0 { 0 } else { VALIDITY.as_millis() };
        let loss_text = loss.to_string();
        let validity_text = validity.to_string();
        resp.headers
            .modify_top_via(|v| {
                v.params.set("oc", Some(&loss_text));
                v.params.set("oc-algo", Some("\"loss\""));
                v.params.set("oc-validity", Some(&validity_text));
                v.params.set("oc-seq", Some(&seq));
            })
            .ok()?;
        Some(loss)
    }
}

/// Whether the Via's `oc-algo` (a quoted, comma-separated list) includes `loss`, which
/// every client supporting RFC 7339 must; absent means the default, loss.
fn offers_loss(via: &crate::sip::message::Via) -> bool {
    match via.params.get("oc-algo").and_then(|p| p.value.as_deref()) {
        None => true,
        Some(list) => list
            .trim_matches('"')
            .split(',')
            .any(|a| a.trim().eq_ignore_ascii_case("loss")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::message::{Limits, Message, parse};

    fn response(via_params: &str) -> Response {
        let text = format!(
            "SIP/2.0 503 Service Unavailable\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKp1{via_params}\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKc1;oc\r\n\
From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
Content-Length: 0\r\n\r\n"
        );
        match parse(text.as_bytes(), &Limits::default()).expect("parses") {
            Message::Response(r) => r,
            Message::Request(_) => unreachable!(),
        }
    }

    fn top_param(r: &Response, name: &str) -> Option<String> {
        r.headers
            .top_via()
            .expect("Via")
            .params
            .get(name)
            .and_then(|p| p.value.clone())
    }

    #[test]
    fn a_proxy_without_oc_gets_no_advice() {
        let t = Instant::now();
        let mut oc = OverloadControl::new(1_700_000_000);
        let mut r = response("");
        assert_eq!(oc.advise(t, || Some(Refusal::MaxCalls), &mut r), None);
        assert_eq!(top_param(&r, "oc"), None);
        // Only the top Via counts: the second one's `oc` is not ours to answer.
        assert!(
            r.headers.vias().expect("Vias")[1]
                .params
                .get("oc")
                .is_some()
        );
        // A proxy offering only another algorithm gets nothing either.
        let mut r = response(";oc;oc-algo=\"rate\"");
        assert_eq!(oc.advise(t, || Some(Refusal::MaxCalls), &mut r), None);
    }

    #[test]
    fn full_or_draining_asks_for_all_new_traffic_to_go_elsewhere() {
        let t = Instant::now();
        let mut oc = OverloadControl::new(1_700_000_000);
        for why in [
            Refusal::MaxCalls,
            Refusal::Ports,
            Refusal::Lateness,
            Refusal::Draining,
        ] {
            let mut r = response(";oc;oc-algo=\"loss,rate\"");
            assert_eq!(oc.advise(t, || Some(why), &mut r), Some(100), "{why:?}");
            assert_eq!(top_param(&r, "oc").as_deref(), Some("100"));
            assert_eq!(top_param(&r, "oc-algo").as_deref(), Some("\"loss\""));
            assert_eq!(top_param(&r, "oc-validity").as_deref(), Some("2000"));
            assert_eq!(top_param(&r, "oc-seq").as_deref(), Some("1700000000.000"));
        }
    }

    #[test]
    fn over_the_rate_the_loss_is_the_share_refused_and_it_clears_with_validity_0() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut oc = OverloadControl::new(1_700_000_000);
        // A second with 400 new INVITEs, 300 of them refused.
        for i in 0..400u64 {
            oc.count(at(i * 2), i % 4 != 0);
        }
        let mut r = response(";oc");
        assert_eq!(
            oc.advise(at(1_000), || Some(Refusal::Rate), &mut r),
            Some(75),
            "the last whole second's share"
        );
        assert_eq!(top_param(&r, "oc-seq").as_deref(), Some("1700000000.000"));
        // Later the engine takes calls again: oc=0 with validity 0 ends the advice, and
        // the sequence has grown.
        let mut r = response(";oc");
        assert_eq!(oc.advise(at(2_500), || None, &mut r), Some(0));
        assert_eq!(top_param(&r, "oc-validity").as_deref(), Some("0"));
        assert_eq!(top_param(&r, "oc-seq").as_deref(), Some("1700000001.500"));
        // Refusing for the rate with no count yet still asks for some loss.
        let mut fresh = OverloadControl::new(0);
        assert_eq!(fresh.loss(t0, Some(Refusal::Rate)), 1);
    }
}
