use omnirelay::{Request, Result};

#[omnirelay::procedure(encoding = "json")]
async fn notify(_request: Request<String>) -> Result<()> {
    Ok(())
}

fn main() {}
