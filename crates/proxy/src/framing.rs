//! Byte-level checks of HTTP/1 request heads, on the bytes hyper reads, before it parses them.
//!
//! hyper's parser (httparse) accepts a bare LF as a line ending, and it normalises the framing headers
//! before a handler can see them: with Content-Length and Transfer-Encoding together it silently drops the
//! Content-Length, and several identical Content-Length headers are folded into one. A gateway must refuse
//! all of these with 400, because a server on another hop may frame the same bytes differently.
//!
//! [`GuardedIo`] wraps the connection and watches what hyper reads: it follows the HTTP/1 message framing
//! (head, then a Content-Length or chunked body, then the next head), checks each raw head, and records the
//! index of the first bad request in [`HeadVerdicts`]. The handler asks [`HeadVerdicts::next_request`] once
//! per HTTP/1 request, in order (hyper serves a connection's HTTP/1 requests one after the other), and
//! answers that request and every later one 400 with `Connection: close`.
//!
//! The guard never changes a byte. Where the framing becomes something it does not follow (HTTP/2 prior
//! knowledge, a protocol upgrade or CONNECT, a body hyper will refuse anyway) it stops watching; a
//! non-101 answer to an upgrade closes the connection (see the handler), so nothing slips past unwatched.

use crate::headers::Reject;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The verdicts of one connection's request heads, shared by the reader ([`GuardedIo`]) and the handler.
#[derive(Debug, Default)]
pub struct HeadVerdicts {
    /// HTTP/1 requests the handler has started on this connection.
    served: AtomicU64,
    /// The index of the first request whose head failed a check, and why.
    bad: OnceLock<(u64, Reject)>,
}

impl HeadVerdicts {
    /// Called by the handler once for each HTTP/1 request, in order: why this request must be refused,
    /// if it must.
    pub fn next_request(&self) -> Option<Reject> {
        let index = self.served.fetch_add(1, Ordering::Relaxed);
        match self.bad.get() {
            Some(&(from, reject)) if index >= from => Some(reject),
            _ => None,
        }
    }

    fn mark(&self, index: u64, reject: Reject) {
        let _ = self.bad.set((index, reject));
    }
}

/// The same checks on a request held in memory (for `eval` / `explain`): `raw` is the request as sent, head
/// first. Returns why the connection layer would refuse it, if it would.
pub fn check_raw_request(raw: &[u8]) -> Option<Reject> {
    let verdicts = Arc::new(HeadVerdicts::default());
    Scanner::new(usize::MAX, verdicts.clone()).feed(raw, &mut Vec::new());
    verdicts.next_request()
}

/// A connection whose reads are checked by a [`Scanner`].
pub struct GuardedIo<T> {
    inner: T,
    scanner: Scanner,
    /// Scanner output that did not fit in hyper's read buffer yet.
    pending: Vec<u8>,
    /// Reused for the scanner's output of each read.
    out: Vec<u8>,
}

