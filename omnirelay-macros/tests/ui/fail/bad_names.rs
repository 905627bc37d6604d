use omnirelay::{Request, Response, Result};

#[omnirelay::procedure(encoding = "json", name = "")]
async fn empty(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

#[omnirelay::procedure(encoding = "json", alias = "dup", alias = "dup")]
async fn duplicated_alias(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

#[omnirelay::procedure(encoding = "json", alias = "itself")]
async fn itself(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

#[omnirelay::procedure(encoding = "json", name = "has space")]
async fn spaced(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

#[omnirelay::procedure(encoding = "json", name = "twice", name = "again")]
async fn named_twice(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

#[omnirelay::procedure(encoding = "json", oneway = true)]
async fn flag_value(_request: Request<String>) -> Result<()> {
    Ok(())
}

#[omnirelay::procedure(encoding = "json", encoding = "proto")]
async fn encoded_twice(request: Request<String>) -> Result<Response<String>> {
    Ok(Response::new(request.body))
}

struct Kv;

#[omnirelay::service(name = "kv", encoding = "json")]
impl Kv {
    #[procedure(name = "other::get")]
    async fn get(&self, request: Request<String>) -> Result<Response<String>> {
        Ok(Response::new(request.body))
    }
}

#[omnirelay::service(name = "a::b", encoding = "json")]
impl Kv {
    #[procedure]
    async fn put(&self, request: Request<String>) -> Result<Response<String>> {
        Ok(Response::new(request.body))
    }
}

fn main() {}
