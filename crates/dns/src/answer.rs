//! What the proxy does with one query: answer it from the network's names,
//! refuse it, or forward it. Pure: no sockets, no clock.

use std::net::IpAddr;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::zone::Names;

/// TTL of endpoint names: 0, so a deleted endpoint's name is gone at once
/// (the proxy is on the endpoint's own link; asking again is cheap).
pub const LOCAL_TTL: u32 = 0;

/// The UDP payload size the proxy advertises (EDNS), the DNS flag day's
/// safe size.
pub const EDNS_PAYLOAD: u16 = 1232;

/// The decision for one query.
#[derive(Debug)]
pub enum Outcome {
    /// Send this response.
    Reply(Message),
    /// Ask the upstream resolvers (the query parsed and is well formed).
    Forward(Message),
    /// Say nothing (a response sent to us, or bytes without a DNS header).
    Drop,
}

/// Decide what to do with the bytes of a query from `client`.
pub fn decide(bytes: &[u8], client: IpAddr, names: &Names) -> Outcome {
    let query = match Message::from_vec(bytes) {
        Ok(m) => m,
        Err(_) => return malformed(bytes),
    };
    if query.message_type() != MessageType::Query {
        return Outcome::Drop;
    }
    if !names.is_client(&client) {
        return Outcome::Reply(error(&query, ResponseCode::Refused));
    }
    if query.op_code() != OpCode::Query {
        return Outcome::Reply(error(&query, ResponseCode::NotImp));
    }
    let [question] = query.queries() else {
        return Outcome::Reply(error(&query, ResponseCode::FormErr));
    };
    if question.query_class() != DNSClass::IN {
        return Outcome::Forward(query);
    }
    match local_answers(question, names) {
        Some(records) => {
            let mut reply = response(&query, ResponseCode::NoError);
            reply.set_authoritative(true);
            reply.add_answers(records);
            Outcome::Reply(reply)
        }
        None => Outcome::Forward(query),
    }
}

/// The records for a question about one of the network's names or
/// addresses; `None` when it is not about them. An empty list means the
/// name exists without records of that type (NODATA).
fn local_answers(q: &Query, names: &Names) -> Option<Vec<Record>> {
    let name = q.name();
    if q.query_type() == RecordType::PTR {
        let ip = name
            .parse_arpa_name()
            .ok()
            .filter(|net| net.prefix_len() == net.max_prefix_len())?;
        let target = names.name_of(&ip.addr())?;
        return Some(vec![Record::from_rdata(
            name.clone(),
            LOCAL_TTL,
            RData::PTR(PTR(target.clone())),
        )]);
    }
    let fqdn = if name.is_fqdn() {
        name.clone()
    } else {
        let mut n = name.clone();
        n.set_fqdn(true);
        n
    };
    let addresses = names.addresses(&fqdn)?;
    let want_a = matches!(q.query_type(), RecordType::A | RecordType::ANY);
    let want_aaaa = matches!(q.query_type(), RecordType::AAAA | RecordType::ANY);
    Some(
        addresses
            .iter()
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) if want_a => Some(RData::A(A(*v4))),
                IpAddr::V6(v6) if want_aaaa => Some(RData::AAAA(AAAA(*v6))),
                _ => None,
            })
            .map(|data| Record::from_rdata(name.clone(), LOCAL_TTL, data))
            .collect(),
    )
}

/// A response skeleton to `query`: same ID, question and RD; RA set; EDNS
/// when the query had it.
pub fn response(query: &Message, code: ResponseCode) -> Message {
    let mut m = Message::new();
    m.set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(code);
    m.add_queries(query.queries().iter().cloned());
    if query.extensions().is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        m.set_edns(edns);
    }
    m
}

/// An error response to a parsed query.
pub fn error(query: &Message, code: ResponseCode) -> Message {
    response(query, code)
}

/// Bytes that are not a DNS message: FORMERR when they at least carry a
/// query's header (so the client stops waiting), else nothing.
fn malformed(bytes: &[u8]) -> Outcome {
    let Ok(header) = Header::read(&mut BinDecoder::new(bytes)) else {
        return Outcome::Drop;
    };
    if header.message_type() != MessageType::Query {
        return Outcome::Drop;
    }
    Outcome::Reply(Message::error_msg(
        header.id(),
        header.op_code(),
        ResponseCode::FormErr,
    ))
}

/// The bytes to send back over UDP to a client that accepts `limit`
/// bytes: the message, or its truncated form (TC set, no records) so the
/// client asks again over TCP.
pub fn udp_bytes(reply: &Message, limit: u16) -> Option<Vec<u8>> {
    let bytes = reply.to_vec().ok()?;
    if bytes.len() <= limit as usize {
        return Some(bytes);
    }
    reply.truncate().to_vec().ok()
}

