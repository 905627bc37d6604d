use omnirelay::{Request, Response, Result};

#[omnirelay::procedure(encoding = "raw")]
async fn upload(request: Request<Vec<u8>>) -> Result<Response<String>> {
    Ok(Response::new(format!("{} bytes", request.body.len())))
}

fn main() {}
