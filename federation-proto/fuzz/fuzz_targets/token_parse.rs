//! Fuzzes the API token parser and the anonymous session token parser (`v2/<uuid>/<secret>` from `Authorization` headers and query strings),
//! the scope list parser and scope matching: they must never panic, and whatever parses must format back
//! to the same text and salt consistently.
#![no_main]

use federation_proto::{AnonymousToken, ClusterId, Scopes, Token};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = s.parse::<Token>() {
        assert_eq!(t.to_string(), s);
        assert!(!format!("{t:?}").contains(t.secret()));
        let target: ClusterId = "zmock".parse().unwrap();
        match t.salt_for(&target) {
            Ok(salted) if &target == t.issuer() => assert_eq!(salted, t),
            Ok(salted) => {
                assert!(salted.is_salted());
                assert_ne!(salted.secret(), t.secret());
                assert_eq!(salted.to_string().parse::<Token>().unwrap(), salted);
            }
            Err(_) => assert!(t.is_salted()),
        }
    }
    // An anonymous session's token has the same shape and never parses as an API token.
    if let Ok(t) = s.parse::<AnonymousToken>() {
        assert_eq!(t.to_string(), s);
        assert!(s.parse::<Token>().is_err());
    }
    // The same bytes as a scope list (one entry per line) and as a request to match against it.
    let entries: Vec<String> = s.lines().map(str::to_owned).collect();
    if let Ok(scopes) = Scopes::parse(entries) {
        let _ = scopes.allows("GET", s);
        let json = serde_json::to_string(&scopes).unwrap();
        assert_eq!(serde_json::from_str::<Scopes>(&json).unwrap(), scopes);
    }
    let _ = serde_json::from_slice::<Scopes>(data);
});
