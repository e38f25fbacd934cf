//! Integration tests: real node processes, real RocksDB, real gRPC and HTTP.

mod amnesia;
mod app_state;
mod apps_cluster;
mod bad_input;
mod bulk;
mod chaos;
mod cron_reference;
mod crons;
mod firing;
mod firing_failover;
mod forwarding;
mod graceful;
mod harness;
mod layers;
mod limits;
mod membership;
mod paging;
mod partition;
mod proxy;
mod schedules;
mod schedules_failover;
mod skew;
mod snapshots;
mod status;
mod storage_suite;
mod wiki;
