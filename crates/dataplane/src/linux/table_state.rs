//! What hostnet's tables hold in the kernel, read over nfnetlink: each
//! table's comment (the skeleton fingerprint, [`hostnet_nft::Skeleton`]),
//! every named set's elements with their data, and the base chains that
//! hook devices ([`hostnet_nft::hook`]), all as [`SetElement`]s, so a
//! restart can diff them against the store ([`hostnet_nft::sync`]).
//! Reads only: dumps, taken again when the kernel flags one interrupted.

use std::collections::HashSet;
use std::sync::Mutex;

use hostnet_nft::hook::HookDesign;
use hostnet_nft::{Data, Family, NetdevHook, SetElement, Skeleton};

use super::netlink::{attributes, Message, NetlinkError, Socket};
use super::nf_tables_abi::*;

fn nft_message(kind: u16, family: Family) -> Message {
    let mut msg = Message::new((NFNL_SUBSYS_NFTABLES << 8) | kind, libc::NLM_F_DUMP as u16);
    msg.header(&[family.nfproto(), 0, 0, 0]);
    msg
}

/// Runs a dump until the kernel reports it consistent.
fn dump<T>(
    sock: &mut Socket,
    request: impl Fn() -> Message,
    reply_kind: u16,
    parse: impl Fn(&[u8], &mut Vec<T>),
) -> Result<Vec<T>, NetlinkError> {
    loop {
        let mut found = Vec::new();
        let consistent = sock.dump(request(), |reply| {
            if reply.kind == (NFNL_SUBSYS_NFTABLES << 8) | reply_kind {
                if let Some(attrs) = reply.payload.get(4..) {
                    parse(attrs, &mut found);
                }
            }
        })?;
        if consistent {
            return Ok(found);
        }
    }
}

/// A string attribute without its NUL.
fn string(v: &[u8]) -> String {
    String::from_utf8_lossy(v.split(|&b| b == 0).next().unwrap_or_default()).into_owned()
}

