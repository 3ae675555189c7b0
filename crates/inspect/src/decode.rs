//! Single-step decoders. Each returns `None` when the input does not carry the
//! encoding (or decoding would change nothing), so callers can chain them
//! recursively and record which ones applied.
//!
//! All decoders are linear in the input length and never panic.

use base64::Engine;

/// Decode `%XX`, `%uXXXX` (IIS style) and, when `plus` is set, `+` as space.
/// Invalid escapes are kept literally. Decoded bytes are turned into text with
/// [`bytes_to_text`], which folds UTF-8 overlong sequences.
pub fn percent(input: &str, plus: bool) -> Option<String> {
    let b = input.as_bytes();
    if !(b.contains(&b'%') || plus && b.contains(&b'+')) {
        return None;
    }
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if i + 6 <= b.len() && (b[i + 1] == b'u' || b[i + 1] == b'U') {
                if let Some(cp) = hex4(&b[i + 2..i + 6]) {
                    push_cp(&mut out, cp);
                    i += 6;
                    changed = true;
                    continue;
                }
            }
            if i + 3 <= b.len() {
                if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                    out.push(h << 4 | l);
                    i += 3;
                    changed = true;
                    continue;
                }
            }
            out.push(c);
        } else if plus && c == b'+' {
            out.push(b' ');
            changed = true;
        } else {
            out.push(c);
        }
        i += 1;
    }
    if !changed {
        return None;
    }
    Some(bytes_to_text(&out))
}

/// Percent-decode with `+` as space, always returning a string (used for the
/// structural split of query strings and forms).
pub fn form_component(input: &str) -> (String, bool) {
    match percent(input, true) {
        Some(s) => (s, true),
        None => (input.to_string(), false),
    }
}

fn push_cp(out: &mut Vec<u8>, cp: u32) {
    let ch = char::from_u32(cp).unwrap_or('\u{fffd}');
    let mut buf = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
}

fn hexval(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex4(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        v = v << 4 | hexval(c)? as u32;
    }
    Some(v)
}

