use omnirelay::{Request, Response, Result};

#[omnirelay::procedure(name = "ping")]
async fn ping(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

fn main() {}