impl<T> GuardedIo<T> {
    /// `max_head`: the largest head hyper accepts (its read buffer size); beyond it a head is refused.
    pub fn new(inner: T, max_head: usize, verdicts: Arc<HeadVerdicts>) -> Self {
        GuardedIo {
            inner,
            scanner: Scanner::new(max_head, verdicts),
            pending: Vec::new(),
            out: Vec::new(),
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedIo<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if !this.pending.is_empty() {
            let n = this.pending.len().min(buf.remaining());
            buf.put_slice(&this.pending[..n]);
            this.pending.drain(..n);
            return Poll::Ready(Ok(()));
        }
        loop {
            let before = buf.filled().len();
            match Pin::new(&mut this.inner).poll_read(cx, buf) {
                Poll::Ready(Ok(())) => {}
                other => return other,
            }
            let read = buf.filled().len() - before;
            this.out.clear();
            if read == 0 {
                // End of stream: whatever the scanner still holds back goes to hyper as it came.
                this.scanner.finish(&mut this.out);
            } else {
                this.scanner.feed(&buf.filled()[before..], &mut this.out);
            }
            // The scanner's output replaces what was read (it differs only where a request target was
            // rewritten or a request line is still held back).
            buf.set_filled(before);
            let n = this.out.len().min(buf.remaining());
            buf.put_slice(&this.out[..n]);
            this.pending.extend_from_slice(&this.out[n..]);
            if n > 0 || read == 0 {
                return Poll::Ready(Ok(()));
            }
            // Everything read was held back (a request line still incomplete): read on, since returning
            // no bytes would mean end of stream.
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a request head into `Scanner::head`.
    Head,
    /// Bytes of a Content-Length body still to come.
    Body(u64),
    Chunked(Chunk),
    /// No longer watching this connection.
    Off,
}

/// Where we are in a chunked body (the same states as hyper's decoder, so both agree on where it ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    Size(u64),
    SizeLws(u64),
    Ext(u64),
    SizeLf(u64),
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
}

/// How the body after a checked head is framed.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    Length(u64),
    Chunked,
    /// A protocol switch, CONNECT or HTTP/2: what follows is not HTTP/1 framing.
    NotHttp1,
}

pub struct Scanner {
    state: State,
    /// The head read so far.
    head: Vec<u8>,
    /// Where the current line starts in `head`.
    line_start: usize,
    /// Complete heads seen: the index of the request the current head belongs to.
    heads: u64,
    max_head: usize,
    verdicts: Arc<HeadVerdicts>,
    /// The current head's request line named HTTP/2 and was handed on as HTTP/1.1, to be refused with 505.
    names_http2: bool,
}

impl Scanner {
    fn new(max_head: usize, verdicts: Arc<HeadVerdicts>) -> Self {
        Scanner {
            state: State::Head,
            head: Vec::new(),
            line_start: 0,
            heads: 0,
            max_head,
            verdicts,
            names_http2: false,
        }
    }

    /// Records that request `index` (and so the connection from there on) is refused, and stops watching.
    fn refuse(&mut self, index: u64, reject: Reject, out: &mut Vec<u8>) {
        self.verdicts.mark(index, reject);
        self.stop_watching(out);
    }

    /// Stops watching; a request line held back is released as it came.
    fn stop_watching(&mut self, out: &mut Vec<u8>) {
        if self.line_start == 0 {
            out.extend_from_slice(&self.head);
        }
        self.state = State::Off;
        self.head = Vec::new();
    }