/// Bytes to text: valid UTF-8 is kept; overlong encodings of ASCII (the
/// classic `%c0%af` for `/`) are folded to the ASCII byte; any other invalid
/// byte is mapped to the Latin-1 char of the same value, so nothing is lost.
pub fn bytes_to_text(b: &[u8]) -> String {
    if let Ok(s) = std::str::from_utf8(b) {
        return s.to_string();
    }
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match std::str::from_utf8(&b[i..]) {
            Ok(s) => {
                out.push_str(s);
                break;
            }
            Err(e) => {
                let good = e.valid_up_to();
                // SAFETY-free: re-validate the prefix (cheap, already known valid)
                out.push_str(std::str::from_utf8(&b[i..i + good]).unwrap_or(""));
                i += good;
                if i >= b.len() {
                    break;
                }
                let c = b[i];
                // 2-byte overlong: C0/C1 xx
                if (c == 0xC0 || c == 0xC1) && i + 1 < b.len() && (b[i + 1] & 0xC0) == 0x80 {
                    let v = ((c as u32 & 0x1F) << 6) | (b[i + 1] as u32 & 0x3F);
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    i += 2;
                    continue;
                }
                // 3-byte overlong: E0 80..9F xx
                if c == 0xE0 && i + 2 < b.len() && (b[i + 1] & 0xE0) == 0x80 && (b[i + 2] & 0xC0) == 0x80 {
                    let v = ((b[i + 1] as u32 & 0x3F) << 6) | (b[i + 2] as u32 & 0x3F);
                    out.push(char::from_u32(v).unwrap_or('\u{fffd}'));
                    i += 3;
                    continue;
                }
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

/// HTML / XML character references: `&lt;`, `&#60;`, `&#x3c;` (the `;` is
/// optional for numeric references, as browsers accept).
pub fn html_entities(input: &str) -> Option<String> {
    let b = input.as_bytes();
    let first = memchr::memchr(b'&', b)?;
    let mut out = String::with_capacity(b.len());
    out.push_str(&input[..first]);
    let mut i = first;
    let mut changed = false;
    while i < b.len() {
        if b[i] == b'&' {
            if let Some((ch, len)) = entity_at(&b[i..]) {
                out.push(ch);
                i += len;
                changed = true;
                continue;
            }
        }
        i = copy_char(input, i, &mut out);
    }
    changed.then_some(out)
}

/// Copies the character of `input` that starts at byte `i` to `out`; returns where the next one starts.
fn copy_char(input: &str, i: usize, out: &mut String) -> usize {
    let end = (i + utf8_len(input.as_bytes()[i])).min(input.len());
    out.push_str(input.get(i..end).unwrap_or("\u{fffd}"));
    end
}

fn utf8_len(c: u8) -> usize {
    match c {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

fn entity_at(b: &[u8]) -> Option<(char, usize)> {
    // b[0] == '&'
    if b.len() < 3 {
        return None;
    }
    if b[1] == b'#' {
        let (hex, start) = if b.len() > 2 && (b[2] == b'x' || b[2] == b'X') {
            (true, 3)
        } else {
            (false, 2)
        };
        let mut j = start;
        let mut v: u32 = 0;
        while j < b.len() && j - start < 10 {
            let d = if hex {
                hexval(b[j]).map(|x| x as u32)
            } else if b[j].is_ascii_digit() {
                Some((b[j] - b'0') as u32)
            } else {
                None
            };
            match d {
                Some(d) => {
                    v = v.saturating_mul(if hex { 16 } else { 10 }).saturating_add(d);
                    j += 1
                }
                None => break,
            }
        }
        if j == start {
            return None;
        }
        // skip over-long zero padding handled above by the 10 digit cap; allow
        // more leading zeros
        while j < b.len() && b[j] == b'0' && v == 0 {
            j += 1;
        }
        if j < b.len() && b[j] == b';' {
            j += 1;
        }
        let ch = char::from_u32(v).unwrap_or('\u{fffd}');
        return Some((ch, j));
    }
    let mut j = 1;
    while j < b.len() && j < 12 && b[j].is_ascii_alphanumeric() {
        j += 1;
    }
    let name = &b[1..j];
    let semi = j < b.len() && b[j] == b';';
    let ch = match name.to_ascii_lowercase().as_slice() {
        b"lt" => '<',
        b"gt" => '>',
        b"amp" => '&',
        b"quot" => '"',
        b"apos" => '\'',
        b"nbsp" => ' ',
        b"tab" if semi => '\t',
        b"newline" if semi => '\n',
        b"colon" if semi => ':',
        b"sol" if semi => '/',
        b"lpar" if semi => '(',
        b"rpar" if semi => ')',
        b"semi" if semi => ';',
        b"equals" if semi => '=',
        b"grave" if semi => '`',
        b"num" if semi => '#',
        b"excl" if semi => '!',
        b"period" if semi => '.',
        b"comma" if semi => ',',
        b"lsqb" | b"lbrack" if semi => '[',
        b"rsqb" | b"rbrack" if semi => ']',
        b"lcub" | b"lbrace" if semi => '{',
        b"rcub" | b"rbrace" if semi => '}',
        b"bsol" if semi => '\\',
        b"dollar" if semi => '$',
        b"percnt" if semi => '%',
        b"plus" if semi => '+',
        b"ast" if semi => '*',
        b"verbar" | b"vert" if semi => '|',
        _ => return None,
    };
    Some((ch, j + usize::from(semi)))
}

/// UTF-7 (RFC 2152): `+ADw-script+AD4-` is `<script>`. Browsers that sniffed
/// a page as UTF-7 ran it, and filters that read bytes see no markup. Only
/// shifted runs that decode to ASCII punctuation count: UTF-7 has no reason
/// to shift for those except to hide them, and `+1`, `C++` or a base64
/// token are left alone.
pub fn utf7(input: &str) -> Option<String> {
    let b = input.as_bytes();
    if input.len() > 4096
        || !memchr::memchr_iter(b'+', b)
            .any(|i| b.get(i + 1) == Some(&b'A') && b.get(i + 2).is_some_and(u8::is_ascii_alphanumeric))
    {
        return None;
    }
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        if b[i] == b'+' {
            let run = b[i + 1..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'+' || **c == b'/')
                .count();
            if let Some(text) = utf7_run(&b[i + 1..i + 1 + run]) {
                out.push_str(&text);
                i += 1 + run;
                if b.get(i) == Some(&b'-') {
                    i += 1;
                }
                changed = true;
                continue;
            }
        }
        i = copy_char(input, i, &mut out);
    }
    changed.then_some(out)
}

/// One shifted run of modified base64 (no padding) holding UTF-16BE, if it decodes to text with
/// ASCII punctuation in it.
fn utf7_run(run: &[u8]) -> Option<String> {
    if run.len() < 3 {
        return None;
    }
    // a last sextet that holds no whole byte is the run's padding
    let usable = if run.len() % 4 == 1 { run.len() - 1 } else { run.len() };
    let bytes = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(&run[..usable])
        .ok()?;
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]))
        .collect();
    let text = String::from_utf16(&units).ok()?;
    text.chars().any(|c| c.is_ascii_punctuation()).then_some(text)
}

/// JavaScript / JSON / C style escapes: `\uXXXX`, `\u{X..}`, `\xXX`, and octal
/// `\NNN`. Other backslash escapes are left alone.
pub fn js_escapes(input: &str) -> Option<String> {
    let b = input.as_bytes();
    let first = memchr::memchr(b'\\', b)?;
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    out.extend_from_slice(&b[..first]);
    let mut i = first;
    let mut changed = false;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let n = b[i + 1];
            if (n == b'u' || n == b'U') && i + 6 <= b.len() {
                if let Some(cp) = hex4(&b[i + 2..i + 6]) {
                    push_cp(&mut out, cp);
                    i += 6;
                    changed = true;
                    continue;
                }
            }
            if n == b'u' && i + 3 < b.len() && b[i + 2] == b'{' {
                let mut j = i + 3;
                let mut v: u32 = 0;
                while j < b.len() && j - i < 12 && b[j] != b'}' {
                    match hexval(b[j]) {
                        Some(d) => v = v.saturating_mul(16).saturating_add(d as u32),
                        None => break,
                    }
                    j += 1;
                }
                if j < b.len() && b[j] == b'}' && j > i + 3 {
                    push_cp(&mut out, v);
                    i = j + 1;
                    changed = true;
                    continue;
                }
            }
            if (n == b'x' || n == b'X') && i + 4 <= b.len() {
                if let (Some(h), Some(l)) = (hexval(b[i + 2]), hexval(b[i + 3])) {
                    out.push(h << 4 | l);
                    i += 4;
                    changed = true;
                    continue;
                }
            }
            if (b'0'..=b'3').contains(&n)
                && i + 4 <= b.len()
                && (b'0'..=b'7').contains(&b[i + 2])
                && (b'0'..=b'7').contains(&b[i + 3])
            {
                out.push((n - b'0') << 6 | (b[i + 2] - b'0') << 3 | (b[i + 3] - b'0'));
                i += 4;
                changed = true;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    changed.then(|| bytes_to_text(&out))
}

/// Unicode width / compatibility folding that browsers, servers and
/// databases apply: fullwidth ASCII (U+FF01..FF5E), ideographic space,
/// circled letters and digits, and a few homoglyph quotes.
pub fn unicode_fold(input: &str) -> Option<String> {
    if input.is_ascii() {
        return None;
    }
    // Most non-ASCII text (names, accents, emoji) folds to itself: find the first folding character,
    // jumping from one non-ASCII character to the next (only they fold), before building anything.
    let b = input.as_bytes();
    let mut at = 0;
    let first = loop {
        at += b[at..].iter().position(|c| !c.is_ascii())?;
        let c = input[at..].chars().next()?;
        if fold_char(c) != c {
            break at;
        }
        at += c.len_utf8();
    };
    let mut out = String::with_capacity(input.len());
    out.push_str(&input[..first]);
    out.extend(input[first..].chars().map(fold_char));
    Some(out)
}

fn fold_char(c: char) -> char {
    let u = c as u32;
    match u {
        0xFF01..=0xFF5E => char::from_u32(u - 0xFF01 + 0x21).unwrap_or(c),
        0x3000 => ' ',
        0x24B6..=0x24CF => char::from_u32(u - 0x24B6 + b'A' as u32).unwrap_or(c),
        0x24D0..=0x24E9 => char::from_u32(u - 0x24D0 + b'a' as u32).unwrap_or(c),
        0x2460..=0x2468 => char::from_u32(u - 0x2460 + b'1' as u32).unwrap_or(c),
        0x24EA => '0',
        0x2018 | 0x2019 | 0x02BC | 0x2032 => '\'',
        0x201C | 0x201D | 0x2033 => '"',
        0x2215 | 0x2044 => '/',
        0xFE64 | 0x2039 => '<',
        0xFE65 | 0x203A => '>',
        0x00A0 => ' ',
        _ => c,
    }
}

/// Which decoders a value could interest, read in one pass over its bytes: each of `percent`,
/// `html_entities`, `js_escapes`, `utf7` and `unicode_fold` needs a byte of its own (`%`, `&`, `\`,
/// `+`, a non-ASCII byte), and `base64_text` refuses any ASCII byte outside its alphabet, spaces, `=` and
/// the whitespace it trims. The decoders still check for themselves: this spares the calls that would
/// refuse at once, since every value goes past all of them and most interest none.
#[derive(Clone, Copy)]
pub struct Triggers(u8);

const T_PERCENT: u8 = 1;
const T_AMPERSAND: u8 = 2;
const T_BACKSLASH: u8 = 4;
const T_PLUS: u8 = 8;
const T_NON_ASCII: u8 = 16;
const T_NOT_BASE64: u8 = 32;

static TRIGGERS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = match c {
            b'%' => T_PERCENT,
            b'&' => T_AMPERSAND,
            b'\\' => T_BACKSLASH,
            b'+' => T_PLUS,
            0x80..=0xff => T_NON_ASCII,
            _ => 0,
        };
        // what `base64_text` accepts: its alphabet, spaces and `=`, and the ASCII whitespace it trims
        if c.is_ascii() && !(is_b64_byte(c) || matches!(c, b' ' | b'=' | b'\t'..=b'\r')) {
            t[i] |= T_NOT_BASE64;
        }
        i += 1;
    }
    t
};

