//! SMS pumping (toll fraud) on routes that send one-time codes by SMS.
//!
//! A pumping campaign makes the service text numbers the fraudster is paid for (premium or
//! revenue-sharing ranges), through the sign-up or login OTP route. Each request looks like a user asking
//! for a code; what gives the campaign away is across requests: sends to one range rise while almost none
//! of them is ever verified, because nobody reads those codes. So the detector tracks, per OTP route:
//!
//! - velocity per destination number, per client address and per session (a single number or client
//!   asking again and again);
//! - sends and verified sends per range (`prefix_digits` leading digits, "+44 7700") and per country
//!   code, in one window; a range or country is closed for `block_for` (a flag in the store, shared by
//!   the fleet) when its volume spikes (more than `min_sends` codes within `verify_grace` beyond what it
//!   verified in the window) or its conversion collapses (`min_sends` settled sends, a share verified
//!   under `min_conversion`);
//! - denied ranges from the config (premium-rate and satellite ranges).
//!
//! Sends are counted when the upstream answered 2xx (a code went out); verified sends when the verify
//! route answered 2xx. Sends of the last `verify_grace` are left out of the conversion, so that real users
//! who have not typed their codes yet do not read as a collapse; the spike rule covers that time. A country is judged like a
//! range but needs ten times the sends: it closes only when a campaign outweighs its real traffic, and
//! catches campaigns that rotate over many ranges of one country.

use crate::abuse::{AbuseGuard, AbuseOutcome, PendingAbuse};
use crate::guarded::Guarded;
use crate::limits::{key_of, part_value, RequestFacts};
use rampart_policy::guard::{KeyPart, OtpSpec};
use std::time::Duration;

/// A country needs this many times a range's `min_sends` before its conversion is judged.
const COUNTRY_SENDS_FACTOR: u64 = 10;

/// Digits of a destination number with its country code; None when the value is not a phone number.
///
/// "+44 7700 900123", "0044 7700 900123" and, with default country 44, "07700 900123" are all
/// "447700900123". A number without `+`/`00` and without a default country is taken as already
/// international ("447700900123"), as many APIs send it.
pub fn normalise_number(raw: &str, default_country: Option<&str>) -> Option<String> {
    let t = raw.trim();
    let (international, rest) = if let Some(r) = t.strip_prefix('+') {
        (true, r)
    } else if let Some(r) = t.strip_prefix("00") {
        (true, r)
    } else {
        (false, t)
    };
    let mut digits = String::with_capacity(16);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' => {}
            _ => return None,
        }
    }
    if !international {
        if let Some(cc) = default_country {
            // The national trunk prefix ("0" in most of the world) is not part of the number.
            let national = digits.strip_prefix('0').unwrap_or(&digits);
            digits = format!("{cc}{national}");
        }
    }
    (7..=15).contains(&digits.len()).then_some(digits)
}

/// The country calling code at the start of an international number (ITU-T E.164 assignment: codes
/// are one digit for zones 1 and 7, two digits for the listed ones, three digits otherwise).
pub fn country_code(digits: &str) -> &str {
    let b = digits.as_bytes();
    let len = match b.first() {
        Some(b'1') | Some(b'7') => 1,
        Some(_) if b.len() >= 2 => {
            let two = &digits[..2];
            const TWO_DIGIT: &[&str] = &[
                "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47", "48",
                "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65", "66", "81",
                "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
            ];
            if TWO_DIGIT.contains(&two) {
                2
            } else {
                3
            }
        }
        _ => 0,
    };
    &digits[..len.min(digits.len())]
}

/// "+44 7700" for the range "447700".
fn shown_range(range: &str) -> String {
    let cc = country_code(range);
    if cc.len() == range.len() {
        format!("+{cc}")
    } else {
        format!("+{cc} {}", &range[cc.len()..])
    }
}

fn phone_of(spec: &OtpSpec, part: &KeyPart, f: &RequestFacts<'_>) -> Option<String> {
    normalise_number(&part_value(part, f)?, spec.default_country.as_deref())
}

/// The ranges a number is judged in: its country code and its `prefix_digits` range.
fn levels(spec: &OtpSpec, number: &str) -> [String; 2] {
    let cc = country_code(number).to_string();
    let range = number[..spec.prefix_digits.min(number.len()).max(cc.len())].to_string();
    [cc, range]
}

