//! The pull side of the OCI client: a manifest and a blob fetched over the
//! distribution API with every response body read against a bound.
//!
//! oci-client reads manifests, token answers and error bodies whole, so a
//! registry that streams without end could exhaust the host's memory
//! before the pull's time bound ran out. Here a manifest may be at most
//! [`MAX_MANIFEST_BYTES`], a token answer or error body at most
//! [`MAX_SMALL_BODY_BYTES`], a layer at most the caller's limit.
//!
//! Authorization follows the registry's challenge, read from every
//! `WWW-Authenticate` header of its `401`: a request is first sent as it
//! is; a `Bearer realm=…` challenge sends us to the realm for a pull token
//! (asked with the user's name and password when there are any, or in
//! exchange for a docker identity token, an OAuth2 refresh token), a
//! `Basic` challenge takes the name and password directly, and an identity
//! token with no realm to exchange it at is sent as the bearer token.
//! Redirects (blob stores behind CDNs) are followed by reqwest, which drops
//! the `Authorization` header when a redirect leaves the registry's host;
//! none is followed from https to plain http (`Registry::new`'s policy).

use super::OciError;
use oci_client::Reference;
use oci_client::secrets::RegistryAuth;
use reqwest::header;
use reqwest::{Response, StatusCode};

/// Largest manifest accepted: what the distribution spec asks registries to
/// take at least, and far more than a one-layer Wasm artifact needs.
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// Largest token answer read, and how much of an error body is kept.
const MAX_SMALL_BODY_BYTES: usize = 64 * 1024;

/// One pull's conversation with one registry repository.
pub(super) struct Session<'a> {
    http: &'a reqwest::Client,
    /// `http[s]://registry/v2/`.
    root: String,
    /// `http[s]://registry/v2/repository`.
    base: String,
    image: &'a Reference,
    reference: &'a str,
    credentials: RegistryAuth,
    /// What the registry's challenge asked for, once it asked.
    authorization: Option<Authorization>,
}

/// What a registry's `401` asks for, from every `WWW-Authenticate` header
/// it sent (a registry may offer `Basic` and `Bearer` in headers of their
/// own, in either order) and every challenge within each.
#[derive(Debug, Default, PartialEq, Eq)]
struct Challenge {
    /// The first `Bearer` challenge with a realm: where a token is asked for.
    bearer_realm: Option<BearerRealm>,
    /// Whether `Basic` is offered.
    basic: bool,
}

/// A `Bearer` challenge's token server.
#[derive(Debug, PartialEq, Eq)]
struct BearerRealm {
    realm: String,
    service: Option<String>,
}

impl Challenge {
    /// `None` when no `WWW-Authenticate` header was sent.
    fn read(headers: &reqwest::header::HeaderMap) -> Option<Self> {
        let mut headers = headers.get_all(header::WWW_AUTHENTICATE).iter().peekable();
        headers.peek()?;
        let mut challenge = Self::default();
        // A value that is not text, or a challenge that does not parse, is
        // passed over: the others may still be answered.
        let values = headers.filter_map(|value| value.to_str().ok());
        for value in values {
            for parsed in http_auth::ChallengeParser::new(value).flatten() {
                if parsed.scheme.eq_ignore_ascii_case("bearer") {
                    let param = |name: &str| {
                        parsed
                            .params
                            .iter()
                            .find(|(key, _)| key.eq_ignore_ascii_case(name))
                            .map(|(_, value)| value.to_unescaped())
                    };
                    if challenge.bearer_realm.is_none()
                        && let Some(realm) = param("realm")
                    {
                        challenge.bearer_realm = Some(BearerRealm {
                            realm,
                            service: param("service"),
                        });
                    }
                } else if parsed.scheme.eq_ignore_ascii_case("basic") {
                    challenge.basic = true;
                }
            }
        }
        Some(challenge)
    }
}

/// How requests are authorized after the registry's challenge.
enum Authorization {
    Bearer(String),
    Basic(String, String),
}