impl Triggers {
    pub fn of(value: &str) -> Triggers {
        Triggers(value.bytes().fold(0, |m, b| m | TRIGGERS[b as usize]))
    }
    pub fn percent(self) -> bool {
        self.0 & T_PERCENT != 0
    }
    pub fn html(self) -> bool {
        self.0 & T_AMPERSAND != 0
    }
    pub fn js(self) -> bool {
        self.0 & T_BACKSLASH != 0
    }
    pub fn utf7(self) -> bool {
        self.0 & T_PLUS != 0
    }
    pub fn unicode(self) -> bool {
        self.0 & T_NON_ASCII != 0
    }
    pub fn base64(self) -> bool {
        self.0 & T_NOT_BASE64 == 0
    }
}

const fn is_b64_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'-' | b'_')
}

/// Base64 / base64url when the whole value is one token and decodes to
/// printable text.
pub fn base64_text(input: &str) -> Option<String> {
    let t = input.trim();
    // Prose and most values fail on their first punctuation: refuse them before copying anything. A
    // space can stand for '+' and '=' pads the end; both are checked exactly below.
    if !t.bytes().all(|c| is_b64_byte(c) || c == b' ' || c == b'=') {
        return None;
    }
    // a '+' of standard base64 sent unencoded in a query became a space
    let fixed;
    let t = if t.contains(' ') && !t.contains("  ") {
        fixed = t.replace(' ', "+");
        fixed.as_str()
    } else {
        t
    };
    let b = t.as_bytes();
    if b.len() < 8 {
        return None;
    }
    let body_end = b.iter().rposition(|&c| c != b'=').map(|p| p + 1)?;
    if b.len() - body_end > 2 {
        return None;
    }
    let body = &b[..body_end];
    if !body.iter().all(|&c| is_b64_byte(c)) {
        return None;
    }
    // A plain word (only letters) of typical length is more likely a word.
    let has_upper = body.iter().any(|c| c.is_ascii_uppercase());
    let has_lower = body.iter().any(|c| c.is_ascii_lowercase());
    let has_digit = body.iter().any(|c| c.is_ascii_digit());
    if !(has_upper && has_lower) && !(has_digit && (has_upper || has_lower)) {
        return None;
    }
    if body.len() % 4 == 1 {
        return None;
    }
    let url = body.iter().any(|&c| c == b'-' || c == b'_');
    let std = body.iter().any(|&c| c == b'+' || c == b'/');
    if url && std {
        return None;
    }
    let engine = if url {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    let bytes = engine.decode(body).ok()?;
    printable_text(&bytes)
}

/// Decode raw base64 bytes regardless of printability (used for binary
/// markers such as serialized Java objects).
pub fn base64_bytes(input: &str) -> Option<Vec<u8>> {
    let t = input.trim().trim_end_matches('=');
    let url = t.bytes().any(|c| c == b'-' || c == b'_');
    let engine = if url {
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
    } else {
        &base64::engine::general_purpose::STANDARD_NO_PAD
    };
    engine.decode(t).ok()
}

/// Accept bytes as text when they are UTF-8 and mostly printable.
pub fn printable_text(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    if s.is_empty() {
        return None;
    }
    let mut bad = 0usize;
    let mut total = 0usize;
    for c in s.chars() {
        total += 1;
        if (c.is_control() && !matches!(c, '\t' | '\r' | '\n')) || c == '\u{fffd}' {
            bad += 1;
        }
    }
    if bad * 20 > total {
        return None;
    }
    Some(s.to_string())
}

/// A JWT (`header.payload.signature`, base64url JSON parts): the decoded
/// header and payload JSON texts.
pub fn jwt(input: &str) -> Option<(String, String)> {
    let t = input.trim();
    let t = t
        .strip_prefix("Bearer ")
        .or_else(|| t.strip_prefix("bearer "))
        .unwrap_or(t);
    if !t.starts_with("eyJ") {
        return None;
    }
    let mut parts = t.split('.');
    let h = parts.next()?;
    let p = parts.next()?;
    let _sig = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let dec = |s: &str| -> Option<String> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .ok()?;
        String::from_utf8(bytes).ok()
    };
    Some((dec(h)?, dec(p)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        // Values near every decoder's grammar: escapes, entities, UTF-7 runs, fullwidth letters, base64
        // with whitespace around it. A decoder Triggers would skip must have had nothing to decode.
        #[test]
        fn triggers_skip_only_decoders_that_refuse(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::sample::select(vec![
                        "eyJ", "SGVsbG8gd29ybGQ=", "\tSGVsbG8gd29ybGQ=\n", "%41", "%u0041", "&lt;", "&#x41;",
                        "\\u0041", "\\x41", "\\101", "\\\\", "+ADw-", "+ACI-x", "\u{ff21}", "\u{a0}", "\t",
                    ])
                    .prop_map(str::to_string),
                    "[ aA0+/=_-]{0,3}",
                    "[%&;#xu]{0,2}",
                ],
                0..4,
            )
        ) {
            let v = parts.concat();
            let t = Triggers::of(&v);
            if !t.percent() { proptest::prop_assert!(percent(&v, false).is_none(), "{:?}", v); }
            if !t.html() { proptest::prop_assert!(html_entities(&v).is_none(), "{:?}", v); }
            if !t.js() { proptest::prop_assert!(js_escapes(&v).is_none(), "{:?}", v); }
            if !t.utf7() { proptest::prop_assert!(utf7(&v).is_none(), "{:?}", v); }
            if !t.unicode() { proptest::prop_assert!(unicode_fold(&v).is_none(), "{:?}", v); }
            if !t.base64() { proptest::prop_assert!(base64_text(&v).is_none(), "{:?}", v); }
        }

        #[test]
        fn triggers_never_skip_a_decoder_that_decodes(v in ".{0,40}") {
            let t = Triggers::of(&v);
            proptest::prop_assert!(t.percent() || percent(&v, false).is_none());
            proptest::prop_assert!(t.html() || html_entities(&v).is_none());
            proptest::prop_assert!(t.js() || js_escapes(&v).is_none());
            proptest::prop_assert!(t.utf7() || utf7(&v).is_none());
            proptest::prop_assert!(t.unicode() || unicode_fold(&v).is_none());
            proptest::prop_assert!(t.base64() || base64_text(&v).is_none());
        }
    }

    #[test]
    fn percent_basic_and_double() {
        assert_eq!(percent("a%20b", false).unwrap(), "a b");
        assert_eq!(percent("%253Cx", false).unwrap(), "%3Cx");
        assert_eq!(percent("a+b", true).unwrap(), "a b");
        assert!(percent("a+b", false).is_none());
        assert_eq!(percent("%u003cscript", false).unwrap(), "<script");
        assert_eq!(percent("100%", false), None);
        assert_eq!(percent("%zz%4", false), None);
    }

    #[test]
    fn overlong_utf8() {
        assert_eq!(percent("..%c0%af..", false).unwrap(), "../..");
        assert_eq!(percent("%e0%80%af", false).unwrap(), "/");
        assert_eq!(bytes_to_text(&[0x41, 0xff, 0x42]), "A\u{ff}B");
    }

    #[test]
    fn utf7_markup() {
        assert_eq!(
            utf7("+ADw-script+AD4-alert(1)+ADw-/script+AD4-").unwrap(),
            "<script>alert(1)</script>"
        );
        assert_eq!(utf7("+ACI-onload+AD0-x").unwrap(), "\"onload=x");
        assert!(utf7("C++ and +1 votes").is_none());
        assert!(utf7("token+AbCdEfGhIjKlMnOp").is_none());
        assert!(utf7("Hi Mom -+Jjo--!").is_none());
    }

    #[test]
    fn html() {
        assert_eq!(html_entities("&lt;a&gt;").unwrap(), "<a>");
        assert_eq!(html_entities("&#x3c;&#60;&#0000060").unwrap(), "<<<");
        assert_eq!(html_entities("java&Tab;script&colon;").unwrap(), "java\tscript:");
        assert!(html_entities("Tom & Jerry").is_none());
        assert_eq!(html_entities("é&amp;").unwrap(), "é&");
    }

    #[test]
    fn js() {
        assert_eq!(js_escapes("\\u003cscript\\x3e").unwrap(), "<script>");
        assert_eq!(js_escapes("\\u{3c}").unwrap(), "<");
        assert_eq!(js_escapes("\\074").unwrap(), "<");
        assert!(js_escapes("C:\\dir").is_none());
    }

    #[test]
    fn width() {
        assert_eq!(unicode_fold("ｓｅｌｅｃｔ").unwrap(), "select");
        assert_eq!(unicode_fold("ⒼⓄⓄⒼⓁⒺ").unwrap(), "GOOGLE");
        assert!(unicode_fold("привет").is_none());
        // Folding starts at the first character that folds; what comes before is kept as it was.
        assert_eq!(unicode_fold("Seán ＜b＞").unwrap(), "Seán <b>");
        assert_eq!(unicode_fold("it\u{2019}s").unwrap(), "it's");
    }

    #[test]
    fn b64() {
        assert_eq!(base64_text("PHNjcmlwdD4=").unwrap(), "<script>");
        assert_eq!(base64_text("PHNjcmlwdD4").unwrap(), "<script>");
        assert!(base64_text("administrator").is_none());
        assert!(base64_text("AAECAwQFBgcICQ==").is_none()); // binary
        assert!(base64_text("hello world").is_none());
        // '+' sent unencoded in a query arrives as a space.
        assert_eq!(
            base64_text("PHN2Zy9vbmxvYWQ9YWxlcnQoMSk+ ").unwrap(),
            "<svg/onload=alert(1)>"
        );
        assert_eq!(base64_text("PGI dGVzdDwvYj4=").unwrap(), "<b>test</b>");
        assert!(base64_text("I'd order the blue one again").is_none());
    }

    #[test]
    fn jwt_parts() {
        let t = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig";
        let (h, p) = jwt(t).unwrap();
        assert_eq!(h, r#"{"alg":"HS256"}"#);
        assert_eq!(p, r#"{"sub":"1"}"#);
        assert!(jwt("abc.def.ghi").is_none());
    }
}