/// Whether every table of `skeleton` is in the kernel with the
/// skeleton's fingerprint as its comment.
pub fn holds_skeleton(sock: &mut Socket, skeleton: &Skeleton) -> Result<bool, NetlinkError> {
    let comment = skeleton.comment();
    for (family, table) in &skeleton.tables {
        let found = dump(
            sock,
            || nft_message(NFT_MSG_GETTABLE, *family),
            NFT_MSG_NEWTABLE,
            |attrs, found: &mut Vec<Option<String>>| {
                let mut name = None;
                let mut note = None;
                for (k, v) in attributes(attrs) {
                    match k {
                        NFTA_TABLE_NAME => name = Some(string(v)),
                        NFTA_TABLE_USERDATA => note = table_comment(v),
                        _ => {}
                    }
                }
                if name.as_deref() == Some(*table) {
                    found.push(note);
                }
            },
        )?;
        if found.first().and_then(Option::as_deref) != Some(comment.as_str()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The comment in a table's userdata: libnftnl's type-length-value
/// records (one byte each for type and length), the value NUL-terminated.
fn table_comment(mut udata: &[u8]) -> Option<String> {
    while let [kind, len, rest @ ..] = udata {
        let value = rest.get(..usize::from(*len))?;
        if *kind == NFTNL_UDATA_TABLE_COMMENT {
            return Some(string(value));
        }
        udata = &rest[usize::from(*len)..];
    }
    None
}

/// Every element of the named sets of `skeleton`'s tables (but those
/// the skeleton fills itself), every device their netdev base chains hook
/// in `design`, and every rules chain, as [`SetElement`]s
/// ([`chain_elements`]); None if devices are hooked in the other design.
/// A set element's text is empty (the kernel does not keep nft's;
/// [`key_text`] names one for an error).
pub fn elements(
    sock: &mut Socket,
    skeleton: &Skeleton,
    design: HookDesign,
) -> Result<Option<Vec<SetElement>>, NetlinkError> {
    let mut out = Vec::new();
    for &(family, table) in &skeleton.tables {
        for set in set_names(sock, family, table)? {
            if skeleton.fills(family, table, &set) {
                continue;
            }
            let set = intern(&set);
            let parsed = dump(
                sock,
                || {
                    let mut msg = nft_message(NFT_MSG_GETSETELEM, family);
                    msg.attr_str(NFTA_SET_ELEM_LIST_TABLE, table)
                        .attr_str(NFTA_SET_ELEM_LIST_SET, set);
                    msg
                },
                NFT_MSG_NEWSETELEM,
                |attrs, found: &mut Vec<SetElement>| {
                    found.extend(parse_elements(attrs, family, table, set))
                },
            )?;
            out.extend(parsed);
        }
        match chain_elements(sock, skeleton, family, table, design)? {
            Some(chains) => out.extend(chains),
            None => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// The named sets and maps of one table the store fills (neither a rule's
/// anonymous set nor one the packet path fills).
fn set_names(sock: &mut Socket, family: Family, table: &str) -> Result<Vec<String>, NetlinkError> {
    dump(
        sock,
        || {
            let mut msg = nft_message(NFT_MSG_GETSET, family);
            msg.attr_str(NFTA_SET_TABLE, table);
            msg
        },
        NFT_MSG_NEWSET,
        |attrs, found: &mut Vec<String>| {
            let (mut name, mut in_table, mut flags) = (None, false, 0);
            for (k, v) in attributes(attrs) {
                match k {
                    NFTA_SET_TABLE => in_table = string(v) == table,
                    NFTA_SET_NAME => name = Some(string(v)),
                    NFTA_SET_FLAGS => flags = v.try_into().map(u32::from_be_bytes).unwrap_or(0),
                    _ => {}
                }
            }
            if in_table && flags & (NFT_SET_ANONYMOUS | NFT_SET_EVAL) == 0 {
                found.extend(name);
            }
        },
    )
}

/// The elements of one `NEWSETELEM` dump part (after its nfgenmsg).
fn parse_elements(
    attrs: &[u8],
    family: Family,
    table: &'static str,
    set: &'static str,
) -> Vec<SetElement> {
    attributes(attrs)
        .filter(|(kind, _)| *kind == NFTA_SET_ELEM_LIST_ELEMENTS)
        .flat_map(|(_, list)| attributes(list))
        .filter(|(kind, _)| *kind == NFTA_LIST_ELEM)
        .map(|(_, elem)| {
            let mut e = SetElement {
                family,
                table,
                set,
                key: Vec::new(),
                key_end: None,
                data: None,
                text: String::new(),
            };
            for (kind, v) in attributes(elem) {
                match kind {
                    NFTA_SET_ELEM_KEY => e.key = value(v).unwrap_or_default(),
                    NFTA_SET_ELEM_KEY_END => e.key_end = value(v),
                    NFTA_SET_ELEM_DATA => e.data = data(v),
                    _ => {}
                }
            }
            e
        })
        .collect()
}

fn value(nest: &[u8]) -> Option<Vec<u8>> {
    attributes(nest)
        .find(|(k, _)| *k == NFTA_DATA_VALUE)
        .map(|(_, v)| v.to_vec())
}

/// A map element's data. A verdict hostnet never programs (accept, jump)
/// reads as none: the element then differs from any wanted one with the
/// same key, and is deleted (by key) and replaced.
fn data(nest: &[u8]) -> Option<Data> {
    if let Some(v) = value(nest) {
        return Some(Data::Value(v));
    }
    let (_, verdict) = attributes(nest).find(|(k, _)| *k == NFTA_DATA_VERDICT)?;
    let mut code = None;
    let mut chain = None;
    for (k, v) in attributes(verdict) {
        match k {
            NFTA_VERDICT_CODE => code = v.try_into().ok().map(i32::from_be_bytes),
            NFTA_VERDICT_CHAIN => chain = Some(string(v)),
            _ => {}
        }
    }
    match (code?, chain) {
        (NFT_GOTO, Some(chain)) => Some(Data::Goto(intern(&chain))),
        (NF_DROP, None) => Some(Data::Drop),
        (NFT_RETURN, None) => Some(Data::Return),
        _ => None,
    }
}

/// One chain as the kernel dumps it: its name, and for a base chain its
/// hook number and devices.
struct DumpedChain {
    name: String,
    hook: Option<(u32, Vec<String>)>,
}

/// The chains of table `table`.
fn chains(
    sock: &mut Socket,
    family: Family,
    table: &str,
) -> Result<Vec<DumpedChain>, NetlinkError> {
    dump(
        sock,
        || nft_message(NFT_MSG_GETCHAIN, family),
        NFT_MSG_NEWCHAIN,
        |attrs, found: &mut Vec<DumpedChain>| {
            let (mut name, mut in_table, mut hook) = (None, false, None);
            for (k, v) in attributes(attrs) {
                match k {
                    NFTA_CHAIN_TABLE => in_table = string(v) == table,
                    NFTA_CHAIN_NAME => name = Some(string(v)),
                    NFTA_CHAIN_HOOK => hook = Some(chain_hook(v)),
                    _ => {}
                }
            }
            if let Some(name) = name.filter(|_| in_table) {
                found.push(DumpedChain { name, hook });
            }
        },
    )
}

/// A base chain's hook number and devices (a list, or the one device).
fn chain_hook(nest: &[u8]) -> (u32, Vec<String>) {
    let mut number = u32::MAX;
    let mut devices = Vec::new();
    for (k, v) in attributes(nest) {
        match k {
            NFTA_HOOK_HOOKNUM => number = v.try_into().map(u32::from_be_bytes).unwrap_or(number),
            NFTA_HOOK_DEV => devices.push(string(v)),
            NFTA_HOOK_DEVS => {
                devices = attributes(v)
                    .filter(|(k, _)| *k == NFTA_DEVICE_NAME)
                    .map(|(_, d)| string(d))
                    .collect()
            }
            _ => {}
        }
    }
    devices.dedup();
    (number, devices)
}

/// The elements the chains of table `table` stand for that the skeleton
/// does not declare: hooked devices (in `design`) and rules chains
/// ([`Data::Rules`], their rules not read: a wanted one is always
/// programmed again, flushed in place). None if devices are hooked in the
/// other design (a start with another design loads everything whole).
fn chain_elements(
    sock: &mut Socket,
    skeleton: &Skeleton,
    family: Family,
    table: &'static str,
    design: HookDesign,
) -> Result<Option<Vec<SetElement>>, NetlinkError> {
    let mut out = Vec::new();
    for chain in chains(sock, family, table)? {
        if skeleton.declares_chain(family, table, &chain.name) {
            continue;
        }
        let hook = match &chain.hook {
            Some((0, _)) => Some(NetdevHook::Ingress),
            Some((1, _)) => Some(NetdevHook::Egress),
            _ => None,
        };
        let devices = chain
            .hook
            .as_ref()
            .map(|(_, d)| d.as_slice())
            .unwrap_or(&[]);
        match (family, hook) {
            (Family::Netdev, Some(hook)) => {
                let list = hostnet_nft::hook::parse_list_chain_name(&chain.name);
                let own = hostnet_nft::hook::parse_chain_name(&chain.name);
                let (rules, devices): (&str, Vec<String>) = match (list, own, design) {
                    (Some((rules, _)), _, HookDesign::DeviceList) => (rules, devices.to_vec()),
                    (None, Some((rules, device)), HookDesign::ChainPerDevice) => {
                        (rules, vec![device])
                    }
                    _ => return Ok(None),
                };
                let rules = intern(rules);
                out.extend(
                    devices
                        .iter()
                        .map(|d| hostnet_nft::hook::device_element(table, rules, hook, d)),
                );
            }
            (_, None) if chain.hook.is_none() => {
                // A rules chain is named after its address (`acl`).
                let key = hostnet_nft::hook::parse_chain_name(&chain.name)
                    .and_then(|(_, addr)| addr.parse::<std::net::IpAddr>().ok())
                    .map(|a| match a {
                        std::net::IpAddr::V4(a) => a.octets().to_vec(),
                        std::net::IpAddr::V6(a) => a.octets().to_vec(),
                    })
                    .unwrap_or_default();
                out.push(SetElement {
                    family,
                    table,
                    set: intern(&chain.name),
                    key,
                    key_end: None,
                    data: Some(Data::Rules(Vec::new())),
                    text: String::new(),
                });
            }
            // A base chain the skeleton does not declare: not hostnet's.
            _ => return Ok(None),
        }
    }
    Ok(Some(out))
}

/// A dumped element's key as text for messages: its bytes in hex.
pub fn key_text(e: &SetElement) -> String {
    use std::fmt::Write;
    let mut s = String::from("key ");
    for b in &e.key {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Set and chain names read from the kernel, as the `&'static str`s
/// [`SetElement`] holds. Each distinct name is kept once for the life of
/// the process, so memory is bounded by the names hostnet's skeletons
/// use (and any a user added to its tables).
fn intern(name: &str) -> &'static str {
    static NAMES: Mutex<Option<HashSet<&'static str>>> = Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|p| p.into_inner());
    let names = names.get_or_insert_with(HashSet::new);
    if let Some(known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_comment_is_found_among_its_userdata() {
        let mut udata = vec![7, 2, 1, 2];
        udata.extend_from_slice(&[NFTNL_UDATA_TABLE_COMMENT, 4, b'a', b'b', b'c', 0]);
        assert_eq!(table_comment(&udata).as_deref(), Some("abc"));
        assert_eq!(table_comment(&[7, 9, 1]), None, "a cut record");
        assert_eq!(table_comment(&[]), None);
    }

    #[test]
    fn verdicts_read_back_as_the_data_hostnet_sends() {
        let verdict = |code: i32, chain: Option<&str>| {
            let mut m = Message::new(0, 0);
            m.begin_nest(NFTA_DATA_VERDICT)
                .attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
            if let Some(c) = chain {
                m.attr_str(NFTA_VERDICT_CHAIN, c);
            }
            m.end_nest();
            m.finish(1)[16..].to_vec()
        };
        assert_eq!(
            data(&verdict(NFT_GOTO, Some("acl_in_host_0"))),
            Some(Data::Goto("acl_in_host_0"))
        );
        assert_eq!(data(&verdict(NF_DROP, None)), Some(Data::Drop));
        assert_eq!(data(&verdict(NFT_RETURN, None)), Some(Data::Return));
        assert_eq!(data(&verdict(1, None)), None, "accept is not hostnet's");
        assert!(std::ptr::eq(intern("x_y"), intern("x_y")));
    }
}
