use omnirelay::{Request, Result, Streaming};

#[omnirelay::procedure(encoding = "json", oneway)]
async fn ingest(_request: Request<Streaming<String>>) -> Result<()> {
    Ok(())
}

fn main() {}
