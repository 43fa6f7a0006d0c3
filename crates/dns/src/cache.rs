//! A cache of upstream answers that honours their TTLs. Pure: the caller
//! passes the time.
//!
//! Positive answers live as long as their smallest TTL; NXDOMAIN and
//! NODATA as long as the SOA in their authority section says (RFC 2308),
//! at most [`MAX_NEGATIVE_TTL`]. Failures, truncated answers and TTL 0 are
//! not kept. A hit comes back with every TTL lowered by the time it spent
//! in the cache.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};

/// Longest time an answer is kept, whatever its TTL (a day).
pub const MAX_TTL: u32 = 86_400;
/// Longest time a negative answer is kept.
pub const MAX_NEGATIVE_TTL: u32 = 300;

/// What a cached answer answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    name: Name,
    ty: RecordType,
    class: DNSClass,
}

impl Key {
    /// The key of a query's (first) question, if it has one.
    pub fn of(query: &Message) -> Option<Key> {
        let q = query.queries().first()?;
        Some(Key {
            name: q.name().to_lowercase(),
            ty: q.query_type(),
            class: q.query_class(),
        })
    }
}

struct Entry {
    reply: Message,
    stored: Instant,
    ttl: u32,
}

/// The cache, bounded to `capacity` answers.
pub struct Cache {
    entries: HashMap<Key, Entry>,
    capacity: usize,
}

impl Cache {
    /// An empty cache that keeps at most `capacity` answers.
    pub fn new(capacity: usize) -> Self {
        Cache {
            entries: HashMap::new(),
            capacity,
        }
    }

    /// The number of answers kept (expired ones included until evicted).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A live answer for `key` with TTLs aged to `now`.
    pub fn get(&self, key: &Key, now: Instant) -> Option<Message> {
        let e = self.entries.get(key)?;
        let age = secs(now.saturating_duration_since(e.stored));
        if age >= e.ttl {
            return None;
        }
        let mut reply = e.reply.clone();
        let age_all = |list: &mut Vec<hickory_proto::rr::Record>| {
            for r in list.iter_mut() {
                r.set_ttl(r.ttl().saturating_sub(age));
            }
        };
        age_all(reply.answers_mut());
        age_all(reply.name_servers_mut());
        age_all(reply.additionals_mut());
        Some(reply)
    }

    /// Keep `reply` (an upstream's answer to the question of `key`) if it
    /// may be cached.
    pub fn put(&mut self, key: Key, reply: &Message, now: Instant) {
        let Some(ttl) = cache_ttl(reply) else {
            return;
        };
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&key) {
            self.entries
                .retain(|_, e| secs(now.saturating_duration_since(e.stored)) < e.ttl);
            if self.entries.len() >= self.capacity {
                if let Some(k) = self.entries.keys().next().cloned() {
                    self.entries.remove(&k);
                }
            }
        }
        let mut reply = reply.clone();
        reply.set_id(0);
        self.entries.insert(
            key,
            Entry {
                reply,
                stored: now,
                ttl,
            },
        );
    }
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// How long `reply` may be kept, or `None` when not at all.
pub fn cache_ttl(reply: &Message) -> Option<u32> {
    if reply.truncated() {
        return None;
    }
    let ttl = match reply.response_code() {
        ResponseCode::NoError if !reply.answers().is_empty() => {
            reply.answers().iter().map(|r| r.ttl()).min()?.min(MAX_TTL)
        }
        ResponseCode::NoError | ResponseCode::NXDomain => reply
            .name_servers()
            .iter()
            .find_map(|r| match r.data() {
                RData::SOA(soa) => Some(r.ttl().min(soa.minimum())),
                _ => None,
            })?
            .min(MAX_NEGATIVE_TTL),
        _ => return None,
    };
    (ttl > 0).then_some(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{MessageType, Query};
    use hickory_proto::rr::rdata::{A, SOA};
    use hickory_proto::rr::Record;
    use std::str::FromStr;

    fn name(s: &str) -> Name {
        Name::from_str(s).unwrap()
    }

    fn query(n: &str) -> Message {
        let mut m = Message::new();
        m.add_query(Query::query(name(n), RecordType::A));
        m
    }

    fn answer(n: &str, ttls: &[u32]) -> Message {
        let mut m = query(n);
        m.set_message_type(MessageType::Response);
        for (i, ttl) in ttls.iter().enumerate() {
            m.add_answer(Record::from_rdata(
                name(n),
                *ttl,
                RData::A(A([192, 0, 2, i as u8].into())),
            ));
        }
        m
    }

    fn negative(n: &str, soa_ttl: u32, minimum: u32) -> Message {
        let mut m = query(n);
        m.set_message_type(MessageType::Response)
            .set_response_code(ResponseCode::NXDomain);
        let soa = SOA::new(name("ns."), name("admin."), 1, 60, 60, 60, minimum);
        m.add_name_server(Record::from_rdata(
            name("example."),
            soa_ttl,
            RData::SOA(soa),
        ));
        m
    }

    #[test]
    fn honours_the_smallest_ttl_and_ages_answers() {
        let t0 = Instant::now();
        let mut c = Cache::new(10);
        let key = Key::of(&query("a.example.")).unwrap();
        c.put(key.clone(), &answer("a.example.", &[300, 30]), t0);
        let hit = c.get(&key, t0 + Duration::from_secs(10)).unwrap();
        let ttls: Vec<u32> = hit.answers().iter().map(|r| r.ttl()).collect();
        assert_eq!(ttls, [290, 20]);
        assert!(c.get(&key, t0 + Duration::from_secs(29)).is_some());
        assert!(c.get(&key, t0 + Duration::from_secs(30)).is_none());
        // Case does not matter.
        assert!(c.get(&Key::of(&query("A.EXAMPLE.")).unwrap(), t0).is_some());
    }

    #[test]
    fn negative_answers_follow_the_soa() {
        assert_eq!(cache_ttl(&negative("x.example.", 3600, 60)), Some(60));
        assert_eq!(cache_ttl(&negative("x.example.", 30, 60)), Some(30));
        assert_eq!(
            cache_ttl(&negative("x.example.", 9999, 9999)),
            Some(MAX_NEGATIVE_TTL)
        );
        let mut no_soa = query("x.");
        no_soa.set_response_code(ResponseCode::NXDomain);
        assert_eq!(cache_ttl(&no_soa), None);
    }

    #[test]
    fn failures_truncation_and_zero_ttl_are_not_kept() {
        let mut servfail = answer("a.", &[60]);
        servfail.set_response_code(ResponseCode::ServFail);
        let mut truncated = answer("a.", &[60]);
        truncated.set_truncated(true);
        for m in [servfail, truncated, answer("a.", &[0])] {
            assert_eq!(cache_ttl(&m), None);
        }
        assert_eq!(cache_ttl(&answer("a.", &[999_999])), Some(MAX_TTL));
    }

    #[test]
    fn stays_within_capacity() {
        let t0 = Instant::now();
        let mut c = Cache::new(3);
        for i in 0..10 {
            let n = format!("n{i}.example.");
            c.put(Key::of(&query(&n)).unwrap(), &answer(&n, &[60]), t0);
            assert!(c.len() <= 3);
        }
        let last = Key::of(&query("n9.example.")).unwrap();
        assert!(c.get(&last, t0).is_some());
    }
}
