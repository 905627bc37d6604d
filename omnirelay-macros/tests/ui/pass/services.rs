//! Services: receivers, defaults and overrides, generics, trait impls, local types, `Arc`s.
#![deny(missing_docs, warnings)]

use std::sync::Arc;

use omnirelay::codec::Encoding;
use omnirelay::{Request, Response, Result, Service};

/// A public service type in a library would look like this.
pub struct Kv {
    prefix: String,
}

#[omnirelay::service(name = "pkg.Kv", encoding = "json")]
impl Kv {
    /// `&self`.
    #[procedure]
    pub async fn get(&self, request: Request<String>) -> Result<Response<String>> {
        Ok(Response::new(format!("{}{}", self.prefix, request.body)))
    }

    /// `self: Arc<Self>`, oneway, another encoding, a name and aliases.
    #[omnirelay::procedure(encoding = "raw", oneway, name = "Put", alias = "Set", alias = "Store")]
    pub async fn put(self: Arc<Self>, request: Request<bytes::Bytes>) -> Result<()> {
        let _ = (&self.prefix, request);
        Ok(())
    }

    /// No receiver at all.
    #[procedure(oneway)]
    pub async fn ping(_request: Request<()>) -> Result<()> {
        Ok(())
    }

    /// Not a procedure.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// Generic, with a const parameter too.
pub struct Ring<T, const N: usize> {
    items: std::sync::Mutex<Vec<T>>,
}

#[omnirelay::service(encoding = "json")]
impl<T, const N: usize> Ring<T, N>
where
    T: Clone + serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
{
    /// Keeps the last `N` items.
    #[procedure]
    async fn push(&self, request: Request<T>) -> Result<Response<usize>> {
        let mut items = self.items.lock().unwrap();
        items.push(request.into_body());
        if items.len() > N {
            items.remove(0);
        }
        Ok(Response::new(items.len()))
    }
}

trait Greet {
    async fn hello(&self, request: Request<String>) -> Result<Response<String>>;
}

struct English;

#[omnirelay::service(name = "greet", encoding = "json")]
impl Greet for English {
    #[procedure]
    async fn hello(&self, request: Request<String>) -> Result<Response<String>> {
        Ok(Response::new(format!("hello, {}", request.body)))
    }
}

fn main() {
    assert_eq!(Kv::NAME, "pkg.Kv");
    let names: Vec<&str> = Kv::PROCEDURES.iter().map(|p| p.name()).collect();
    assert_eq!(names, ["pkg.Kv::get", "pkg.Kv::Put", "pkg.Kv::ping"]);
    assert_eq!(
        Kv::PROCEDURES[1].aliases(),
        ["pkg.Kv::Set", "pkg.Kv::Store"]
    );
    assert_eq!(Kv::PROCEDURES[1].encodings(), [Encoding::Raw]);
    // The type's name is the default service name.
    assert_eq!(<Ring<u8, 2> as Service>::NAME, "Ring");

    // A service type local to a function.
    struct Local;
    #[omnirelay::service(name = "local", encoding = "json")]
    impl Local {
        #[procedure]
        async fn id(&self, request: Request<u8>) -> Result<Response<u8>> {
            Ok(Response::new(request.body))
        }
    }

    let kv = Arc::new(Kv {
        prefix: "k:".to_owned(),
    });
    assert_eq!(kv.prefix(), "k:");
    let dispatcher = omnirelay::Dispatcher::builder("pass")
        .register(kv.clone())
        .register(Ring::<String, 3> {
            items: Default::default(),
        })
        .register(English)
        .register(Local)
        .build()
        .unwrap();
    for name in [
        "pkg.Kv::get",
        "pkg.Kv::Store",
        "pkg.Kv::ping",
        "Ring::push",
        "greet::hello",
        "local::id",
    ] {
        assert!(dispatcher.registry().lookup(name).is_some(), "{name}");
    }
    // The dispatcher holds clones of the one `Arc`.
    assert!(Arc::strong_count(&kv) > 1);
}
