//! The `grpc.health.v1.Health/Check` procedure every dispatcher answers (DESIGN §6), unless the
//! user registers their own procedure of that name.
//!
//! `service` empty, equal to the dispatcher's name or to the full protobuf name of a service with
//! registered procedures (`grpc.testing.TestService`): `SERVING` while running, `NOT_SERVING`
//! while draining. Any other service is `not-found`, as the health protocol specifies. `Watch`
//! is not served.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::codec::ProtoCodec;
use crate::error::Error;
use crate::meta::{Request, Response};
use crate::procedure::{ProcedureSpec, typed};

/// The procedure name of the health check.
pub const HEALTH_CHECK: &str = "grpc.health.v1.Health::Check";

/// `grpc.health.v1.HealthCheckRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

/// `grpc.health.v1.HealthCheckResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct HealthCheckResponse {
    /// 1 = SERVING, 2 = NOT_SERVING.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

const SERVING: i32 = 1;
const NOT_SERVING: i32 = 2;

/// The health procedure for the `known` service names, reporting `NOT_SERVING` once
/// `draining` is set.
pub(crate) fn health_procedure(known: Vec<String>, draining: Arc<AtomicBool>) -> ProcedureSpec {
    typed::unary(
        HEALTH_CHECK,
        ProtoCodec,
        move |request: Request<HealthCheckRequest>| {
            let asked = &request.body.service;
            let known = asked.is_empty() || known.iter().any(|k| k == asked);
            let status = if draining.load(Ordering::Acquire) {
                NOT_SERVING
            } else {
                SERVING
            };
            let asked = request.body.service;
            async move {
                if !known {
                    return Err(Error::not_found(format!("unknown service {asked:?}")));
                }
                Ok(Response::new(HealthCheckResponse { status }))
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use prost::Message as _;

    use super::*;
    use crate::meta::RequestMeta;
    use crate::procedure::Handler;

    async fn check(spec: &ProcedureSpec, service: &str) -> crate::Result<i32> {
        let Handler::Unary(handler) = spec.handler() else {
            panic!("health is unary");
        };
        let body = HealthCheckRequest {
            service: service.into(),
        }
        .encode_to_vec();
        let request = Request::new(
            RequestMeta::new("c", "svc", HEALTH_CHECK),
            Bytes::from(body),
        );
        let response = handler.handle(request).await?;
        Ok(HealthCheckResponse::decode(response.body).unwrap().status)
    }

    #[tokio::test]
    async fn reports_not_serving_while_draining() {
        let draining = Arc::new(AtomicBool::new(false));
        let known = vec!["svc".to_owned(), "pkg.Echo".to_owned()];
        let spec = health_procedure(known, draining.clone());
        assert_eq!(check(&spec, "").await.unwrap(), SERVING);
        assert_eq!(check(&spec, "svc").await.unwrap(), SERVING);
        assert_eq!(check(&spec, "pkg.Echo").await.unwrap(), SERVING);
        assert_eq!(
            check(&spec, "x").await.unwrap_err().code(),
            crate::Code::NotFound
        );
        draining.store(true, Ordering::Release);
        assert_eq!(check(&spec, "").await.unwrap(), NOT_SERVING);
    }
}
