//! The Nomad HTTP client: addresses (`http://`, `https://`, `unix:///absolute/path`), TLS from
//! the `NOMAD_*` family, the token sent only as `X-Nomad-Token` and only to the configured
//! origin, redirects followed only within that origin (at most 10), a deadline on every
//! request, and Nomad's plain-text errors turned into messages a user can act on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use crate::lease::LeaseError;

/// Where the agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `http://host:port` or `https://host:port` (the origin, without a trailing slash).
    Tcp {
        /// `http` or `https`.
        scheme: String,
        /// `host:port` (the port defaults to the scheme's).
        authority: String,
    },
    /// `unix:///absolute/path`.
    Unix(PathBuf),
}

impl Address {
    /// Parse and check an address; `origin` says where it came from (for messages).
    ///
    /// # Errors
    /// A scheme other than `http`, `https`, `unix`; user-info, a query, a fragment or a path in
    /// an http(s) address; a host or a relative path in a unix address.
    pub fn parse(text: &str, origin: &str) -> Result<Address, LeaseError> {
        let bad = |why: &str| {
            LeaseError::Config(format!(
                "the Nomad address `{}` (from {origin}) is not usable: {why}",
                redact(text)
            ))
        };
        if let Some(rest) = text.strip_prefix("unix://") {
            if !rest.starts_with('/') {
                return Err(bad(
                    "a unix address needs an absolute path after `unix://`, as `unix:///run/nomad.sock`, not a host or a relative path",
                ));
            }
            if rest.contains(['?', '#']) {
                return Err(bad("a unix address takes no query or fragment"));
            }
            return Ok(Address::Unix(PathBuf::from(rest)));
        }
        let url = url::Url::parse(text).map_err(|e| {
            bad(&format!(
                "{e}; give it with its scheme, as `http://127.0.0.1:4646`"
            ))
        })?;
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(bad(&format!(
                    "the scheme `{other}` is not supported: use `http://`, `https://` or `unix:///path`"
                )));
            }
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "it contains user-info; leasebox never sends credentials in an address (the token goes in the variable `nomad.token_env` names)",
            ));
        }
        if url.query().is_some() {
            return Err(bad("it contains a query (`?…`)"));
        }
        if url.fragment().is_some() {
            return Err(bad("it contains a fragment (`#…`)"));
        }
        if url.path() != "/" && !url.path().is_empty() {
            return Err(bad("it contains a path; give only scheme, host and port"));
        }
        let host = url.host_str().ok_or_else(|| bad("it has no host"))?;
        let port = url.port_or_known_default().unwrap_or(4646);
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_owned()
        };
        Ok(Address::Tcp {
            scheme: url.scheme().to_owned(),
            authority: format!("{host}:{port}"),
        })
    }

    /// The base URL requests go to (`http://127.0.0.1` for a unix socket).
    #[must_use]
    pub fn base(&self) -> String {
        match self {
            Address::Tcp { scheme, authority } => format!("{scheme}://{authority}"),
            Address::Unix(_) => "http://127.0.0.1".to_owned(),
        }
    }

    /// The address as the user would recognise it.
    #[must_use]
    pub fn shown(&self) -> String {
        match self {
            Address::Tcp { scheme, authority } => format!("{scheme}://{authority}"),
            Address::Unix(p) => format!("unix://{}", p.display()),
        }
    }

    /// Whether TLS is used.
    #[must_use]
    pub fn is_tls(&self) -> bool {
        matches!(self, Address::Tcp { scheme, .. } if scheme == "https")
    }
}

