//! CORS on the OTLP/HTTP receiver, so the OpenTelemetry JS SDK in a web page can export to it.
//!
//! The configuration follows the OpenTelemetry Collector's `cors` option of its HTTP servers:
//! `allowed_origins` are patterns where `*` stands for any run of characters
//! (`https://*.example.com`, or `*` alone for every origin), `allowed_headers` are request
//! headers allowed beyond the CORS-safelisted ones (`*` allows any). With no origin listed, as
//! by default, nothing is added and a preflight is answered as any other request (the Collector
//! installs no CORS handler either). A request from an origin that is not allowed gets no CORS
//! header, so the browser withholds the answer (and, after a preflight without them, never
//! sends the request).

use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// `distributor.receivers.otlp.protocols.http.cors`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CorsConfig {
    /// Origins whose pages may send to this receiver, e.g. `https://app.example.com`,
    /// `https://*.example.com` (`*` matches any characters) or `*` (every origin). Empty: none
    /// (no CORS headers, as the Collector).
    pub allowed_origins: Vec<String>,
    /// Request headers a page may send beyond the CORS-safelisted ones (Accept,
    /// Accept-Language, Content-Language, Content-Type), e.g. `X-Scope-OrgID` or
    /// `Authorization`; `*` allows any.
    pub allowed_headers: Vec<String>,
}

/// Headers a page may always send: the CORS-safelisted ones. Content-Type is listed because
/// OTLP's protobuf and JSON types are not safelisted values, so every export is preflighted
/// for it.
const ALWAYS_ALLOWED_HEADERS: [&str; 4] = [
    "accept",
    "accept-language",
    "content-language",
    "content-type",
];

/// How long a browser may cache a preflight answer, seconds.
const PREFLIGHT_MAX_AGE_SECONDS: &str = "600";

impl CorsConfig {
    /// Whether any origin is allowed (otherwise no CORS handling is installed).
    pub fn enabled(&self) -> bool {
        !self.allowed_origins.is_empty()
    }

    /// Checks the patterns and header names; the key at fault and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (index, origin) in self.allowed_origins.iter().enumerate() {
            let key = format!("allowed_origins[{index}]");
            if origin == "*" {
                continue;
            }
            let Some((scheme, host)) = origin.split_once("://") else {
                return Err((
                    key,
                    format!("{origin:?} is not an origin like https://app.example.com (or *)"),
                ));
            };
            if scheme.is_empty() || host.is_empty() || host.contains('/') {
                return Err((
                    key,
                    format!("{origin:?} is not an origin: scheme://host[:port], without a path"),
                ));
            }
        }
        for (index, name) in self.allowed_headers.iter().enumerate() {
            if name != "*" && HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err((
                    format!("allowed_headers[{index}]"),
                    format!("{name:?} is not a header name"),
                ));
            }
        }
        Ok(())
    }
}

/// The compiled policy the middleware applies.
#[derive(Debug)]
pub struct CorsPolicy {
    origins: Vec<String>,
    /// Lowercase header names allowed beyond [`ALWAYS_ALLOWED_HEADERS`].
    headers: Vec<String>,
    any_header: bool,
}

impl CorsPolicy {
    /// The policy of `config`; `None` when no origin is allowed.
    pub fn new(config: &CorsConfig) -> Option<Arc<CorsPolicy>> {
        if !config.enabled() {
            return None;
        }
        Some(Arc::new(CorsPolicy {
            origins: config
                .allowed_origins
                .iter()
                .map(|origin| origin.to_ascii_lowercase())
                .collect(),
            headers: config
                .allowed_headers
                .iter()
                .map(|name| name.to_ascii_lowercase())
                .collect(),
            any_header: config.allowed_headers.iter().any(|name| name == "*"),
        }))
    }

    /// Whether a page from `origin` may send.
    pub fn allows_origin(&self, origin: &str) -> bool {
        let origin = origin.to_ascii_lowercase();
        self.origins
            .iter()
            .any(|pattern| wildcard_match(pattern, &origin))
    }

    /// Whether every header of a preflight's `Access-Control-Request-Headers` list is allowed.
    fn allows_headers(&self, requested: &str) -> bool {
        if self.any_header {
            return true;
        }
        requested
            .split(',')
            .map(|name| name.trim().to_ascii_lowercase())
            .filter(|name| !name.is_empty())
            .all(|name| {
                ALWAYS_ALLOWED_HEADERS.contains(&name.as_str()) || self.headers.contains(&name)
            })
    }
}

/// `pattern` against `text`, where each `*` in the pattern matches any run of characters.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let remaining: Vec<&str> = parts.collect();
    let Some((last, middle)) = remaining.split_last() else {
        // No `*`: the prefix was the whole pattern.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Answers preflights and marks answers to allowed origins. Runs before authentication: a
/// preflight never carries credentials.
pub async fn middleware(
    axum::extract::State(policy): axum::extract::State<Arc<CorsPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    let origin = header_text(request.headers(), &header::ORIGIN).map(str::to_string);
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let allowed = policy.allows_origin(&origin);
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        return preflight_answer(&policy, &origin, allowed, request.headers());
    }
    let mut response = next.run(request).await;
    if allowed {
        mark_allowed(response.headers_mut(), &origin);
    }
    response
}

