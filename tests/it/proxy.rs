//! A TCP proxy the test owns, one per directed link between two nodes, so a test can cut
//! and heal links. A link is open, cut (open connections dropped, new ones refused: the
//! peer sees fast errors) or black-holed (nothing passes and nothing is refused: the peer's
//! calls hang until their timeouts, as when a firewall drops packets), or swallowing
//! (requests reach the target, its answers are thrown away: "did it run?").

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const OPEN: u8 = 0;
const CUT: u8 = 1;
const BLACKHOLE: u8 = 2;
const SWALLOW: u8 = 3;

pub struct Proxy {
    pub addr: String,
    mode: Arc<AtomicU8>,
    /// Bumped on every change of mode: open connections watch it.
    generation: watch::Sender<u64>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards every connection to `target`.
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let mode = Arc::new(AtomicU8::new(OPEN));
        let (generation, _) = watch::channel(0u64);
        let proxy = Proxy {
            addr,
            mode: mode.clone(),
            generation: generation.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if mode.load(Ordering::SeqCst) == CUT {
                    drop(inbound);
                    continue;
                }
                let (target, mode) = (target.clone(), mode.clone());
                let changed = generation.subscribe();
                tokio::spawn(relay(inbound, target, mode, changed));
            }
        });
        proxy
    }

    fn set(&self, mode: u8) {
        if self.mode.swap(mode, Ordering::SeqCst) != mode {
            self.generation.send_modify(|g| *g += 1);
        }
    }

    /// Drops every open connection of this link and refuses new ones.
    pub fn cut(&self) {
        self.set(CUT);
    }

    /// Passes nothing and refuses nothing: calls over this link hang.
    pub fn blackhole(&self) {
        self.set(BLACKHOLE);
    }

    /// Passes requests to the target and throws its answers away.
    pub fn swallow(&self) {
        self.set(SWALLOW);
    }

    pub fn heal(&self) {
        self.set(OPEN);
    }
}

/// Relays one connection while the link is open: holds it silent while black-holed (and
/// resumes after, as TCP would once a dropping rule is lifted), drops it when cut.
async fn relay(
    inbound: TcpStream,
    target: String,
    mode: Arc<AtomicU8>,
    mut changed: watch::Receiver<u64>,
) {
    // A link black-holed before the connection reached the target: wait for a change.
    if !passing(&mode, &mut changed).await {
        return;
    }
    let Ok(outbound) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_target, mut to_target) = outbound.into_split();
    let (mut up, mut down) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    loop {
        if !passing(&mode, &mut changed).await {
            return;
        }
        tokio::select! {
            n = from_client.read(&mut up) => match n {
                Ok(n) if n > 0 => {
                    // A cut may have come while this read waited (select picks either
                    // ready branch): nothing crosses a cut link.
                    if mode.load(Ordering::SeqCst) == CUT
                        || to_target.write_all(&up[..n]).await.is_err()
                    {
                        return;
                    }
                }
                _ => return,
            },
            n = from_target.read(&mut down) => match n {
                Ok(n) if n > 0 => {
                    if mode.load(Ordering::SeqCst) != SWALLOW
                        && to_client.write_all(&down[..n]).await.is_err()
                    {
                        return;
                    }
                }
                _ => return,
            },
            r = changed.changed() => if r.is_err() { return },
        }
    }
}

/// Waits while the link is black-holed; whether it passes bytes now (false: it was cut).
async fn passing(mode: &AtomicU8, changed: &mut watch::Receiver<u64>) -> bool {
    loop {
        match mode.load(Ordering::SeqCst) {
            CUT => return false,
            BLACKHOLE => {
                if changed.changed().await.is_err() {
                    return false;
                }
            }
            _ => return true,
        }
    }
}