/// An address with anything after `@` in the authority hidden, for messages.
fn redact(text: &str) -> String {
    match (text.find("://"), text.find('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://…{}", &text[..s], &text[at..]),
        _ => text.to_owned(),
    }
}

/// TLS settings from `nomad.ca_cert`, `ca_path`, `client_cert`, `client_key`,
/// `tls_server_name`, `skip_verify`.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// A PEM file of CA certificates.
    pub ca_cert: Option<PathBuf>,
    /// A directory of PEM CA certificates.
    pub ca_path: Option<PathBuf>,
    /// A PEM client certificate (with `client_key`).
    pub client_cert: Option<PathBuf>,
    /// A PEM client key (with `client_cert`).
    pub client_key: Option<PathBuf>,
    /// The name to verify the server's certificate against.
    pub tls_server_name: Option<String>,
    /// Do not verify the server's certificate.
    pub skip_verify: bool,
}

/// An HTTP error from the agent: its status and plain-text body.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Status code.
    pub status: u16,
    /// The body, trimmed.
    pub body: String,
}

/// The outcome of a request that reached the agent, or did not.
#[derive(Debug)]
pub enum CallError {
    /// The agent answered with an error status.
    Api(ApiError),
    /// The agent could not be reached or did not answer in time.
    Transport(String),
}

