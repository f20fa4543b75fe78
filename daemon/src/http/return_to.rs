//! `return_to`: where a login, a federated hand-off or a logout sends the browser next.
//!
//! A login's redirect carries a token, so the destination decides who receives it. The check is
//! done the way the browser will read the value, not the way it looks: any control character or
//! backslash is refused outright (browsers drop tabs and newlines from URLs and read `\` as `/`,
//! so `/\t/evil.example` is `//evil.example` to them), then the value is parsed with the WHATWG
//! URL parser (the `url` crate), relative values resolved against our public URL exactly as the
//! browser resolves them against the page. The parsed origin (scheme, host, port) must be one the
//! purpose allows, with no user info, and the `Location` is built from the parsed URL only.

use super::App;
use federation_proto::ClusterId;
use url::Url;

/// Longest `return_to` accepted, in bytes.
pub const MAX_RETURN_TO: usize = 2048;

/// Whose origin a `return_to` may name.
#[derive(Debug, Clone, Copy)]
pub enum Audience<'a> {
    /// This cluster's own pages or a configured trusted origin (`login.trusted_origins`): a login
    /// for us, the way back from a federated login, a logout.
    Local,
    /// Peer `X` (a login here with `remote=X`): only X's own origin, which receives a token
    /// salted for X and nothing else may.
    Peer(&'a ClusterId),
}

/// Why a `return_to` was refused (shown to the person, 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn refused(msg: impl Into<String>) -> Refused {
    Refused(msg.into())
}

/// Parses an absolute URL from our own configuration (already validated at start).
fn configured(url: &str) -> Option<Url> {
    Url::parse(url).ok()
}

/// Checks `raw` for `audience`. Empty means "no `return_to`" (`Ok(None)`); otherwise the parsed,
/// absolute URL the browser will be sent to.
pub fn check(app: &App, raw: &str, audience: Audience<'_>) -> Result<Option<Url>, Refused> {
    if raw.is_empty() {
        return Ok(None);
    }
    let base = configured(&app.settings.cluster.public_url)
        .ok_or_else(|| refused("this cluster's public_url is not a URL"))?;
    let allowed: Vec<Url> = match audience {
        Audience::Local => std::iter::once(base.clone())
            .chain(app.settings.login.trusted_origins.iter().filter_map(|t| configured(t)))
            .collect(),
        Audience::Peer(peer) => app.settings.peer(peer).and_then(|p| configured(&p.url)).into_iter().collect(),
    };
    check_against(raw, &base, &allowed).map(Some).map_err(|e| match (e, audience) {
        (Refusal::Origin(shown), Audience::Local) => {
            refused(format!("return_to origin {shown} is not trusted by this cluster"))
        }
        (Refusal::Origin(shown), Audience::Peer(peer)) => {
            refused(format!("with remote={peer}, return_to must be at {peer}'s own origin, not {shown}"))
        }
        (Refusal::Form(msg), _) => refused(msg),
    })
}

/// Why [`check_against`] refused a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// It is not a URL this daemon will send a browser to (control characters, a backslash, not
    /// https, user info, too long, unparsable).
    Form(String),
    /// It parses, but its origin (shown) is not one of the allowed ones.
    Origin(String),
}

