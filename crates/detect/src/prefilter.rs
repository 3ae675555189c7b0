//! One-pass prefilter: a byte-class table and one Aho-Corasick automaton over
//! trigger keywords decide which detector groups a value needs. A value made
//! of letters, digits, spaces and ordinary punctuation skips everything.

use aho_corasick::{dfa::DFA, MatchKind};

pub const G_SQL: u32 = 1 << 0;
pub const G_XSS: u32 = 1 << 1;
pub const G_CMD: u32 = 1 << 2;
pub const G_PATH: u32 = 1 << 3;
pub const G_URL: u32 = 1 << 4;
pub const G_TPL: u32 = 1 << 5;
pub const G_INJ: u32 = 1 << 6;
pub const G_DESER: u32 = 1 << 7;
pub const G_MISC: u32 = 1 << 8;
/// Every group: nothing more to learn from the keywords.
const G_ALL: u32 = (1 << 9) - 1;

/// Result of the prefilter for one value.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pre {
    pub groups: u32,
    /// Bytes seen (bit per class, see `B_*`).
    pub bytes: u32,
}

pub const B_QUOTE: u32 = 1 << 0; // ' " `
pub const B_LT: u32 = 1 << 1; // < >
pub const B_PAREN: u32 = 1 << 2;
pub const B_SEMI: u32 = 1 << 3;
pub const B_PIPE_AMP: u32 = 1 << 4;
pub const B_DOLLAR: u32 = 1 << 5;
pub const B_BRACE: u32 = 1 << 6;
pub const B_NL: u32 = 1 << 7;
pub const B_STAR: u32 = 1 << 8;
pub const B_HASH: u32 = 1 << 9;
pub const B_EQ: u32 = 1 << 10;
pub const B_CTRL: u32 = 1 << 11;
pub const B_BSLASH: u32 = 1 << 12;
pub const B_PCT: u32 = 1 << 13;
pub const B_CARET: u32 = 1 << 14;
pub const B_HIGH: u32 = 1 << 15;
pub const B_AT: u32 = 1 << 16;
pub const B_BRACKET: u32 = 1 << 17;
pub const B_COLON: u32 = 1 << 18;
pub const B_TAB: u32 = 1 << 19;
pub const B_EXCL: u32 = 1 << 20;

impl Pre {
    pub fn is_clean(&self) -> bool {
        self.groups == 0
    }
    pub fn any(&self, g: u32) -> bool {
        self.groups & g != 0
    }
    pub fn has(&self, b: u32) -> bool {
        self.bytes & b != 0
    }
}

const fn byte_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    t[b'\'' as usize] = B_QUOTE;
    t[b'"' as usize] = B_QUOTE;
    t[b'`' as usize] = B_QUOTE;
    t[b'<' as usize] = B_LT;
    t[b'>' as usize] = B_LT;
    t[b'(' as usize] = B_PAREN;
    t[b')' as usize] = B_PAREN;
    t[b';' as usize] = B_SEMI;
    t[b'|' as usize] = B_PIPE_AMP;
    t[b'&' as usize] = B_PIPE_AMP;
    t[b'$' as usize] = B_DOLLAR;
    t[b'{' as usize] = B_BRACE;
    t[b'}' as usize] = B_BRACE;
    t[b'\n' as usize] = B_NL;
    t[b'\r' as usize] = B_NL;
    t[b'*' as usize] = B_STAR;
    t[b'#' as usize] = B_HASH;
    t[b'=' as usize] = B_EQ;
    t[b'\\' as usize] = B_BSLASH;
    t[b'%' as usize] = B_PCT;
    t[b'^' as usize] = B_CARET;
    t[b'@' as usize] = B_AT;
    t[b'[' as usize] = B_BRACKET;
    t[b']' as usize] = B_BRACKET;
    t[b':' as usize] = B_COLON;
    t[b'\t' as usize] = B_TAB;
    t[b'!' as usize] = B_EXCL;
    let mut i = 0;
    while i < 32 {
        if i != b'\n' as usize && i != b'\r' as usize && i != b'\t' as usize {
            t[i] = B_CTRL;
        }
        i += 1;
    }
    t[127] = B_CTRL;
    let mut i = 128;
    while i < 256 {
        t[i] = B_HIGH;
        i += 1;
    }
    t
}

