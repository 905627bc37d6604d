use omnirelay::{Request, Response, Result};

#[omnirelay::procedure(encoding = "json")]
async fn bare(request: Request<String>) -> Response<String> {
    Response::new(request.body)
}

#[omnirelay::procedure(encoding = "json")]
async fn unwrapped(request: Request<String>) -> Result<String> {
    Ok(request.body)
}

#[omnirelay::procedure(encoding = "json")]
async fn other_error(request: Request<String>) -> std::result::Result<Response<String>, String> {
    Ok(Response::new(request.body))
}

#[omnirelay::procedure(encoding = "json")]
async fn nothing(_request: Request<String>) {}

fn main() {}
