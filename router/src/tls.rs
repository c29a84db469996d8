//! TLS for the router's outbound connections: the subgraph HTTP client, the JWKS client and the
//! subscription WebSocket client all use this one rustls setup (ring crypto, the webpki roots,
//! rustls' safe protocol versions), so they cannot drift apart.

use std::sync::Arc;

use hyper_rustls::{ConfigBuilderExt, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;

/// The client configuration every outbound TLS connection uses.
pub(crate) fn client_config() -> Result<rustls::ClientConfig, rustls::Error> {
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_webpki_roots()
    .with_no_client_auth())
}

/// An HTTP/1.1 connector over `http` that speaks TLS to `https://` URLs and plain TCP to
/// `http://` ones.
pub(crate) fn https_connector(
    mut http: HttpConnector,
) -> Result<HttpsConnector<HttpConnector>, rustls::Error> {
    http.enforce_http(false);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config()?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_client_config_builds_with_roots_and_no_alpn() {
        let config = super::client_config().unwrap();
        assert!(config.alpn_protocols.is_empty());
        super::https_connector(hyper_util::client::legacy::connect::HttpConnector::new()).unwrap();
    }
}
