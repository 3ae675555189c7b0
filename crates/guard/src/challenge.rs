//! The `challenge` action: a page whose script proves a little work before the client may go on.
//!
//! A rate limit with `action = "challenge"` answers a client over it with a small HTML page instead of a
//! 429. The page carries a token (its expiry, a random nonce and an HMAC binding both to the client's
//! address) and a script that finds a number `n` such that SHA-256("token.n") starts with `difficulty`
//! zero bits (about 65,000 hashes at the default 16: a blink for a browser, a real cost for a bot farm
//! sending millions of requests), stores "token.n" in the `rampart_clearance` cookie and reloads. A
//! request with a valid clearance (MAC right, not expired, same address, work done) passes the challenge
//! limits until the token expires; clients that run no script stay behind the limit.
//!
//! Checking a clearance is one HMAC and one SHA-256 (a few microseconds), and only happens for a request
//! that is over a challenge limit and carries the cookie.

use crate::bans::canonical;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The cookie that carries a solved challenge.
pub const CLEARANCE_COOKIE: &str = "rampart_clearance";

pub struct Challenger {
    key: [u8; 32],
    difficulty: u8,
    clearance: Duration,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Leading zero bits of a digest.
fn zero_bits(d: &[u8]) -> u32 {
    let mut n = 0;
    for b in d {
        if *b == 0 {
            n += 8;
        } else {
            return n + b.leading_zeros();
        }
    }
    n
}

impl Challenger {
    /// `secret`: shared by the fleet so that a clearance from one node holds on all; without one, a random
    /// key for this process (clearances then hold on this node, until it restarts).
    pub fn new(secret: Option<&str>, difficulty: u8, clearance: Duration) -> Self {
        let key = match secret {
            Some(s) => Sha256::digest(s.as_bytes()).into(),
            None => {
                let mut k = [0u8; 32];
                getrandom::fill(&mut k).expect("the OS random source");
                k
            }
        };
        Challenger {
            key,
            difficulty: difficulty.clamp(1, 30),
            clearance,
        }
    }

    fn mac(&self, body: &str) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        m.update(body.as_bytes());
        m.finalize().into_bytes()[..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// A fresh token for `ip`: "expiry.nonce.mac".
    pub fn token(&self, ip: IpAddr) -> String {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).expect("the OS random source");
        let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
        let expires = unix_now() + self.clearance.as_secs();
        let mac = self.mac(&format!("{expires}.{nonce}.{}", canonical(ip)));
        format!("{expires}.{nonce}.{mac}")
    }

