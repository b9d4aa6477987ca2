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

/// The actix System the whole server runs in, on the layout `threads` asks
/// for (docs: `server.threads`).
pub fn system(threads: usize) -> actix_rt::SystemRunner {
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