/// The rule itself, without the daemon: `raw` resolved against `base` the way a browser resolves
/// it against our page, accepted when its origin is one of `allowed`'s.
pub fn check_against(raw: &str, base: &Url, allowed: &[Url]) -> Result<Url, Refusal> {
    let form = |m: String| Refusal::Form(m);
    if raw.len() > MAX_RETURN_TO {
        return Err(form(format!("return_to is longer than {MAX_RETURN_TO} bytes")));
    }
    if raw.chars().any(|c| c.is_control() || c == '\\') {
        return Err(form("return_to must not contain control characters or backslashes".into()));
    }
    let url = Url::options().base_url(Some(base)).parse(raw).map_err(|e| form(format!("return_to: {e}")))?;
    if url.scheme() != "https" {
        return Err(form("return_to must be an https URL".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(form("return_to must not contain user info".into()));
    }
    let origin = url.origin();
    if allowed.iter().any(|a| a.origin() == origin) {
        Ok(url)
    } else {
        Err(Refusal::Origin(origin.ascii_serialization()))
    }
}

/// `url` with query parameters appended (encoded by the URL serializer).
pub fn with_params(mut url: Url, params: &[(&str, &str)]) -> String {
    if !params.is_empty() {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    url.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn base() -> Url {
        Url::parse("https://127.0.0.7:8441/").unwrap()
    }

    fn ours(raw: &str) -> Result<Url, Refusal> {
        check_against(raw, &base(), &[base(), Url::parse("https://wb.example.org").unwrap()])
    }

    #[test]
    fn what_a_browser_reads_as_another_host_is_refused() {
        for raw in [
            "/\t/evil.example/x",
            "/\t\\evil.example/x",
            "/\t\t/evil.example/x",
            "/\n/evil.example",
            "/\r/evil.example",
            "/\x0b/evil.example",
            "/\x0c/evil.example",
            "\t//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/\u{0}/evil.example",
            "/\u{85}/evil.example",
            " //evil.example",
            "//evil.example",
            "///evil.example",
            "HTTPS://EVIL.example/",
            "https://127.0.0.7:8441@evil.example/",
            "https://evil.example#@127.0.0.7:8441/",
            "https://127.0.0.7:8442/",
            "https://127.0.0.7:8441.evil.example/",
            "http://127.0.0.7:8441/",
            "https://user@127.0.0.7:8441/",
            "https://:pw@127.0.0.7:8441/",
            "javascript:alert(1)",
            "data:text/html,hi",
            "https://wb.example.org.evil.example/",
        ] {
            assert!(ours(raw).is_err(), "{raw:?} was accepted as {:?}", ours(raw));
        }
    }

    #[test]
    fn our_own_and_trusted_places_are_kept_as_the_browser_reads_them() {
        for (raw, want) in [
            ("/account", "https://127.0.0.7:8441/account"),
            ("account", "https://127.0.0.7:8441/account"),
            ("/a/../b?x=1#f", "https://127.0.0.7:8441/b?x=1#f"),
            ("HTTPS://127.0.0.7:8441/x", "https://127.0.0.7:8441/x"),
            // Same scheme as the page and no slashes: a relative path, for the browser too.
            ("https:evil.example", "https://127.0.0.7:8441/evil.example"),
            ("https:/evil.example", "https://127.0.0.7:8441/evil.example"),
            ("/%2F%2Fevil.example", "https://127.0.0.7:8441/%2F%2Fevil.example"),
            ("https://wb.example.org:443/done", "https://wb.example.org/done"),
        ] {
            assert_eq!(ours(raw).map(String::from), Ok(want.to_string()), "{raw:?}");
        }
    }

    #[test]
    fn the_token_goes_into_the_query_before_any_fragment() {
        let u = ours("/x?a=1#frag").unwrap();
        assert_eq!(
            with_params(u, &[("api_token", "v2/a/b")]),
            "https://127.0.0.7:8441/x?a=1&api_token=v2%2Fa%2Fb#frag"
        );
        assert_eq!(with_params(ours("/x").unwrap(), &[]), "https://127.0.0.7:8441/x");
    }

    proptest! {
        /// Whatever the value, an accepted one resolves (as the browser will resolve the
        /// `Location` we send) to an allowed origin, and carries no user info.
        #[test]
        fn accepted_values_always_land_on_an_allowed_origin(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("/"), Just("\\"), Just("\t"), Just("\n"), Just(" "), Just(":"), Just("@"), Just("."),
                    Just("#"), Just("?"), Just("%2f"), Just("%5c"), Just("evil.example"), Just("https:"),
                    Just("127.0.0.7"), Just(":8441"), Just("wb.example.org"), Just("\u{3000}"), Just("\u{ff0f}"),
                ],
                0..12,
            )
        ) {
            let raw: String = parts.concat();
            if let Ok(url) = ours(&raw) {
                let again = Url::parse(url.as_str()).unwrap();
                prop_assert!(again.origin() == base().origin() || again.host_str() == Some("wb.example.org"), "{raw:?} -> {url}");
                prop_assert!(again.username().is_empty() && again.password().is_none());
            }
        }
    }
}
