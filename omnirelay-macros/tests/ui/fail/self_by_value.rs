use omnirelay::{Request, Response, Result};

struct Counter;

#[omnirelay::service(name = "counter", encoding = "json")]
impl Counter {
    #[procedure]
    async fn add(self, request: Request<u64>) -> Result<Response<u64>> {
        Ok(Response::new(request.body))
    }

    #[procedure]
    async fn reset(&mut self, request: Request<u64>) -> Result<Response<u64>> {
        Ok(Response::new(request.body))
    }
}

fn main() {}