static BYTES: [u32; 256] = byte_table();

/// Which detector groups each byte class wakes up.
fn groups_of_bytes(b: u32) -> u32 {
    let mut g = 0;
    if b & B_QUOTE != 0 {
        g |= G_SQL | G_XSS | G_CMD;
    }
    if b & B_LT != 0 {
        g |= G_XSS | G_INJ | G_TPL | G_DESER | G_CMD;
    }
    if b & B_PAREN != 0 {
        g |= G_SQL | G_XSS | G_CMD | G_MISC | G_DESER;
    }
    if b & B_SEMI != 0 {
        g |= G_SQL | G_CMD | G_XSS;
    }
    if b & B_PIPE_AMP != 0 {
        g |= G_CMD | G_MISC | G_SQL;
    }
    if b & B_DOLLAR != 0 {
        g |= G_CMD | G_TPL | G_MISC | G_DESER;
    }
    if b & B_BRACE != 0 {
        g |= G_TPL | G_MISC | G_CMD;
    }
    if b & B_NL != 0 {
        g |= G_INJ | G_CMD;
    }
    if b & (B_STAR | B_HASH | B_EQ) != 0 {
        g |= G_SQL | G_MISC;
    }
    if b & B_HASH != 0 {
        g |= G_TPL;
    }
    if b & B_CTRL != 0 {
        g |= G_MISC | G_INJ;
    }
    if b & (B_PCT | B_CARET) != 0 {
        g |= G_CMD;
    }
    if b & B_HIGH != 0 {
        g |= G_INJ;
    }
    if b & B_BRACKET != 0 {
        g |= G_MISC;
    }
    // a URL scheme broken by whitespace or control characters (`java\tscript:`)
    if b & B_COLON != 0 && b & (B_NL | B_TAB | B_CTRL) != 0 {
        g |= G_XSS;
    }
    // JSFuck: JavaScript written in `[]()!+` alone
    if b & B_BRACKET != 0 && b & B_EXCL != 0 {
        g |= G_XSS;
    }
    g
}

