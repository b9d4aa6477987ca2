//! A tower layer that bounds the requests in flight and sheds the rest.
//!
//! Past the limit a request is answered `RESOURCE_EXHAUSTED` at once instead
//! of queueing: memory stays bounded under a flood, callers learn to back off
//! right away, and every actor mailbox holds at most one message per request
//! in flight, so the limit bounds them too.

use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use prometheus::IntCounter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};
use tower_layer::Layer;

/// Wraps a service so that at most `limit` of its calls run at once.
#[derive(Debug, Clone)]
pub struct InFlightLimitLayer {
    permits: Arc<Semaphore>,
    limit: usize,
    /// Counts shed requests, when metrics are on.
    shed: Option<IntCounter>,
}

impl InFlightLimitLayer {
    pub fn new(limit: usize, shed: Option<IntCounter>) -> Self {
        InFlightLimitLayer {
            permits: Arc::new(Semaphore::new(limit)),
            limit,
            shed,
        }
    }
}

impl<S> Layer<S> for InFlightLimitLayer {
    type Service = InFlightLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightLimit {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`InFlightLimitLayer`] builds.
#[derive(Debug, Clone)]
pub struct InFlightLimit<S> {
    inner: S,
    layer: InFlightLimitLayer,
}

pin_project_lite::pin_project! {
    /// An admitted call: its response, and the permit it holds until the response is ready.
    /// A named future rather than a boxed one: no allocation per call.
    pub struct Admitted<F> {
        #[pin]
        response: F,
        permit: Option<OwnedSemaphorePermit>,
    }
}

impl<F: Future> Future for Admitted<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let response = std::task::ready!(this.response.poll(cx));
        // Given back as soon as the response is ready, whenever the future is dropped.
        this.permit.take();
        Poll::Ready(response)
    }
}

impl<S, ReqBody> Service<Request<ReqBody>> for InFlightLimit<S>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Admitted<S::Future>, Ready<Result<Response<Body>, S::Error>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        match Arc::clone(&self.layer.permits).try_acquire_owned() {
            Ok(permit) => Either::Left(Admitted {
                response: self.inner.call(request),
                permit: Some(permit),
            }),
            Err(_) => {
                if let Some(shed) = &self.layer.shed {
                    shed.inc();
                }
                let status = tonic::Status::resource_exhausted(format!(
                    "overloaded: {} requests in flight; retry with backoff",
                    self.layer.limit
                ));
                Either::Right(ready(Ok(status.into_http())))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;

    use super::*;
    use tokio::sync::oneshot;

    /// Answers each call when the test releases it.
    struct Held(Vec<oneshot::Sender<()>>);

    impl Service<Request<()>> for Held {
        type Response = Response<Body>;
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: Request<()>) -> Self::Future {
            let (release, released) = oneshot::channel();
            self.0.push(release);
            Box::pin(async move {
                let _ = released.await;
                Ok(Response::new(Body::empty()))
            })
        }
    }

    fn grpc_status(response: &Response<Body>) -> Option<&str> {
        response.headers().get("grpc-status")?.to_str().ok()
    }

    #[tokio::test]
    async fn sheds_beyond_the_limit_and_recovers_when_calls_finish() {
        let shed = IntCounter::new("shed", "shed requests").expect("valid metric");
        let mut service = InFlightLimitLayer::new(2, Some(shed.clone())).layer(Held(Vec::new()));
        let first = service.call(Request::new(()));
        let second = service.call(Request::new(()));
        let shed_response = service.call(Request::new(())).await.expect("infallible");
        // RESOURCE_EXHAUSTED is gRPC code 8.
        assert_eq!(grpc_status(&shed_response), Some("8"));
        assert_eq!(shed.get(), 1);

        for release in service.inner.0.drain(..) {
            release.send(()).expect("call still waiting");
        }
        assert_eq!(grpc_status(&first.await.expect("infallible")), None);
        assert_eq!(grpc_status(&second.await.expect("infallible")), None);

        let admitted = service.call(Request::new(()));
        service
            .inner
            .0
            .pop()
            .expect("admitted call")
            .send(())
            .expect("waiting");
        assert_eq!(grpc_status(&admitted.await.expect("infallible")), None);
    }
}
