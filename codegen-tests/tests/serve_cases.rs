//! Every case with rpcs registers with a dispatcher and serves over a real gRPC socket through
//! its generated client, under the procedure names the `.proto` spells; plus the wire behaviour
//! the cases call out (presence, map determinism, recursive oneofs, cross-package types).

use futures::StreamExt;
use omnirelay::{Request, Response, Result, Streaming};
use omnirelay_codegen_tests as cases;
use omnirelay_tests::Harness;
use prost::Message;

/// Echoes the request body.
macro_rules! echo {
    ($name:ident, $t:ty) => {
        async fn $name(&self, request: Request<$t>) -> Result<Response<$t>> {
            Ok(Response::new(request.into_body()))
        }
    };
}

/// Answers with the default value of the response type.
macro_rules! answer {
    ($name:ident, $in:ty, $out:ty) => {
        async fn $name(&self, _request: Request<$in>) -> Result<Response<$out>> {
            Ok(Response::new(<$out>::default()))
        }
    };
}

/// Streams two default responses.
macro_rules! stream_out {
    ($name:ident, $in:ty, $out:ty) => {
        async fn $name(&self, _request: Request<$in>) -> Result<Response<Streaming<$out>>> {
            let items = [Ok(<$out>::default()), Ok(<$out>::default())];
            Ok(Response::new(Streaming::new(futures::stream::iter(items))))
        }
    };
}

/// Reads every request, answers with the default response.
macro_rules! stream_in {
    ($name:ident, $in:ty, $out:ty) => {
        async fn $name(&self, request: Request<Streaming<$in>>) -> Result<Response<$out>> {
            let mut requests = request.into_body();
            while requests.message().await?.is_some() {}
            Ok(Response::new(<$out>::default()))
        }
    };
}

/// Echoes each request as it arrives.
macro_rules! duplex_echo {
    ($name:ident, $t:ty) => {
        async fn $name(&self, request: Request<Streaming<$t>>) -> Result<Response<Streaming<$t>>> {
            Ok(Response::new(request.into_body()))
        }
    };
}

fn names(h: &Harness) -> Vec<String> {
    h.server
        .registry()
        .procedures()
        .map(|p| p.name().to_owned())
        .collect()
}

async fn count<T>(stream: Streaming<T>) -> usize {
    stream
        .filter(|r| futures::future::ready(r.is_ok()))
        .count()
        .await
}

mod b01 {
    use super::*;
    use cases::b01::sample::rawunsafe::v1::*;

    struct Impl;
    impl Keyword for Impl {
        echo!(self_, Node);
        answer!(super_, Handle, Wrapper);
        echo!(crate_, Self_);
    }

    #[tokio::test]
    async fn raw_unsafe_keywords_serve() {
        let h = Harness::start(KeywordProcedures::new(Impl)).await;
        let n = names(&h);
        for name in [
            "sample.rawunsafe.v1.Keyword::Self",
            "sample.rawunsafe.v1.Keyword::Super",
            "sample.rawunsafe.v1.Keyword::Crate",
        ] {
            assert!(n.contains(&name.to_owned()), "{n:?}");
        }
        assert_eq!(keyword_names::SELF, "sample.rawunsafe.v1.Keyword::Self");
        let client = KeywordClient::new(h.config());
        let node = Node {
            self_: "s".into(),
            super_: "u".into(),
            crate_: "c".into(),
            marker: Marker::Self_ as i32,
            super_or_self: Some(node::SuperOrSelf::Count(3)),
        };
        assert_eq!(client.self_(node.clone()).await.unwrap().body, node);
        client.super_(Handle { self_: "h".into() }).await.unwrap();
        let this = Self_ {
            parts: vec![self_::Part { label: "p".into() }],
        };
        assert_eq!(client.crate_(this.clone()).await.unwrap().body, this);
        // JSON keeps the proto spelling of names and enum values.
        let json = serde_json::to_string(&node).unwrap();
        assert!(
            json.contains(r#""self":"s""#) && json.contains("MARKER_SELF"),
            "{json}"
        );
    }
}

mod b02 {
    use super::*;
    use cases::b02::sample::r#type::v1::*;