const KEYWORDS: &[(&str, u32)] = &[
    // SQL
    ("select", G_SQL),
    ("union", G_SQL),
    ("insert", G_SQL),
    ("update", G_SQL),
    ("delete", G_SQL),
    ("drop", G_SQL),
    ("sleep", G_SQL),
    ("benchmark", G_SQL),
    ("waitfor", G_SQL),
    ("having", G_SQL),
    ("order by", G_SQL),
    ("group by", G_SQL),
    ("information_schema", G_SQL),
    ("@@", G_SQL),
    ("--", G_SQL),
    ("/*", G_SQL),
    (" or ", G_SQL),
    (" and ", G_SQL),
    (" xor ", G_SQL),
    // Vendor procedures, system objects and operators that carry SQL without a quote or a parenthesis.
    ("xp_", G_SQL),
    ("sp_", G_SQL),
    ("utl_", G_SQL),
    ("dbms_", G_SQL),
    ("tempdb", G_SQL),
    ("msdb", G_SQL),
    ("pg_catalog", G_SQL),
    ("mysql.", G_SQL),
    ("sqlite_", G_SQL),
    ("is null", G_SQL),
    ("is not null", G_SQL),
    ("rlike", G_SQL),
    ("regexp", G_SQL),
    ("xor", G_SQL),
    ("declare", G_SQL),
    ("set @", G_SQL),
    ("msys", G_SQL),
    ("msdasql", G_SQL),
    ("sqloledb", G_SQL),
    ("alter", G_SQL),
    ("create table", G_SQL),
    ("openrowset", G_SQL),
    ("like null", G_SQL),
    ("exec", G_SQL | G_CMD | G_DESER),
    // XSS
    ("javascript", G_XSS),
    ("vbscript", G_XSS),
    ("data:", G_XSS | G_URL),
    ("alert", G_XSS),
    // command
    ("wget", G_CMD),
    ("curl", G_CMD),
    ("bash", G_CMD),
    ("/bin/", G_CMD),
    ("powershell", G_CMD),
    ("cmd", G_CMD),
    ("whoami", G_CMD),
    ("uname", G_CMD),
    ("nslookup", G_CMD),
    ("ping ", G_CMD),
    ("ifconfig", G_CMD),
    ("netcat", G_CMD),
    ("nc -", G_CMD),
    ("/dev/", G_CMD | G_PATH),
    // path
    ("..", G_PATH),
    ("etc/", G_PATH),
    ("passwd", G_PATH),
    ("shadow", G_PATH),
    ("win.ini", G_PATH),
    ("boot.ini", G_PATH),
    ("system32", G_PATH),
    ("proc/self", G_PATH),
    ("web-inf", G_PATH),
    (".ht", G_PATH),
    (".env", G_PATH),
    ("id_rsa", G_PATH),
    (".git/", G_PATH),
    ("wp-config", G_PATH),
    ("file:", G_PATH | G_URL),
    ("php:", G_PATH | G_URL),
    ("phar:", G_PATH | G_URL),
    ("zip:", G_PATH | G_URL),
    ("expect:", G_PATH | G_URL),
    ("c:", G_PATH),
    // url / ssrf
    ("://", G_URL),
    ("localhost", G_URL),
    ("gopher:", G_URL),
    ("dict:", G_URL),
    ("ldap:", G_URL),
    ("jar:", G_URL),
    ("netdoc:", G_URL),
    ("169.254", G_URL),
    ("metadata", G_URL),
    // template
    ("#set", G_TPL),
    ("#foreach", G_TPL),
    // injection
    ("<!--#", G_INJ),
    ("bcc:", G_INJ),
    // deserialization / php / java
    ("ro0ab", G_DESER),
    ("aced0005", G_DESER),
    ("kztaau", G_DESER),
    ("cs7qaf", G_DESER),
    ("h4siaaaaaaaa", G_DESER),
    ("java.", G_DESER),
    ("javax.", G_DESER),
    ("<?", G_DESER),
    ("$_", G_DESER),
    ("_decode", G_DESER),
    ("_exec", G_DESER),
    ("_open", G_DESER),
    ("_get_", G_DESER),
    ("_func", G_DESER),
    ("_contents", G_DESER),
    ("inflate", G_DESER),
    ("phpinfo", G_DESER),
    ("rot13", G_DESER),
    ("processbuilder", G_DESER),
    ("runtime", G_DESER),
    ("classloader", G_DESER),
    ("o:", G_DESER),
    ("a:", G_DESER),
    // misc: jndi, proto pollution, nosql, scanners, graphql, el
    ("jndi", G_MISC),
    ("__proto__", G_MISC),
    ("prototype", G_MISC),
    ("$where", G_MISC),
    ("db.", G_MISC),
    ("sqlmap", G_MISC),
    ("nikto", G_MISC),
    ("nmap", G_MISC),
    ("acunetix", G_MISC),
    ("nessus", G_MISC),
    ("masscan", G_MISC),
    ("w3af", G_MISC),
    ("dirbuster", G_MISC),
    ("gobuster", G_MISC),
    ("wpscan", G_MISC),
    ("nuclei", G_MISC),
    ("zgrab", G_MISC),
    ("openvas", G_MISC),
    ("arachni", G_MISC),
    ("havij", G_MISC),
    ("netsparker", G_MISC),
    ("burp", G_MISC),
    ("zap", G_MISC),
    ("commix", G_MISC),
    ("fuzz", G_MISC),
    ("scan", G_MISC),
    ("__schema", G_MISC),
    ("__type", G_MISC),
    (".php", G_MISC),
    (".ph", G_MISC),
    (".js", G_MISC),
    (".as", G_MISC),
    (".sh", G_MISC),
    (".exe", G_MISC),
    (".bat", G_MISC),
    (".ps1", G_MISC),
    (".cgi", G_MISC),
    (".pl", G_MISC),
    (".py", G_MISC),
    ("transformer", G_DESER),
    ("closure", G_DESER),
    ("factory", G_DESER),
    ("templatesimpl", G_DESER),
    ("lazymap", G_DESER),
    ("com.", G_DESER),
    ("org.", G_DESER),
    ("if ", G_CMD),
    ("burpcollaborator", G_URL),
    ("oast", G_URL),
    ("interact.sh", G_URL),
    ("dnslog", G_URL),
    ("!!", G_DESER),
    ("ntuser", G_PATH),
    ("c$", G_PATH),
    ("getruntime", G_MISC | G_DESER),
    ("_js_function", G_MISC),
    (" http/", G_INJ),
    ("document", G_XSS),
    ("window.", G_XSS),
    ("nd_func", G_MISC),
    ("constructor", G_MISC),
    ("new function", G_MISC),
    ("module.exports", G_MISC),
    ("session.", G_DESER),
    ("allow_url", G_DESER),
    ("auto_prepend", G_DESER),
    ("auto_append", G_DESER),
    ("open_basedir", G_DESER),
    ("disable_functions", G_DESER),
    ("compress", G_DESER),
    ("posix_", G_DESER),
    ("gethostby", G_DESER),
    ("org.omg", G_DESER),
    ("php://", G_DESER | G_PATH),
];