    /// At end of stream: release what is held back.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.state == State::Head && self.line_start == 0 {
            out.extend_from_slice(&self.head);
            self.head.clear();
        }
    }

    /// Follows `data` and appends what hyper should read to `out`: the same bytes, except that a request
    /// line is held back until it is complete and then written with its target normalised (see
    /// [`normalise_request_line`]).
    fn feed(&mut self, mut data: &[u8], out: &mut Vec<u8>) {
        while !data.is_empty() {
            match self.state {
                State::Off => {
                    out.extend_from_slice(data);
                    return;
                }
                State::Body(left) => {
                    let n = left.min(data.len() as u64);
                    out.extend_from_slice(&data[..n as usize]);
                    data = &data[n as usize..];
                    self.state = if left == n { State::Head } else { State::Body(left - n) };
                }
                State::Head => {
                    let Some(lf) = data.iter().position(|&b| b == b'\n') else {
                        self.head.extend_from_slice(data);
                        if self.line_start != 0 {
                            out.extend_from_slice(data);
                        }
                        if self.head.len() > self.max_head {
                            self.refuse(self.heads, Reject::HeadTooLarge, out);
                        }
                        return;
                    };
                    self.head.extend_from_slice(&data[..=lf]);
                    if self.line_start != 0 {
                        out.extend_from_slice(&data[..=lf]);
                    }
                    data = &data[lf + 1..];
                    self.end_of_line(out);
                }
                State::Chunked(c) => {
                    if let Chunk::Data(left) = c {
                        let n = left.min(data.len() as u64);
                        out.extend_from_slice(&data[..n as usize]);
                        data = &data[n as usize..];
                        self.state = State::Chunked(if left == n {
                            Chunk::DataCr
                        } else {
                            Chunk::Data(left - n)
                        });
                        continue;
                    }
                    out.push(data[0]);
                    self.state = self.chunk_byte(c, data[0]);
                    data = &data[1..];
                }
            }
        }
    }

    /// `head` ends with the LF of a line that starts at `line_start`.
    fn end_of_line(&mut self, out: &mut Vec<u8>) {
        let line = &self.head[self.line_start..self.head.len() - 1];
        let Some(line) = line.strip_suffix(b"\r") else {
            return self.refuse(self.heads, Reject::BareLineFeed, out);
        };
        if self.head.len() > self.max_head {
            return self.refuse(self.heads, Reject::HeadTooLarge, out);
        }
        if !line.is_empty() {
            if self.line_start == 0 {
                // HTTP/2 prior knowledge (h2c): the preface looks like a request line; what follows is binary.
                if line.starts_with(b"PRI * HTTP/2.0") {
                    return self.stop_watching(out);
                }
                self.names_http2 = normalise_request_line(line, out);
                out.extend_from_slice(b"\r\n");
            }
            self.line_start = self.head.len();
            return;
        }
        if self.line_start == 0 {
            // Empty lines before a request line are ignored (RFC 9112 §2.2), as hyper does.
            out.extend_from_slice(&self.head);
            self.head.clear();
            return;
        }
        let index = self.heads;
        self.heads += 1;
        let framing = check_head(&self.head);
        self.head.clear();
        self.line_start = 0;
        if std::mem::take(&mut self.names_http2) {
            return self.refuse(index, Reject::VersionNotSupported, out);
        }
        self.state = match framing {
            Ok(Framing::Length(0)) => State::Head,
            Ok(Framing::Length(n)) => State::Body(n),
            Ok(Framing::Chunked) => State::Chunked(Chunk::Size(0)),
            Ok(Framing::NotHttp1) => State::Off,
            Err(reject) => return self.refuse(index, reject, out),
        };
    }

    fn chunk_byte(&mut self, c: Chunk, b: u8) -> State {
        // Any framing hyper's decoder refuses ends the connection there, so we stop watching.
        let next = match (c, b) {
            (Chunk::Size(n), b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                match n.checked_mul(16).and_then(|n| n.checked_add(digit)) {
                    Some(n) => Chunk::Size(n),
                    None => return State::Off,
                }
            }
            (Chunk::Size(n) | Chunk::SizeLws(n), b' ' | b'\t') => Chunk::SizeLws(n),
            (Chunk::Size(n) | Chunk::SizeLws(n) | Chunk::Ext(n), b';') => Chunk::Ext(n),
            (Chunk::Size(n) | Chunk::SizeLws(n) | Chunk::Ext(n), b'\r') => Chunk::SizeLf(n),
            (Chunk::Ext(n), b) if b != b'\n' => Chunk::Ext(n),
            (Chunk::SizeLf(0), b'\n') => Chunk::TrailerStart,
            (Chunk::SizeLf(n), b'\n') => Chunk::Data(n),
            (Chunk::DataCr, b'\r') => Chunk::DataLf,
            (Chunk::DataLf, b'\n') => Chunk::Size(0),
            (Chunk::TrailerStart, b'\r') => Chunk::EndLf,
            (Chunk::TrailerStart | Chunk::Trailer, b'\n') => {
                // hyper parses trailer lines leniently: a bare LF there refuses the connection's next request.
                self.verdicts.mark(self.heads, Reject::BareLineFeed);
                return State::Off;
            }
            (Chunk::Trailer, b'\r') => Chunk::TrailerLf,
            (Chunk::TrailerStart | Chunk::Trailer, _) => Chunk::Trailer,
            (Chunk::TrailerLf, b'\n') => Chunk::TrailerStart,
            (Chunk::EndLf, b'\n') => return State::Head,
            _ => return State::Off,
        };
        State::Chunked(next)
    }
}

