//! Small shared helpers: excerpts, globs, word search.

/// At most `max` chars of `s`, control characters shown as spaces.
pub fn excerpt(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(max.min(s.len()));
    for (n, c) in s.chars().enumerate() {
        if n >= max {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

/// Excerpt of `s` around byte offset `at`.
pub fn excerpt_at(s: &str, at: usize, max: usize) -> String {
    let mut start = at.saturating_sub(10).min(s.len());
    while start > 0 && !s.is_char_boundary(start) {
        start -= 1;
    }
    excerpt(&s[start..], max)
}

/// A point glob: `*` matches any run of characters (including dots),
/// everything else literally. `query.*` matches `query.q` and `query.a.b`.
#[derive(Clone, Debug)]
pub struct Glob {
    parts: Vec<String>,
    leading: bool,
    trailing: bool,
}

impl Glob {
    pub fn new(s: &str) -> Glob {
        let s = s.trim();
        Glob {
            parts: s.split('*').filter(|p| !p.is_empty()).map(|p| p.to_string()).collect(),
            leading: s.starts_with('*'),
            trailing: s.ends_with('*'),
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        if self.parts.is_empty() {
            return self.leading || self.trailing || text.is_empty();
        }
        let mut pos = 0;
        let n = self.parts.len();
        for (i, p) in self.parts.iter().enumerate() {
            if i == 0 && !self.leading {
                if !text.starts_with(p.as_str()) {
                    return false;
                }
                pos = p.len();
                if n == 1 && !self.trailing {
                    return text.len() == p.len();
                }
                continue;
            }
            if i == n - 1 && !self.trailing {
                return text.len() >= pos + p.len() && text.ends_with(p.as_str());
            }
            match text[pos..].find(p.as_str()) {
                Some(j) => pos += j + p.len(),
                None => return false,
            }
        }
        true
    }
}

pub fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Find `needle` in `hay` as a whole word (ASCII word boundaries).
pub fn find_word(hay: &str, needle: &str) -> Option<usize> {
    let hb = hay.as_bytes();
    let mut from = 0;
    // memmem rather than `str::find`, its searcher built once for all the matches tried; a byte match of
    // a UTF-8 needle always lies on char boundaries.
    let finder = memchr::memmem::Finder::new(needle.as_bytes());
    while let Some(i) = finder.find(&hb[from..]) {
        let s = from + i;
        let e = s + needle.len();
        let left_ok = s == 0 || !is_word_byte(hb[s - 1]);
        let right_ok = e >= hb.len() || !is_word_byte(hb[e]);
        if left_ok && right_ok {
            return Some(s);
        }
        from = s + 1;
        while from < hay.len() && !hay.is_char_boundary(from) {
            from += 1;
        }
    }
    None
}

/// Rough "this is natural-language prose" measure: many words separated by
/// single spaces, few code punctuation characters.
pub fn prose_ratio(s: &str) -> f32 {
    // One table lookup per byte: several detectors ask this of every long value, and the match it
    // replaces cost a branch per byte.
    let weight: i64 = s.bytes().map(|b| PROSE_WEIGHT[b as usize] as i64).sum();
    let total = s.len().max(1) as f32;
    weight as f32 / total
}

/// A byte's weight in [`prose_ratio`]: +1 for a letter (any non-ASCII byte counts as one) or a space, -4
/// for a character of code.
const PROSE_WEIGHT: [i8; 256] = {
    let mut t = [0i8; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = match b as u8 {
            b'a'..=b'z' | b'A'..=b'Z' | 0x80..=0xff | b' ' => 1,
            b'(' | b')' | b'=' | b';' | b'<' | b'>' | b'{' | b'}' | b'|' | b'&' | b'$' | b'`' | b'\\' | b'*' => -4,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// A compiled set of literal patterns (ASCII case-insensitive input is
/// expected to be lowercased already), built once.
pub struct Lits {
    ac: aho_corasick::AhoCorasick,
    all: aho_corasick::AhoCorasick,
    pats: &'static [&'static str],
}

impl Lits {
    pub fn new(pats: &'static [&'static str]) -> Lits {
        let ac = aho_corasick::AhoCorasickBuilder::new()
            .match_kind(aho_corasick::MatchKind::LeftmostFirst)
            .build(pats)
            .expect("static patterns");
        let all = aho_corasick::AhoCorasick::new(pats).expect("static patterns");
        Lits { ac, all, pats }
    }

    /// Leftmost match: (position, pattern).
    pub fn find(&self, hay: &str) -> Option<(usize, &'static str)> {
        self.ac
            .find(hay)
            .map(|m| (m.start(), self.pats[m.pattern().as_usize()]))
    }

    /// All non-overlapping matches, leftmost first.
    pub fn iter<'h>(&'h self, hay: &'h str) -> impl Iterator<Item = (usize, &'static str)> + 'h {
        self.ac
            .find_iter(hay)
            .map(|m| (m.start(), self.pats[m.pattern().as_usize()]))
    }

    /// First match that is a whole word.
    pub fn find_word(&self, hay: &str) -> Option<(usize, &'static str)> {
        let b = hay.as_bytes();
        for m in self.all.find_overlapping_iter(hay) {
            let (s, e) = (m.start(), m.end());
            if (s == 0 || !is_word_byte(b[s - 1])) && (e >= b.len() || !is_word_byte(b[e])) {
                return Some((s, self.pats[m.pattern().as_usize()]));
            }
        }
        None
    }
}

/// The leftmost position of every pattern of a fixed list, found in one
/// pass: `positions(hay)[i] == hay.find(pats[i])`. Replaces a loop of
/// `str::find` calls (one fresh two-way searcher and one scan per pattern).
pub struct FirstOf<const N: usize> {
    dfa: aho_corasick::dfa::DFA,
    lens: [usize; N],
}

impl<const N: usize> FirstOf<N> {
    pub fn new(pats: [&str; N]) -> FirstOf<N> {
        // Standard semantics: every match of every pattern ends in a match state (see
        // `for_each_match`).
        // An empty pattern would match in the start state, which `positions` does not look at.
        assert!(pats.iter().all(|p| !p.is_empty()), "FirstOf patterns are not empty");
        let dfa = aho_corasick::dfa::DFA::builder()
            .match_kind(aho_corasick::MatchKind::Standard)
            .prefilter(false)
            .build(pats)
            .expect("static patterns");
        FirstOf {
            dfa,
            lens: pats.map(str::len),
        }
    }

    pub fn positions(&self, hay: &str) -> [Option<usize>; N] {
        let mut out = [None; N];
        let mut left = N;
        // Matches are seen in order of their end; all matches of one pattern have its length, so the
        // first one seen is the leftmost.
        for_each_match(&self.dfa, hay.as_bytes(), |end, p| {
            if out[p].is_none() {
                out[p] = Some(end - self.lens[p]);
                left -= 1;
            }
            left > 0
        });
        out
    }
}

/// Every match of every pattern of `dfa` in `hay`, in order of their ends: `on_match(end, pattern)`
/// until it returns false. `dfa` is unanchored, with Standard semantics and no prefilter (then only
/// dead and match states are special). Stepped by hand, a table lookup per byte: what an overlapping
/// search reports, without its per-match bookkeeping (a third of the instructions on prose).
pub fn for_each_match(dfa: &aho_corasick::dfa::DFA, hay: &[u8], mut on_match: impl FnMut(usize, usize) -> bool) {
    use aho_corasick::automaton::Automaton;
    let mut sid = dfa
        .start_state(aho_corasick::Anchored::No)
        .expect("built with an unanchored start");
    for (i, &b) in hay.iter().enumerate() {
        sid = dfa.next_state(aho_corasick::Anchored::No, sid, b);
        if !dfa.is_special(sid) {
            continue;
        }
        if dfa.is_dead(sid) {
            return;
        }
        for k in 0..dfa.match_len(sid) {
            if !on_match(i + 1, dfa.match_pattern(sid, k).as_usize()) {
                return;
            }
        }
    }
}

/// Lazily built [`FirstOf`]: `first_of!(["a", "b"])`, or with the length
/// spelled out when the list is not a constant expression:
/// `first_of!(LIST.map(|(p, _)| p); LIST.len())`.
#[macro_export]
macro_rules! first_of {
    ($pats:expr) => {
        $crate::first_of!($pats; $pats.len())
    };
    ($pats:expr; $n:expr) => {{
        static CELL: std::sync::OnceLock<$crate::util::FirstOf<{ $n }>> = std::sync::OnceLock::new();
        CELL.get_or_init(|| $crate::util::FirstOf::new($pats))
    }};
}

/// Lazily built literal set: `lits!(NAME_LIST)`.
#[macro_export]
macro_rules! lits {
    ($list:expr) => {{
        static CELL: std::sync::OnceLock<$crate::util::Lits> = std::sync::OnceLock::new();
        CELL.get_or_init(|| $crate::util::Lits::new($list))
    }};
}

/// Lazily built searcher for one fixed needle: `finder!(b"needle").find(hay)`. Built once per process,
/// where `memchr::memmem::find` builds one per call (a few hundred instructions, more than the search
/// of a short value).
#[macro_export]
macro_rules! finder {
    ($needle:expr) => {{
        static CELL: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
        CELL.get_or_init(|| memchr::memmem::Finder::new($needle))
    }};
}

/// `&s[start..end]` with both ends moved down to char boundaries and
/// clamped to the string: never panics.
pub fn clip(s: &str, start: usize, end: usize) -> &str {
    let mut a = start.min(s.len());
    while a > 0 && !s.is_char_boundary(a) {
        a -= 1;
    }
    let mut b = end.min(s.len()).max(a);
    while b > a && !s.is_char_boundary(b) {
        b -= 1;
    }
    &s[a..b]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob() {
        assert!(Glob::new("query.*").matches("query.q"));
        assert!(Glob::new("query.*").matches("query.a.b"));
        assert!(!Glob::new("query.*").matches("body.q"));
        assert!(Glob::new("body.json.content").matches("body.json.content"));
        assert!(!Glob::new("body.json.content").matches("body.json.contents"));
        assert!(Glob::new("*").matches("anything"));
        assert!(Glob::new("body.*.name").matches("body.json.user.name"));
        assert!(Glob::new("*.name").matches("body.json.name"));
    }

    #[test]
    fn first_of_matches_find() {
        let f = FirstOf::new(["ab", "b", "abc", "zz", "bca"]);
        for hay in ["", "abcabc", "xxbcaab", "zzz", "b", "éabé"] {
            let want = ["ab", "b", "abc", "zz", "bca"].map(|p| hay.find(p));
            assert_eq!(f.positions(hay), want, "{hay}");
        }
    }

    proptest::proptest! {
        // Over an alphabet small enough that patterns overlap, nest and repeat, as the keyword lists do.
        #[test]
        fn first_of_is_find_of_each_pattern(hay in "[abc ]{0,40}") {
            const PATS: [&str; 6] = ["a", "ab", "bab", "c c", "abc", "cc"];
            let f = FirstOf::new(PATS);
            proptest::prop_assert_eq!(f.positions(&hay), PATS.map(|p| hay.find(p)));
        }
    }

    #[test]
    fn words() {
        assert_eq!(find_word("a select b", "select"), Some(2));
        assert_eq!(find_word("selected", "select"), None);
    }
}
