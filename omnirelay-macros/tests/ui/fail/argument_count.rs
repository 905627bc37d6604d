use omnirelay::{Request, RequestMeta, Response, Result};

#[omnirelay::procedure(encoding = "json")]
async fn none() -> Result<Response<String>> {
    Ok(Response::new(String::new()))
}

#[omnirelay::procedure(encoding = "json")]
async fn two(request: Request<String>, meta: RequestMeta) -> Result<Response<String>> {
    Ok(Response::new(format!("{} {}", request.body, meta.caller)))
}

fn main() {}
