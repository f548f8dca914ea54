//! A value that must never appear in logs or `Debug` output: private keys, API keys,
//! connection URLs carrying passwords, bearer tokens; and [`split_userinfo`], which takes the
//! credentials out of a URL (`http://user:password@host/`) before an HTTP client is built with
//! it.

use std::{fmt, str::FromStr};

use url::Url;

/// Holds a secret. `Debug` and `Display` print `<redacted>`; the value is reached only through
/// [`Secret::expose`], so every use of it is visible in the code.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub const fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value. Do not log it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the secret value. Do not log it.
    pub fn into_inner(self) -> T {
        self.0
    }

    /// Applies `f` to the inner value, keeping the result secret.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Secret<U> {
        Secret(f(self.0))
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> From<T> for Secret<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

/// Parsing keeps the parser's error, which must not echo the input (the standard parsers of
/// `String` and `url::Url` do not).
impl<T: FromStr> FromStr for Secret<T> {
    type Err = T::Err;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(Self)
    }
}

/// Takes the credentials out of `url`: the URL without its userinfo, and the value of the
/// `Authorization` header that carries them (`Basic base64(user:password)`, RFC 7617), if the
/// URL had any.
///
/// HTTP libraries log the URL they are given (alloy's transport records it in a DEBUG span,
/// errors quote it), so the clients hand them the URL this returns and send the header on each
/// request. The user name and password are percent-decoded first, as
/// a browser or `curl` does with `http://user:p%40ss@host/`.
pub fn split_userinfo(url: &Url) -> (Url, Option<Secret<String>>) {
    let (user, password) = (url.username(), url.password());
    if user.is_empty() && password.is_none() {
        return (url.clone(), None);
    }
    let mut credentials = percent_decode(user);
    credentials.push(b':');
    credentials.extend(percent_decode(password.unwrap_or_default()));
    let header = Secret::new(format!("Basic {}", base64(&credentials)));
    (without_userinfo(url), Some(header))
}

/// [`split_userinfo`] as HTTP clients use it: the URL without its credentials, and the default
/// headers of every request to it (`Authorization: Basic …`, marked sensitive so that HTTP
/// libraries leave it out of their debug output; empty when the URL has no credentials).
pub fn credentials_headers(url: &Url) -> (Url, http::HeaderMap) {
    let (url, authorization) = split_userinfo(url);
    let mut headers = http::HeaderMap::new();
    if let Some(value) = authorization {
        // `Basic ` followed by base64: visible ASCII, always a valid header value.
        let mut value = http::HeaderValue::from_str(value.expose())
            .expect("Basic credentials are visible ASCII");
        value.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, value);
    }
    (url, headers)
}

/// `url` without its user name and password: what may be shown in a log line or an error.
pub fn without_userinfo(url: &Url) -> Url {
    let mut clean = url.clone();
    // Both fail only for URLs that cannot have credentials (`mailto:`, `data:`), which then
    // have none to remove.
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean
}

/// The bytes `%XX` escapes stand for; anything else (a lone `%` included) is kept as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> shift & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_become_a_sensitive_basic_header() {
        let url: Url = "https://alice:s3cret@rpc.example/v3/key".parse().unwrap();
        let (clean, headers) = credentials_headers(&url);
        assert_eq!(clean.as_str(), "https://rpc.example/v3/key");
        let value = &headers[http::header::AUTHORIZATION];
        // base64("alice:s3cret")
        assert_eq!(value.to_str().unwrap(), "Basic YWxpY2U6czNjcmV0");
        assert!(value.is_sensitive());
        let (same, none) = credentials_headers(&clean);
        assert_eq!((same, none.len()), (clean, 0));
    }

    #[test]
    fn debug_and_display_redact() {
        let s = Secret::new("0xdeadbeef-private".to_owned());
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
        assert_eq!(format!("{s:#?}"), "Secret(<redacted>)");
        assert_eq!(s.to_string(), "<redacted>");
        assert_eq!(s.expose(), "0xdeadbeef-private");
    }

    #[test]
    fn redacts_inside_containers() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            key: Secret<String>,
            maybe: Option<Secret<String>>,
        }
        let h = Holder {
            key: "k1-top-secret".parse().unwrap(),
            maybe: Some("k2-hidden".to_owned().into()),
        };
        let out = format!("{h:?} {h:#?}");
        assert!(!out.contains("top-secret") && !out.contains("hidden"), "{out}");
    }

    #[test]
    fn map_keeps_secrecy() {
        let s = Secret::new(" padded ".to_owned()).map(|v| v.trim().to_owned());
        assert_eq!(s.expose(), "padded");
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (input, expected) in cases {
            assert_eq!(base64(input.as_bytes()), expected, "{input:?}");
        }
        assert_eq!(base64(&[0xfb, 0xff, 0xbf]), "+/+/");
    }

    #[test]
    fn split_userinfo_moves_the_credentials_into_a_basic_header() {
        let url: Url = "http://user:password@127.0.0.1:8545/v2/path?x=1".parse().unwrap();
        let (clean, header) = split_userinfo(&url);
        assert_eq!(clean.as_str(), "http://127.0.0.1:8545/v2/path?x=1");
        // RFC 7617 §2's example pair: Aladdin / open sesame.
        let rfc: Url = "https://Aladdin:open%20sesame@example.org/".parse().unwrap();
        let (clean_rfc, rfc_header) = split_userinfo(&rfc);
        assert_eq!(clean_rfc.as_str(), "https://example.org/");
        assert_eq!(rfc_header.unwrap().expose(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
        assert_eq!(header.unwrap().expose(), "Basic dXNlcjpwYXNzd29yZA==");
    }

    #[test]
    fn split_userinfo_handles_partial_and_escaped_credentials() {
        let user_only: Url = "http://token@node.example/".parse().unwrap();
        let (clean, header) = split_userinfo(&user_only);
        assert_eq!(clean.as_str(), "http://node.example/");
        assert_eq!(header.unwrap().expose(), &format!("Basic {}", base64(b"token:")));

        let password_only: Url = "http://:k3y@node.example/".parse().unwrap();
        let (_, header) = split_userinfo(&password_only);
        assert_eq!(header.unwrap().expose(), &format!("Basic {}", base64(b":k3y")));

        let escaped: Url = "http://us%65r:p%40ss%3Aw%rd@node.example/".parse().unwrap();
        let (_, header) = split_userinfo(&escaped);
        assert_eq!(header.unwrap().expose(), &format!("Basic {}", base64(b"user:p@ss:w%rd")));
    }

    #[test]
    fn a_url_without_credentials_is_left_alone() {
        let url: Url = "https://rpc.example/v3/key-in-path".parse().unwrap();
        let (clean, header) = split_userinfo(&url);
        assert_eq!(clean, url);
        assert!(header.is_none());
        assert_eq!(without_userinfo(&url), url);
        let cannot_have_any: Url = "mailto:ops@example.org".parse().unwrap();
        assert_eq!(without_userinfo(&cannot_have_any), cannot_have_any);
    }

    #[test]
    fn the_header_is_itself_a_secret() {
        let url: Url = "http://user:hunter2@node.example/".parse().unwrap();
        let (clean, header) = split_userinfo(&url);
        let shown = format!("{clean} {clean:?} {header:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("user:"), "{shown}");
        assert!(!shown.contains(&base64(b"user:hunter2")), "{shown}");
    }
}
