//! The apps this node's meta replica holds, kept decoded: every create names its app, and
//! reading it from RocksDB and decoding it each time cost about 2 % of a node's CPU under
//! single creates. An entry serves only while the meta state machine has not been written
//! since it was read (its generation), so the cache never answers older than the replica.
//! Unknown apps are not kept, and at most `MAX_APPS` are, so no client can grow it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::meta::app::App;

/// Most apps kept at once; past it the cache starts over.
const MAX_APPS: usize = 4096;

#[derive(Default)]
pub struct AppCache {
    held: Mutex<Held>,
}

#[derive(Default)]
struct Held {
    /// The meta state machine's generation the apps were read at.
    generation: u64,
    apps: HashMap<String, Arc<App>>,
}

impl AppCache {
    /// `app_id`'s app: kept if read at `generation` (the state machine's now, read before
    /// calling), otherwise `read` and kept.
    pub fn get<E>(
        &self,
        generation: u64,
        app_id: &str,
        read: impl FnOnce() -> Result<Option<App>, E>,
    ) -> Result<Option<Arc<App>>, E> {
        {
            let mut held = self.held.lock().expect("app cache");
            // Generations only move on: a caller that read an older one (a write came
            // since) must not throw away what was read after it. Serving it an entry
            // read at a newer generation answers no older than its replica.
            if held.generation < generation {
                held.apps.clear();
                held.generation = generation;
            }
            if let Some(app) = held.apps.get(app_id) {
                return Ok(Some(app.clone()));
            }
        }
        let Some(app) = read()?.map(Arc::new) else {
            return Ok(None);
        };
        let mut held = self.held.lock().expect("app cache");
        if held.generation == generation {
            if held.apps.len() >= MAX_APPS {
                held.apps.clear();
            }
            held.apps.insert(app_id.to_string(), app.clone());
        }
        Ok(Some(app))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn app(id: &str, partitions: u32) -> App {
        App {
            app_id: id.into(),
            partitions,
            active: true,
            configuration: Default::default(),
            signing: None,
            tokens: Vec::new(),
        }
    }

    #[test]
    fn an_app_is_read_again_once_the_state_machine_was_written() {
        let cache = AppCache::default();
        let reads = Cell::new(0);
        let read = |p| {
            reads.set(reads.get() + 1);
            Ok::<_, ()>(Some(app("a", p)))
        };
        assert_eq!(
            cache.get(1, "a", || read(4)).unwrap().unwrap().partitions,
            4
        );
        assert_eq!(
            cache.get(1, "a", || read(5)).unwrap().unwrap().partitions,
            4
        );
        assert_eq!(reads.get(), 1, "kept while generation 1 holds");
        assert_eq!(
            cache.get(2, "a", || read(5)).unwrap().unwrap().partitions,
            5
        );
        assert_eq!(reads.get(), 2);
        // A caller still at generation 1 keeps what generation 2 read, and what it reads
        // itself (possibly older) is not kept.
        let other = cache.get(1, "b", || Ok::<_, ()>(Some(app("b", 1))));
        assert_eq!(other.unwrap().unwrap().app_id, "b");
        assert_eq!(
            cache.get(1, "a", || read(6)).unwrap().unwrap().partitions,
            5
        );
        assert_eq!(reads.get(), 2);
        assert!(!cache.held.lock().unwrap().apps.contains_key("b"));
    }

    #[test]
    fn unknown_apps_and_failed_reads_are_not_kept() {
        let cache = AppCache::default();
        assert!(cache.get(1, "x", || Ok::<_, ()>(None)).unwrap().is_none());
        assert!(cache.get(1, "x", || Err(())).is_err());
        let found = cache.get(1, "x", || Ok::<_, ()>(Some(app("x", 1))));
        assert_eq!(found.unwrap().unwrap().app_id, "x");
        assert!(cache.held.lock().unwrap().apps.len() == 1);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = AppCache::default();
        for i in 0..MAX_APPS + 10 {
            let id = format!("app-{i}");
            cache
                .get(1, &id, || Ok::<_, ()>(Some(app(&id, 1))))
                .unwrap();
        }
        assert!(cache.held.lock().unwrap().apps.len() <= MAX_APPS);
    }
}
