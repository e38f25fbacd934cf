//! The timer's decisions, as pure functions of the clock's reading: which seconds are due
//! for claiming, when to look next, whether a run must not fire (MISS), and how long a
//! claim lasts. The timer reads its [`Clock`] once per look and hands the reading here, so
//! tests drive these with any time they like.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::callback::policy;
use crate::callback::signature::Signer;
use crate::meta::app::{App, AppConfiguration};
use crate::schedule::Schedule;

/// Where the timer reads the time (epoch milliseconds).
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> u64;
}

/// The node's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        crate::schedule::time::now_ms()
    }
}

/// A clock that moves only when told (tests).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    pub fn at(ms: u64) -> Self {
        ManualClock(AtomicU64::new(ms))
    }

    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// At `now`, runs due up to this second (inclusive) are claimed: claims commit `ahead` ms
/// before their second, so the call goes out on it.
pub fn claim_until(now_ms: u64, ahead_ms: u64) -> i64 {
    ((now_ms + ahead_ms) / 1000) as i64
}

/// When to look again after a look at `now` found nothing more: `ahead` before the next
/// second not yet claimable.
pub fn next_look_ms(now_ms: u64, ahead_ms: u64) -> u64 {
    ((now_ms + ahead_ms) / 1000 + 1) * 1000 - ahead_ms
}

/// Why `run` must not fire when found at `now` (it becomes MISS), if it must not.
pub fn why_not_fire(app: Option<&App>, run: &Schedule, now_ms: u64) -> Option<String> {
    let Some(app) = app else {
        return Some(format!("app {} is not registered", run.app_id));
    };
    if !app.active {
        return Some(format!(
            "app {} was deactivated when the run fell due",
            app.app_id
        ));
    }
    let window = app.configuration.misfire_window as u64;
    let due = run.due_time().max(0) as u64;
    (now_ms / 1000 > due + window).then(|| {
        format!(
            "not fired within the app's misfireWindow of {window}s: due at {due}, found at {}",
            now_ms / 1000
        )
    })
}

/// Why a claimed run must not be called again (its retries stop), if it must not: `now`
/// is the run as the shard has it now (None: deleted), `claimed` as it was claimed, `app`
/// its app now.
pub fn why_not_retry(
    now: Option<&Schedule>,
    claimed: &Schedule,
    app: Option<&App>,
) -> Option<String> {
    let Some(now) = now else {
        return Some(format!("schedule {} was deleted", claimed.id));
    };
    if now.status != crate::schedule::Status::Scheduled {
        return Some(format!("the run already ended {}", now.status.name()));
    }
    if now.claim != claimed.claim {
        return Some("the run was claimed again (this claim expired)".into());
    }
    match app {
        None => Some(format!("app {} is no longer registered", claimed.app_id)),
        Some(app) if !app.active => Some(format!("app {} was deactivated", app.app_id)),
        Some(_) => None,
    }
}

/// The app configuration a run fires under (defaults for an app no longer known).
pub fn config_of(apps: &HashMap<String, Option<App>>, run: &Schedule) -> AppConfiguration {
    apps.get(&run.app_id)
        .and_then(|a| a.as_ref())
        .map(|a| a.configuration)
        .unwrap_or_default()
}

/// The signers of `apps`, one per app with secrets, made once for all its runs of a batch.
pub fn signers_of(apps: &HashMap<String, Option<App>>) -> HashMap<&str, Arc<Signer>> {
    apps.iter()
        .filter_map(|(id, app)| {
            let signing = app.as_ref()?.signing.as_ref()?;
            Some((id.as_str(), Arc::new(Signer::new(signing))))
        })
        .collect()
}