pub struct Prefilter {
    dfa: DFA,
}

impl Default for Prefilter {
    fn default() -> Self {
        Self::new()
    }
}

impl Prefilter {
    pub fn new() -> Prefilter {
        // A DFA: every value of every request is scanned, and against the default (a contiguous NFA)
        // it takes about 6 % off the instructions of a whole chat message's analysis (callgrind). It
        // costs ~7M instructions to build, which `shared` pays once per process. No prefilter of its
        // own: `scan` steps it by hand (`util::for_each_match`).
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .prefilter(false)
            .build(KEYWORDS.iter().map(|(k, _)| k))
            .expect("static keywords");
        Prefilter { dfa }
    }

    /// The process's prefilter: its keywords are constants, so every route's detector shares one
    /// automaton, built on first use (a few milliseconds) instead of once per route and reload.
    pub fn shared() -> &'static Prefilter {
        static SHARED: std::sync::OnceLock<Prefilter> = std::sync::OnceLock::new();
        SHARED.get_or_init(Prefilter::new)
    }

    pub fn scan(&self, value: &str) -> Pre {
        let mut bytes = 0u32;
        for &b in value.as_bytes() {
            bytes |= BYTES[b as usize];
        }
        let mut groups = groups_of_bytes(bytes);
        if groups != G_ALL {
            crate::util::for_each_match(&self.dfa, value.as_bytes(), |_, k| {
                groups |= KEYWORDS[k].1;
                groups != G_ALL
            });
        }
        Pre { groups, bytes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_values_skip() {
        let p = Prefilter::new();
        assert!(p.scan("hello world, this is fine.").is_clean());
        assert!(p.scan("2024-01-01").is_clean());
        assert!(!p.scan("1' or '1'='1").is_clean());
        assert!(p.scan("1 UNION SELECT 2").any(G_SQL));
        assert!(p.scan("../../etc/passwd").any(G_PATH));
    }

    /// Every keyword the value holds (ASCII case aside), by plain substring search.
    fn groups_by_search(value: &str) -> u32 {
        let lower = value.to_ascii_lowercase();
        let bytes = value.bytes().fold(0, |acc, b| acc | BYTES[b as usize]);
        KEYWORDS
            .iter()
            .filter(|(k, _)| lower.contains(&k.to_ascii_lowercase()))
            .fold(groups_of_bytes(bytes), |acc, (_, g)| acc | g)
    }

    use proptest::strategy::Strategy;

    proptest::proptest! {
        // Values made of keywords (in any case) and bits of text between them, overlapping at times.
        #[test]
        fn scan_finds_the_groups_of_every_keyword_held(
            parts in proptest::collection::vec(
                proptest::prop_oneof![
                    (0..KEYWORDS.len(), proptest::bool::ANY).prop_map(|(i, upper)| {
                        let k = KEYWORDS[i].0;
                        if upper { k.to_ascii_uppercase() } else { k.to_string() }
                    }),
                    "[a-z0-9 ./'<-]{0,3}",
                ],
                0..6,
            )
        ) {
            let value = parts.concat();
            let pre = Prefilter::shared().scan(&value);
            proptest::prop_assert_eq!(pre.groups, groups_by_search(&value), "{}", value);
        }
    }
}
