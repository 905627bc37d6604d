use omnirelay::{Request, Response, Result};

#[omnirelay::procedure(encoding = "xml")]
async fn xml(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

#[omnirelay::procedure(encoding = "protobuf")]
async fn protobuf(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

#[omnirelay::procedure(encoding = ["raw", "json"])]
async fn mixed(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

fn main() {}