/// Until when a claim taken at `now` on `runs` holds: the latest run's second (or now) +
/// its app's whole retry budget, + `margin` for a cut-off claimer to report.
pub fn claim_deadline_ms(
    runs: &[Schedule],
    apps: &HashMap<String, Option<App>>,
    now_ms: u64,
    margin_ms: u64,
) -> u64 {
    runs.iter()
        .map(|r| {
            let due_ms = r.due_time().max(0) as u64 * 1000;
            due_ms.max(now_ms) + policy::attempts_budget_ms(&config_of(apps, r))
        })
        .max()
        .unwrap_or(now_ms)
        + margin_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::Status;

    const DUE: i64 = 1_704_067_200;
    const AHEAD: u64 = 300;

    fn run_due(at: i64) -> Schedule {
        let mut run = crate::schedule::one_time_for_test(uuid::Uuid::from_u128(1), at);
        (run.payload, run.created_at_ms) = (String::new(), 0);
        run.callback.url = "http://127.0.0.1:1/".into();
        run
    }

    fn app(active: bool, misfire_window: u32) -> App {
        let mut app = App {
            app_id: "revamp".into(),
            partitions: 1,
            active,
            configuration: Default::default(),
            signing: None,
            tokens: vec![],
        };
        app.configuration.misfire_window = misfire_window as _;
        app
    }

    #[test]
    fn a_run_is_claimed_ahead_of_its_second_fires_in_its_window_then_misses() {
        let clock = ManualClock::at(DUE as u64 * 1000 - 1000);
        let run = run_due(DUE);
        let app = app(true, 2);
        // A second before: not yet claimable; the next look is `AHEAD` before the second.
        assert!(claim_until(clock.now_ms(), AHEAD) < DUE);
        assert_eq!(
            next_look_ms(clock.now_ms(), AHEAD),
            DUE as u64 * 1000 - AHEAD
        );
        // At the look: claimable, and it may fire.
        clock.advance(1000 - AHEAD);
        assert_eq!(claim_until(clock.now_ms(), AHEAD), DUE);
        assert_eq!(why_not_fire(Some(&app), &run, clock.now_ms()), None);
        // Found late but within the misfire window: still fires.
        clock.advance(AHEAD + 2000);
        assert_eq!(why_not_fire(Some(&app), &run, clock.now_ms()), None);
        // Past it: MISS, naming the window.
        clock.advance(1000);
        let why = why_not_fire(Some(&app), &run, clock.now_ms()).unwrap();
        assert!(why.contains("misfireWindow of 2s"), "{why}");
        // An inactive or unknown app never fires.
        assert!(why_not_fire(Some(&self::app(false, 300)), &run, DUE as u64 * 1000).is_some());
        assert!(why_not_fire(None, &run, DUE as u64 * 1000).is_some());
    }

    #[test]
    fn a_claim_lasts_the_retry_budget_and_the_margin_past_its_latest_run() {
        let runs = vec![run_due(DUE), run_due(DUE + 5)];
        let apps = HashMap::from([("revamp".to_string(), Some(app(true, 300)))]);
        let budget = policy::attempts_budget_ms(&AppConfiguration::default());
        let now = DUE as u64 * 1000;
        assert_eq!(
            claim_deadline_ms(&runs, &apps, now, 10_000),
            (DUE as u64 + 5) * 1000 + budget + 10_000
        );
        // Runs found late count from now.
        let late = now + 60_000;
        assert_eq!(claim_deadline_ms(&runs, &apps, late, 0), late + budget);
    }

    #[test]
    fn a_retry_is_made_only_while_the_claimed_run_is_still_wanted() {
        let claim = |node, deadline_ms| crate::schedule::run::Claim {
            node,
            deadline_ms,
            first_attempt: 1,
            attempts: 3,
        };
        let mut claimed = run_due(DUE);
        claimed.claim = Some(claim(1, 5_000));
        let (on, off) = (app(true, 60), app(false, 60));
        let same = claimed.clone();
        assert_eq!(why_not_retry(Some(&same), &claimed, Some(&on)), None);
        let why = |now: Option<&Schedule>, app: Option<&App>| {
            why_not_retry(now, &claimed, app).unwrap_or_default()
        };
        assert!(why(None, Some(&on)).contains("deleted"));
        assert!(why(Some(&same), Some(&off)).contains("deactivated"));
        assert!(why(Some(&same), None).contains("no longer registered"));
        let mut reclaimed = claimed.clone();
        reclaimed.claim = Some(claim(2, 9_000));
        assert!(why(Some(&reclaimed), Some(&on)).contains("claimed again"));
        let mut ended = claimed.clone();
        ended.status = Status::Success;
        assert!(why(Some(&ended), Some(&on)).contains("ended SUCCESS"));
    }
}
