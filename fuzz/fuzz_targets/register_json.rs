//! Registration (`parse_json` + `validate`) on arbitrary bytes: never panics, refuses only with
//! the RFC 7591 codes, and what it accepts keeps the registration invariants.
#![no_main]

use doorman::oauth::errors::ErrorCode;
use doorman::oauth::redirect_uri::{UriKind, validate_for_registration};
use doorman::oauth::register;
use doorman::records::{self, AuthMethod};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let supported = vec!["mcp".to_owned(), "offline_access".to_owned()];
    match register::parse_json(data).and_then(|i| register::validate(i, &supported)) {
        Err(e) => assert!(matches!(
            e.error.code,
            ErrorCode::InvalidClientMetadata | ErrorCode::InvalidRedirectUri
        )),
        Ok(m) => {
            assert!(!m.grant_types.is_empty());
            assert!(m.response_types.iter().all(|r| r == "code"));
            if m.has_grant(records::GRANT_AUTHORIZATION_CODE) {
                assert!(!m.redirect_uris.is_empty());
            }
            if m.token_endpoint_auth_method == AuthMethod::None {
                assert!(!m.has_grant(records::GRANT_CLIENT_CREDENTIALS));
            }
            for uri in &m.redirect_uris {
                let kind = validate_for_registration(uri);
                assert!(kind.is_ok(), "{uri:?} stored but invalid");
                if m.application_type == "web" {
                    assert_eq!(kind, Ok(UriKind::Web));
                }
            }
            // What is stored must serialize (it goes to the store and the 201 body).
            serde_json::to_vec(&m).expect("serializable");
        }
    }
});
