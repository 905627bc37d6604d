use omnirelay::{Response, Result};

#[omnirelay::procedure(encoding = "json")]
async fn ping(request: String) -> Result<Response<String>> {
    Ok(Response::new(request))
}

fn main() {}
