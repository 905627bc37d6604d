use omnirelay::{Request, Response, Result};

struct Point {
    x: i64,
}

#[omnirelay::procedure(encoding = "json")]
async fn origin(request: Request<Point>) -> Result<Response<Point>> {
    Ok(Response::new(Point { x: request.body.x }))
}

fn main() {}
