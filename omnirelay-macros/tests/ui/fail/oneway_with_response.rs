use omnirelay::{Request, Response, Result};

#[omnirelay::procedure(encoding = "json", oneway)]
async fn notify(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

fn main() {}
