//! The threads the server runs on (`server.threads`).
//!
//! A call crosses three parties: the connection's task (tonic), the actors
//! (`ServerRegistry`, `TokenActor`) and the Redis connection's driver task.
//! Every time a call's work moves to a thread that is asleep, that thread must
//! be woken: a context switch and a cache miss that cost more than the
//! balancing decision itself. So the default runs all three on one thread and
//! one scheduler: a current-thread tokio `LocalRuntime`, on which the actors'
//! tasks (actix spawns them with `spawn_local`), the connections' and the
//! Redis driver's are all tasks of the same run queue. A call then never
//! changes thread, a hand-off between two of its parties is a push onto that
//! queue, and the token actor's coalescing makes one Redis round trip serve
//! many calls.
//!
//! Not actix's System, which on one thread is a current-thread runtime whose
//! `block_on` future is a `LocalSet` holding the actors: every time a
//! connection's or the Redis driver's task woke an actor (twice per call), the
//! scheduler first polled its I/O driver without blocking (an `epoll_wait`
//! with a 0 timeout) and then the LocalSet, through a mutex-guarded queue of
//! its own. `LocalRuntime` is behind tokio's `tokio_unstable` cfg, which
//! `.cargo/config.toml` sets for every build of this workspace; nothing here
//! needs the System (no `System::current`, no arbiters, no registry).
//!
//! `threads = N > 1` is the other layout: connections on N tokio workers, the
//! actors on the System's own thread. It spreads TLS handshakes and HTTP/2
//! framing over more cores, at the price of those hand-offs on every call.
//! On the 2-core machine the numbers in the README's design notes come from
//! (server, Redis and load generator sharing it), one thread was faster at
//! every load level and used less CPU per call; on a machine with idle cores
//! and TLS-heavy traffic, measure both (`bench/run --variant`).

use std::future::Future;

use tokio::task::JoinHandle;

#[cfg(not(tokio_unstable))]
compile_error!(
    "status-server runs on tokio's LocalRuntime, which needs `--cfg tokio_unstable`: \
     .cargo/config.toml sets it, but a RUSTFLAGS (for rustdoc: RUSTDOCFLAGS) variable \
     replaces that setting; add `--cfg tokio_unstable` to it"
);

/// Runs `main` to its end on the layout `threads` asks for (docs:
/// `server.threads`), in a task of its own.
///
/// Not as the runtime's `block_on` future itself: on the worker layout that
/// future is the System's LocalSet, polled on every wake-up of the actors,
/// and on either layout the server loop (its `select!`, both tonic accept
/// loops, the control channels) should run when one of its own events
/// arrives, not when anything else does. A panic in `main` panics here, as it
/// would have.
pub fn block_on<F>(threads: usize, main: F) -> F::Output
where
    F: Future + 'static,
{
    if threads <= 1 {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build_local(tokio::runtime::LocalOptions::default())
            // Without a runtime nothing can run; this only fails when the OS
            // refuses an epoll instance or a timer at start-up.
            .expect("building the tokio runtime at start-up");
        let main = runtime.spawn_local(main);
        return runtime.block_on(output_of(main));
    }
    actix_rt::System::with_tokio_rt(move || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            // As above, and the OS may refuse the workers' threads.
            .expect("building the tokio runtime at start-up")
    })
    // Spawned inside: `actix_rt::spawn` needs the System's LocalSet, entered by `block_on`.
    .block_on(async move { output_of(actix_rt::spawn(main)).await })
}

/// What the main task returned, or its panic, resumed here.
async fn output_of<T>(main: JoinHandle<T>) -> T {
    match main.await {
        Ok(output) => output,
        Err(err) => match err.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Only the runtime's shutdown cancels a task, and the runtime
            // lives until `block_on` returns.
            Err(err) => unreachable!("the server's main task was cancelled: {err}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_main_task_returns_its_output_on_either_layout() {
        for threads in [1, 2] {
            let out = block_on(threads, async move {
                // A local task of the runtime: spawn_local works in it.
                actix_rt::spawn(async { 20 })
                    .await
                    .expect("the inner task runs")
                    + threads
            });
            assert_eq!(out, 20 + threads);
        }
    }

    /// An actor that answers a number with its double.
    struct Doubler;

    impl actix::Actor for Doubler {
        type Context = actix::Context<Self>;
    }

    struct Double(usize);

    impl actix::Message for Double {
        type Result = usize;
    }

    impl actix::Handler<Double> for Doubler {
        type Result = usize;

        fn handle(&mut self, Double(n): Double, _: &mut Self::Context) -> usize {
            2 * n
        }
    }

    #[test]
    fn actors_start_and_answer_on_either_layout() {
        // The one-thread layout has no actix System: actors need only spawn_local.
        for threads in [1, 2] {
            let out = block_on(threads, async move {
                use actix::Actor;
                Doubler.start().send(Double(threads)).await
            });
            assert_eq!(out.expect("the actor answers"), 2 * threads);
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