impl AbuseGuard {
    pub(crate) async fn check_otp_send(
        &self,
        store: &Guarded,
        i: usize,
        spec: &OtpSpec,
        f: &RequestFacts<'_>,
        pending: &mut Vec<PendingAbuse>,
    ) -> Option<AbuseOutcome> {
        let number = phone_of(spec, &spec.phone, f)?;
        let detector = format!("sms_pumping:{}", spec.route);
        let outcome = |signal: String, key: String| AbuseOutcome {
            detector: detector.clone(),
            signals: vec![signal],
            action: spec.action,
            key,
        };
        if let Some(p) = spec.deny_prefixes.iter().find(|p| number.starts_with(p.as_str())) {
            let shown = shown_range(p);
            return Some(outcome(format!("denied_range: {shown} is a denied range"), shown));
        }

        // Ranges closed earlier, by this node or another.
        let levels = levels(spec, &number);
        for level in &levels {
            let flag = self.key(&[&spec.route, "otp-closed", level]);
            if store.window(&flag, spec.block_for, 0).await.value.map_or(0, |v| v.0) > 0 {
                let shown = shown_range(level);
                return Some(outcome(
                    format!("range_closed: {shown} is closed: its codes spiked or went unverified"),
                    shown,
                ));
            }
        }
        // Judge each level's conversion on the sends old enough to have been verified.
        for (level, min_sends) in levels
            .iter()
            .zip([spec.min_sends * COUNTRY_SENDS_FACTOR, spec.min_sends])
        {
            let count = |what: &'static str, w: Duration| {
                let k = self.key(&[&spec.route, what, level]);
                async move { store.window(&k, w, 0).await.value.map_or(0, |v| v.0) }
            };
            let (sends, recent, verified) = tokio::join!(
                count("otp-sent", spec.window),
                async {
                    if spec.verify_grace.is_zero() {
                        0
                    } else {
                        count("otp-recent", spec.verify_grace).await
                    }
                },
                count("otp-verified", spec.window),
            );
            let settled = sends.saturating_sub(recent);
            let shown = shown_range(level);
            let window = humantime::format_duration(spec.window);
            // A spike: more codes in flight than the range's verified history can explain.
            let signal = if !spec.verify_grace.is_zero() && recent >= min_sends + verified {
                Some(format!(
                    "volume_spike: {recent} codes sent to {shown} within the last {}, {verified} verified within {window}",
                    humantime::format_duration(spec.verify_grace)
                ))
            } else if settled >= min_sends && (verified as f64) < spec.min_conversion * settled as f64 {
                Some(format!(
                    "conversion_collapsed: {sends} codes sent to {shown} within {window}, {verified} verified (under {:.0} %)",
                    spec.min_conversion * 100.0
                ))
            } else {
                None
            };
            if let Some(signal) = signal {
                store
                    .window(&self.key(&[&spec.route, "otp-closed", level]), spec.block_for, 1)
                    .await;
                return Some(outcome(signal, shown));
            }
        }

