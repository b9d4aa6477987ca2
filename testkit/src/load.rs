//! Load for tests that change something while calls are in flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use status_server::proto::GetChatServerReq;
use status_server::proto::status_service_client::StatusServiceClient;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::eventually;

/// GetChatServer for `uid`: the port it placed the user on, or the status.
pub async fn placed_port(
    client: &mut StatusServiceClient<Channel>,
    uid: i32,
) -> Result<String, tonic::Status> {
    client
        .get_chat_server(GetChatServerReq { uid })
        .await
        .map(|rsp| rsp.into_inner().port)
}

/// One GetChatServer call under load: its uid and what it got.
pub type LoadOutcome = (i32, Result<String, tonic::Status>);

/// Continuous GetChatServer load, for tests that change something while
/// calls are in flight (a reload, SIGTERM): `workers` tasks each call in a
/// loop, one fresh uid per call, until `stop`. Dropping it stops the workers.
pub struct LoadWorkers {
    stop: Arc<AtomicBool>,
    done: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<Vec<LoadOutcome>>>,
}

impl LoadWorkers {
    /// Starts the workers. Worker `w` calls uids `w * uids_per_worker + 1`
    /// upwards, so no two calls share a uid and a uid names one call (in
    /// the server's log too).
    pub fn start(
        client: StatusServiceClient<Channel>,
        workers: i32,
        uids_per_worker: i32,
    ) -> LoadWorkers {
        let stop = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicUsize::new(0));
        let tasks = (0..workers)
            .map(|w| {
                let mut client = client.clone();
                let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
                let uids = w * uids_per_worker + 1..=(w + 1) * uids_per_worker;
                tokio::spawn(async move {
                    let mut outcomes = Vec::new();
                    for uid in uids {
                        if stop.load(Ordering::Relaxed) {
                            return outcomes;
                        }
                        outcomes.push((uid, placed_port(&mut client, uid).await));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    panic!("a load worker ran out of its {uids_per_worker} uids");
                })
            })
            .collect();
        LoadWorkers { stop, done, tasks }
    }

    /// Calls completed so far, by all workers, whatever their outcome.
    pub fn calls_done(&self) -> usize {
        self.done.load(Ordering::Relaxed)
    }

    /// Waits (bounded by `WAIT`) until at least `n` calls completed; returns
    /// how many had then.
    pub async fn wait_for_calls(&self, n: usize) -> usize {
        eventually(&format!("{n} calls under load"), || {
            let count = self.calls_done();
            async move { (count >= n).then_some(count) }
        })
        .await
    }

    /// Stops the workers and returns every call they made, in no set order.
    pub async fn stop(mut self) -> Vec<LoadOutcome> {
        self.stop.store(true, Ordering::Relaxed);
        let mut outcomes = Vec::new();
        for task in std::mem::take(&mut self.tasks) {
            outcomes.extend(task.await.expect("load worker task"));
        }
        outcomes
    }
}

impl Drop for LoadWorkers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
