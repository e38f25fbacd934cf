//! Before each retry of a claimed run, the dispatcher asks whether the run is still wanted:
//! the run as this node's replica of its shard has it now (this node claimed it, so it
//! applied the claim), and its app read linearizably from the meta group. A run deleted,
//! finished or claimed again meanwhile, or whose app was deactivated, is not called again.

use futures::future::BoxFuture;
use futures::FutureExt;

use super::plan::why_not_retry;
use crate::callback::Recheck;
use crate::ids::GroupId;
use crate::router::Router;
use crate::schedule::Schedule;
use crate::shard::keys;

pub struct RunRecheck {
    pub router: Router,
}

impl RunRecheck {
    async fn check(&self, group: GroupId, run: &Schedule) -> Result<(), String> {
        let Some(g) = self.router.groups().get(group) else {
            return Ok(());
        };
        let key = keys::schedule(&run.id);
        let now = match g.read_applied(move |r| r.get::<Schedule>(&key)).await {
            Ok(now) => now,
            Err(e) => {
                // Unknown is not "unwanted": the retry goes ahead.
                tracing::warn!(run = %run.id, "re-reading the run before a retry: {e}");
                return Ok(());
            }
        };
        let app = match self.router.app(&run.app_id).await {
            Ok(app) => app,
            Err(e) => {
                tracing::warn!(run = %run.id, "reading app {} before a retry: {e}", run.app_id);
                return Ok(());
            }
        };
        match why_not_retry(now.as_ref(), run, app.as_ref()) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

impl Recheck for RunRecheck {
    fn still_wanted<'a>(
        &'a self,
        group: GroupId,
        run: &'a Schedule,
    ) -> BoxFuture<'a, Result<(), String>> {
        self.check(group, run).boxed()
    }
}
