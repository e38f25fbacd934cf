//! Bearer-token authentication, shared by the REST gateway and the admin gRPC service: the
//! cluster's admin token (`auth.admin_token` / `auth.admin_token_file`), compared in
//! constant time, and per-app tokens ([`app_token`]). No admin token configured: everything
//! is open (the single-node default).

pub mod app_token;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

/// The admin token a node requires, if any.
#[derive(Debug, Clone, Default)]
pub struct AdminToken(Option<String>);

impl AdminToken {
    pub fn new(token: Option<String>) -> AdminToken {
        AdminToken(token)
    }

    /// Whether a token is set (else every caller is the admin).
    pub fn is_set(&self) -> bool {
        self.0.is_some()
    }

    /// Whether an `Authorization` header value carries the token (always, with none set).
    pub fn admits(&self, authorization: Option<&str>) -> bool {
        let Some(token) = &self.0 else {
            return true;
        };
        let given = authorization.and_then(|h| h.strip_prefix("Bearer "));
        given.is_some_and(|g| same(g.as_bytes(), token.as_bytes()))
    }

    /// Refuses an admin gRPC request without the token (`UNAUTHENTICATED`).
    pub fn check<T>(&self, req: &Request<T>) -> Result<(), Status> {
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        if self.admits(header) {
            Ok(())
        } else {
            Err(Status::unauthenticated(
                "this admin operation needs the cluster's admin token (goschedctl --token or GOSCHED_ADMIN_TOKEN)",
            ))
        }
    }

    /// What a client sends: adds the token to every admin request.
    pub fn bearer(&self) -> Bearer {
        Bearer(
            self.0
                .as_ref()
                .and_then(|t| format!("Bearer {t}").parse().ok()),
        )
    }
}

/// Equal bytes, compared in time independent of where they differ.
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A client-side interceptor adding `authorization: Bearer <token>` (when there is one).
#[derive(Clone)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// An admin gRPC client that authenticates with the admin token.
pub type AdminClient =
    crate::proto::admin::admin_client::AdminClient<InterceptedService<Channel, Bearer>>;

/// An admin client on `channel`, sending `token`.
pub fn admin_client(channel: Channel, token: &AdminToken) -> AdminClient {
    crate::proto::admin::admin_client::AdminClient::with_interceptor(channel, token.bearer())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_is_admitted() {
        let open = AdminToken::default();
        assert!(open.admits(None));
        let t = AdminToken::new(Some("0123456789abcdef".into()));
        assert!(t.admits(Some("Bearer 0123456789abcdef")));
        for wrong in [
            None,
            Some("0123456789abcdef"),
            Some("Bearer 0123456789abcdeF"),
            Some("Bearer 0123456789abcdef0"),
            Some("Basic 0123456789abcdef"),
            Some("Bearer "),
        ] {
            assert!(!t.admits(wrong), "{wrong:?}");
        }
    }
}
