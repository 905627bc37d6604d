use omnirelay::{Request, Response, Result};

struct Empty;

#[omnirelay::service(name = "empty")]
impl Empty {
    fn helper(&self) {}
}

struct Kv;

#[omnirelay::service(name = "kv", encoding = "json", version = 2)]
impl Kv {
    #[procedure(crate = "::omnirelay")]
    async fn get(&self, request: Request<String>) -> Result<Response<String>> {
        Ok(Response::new(request.body))
    }
}

struct Borrowed<'a> {
    name: &'a str,
}

#[omnirelay::service(name = "borrowed", encoding = "json")]
impl<'a> Borrowed<'a> {
    #[procedure]
    async fn name(&self, _request: Request<()>) -> Result<Response<String>> {
        Ok(Response::new(self.name.to_owned()))
    }
}

#[omnirelay::service(name = "kv")]
struct NotAnImpl;

fn main() {}