/// The UDP size to answer a query's sender with: what it accepts (512
/// without EDNS), at most [`EDNS_PAYLOAD`] (no fragments).
pub fn udp_limit(query: &Message) -> u16 {
    query.max_payload().clamp(512, EDNS_PAYLOAD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zone::{Host, Zone};
    use hickory_proto::rr::Name;
    use std::str::FromStr;

    fn names() -> Names {
        Names::build(&Zone {
            network: "N".into(),
            listen: vec!["10.0.0.1".parse().unwrap()],
            netns: None,
            domain: Some("corp".into()),
            hosts: vec![
                Host {
                    name: "web".into(),
                    address: "10.0.0.2".parse().unwrap(),
                    domain: None,
                },
                Host {
                    name: "db".into(),
                    address: "10.0.0.3".parse().unwrap(),
                    domain: None,
                },
            ],
        })
        .0
    }

    fn query(name: &str, ty: RecordType) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(4242).set_recursion_desired(true);
        m.add_query(Query::query(Name::from_str(name).unwrap(), ty));
        m.to_vec().unwrap()
    }

    const CLIENT: &str = "10.0.0.3";

    fn reply(bytes: &[u8], from: &str) -> Message {
        match decide(bytes, from.parse().unwrap(), &names()) {
            Outcome::Reply(m) => Message::from_vec(&m.to_vec().unwrap()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn answers_endpoint_names() {
        for n in ["web", "web.", "WEB.corp.", "web.corp"] {
            let m = reply(&query(n, RecordType::A), CLIENT);
            assert_eq!(m.id(), 4242);
            assert_eq!(m.response_code(), ResponseCode::NoError);
            assert!(m.authoritative() && m.recursion_available());
            let a: Vec<_> = m.answers().iter().map(|r| r.data().clone()).collect();
            assert_eq!(a, vec![RData::A(A("10.0.0.2".parse().unwrap()))], "{n}");
        }
        // The name exists, with no IPv6 address: NODATA, not forwarded.
        let m = reply(&query("web", RecordType::AAAA), CLIENT);
        assert_eq!(m.response_code(), ResponseCode::NoError);
        assert!(m.answers().is_empty());
    }

    #[test]
    fn answers_reverse_lookups() {
        let m = reply(&query("2.0.0.10.in-addr.arpa.", RecordType::PTR), CLIENT);
        assert_eq!(
            m.answers()[0].data(),
            &RData::PTR(PTR(Name::from_str("web.corp.").unwrap()))
        );
        assert!(matches!(
            decide(
                &query("9.0.0.10.in-addr.arpa.", RecordType::PTR),
                CLIENT.parse().unwrap(),
                &names()
            ),
            Outcome::Forward(_)
        ));
    }

    #[test]
    fn other_names_are_forwarded() {
        for n in ["example.com", "web.other", "mail"] {
            assert!(matches!(
                decide(&query(n, RecordType::A), CLIENT.parse().unwrap(), &names()),
                Outcome::Forward(_)
            ));
        }
    }

    #[test]
    fn strangers_are_refused() {
        for from in ["10.0.0.1", "10.0.0.99", "192.0.2.1"] {
            let m = reply(&query("web", RecordType::A), from);
            assert_eq!(m.response_code(), ResponseCode::Refused, "{from}");
            assert!(m.answers().is_empty());
        }
    }

    #[test]
    fn malformed_queries() {
        let good = query("web", RecordType::A);
        // Header only, claiming one question: FORMERR with the query's ID.
        let m = reply(&good[..12], CLIENT);
        assert_eq!((m.id(), m.response_code()), (4242, ResponseCode::FormErr));
        // Too short for a header, or a response sent to us: silence.
        for bytes in [&good[..5], &[][..]] {
            assert!(matches!(
                decide(bytes, CLIENT.parse().unwrap(), &names()),
                Outcome::Drop
            ));
        }
        let mut response = Message::from_vec(&good).unwrap();
        response.set_message_type(MessageType::Response);
        assert!(matches!(
            decide(
                &response.to_vec().unwrap(),
                CLIENT.parse().unwrap(),
                &names()
            ),
            Outcome::Drop
        ));
        // Two questions, or none.
        let mut two = Message::from_vec(&good).unwrap();
        two.add_query(Query::query(Name::from_str("db").unwrap(), RecordType::A));
        assert_eq!(
            reply(&two.to_vec().unwrap(), CLIENT).response_code(),
            ResponseCode::FormErr
        );
        let mut none = Message::new();
        none.set_id(7);
        assert_eq!(
            reply(&none.to_vec().unwrap(), CLIENT).response_code(),
            ResponseCode::FormErr
        );
    }

    #[test]
    fn large_udp_replies_are_truncated() {
        let mut m = response(
            &Message::from_vec(&query("big", RecordType::A)).unwrap(),
            ResponseCode::NoError,
        );
        for i in 0..100u8 {
            m.add_answer(Record::from_rdata(
                Name::from_str("big.").unwrap(),
                60,
                RData::A(A([10, 1, 0, i].into())),
            ));
        }
        let full = m.to_vec().unwrap();
        assert!(full.len() > 512);
        let sent = Message::from_vec(&udp_bytes(&m, 512).unwrap()).unwrap();
        assert!(sent.truncated() && sent.answers().is_empty());
        assert_eq!(udp_bytes(&m, 4096).unwrap(), full);
    }
}
