use omnirelay::{Request, Response, Result};

#[omnirelay::procedure(encoding = "json", timeout = "1s")]
async fn ping(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

fn main() {}
