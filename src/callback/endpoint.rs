//! A callback URL as a call uses it — parsed, its user and password turned into Basic
//! authorization, its fragment dropped, as hyper's `Uri` — and the node's small cache of
//! them: the runs of a burst mostly share a few URLs, and parsing each twice per call was
//! a twentieth of the nodes' callback CPU.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use http::header::HeaderValue;

use super::guard::{self, Refused};

/// Most URLs kept; the cache starts over when full (a burst refills it at once).
const CACHED: usize = 1024;

/// Where a call goes.
pub struct Endpoint {
    /// What the guard checks (credentials and fragment removed).
    pub url: url::Url,
    /// The request's URI: `url`, as hyper takes it.
    pub uri: http::Uri,
    /// The URL's user and password as a Basic authorization value.
    pub basic: Option<HeaderValue>,
}

impl Endpoint {
    /// `raw` ready to call, or why it cannot be called.
    pub fn parse(raw: &str) -> Result<Endpoint, Refused> {
        Endpoint::of(guard::parse(raw)?)
    }

    /// `url` ready to call: a user and password written in it become Basic authorization
    /// (as reqwest and curl do); neither they nor a fragment reach the request line.
    pub fn of(mut url: url::Url) -> Result<Endpoint, Refused> {
        url.set_fragment(None);
        let mut basic = None;
        if !url.username().is_empty() || url.password().is_some() {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            let user = decode(url.username());
            let password = url.password().map(decode).unwrap_or_default();
            let _ = url.set_username("");
            let _ = url.set_password(None);
            use base64::Engine;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            basic = HeaderValue::from_str(&format!("Basic {token}"))
                .ok()
                .map(|mut value| {
                    value.set_sensitive(true);
                    value
                });
        }
        let uri =
            http::Uri::try_from(url.as_str()).map_err(|e| Refused(format!("invalid url: {e}")))?;
        Ok(Endpoint { url, uri, basic })
    }
}

/// Endpoints by the URL they were parsed from, at most [`CACHED`].
#[derive(Default)]
pub struct Endpoints(Mutex<HashMap<Box<str>, Arc<Endpoint>>>);

impl Endpoints {
    /// The endpoint of `raw`, parsed once while it stays cached. A URL that cannot be
    /// called is not kept.
    pub fn get(&self, raw: &str) -> Result<Arc<Endpoint>, Refused> {
        if let Some(found) = self.0.lock().unwrap().get(raw) {
            return Ok(found.clone());
        }
        let endpoint = Arc::new(Endpoint::parse(raw)?);
        let mut cached = self.0.lock().unwrap();
        if cached.len() >= CACHED {
            cached.clear();
        }
        cached.insert(raw.into(), endpoint.clone());
        Ok(endpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_parsed_once_and_the_cache_stays_bounded() {
        let endpoints = Endpoints::default();
        let a = endpoints.get("http://u:p@hooks.example/a#frag").unwrap();
        assert!(Arc::ptr_eq(
            &a,
            &endpoints.get("http://u:p@hooks.example/a#frag").unwrap()
        ));
        assert_eq!(a.uri.to_string(), "http://hooks.example/a");
        assert!(a.basic.is_some());
        assert!(endpoints.get("not a url").is_err());
        for i in 0..CACHED + 10 {
            endpoints.get(&format!("http://hooks.example/{i}")).unwrap();
        }
        assert!(endpoints.0.lock().unwrap().len() <= CACHED);
    }
}
