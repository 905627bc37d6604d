//! What `omnirelay-build` generates, exercised end to end: well-known types (through
//! pbjson-types), `extern_path` (`google.protobuf.Empty` as `()`), the proto3 JSON mapping, the
//! include file, the procedure-name constants and the descriptor outputs.

use bytes::Bytes;
use omnirelay::__private::pbjson_types::{Duration, Struct, Timestamp, Value, value::Kind};
use omnirelay::__private::prost::Message;
use omnirelay::codec::RawCodec;
use omnirelay::{CallOptions, Client, Encoding, Request, Response, Result};
use omnirelay_tests::Harness;
use omnirelay_tests::generated::omnirelay::tests::wkt::v1::{
    Event, Events, EventsClient, EventsProcedures, FILE_DESCRIPTOR_SET, Level, event, events_names,
};

struct Store;

impl Events for Store {
    async fn echo(&self, request: Request<Event>) -> Result<Response<Event>> {
        Ok(Response::new(request.into_body()))
    }

    async fn forget(&self, _request: Request<Event>) -> Result<Response<()>> {
        Ok(Response::new(()))
    }

    async fn latest(&self, _request: Request<()>) -> Result<Response<Event>> {
        Ok(Response::new(sample()))
    }
}

fn sample() -> Event {
    let mut attributes = Struct::default();
    attributes.fields.insert(
        "region".into(),
        Value {
            kind: Some(Kind::StringValue("eu".into())),
        },
    );
    Event {
        at: Some(Timestamp {
            seconds: 1_700_000_000,
            nanos: 0,
        }),
        took: Some(Duration {
            seconds: 1,
            nanos: 500_000_000,
        }),
        attributes: Some(attributes),
        note: Some("n".into()),
        counts: [("big".to_owned(), 9_007_199_254_740_993i64)].into(),
        level: Level::Info as i32,
        blob: vec![0, 1, 2, 250],
        target: Some(event::Target::DeviceId(7)),
    }
}

#[tokio::test]
async fn well_known_types_and_unit_round_trip_in_both_encodings() {
    let h = Harness::start(EventsProcedures::new(Store)).await;
    for encoding in [Encoding::Proto, Encoding::Json] {
        let client = EventsClient::new(h.config()).with_encoding(encoding);
        assert_eq!(
            client.echo(sample()).await.unwrap().body,
            sample(),
            "{encoding}"
        );
        client.forget(sample()).await.unwrap();
        assert_eq!(
            client.latest(()).await.unwrap().body,
            sample(),
            "{encoding}"
        );
    }
}

#[tokio::test]
async fn json_follows_the_proto3_mapping() {
    let h = Harness::start(EventsProcedures::new(Store)).await;
    let raw = Client::with_codec(h.config(), RawCodec, Encoding::Json);
    let body = Bytes::from(serde_json::to_vec(&sample()).unwrap());
    let response = raw
        .unary::<Bytes, Bytes>(events_names::ECHO, &body, CallOptions::new())
        .await
        .unwrap();
    let text = String::from_utf8(response.body.to_vec()).unwrap();
    for expected in [
        r#""at":"2023-11-14T22:13:20+00:00""#,
        r#""took":"1.500s""#,
        r#""attributes":{"region":"eu"}"#,
        r#""counts":{"big":"9007199254740993"}"#,
        r#""level":"LEVEL_INFO""#,
        r#""blob":"AAEC+g==""#,
        r#""deviceId":"7""#,
        r#""note":"n""#,
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }
}

#[test]
fn names_and_descriptors_are_emitted() {
    assert_eq!(events_names::SERVICE, "omnirelay.tests.wkt.v1.Events");
    assert_eq!(
        events_names::FORGET,
        "omnirelay.tests.wkt.v1.Events::Forget"
    );
    let set =
        omnirelay::__private::prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let names: Vec<&str> = set.file.iter().map(|f| f.name()).collect();
    assert!(names.contains(&"wkt_test.proto"), "{names:?}");
    assert!(
        names.contains(&"google/protobuf/timestamp.proto"),
        "{names:?}"
    );
    let service = &set
        .file
        .iter()
        .find(|f| f.name() == "wkt_test.proto")
        .unwrap()
        .service[0];
    assert_eq!(service.name(), "Events");

    // The builder's `file_descriptor_set_path` output holds the same files.
    let written = std::fs::read(concat!(env!("OUT_DIR"), "/wkt_test.fds")).unwrap();
    let written =
        omnirelay::__private::prost_types::FileDescriptorSet::decode(&written[..]).unwrap();
    assert_eq!(written.file.len(), set.file.len());
}