/// Writes `line` (a request line without its CRLF) with the bytes of its request target that clients send
/// raw but the URI grammar does not allow (`"`, `<`, `>`, `\\`, `^`, `` ` ``, `{`, `|`, `}` and non-ASCII)
/// percent-encoded, as a browser would have sent them. nginx and most servers accept these targets;
/// hyper's URI parser refuses them with 400, which would block real users of sloppy clients. Control
/// characters and spaces are left alone: those make the request invalid, and it is refused.
///
/// A version of `HTTP/2` or `HTTP/2.0` is written as `HTTP/1.1`, so that hyper parses the request and the
/// handler can answer it 505 (hyper would answer 400, as for a line that is not HTTP at all); returns
/// whether it did.
fn normalise_request_line(line: &[u8], out: &mut Vec<u8>) -> bool {
    let first = line.iter().position(|&b| b == b' ');
    let last = line.iter().rposition(|&b| b == b' ');
    let (Some(first), Some(last)) = (first, last) else {
        out.extend_from_slice(line);
        return false;
    };
    if last <= first {
        out.extend_from_slice(line);
        return false;
    }
    out.extend_from_slice(&line[..=first]);
    for &b in &line[first + 1..last] {
        if matches!(b, b'"' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}') || b >= 0x80 {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.push(b);
        }
    }
    let version = &line[last + 1..];
    if version == b"HTTP/2" || version == b"HTTP/2.0" {
        out.extend_from_slice(b" HTTP/1.1");
        return true;
    }
    out.extend_from_slice(&line[last..]);
    false
}