    struct Impl;
    impl ReservedWords for Impl {
        echo!(r#type, Flags);
        echo!(r#async, Flags);
        echo!(r#await, Flags);
        echo!(r#try, Flags);
        echo!(r#gen, Flags);
        echo!(r#move, Match);
        duplex_echo!(r#loop, Flags);
        echo!(r#fn, Flags);
        echo!(r#impl, Flags);
        echo!(r#where, Flags);
        stream_out!(r#yield, Flags, Flags);
        echo!(r#dyn, Flags);
    }

    #[tokio::test]
    async fn raw_keywords_serve() {
        let h = Harness::start(ReservedWordsProcedures::new(Impl)).await;
        assert!(names(&h).contains(&"sample.type.v1.ReservedWords::type".to_owned()));
        let client = ReservedWordsClient::new(h.config());
        let flags = Flags {
            r#type: "t".into(),
            r#gen: 6,
            r#move: Some(flags::Move::Left("l".into())),
            ..Default::default()
        };
        assert_eq!(client.r#type(flags.clone()).await.unwrap().body, flags);
        assert_eq!(client.r#gen(flags.clone()).await.unwrap().body.r#gen, 6);
        let looped = client
            .r#loop(futures::stream::iter([flags.clone()]))
            .await
            .unwrap()
            .into_body();
        assert_eq!(count(looped).await, 1);
        let yielded = client.r#yield(flags).await.unwrap().into_body();
        assert_eq!(count(yielded).await, 2);
        let m = Match {
            arms: vec![r#match::Arm {
                pattern: "_".into(),
            }],
        };
        assert_eq!(client.r#move(m.clone()).await.unwrap().body, m);
    }
}

mod b04 {
    use super::*;
    // Not glob-imported: the case's `Request`, `Result`, `Box`, ... would shadow the prelude's.
    use cases::b04::sample::shadow::v1 as s;

    struct Impl;
    impl s::Service for Impl {
        answer!(handle, s::Request, s::Response);
    }
    impl s::Stream for Impl {
        stream_out!(run_stream, s::Request, s::Response);
    }
    impl s::Sync for Impl {
        answer!(pull, s::Box, s::Result);
    }
    impl s::Send for Impl {
        stream_in!(push, s::String, s::Error);
    }
    impl s::Echo for Impl {
        answer!(echo, s::EchoClient, s::EchoServer);
    }

    #[tokio::test]
    async fn framework_named_services_and_messages_serve() {
        let procedures: Vec<omnirelay::ProcedureSpec> = [
            omnirelay::IntoProcedures::into_procedures(s::ServiceProcedures::new(Impl)),
            omnirelay::IntoProcedures::into_procedures(s::StreamProcedures::new(Impl)),
            omnirelay::IntoProcedures::into_procedures(s::SyncProcedures::new(Impl)),
            omnirelay::IntoProcedures::into_procedures(s::SendProcedures::new(Impl)),
            omnirelay::IntoProcedures::into_procedures(s::EchoProcedures::new(Impl)),
        ]
        .concat();
        let h = Harness::start(procedures).await;
        let n = names(&h);
        for name in [
            "sample.shadow.v1.Service::Handle",
            "sample.shadow.v1.Stream::RunStream",
            "sample.shadow.v1.Sync::Pull",
            "sample.shadow.v1.Send::Push",
            "sample.shadow.v1.Echo::Echo",
        ] {
            assert!(n.contains(&name.to_owned()), "{n:?}");
        }
        s::ServiceClient::new(h.config())
            .handle(s::Request::default())
            .await
            .unwrap();
        let streamed = s::StreamClient::new(h.config())
            .run_stream(s::Request::default())
            .await
            .unwrap()
            .into_body();
        assert_eq!(count(streamed).await, 2);
        s::SyncClient::new(h.config())
            .pull(s::Box::default())
            .await
            .unwrap();
        s::SendClient::new(h.config())
            .push(futures::stream::iter([
                s::String::default(),
                s::String::default(),
            ]))
            .await
            .unwrap();
        // The message `EchoClient` keeps its name; the generated client for `Echo` moved aside.
        s::EchoClientRpc::new(h.config())
            .echo(s::EchoClient::default())
            .await
            .unwrap();
    }
}

mod b06 {
    use super::*;
    use cases::b06::sample::fleet::v1::*;

    struct Impl;
    impl Yard for Impl {
        answer!(assign, depot::Slot, Depot);
        answer!(staff, Shift, shift::Crew);
    }

    #[tokio::test]
    async fn nested_modules_and_sub_packages_both_reachable() {
        let h = Harness::start(YardProcedures::new(Impl)).await;
        let client = YardClient::new(h.config());
        client.assign(depot::Slot::default()).await.unwrap();
        client.staff(Shift::default()).await.unwrap();
        // Every type is reachable: the nested-type module moved to `depot_` / `shift_`.
        let _: Option<depot_::Bay> = None;
        let _: Option<shift::Solo> = None;
    }
}

mod b07 {
    use super::*;
    use cases::b07::sample::oneofs::v1::*;

    struct Impl;
    impl Sorting for Impl {
        answer!(route, Parcel, Shape);
        echo!(grow, Tree);
    }

    #[tokio::test]
    async fn oneofs_named_like_nested_types_round_trip() {
        let h = Harness::start(SortingProcedures::new(Impl)).await;
        let client = SortingClient::new(h.config());
        client.route(Parcel::default()).await.unwrap();
        let leaf = tree::Leaf {
            parent: Some(Box::new(Tree::default())),
            value: "v".into(),
        };
        let tree = Tree {
            tree: Some(tree::Tree::Subtree(Box::new(Tree {
                tree: Some(tree::Tree::Leaf(Box::new(leaf))),
            }))),
        };
        assert_eq!(client.grow(tree.clone()).await.unwrap().body, tree);
        let _: Option<parcel::ContentsOneOf> = None;
        let _: Option<shape::TypeOneOf> = None;
    }
}

mod b08 {
    use super::*;
    use cases::b08::*;

    struct Impl;
    impl Lookup for Impl {
        answer!(find, FindRequest, FindReply);
        stream_out!(watch, FindRequest, FindReply);
    }

    #[tokio::test]
    async fn package_less_services_use_bare_names() {
        let h = Harness::start(LookupProcedures::new(Impl)).await;
        let n = names(&h);
        assert!(n.contains(&"Lookup::Find".to_owned()), "{n:?}");
        assert!(n.contains(&"Lookup::Watch".to_owned()), "{n:?}");
        let client = LookupClient::new(h.config());
        let request = FindRequest {
            after: Some(sample::nopkg::shared::Cursor::default()),
            ..Default::default()
        };
        client.find(request.clone()).await.unwrap();
        assert_eq!(
            count(client.watch(request).await.unwrap().into_body()).await,
            2
        );
    }
}

mod b10 {
    use super::*;
    use cases::b10::sample::{billing, orders, shipping};

    struct Impl;
    impl orders::v1::Orders for Impl {
        async fn get(
            &self,
            request: Request<billing::v1::Lookup>,
        ) -> Result<Response<shipping::v1::Record>> {
            // Record the invoice the request carried, to prove the right Lookup arrived.
            let invoice = request.into_body().invoice;
            Ok(Response::new(shipping::v1::Record { carrier: invoice }))
        }
        answer!(put, shipping::v1::Lookup, billing::v1::Record);
        answer!(by_id, orders::v1::OrderId, orders::v1::Record);
    }

    #[tokio::test]
    async fn types_from_other_packages_are_the_right_ones_on_the_wire() {
        let h = Harness::start(orders::v1::OrdersProcedures::new(Impl)).await;
        let client = orders::v1::OrdersClient::new(h.config());
        let got = client
            .get(billing::v1::Lookup {
                invoice: "inv-1".into(),
            })
            .await
            .unwrap();
        assert_eq!(got.body.carrier, "inv-1");
        // On the wire a Get request carries field 1 as `invoice` (billing), not `tracking`.
        let bytes = billing::v1::Lookup {
            invoice: "x".into(),
        }
        .encode_to_vec();
        assert_eq!(
            shipping::v1::Lookup::decode(&bytes[..]).unwrap().tracking,
            "x"
        );
        client.put(shipping::v1::Lookup::default()).await.unwrap();
        client.by_id(orders::v1::OrderId::default()).await.unwrap();
    }
}

mod b11 {
    use super::*;
    use omnirelay::__private::pbjson_types as wkt;

    struct Default_;
    impl cases::b11_default::sample::clock::v1::Clock for Default_ {
        echo!(ping, wkt::Empty);
        answer!(now, wkt::Empty, wkt::Timestamp);
        stream_out!(wait, wkt::Duration, wkt::Timestamp);
        answer!(describe, wkt::Struct, wkt::Any);
        answer!(
            patch,
            cases::b11_default::sample::clock::v1::PatchRequest,
            wkt::Value
        );
        answer!(count, wkt::Int64Value, wkt::StringValue);
        echo!(label, cases::b11_default::sample::clock::v1::Tag);
    }

    struct Unit;
    impl cases::b11_empty_unit::sample::clock::v1::Clock for Unit {
        echo!(ping, ());
        answer!(now, (), wkt::Timestamp);
        stream_out!(wait, wkt::Duration, wkt::Timestamp);
        answer!(describe, wkt::Struct, wkt::Any);
        answer!(
            patch,
            cases::b11_empty_unit::sample::clock::v1::PatchRequest,
            wkt::Value
        );
        answer!(count, wkt::Int64Value, wkt::StringValue);
        echo!(label, cases::b11_empty_unit::sample::clock::v1::Tag);
    }

    struct Extern;
    impl cases::b11_extern_tag::sample::clock::v1::Clock for Extern {
        echo!(ping, wkt::Empty);
        answer!(now, wkt::Empty, wkt::Timestamp);
        stream_out!(wait, wkt::Duration, wkt::Timestamp);
        answer!(describe, wkt::Struct, wkt::Any);
        answer!(
            patch,
            cases::b11_extern_tag::sample::clock::v1::PatchRequest,
            wkt::Value
        );
        answer!(count, wkt::Int64Value, wkt::StringValue);
        echo!(label, cases::Tag);
    }

    #[tokio::test]
    async fn well_known_types_serve_under_each_mapping() {
        use cases::b11_default::sample::clock::v1 as default;
        let h = Harness::start(default::ClockProcedures::new(Default_)).await;
        let client = default::ClockClient::new(h.config());
        client.ping(wkt::Empty {}).await.unwrap();
        assert_eq!(
            count(
                client
                    .wait(wkt::Duration::default())
                    .await
                    .unwrap()
                    .into_body()
            )
            .await,
            2
        );
        client.count(wkt::Int64Value { value: 5 }).await.unwrap();

        use cases::b11_empty_unit::sample::clock::v1 as unit;
        let h = Harness::start(unit::ClockProcedures::new(Unit)).await;
        let client = unit::ClockClient::new(h.config());
        let () = client.ping(()).await.unwrap().into_body();
        client.now(()).await.unwrap();
        // Empty is a zero-length message on the wire, whichever Rust type stands for it.
        assert!(().encode_to_vec().is_empty() && wkt::Empty {}.encode_to_vec().is_empty());

        use cases::b11_extern_tag::sample::clock::v1 as tagged;
        let h = Harness::start(tagged::ClockProcedures::new(Extern)).await;
        let client = tagged::ClockClient::new(h.config());
        let tag = cases::Tag { name: "t".into() };
        assert_eq!(client.label(tag.clone()).await.unwrap().body, tag);
    }
}

mod b13 {
    use super::*;
    use cases::b13::sample::presence::v1::*;

    struct Impl;
    impl Search for Impl {
        echo!(query, Filter);
    }

    #[tokio::test]
    async fn optional_fields_have_presence() {
        let unset = Filter::default();
        assert!(unset.encode_to_vec().is_empty());
        let zero = Filter {
            name: Some(String::new()),
            strict: Some(false),
            range: Some(filter::Range {
                low: Some(0),
                high: None,
            }),
            ..Default::default()
        };
        let bytes = zero.encode_to_vec();
        assert!(!bytes.is_empty(), "zero values that are set are encoded");
        assert_eq!(Filter::decode(&bytes[..]).unwrap(), zero);
        let h = Harness::start(SearchProcedures::new(Impl)).await;
        let client = SearchClient::new(h.config());
        assert_eq!(client.query(zero.clone()).await.unwrap().body, zero);
        let json = client.with_encoding(omnirelay::Encoding::Json);
        assert_eq!(json.query(zero.clone()).await.unwrap().body, zero);
    }
}

mod b15 {
    use super::*;
    use cases::b15::sample::svconly::{types::v1 as types, v1::*};

    struct Impl;
    impl Placeholder for Impl {}
    impl Jobs for Impl {
        answer!(start, types::Job, types::JobState);
        stream_out!(poll, types::Job, types::JobState);
    }

    #[tokio::test]
    async fn empty_services_register_harmlessly() {
        let empty = omnirelay::IntoProcedures::into_procedures(PlaceholderProcedures::new(Impl));
        assert!(empty.is_empty());
        let _client = PlaceholderClient::new(Harness::start(Vec::new()).await.config());
        let h = Harness::start(JobsProcedures::new(Impl)).await;
        let client = JobsClient::new(h.config());
        client.start(types::Job::default()).await.unwrap();
        assert_eq!(
            count(
                client
                    .poll(types::Job::default())
                    .await
                    .unwrap()
                    .into_body()
            )
            .await,
            2
        );
        let _unused: types::AuditEntry = Default::default();
    }
}

mod b16 {
    use super::*;
    use cases::b16::sample::hyphen::{shared, v1::*};

    struct Impl;
    impl Ticker for Impl {
        answer!(tick, TickRequest, shared::Stamp);
    }

    #[tokio::test]
    async fn hyphenated_files_serve_and_keep_their_names_in_descriptors() {
        let h = Harness::start(TickerProcedures::new(Impl)).await;
        assert!(names(&h).contains(&"sample.hyphen.v1.Ticker::Tick".to_owned()));
        TickerClient::new(h.config())
            .tick(TickRequest::default())
            .await
            .unwrap();
        let set = prost_types_decode(FILE_DESCRIPTOR_SET);
        assert!(
            set.contains(&"B16_hyphen-and.dots-name.proto".to_owned()),
            "{set:?}"
        );
        assert!(
            set.contains(&"deps/B16/shared-types.v2.proto".to_owned()),
            "{set:?}"
        );
    }

    fn prost_types_decode(bytes: &[u8]) -> Vec<String> {
        omnirelay::__private::prost_types::FileDescriptorSet::decode(bytes)
            .unwrap()
            .file
            .into_iter()
            .map(|f| f.name().to_owned())
            .collect()
    }
}

mod b17 {
    use super::*;

    fn filled_btree() -> cases::b17_btree_bytes::sample::maps::v1::Inventory {
        use cases::b17_btree_bytes::sample::maps::v1::*;
        let mut inventory = Inventory::default();
        for i in 0..20 {
            inventory
                .blobs
                .insert(format!("k{i}"), bytes::Bytes::from(vec![i as u8]));
            inventory.levels.insert(i, 7); // an unknown enum number is kept
            inventory.names.insert(i as u32, format!("n{i}"));
        }
        inventory
            .children
            .insert("child".into(), Inventory::default());
        inventory
    }

    #[test]
    fn btree_maps_encode_deterministically_and_keep_unknown_enums() {
        let a = filled_btree();
        let b = filled_btree();
        assert_eq!(a.encode_to_vec(), b.encode_to_vec());
        let decoded =
            cases::b17_btree_bytes::sample::maps::v1::Inventory::decode(&a.encode_to_vec()[..])
                .unwrap();
        assert_eq!(decoded, a);
        assert_eq!(decoded.levels[&3], 7);
    }

    struct Impl;
    impl cases::b17_hash_vec::sample::maps::v1::Stock for Impl {
        echo!(snapshot, cases::b17_hash_vec::sample::maps::v1::Inventory);
        stream_in!(
            merge,
            cases::b17_hash_vec::sample::maps::v1::Inventory,
            cases::b17_hash_vec::sample::maps::v1::Inventory
        );
    }

    #[tokio::test]
    async fn maps_serve_in_both_encodings() {
        use cases::b17_hash_vec::sample::maps::v1::*;
        let h = Harness::start(StockProcedures::new(Impl)).await;
        let mut inventory = Inventory::default();
        inventory.blobs.insert("a".into(), vec![1, 2]);
        inventory.flags.insert(true, Item::default());
        inventory.weights.insert(-5, 1.5);
        inventory.chunks.insert(-1, vec![9]);
        for encoding in [omnirelay::Encoding::Proto, omnirelay::Encoding::Json] {
            let client = StockClient::new(h.config()).with_encoding(encoding);
            assert_eq!(
                client.snapshot(inventory.clone()).await.unwrap().body,
                inventory
            );
        }
    }
}

mod b20 {
    use super::*;
    use cases::b20::sample::stream::v1::*;

    struct Impl;
    impl Pipeline for Impl {
        answer!(submit, Job, Ack);
        stream_out!(follow, Job, Event);
        stream_in!(upload, Chunk, Ack);
        duplex_echo!(converse, Event);
        stream_out!(tail_logs, Job, LogLine);
        stream_out!(follow_stream, Job, FollowStream);
        answer!(peek, Job, FollowStream);
    }

    #[tokio::test]
    async fn all_four_shapes_serve() {
        let h = Harness::start(PipelineProcedures::new(Impl)).await;
        let client = PipelineClient::new(h.config());
        client.submit(Job::default()).await.unwrap();
        assert_eq!(
            count(client.follow(Job::default()).await.unwrap().into_body()).await,
            2
        );
        client
            .upload(futures::stream::iter([Chunk::default(), Chunk::default()]))
            .await
            .unwrap();
        let echoed = client
            .converse(futures::stream::iter(vec![Event::default(); 3]))
            .await
            .unwrap()
            .into_body();
        assert_eq!(count(echoed).await, 3);
        assert_eq!(
            count(client.tail_logs(Job::default()).await.unwrap().into_body()).await,
            2
        );
        assert_eq!(
            count(
                client
                    .follow_stream(Job::default())
                    .await
                    .unwrap()
                    .into_body()
            )
            .await,
            2
        );
        client.peek(Job::default()).await.unwrap();
    }
}

mod c01 {
    use super::*;
    use cases::c01::sample::comments::v1::*;

    struct Impl;
    impl Notes for Impl {
        echo!(echo, Note);
        duplex_echo!(stream, Note);
    }

    #[tokio::test]
    async fn documented_service_serves() {
        let h = Harness::start(NotesProcedures::new(Impl)).await;
        let client = NotesClient::new(h.config());
        let note = Note {
            text: "☺".into(),
            ..Default::default()
        };
        assert_eq!(client.echo(note.clone()).await.unwrap().body, note);
    }
}

mod c02 {
    use super::*;
    use cases::c02::sample::helpers::v1::*;

    /// Answers with the name of the method that served the call.
    macro_rules! named {
        ($name:ident) => {
            async fn $name(&self, _request: Request<Ping>) -> Result<Response<Ping>> {
                Ok(Response::new(Ping {
                    value: stringify!($name).into(),
                }))
            }
        };
    }

    struct Impl;
    impl Helpers for Impl {
        named!(new_rpc);
        named!(with_encoding_rpc);
        named!(get);
        named!(get_rpc);
        named!(get_with_rpc);
        named!(service);
        duplex_echo!(connect, Ping);
        stream_out!(ready, Ping, Ping);
        stream_in!(call, Ping, Ping);
    }

    #[tokio::test]
    async fn rpcs_named_like_helpers_or_each_other_stay_distinct() {
        let h = Harness::start(HelpersProcedures::new(Impl)).await;
        let n = names(&h);
        for name in ["New", "WithEncoding", "Get", "get", "GetWith", "Service"] {
            assert!(
                n.contains(&format!("sample.helpers.v1.Helpers::{name}")),
                "{n:?}"
            );
        }
        assert_eq!(helpers_names::GET_RPC, "sample.helpers.v1.Helpers::get");
        let client = HelpersClient::new(h.config()).with_encoding(omnirelay::Encoding::Json);
        let value = |r: Response<Ping>| r.into_body().value;
        assert_eq!(
            value(client.new_rpc(Ping::default()).await.unwrap()),
            "new_rpc"
        );
        assert_eq!(value(client.get(Ping::default()).await.unwrap()), "get");
        assert_eq!(
            value(client.get_rpc(Ping::default()).await.unwrap()),
            "get_rpc"
        );
        assert_eq!(
            value(client.get_with_rpc(Ping::default()).await.unwrap()),
            "get_with_rpc"
        );
        assert_eq!(
            value(client.service(Ping::default()).await.unwrap()),
            "service"
        );
    }
}
