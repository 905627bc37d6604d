use std::rc::Rc;

use omnirelay::{Request, Response, Result};

struct Cache {
    hits: Rc<u64>,
}

#[omnirelay::service(name = "cache", encoding = "json")]
impl Cache {
    #[procedure]
    async fn hits(&self, _request: Request<()>) -> Result<Response<u64>> {
        Ok(Response::new(*self.hits))
    }
}

fn main() {}
