//! Sends the deployed contract's calls (`message.StatusService`, docs/contract.md §1) straight
//! to their service, past tonic's router; every other path (batch, health, reflection) goes
//! through the router as before.
//!
//! tonic's router is axum's: for each request it matches the path against its route table,
//! stores the matched wildcard as a request extension and converts the reply's body, about
//! 5 % of a call at one call in flight (4.4k-4.6k of 84k instructions). The generated
//! `StatusServiceServer` dispatches on the method name itself (and answers UNIMPLEMENTED for
//! a method it does not know), so a prefix test on the path is all the routing these calls
//! need.

use std::task::{Context, Poll};

use futures_util::future::Either;
use tonic::body::Body;
use tonic::codegen::Service;
use tonic::codegen::http::{Request, Response};
use tonic::server::NamedService;
use tower_layer::Layer;

/// Routes the paths of service `S` (`/{S::NAME}/...`) to `service`, the rest to the
/// service it wraps.
#[derive(Debug, Clone)]
pub struct DirectRouteLayer<S> {
    service: S,
    /// `/{S::NAME}/`.
    prefix: String,
}

impl<S: NamedService> DirectRouteLayer<S> {
    pub fn new(service: S) -> Self {
        DirectRouteLayer {
            service,
            prefix: format!("/{}/", S::NAME),
        }
    }
}

impl<S: Clone, R> Layer<R> for DirectRouteLayer<S> {
    type Service = DirectRoute<S, R>;

    fn layer(&self, routes: R) -> Self::Service {
        DirectRoute {
            direct: self.service.clone(),
            prefix: self.prefix.clone(),
            routes,
        }
    }
}

/// The service [`DirectRouteLayer`] builds.
#[derive(Debug, Clone)]
pub struct DirectRoute<S, R> {
    direct: S,
    prefix: String,
    routes: R,
}

impl<S, R, ReqBody> Service<Request<ReqBody>> for DirectRoute<S, R>
where
    S: Service<Request<ReqBody>, Response = Response<Body>>,
    R: Service<Request<ReqBody>, Response = Response<Body>, Error = S::Error>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<S::Future, R::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both are always ready (tonic's generated servers and its router are), but
        // `call` may pick either.
        match self.direct.poll_ready(cx) {
            Poll::Ready(Ok(())) => self.routes.poll_ready(cx),
            not_ready => not_ready,
        }
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if request.uri().path().starts_with(&self.prefix) {
            Either::Left(self.direct.call(request))
        } else {
            Either::Right(self.routes.call(request))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Ready, ready};

    use super::*;

    /// Answers every call with its own name in a header.
    #[derive(Clone)]
    struct Named(&'static str);

    impl NamedService for Named {
        const NAME: &'static str = "message.StatusService";
    }

    impl Service<Request<()>> for Named {
        type Response = Response<Body>;
        type Error = Infallible;
        type Future = Ready<Result<Response<Body>, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: Request<()>) -> Self::Future {
            let mut response = Response::new(Body::empty());
            response
                .headers_mut()
                .insert("served-by", self.0.parse().expect("ASCII"));
            ready(Ok(response))
        }
    }

    async fn served_by(path: &str) -> String {
        let mut service = DirectRouteLayer::new(Named("direct")).layer(Named("router"));
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .expect("ready");
        let request = Request::builder()
            .uri(path)
            .body(())
            .expect("valid request");
        let response = service.call(request).await.expect("answered");
        response.headers()["served-by"]
            .to_str()
            .expect("ASCII")
            .to_owned()
    }

    #[tokio::test]
    async fn only_the_service_s_own_paths_go_direct() {
        assert_eq!(served_by("/message.StatusService/Login").await, "direct");
        assert_eq!(
            served_by("/message.StatusService/NoSuchMethod").await,
            "direct"
        );
        assert_eq!(served_by("/message.StatusServiceX/Login").await, "router");
        assert_eq!(served_by("/grpc.health.v1.Health/Check").await, "router");
        assert_eq!(served_by("/message.StatusService").await, "router");
        assert_eq!(served_by("/").await, "router");
    }
}
