use omnirelay::{Request, Response, Result};

struct Store<T> {
    items: std::sync::Mutex<Vec<T>>,
}

#[omnirelay::service(name = "store", encoding = "json")]
impl<T: Clone + serde::Serialize + serde::de::DeserializeOwned> Store<T> {
    #[procedure]
    async fn first(&self, _request: Request<()>) -> Result<Response<Option<T>>> {
        Ok(Response::new(self.items.lock().unwrap().first().cloned()))
    }
}

fn main() {}