/// Checks one complete head (every line ends with CRLF; the last line is empty) and says how its body is
/// framed.
fn check_head(head: &[u8]) -> Result<Framing, Reject> {
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let method = request_line.split(|&b| b == b' ').next().unwrap_or_default();
    let http10 = request_line.ends_with(b" HTTP/1.0");
    let mut content_length: Option<&[u8]> = None;
    let mut lengths = 0;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut encodings = 0;
    let mut upgrade = false;
    for line in lines.take_while(|l| !l.is_empty()) {
        if matches!(line[0], b' ' | b'\t') {
            // obs-fold: a continuation of the previous header's value.
            return Err(Reject::MalformedHead);
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(Reject::MalformedHead);
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(Reject::MalformedHead);
        }
        let value = trim_ows(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            lengths += 1;
            content_length = Some(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            encodings += 1;
            transfer_encoding = Some(value);
        } else if name.eq_ignore_ascii_case(b"upgrade") {
            upgrade = true;
        }
    }
    if lengths > 1 || encodings > 1 || (lengths > 0 && encodings > 0) {
        return Err(Reject::Smuggling);
    }
    if let Some(te) = transfer_encoding {
        // Exactly `chunked`: anything else (`chunked, identity`, `xchunked`, `gzip, chunked`) is a framing
        // another server may read differently. HTTP/1.0 has no chunked coding.
        if !te.eq_ignore_ascii_case(b"chunked") || http10 {
            return Err(Reject::Smuggling);
        }
    }
    if upgrade || method == b"CONNECT" {
        return Ok(Framing::NotHttp1);
    }
    match (content_length, transfer_encoding) {
        (Some(cl), _) => {
            if cl.is_empty() || cl.len() > 19 || !cl.iter().all(u8::is_ascii_digit) {
                return Err(Reject::BadContentLength);
            }
            let n = std::str::from_utf8(cl)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or(Reject::BadContentLength)?;
            Ok(Framing::Length(n))
        }
        (None, Some(_)) => Ok(Framing::Chunked),
        (None, None) => Ok(Framing::Length(0)),
    }
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_ows(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |e| e + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes and returns the verdict of each of the first `n` requests.
    fn verdicts(input: &[u8], step: usize, n: usize) -> Vec<Option<Reject>> {
        let v = Arc::new(HeadVerdicts::default());
        let mut s = Scanner::new(8192, v.clone());
        for piece in input.chunks(step) {
            s.feed(piece, &mut Vec::new());
        }
        (0..n).map(|_| v.next_request()).collect()
    }

    fn output(input: &[u8], step: usize) -> Vec<u8> {
        let mut s = Scanner::new(64 * 1024, Arc::new(HeadVerdicts::default()));
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            s.feed(piece, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn raw_targets_are_percent_encoded_and_nothing_else_changes() {
        // Two pipelined requests; the first has a body and a header full of the same characters, which
        // must pass untouched.
        let input = "POST /s?q=\"O'Brien\"&t=<b>|{x}^caf\u{e9} HTTP/1.1\r\nHost: a\r\nX-Q: \"<>\"\r\nContent-Length: 5\r\n\r\n\"<>\"\nGET /ok?a=<1> HTTP/1.1\r\nHost: a\r\n\r\n";
        let want = "POST /s?q=%22O'Brien%22&t=%3Cb%3E%7C%7Bx%7D%5Ecaf%C3%A9 HTTP/1.1\r\nHost: a\r\nX-Q: \"<>\"\r\nContent-Length: 5\r\n\r\n\"<>\"\nGET /ok?a=%3C1%3E HTTP/1.1\r\nHost: a\r\n\r\n";
        for step in 1..input.len() {
            assert_eq!(
                String::from_utf8(output(input.as_bytes(), step)).unwrap(),
                want,
                "split every {step} bytes"
            );
        }
        let clean = "GET /search?q=%22a%22&b=%3C1%3E HTTP/1.1\r\nHost: a\r\n\r\n";
        assert_eq!(
            output(clean.as_bytes(), 3),
            clean.as_bytes(),
            "encoded targets are left as they are"
        );
    }

    #[test]
    fn clean_pipelines_pass_in_any_split() {
        let input = b"\r\nPOST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhe\nlo\
            POST /b HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\na\nb\r\n0\r\nT: 1\r\n\r\n\
            GET /c HTTP/1.1\r\nHost: a\r\n\r\n";
        for step in [1, 2, 7, input.len()] {
            assert_eq!(verdicts(input, step, 3), vec![None, None, None], "step {step}");
        }
    }

    #[test]
    fn bad_heads_are_refused_from_their_index_on() {
        let ok = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".as_slice();
        let cases: &[(&[u8], Reject)] = &[
            (b"GET / HTTP/1.1\nHost: a\r\n\r\n", Reject::BareLineFeed),
            (b"GET / HTTP/1.1\r\nHost: a\n\r\n", Reject::BareLineFeed),
            (b"GET / HTTP/1.1\r\nHost: a\r\n\n", Reject::BareLineFeed),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                Reject::Smuggling,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                Reject::Smuggling,
            ),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n",
                Reject::Smuggling,
            ),
            (
                b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                Reject::Smuggling,
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n",
                Reject::MalformedHead,
            ),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX Y: 1\r\n\r\n", Reject::MalformedHead),
            (
                b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n",
                Reject::BadContentLength,
            ),
            (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", Reject::VersionNotSupported),
            (b"GET / HTTP/2\r\nHost: a\r\n\r\n", Reject::VersionNotSupported),
        ];
        for (bad, reject) in cases {
            let input = [ok, bad, ok].concat();
            assert_eq!(
                verdicts(&input, 3, 3),
                vec![None, Some(*reject), Some(*reject)],
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_request_line_naming_http2_reaches_hyper_as_http11() {
        let out = output(b"GET /a HTTP/2.0\r\nHost: a\r\n\r\n", 4);
        assert!(
            out.starts_with(b"GET /a HTTP/1.1\r\nHost: a\r\n"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn requests_in_memory_get_the_same_checks() {
        assert_eq!(check_raw_request(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"), None);
        assert_eq!(
            check_raw_request(b"GET / HTTP/1.1\nHost: a\r\n\r\n"),
            Some(Reject::BareLineFeed)
        );
        assert_eq!(
            check_raw_request(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
            Some(Reject::Smuggling)
        );
    }

    #[test]
    fn h2c_and_upgrades_stop_the_watch() {
        let input = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\n\x04";
        assert_eq!(verdicts(input, 5, 1), vec![None]);
        let input = b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n\x81\x02\n\n";
        assert_eq!(verdicts(input, 4, 2), vec![None, None]);
    }

    #[test]
    fn oversized_heads_are_refused() {
        let mut input = b"GET / HTTP/1.1\r\nX: ".to_vec();
        input.resize(9000, b'a');
        assert_eq!(verdicts(&input, 1000, 1), vec![Some(Reject::HeadTooLarge)]);
    }
}
