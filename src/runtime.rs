//! The threads the server runs on (`server.threads`).
//!
//! A call crosses three parties: the connection's task (tonic), the actors
//! (`ServerRegistry`, `TokenActor`) and the Redis connection's driver task.
//! Every time a call's work moves to a thread that is asleep, that thread must
//! be woken: a context switch and a cache miss that cost more than the
//! balancing decision itself. So the default runs all three on one thread:
//! actix's System on a current-thread tokio runtime, tonic and the Redis
//! driver spawned onto it, the actors in its LocalSet. A call then never
//! changes thread, and the token actor's coalescing makes one Redis round
//! trip serve many calls.
//!
//! `threads = N > 1` is the other layout: connections on N tokio workers, the
//! actors on the System's own thread. It spreads TLS handshakes and HTTP/2
//! framing over more cores, at the price of those hand-offs on every call.
//! On the 2-core machine the numbers in the README's design notes come from
//! (server, Redis and load generator sharing it), one thread was faster at
//! every load level and used less CPU per call; on a machine with idle cores
//! and TLS-heavy traffic, measure both (`bench/run --variant`).

use std::future::Future;

/// Runs `main` to its end in the actix System of the layout `threads` asks for
/// (docs: `server.threads`), in a task of its own.
///
/// Not as the System's `block_on` future itself: that future is polled every
/// time the actors' LocalSet is woken, which is twice per call (a request
/// reaching an actor, a Redis reply reaching the token actor). Polled there,
/// the server loop (its `select!`, both tonic accept loops, the control
/// channels) ran on every call for nothing; as a task, it runs when one of
/// its own events arrives. A panic in `main` panics here, as it would have.
pub fn block_on<F>(threads: usize, main: F) -> F::Output
where
    F: Future + 'static,
{
    system(threads).block_on(async move {
        match actix_rt::spawn(main).await {
            Ok(output) => output,
            Err(err) => match err.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                // Only the runtime's shutdown cancels a task, and the runtime
                // lives until this block ends.
                Err(err) => unreachable!("the server's main task was cancelled: {err}"),
            },
        }
    })
}

/// The actix System on the layout `threads` asks for.
fn system(threads: usize) -> actix_rt::SystemRunner {
    if threads <= 1 {
        return actix_rt::System::new();
    }
    actix_rt::System::with_tokio_rt(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            // Without a runtime nothing can run; this only fails when the OS
            // refuses threads or an epoll instance at start-up.
            .expect("building the tokio runtime at start-up")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_task_returns_its_output_on_either_layout() {
        for threads in [1, 2] {
            let out = block_on(threads, async move {
                // A task of the System: actors and spawn_local work in it.
                actix_rt::spawn(async { 20 })
                    .await
                    .expect("the inner task runs")
                    + threads
            });
            assert_eq!(out, 20 + threads);
        }
    }

    #[test]
    fn a_panic_in_the_main_task_panics_the_caller() {
        let caught = std::panic::catch_unwind(|| {
            block_on(1, async {
                panic!("the server loop broke");
            })
        })
        .expect_err("the panic comes through");
        assert_eq!(
            caught.downcast_ref::<&str>(),
            Some(&"the server loop broke")
        );
    }
}
