use omnirelay::{Request, Response, Result};

#[derive(serde::Serialize, serde::Deserialize)]
struct Point {
    x: i64,
}

#[omnirelay::procedure(encoding = "proto")]
async fn origin(request: Request<Point>) -> Result<Response<Point>> {
    Ok(Response::new(Point { x: request.body.x }))
}

fn main() {}
