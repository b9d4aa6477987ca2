//! Smoke tests of the Redis topology that the Sentinel tests run on: it
//! starts ready, fails a killed master over within a generous bound, and
//! the promoted node takes writes and keeps what was replicated. The
//! measured failover times are printed (`--nocapture`) for reports;
//! they are not asserted beyond the bound.

use std::time::{Duration, Instant};

use testkit::{RedisNode, SentinelSet, eventually};

/// The set fails over in about 2-3 s with a one-second down-after; this
/// bound only catches a failover that does not happen.
const FAILOVER_BOUND: Duration = Duration::from_secs(15);

fn set_cmd(key: &str, value: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    cmd
}

/// `WAIT 1 1000` on `node`: the number of replicas that hold its writes.
async fn wait_for_one_replica(node: &RedisNode) -> u64 {
    node.query(redis::cmd("WAIT").arg(1).arg(1000)).await
}

#[tokio::test]
async fn sentinel_set_promotes_the_replica_which_keeps_the_data_and_takes_writes() {
    let started = Instant::now();
    let mut set = SentinelSet::start().await;
    println!("sentinel set ready in {:?}", started.elapsed());
    let urls = set.sentinel_urls();
    assert_eq!(urls.len(), 3);
    assert!(urls.iter().all(|url| url.starts_with("redis://127.0.0.1:")));
    assert_eq!(set.master_name(), "mymaster");

    let master = set.master().await;
    assert_eq!(master.role().await.as_deref(), Some("master"));
    master.query::<()>(&set_cmd("utoken_1", "before")).await;
    assert_eq!(wait_for_one_replica(&master).await, 1);

    let old = set.kill_master().await;
    assert_eq!(old, master.port);
    let (new, took) = set.wait_for_new_master(old).await;
    println!("sentinel failover: master {old} -> {new} in {took:?}");
    assert_ne!(new, old);
    assert!(took < FAILOVER_BOUND, "failover took {took:?}");
    assert_eq!(set.master_port().await, new);

    let master = set.master().await;
    assert_eq!(master.stored_token(1).await.as_deref(), Some("before"));
    master.query::<()>(&set_cmd("utoken_2", "after")).await;

    set.restart_node(old).await;
    let old_node = RedisNode::new(old);
    assert_eq!(old_node.role().await.as_deref(), Some("slave"));
    eventually("the restarted node to replicate the new master's write", || async move {
        (old_node.stored_token(2).await.as_deref() == Some("after")).then_some(())
    })
    .await;
}
