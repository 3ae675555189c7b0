//! The detector's cost on the messages of the protocol benchmark (crates/rampart/examples/protocols.rs),
//! for counting instructions: wall-clock timings on a shared machine move more than most changes do,
//! instruction counts do not.
//!
//!     cargo build --release -p rampart-detect --example message_cost
//!     valgrind --tool=callgrind target/release/examples/message_cost 0 ws      # setup alone
//!     valgrind --tool=callgrind target/release/examples/message_cost 2000 ws   # setup + 2000 messages
//!
//! (second total - first total) / 2000 is the cost of one message. `ws` is the benchmark's WebSocket chat
//! message as the relay hands it over (`Detector::analyze_message`); `grpc` is its unary gRPC call, the
//! request with its headers and the length-prefixed `Review`, analyzed against the benchmark's .proto.

use rampart_detect::{DetectionConfig, Detector};
use rampart_inspect::RequestView;

/// The benchmark's message text: prose with apostrophes and a `--`.
const TEXT: &str = "Arrived two days early and the fit is true to size. I'd order the blue one again -- \
                    Se\u{e1}n O'Brien says the stitching on his came loose after a month, mine is fine so far.";

const PROTO: &str = "syntax = \"proto3\";\npackage bench;\n\
                     message Review { string author = 1; string text = 2; int32 stars = 3; }\n\
                     message Ack { string echo = 1; }\n\
                     service Reviews { rpc Post(Review) returns (Ack); }\n";

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(0, |s| s.parse().expect("a count"));
    let what = args.next().unwrap_or_else(|| "ws".into());
    let post = http::Method::POST;
    match what.as_str() {
        "ws" => {
            let d = Detector::default();
            let chat = format!(r#"{{"type":"message","room":"r3","seq":1841,"text":"{TEXT}"}}"#);
            let uri: http::Uri = "/ws/room".parse().unwrap();
            let mut headers = http::HeaderMap::new();
            headers.insert("content-type", "application/json".parse().unwrap());
            headers.insert("host", "chat.example.com".parse().unwrap());
            let view = RequestView {
                method: &post,
                uri: &uri,
                headers: &headers,
                body: chat.as_bytes(),
                body_truncated: false,
            };
            run(n, || d.analyze_message(&view).score);
        }
        "grpc" => {
            let proto = std::env::temp_dir().join(format!("rampart-message-cost-{}.proto", std::process::id()));
            std::fs::write(&proto, PROTO).expect("temporary .proto written");
            let mut cfg = DetectionConfig::default();
            cfg.grpc.protos = vec![proto.to_string_lossy().into_owned()];
            let d = Detector::new(&cfg).expect("the benchmark's .proto compiles");
            let _ = std::fs::remove_file(&proto);
            let uri: http::Uri = "http://127.0.0.1:8080/bench.Reviews/Post".parse().unwrap();
            let mut headers = http::HeaderMap::new();
            headers.insert("te", "trailers".parse().unwrap());
            headers.insert("content-type", "application/grpc".parse().unwrap());
            headers.insert("user-agent", "tonic/0.12.3".parse().unwrap());
            // Review { author: "reviewer-0", text: TEXT, stars: 4 } in protobuf wire format
            let mut review = vec![0x0a, 10];
            review.extend_from_slice(b"reviewer-0");
            review.push(0x12);
            let mut len = TEXT.len();
            while len >= 0x80 {
                review.push((len as u8 & 0x7f) | 0x80);
                len >>= 7;
            }
            review.push(len as u8);
            review.extend_from_slice(TEXT.as_bytes());
            review.extend_from_slice(&[0x18, 4]);
            let mut body = vec![0u8];
            body.extend_from_slice(&(review.len() as u32).to_be_bytes());
            body.extend_from_slice(&review);
            let view = RequestView {
                method: &post,
                uri: &uri,
                headers: &headers,
                body: &body,
                body_truncated: false,
            };
            run(n, || d.analyze(&view).score);
        }
        other => panic!("unknown message kind {other}: ws or grpc"),
    }
}

/// Once for the lazily built tables, then `n` times.
fn run(n: usize, analyze: impl Fn() -> u32) {
    assert_eq!(analyze(), 0, "the benchmark's messages are benign");
    for _ in 0..n {
        std::hint::black_box(analyze());
    }
}
