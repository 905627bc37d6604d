use omnirelay::{Request, Response, Result};

struct Kv;

#[omnirelay::service(name = "kv", encoding = "json")]
impl Kv {
    #[procedure]
    async fn get(&self, request: Request<String>) -> Result<Response<String>> {
        Ok(Response::new(request.body))
    }

    #[procedure(name = "get")]
    async fn fetch(&self, request: Request<String>) -> Result<Response<String>> {
        Ok(Response::new(request.body))
    }
}

fn main() {}
