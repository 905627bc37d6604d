use omnirelay::{Request, Response, Result};

#[omnirelay::procedure(encoding = "json", name = "greet")]
async fn hello(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(format!("hello, {}", request.body)))
}

#[omnirelay::procedure(encoding = "json")]
async fn bye(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(format!("bye, {}", request.body)))
}

#[omnirelay::procedure(encoding = "json", alias = "greet")]
async fn hi(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(format!("hi, {}", request.body)))
}

fn main() {
    let _ = omnirelay::procedures![hello, bye, hi];
}
