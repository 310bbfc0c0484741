//! `Params::parse` on arbitrary bytes: never panics, duplicates are reported consistently, and
//! re-encoding what it parsed with `url::form_urlencoded` parses back to the same pairs.
#![no_main]

use doorman::oauth::params::Params;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = Params::parse(data);
    for (k, _) in params.pairs() {
        let _ = (params.get(k), params.all(k), params.is_repeated(k));
    }
    if let Some(name) = params.first_repeated() {
        assert!(params.is_repeated(name));
        assert_ne!(name, "resource");
    }

    let encoded = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.pairs())
        .finish();
    let again = Params::parse(encoded.as_bytes());
    assert_eq!(
        again.pairs(),
        params.pairs(),
        "round trip through {encoded:?}"
    );
});
