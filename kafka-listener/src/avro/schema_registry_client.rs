//! A small client of the Confluent Schema Registry REST API: the calls a
//! serializer and a deserializer make (register, look up, latest version,
//! schema by id, compatibility and config).
//!
//! Source: Confluent, "Schema Registry API Reference"
//! (<https://docs.confluent.io/platform/current/schema-registry/develop/api.html>).
//! Requests carry `Accept`/`Content-Type: application/vnd.schemaregistry.v1+json`.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::config::redact_url;
use crate::error::Error;

/// The media type of registry requests and responses.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A failed registry call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaRegistryError {
    /// No answer: connection refused, DNS, TLS or timeout. Retryable.
    #[error("schema registry at {url} cannot be reached: {source}")]
    Unreachable {
        /// The registry URL (password redacted).
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// A subject (40401), version (40402) or schema id (40403) that the
    /// registry does not know.
    #[error("schema registry: not found (error code {code}): {message}")]
    NotFound {
        /// The registry's `error_code`.
        code: i64,
        /// The registry's message.
        message: String,
    },
    /// HTTP 409: the schema is incompatible with the subject's earlier
    /// schemas under its compatibility level (BACKWARD by default).
    #[error(
        "schema registry refused the schema for subject `{subject}` as incompatible: {message}"
    )]
    Incompatible {
        /// The subject.
        subject: String,
        /// The registry's message (which rule failed).
        message: String,
    },
    /// HTTP 422 with error code 42201: not a valid Avro schema.
    #[error("schema registry: invalid schema (error code {code}): {message}")]
    InvalidSchema {
        /// The registry's `error_code`.
        code: i64,
        /// The registry's message.
        message: String,
    },
    /// Any other error status (401, 403, 422 with another code such as
    /// 42203, an invalid compatibility level, ...); 5xx, 408 and 429 are
    /// retryable.
    #[error("schema registry answered HTTP {status} (error code {code}): {message}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The registry's `error_code` (the status when absent).
        code: i64,
        /// The registry's message or the body.
        message: String,
    },
    /// A 2xx answer whose body is not what the API describes.
    #[error("schema registry: unexpected answer: {0}")]
    InvalidResponse(String),
}

impl From<SchemaRegistryError> for Error {
    fn from(e: SchemaRegistryError) -> Self {
        Error::SchemaRegistry(Box::new(e))
    }
}

impl Error {
    /// The schema registry's error, when this is [`Error::SchemaRegistry`].
    pub fn registry_error(&self) -> Option<&SchemaRegistryError> {
        match self {
            Error::SchemaRegistry(e) => e.downcast_ref(),
            _ => None,
        }
    }
}

impl SchemaRegistryError {
    /// Whether trying again later may succeed (registry down or
    /// overloaded), as opposed to an answer that will not change.
    pub fn is_retryable(&self) -> bool {
        match self {
            SchemaRegistryError::Unreachable { .. } => true,
            SchemaRegistryError::Http { status, .. } => {
                *status >= 500 || *status == 408 || *status == 429
            }
            _ => false,
        }
    }
}

/// A schema registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RegisteredSchema {
    /// The subject.
    pub subject: String,
    /// The version within the subject, from 1.
    pub version: i32,
    /// The global schema id (what the wire format carries).
    pub id: u32,
    /// The schema as JSON text.
    pub schema: String,
}

/// A Schema Registry client: one or more base URLs tried in order, optional
/// basic auth, HTTPS through rustls. Cheap to clone.
///
/// # Examples
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use kafka_listener::avro::SchemaRegistryClient;
/// let client = SchemaRegistryClient::new("https://registry.example:8081")?
///     .with_basic_auth("api-key:api-secret");
/// let id = client.register("orders-value", r#""string""#).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SchemaRegistryClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    urls: Vec<Url>,
    auth: Option<(String, Option<String>)>,
    requests: AtomicU64,
}