impl<'a> Session<'a> {
    /// A session for `image` over `scheme` (`http` or `https`).
    pub(super) fn new(
        http: &'a reqwest::Client,
        scheme: &str,
        image: &'a Reference,
        reference: &'a str,
        credentials: RegistryAuth,
    ) -> Self {
        let root = format!("{scheme}://{}/v2/", image.resolve_registry());
        Self {
            http,
            base: format!("{root}{}", image.repository()),
            root,
            image,
            reference,
            credentials,
            authorization: None,
        }
    }

    /// The raw manifest the image's tag or digest names, of one of
    /// `media_types`, and the digest the registry says it has
    /// (`Docker-Content-Digest`), if it says one.
    pub(super) async fn manifest(
        &mut self,
        media_types: &[&str],
    ) -> Result<(Vec<u8>, Option<String>), OciError> {
        let target = self
            .image
            .digest()
            .or(self.image.tag())
            .unwrap_or("latest")
            .to_string();
        let url = format!("{}/manifests/{target}", self.base);
        let response = self.get(&url, Some(&media_types.join(", "))).await?;
        let response = self
            .success(response, "the manifest", "the registry")
            .await?;
        let said_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|value| value.to_str().ok())
            .map(str::to_string);
        let body = read_bounded(response, MAX_MANIFEST_BYTES as u64)
            .await
            .map_err(|error| match error {
                Bounded::Exceeded(size) => self.registry_error(format!(
                    "its manifest is larger than {} bytes ({size} bytes or more)",
                    MAX_MANIFEST_BYTES
                )),
                Bounded::Transport(e) => self.read_error("reading the manifest", &e),
            })?;
        Ok((body, said_digest))
    }

    /// The blob `digest`, refused beyond `limit` bytes (the size the caller
    /// reports in [`OciError::TooLarge`] is what had arrived by then).
    pub(super) async fn blob(&mut self, digest: &str, limit: u64) -> Result<Vec<u8>, OciError> {
        let url = format!("{}/blobs/{digest}", self.base);
        let response = self.get(&url, None).await?;
        let response = self
            .success(response, "the component layer", "the registry")
            .await?;
        read_bounded(response, limit)
            .await
            .map_err(|error| match error {
                Bounded::Exceeded(size) => OciError::TooLarge {
                    reference: self.reference.to_string(),
                    size,
                    limit,
                },
                Bounded::Transport(e) => self.read_error("reading the component layer", &e),
            })
    }

    /// GETs `url`, answering the registry's challenge once if it makes one.
    async fn get(&mut self, url: &str, accept: Option<&str>) -> Result<Response, OciError> {
        let response = self.send(url, accept).await?;
        if response.status() != StatusCode::UNAUTHORIZED || self.authorization.is_some() {
            return Ok(response);
        }
        let challenge = match Challenge::read(response.headers()) {
            Some(challenge) => challenge,
            // Some registries challenge only at the API's root: ask there
            // when there are credentials to answer with.
            None if !matches!(self.credentials, RegistryAuth::Anonymous) => {
                match self.root_challenge().await? {
                    Some(challenge) => challenge,
                    None => return Ok(response),
                }
            }
            None => return Ok(response),
        };
        let Some(authorization) = self.answer(challenge).await? else {
            return Ok(response);
        };
        self.authorization = Some(authorization);
        self.send(url, accept).await
    }

    /// The challenge the API's root (`/v2/`) makes, if it makes one.
    async fn root_challenge(&self) -> Result<Option<Challenge>, OciError> {
        let response = self
            .http
            .get(&self.root)
            .send()
            .await
            .map_err(|e| transport_error(self.reference, self.image, &e))?;
        Ok(Challenge::read(response.headers()))
    }

    async fn send(&self, url: &str, accept: Option<&str>) -> Result<Response, OciError> {
        let mut request = self.http.get(url);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        match &self.authorization {
            Some(Authorization::Bearer(token)) => request = request.bearer_auth(token),
            Some(Authorization::Basic(user, password)) => {
                request = request.basic_auth(user, Some(password));
            }
            None => {}
        }
        request
            .send()
            .await
            .map_err(|e| transport_error(self.reference, self.image, &e))
    }

    /// The authorization that answers `challenge`, or `None` when there is
    /// nothing to answer it with (an anonymous pull of a private image: the
    /// 401 itself is the error to report).
    async fn answer(&self, challenge: Challenge) -> Result<Option<Authorization>, OciError> {
        let Challenge {
            bearer_realm,
            basic,
        } = challenge;
        Ok(match (&self.credentials, bearer_realm) {
            (credentials, Some(BearerRealm { realm, service })) => {
                let token = self.token(&realm, service.as_deref(), credentials).await?;
                Some(Authorization::Bearer(token))
            }
            (RegistryAuth::Basic(user, password), None) if basic => {
                Some(Authorization::Basic(user.clone(), password.clone()))
            }
            // No token server to exchange it at: sent as it is.
            (RegistryAuth::Bearer(identity), None) => Some(Authorization::Bearer(identity.clone())),
            _ => None,
        })
    }

    /// A pull token from the challenge's `realm`: asked with the user's
    /// name and password when there are any (GET), or in exchange for a
    /// docker identity token, which is an OAuth2 refresh token (a POST form,
    /// as docker sends it; a token server that does not take the POST is
    /// asked with a GET, as containerd falls back to).
    async fn token(
        &self,
        realm: &str,
        service: Option<&str>,
        credentials: &RegistryAuth,
    ) -> Result<String, OciError> {
        let scope = format!("repository:{}:pull", self.image.repository());
        let mut query = vec![("scope", scope.as_str())];
        if let Some(service) = service {
            query.push(("service", service));
        }
        let mut url = reqwest::Url::parse(realm).map_err(|e| {
            self.registry_error(format!("its token realm `{realm}` is not a URL ({e})"))
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(
                self.registry_error(format!("its token realm `{realm}` is not an http(s) URL"))
            );
        }
        if url.scheme() == "http" && self.base.starts_with("https:") {
            let secret = match credentials {
                RegistryAuth::Basic(..) => Some("the password"),
                RegistryAuth::Bearer(_) => Some("the identity token"),
                RegistryAuth::Anonymous => None,
            };
            if let Some(secret) = secret {
                return Err(self.registry_error(format!(
                    "its token realm `{realm}` is plain HTTP; {secret} is not sent there in the clear"
                )));
            }
        }
        let server = format!("the token server {}", url.host_str().unwrap_or_default());
        let send = async |request: reqwest::RequestBuilder| {
            request.send().await.map_err(|e| {
                self.registry_error(format!("cannot reach {server}: {}", causes(&e).0))
            })
        };
        let form_url = url.clone();
        url.query_pairs_mut().extend_pairs(&query);
        let response = match credentials {
            RegistryAuth::Bearer(identity) => {
                // `service` is a required field of the form, empty when the
                // challenge named none.
                let form = [
                    ("grant_type", "refresh_token"),
                    ("refresh_token", identity.as_str()),
                    ("client_id", "nimbus"),
                    ("scope", scope.as_str()),
                    ("service", service.unwrap_or_default()),
                ];
                let posted = send(self.http.post(form_url).form(&form)).await?;
                let refused = matches!(
                    posted.status(),
                    StatusCode::BAD_REQUEST
                        | StatusCode::UNAUTHORIZED
                        | StatusCode::NOT_FOUND
                        | StatusCode::METHOD_NOT_ALLOWED
                );
                if refused {
                    send(self.http.get(url).basic_auth("", Some(identity))).await?
                } else {
                    posted
                }
            }
            RegistryAuth::Basic(user, password) => {
                send(self.http.get(url).basic_auth(user, Some(password))).await?
            }
            RegistryAuth::Anonymous => send(self.http.get(url)).await?,
        };
        let response = self
            .success(response, "a pull token", &server)
            .await
            .map_err(|error| match (error, credentials) {
                (OciError::Registry { reference, message }, RegistryAuth::Bearer(_)) => {
                    OciError::Registry {
                        reference,
                        message: format!(
                            "{message} (for the docker config's identity token; if it expired, `docker login` again)"
                        ),
                    }
                }
                (error, _) => error,
            })?;
        let body = read_bounded(response, MAX_SMALL_BODY_BYTES as u64)
            .await
            .map_err(|error| match error {
                Bounded::Exceeded(_) => self.registry_error(format!(
                    "its token answer is larger than {MAX_SMALL_BODY_BYTES} bytes"
                )),
                Bounded::Transport(e) => self.read_error("reading a pull token", &e),
            })?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body).map_err(|e| {
            self.registry_error(format!("its token answer is not a token document ({e})"))
        })?;
        answer
            .token
            .or(answer.access_token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| self.registry_error("its token answer holds no token".into()))
    }

    /// `response` if it succeeded, else `server`'s reason, read from at
    /// most [`MAX_SMALL_BODY_BYTES`] of its body.
    async fn success(
        &self,
        response: Response,
        what: &str,
        server: &str,
    ) -> Result<Response, OciError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let body = read_prefix(response, MAX_SMALL_BODY_BYTES).await;
        let reason = one_line(
            &distribution_errors(&body).unwrap_or_else(|| String::from_utf8_lossy(&body).into()),
        );
        let mut message = format!("asking for {what}, {server} answered {status}");
        if !reason.is_empty() {
            message.push_str(": ");
            message.push_str(&reason);
        }
        Err(self.registry_error(message))
    }

    fn registry_error(&self, message: String) -> OciError {
        OciError::Registry {
            reference: self.reference.to_string(),
            message,
        }
    }

    /// A body that broke off while being read: the registry was reached,
    /// so this is a registry error, with every cause.
    fn read_error(&self, doing: &str, error: &reqwest::Error) -> OciError {
        self.registry_error(format!("{doing}: {}", causes(error).0))
    }
}

