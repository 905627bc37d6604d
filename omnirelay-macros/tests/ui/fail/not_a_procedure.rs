use omnirelay::{Request, Response, Result};

struct Kv;

#[omnirelay::procedure(encoding = "json")]
async fn get(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

fn main() {
    let _ = omnirelay::procedures![get, Kv];
    let _ = omnirelay::procedures![get, get];
    let _ = omnirelay::procedures![get, Kv::default()];
}
