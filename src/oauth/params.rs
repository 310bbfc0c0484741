//! Raw `application/x-www-form-urlencoded` parameters, parsed by the handler itself so that
//! no extractor ever answers a browser with plain text.

use std::borrow::Cow;

/// Parameters of one request, in order, with duplicates kept so they can be refused
/// (RFC 6749 §3.1: parameters MUST NOT be included more than once). Names and values borrow
/// from the request wherever they need no decoding.
#[derive(Debug, Clone, Default)]
pub struct Params<'a> {
    pairs: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// Parameters that may legitimately repeat (RFC 8707 §2: `resource`).
const REPEATABLE: &[&str] = &["resource"];

/// The first `%` or `+`. Most names and values are short, and for those a plain loop is
/// cheaper than setting up `memchr`'s vector search.
fn find_escape(raw: &[u8]) -> Option<usize> {
    if raw.len() < 64 {
        raw.iter().position(|&b| b == b'%' || b == b'+')
    } else {
        memchr::memchr2(b'%', b'+', raw)
    }
}

/// One name or value decoded by the rules of `form_urlencoded::parse`: `+` is a space, `%`
/// and two hex digits (either case) the byte they spell, any other `%` itself; invalid UTF-8
/// is replaced. Text without `+` or `%` is borrowed (`text` is the whole input when it is
/// valid UTF-8). Written here rather than calling the library per pair because this runs on
/// every parameter of every request and the library's byte-by-byte decoder was the largest
/// cost of parsing a query; a property test holds the two to the same answers on any bytes.
fn decode<'a>(raw: &'a [u8], text: Option<&'a str>) -> Cow<'a, str> {
    let Some(first) = find_escape(raw) else {
        return match text {
            Some(t) => Cow::Borrowed(t),
            None => String::from_utf8_lossy(raw),
        };
    };
    let hex = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16)).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    out.extend_from_slice(&raw[..first]);
    let mut i = first;
    while i < raw.len() {
        let Some(at) = find_escape(&raw[i..]).map(|j| i + j) else {
            out.extend_from_slice(&raw[i..]);
            break;
        };
        out.extend_from_slice(&raw[i..at]);
        if raw[at] == b'+' {
            out.push(b' ');
            i = at + 1;
        } else if let (Some(high), Some(low)) = (hex(raw.get(at + 1)), hex(raw.get(at + 2))) {
            out.push(high << 4 | low);
            i = at + 3;
        } else {
            out.push(b'%');
            i = at + 1;
        }
    }
    match String::from_utf8(out) {
        Ok(s) => Cow::Owned(s),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    }
}

impl<'a> Params<'a> {
    /// Parses a query string or form body with `form_urlencoded`'s rules: pairs split at `&`,
    /// empty ones skipped, name and value split at the first `=`, then each decoded (see
    /// `decode`). Invalid percent-encoding or UTF-8 is replaced, not fatal: the value then
    /// simply fails validation later with a proper OAuth error.
    pub fn parse(input: &'a [u8]) -> Self {
        // Room for a request's parameters up front.
        let mut pairs = Vec::with_capacity(16);
        // Checked once: cut at ASCII `&` and `=`, valid UTF-8 stays valid UTF-8.
        let text = std::str::from_utf8(input).ok();
        let mut start = 0;
        for end in memchr::memchr_iter(b'&', input).chain([input.len()]) {
            let pair = start..end;
            start = end + 1;
            if pair.is_empty() {
                continue;
            }
            let (name, value) = match input[pair.clone()].iter().position(|&b| b == b'=') {
                Some(i) => (pair.start..pair.start + i, pair.start + i + 1..pair.end),
                None => (pair.clone(), pair.end..pair.end),
            };
            let piece =
                |r: std::ops::Range<usize>| decode(&input[r.clone()], text.and_then(|t| t.get(r)));
            pairs.push((piece(name), piece(value)));
        }
        Self { pairs }
    }