impl fmt::Debug for SchemaRegistryClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchemaRegistryClient")
            .field("urls", &self.urls_redacted())
            .field("basic_auth", &self.inner.auth.as_ref().map(|(u, _)| u))
            .finish()
    }
}

impl SchemaRegistryClient {
    /// A client of the registry at `urls`: one URL or several separated by
    /// commas (tried in order when one cannot be reached). A URL may carry
    /// basic-auth credentials (`https://user:password@host:8081`).
    /// Connect timeout 5 s, request timeout 10 s.
    ///
    /// # Errors
    /// [`Error::Config`] for a URL that does not parse or is not http(s).
    pub fn new(urls: &str) -> Result<Self, Error> {
        let mut parsed = Vec::new();
        let mut auth = None;
        for raw in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
            let mut url = Url::parse(raw).map_err(|e| {
                Error::Config(format!("schema registry URL `{}`: {e}", redact_url(raw)))
            })?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(Error::Config(format!(
                    "schema registry URL `{}`: expected http:// or https://",
                    redact_url(raw)
                )));
            }
            if !url.username().is_empty() {
                auth = Some((url.username().to_owned(), url.password().map(str::to_owned)));
                let _ = url.set_username("");
                let _ = url.set_password(None);
            }
            if !url.path().ends_with('/') {
                let path = format!("{}/", url.path());
                url.set_path(&path);
            }
            parsed.push(url);
        }
        if parsed.is_empty() {
            return Err(Error::Config("schema registry URL is empty".into()));
        }
        let http = http_client(None)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                urls: parsed,
                auth,
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// Trusts the certificate authorities in `pem` (one or more PEM
    /// certificates) for `https://` URLs, besides the public web roots: a
    /// registry with a private CA (Confluent's `schema.registry.ssl.ca.location`).
    ///
    /// # Errors
    /// [`Error::Config`] when `pem` holds no valid certificate.
    pub fn with_ca_pem(self, pem: &[u8]) -> Result<Self, Error> {
        let inner = Inner {
            http: http_client(Some(pem))?,
            urls: self.inner.urls.clone(),
            auth: self.inner.auth.clone(),
            requests: AtomicU64::new(self.inner.requests.load(Ordering::Relaxed)),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Sends HTTP basic auth with `user_info` (`user:password`, Confluent's
    /// `basic.auth.user.info`), replacing credentials from the URL.
    pub fn with_basic_auth(self, user_info: &str) -> Self {
        let (user, password) = match user_info.split_once(':') {
            Some((u, p)) => (u.to_owned(), Some(p.to_owned())),
            None => (user_info.to_owned(), None),
        };
        let inner = Inner {
            http: self.inner.http.clone(),
            urls: self.inner.urls.clone(),
            auth: Some((user, password)),
            requests: AtomicU64::new(self.inner.requests.load(Ordering::Relaxed)),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The base URLs, without credentials.
    pub fn urls_redacted(&self) -> Vec<String> {
        self.inner.urls.iter().map(|u| u.to_string()).collect()
    }

    /// The number of HTTP requests sent so far (retries over several URLs
    /// count once each).
    pub fn requests_sent(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, SchemaRegistryError> {
        let mut last = None;
        for base in &self.inner.urls {
            let url = base
                .join(path)
                .map_err(|e| SchemaRegistryError::InvalidResponse(e.to_string()))?;
            let mut req = self
                .inner
                .http
                .request(method.clone(), url)
                .header(reqwest::header::ACCEPT, CONTENT_TYPE);
            if let Some((user, password)) = &self.inner.auth {
                req = req.basic_auth(user, password.as_ref());
            }
            if let Some(body) = &body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                    .body(body.to_string());
            }
            self.inner.requests.fetch_add(1, Ordering::Relaxed);
            let response = match req.send().await {
                Ok(r) => r,
                Err(source) => {
                    last = Some(SchemaRegistryError::Unreachable {
                        url: base.to_string(),
                        source,
                    });
                    continue;
                }
            };
            let status = response.status();
            let text = match response.text().await {
                Ok(t) => t,
                Err(source) => {
                    last = Some(SchemaRegistryError::Unreachable {
                        url: base.to_string(),
                        source,
                    });
                    continue;
                }
            };
            if status.is_success() {
                return serde_json::from_str(&text)
                    .map_err(|e| SchemaRegistryError::InvalidResponse(format!("{e}: {text}")));
            }
            return Err(error_of(status, &text, path));
        }
        Err(last.unwrap_or_else(|| SchemaRegistryError::InvalidResponse("no registry URL".into())))
    }

    /// `GET /schemas/ids/{id}`: the schema text of a global id.
    ///
    /// # Errors
    /// [`SchemaRegistryError::NotFound`] (40403) for an unknown id, or a
    /// transport error.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, SchemaRegistryError> {
        let v = self
            .call(Method::GET, &format!("schemas/ids/{id}"), None)
            .await?;
        string_field(&v, "schema")
    }

    /// `POST /subjects/{subject}/versions`: registers `schema` (Avro JSON)
    /// under `subject` and returns its global id; registering a schema the
    /// subject already has returns the existing id.
    ///
    /// # Errors
    /// [`SchemaRegistryError::Incompatible`] when the subject's compatibility
    /// level refuses it, [`SchemaRegistryError::InvalidSchema`], or a transport
    /// error.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, SchemaRegistryError> {
        let v = self
            .call(
                Method::POST,
                &format!("subjects/{}/versions", encode(subject)),
                Some(json!({ "schema": schema })),
            )
            .await?;
        id_field(&v)
    }

    /// `POST /subjects/{subject}`: the version and id of `schema` if the
    /// subject has it (Confluent's `auto.register.schemas=false`).
    ///
    /// # Errors
    /// [`SchemaRegistryError::NotFound`] (40401 subject, 40403 schema) or a
    /// transport error.
    pub async fn lookup(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<RegisteredSchema, SchemaRegistryError> {
        let v = self
            .call(
                Method::POST,
                &format!("subjects/{}", encode(subject)),
                Some(json!({ "schema": schema })),
            )
            .await?;
        serde_json::from_value(v).map_err(|e| SchemaRegistryError::InvalidResponse(e.to_string()))
    }

    /// `GET /subjects/{subject}/versions/latest` (Confluent's
    /// `use.latest.version=true`).
    ///
    /// # Errors
    /// [`SchemaRegistryError::NotFound`] (40401) for an unknown subject, or a
    /// transport error.
    pub async fn latest(&self, subject: &str) -> Result<RegisteredSchema, SchemaRegistryError> {
        let v = self
            .call(
                Method::GET,
                &format!("subjects/{}/versions/latest", encode(subject)),
                None,
            )
            .await?;
        serde_json::from_value(v).map_err(|e| SchemaRegistryError::InvalidResponse(e.to_string()))
    }

    /// `GET /subjects`: every subject.
    ///
    /// # Errors
    /// A transport error.
    pub async fn subjects(&self) -> Result<Vec<String>, SchemaRegistryError> {
        let v = self.call(Method::GET, "subjects", None).await?;
        serde_json::from_value(v).map_err(|e| SchemaRegistryError::InvalidResponse(e.to_string()))
    }

    /// `POST /compatibility/subjects/{subject}/versions/latest`: whether
    /// `schema` could be registered under `subject`.
    ///
    /// # Errors
    /// A transport error or an invalid schema.
    pub async fn is_compatible(
        &self,
        subject: &str,
        schema: &str,
    ) -> Result<bool, SchemaRegistryError> {
        let v = self
            .call(
                Method::POST,
                &format!("compatibility/subjects/{}/versions/latest", encode(subject)),
                Some(json!({ "schema": schema })),
            )
            .await?;
        v.get("is_compatible")
            .and_then(Value::as_bool)
            .ok_or_else(|| SchemaRegistryError::InvalidResponse(v.to_string()))
    }

    /// `PUT /config` (global, `subject` `None`) or `PUT /config/{subject}`:
    /// sets the compatibility level (`NONE`, `BACKWARD`, `FORWARD`, `FULL`,
    /// and their `_TRANSITIVE` forms).
    ///
    /// # Errors
    /// An unknown level (HTTP 422) or a transport error.
    pub async fn set_compatibility(
        &self,
        subject: Option<&str>,
        level: &str,
    ) -> Result<(), SchemaRegistryError> {
        let path = match subject {
            Some(s) => format!("config/{}", encode(s)),
            None => "config".to_owned(),
        };
        self.call(Method::PUT, &path, Some(json!({ "compatibility": level })))
            .await
            .map(drop)
    }
}

/// The HTTP client: connect timeout 5 s, request timeout 10 s, rustls with
/// the public web roots and the CAs in `ca_pem`.
fn http_client(ca_pem: Option<&[u8]>) -> Result<reqwest::Client, Error> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    if let Some(pem) = ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::Config(format!("schema registry CA certificates: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Config(
                "schema registry CA certificates: no PEM certificate found".into(),
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| Error::Config(format!("schema registry HTTP client: {e}")))
}

/// Percent-encodes a subject for a path segment.
fn encode(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for b in subject.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn string_field(v: &Value, name: &str) -> Result<String, SchemaRegistryError> {
    v.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| SchemaRegistryError::InvalidResponse(format!("no `{name}` in {v}")))
}

fn id_field(v: &Value) -> Result<u32, SchemaRegistryError> {
    v.get("id")
        .and_then(Value::as_u64)
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| SchemaRegistryError::InvalidResponse(format!("no `id` in {v}")))
}

fn error_of(status: StatusCode, text: &str, path: &str) -> SchemaRegistryError {
    let body: Option<Value> = serde_json::from_str(text).ok();
    let code = body
        .as_ref()
        .and_then(|b| b.get("error_code"))
        .and_then(Value::as_i64)
        .unwrap_or(i64::from(status.as_u16()));
    let message = body
        .as_ref()
        .and_then(|b| b.get("message"))
        .and_then(Value::as_str)
        .map_or_else(|| text.to_owned(), str::to_owned);
    match status.as_u16() {
        404 => SchemaRegistryError::NotFound { code, message },
        409 => SchemaRegistryError::Incompatible {
            subject: path
                .strip_prefix("subjects/")
                .and_then(|p| p.split('/').next())
                .unwrap_or(path)
                .to_owned(),
            message,
        },
        422 if code == 42201 => SchemaRegistryError::InvalidSchema { code, message },
        s => SchemaRegistryError::Http {
            status: s,
            code,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_move_from_the_url_to_basic_auth() {
        let c =
            SchemaRegistryClient::new("https://u:pw@registry:8081, http://b:8081/base").unwrap();
        assert_eq!(
            c.urls_redacted(),
            ["https://registry:8081/", "http://b:8081/base/"]
        );
        assert!(!format!("{c:?}").contains("pw"));
        assert!(SchemaRegistryClient::new("ftp://x").is_err());
        assert!(SchemaRegistryClient::new(" ").is_err());
    }

    #[test]
    fn registry_errors_map_to_kinds() {
        let e = error_of(
            StatusCode::NOT_FOUND,
            r#"{"error_code":40403,"message":"Schema not found"}"#,
            "schemas/ids/9",
        );
        assert!(matches!(
            e,
            SchemaRegistryError::NotFound { code: 40403, .. }
        ));
        assert!(!e.is_retryable());
        let e = error_of(
            StatusCode::CONFLICT,
            r#"{"error_code":409,"message":"no"}"#,
            "subjects/a-value/versions",
        );
        assert!(
            matches!(&e, SchemaRegistryError::Incompatible { subject, .. } if subject == "a-value")
        );
        assert!(error_of(StatusCode::SERVICE_UNAVAILABLE, "down", "x").is_retryable());
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
