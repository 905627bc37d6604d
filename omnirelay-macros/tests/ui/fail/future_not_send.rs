use std::rc::Rc;

use omnirelay::{Request, Response, Result};

async fn audit() {}

#[omnirelay::procedure(encoding = "json")]
async fn ping(request: Request<String>) -> Result<Response<String>> {
    let local = Rc::new(request.body);
    audit().await;
    Ok(Response::new(local.to_string()))
}

fn main() {}
