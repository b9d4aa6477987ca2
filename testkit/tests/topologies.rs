//! Smoke tests of the Redis topologies that the Sentinel and Cluster tests
//! run on: each starts ready, fails a killed master over within a generous
//! bound, and the promoted node takes writes and keeps what was replicated.
//! The measured failover times are printed (`--nocapture`) for reports;
//! they are not asserted beyond the bound.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use testkit::{RedisCluster, RedisNode, SentinelSet, eventually};

/// Both topologies fail over in about 2-3 s with a one-second down-after /
/// node timeout; this bound only catches a failover that does not happen.
const FAILOVER_BOUND: Duration = Duration::from_secs(15);

fn set_cmd(key: &str, value: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(key).arg(value);
    cmd
}

/// `SET key value` on `node`, then `WAIT 1 1000` on the same connection
/// (WAIT counts the replicas that hold that connection's writes): how many
/// replicas hold it.
async fn set_on_a_replica_too(node: &RedisNode, key: &str, value: &str) -> u64 {
    let ((), replicas): ((), u64) = redis::pipe()
        .add_command(set_cmd(key, value))
        .cmd("WAIT")
        .arg(1)
        .arg(1000)
        .query_async(&mut node.conn().await)
        .await
        .unwrap_or_else(|err| panic!("SET {key} + WAIT on {}: {err}", node.port));
    replicas
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
    assert_eq!(set_on_a_replica_too(&master, "utoken_1", "before").await, 1);

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

#[tokio::test]
async fn cluster_spreads_keys_over_three_masters_and_promotes_a_replica() {
    let started = Instant::now();
    let mut cluster = RedisCluster::start().await;
    println!("cluster ready in {:?}", started.elapsed());
    assert_eq!(cluster.node_urls().len(), 6);
    let masters = cluster.masters().await;
    assert_eq!(masters.len(), 3);

    cluster.reset_stats().await;
    let mut keys_per_master: BTreeMap<u16, u64> = BTreeMap::new();
    let mut owners = Vec::new();
    for uid in 1..=100 {
        let key = format!("utoken_{uid}");
        let port = cluster.master_of_key(&key).await;
        RedisNode::new(port).query::<()>(&set_cmd(&key, "t")).await;
        *keys_per_master.entry(port).or_insert(0) += 1;
        owners.push((key, port));
    }
    assert_eq!(
        keys_per_master.keys().copied().collect::<Vec<_>>(),
        masters,
        "keys of 100 uids land on every master"
    );
    assert_eq!(cluster.master_command_calls().await.get("set"), Some(&100));
    let per_node = cluster.command_calls_per_node().await;
    for (port, keys) in &keys_per_master {
        assert_eq!(per_node[port].get("set"), Some(keys), "SETs run on {port}");
    }

    let victim = masters[0];
    let (victim_key, _) = owners
        .into_iter()
        .find(|&(_, port)| port == victim)
        .expect("every master serves some of the keys");
    let replicas = set_on_a_replica_too(&RedisNode::new(victim), &victim_key, "kept").await;
    assert_eq!(replicas, 1);
    cluster.kill_master(victim).await;
    let (new, took) = cluster.wait_for_promotion(victim).await;
    println!("cluster failover: master {victim} -> {new} in {took:?}");
    assert!(took < FAILOVER_BOUND, "promotion took {took:?}");
    let after = cluster.masters().await;
    assert!(
        after.contains(&new) && !after.contains(&victim),
        "{after:?}"
    );
    assert_eq!(after.len(), 3);

    assert_eq!(cluster.master_of_key(&victim_key).await, new);
    let promoted = RedisNode::new(new);
    let kept: Option<String> = promoted.query(redis::cmd("GET").arg(&victim_key)).await;
    assert_eq!(kept.as_deref(), Some("kept"));
    promoted.query::<()>(&set_cmd(&victim_key, "after")).await;
}
