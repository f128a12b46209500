//! Bearer-token and HTTP basic authentication of every request, HTTP and gRPC alike.
//!
//! Off while no credential is configured. Secrets are compared in constant time, and every
//! configured secret is compared, so the time taken says nothing about which one came close.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};

/// The `server.auth` section.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Tokens accepted in `Authorization: Bearer <token>`.
    pub bearer_tokens: Vec<String>,
    /// A file holding more tokens, one per line (blank lines and `#` comments skipped); empty:
    /// none. Keeps secrets out of the config file.
    pub bearer_tokens_file: String,
    /// Users accepted in `Authorization: Basic` (what a browser prompts for).
    pub basic_users: Vec<BasicUser>,
    /// A file holding more users, one `username:password` per line; empty: none.
    pub basic_users_file: String,
    /// `GET` and `HEAD` on these exact paths pass without credentials (health checks,
    /// Prometheus scrapes); any other method on them still needs credentials.
    pub exempt_paths: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            bearer_tokens: Vec::new(),
            bearer_tokens_file: String::new(),
            basic_users: Vec::new(),
            basic_users_file: String::new(),
            exempt_paths: vec!["/ready".into(), "/metrics".into()],
        }
    }
}

// Secrets stay out of logs and panics.
impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("AuthConfig")
            .field(
                "bearer_tokens",
                &format!("<{} hidden>", self.bearer_tokens.len()),
            )
            .field("bearer_tokens_file", &self.bearer_tokens_file)
            .field("basic_users", &self.basic_users)
            .field("basic_users_file", &self.basic_users_file)
            .field("exempt_paths", &self.exempt_paths)
            .finish()
    }
}

/// One user of HTTP basic authentication.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicUser {
    /// The user name; must not contain `:`.
    pub username: String,
    /// The password, in plain text.
    pub password: String,
}

impl std::fmt::Debug for BasicUser {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("BasicUser")
            .field("username", &self.username)
            .field("password", &"<hidden>")
            .finish()
    }
}

impl AuthConfig {
    /// Whether any credential (inline or in a file) is configured, which turns auth on.
    pub fn enabled(&self) -> bool {
        !self.bearer_tokens.is_empty()
            || !self.bearer_tokens_file.is_empty()
            || !self.basic_users.is_empty()
            || !self.basic_users_file.is_empty()
    }

    /// Checks the inline credentials; the key at fault and why.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (index, token) in self.bearer_tokens.iter().enumerate() {
            check_token(token).map_err(|reason| (format!("bearer_tokens[{index}]"), reason))?;
        }
        for (index, user) in self.basic_users.iter().enumerate() {
            check_user(&user.username, &user.password)
                .map_err(|reason| (format!("basic_users[{index}]"), reason))?;
        }
        for path in &self.exempt_paths {
            if !path.starts_with('/') {
                return Err((
                    "exempt_paths".into(),
                    format!("{path:?} is not a path starting with /"),
                ));
            }
        }
        Ok(())
    }
}

fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("a bearer token must not be empty".into());
    }
    if token.chars().any(char::is_whitespace) {
        return Err("a bearer token must not contain whitespace".into());
    }
    Ok(())
}

fn check_user(username: &str, password: &str) -> Result<(), String> {
    if username.is_empty() {
        return Err("the username must not be empty".into());
    }
    if username.contains(':') {
        return Err(format!(
            "username {username:?} contains `:`, which basic auth cannot carry"
        ));
    }
    if password.is_empty() {
        return Err(format!("user {username:?} has an empty password"));
    }
    Ok(())
}