    /// Whether `cookie` (the clearance cookie's value) is a solved, live token for `ip`.
    pub fn cleared(&self, cookie: &str, ip: IpAddr) -> bool {
        if cookie.len() > 200 {
            return false;
        }
        let mut parts = cookie.split('.');
        let (Some(expires), Some(nonce), Some(mac), Some(n), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let (Ok(exp), Ok(_)) = (expires.parse::<u64>(), n.parse::<u64>()) else {
            return false;
        };
        if exp < unix_now() {
            return false;
        }
        let expected = self.mac(&format!("{expires}.{nonce}.{}", canonical(ip)));
        // Constant-time comparison: the MAC is the secret-derived part.
        if expected.len() != mac.len() || expected.bytes().zip(mac.bytes()).fold(0u8, |a, (x, y)| a | (x ^ y)) != 0 {
            return false;
        }
        zero_bits(&Sha256::digest(cookie.as_bytes())) >= u32::from(self.difficulty)
    }

    /// The challenge page for `ip`.
    pub fn page(&self, ip: IpAddr) -> String {
        PAGE.replace("{TOKEN}", &self.token(ip))
            .replace("{BITS}", &self.difficulty.to_string())
            .replace("{COOKIE}", CLEARANCE_COOKIE)
            .replace("{MAX_AGE}", &self.clearance.as_secs().to_string())
    }
}

/// The page: plain SHA-256 in script (`crypto.subtle` exists only on https and localhost) over ASCII.
const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex">
<title>Checking your browser</title>
<style>body{font:16px system-ui,sans-serif;margin:15vh auto;max-width:32em;color:#333;text-align:center}</style>
</head><body>
<h1>One moment&hellip;</h1>
<p id="s">Checking that this is a browser. This takes a second and happens once.</p>
<noscript><p>Please enable JavaScript to continue.</p></noscript>
<script>
(function(){
var K=[0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2];
function sha256(m){
  var l=m.length,nb=((l+8)>>6)+1,w=new Array(nb*16).fill(0),i,t,b;
  for(i=0;i<l;i++)w[i>>2]|=m.charCodeAt(i)<<(24-(i&3)*8);
  w[l>>2]|=0x80<<(24-(l&3)*8);w[nb*16-1]=l*8;
  var h=[0x6a09e667,0xbb67ae85,0x3c6ef372,0xa54ff53a,0x510e527f,0x9b05688c,0x1f83d9ab,0x5be0cd19],W=new Array(64);
  for(b=0;b<nb;b++){
    for(t=0;t<64;t++){
      if(t<16)W[t]=w[b*16+t];
      else{var x=W[t-15],y=W[t-2];
        W[t]=(W[t-16]+(((x>>>7)|(x<<25))^((x>>>18)|(x<<14))^(x>>>3))+W[t-7]+(((y>>>17)|(y<<15))^((y>>>19)|(y<<13))^(y>>>10)))|0;}
    }
    var a=h[0],c1=h[1],c=h[2],d=h[3],e=h[4],f=h[5],g=h[6],k=h[7];
    for(t=0;t<64;t++){
      var t1=(k+(((e>>>6)|(e<<26))^((e>>>11)|(e<<21))^((e>>>25)|(e<<7)))+((e&f)^(~e&g))+K[t]+W[t])|0;
      var t2=((((a>>>2)|(a<<30))^((a>>>13)|(a<<19))^((a>>>22)|(a<<10)))+((a&c1)^(a&c)^(c1&c)))|0;
      k=g;g=f;f=e;e=(d+t1)|0;d=c;c=c1;c1=a;a=(t1+t2)|0;
    }
    h=[(h[0]+a)|0,(h[1]+c1)|0,(h[2]+c)|0,(h[3]+d)|0,(h[4]+e)|0,(h[5]+f)|0,(h[6]+g)|0,(h[7]+k)|0];
  }
  return h;
}
var token="{TOKEN}",bits={BITS},limit=Math.pow(2,32-bits),n=0;
while((sha256(token+"."+n)[0]>>>0)>=limit)n++;
document.cookie="{COOKIE}="+token+"."+n+"; path=/; max-age={MAX_AGE}; SameSite=Lax";
document.getElementById("s").textContent="Thank you. Loading\u2026";
location.reload();
})();
</script>
</body></html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// Solves a token the way the page does (in Rust).
    fn solve(token: &str, bits: u32) -> String {
        (0u64..)
            .map(|n| format!("{token}.{n}"))
            .find(|c| zero_bits(&Sha256::digest(c.as_bytes())) >= bits)
            .unwrap()
    }

    #[test]
    fn a_solved_token_clears_its_address_only_until_it_expires() {
        let c = Challenger::new(Some("fleet secret"), 12, Duration::from_secs(600));
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let token = c.token(ip);
        let solved = solve(&token, 12);
        assert!(c.cleared(&solved, ip));
        assert!(
            c.cleared(&solved, "::ffff:203.0.113.7".parse().unwrap()),
            "the same address"
        );
        assert!(!c.cleared(&solved, "203.0.113.8".parse().unwrap()), "another address");
        assert!(!c.cleared(&format!("{token}.0"), ip) || zero_bits(&Sha256::digest(format!("{token}.0"))) >= 12);
        // A forged expiry breaks the MAC; another fleet secret does not know the token.
        let (exp, rest) = solved.split_once('.').unwrap();
        let forged = format!("{}.{rest}", exp.parse::<u64>().unwrap() + 3600);
        assert!(!c.cleared(&forged, ip));
        assert!(!Challenger::new(Some("other"), 12, Duration::from_secs(600)).cleared(&solved, ip));
        // Expired.
        let c0 = Challenger::new(Some("fleet secret"), 8, Duration::ZERO);
        let t = solve(&c0.token(ip), 8);
        std::thread::sleep(Duration::from_millis(1100));
        assert!(!c0.cleared(&t, ip));
        assert!(!c.cleared("garbage", ip) && !c.cleared("1.2.3.4.5", ip));
    }

    #[test]
    fn the_page_carries_a_token_and_the_difficulty() {
        let c = Challenger::new(None, 16, Duration::from_secs(1800));
        let page = c.page("198.51.100.1".parse().unwrap());
        assert!(page.contains("bits=16"));
        assert!(page.contains("max-age=1800"));
        assert!(page.contains("rampart_clearance="));
        assert!(!page.contains("{TOKEN}"));
    }
}
