//! The query path under random input: whatever bytes arrive, `decide`
//! never panics, and every reply it makes encodes, is a response, and
//! carries the query's ID.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, Query};
use hickory_proto::rr::{Name, RecordType};
use hostnet_dns::answer::{decide, udp_bytes, Outcome};
use hostnet_dns::zone::{Host, Names, Zone};
use proptest::prelude::*;

fn names() -> Names {
    Names::build(&Zone {
        network: "N".into(),
        listen: vec!["10.0.0.1".parse().unwrap()],
        netns: None,
        domain: Some("corp".into()),
        hosts: vec![Host {
            name: "web".into(),
            address: "10.0.0.2".parse().unwrap(),
            domain: None,
        }],
    })
    .0
}

fn check(bytes: &[u8], client: IpAddr, names: &Names) {
    match decide(bytes, client, names) {
        Outcome::Reply(reply) => {
            let out = udp_bytes(&reply, 512).expect("a reply encodes");
            let back = Message::from_vec(&out).expect("a reply parses");
            assert_eq!(back.message_type(), MessageType::Response);
            assert_eq!(&out[..2], &bytes[..2], "the reply keeps the query's ID");
        }
        Outcome::Forward(q) => {
            assert_eq!(q.queries().len(), 1);
            q.to_vec().expect("a forwarded query encodes");
        }
        Outcome::Drop => {}
    }
}

fn valid_query() -> Vec<u8> {
    let mut m = Message::new();
    m.set_id(0x1234).set_recursion_desired(true);
    m.add_query(Query::query(
        Name::from_ascii("web.corp.").unwrap(),
        RecordType::A,
    ));
    m.to_vec().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    #[test]
    fn random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600), member in any::<bool>()) {
        let client: IpAddr = if member { "10.0.0.2" } else { "10.9.9.9" }.parse().unwrap();
        check(&bytes, client, &names());
    }

    #[test]
    fn mutated_queries(flips in proptest::collection::vec((0usize..64, any::<u8>()), 1..8), cut in 0usize..64) {
        let mut bytes = valid_query();
        for (at, b) in flips {
            let n = bytes.len();
            bytes[at % n] ^= b;
        }
        let keep = bytes.len().saturating_sub(cut % 8);
        bytes.truncate(keep);
        check(&bytes, "10.0.0.2".parse().unwrap(), &names());
    }
}
