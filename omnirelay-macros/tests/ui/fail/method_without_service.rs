use omnirelay::{Request, Response, Result};

struct Kv;

impl Kv {
    #[omnirelay::procedure(encoding = "json")]
    async fn get(&self, request: Request<String>) -> Result<Response<String>> {
        Ok(Response::new(request.body))
    }
}

fn main() {}