    /// The same parameters, owning their text.
    pub fn into_owned(self) -> Params<'static> {
        Params {
            pairs: self
                .pairs
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), Cow::Owned(v.into_owned())))
                .collect(),
        }
    }

    /// The single value of `name`; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_ref())
    }

    /// Every non-empty value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_ref())
            .collect()
    }

    /// Whether `name` appears more than once.
    pub fn is_repeated(&self, name: &str) -> bool {
        self.pairs.iter().filter(|(k, _)| k == name).count() > 1
    }

    /// The first parameter, in order, that appears more than once and may not. A request's
    /// dozen parameters are compared pairwise; beyond that they are counted in one pass, so a
    /// 64 KiB body of distinct names costs no more than one of repeated names.
    pub fn first_repeated(&self) -> Option<&str> {
        const PAIRWISE: usize = 32;
        if self.pairs.len() <= PAIRWISE {
            return self
                .pairs
                .iter()
                .enumerate()
                .map(|(i, (k, _))| (i, k.as_ref()))
                .filter(|(_, k)| !REPEATABLE.contains(k))
                .find(|(i, k)| self.pairs[i + 1..].iter().any(|(other, _)| other == k))
                .map(|(_, k)| k);
        }
        let mut counts: std::collections::HashMap<&str, usize> =
            std::collections::HashMap::with_capacity(self.pairs.len());
        for (k, _) in &self.pairs {
            *counts.entry(k.as_ref()).or_default() += 1;
        }
        self.pairs
            .iter()
            .map(|(k, _)| k.as_ref())
            .filter(|k| !REPEATABLE.contains(k))
            .find(|k| counts.get(k).is_some_and(|&n| n > 1))
    }

    /// All pairs, for building a retry link.
    pub fn pairs(&self) -> &[(Cow<'a, str>, Cow<'a, str>)] {
        &self.pairs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_are_detected_and_empty_values_are_absent() {
        let p =
            Params::parse(b"client_id=a&scope=&state=x%20y&client_id=b&resource=r1&resource=r2");

        assert_eq!(p.get("client_id"), Some("a"));
        assert_eq!(p.get("scope"), None);
        assert_eq!(p.get("state"), Some("x y"));
        assert_eq!(p.first_repeated(), Some("client_id"));
        assert_eq!(p.all("resource"), vec!["r1", "r2"]);
    }

    #[test]
    fn duplicate_detection_is_linear_in_the_number_of_parameters() {
        // A 64 KiB body of distinct names took 365 ms (release) with a quadratic scan, before
        // the client was even authenticated; 50,000 names would take minutes.
        let body: String = (0..50_000).map(|i| format!("p{i}=&")).collect();
        let p = Params::parse(body.as_bytes());

        let started = std::time::Instant::now();
        let repeated = p.first_repeated();

        assert_eq!(repeated, None);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn parsing_agrees_with_form_urlencoded() {
        let inputs: [&[u8]; 10] = [
            b"a=b&c=d",
            b"state=a=b&x",
            b"&&a=&=b&",
            b"redirect_uri=http%3A%2F%2F127.0.0.1%3A3%2Fcb&scope=a+b",
            b"n%61me=v%zz&%FF=%FE",
            b"caf\xc3\xa9=th\xc3\xa9",
            b"bad=\xff\xfe&ok=1",
            b"plus+name=1&pct%20name=2",
            b"=",
            b"",
        ];
        for input in inputs {
            let ours: Vec<(String, String)> = Params::parse(input)
                .pairs()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let library: Vec<(String, String)> = url::form_urlencoded::parse(input)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();

            assert_eq!(ours, library, "{}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn undecoded_pairs_borrow_from_the_input() {
        let p = Params::parse(b"client_id=abc&state=x%20y");

        assert!(matches!(p.pairs()[0].1, Cow::Borrowed("abc")));
        assert!(matches!(p.pairs()[1].1, Cow::Owned(_)));
        assert_eq!(p.into_owned().get("state"), Some("x y"));
    }

    #[test]
    fn the_first_repeated_name_is_found_in_short_and_long_requests() {
        let short = Params::parse(b"a=1&resource=r&b=2&resource=s&b=3&a=4");
        assert_eq!(short.first_repeated(), Some("a"));
        let mut long: String = (0..100).map(|i| format!("p{i}=1&")).collect();
        long.push_str("p7=2&p3=4");
        assert_eq!(Params::parse(long.as_bytes()).first_repeated(), Some("p3"));
        assert_eq!(
            Params::parse(b"resource=a&resource=b").first_repeated(),
            None
        );
    }

    #[test]
    fn invalid_utf8_does_not_fail_parsing() {
        let p = Params::parse(b"client_id=%FF%FE&state=ok");

        assert_eq!(p.get("state"), Some("ok"));
        assert!(p.get("client_id").is_some());
    }
}
