//! Where callbacks may go (the SSRF guard). A scheduler calls URLs on its users' behalf, so
//! by default it refuses addresses inside the network it runs in: loopback, link-local
//! (cloud metadata at 169.254.169.254), private, shared (CGNAT), multicast, unspecified and
//! broadcast ranges, and the cluster's own REST and gRPC addresses (always, even when
//! allowed). `callbacks.allow` names CIDRs and host names a deployment does want called.
//!
//! Checked twice: at create, on the URL as written (an IP literal in a refused range is a
//! 400), and at every call, on the addresses the host name resolves to — the connection
//! goes only to addresses that passed ([`GuardedResolver`]), so a name that resolves to a
//! public address when created and to 127.0.0.1 when called (DNS rebinding) gets nowhere.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use futures::future::BoxFuture;
use hyper_util::client::legacy::connect::dns::Name;
use ipnet::IpNet;

/// Why a callback address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("callback refused: {0}")]
pub struct Refused(pub String);

pub struct Guard {
    allowed_nets: Vec<IpNet>,
    allowed_hosts: HashSet<String>,
    /// The cluster's own REST and gRPC addresses: never called back.
    own: HashSet<SocketAddr>,
}

impl Guard {
    /// A guard allowing `allow` (CIDRs, addresses or host names) and refusing `own`.
    pub fn new(
        allow: &[String],
        own: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Guard, String> {
        let (mut allowed_nets, mut allowed_hosts) = (vec![], HashSet::new());
        for entry in allow {
            let entry = entry.trim();
            if let Ok(net) = entry.parse::<IpNet>() {
                allowed_nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                allowed_nets.push(IpNet::from(ip));
            } else if is_host_name(entry) {
                allowed_hosts.insert(entry.to_ascii_lowercase());
            } else {
                return Err(format!(
                    "callbacks.allow entry {entry:?} is neither a CIDR, an address nor a host name"
                ));
            }
        }
        Ok(Guard {
            allowed_nets,
            allowed_hosts,
            own: own.into_iter().collect(),
        })
    }

    /// A guard that refuses nothing but nothing of the cluster's own (unit tests).
    pub fn allowing_all() -> Guard {
        Guard::new(&["0.0.0.0/0".into(), "::/0".into()], []).expect("valid nets")
    }

    /// Checks a URL as written: http or https, and a host that is not an address this
    /// node refuses. Host names pass here; their addresses are checked when called.
    pub fn check_url(&self, url: &str) -> Result<(), Refused> {
        self.check_parsed(&parse(url)?)
    }

    /// [`Guard::check_url`] of a URL parsed already.
    pub fn check_parsed(&self, url: &url::Url) -> Result<(), Refused> {
        self.check_literal(&Target::of_parsed(url)?)
    }

    /// An address written in the URL is checked now; a host name passes.
    fn check_literal(&self, target: &Target) -> Result<(), Refused> {
        match target.ip {
            Some(ip) => self.check_addr(SocketAddr::new(ip, target.port)),
            None => Ok(()),
        }
    }

    /// Whether `addr` may be called: not one of the cluster's own, and outside the refused
    /// ranges unless allowed.
    pub fn check_addr(&self, addr: SocketAddr) -> Result<(), Refused> {
        let ip = canonical(addr.ip());
        if self.own.contains(&SocketAddr::new(ip, addr.port())) || self.own.contains(&addr) {
            return Err(Refused(format!("{addr} is an address of this cluster")));
        }
        match refused_range(ip) {
            Some(range) if !self.allowed_nets.iter().any(|n| n.contains(&ip)) => {
                Err(Refused(format!("{ip} is {range} (not in callbacks.allow)")))
            }
            _ => Ok(()),
        }
    }

    /// Checks a URL before a call: as [`Guard::check_url`], and a host name on a port of
    /// this cluster must not resolve to one of its addresses (names on other ports are
    /// checked by [`GuardedResolver`] when connecting).
    pub async fn check_call(&self, url: &url::Url) -> Result<(), Refused> {
        let target = Target::of_parsed(url)?;
        self.check_literal(&target)?;
        let Target { host, port, ip } = target;
        if ip.is_some() || !self.own.iter().any(|a| a.port() == port) {
            return Ok(());
        }
        let found = tokio::net::lookup_host((host.as_str(), port)).await;
        for addr in found.into_iter().flatten() {
            if self
                .own
                .contains(&SocketAddr::new(canonical(addr.ip()), port))
            {
                return Err(Refused(format!(
                    "{host}:{port} is an address of this cluster"
                )));
            }
        }
        Ok(())
    }

    fn allows_host(&self, host: &str) -> bool {
        self.allowed_hosts.contains(&host.to_ascii_lowercase())
    }
}

/// `url` parsed, or why it cannot be.
pub fn parse(url: &str) -> Result<url::Url, Refused> {
    url::Url::parse(url).map_err(|e| Refused(format!("invalid url: {e}")))
}

/// Where a URL points: its host (an address when written as one) and port.
struct Target {
    host: String,
    port: u16,
    ip: Option<IpAddr>,
}

impl Target {
    /// The target of an http or https URL with a host; anything else is refused.
    fn of_parsed(parsed: &url::Url) -> Result<Target, Refused> {
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Refused(format!(
                "scheme {} is not http or https",
                parsed.scheme()
            )));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| Refused("the url has no host".into()))?;
        let ip = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok();
        Ok(Target {
            host: host.to_string(),
            port: parsed.port_or_known_default().unwrap_or(80),
            ip,
        })
    }
}