enum Bounded {
    /// More than the bound arrived: how much had arrived by then.
    Exceeded(u64),
    Transport(reqwest::Error),
}

/// The whole body of `response`, refused once it passes `limit` bytes (or
/// at once when its declared length does).
async fn read_bounded(mut response: Response, limit: u64) -> Result<Vec<u8>, Bounded> {
    let declared = response.content_length().unwrap_or(0);
    if declared > limit {
        return Err(Bounded::Exceeded(declared));
    }
    // The declared length is the server's word: reserve no more than a
    // little of it before the bytes come.
    let mut body = Vec::with_capacity(declared.min(1 << 20) as usize);
    while let Some(chunk) = response.chunk().await.map_err(Bounded::Transport)? {
        let size = (body.len() + chunk.len()) as u64;
        if size > limit {
            return Err(Bounded::Exceeded(size));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Up to `limit` bytes of `response`'s body; the rest, and any error
/// reading it, are left (the status already says what went wrong).
async fn read_prefix(mut response: Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    body
}

/// How long a registry's reason may be in a message, in bytes.
const MAX_REASON_BYTES: usize = 300;

/// A registry's reason as one short line.
fn one_line(text: &str) -> String {
    nimbus_model::text::one_line(text, MAX_REASON_BYTES)
}

/// The distribution API's error document (`{"errors": [{"code",
/// "message"}]}`) in one line, if `body` is one.
fn distribution_errors(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Document {
        errors: Vec<Entry>,
    }
    #[derive(serde::Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let document: Document = serde_json::from_slice(body).ok()?;
    let lines: Vec<String> = document
        .errors
        .iter()
        .map(
            |entry| match (entry.code.is_empty(), entry.message.is_empty()) {
                (false, false) => format!("{}: {}", entry.code, entry.message),
                (false, true) => entry.code.clone(),
                _ => entry.message.clone(),
            },
        )
        .filter(|line| !line.is_empty())
        .collect();
    (!lines.is_empty()).then(|| lines.join("; "))
}

/// A failed HTTP exchange as [`OciError::Unreachable`], with every cause
/// (the request error alone says only "error sending request").
pub(super) fn transport_error(
    reference: &str,
    image: &Reference,
    request: &reqwest::Error,
) -> OciError {
    let (message, plain_http) = causes(request);
    OciError::Unreachable {
        reference: reference.to_string(),
        registry: image.resolve_registry().to_string(),
        message,
        plain_http,
    }
}

/// `error` and its causes in one line, and whether one of them says the
/// server answered TLS in plain HTTP.
fn causes(error: &reqwest::Error) -> (String, bool) {
    let mut message = String::new();
    let mut plain_http = false;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = cause {
        plain_http |= is_plain_http_answer(error);
        let text = error.to_string();
        if !text.is_empty() && !message.ends_with(&text) {
            if !message.is_empty() {
                message.push_str(": ");
            }
            message.push_str(&text);
        }
        cause = error.source();
    }
    (message, plain_http)
}

/// Whether `error` is a TLS handshake answered with something that is not
/// TLS (what reaching a plain-HTTP server over HTTPS gives), as opposed to
/// a TLS failure such as an untrusted certificate. I/O errors wrap their
/// cause (often an I/O error in turn) without handing it on as their
/// source: look inside them.
fn is_plain_http_answer(error: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return matches!(tls, rustls::Error::InvalidMessage(_));
    }
    match error
        .downcast_ref::<std::io::Error>()
        .and_then(std::io::Error::get_ref)
    {
        Some(inner) => is_plain_http_answer(inner),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{BearerRealm, Challenge, distribution_errors, one_line};
    use reqwest::header::{HeaderMap, HeaderValue, WWW_AUTHENTICATE};

    fn challenge(values: &[&[u8]]) -> Option<Challenge> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(WWW_AUTHENTICATE, HeaderValue::from_bytes(value).unwrap());
        }
        Challenge::read(&headers)
    }

    #[test]
    fn every_www_authenticate_header_is_read() {
        let bearer = Some(BearerRealm {
            realm: "https://auth.example/token".into(),
            service: Some("registry.example".into()),
        });
        // Basic first in a header of its own: the Bearer after it counts.
        assert_eq!(
            challenge(&[
                b"Basic realm=\"registry\"",
                b"Bearer realm=\"https://auth.example/token\",service=\"registry.example\"",
            ]),
            Some(Challenge {
                bearer_realm: bearer,
                basic: true
            })
        );
        // One that is not text or does not parse passes the next on.
        assert_eq!(
            challenge(&[b"\xffoops", b"Negotiate", b"Basic realm=x"]),
            Some(Challenge {
                bearer_realm: None,
                basic: true
            })
        );
        // The first Bearer realm is the one asked; a Bearer without one is
        // passed over.
        let first = challenge(&[
            b"Bearer scope=x, Bearer realm=\"https://a/t\"",
            b"Bearer realm=\"https://b/t\"",
        ])
        .and_then(|c| c.bearer_realm)
        .map(|b| b.realm);
        assert_eq!(first.as_deref(), Some("https://a/t"));
        assert_eq!(challenge(&[]), None);
        assert_eq!(challenge(&[b"Negotiate"]), Some(Challenge::default()));
    }

    #[test]
    fn reasons_are_one_short_line() {
        assert_eq!(one_line("  denied\r\n\x1b[31mred\t "), "denied [31mred");
        let long = one_line(&"ab ".repeat(500));
        assert_eq!(long.chars().count(), 300);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn distribution_error_documents_read_as_one_line() {
        assert_eq!(
            distribution_errors(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#
            )
            .as_deref(),
            Some("MANIFEST_UNKNOWN: manifest unknown")
        );
        assert_eq!(
            distribution_errors(br#"{"errors":[{"code":"DENIED"},{"message":"no"}]}"#).as_deref(),
            Some("DENIED; no")
        );
        assert_eq!(distribution_errors(b"<html>502</html>"), None);
        assert_eq!(distribution_errors(br#"{"errors":[]}"#), None);
    }
}