        // Velocity of this number, this client and this session.
        let ip = f.client_ip.to_string();
        let session = spec.session.as_ref().and_then(|s| key_of(std::slice::from_ref(s), f));
        let bump = |what: &'static str, who: &str| {
            let k = self.key(&[&spec.route, what, who]);
            async move { store.window(&k, spec.window, 1).await.value.map_or(0, |v| v.0) }
        };
        let (per_number, per_ip, per_session) = tokio::join!(bump("otp-number", &number), bump("otp-ip", &ip), async {
            match &session {
                Some((raw, _)) => bump("otp-session", raw).await,
                None => 0,
            }
        });
        let window = humantime::format_duration(spec.window);
        if per_number > spec.max_per_number {
            let shown = format!(
                "{} number #{}",
                shown_range(&levels[1]),
                &crate::bans::token_hash(&number)[..8]
            );
            return Some(outcome(
                format!("number_velocity: {per_number} codes asked for one number within {window}"),
                shown,
            ));
        }
        if per_ip > spec.max_per_ip {
            return Some(outcome(
                format!("ip_velocity: {ip} asked for {per_ip} codes within {window}"),
                ip,
            ));
        }
        if per_session > spec.max_per_session {
            let shown = session.map(|(_, s)| s).unwrap_or_default();
            return Some(outcome(
                format!("session_velocity: {per_session} codes asked for in one session within {window}"),
                shown,
            ));
        }
        let [country, range] = levels;
        pending.push(PendingAbuse::OtpSend {
            spec: i,
            country,
            range,
        });
        None
    }

    /// A request on a verify route: remembers the number's ranges for when the answer is known.
    pub(crate) fn note_otp_verify(
        &self,
        i: usize,
        spec: &OtpSpec,
        part: &KeyPart,
        f: &RequestFacts<'_>,
        pending: &mut Vec<PendingAbuse>,
    ) {
        if let Some(number) = phone_of(spec, part, f) {
            let [country, range] = levels(spec, &number);
            pending.push(PendingAbuse::OtpVerify {
                spec: i,
                country,
                range,
            });
        }
    }

    pub(crate) fn count_otp(&self, store: &Guarded, spec: &OtpSpec, levels: [&str; 2], sent: bool, status: u16) {
        if !(200..300).contains(&status) {
            return;
        }
        for level in levels {
            if sent {
                store.count(&self.key(&[&spec.route, "otp-sent", level]), spec.window, 1);
                if !spec.verify_grace.is_zero() {
                    store.count(&self.key(&[&spec.route, "otp-recent", level]), spec.verify_grace, 1);
                }
            } else {
                store.count(&self.key(&[&spec.route, "otp-verified", level]), spec.window, 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_policy::guard::AbuseAction;

    #[test]
    fn numbers_normalise_to_international_digits() {
        assert_eq!(
            normalise_number("+44 7700 900123", None).as_deref(),
            Some("447700900123")
        );
        assert_eq!(
            normalise_number("0044 (7700) 900-123", None).as_deref(),
            Some("447700900123")
        );
        assert_eq!(
            normalise_number("07700 900123", Some("44")).as_deref(),
            Some("447700900123")
        );
        assert_eq!(normalise_number("447700900123", None).as_deref(), Some("447700900123"));
        assert_eq!(
            normalise_number("(415) 555-0134", Some("1")).as_deref(),
            Some("14155550134")
        );
        assert_eq!(normalise_number("call me", None), None);
        assert_eq!(normalise_number("+44 12", None), None, "too short");
        assert_eq!(normalise_number("+1234567890123456", None), None, "too long for E.164");
    }

    #[test]
    fn country_codes_have_their_assigned_lengths() {
        assert_eq!(country_code("14155550134"), "1");
        assert_eq!(country_code("79161234567"), "7");
        assert_eq!(country_code("447700900123"), "44");
        assert_eq!(country_code("4915112345678"), "49");
        assert_eq!(country_code("353851234567"), "353");
        assert_eq!(country_code("8821612345678"), "882");
        assert_eq!(country_code("2348031234567"), "234");
        assert_eq!(shown_range("447700"), "+44 7700");
        assert_eq!(shown_range("882"), "+882");
    }

    fn spec() -> OtpSpec {
        OtpSpec {
            route: "send".into(),
            phone: KeyPart::Json("/phone".into()),
            verify: Some(("verify".into(), KeyPart::Json("/phone".into()))),
            session: Some(KeyPart::Cookie("sid".into())),
            window: Duration::from_secs(3600),
            max_per_number: 3,
            max_per_ip: 10,
            max_per_session: 5,
            prefix_digits: 6,
            min_sends: 10,
            min_conversion: 0.3,
            verify_grace: Duration::ZERO,
            block_for: Duration::from_secs(3600),
            deny_prefixes: vec!["882".into()],
            default_country: None,
            action: AbuseAction::Block,
        }
    }

    async fn send(
        g: &AbuseGuard,
        s: &Guarded,
        route: &str,
        ip: &str,
        phone: &str,
    ) -> (Option<AbuseOutcome>, Vec<PendingAbuse>) {
        let parts = http::Request::post(format!("/{route}"))
            .header("cookie", format!("sid={ip}"))
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let body = format!(r#"{{"phone":"{phone}"}}"#);
        let f = RequestFacts {
            parts: &parts,
            body: Some(body.as_bytes()),
            client_ip: ip.parse().unwrap(),
            route,
        };
        let mut pending = Vec::new();
        let out = g.check(s, &f, &mut pending).await;
        (out, pending)
    }

    #[tokio::test]
    async fn denied_ranges_and_velocity_are_stopped() {
        let g = AbuseGuard::new(&[], &[], &[spec()], "t:");
        let s = Guarded::memory(10_000);
        let (out, _) = send(&g, &s, "send", "198.51.100.1", "+882 16 1234 5678").await;
        let out = out.unwrap();
        assert!(out.signals[0].starts_with("denied_range: +882"), "{out:?}");
        for _ in 0..3 {
            let (out, pending) = send(&g, &s, "send", "198.51.100.2", "+44 7700 900123").await;
            assert!(out.is_none());
            g.count_response(&s, &pending, 200).await;
        }
        let out = send(&g, &s, "send", "198.51.100.2", "+44 7700 900123").await.0.unwrap();
        assert!(out.signals[0].starts_with("number_velocity"), "{out:?}");
        assert!(!out.key.contains("900123"), "numbers are shown hashed: {}", out.key);
    }

    #[tokio::test]
    async fn a_range_whose_sends_go_unverified_is_closed_and_others_stay_open() {
        let g2 = AbuseGuard::new(&[], &[], &[spec()], "t:");
        let s = Guarded::memory(10_000);
        let mut stopped = 0;
        for i in 0..40 {
            let (out, pending) = send(
                &g2,
                &s,
                "send",
                &format!("203.0.113.{i}"),
                &format!("+44 7911 {:06}", i),
            )
            .await;
            match out {
                Some(o) => {
                    assert!(
                        o.signals[0].starts_with("conversion_collapsed") || o.signals[0].starts_with("range_closed"),
                        "{o:?}"
                    );
                    stopped += 1;
                }
                None => {
                    g2.count_response(&s, &pending, 200).await;
                }
            }
        }
        assert_eq!(stopped, 30, "ten unverified sends close +44 7911");
        // A healthy range of the same country: every code verified; the country is not closed by ten sends.
        for i in 0..40 {
            let phone = format!("+44 7700 {:06}", i);
            let ip = format!("192.0.2.{i}");
            let (out, pending) = send(&g2, &s, "send", &ip, &phone).await;
            assert!(out.is_none(), "{out:?}");
            g2.count_response(&s, &pending, 200).await;
            let (out, pending) = send(&g2, &s, "verify", &ip, &phone).await;
            assert!(out.is_none());
            g2.count_response(&s, &pending, 200).await;
        }
    }

    #[tokio::test]
    async fn a_spike_is_stopped_at_once_and_unverified_sends_are_judged_after_the_grace() {
        let spec = OtpSpec {
            verify_grace: Duration::from_secs(10),
            ..spec()
        };
        let g = AbuseGuard::new(&[], &[], std::slice::from_ref(&spec), "t:");
        let s = Guarded::memory(10_000);
        // A range with verified history absorbs a burst of that size again.
        for i in 0..10 {
            let (ip, phone) = (format!("198.51.100.{i}"), format!("+49 151 {:07}", i));
            let (out, pending) = send(&g, &s, "send", &ip, &phone).await;
            assert!(out.is_none(), "{out:?}");
            g.count_response(&s, &pending, 200).await;
            let (_, pending) = send(&g, &s, "verify", &ip, &phone).await;
            g.count_response(&s, &pending, 200).await;
        }
        for i in 10..30 {
            let (out, pending) = send(&g, &s, "send", &format!("203.0.113.{i}"), &format!("+49 151 {:07}", i)).await;
            if i < 20 {
                assert!(out.is_none(), "send {i}: {out:?}");
                g.count_response(&s, &pending, 200).await;
            } else {
                let out = out.unwrap();
                let expected = if i == 20 {
                    "volume_spike: 20 codes sent to +49 1510"
                } else {
                    "range_closed: +49 1510"
                };
                assert!(out.signals[0].starts_with(expected), "{out:?}");
            }
        }

        // Ten unverified codes are not a spike; once the grace passes they are a collapsed conversion.
        let spec = OtpSpec {
            verify_grace: Duration::from_millis(300),
            ..spec
        };
        let g = AbuseGuard::new(&[], &[], &[spec], "t2:");
        let s = Guarded::memory(10_000);
        for i in 0..10 {
            let (out, pending) = send(&g, &s, "send", &format!("203.0.113.{i}"), &format!("+33 612 {:06}", i)).await;
            assert!(out.is_none(), "send {i}: {out:?}");
            g.count_response(&s, &pending, 200).await;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        let out = send(&g, &s, "send", "203.0.113.99", "+33 612 000099").await.0.unwrap();
        assert!(
            out.signals[0].starts_with("conversion_collapsed: 10 codes sent to +33 6120"),
            "{out:?}"
        );
    }
}