/// A client for one agent address, with the token (if any) and the region and namespace every
/// request carries.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    address: Address,
    origin: String,
    token: Option<Arc<str>>,
    token_env: String,
    region: String,
    namespace: String,
    timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("region", &self.region)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `address` (from `origin`), sending the token from `token` (read from the
    /// variable `token_env` names) only to that address.
    ///
    /// # Errors
    /// TLS files cannot be read, or only one of client cert and key is set.
    pub fn new(
        address: Address,
        origin: String,
        token: Option<String>,
        token_env: String,
        region: String,
        namespace: String,
        tls: &TlsSettings,
    ) -> Result<Client, LeaseError> {
        // reqwest is built without a default TLS provider: use ring, once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls_config = if address.is_tls() {
            Some(Arc::new(super::tls::client_config(tls)?))
        } else {
            if tls.client_cert.is_some() != tls.client_key.is_some() {
                return Err(LeaseError::Config(
                    "set both `nomad.client_cert` and `nomad.client_key` (`NOMAD_CLIENT_CERT`/`NOMAD_CLIENT_KEY`), or neither".into(),
                ));
            }
            None
        };
        let first = address.base();
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 10 {
                return attempt.error("too many redirects (more than 10)");
            }
            let same = attempt.url().origin().ascii_serialization() == first;
            if same {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let mut builder = reqwest::Client::builder()
            .redirect(policy)
            .http1_only()
            .connect_timeout(Duration::from_secs(10))
            .no_proxy();
        if let Address::Unix(path) = &address {
            builder = builder.unix_socket(path.clone());
        }
        if let Some(cfg) = &tls_config {
            builder = builder.tls_backend_preconfigured((**cfg).clone());
        }
        let http = builder
            .build()
            .map_err(|e| LeaseError::Config(format!("cannot build the Nomad HTTP client: {e}")))?;
        Ok(Client {
            http,
            address,
            origin,
            token: token.filter(|t| !t.is_empty()).map(Arc::from),
            token_env,
            region,
            namespace,
            timeout: Duration::from_secs(30),
            tls: tls_config,
        })
    }

    /// The address.
    #[must_use]
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Where the address came from.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The token variable's name.
    #[must_use]
    pub fn token_env(&self) -> &str {
        &self.token_env
    }

    /// The token, for the exec upgrade (never printed).
    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Whether a token is set.
    #[must_use]
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The region every request names.
    #[must_use]
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The namespace every request names.
    #[must_use]
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The TLS config, for the exec websocket.
    pub(crate) fn tls(&self) -> Option<&Arc<rustls::ClientConfig>> {
        self.tls.as_ref()
    }

    /// Send a request and return status, index and body; errors for non-2xx.
    ///
    /// # Errors
    /// [`CallError::Transport`] when the agent cannot be reached in time,
    /// [`CallError::Api`] for an error status.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
        timeout: Option<Duration>,
    ) -> Result<(u64, Bytes), CallError> {
        let url = format!("{}{path}", self.address.base());
        let mut params: Vec<(&str, String)> = vec![
            ("region", self.region.clone()),
            ("namespace", self.namespace.clone()),
        ];
        params.extend(query.iter().cloned());
        let mut request = self
            .http
            .request(method, &url)
            .query(&params)
            .timeout(timeout.unwrap_or(self.timeout));
        if let Some(token) = &self.token {
            request = request.header("X-Nomad-Token", token.as_ref());
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.map_err(|e| self.transport(&e))?;
        let status = response.status();
        let index = response
            .headers()
            .get("x-nomad-index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let bytes = response.bytes().await.map_err(|e| self.transport(&e))?;
        if status.is_redirection() {
            return Err(CallError::Transport(format!(
                "Nomad at {} answered with a redirect to another address; leasebox does not follow it (your token stays with the address you configured)",
                self.address.shown()
            )));
        }
        if !status.is_success() {
            return Err(CallError::Api(ApiError {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).trim().to_owned(),
            }));
        }
        Ok((index, bytes))
    }

    fn transport(&self, e: &reqwest::Error) -> CallError {
        let shown = self.address.shown();
        let origin = &self.origin;
        let text = if e.is_timeout() {
            format!("Nomad at {shown} (from {origin}) did not answer in time")
        } else if e.is_connect() {
            let mut cause = String::new();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                cause = s.to_string();
                source = s.source();
            }
            format!(
                "cannot reach Nomad at {shown} (from {origin}): {cause}; is the agent running, and is `nomad.address` right?"
            )
        } else if e.is_redirect() {
            format!("Nomad at {shown} redirected too many times")
        } else {
            // The URL may carry nothing secret, but keep messages to the address.
            format!("request to Nomad at {shown} failed: {}", {
                let mut plain = String::new();
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    plain = s.to_string();
                    source = s.source();
                }
                plain
            })
        };
        CallError::Transport(text)
    }

    /// GET and decode JSON; returns the body and the `X-Nomad-Index`.
    ///
    /// # Errors
    /// As [`Client::call`], plus a body that does not decode.
    pub async fn get<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<(T, u64), CallError> {
        let (index, bytes) = self
            .call(reqwest::Method::GET, path, query, None, None)
            .await?;
        Ok((self.decode(path, &bytes)?, index))
    }

    fn decode<T: DeserializeOwned>(&self, path: &str, bytes: &[u8]) -> Result<T, CallError> {
        serde_json::from_slice(bytes).map_err(|e| {
            CallError::Transport(format!(
                "Nomad at {} sent an answer to `GET {path}` leasebox cannot read: {e}",
                self.address.shown()
            ))
        })
    }

    /// A blocking GET: waits for the index to pass `index` or `wait` to elapse.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub async fn get_blocking<T: DeserializeOwned>(
        &self,
        path: &str,
        index: u64,
        wait: Duration,
    ) -> Result<(T, u64), CallError> {
        let wait_ms = wait.as_millis().max(1);
        let query = [
            ("index", index.max(1).to_string()),
            ("wait", format!("{wait_ms}ms")),
        ];
        let (index, bytes) = self
            .call(
                reqwest::Method::GET,
                path,
                &query,
                None,
                Some(wait + wait / 16 + Duration::from_secs(10)),
            )
            .await?;
        Ok((self.decode(path, &bytes)?, index))
    }

    /// Who is asking, for messages that lead with the token: "the token in `NOMAD_TOKEN`", or
    /// "no token is set (`NOMAD_TOKEN` is empty or unset)".
    #[must_use]
    pub fn token_shown(&self) -> String {
        if self.token.is_some() {
            format!("the token in `{}`", self.token_env)
        } else {
            format!("no token is set (`{}` is empty or unset)", self.token_env)
        }
    }

    /// The exec capability `driver` needs: `alloc-node-exec` for `raw_exec` (no filesystem
    /// isolation, so Nomad asks for the node-wide capability), else `alloc-exec`.
    #[must_use]
    pub fn exec_capability(driver: &str) -> &'static str {
        if driver == "raw_exec" {
            "alloc-node-exec"
        } else {
            "alloc-exec"
        }
    }

    /// The message of an exec session the agent ended with `Permission denied`: the missing
    /// capability, the driver that needs it, the token variable.
    #[must_use]
    pub fn exec_denied(&self, driver: &str) -> String {
        let capability = Self::exec_capability(driver);
        let besides = if capability == "alloc-node-exec" {
            " (besides `alloc-exec`)"
        } else {
            ""
        };
        let who = if self.token.is_some() {
            format!("the token in `{}` lacks", self.token_env)
        } else {
            format!(
                "no token is set (`{}` is empty or unset), and anonymous access lacks",
                self.token_env
            )
        };
        format!(
            "Nomad at {} ended the exec session with `Permission denied`: {who} the `{capability}` \
             capability in namespace `{}`, which the `{driver}` driver needs{besides} to run commands \
             in a box; add it to the token's ACL policy (see docs/nomad.md), or check that the \
             node does not set `disable_remote_exec`",
            self.address.shown(),
            self.namespace
        )
    }

    /// The error for a token the cluster does not know (Nomad's `ACL token not found`).
    #[must_use]
    pub fn token_not_found(&self, what: &str) -> LeaseError {
        LeaseError::PermissionDenied(format!(
            "the token in `{}` is not known to Nomad at {}: it said `ACL token not found` ({what}); \
             check the secret ID in `{}`, and that the token was not deleted or expired",
            self.token_env,
            self.address.shown(),
            self.token_env
        ))
    }

    /// Turn a call error into a lease error, naming the capability a 403 most likely lacks.
    /// The message leads with the token: an unknown one is Nomad's `ACL token not found`; a
    /// missing one is said first.
    #[must_use]
    pub fn lease_error(&self, what: &str, capability: &str, e: CallError) -> LeaseError {
        match e {
            CallError::Transport(t) => LeaseError::Transport(format!("{what}: {t}")),
            CallError::Api(api) if api.body.contains("ACL token not found") => {
                self.token_not_found(what)
            }
            CallError::Api(api) if api.status == 403 || api.body.contains("Permission denied") => {
                let lacks = if self.token.is_some() {
                    "it lacks"
                } else {
                    "anonymous access lacks"
                };
                LeaseError::PermissionDenied(format!(
                    "{}: Nomad at {} refused ({}) while {what}: {lacks} {capability} in namespace `{}`; grant it in the token's ACL policy (see docs/nomad.md)",
                    self.token_shown(),
                    self.address.shown(),
                    api.body,
                    self.namespace
                ))
            }
            CallError::Api(api) if api.status == 404 => {
                LeaseError::Transport(format!("{what}: not found ({})", api.body))
            }
            CallError::Api(api) if api.status == StatusCode::BAD_REQUEST.as_u16() => {
                LeaseError::Config(format!("{what}: Nomad said: {}", api.body))
            }
            CallError::Api(api) => LeaseError::Transport(format!(
                "{what}: Nomad answered {}: {}",
                api.status, api.body
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            Address::parse("http://127.0.0.1:4646", "t").unwrap().base(),
            "http://127.0.0.1:4646"
        );
        assert_eq!(
            Address::parse("https://nomad.example:443/", "t")
                .unwrap()
                .base(),
            "https://nomad.example:443"
        );
        assert_eq!(
            Address::parse("http://localhost", "t").unwrap().base(),
            "http://localhost:80"
        );
        assert_eq!(
            Address::parse("unix:///run/nomad.sock", "t").unwrap(),
            Address::Unix("/run/nomad.sock".into())
        );
        for (bad, why) in [
            ("unix://relative/x.sock", "absolute path"),
            ("unix://host/x.sock", "absolute path"),
            ("http://user:pw@h:1", "user-info"),
            ("http://h:1/?x=1", "query"),
            ("http://h:1/#f", "fragment"),
            ("http://h:1/api", "path"),
            ("ftp://h", "scheme"),
            ("127.0.0.1:4646", "scheme"),
        ] {
            let e = Address::parse(bad, "flag").unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
    }
}