/// An IPv4 address written as IPv6 (`::ffff:10.0.0.1`) is judged as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The refused range `ip` lies in, if any.
fn refused_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_link_local() {
                Some("a link-local address (cloud metadata lives there)")
            } else if v4.is_private() {
                Some("a private address")
            } else if a == 100 && (64..128).contains(&b) {
                Some("a shared (CGNAT) address")
            } else if v4.is_multicast() {
                Some("a multicast address")
            } else if v4.is_broadcast() || a == 0 {
                Some("not a unicast host address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("not a unicast host address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private (unique local) address")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else {
                None
            }
        }
    }
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Resolves callback host names and keeps only addresses the guard allows (all of them for
/// an allowed host name); a name with none left fails the call, naming why. (An address
/// written in the URL is not resolved: [`Guard::check_call`] checked it.)
#[derive(Clone)]
pub struct GuardedResolver(pub Arc<Guard>);

impl GuardedResolver {
    /// The addresses of `host` the guard lets a call connect to.
    pub async fn resolve(self, host: String) -> Result<Vec<SocketAddr>, Refused> {
        let guard = self.0;
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
            .await
            .map_err(|_| Refused(format!("host {host} does not resolve")))?
            .collect();
        if guard.allows_host(&host) {
            return Ok(found);
        }
        let mut why = None;
        let passed: Vec<SocketAddr> = found
            .into_iter()
            .filter(|a| match guard.check_addr(*a) {
                Ok(()) => true,
                Err(e) => {
                    why.get_or_insert(e);
                    false
                }
            })
            .collect();
        if passed.is_empty() {
            let why = why.map_or_else(|| "no address".to_string(), |e| e.0);
            return Err(Refused(format!("host {host} resolves to {why}")));
        }
        Ok(passed)
    }
}

/// The resolver of the callback client's connector.
impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Refused;
    type Future = BoxFuture<'static, Result<Self::Response, Refused>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Refused>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let resolver = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move { resolver.resolve(host).await.map(Vec::into_iter) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(allow: &[&str]) -> Guard {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        Guard::new(&allow, ["127.0.0.1:8081".parse().unwrap()]).unwrap()
    }

    #[test]
    fn addresses_inside_the_network_are_refused_unless_allowed() {
        let g = guard(&[]);
        for url in [
            "http://127.0.0.1:9000/cb",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/",
            "http://172.16.5.4/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://0.0.0.0:80/",
            "http://224.0.0.1/",
            "http://[::1]:9000/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[::ffff:10.0.0.1]/",
            "file:///etc/passwd",
            "gopher://example.com/",
        ] {
            assert!(g.check_url(url).is_err(), "{url} passed");
        }
        for url in [
            "http://93.184.216.34/",
            "https://example.com/cb",
            "http://[2606:4700::1]/",
        ] {
            assert_eq!(g.check_url(url), Ok(()), "{url}");
        }
        let said = g
            .check_url("http://169.254.169.254/")
            .unwrap_err()
            .to_string();
        assert!(
            said.contains("link-local") && said.contains("callbacks.allow"),
            "{said}"
        );
    }

    #[test]
    fn the_allow_list_opens_ranges_but_never_the_cluster_itself() {
        let g = guard(&["127.0.0.1/32", "10.1.0.0/16", "hooks.internal"]);
        assert_eq!(g.check_url("http://127.0.0.1:9000/cb"), Ok(()));
        assert_eq!(g.check_url("http://10.1.2.3/cb"), Ok(()));
        assert!(g.check_url("http://10.2.0.1/cb").is_err());
        let own = g
            .check_url("http://127.0.0.1:8081/goscheduler/apps")
            .unwrap_err();
        assert!(own.0.contains("this cluster"), "{own}");
        assert!(g.allows_host("HOOKS.internal"));
        assert!(Guard::new(&["not a cidr/99".into()], []).is_err());
    }

    #[tokio::test]
    async fn a_name_resolving_inside_the_network_is_refused_when_called() {
        let resolver = GuardedResolver(Arc::new(guard(&[])));
        let refused = resolver.resolve("localhost".into()).await;
        let e = refused.expect_err("localhost refused");
        assert!(e.to_string().contains("loopback"), "{e}");
        let allowed = GuardedResolver(Arc::new(guard(&["localhost"])));
        assert!(allowed.resolve("localhost".into()).await.is_ok());
    }
}
