use omnirelay::{Request, Response, Result};

#[omnirelay::procedure(encoding = "json")]
async fn echo<T: Send + 'static>(request: Request<T>) -> Result<Response<T>> {
    Ok(Response::new(request.body))
}

fn main() {}
