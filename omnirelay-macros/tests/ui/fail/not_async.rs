use omnirelay::{Request, Response, Result};

#[omnirelay::procedure(encoding = "json")]
fn ping(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

fn main() {}