/// A credential file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthLoadError {
    #[error("cannot read {key} {path}: {source}")]
    Read {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{key} {path} line {line}: {reason}")]
    Line {
        key: &'static str,
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{key} {path} holds no credential; remove the key or fill the file")]
    Empty { key: &'static str, path: String },
}

/// The lines of a credential file that carry one, numbered from 1.
fn credential_lines(key: &'static str, path: &str) -> Result<Vec<(usize, String)>, AuthLoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthLoadError::Read {
        key,
        path: path.to_string(),
        source,
    })?;
    let lines: Vec<(usize, String)> = text
        .lines()
        .enumerate()
        .map(|(index, line)| (index + 1, line.trim().to_string()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .collect();
    if lines.is_empty() {
        return Err(AuthLoadError::Empty {
            key,
            path: path.to_string(),
        });
    }
    Ok(lines)
}

/// Checks the `Authorization` header of every request against the configured credentials.
pub struct Authenticator {
    bearer_tokens: Vec<Vec<u8>>,
    /// `username:password`, as a basic-auth header carries it once decoded.
    basic_credentials: Vec<Vec<u8>>,
    exempt_paths: Vec<String>,
    /// Requests refused, by [`AuthError::reason`]: missing, invalid, malformed.
    refused: [std::sync::atomic::AtomicU64; 3],
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("authentication required: send {expected}")]
    Missing { expected: &'static str },
    #[error("invalid credentials in the Authorization header")]
    Invalid,
    #[error("malformed Authorization header: {0}")]
    Malformed(String),
}

impl AuthError {
    /// The `reason` label values, in [`AuthError::reason_index`] order.
    const REASONS: [&'static str; 3] = ["missing", "invalid", "malformed"];

    fn reason_index(&self) -> usize {
        match self {
            AuthError::Missing { .. } => 0,
            AuthError::Invalid => 1,
            AuthError::Malformed(_) => 2,
        }
    }
}

impl Authenticator {
    /// The authenticator for `config` with its credential files read; `None` when no
    /// credential is configured (auth off).
    pub fn load(config: &AuthConfig) -> Result<Option<Authenticator>, AuthLoadError> {
        if !config.enabled() {
            return Ok(None);
        }
        let mut bearer_tokens: Vec<Vec<u8>> = config
            .bearer_tokens
            .iter()
            .map(|token| token.as_bytes().to_vec())
            .collect();
        if !config.bearer_tokens_file.is_empty() {
            let key = "server.auth.bearer_tokens_file";
            let path = &config.bearer_tokens_file;
            for (line, token) in credential_lines(key, path)? {
                check_token(&token).map_err(|reason| AuthLoadError::Line {
                    key,
                    path: path.clone(),
                    line,
                    reason,
                })?;
                bearer_tokens.push(token.into_bytes());
            }
        }
        let mut basic_credentials: Vec<Vec<u8>> = config
            .basic_users
            .iter()
            .map(|user| format!("{}:{}", user.username, user.password).into_bytes())
            .collect();
        if !config.basic_users_file.is_empty() {
            let key = "server.auth.basic_users_file";
            let path = &config.basic_users_file;
            for (line, entry) in credential_lines(key, path)? {
                let line_error = |reason: String| AuthLoadError::Line {
                    key,
                    path: path.clone(),
                    line,
                    reason,
                };
                let (username, password) = entry
                    .split_once(':')
                    .ok_or_else(|| line_error("expected username:password".into()))?;
                check_user(username, password).map_err(line_error)?;
                basic_credentials.push(entry.into_bytes());
            }
        }
        Ok(Some(Authenticator {
            bearer_tokens,
            basic_credentials,
            exempt_paths: config.exempt_paths.clone(),
            refused: Default::default(),
        }))
    }

    /// `vivace_auth_refused_total{reason}` for `/metrics`.
    pub fn render_metrics(&self, out: &mut String) {
        let name = crate::telemetry::names::AUTH_REFUSED;
        out.push_str(&format!(
            "# HELP {name} Requests refused for missing, invalid or malformed credentials.\n\
# TYPE {name} counter\n"
        ));
        for (reason, count) in AuthError::REASONS.iter().zip(&self.refused) {
            let count = count.load(std::sync::atomic::Ordering::Relaxed);
            out.push_str(&format!("{name}{{reason=\"{reason}\"}} {count}\n"));
        }
    }

    fn count_refusal(&self, error: &AuthError) {
        self.refused[error.reason_index()].fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many tokens and users are accepted: for the startup log.
    pub fn counts(&self) -> (usize, usize) {
        (self.bearer_tokens.len(), self.basic_credentials.len())
    }

    /// Whether the request may pass: exempt, or carrying a configured credential.
    pub fn check(&self, method: &Method, path: &str, headers: &HeaderMap) -> Result<(), AuthError> {
        let reads = method == Method::GET || method == Method::HEAD;
        if reads && self.exempt_paths.iter().any(|exempt| exempt == path) {
            return Ok(());
        }
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(AuthError::Missing {
                expected: self.expected(),
            });
        };
        let value = value
            .to_str()
            .map_err(|_| AuthError::Malformed("not visible ASCII".into()))?;
        let (scheme, credentials) = value.trim().split_once(' ').ok_or_else(|| {
            AuthError::Malformed("expected `Bearer <token>` or `Basic <base64>`".into())
        })?;
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            return match any_matches(&self.bearer_tokens, credentials.as_bytes()) {
                true => Ok(()),
                false => Err(AuthError::Invalid),
            };
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials)
                .map_err(|error| {
                    AuthError::Malformed(format!("basic credentials are not base64: {error}"))
                })?;
            return match any_matches(&self.basic_credentials, &decoded) {
                true => Ok(()),
                false => Err(AuthError::Invalid),
            };
        }
        Err(AuthError::Malformed(format!(
            "unsupported scheme {scheme:?}; use Bearer or Basic"
        )))
    }

    fn expected(&self) -> &'static str {
        match (
            self.bearer_tokens.is_empty(),
            self.basic_credentials.is_empty(),
        ) {
            (false, true) => "`Authorization: Bearer <token>`",
            (true, false) => "`Authorization: Basic <base64 of username:password>`",
            _ => "`Authorization: Bearer <token>` or `Authorization: Basic <base64 of username:password>`",
        }
    }

    /// The `WWW-Authenticate` challenges; Basic first so a browser prompts for the UI.
    fn challenges(&self) -> Vec<HeaderValue> {
        let mut challenges = Vec::new();
        if !self.basic_credentials.is_empty() {
            challenges.push(HeaderValue::from_static(
                r#"Basic realm="vivace", charset="UTF-8""#,
            ));
        }
        if !self.bearer_tokens.is_empty() {
            challenges.push(HeaderValue::from_static(r#"Bearer realm="vivace""#));
        }
        challenges
    }

    /// The refusal: gRPC `UNAUTHENTICATED` for gRPC requests, else 401 with the challenges.
    fn refuse(&self, error: &AuthError, grpc: bool) -> Response {
        if grpc {
            return tonic::Status::unauthenticated(error.to_string()).into_http();
        }
        let mut response = (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{error}\n"),
        )
            .into_response();
        for challenge in self.challenges() {
            response
                .headers_mut()
                .append(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

/// Whether `presented` equals one of `accepted`; every candidate is compared in full.
fn any_matches(accepted: &[Vec<u8>], presented: &[u8]) -> bool {
    let mut matched = false;
    for candidate in accepted {
        // `|` rather than `||`: no early exit once a match is found.
        matched |= constant_time_eq(candidate, presented);
    }
    matched
}

/// Byte equality whose time depends only on the lengths, never on where the inputs differ.
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    let longest = left.len().max(right.len());
    let mut difference = u8::from(left.len() != right.len());
    for index in 0..longest {
        let left_byte = left.get(index).copied().unwrap_or(0);
        let right_byte = right.get(index).copied().unwrap_or(0);
        difference |= left_byte ^ right_byte;
    }
    // Keeps the optimiser from turning the loop into an early-exit comparison.
    std::hint::black_box(difference) == 0
}

fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/grpc"))
}

async fn authenticate(
    State(authenticator): State<Arc<Authenticator>>,
    request: Request,
    next: Next,
) -> Response {
    match authenticator.check(request.method(), request.uri().path(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(error) => {
            authenticator.count_refusal(&error);
            tracing::debug!(path = %request.uri().path(), %error, "request refused");
            authenticator.refuse(&error, is_grpc(request.headers()))
        }
    }
}

/// `router` with authentication in front of every route, including its fallback.
pub fn protect(router: axum::Router, authenticator: Arc<Authenticator>) -> axum::Router {
    router.layer(axum::middleware::from_fn_with_state(
        authenticator,
        authenticate,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        let config = AuthConfig {
            bearer_tokens: vec!["s3cret-token".into()],
            basic_users: vec![BasicUser {
                username: "admin".into(),
                password: "pa:ss".into(),
            }],
            ..Default::default()
        };
        Authenticator::load(&config).unwrap().unwrap()
    }

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, authorization.parse().unwrap());
        headers
    }

    fn basic(credentials: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(credentials)
        )
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        // A shorter input padded with zeros must not equal a longer one ending in zeros.
        assert!(!constant_time_eq(b"ab", b"ab\0"));
        assert!(!constant_time_eq(b"", b"\0"));
    }

    #[test]
    fn headers_are_parsed_and_checked() {
        let auth = authenticator();
        let get = Method::GET;
        let path = "/api/search";
        assert_eq!(
            auth.check(&get, path, &headers("Bearer s3cret-token")),
            Ok(())
        );
        assert_eq!(
            auth.check(&get, path, &headers("bearer  s3cret-token ")),
            Ok(())
        );
        assert_eq!(
            auth.check(&get, path, &headers("Bearer s3cret-toke")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            auth.check(&get, path, &headers(&basic("admin:pa:ss"))),
            Ok(())
        );
        assert_eq!(
            auth.check(&get, path, &headers(&basic("admin:pa"))),
            Err(AuthError::Invalid)
        );
        // A token is not a password and a password is not a token.
        assert_eq!(
            auth.check(&get, path, &headers("Bearer admin:pa:ss")),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            auth.check(&get, path, &headers(&basic("s3cret-token"))),
            Err(AuthError::Invalid)
        );
        assert!(matches!(
            auth.check(&get, path, &headers("Basic !!!")),
            Err(AuthError::Malformed(message)) if message.contains("base64")
        ));
        assert!(matches!(
            auth.check(&get, path, &headers("Digest x")),
            Err(AuthError::Malformed(message)) if message.contains("Digest")
        ));
        assert!(matches!(
            auth.check(&get, path, &headers("s3cret-token")),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            auth.check(&get, path, &HeaderMap::new()),
            Err(AuthError::Missing { .. })
        ));
    }

    #[test]
    fn only_reads_of_exempt_paths_pass_without_credentials() {
        let auth = authenticator();
        let none = HeaderMap::new();
        assert_eq!(auth.check(&Method::GET, "/ready", &none), Ok(()));
        assert_eq!(auth.check(&Method::HEAD, "/metrics", &none), Ok(()));
        // Zipkin accepts POST on any path: an exempt path must not open ingest.
        assert!(auth.check(&Method::POST, "/ready", &none).is_err());
        assert!(auth.check(&Method::GET, "/ready/x", &none).is_err());
    }

    #[test]
    fn credential_files_are_read_and_checked() {
        let directory = tempfile::tempdir().unwrap();
        let tokens = directory.path().join("tokens");
        std::fs::write(&tokens, "# ci\n\ntoken-one\n  token-two  \n").unwrap();
        let users = directory.path().join("users");
        std::fs::write(&users, "grafana:pw\n").unwrap();
        let config = AuthConfig {
            bearer_tokens_file: tokens.display().to_string(),
            basic_users_file: users.display().to_string(),
            ..Default::default()
        };
        let auth = Authenticator::load(&config).unwrap().unwrap();
        assert_eq!(auth.counts(), (2, 1));
        let get = Method::GET;
        assert_eq!(auth.check(&get, "/", &headers("Bearer token-two")), Ok(()));
        assert_eq!(
            auth.check(&get, "/", &headers(&basic("grafana:pw"))),
            Ok(())
        );

        std::fs::write(&users, "nocolon\n").unwrap();
        let error = Authenticator::load(&config).err().unwrap().to_string();
        assert!(
            error.contains("line 1") && error.contains("users"),
            "{error}"
        );
        std::fs::write(&tokens, "# only a comment\n").unwrap();
        let error = Authenticator::load(&config).err().unwrap().to_string();
        assert!(error.contains("holds no credential"), "{error}");
        let missing = AuthConfig {
            bearer_tokens_file: "/nonexistent/tokens".into(),
            ..Default::default()
        };
        let error = Authenticator::load(&missing).err().unwrap().to_string();
        assert!(error.contains("/nonexistent/tokens"), "{error}");
        assert!(Authenticator::load(&AuthConfig::default())
            .unwrap()
            .is_none());
    }

    #[test]
    fn refusals_carry_challenges_or_a_grpc_status() {
        let auth = authenticator();
        let response = auth.refuse(&AuthError::Invalid, false);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let challenges: Vec<_> = response
            .headers()
            .get_all(header::WWW_AUTHENTICATE)
            .iter()
            .map(|value| value.to_str().unwrap().to_string())
            .collect();
        assert!(
            challenges[0].starts_with("Basic realm=\"vivace\""),
            "{challenges:?}"
        );
        assert!(challenges[1].starts_with("Bearer"), "{challenges:?}");
        let grpc = auth.refuse(&AuthError::Invalid, true);
        assert_eq!(grpc.status(), StatusCode::OK);
        assert_eq!(grpc.headers()["grpc-status"], "16");
    }
}