/// 204 with the CORS grant when the origin, method and headers are allowed; 204 without it
/// (which the browser takes as a refusal) otherwise.
fn preflight_answer(
    policy: &CorsPolicy,
    origin: &str,
    origin_allowed: bool,
    headers: &HeaderMap,
) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let response_headers = response.headers_mut();
    response_headers.insert(
        header::VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
        ),
    );
    let method_allowed = header_text(headers, &header::ACCESS_CONTROL_REQUEST_METHOD)
        .is_some_and(|method| method.trim() == "POST");
    let requested_headers =
        header_text(headers, &header::ACCESS_CONTROL_REQUEST_HEADERS).unwrap_or("");
    if !(origin_allowed && method_allowed && policy.allows_headers(requested_headers)) {
        return response;
    }
    let Ok(origin_value) = HeaderValue::from_str(origin) else {
        return response;
    };
    response_headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin_value);
    response_headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    if !requested_headers.trim().is_empty() {
        if let Ok(value) = HeaderValue::from_str(requested_headers) {
            response_headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, value);
        }
    }
    response_headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE_SECONDS),
    );
    response
}

fn mark_allowed(headers: &mut HeaderMap, origin: &str) {
    if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(origins: &[&str], headers: &[&str]) -> Arc<CorsPolicy> {
        CorsPolicy::new(&CorsConfig {
            allowed_origins: origins.iter().map(|one| one.to_string()).collect(),
            allowed_headers: headers.iter().map(|one| one.to_string()).collect(),
        })
        .expect("origins are configured")
    }

    #[test]
    fn origins_match_exactly_or_by_wildcard() {
        let policy = policy(&["https://app.example.com", "https://*.example.org"], &[]);
        assert!(policy.allows_origin("https://app.example.com"));
        assert!(policy.allows_origin("HTTPS://APP.EXAMPLE.COM"));
        assert!(!policy.allows_origin("https://app.example.com:8443"));
        assert!(!policy.allows_origin("http://app.example.com"));
        assert!(policy.allows_origin("https://shop.example.org"));
        assert!(policy.allows_origin("https://a.b.example.org"));
        assert!(!policy.allows_origin("https://example.org"));
        assert!(!policy.allows_origin("https://evil.org/.example.org.x"));
        assert!(!policy.allows_origin("null"));
        let everyone = super::tests::policy(&["*"], &[]);
        assert!(everyone.allows_origin("http://127.0.0.1:8080"));
    }

    #[test]
    fn wildcards_need_the_text_around_them() {
        assert!(wildcard_match("a*c", "abc"));
        assert!(wildcard_match("a*c", "ac"));
        assert!(!wildcard_match("a*c", "ab"));
        assert!(!wildcard_match("ab*b", "ab"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "a-b-c"));
        assert!(!wildcard_match("a*b*c", "a-c-b"));
        assert!(!wildcard_match("abc", "abcd"));
    }

    #[test]
    fn safelisted_and_listed_headers_are_allowed() {
        let policy = policy(&["*"], &["X-Scope-OrgID"]);
        assert!(policy.allows_headers(""));
        assert!(policy.allows_headers("content-type"));
        assert!(policy.allows_headers("Content-Type, x-scope-orgid"));
        assert!(!policy.allows_headers("content-type,authorization"));
        let any = super::tests::policy(&["*"], &["*"]);
        assert!(any.allows_headers("authorization, x-anything"));
    }

    #[test]
    fn no_origin_means_no_policy_and_bad_entries_are_named() {
        assert!(CorsPolicy::new(&CorsConfig::default()).is_none());
        let bad_origin = CorsConfig {
            allowed_origins: vec!["example.com".into()],
            allowed_headers: vec![],
        };
        let (key, reason) = bad_origin.validate().unwrap_err();
        assert_eq!(key, "allowed_origins[0]");
        assert!(reason.contains("example.com"), "{reason}");
        let with_path = CorsConfig {
            allowed_origins: vec!["https://example.com/app".into()],
            allowed_headers: vec![],
        };
        assert!(with_path.validate().is_err());
        let bad_header = CorsConfig {
            allowed_origins: vec!["*".into()],
            allowed_headers: vec!["bad header".into()],
        };
        assert_eq!(bad_header.validate().unwrap_err().0, "allowed_headers[0]");
        let good = CorsConfig {
            allowed_origins: vec!["*".into(), "https://*.example.com".into()],
            allowed_headers: vec!["*".into(), "X-Scope-OrgID".into()],
        };
        assert!(good.validate().is_ok());
    }
}
