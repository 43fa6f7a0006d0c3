//! nftables: element changes over nfnetlink, whole tables through `nft -f`.
//!
//! Per-endpoint state lives in set and map elements, so the hot path is an
//! element batch: one datagram holding `BATCH_BEGIN`, one `NEWSETELEM` or
//! `DESTROYSETELEM` per set (at most [`ELEMENTS_PER_MESSAGE`] elements each),
//! `BATCH_END`. The kernel applies a batch atomically and acks each message
//! once the whole batch is processed. When a message fails, the kernel's
//! extended ack points at the offending element attribute; the offsets
//! recorded while building map that back to the element, so errors name it.
//!
//! A [`Data::Device`] element hooks one device through a base chain
//! (`hostnet_nft::hook`), in the design the kernel allows ([`HookDesign`],
//! [`probe_hook_design`]). With a chain per device, added, it travels as
//! `NEWCHAIN` (the chain, hooked on that device), `DELRULE` (flushing it, so
//! adding twice leaves one rule) and `NEWRULE` (`goto` the shared rules);
//! deleted, as one `DELCHAIN`, rules and all. With one chain per rule set
//! listing its devices, added, the same three messages for the rule set's
//! chain, whose `NEWCHAIN` creates it or adds the device to its list;
//! deleted, a `DELCHAIN` naming the device, which takes it off the list.
//! All in the same batch as the set elements.
//!
//! A [`Data::Rules`] element is a regular chain and its rules
//! (`hostnet_nft::chain`: an endpoint's ACL lookups): added, `NEWCHAIN`,
//! `DELRULE` flushing it and one `NEWRULE` per rule (meta, cmp, payload,
//! bitwise and lookup expressions); deleted, `DELCHAIN`. Chains are added
//! before and deleted after the map elements of their batch, which `goto`
//! them.
//!
//! Loading whole tables is rare (start-up, resync) and needs nft's parser,
//! so it runs the `nft` binary, inside the dataplane's namespace.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use hostnet_nft::chain::ChainRule;
use hostnet_nft::hook::HookDesign;
use hostnet_nft::{Data, Family, NetdevHook, SetElement};

use super::netlink::{Message, NetlinkError, Socket};
use super::nf_tables_abi::*;
use crate::DataplaneError;

/// Elements per set message; keeps each message far below socket limits.
pub const ELEMENTS_PER_MESSAGE: usize = 1000;
/// Bytes of elements per set message: the element list is one nested
/// attribute, whose 16-bit length must not wrap (wide concatenated interval
/// keys reach it at about 600 elements).
const MESSAGE_ELEMENT_BYTES: usize = 48 << 10;
/// Bytes per batch datagram. Larger changes are split into several batches,
/// each atomic on its own.
const BATCH_BYTES: usize = 4 << 20;

/// Which element change to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Add,
    /// Delete; missing elements are skipped by the kernel (DESTROY).
    Destroy,
    /// Delete; missing elements fail the batch (for kernels before 6.3).
    Delete,
}

impl Change {
    fn message_type(self) -> u16 {
        let kind = match self {
            Change::Add => NFT_MSG_NEWSETELEM,
            Change::Destroy => NFT_MSG_DESTROYSETELEM,
            Change::Delete => NFT_MSG_DELSETELEM,
        };
        (NFNL_SUBSYS_NFTABLES << 8) | kind
    }

    fn flags(self) -> u16 {
        let ack = libc::NLM_F_ACK as u16;
        match self {
            Change::Add => ack | (libc::NLM_F_CREATE | libc::NLM_F_EXCL) as u16,
            Change::Destroy | Change::Delete => ack,
        }
    }
}

/// A failed element change.
#[derive(Debug)]
pub struct Failure {
    pub error: NetlinkError,
    /// Index (into the slice passed in) of the element the kernel rejected,
    /// if it pointed at one.
    pub element: Option<usize>,
    /// Index of some element of the failing message (for naming its set).
    pub in_message: usize,
}

impl Failure {
    /// A readable description naming the element or the set.
    pub fn describe(&self, elements: &[SetElement]) -> String {
        match self.element {
            Some(i) => {
                let e = &elements[i];
                format!(
                    "element {{ {} }} in {}: {}",
                    e.text,
                    set_name(e),
                    self.error
                )
            }
            None => format!("{}: {}", set_name(&elements[self.in_message]), self.error),
        }
    }
}

fn set_name(e: &SetElement) -> String {
    format!("{} {} {}", e.family.keyword(), e.table, e.set)
}

/// One set message in a batch: its sequence number and, for each element,
/// the offset of its `NFTA_LIST_ELEM` attribute and its index.
struct Sent {
    seq: u32,
    elements: Vec<(u32, usize)>,
}

/// Applies `change` to `elements` (indices into `all`), in as few atomic
/// batches as the size limits allow.
pub fn apply(
    sock: &mut Socket,
    hooks: HookDesign,
    change: Change,
    all: &[SetElement],
    elements: &[usize],
) -> Result<(), Failure> {
    let mut messages = group(all, elements);
    // Chains before the elements that go to them, and after them out.
    let chains_first = change == Change::Add;
    messages.sort_by_key(|m| (all[m[0]].chain_rules().is_some()) != chains_first);
    let mut start = 0;
    while start < messages.len() {
        let mut bytes = 0;
        let mut end = start;
        while end < messages.len() && (end == start || bytes < BATCH_BYTES) {
            bytes += messages[end]
                .iter()
                .map(|&i| element_bytes(&all[i]))
                .sum::<usize>();
            end += 1;
        }
        let batch: Vec<(Change, Vec<usize>)> = messages[start..end]
            .iter()
            .map(|m| (change, m.clone()))
            .collect();
        send_batch(sock, hooks, all, &batch)?;
        start = end;
    }
    Ok(())
}

/// Deletes `deletes` with `removal` and adds `adds` (indices into `all`)
/// in one batch, however large: atomic as a whole. A chain's device
/// always goes by DELCHAIN (there is no DESTROY for it).
pub fn replace(
    sock: &mut Socket,
    hooks: HookDesign,
    removal: Change,
    all: &[SetElement],
    deletes: &[usize],
    adds: &[usize],
) -> Result<(), Failure> {
    let mut batch: Vec<(Change, Vec<usize>)> = Vec::new();
    // A chain added again is replaced in place (its add flushes it), not
    // deleted: the elements going to it may stay.
    let added: std::collections::HashSet<&str> = adds
        .iter()
        .filter(|&&i| all[i].chain_rules().is_some())
        .map(|&i| all[i].set)
        .collect();
    let deletes: Vec<usize> = deletes
        .iter()
        .copied()
        .filter(|&i| all[i].chain_rules().is_none() || !added.contains(all[i].set))
        .collect();
    let mut gone = group(all, &deletes);
    gone.sort_by_key(|m| all[m[0]].chain_rules().is_some());
    for m in gone {
        let e = &all[m[0]];
        let change = match e.device_hook().is_some() || e.chain_rules().is_some() {
            true => Change::Delete,
            false => removal,
        };
        batch.push((change, m));
    }
    let mut new = group(all, adds);
    new.sort_by_key(|m| all[m[0]].chain_rules().is_none());
    batch.extend(new.into_iter().map(|m| (Change::Add, m)));
    if batch.is_empty() {
        return Ok(());
    }
    send_batch(sock, hooks, all, &batch)
}

/// Splits element indices into per-set messages of at most
/// [`ELEMENTS_PER_MESSAGE`] and [`MESSAGE_ELEMENT_BYTES`], keeping the
/// order sets first appear in; a chain's device gets a message of its own,
/// so a failure names it.
fn group(all: &[SetElement], elements: &[usize]) -> Vec<Vec<usize>> {
    let mut order: Vec<Vec<usize>> = Vec::new();
    let mut by_set: HashMap<(Family, &str, &str), usize> = HashMap::new();
    for &i in elements {
        let e = &all[i];
        let slot = *by_set.entry((e.family, e.table, e.set)).or_insert_with(|| {
            order.push(Vec::new());
            order.len() - 1
        });
        order[slot].push(i);
    }
    order
        .into_iter()
        .flat_map(|set| {
            if all[set[0]].device_hook().is_some() || all[set[0]].chain_rules().is_some() {
                return set.into_iter().map(|i| vec![i]).collect::<Vec<_>>();
            }
            let mut messages: Vec<Vec<usize>> = Vec::new();
            let mut bytes = 0;
            for i in set {
                let size = element_bytes(&all[i]);
                match messages.last_mut() {
                    Some(m)
                        if m.len() < ELEMENTS_PER_MESSAGE
                            && bytes + size <= MESSAGE_ELEMENT_BYTES =>
                    {
                        m.push(i);
                        bytes += size;
                    }
                    _ => {
                        messages.push(vec![i]);
                        bytes = size;
                    }
                }
            }
            messages
        })
        .collect()
}

/// One atomic batch of set (or chain-device) messages, each with its change.
fn send_batch(
    sock: &mut Socket,
    hooks: HookDesign,
    all: &[SetElement],
    messages: &[(Change, Vec<usize>)],
) -> Result<(), Failure> {
    let begin_seq = sock.next_seq();
    let mut bytes = batch_marker(NFNL_MSG_BATCH_BEGIN).finish(begin_seq);
    let mut sent = Vec::with_capacity(messages.len());
    for (change, indices) in messages {
        for (msg, offsets) in set_messages(hooks, *change, all, indices) {
            let seq = sock.next_seq();
            bytes.extend_from_slice(&msg.finish(seq));
            sent.push(Sent {
                seq,
                elements: offsets,
            });
        }
    }
    let end_seq = sock.next_seq();
    bytes.extend_from_slice(&batch_marker(NFNL_MSG_BATCH_END).finish(end_seq));

    let seqs: Vec<u32> = sent.iter().map(|s| s.seq).collect();
    let first = messages[0].1[0];
    let results = sock.batch(&bytes, begin_seq, &seqs).map_err(|e| Failure {
        error: NetlinkError {
            errno: e.raw_os_error().unwrap_or(libc::EIO),
            message: Some(e.to_string()),
            offset: None,
            seq: 0,
        },
        element: None,
        in_message: first,
    })?;
    for (seq, result) in results {
        let Err(error) = result else { continue };
        let message = sent.iter().find(|s| s.seq == seq);
        let element = message.and_then(|m| {
            if let [(_, i)] = m.elements[..] {
                if all[i].device_hook().is_some() || all[i].chain_rules().is_some() {
                    return Some(i);
                }
            }
            let offset = error.offset?;
            m.elements
                .iter()
                .find(|(o, _)| *o == offset)
                .map(|&(_, i)| i)
        });
        let in_message = message.map_or(first, |m| m.elements[0].1);
        return Err(Failure {
            error,
            element,
            in_message,
        });
    }
    Ok(())
}

/// `BATCH_BEGIN`/`BATCH_END`: an nfgenmsg whose res_id names the subsystem.
fn batch_marker(kind: u16) -> Message {
    let mut msg = Message::new(kind, 0);
    msg.header(&nfgenmsg(libc::AF_UNSPEC as u8, NFNL_SUBSYS_NFTABLES));
    msg
}

/// `struct nfgenmsg`: family, version 0, res_id in network byte order.
fn nfgenmsg(family: u8, res_id: u16) -> [u8; 4] {
    let id = res_id.to_be_bytes();
    [family, 0, id[0], id[1]]
}

/// The messages for one group of [`group`]: a device's chain messages, or
/// one set message.
fn set_messages(
    hooks: HookDesign,
    change: Change,
    all: &[SetElement],
    indices: &[usize],
) -> Vec<(Message, Vec<(u32, usize)>)> {
    let i = indices[0];
    if let Some(rules) = all[i].chain_rules() {
        return match change {
            Change::Add => rules_chain_add(&all[i], rules, i),
            Change::Destroy | Change::Delete => vec![rules_chain_delete(&all[i], i)],
        };
    }
    match (change, hooks) {
        _ if all[i].device_hook().is_none() => vec![set_message(change, all, indices)],
        (Change::Add, _) => device_chain_add(hooks, &all[i], i),
        (Change::Destroy | Change::Delete, HookDesign::ChainPerDevice) => {
            vec![device_chain_delete(&all[i], i)]
        }
        (Change::Destroy | Change::Delete, HookDesign::DeviceList) => {
            vec![device_list_delete(&all[i], i)]
        }
    }
}

/// One `*SETELEM` message for elements of a single set, and the offset of
/// each element's attribute within it.
fn set_message(
    change: Change,
    all: &[SetElement],
    indices: &[usize],
) -> (Message, Vec<(u32, usize)>) {
    let first = &all[indices[0]];
    let mut msg = Message::new(change.message_type(), change.flags());
    msg.header(&nfgenmsg(first.family.nfproto(), 0))
        .attr_str(NFTA_SET_ELEM_LIST_TABLE, first.table)
        .attr_str(NFTA_SET_ELEM_LIST_SET, first.set)
        .begin_nest(NFTA_SET_ELEM_LIST_ELEMENTS);
    let mut offsets = Vec::with_capacity(indices.len());
    for &i in indices {
        let e = &all[i];
        offsets.push((msg.offset() as u32, i));
        msg.begin_nest(NFTA_LIST_ELEM)
            .begin_nest(NFTA_SET_ELEM_KEY)
            .attr(NFTA_DATA_VALUE, &e.key)
            .end_nest();
        // An interval element is its whole range, for deletes too.
        if let Some(end) = &e.key_end {
            msg.begin_nest(NFTA_SET_ELEM_KEY_END)
                .attr(NFTA_DATA_VALUE, end)
                .end_nest();
        }
        // Deletes identify elements by key; only adds carry the data.
        match (&e.data, change) {
            (Some(Data::Value(data)), Change::Add) => {
                msg.begin_nest(NFTA_SET_ELEM_DATA)
                    .attr(NFTA_DATA_VALUE, data)
                    .end_nest();
            }
            (Some(Data::Goto(chain)), Change::Add) => {
                msg.begin_nest(NFTA_SET_ELEM_DATA)
                    .begin_nest(NFTA_DATA_VERDICT)
                    .attr(NFTA_VERDICT_CODE, &NFT_GOTO.to_be_bytes())
                    .attr_str(NFTA_VERDICT_CHAIN, chain)
                    .end_nest()
                    .end_nest();
            }
            (Some(Data::Drop | Data::Return), Change::Add) => {
                let code = match e.data {
                    Some(Data::Drop) => NF_DROP,
                    _ => NFT_RETURN,
                };
                msg.begin_nest(NFTA_SET_ELEM_DATA)
                    .begin_nest(NFTA_DATA_VERDICT)
                    .attr(NFTA_VERDICT_CODE, &code.to_be_bytes())
                    .end_nest()
                    .end_nest();
            }
            _ => {}
        }
        msg.end_nest();
    }
    msg.end_nest();
    (msg, offsets)
}

fn nftables_message(kind: u16, flags: u16, e: &SetElement) -> Message {
    let mut msg = Message::new((NFNL_SUBSYS_NFTABLES << 8) | kind, flags);
    msg.header(&nfgenmsg(e.family.nfproto(), 0));
    msg
}

/// A device element's base chain in design `hooks`, hooked on the device,
/// with one rule, `goto` its rules chain: `NEWCHAIN` (an existing chain
/// with the same hook is left as it is, or with a device list gets the
/// device added), `DELRULE` flushing it, `NEWRULE`. Each message is
/// recorded against element `index`, so a failure names it.
fn device_chain_add(
    hooks: HookDesign,
    e: &SetElement,
    index: usize,
) -> Vec<(Message, Vec<(u32, usize)>)> {
    let (name, hook) = hostnet_nft::hook::base_chain_of(e, hooks).expect("a device element");
    let ack = libc::NLM_F_ACK as u16;
    let mut chain = nftables_message(NFT_MSG_NEWCHAIN, ack | libc::NLM_F_CREATE as u16, e);
    let offset = chain_hook(
        &mut chain,
        e.table,
        &name,
        hook,
        &hostnet_nft::hook::device(e),
    );
    chain
        .attr(NFTA_CHAIN_POLICY, &NF_ACCEPT.to_be_bytes())
        .attr_str(NFTA_CHAIN_TYPE, "filter");
    let mut flush = nftables_message(NFT_MSG_DELRULE, ack, e);
    flush
        .attr_str(NFTA_RULE_TABLE, e.table)
        .attr_str(NFTA_RULE_CHAIN, &name);
    let append = (libc::NLM_F_CREATE | libc::NLM_F_APPEND) as u16;
    let mut rule = nftables_message(NFT_MSG_NEWRULE, ack | append, e);
    rule.attr_str(NFTA_RULE_TABLE, e.table)
        .attr_str(NFTA_RULE_CHAIN, &name)
        .begin_nest(NFTA_RULE_EXPRESSIONS)
        .begin_nest(NFTA_LIST_ELEM)
        .attr_str(NFTA_EXPR_NAME, "immediate")
        .begin_nest(NFTA_EXPR_DATA)
        .attr(NFTA_IMMEDIATE_DREG, &NFT_REG_VERDICT.to_be_bytes())
        .begin_nest(NFTA_IMMEDIATE_DATA)
        .begin_nest(NFTA_DATA_VERDICT)
        .attr(NFTA_VERDICT_CODE, &NFT_GOTO.to_be_bytes())
        .attr_str(NFTA_VERDICT_CHAIN, e.set)
        .end_nest()
        .end_nest()
        .end_nest()
        .end_nest()
        .end_nest();
    vec![
        (chain, vec![(offset, index)]),
        (flush, vec![(0, index)]),
        (rule, vec![(0, index)]),
    ]
}

/// The table, name and hook of base chain `name`, hooked on `device`, into
/// a chain message; returns the offset of the device's attribute.
fn chain_hook(msg: &mut Message, table: &str, name: &str, hook: NetdevHook, device: &str) -> u32 {
    msg.attr_str(NFTA_CHAIN_TABLE, table)
        .attr_str(NFTA_CHAIN_NAME, name)
        .begin_nest(NFTA_CHAIN_HOOK)
        .attr(NFTA_HOOK_HOOKNUM, &hook.number().to_be_bytes())
        .attr(
            NFTA_HOOK_PRIORITY,
            &hostnet_nft::hook::PRIORITY.to_be_bytes(),
        )
        .begin_nest(NFTA_HOOK_DEVS);
    let offset = msg.offset() as u32;
    msg.attr_str(NFTA_DEVICE_NAME, device).end_nest().end_nest();
    offset
}

/// `DELCHAIN` naming a device of a rule set's device-list chain: the
/// device leaves the list, the chain and its rule stay. A device not on
/// the list (or a missing chain) is `ENOENT`.
fn device_list_delete(e: &SetElement, index: usize) -> (Message, Vec<(u32, usize)>) {
    let (name, hook) =
        hostnet_nft::hook::base_chain_of(e, HookDesign::DeviceList).expect("a device element");
    let mut msg = nftables_message(NFT_MSG_DELCHAIN, libc::NLM_F_ACK as u16, e);
    let offset = chain_hook(
        &mut msg,
        e.table,
        &name,
        hook,
        &hostnet_nft::hook::device(e),
    );
    (msg, vec![(offset, index)])
}

/// `DELCHAIN` of a device element's base chain, its rule with it. A
/// missing chain is `ENOENT` (on Linux 6.1 the kernel deleted it with its
/// device).
fn device_chain_delete(e: &SetElement, index: usize) -> (Message, Vec<(u32, usize)>) {
    let (name, _) = hostnet_nft::hook::chain_of(e).expect("a device element");
    let mut msg = nftables_message(NFT_MSG_DELCHAIN, libc::NLM_F_ACK as u16, e);
    msg.attr_str(NFTA_CHAIN_TABLE, e.table);
    let offset = msg.offset() as u32;
    msg.attr_str(NFTA_CHAIN_NAME, &name);
    (msg, vec![(offset, index)])
}

/// A [`Data::Rules`] element's chain: `NEWCHAIN` (a regular chain; an
/// existing one is kept), `DELRULE` flushing it, a `NEWRULE` per rule,
/// each recorded against element `index`.
fn rules_chain_add(
    e: &SetElement,
    rules: &[ChainRule],
    index: usize,
) -> Vec<(Message, Vec<(u32, usize)>)> {
    let ack = libc::NLM_F_ACK as u16;
    let mut chain = nftables_message(NFT_MSG_NEWCHAIN, ack | libc::NLM_F_CREATE as u16, e);
    chain.attr_str(NFTA_CHAIN_TABLE, e.table);
    let offset = chain.offset() as u32;
    chain.attr_str(NFTA_CHAIN_NAME, e.set);
    let mut flush = nftables_message(NFT_MSG_DELRULE, ack, e);
    flush
        .attr_str(NFTA_RULE_TABLE, e.table)
        .attr_str(NFTA_RULE_CHAIN, e.set);
    let mut out = vec![(chain, vec![(offset, index)]), (flush, vec![(0, index)])];
    let append = (libc::NLM_F_CREATE | libc::NLM_F_APPEND) as u16;
    for r in rules {
        let mut msg = nftables_message(NFT_MSG_NEWRULE, ack | append, e);
        msg.attr_str(NFTA_RULE_TABLE, e.table)
            .attr_str(NFTA_RULE_CHAIN, e.set)
            .begin_nest(NFTA_RULE_EXPRESSIONS);
        rule_expressions(&mut msg, r);
        msg.end_nest();
        out.push((msg, vec![(0, index)]));
    }
    out
}

/// One rule's expressions, as nft compiles the same text: `meta nfproto`
/// compared, then each key field loaded into the next 32-bit registers
/// and masked in place, then one lookup of them all.
fn rule_expressions(msg: &mut Message, rule: &ChainRule) {
    let be = |n: u32| n.to_be_bytes();
    let expr = |msg: &mut Message, name: &str, body: &dyn Fn(&mut Message)| {
        msg.begin_nest(NFTA_LIST_ELEM)
            .attr_str(NFTA_EXPR_NAME, name)
            .begin_nest(NFTA_EXPR_DATA);
        body(msg);
        msg.end_nest().end_nest();
    };
    let verdict = |msg: &mut Message, code: i32, chain: Option<&str>| {
        expr(msg, "immediate", &|m| {
            m.attr(NFTA_IMMEDIATE_DREG, &be(NFT_REG_VERDICT))
                .begin_nest(NFTA_IMMEDIATE_DATA)
                .begin_nest(NFTA_DATA_VERDICT)
                .attr(NFTA_VERDICT_CODE, &code.to_be_bytes());
            if let Some(c) = chain {
                m.attr_str(NFTA_VERDICT_CHAIN, c);
            }
            m.end_nest().end_nest();
        })
    };
    match rule {
        ChainRule::Goto(c) => verdict(msg, NFT_GOTO, Some(c)),
        ChainRule::Return => verdict(msg, NFT_RETURN, None),
        ChainRule::Lookup { nfproto, key, map } => {
            expr(msg, "meta", &|m| {
                m.attr(NFTA_META_DREG, &be(NFT_REG32_00))
                    .attr(NFTA_META_KEY, &be(NFT_META_NFPROTO));
            });
            expr(msg, "cmp", &|m| {
                m.attr(NFTA_CMP_SREG, &be(NFT_REG32_00))
                    .attr(NFTA_CMP_OP, &be(NFT_CMP_EQ))
                    .begin_nest(NFTA_CMP_DATA)
                    .attr(NFTA_DATA_VALUE, &[*nfproto])
                    .end_nest();
            });
            let mut reg = NFT_REG32_00;
            for field in key {
                let len = field.source.bytes() as u32;
                match field.source.payload() {
                    Some((base, offset)) => expr(msg, "payload", &|m| {
                        m.attr(NFTA_PAYLOAD_DREG, &be(reg))
                            .attr(NFTA_PAYLOAD_BASE, &be(base))
                            .attr(NFTA_PAYLOAD_OFFSET, &be(offset))
                            .attr(NFTA_PAYLOAD_LEN, &be(len));
                    }),
                    None => expr(msg, "meta", &|m| {
                        m.attr(NFTA_META_DREG, &be(reg))
                            .attr(NFTA_META_KEY, &be(NFT_META_L4PROTO));
                    }),
                }
                if let Some(mask) = &field.mask {
                    expr(msg, "bitwise", &|m| {
                        m.attr(NFTA_BITWISE_SREG, &be(reg))
                            .attr(NFTA_BITWISE_DREG, &be(reg))
                            .attr(NFTA_BITWISE_LEN, &be(len))
                            .begin_nest(NFTA_BITWISE_MASK)
                            .attr(NFTA_DATA_VALUE, mask)
                            .end_nest()
                            .begin_nest(NFTA_BITWISE_XOR)
                            .attr(NFTA_DATA_VALUE, &vec![0; mask.len()])
                            .end_nest();
                    });
                }
                reg += len.div_ceil(4);
            }
            expr(msg, "lookup", &|m| {
                m.attr_str(NFTA_LOOKUP_SET, map)
                    .attr(NFTA_LOOKUP_SREG, &be(NFT_REG32_00))
                    .attr(NFTA_LOOKUP_DREG, &be(NFT_REG_VERDICT));
            });
        }
    }
}

/// `DELCHAIN` of a [`Data::Rules`] element's chain, its rules with it.
fn rules_chain_delete(e: &SetElement, index: usize) -> (Message, Vec<(u32, usize)>) {
    let mut msg = nftables_message(NFT_MSG_DELCHAIN, libc::NLM_F_ACK as u16, e);
    msg.attr_str(NFTA_CHAIN_TABLE, e.table);
    let offset = msg.offset() as u32;
    msg.attr_str(NFTA_CHAIN_NAME, e.set);
    (msg, vec![(offset, index)])
}

/// The table [`probe_hook_design`] tries the kernel in, deleted again.
pub const PROBE_TABLE: &str = "hostnet_hook_probe";
/// Device names no link can have (`/` is refused in interface names), so
/// the probe's hooks never catch a frame.
const PROBE_DEVICES: [&str; 2] = ["hostnet/probe0", "hostnet/probe1"];

/// Which hooking design this kernel allows, found by doing what the
/// device-list design does, in a netdev table of hostnet's own
/// ([`PROBE_TABLE`]) that is deleted afterwards: a base chain hooked on a
/// device that does not exist, then a second device added to its list and
/// the first taken off, then the last one taken off. Linux 6.1 refuses the
/// first step (it hooks only devices that exist) and would refuse the
/// second (`EEXIST`: no change to a chain's devices); 6.16+ does all.
/// Any refusal means [`HookDesign::ChainPerDevice`].
pub fn probe_hook_design(sock: &mut Socket) -> HookDesign {
    // A probe that died half-way (a crash) may have left the table.
    let _ = send_messages(
        sock,
        vec![probe_table(NFT_MSG_NEWTABLE), probe_table(NFT_MSG_DELTABLE)],
    );
    let steps: [Vec<Message>; 3] = [
        vec![
            probe_table(NFT_MSG_NEWTABLE),
            probe_chain(NFT_MSG_NEWCHAIN, PROBE_DEVICES[0]),
        ],
        vec![
            probe_chain(NFT_MSG_NEWCHAIN, PROBE_DEVICES[1]),
            probe_chain(NFT_MSG_DELCHAIN, PROBE_DEVICES[0]),
        ],
        vec![probe_chain(NFT_MSG_DELCHAIN, PROBE_DEVICES[1])],
    ];
    let mut design = HookDesign::DeviceList;
    for (i, step) in steps.into_iter().enumerate() {
        if let Err(e) = send_messages(sock, step) {
            log::debug!("hook design probe, step {}: {e}", i + 1);
            design = HookDesign::ChainPerDevice;
            break;
        }
    }
    if let Err(e) = send_messages(sock, vec![probe_table(NFT_MSG_DELTABLE)]) {
        if e.errno != libc::ENOENT {
            log::warn!("deleting the probe table netdev {PROBE_TABLE}: {e}");
        }
    }
    design
}

fn probe_table(kind: u16) -> Message {
    let flags = match kind {
        NFT_MSG_NEWTABLE => libc::NLM_F_CREATE as u16,
        _ => 0,
    };
    let mut msg = Message::new(
        (NFNL_SUBSYS_NFTABLES << 8) | kind,
        libc::NLM_F_ACK as u16 | flags,
    );
    msg.header(&nfgenmsg(Family::Netdev.nfproto(), 0))
        .attr_str(NFTA_TABLE_NAME, PROBE_TABLE);
    msg
}

/// The probe's base chain hooked on `device`: created or the device added
/// (`NEWCHAIN`), or the device taken off (`DELCHAIN`).
fn probe_chain(kind: u16, device: &str) -> Message {
    let flags = match kind {
        NFT_MSG_NEWCHAIN => libc::NLM_F_CREATE as u16,
        _ => 0,
    };
    let mut msg = Message::new(
        (NFNL_SUBSYS_NFTABLES << 8) | kind,
        libc::NLM_F_ACK as u16 | flags,
    );
    msg.header(&nfgenmsg(Family::Netdev.nfproto(), 0));
    chain_hook(&mut msg, PROBE_TABLE, "probe", NetdevHook::Egress, device);
    if kind == NFT_MSG_NEWCHAIN {
        msg.attr(NFTA_CHAIN_POLICY, &NF_ACCEPT.to_be_bytes())
            .attr_str(NFTA_CHAIN_TYPE, "filter");
    }
    msg
}

/// `messages` as one atomic batch; the first error the kernel reports.
fn send_messages(sock: &mut Socket, messages: Vec<Message>) -> Result<(), NetlinkError> {
    let begin = sock.next_seq();
    let mut bytes = batch_marker(NFNL_MSG_BATCH_BEGIN).finish(begin);
    let mut seqs = Vec::with_capacity(messages.len());
    for msg in messages {
        let seq = sock.next_seq();
        bytes.extend_from_slice(&msg.finish(seq));
        seqs.push(seq);
    }
    let end = sock.next_seq();
    bytes.extend_from_slice(&batch_marker(NFNL_MSG_BATCH_END).finish(end));
    let results = sock.batch(&bytes, begin, &seqs).map_err(|e| NetlinkError {
        errno: e.raw_os_error().unwrap_or(libc::EIO),
        message: Some(e.to_string()),
        offset: None,
        seq: 0,
    })?;
    results.into_iter().try_for_each(|(_, r)| r)
}

/// An upper bound of an element's bytes in a message.
fn element_bytes(e: &SetElement) -> usize {
    let data = match &e.data {
        Some(Data::Value(v)) => v.len(),
        Some(Data::Goto(chain)) => chain.len() + 16,
        Some(Data::Drop | Data::Return) => 16,
        Some(Data::Device(_)) => 2 * e.set.len() + 256,
        Some(Data::Rules(rules)) => 3 * e.set.len() + 512 * (rules.len() + 1),
        None => 0,
    };
    e.key.len() + e.key_end.as_ref().map_or(0, Vec::len) + data + 48
}

/// Runs `nft -f -` with `script` on stdin, in the namespace `netns`.
///
/// `nft -f` is one transaction, so a failed run changed nothing and may be
/// run again. It is, up to [`LOAD_TRIES`] times, when nft failed before
/// sending anything ("cache initialization failed: Invalid argument", its
/// dump of what is there): seen twice on Linux 6.1 in the tier-3 VM, both
/// times when two hostnetds started at once right after boot (the kernel
/// loading nf_tables' modules for the first time), never later or alone.
/// The cause is not pinned down; running again is safe.
pub fn load_tables(netns: &File, script: &str) -> Result<(), DataplaneError> {
    let mut tries = 1;
    loop {
        match load_tables_once(netns, script) {
            Err(e) if tries < LOAD_TRIES && e.message.contains(CACHE_FAILED) => {
                log::warn!("{e}; trying again");
                std::thread::sleep(std::time::Duration::from_millis(100 * tries));
                tries += 1;
            }
            other => return other,
        }
    }
}

/// How often [`load_tables`] runs `nft -f` when its cache dump fails.
const LOAD_TRIES: u64 = 3;
/// nft's message when dumping the ruleset before the batch failed.
const CACHE_FAILED: &str = "cache initialization failed";

fn load_tables_once(netns: &File, script: &str) -> Result<(), DataplaneError> {
    let fail = |m: String| DataplaneError::new("load tables", m);
    let ns = netns.as_raw_fd();
    let mut cmd = Command::new("nft");
    cmd.args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: setns(2) is async-signal-safe and touches only the child.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setns(ns, libc::CLONE_NEWNET) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| fail(format!("run nft: {e}")))?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // A write error means nft exited early; its stderr says why.
    let written = stdin.write_all(script.as_bytes());
    drop(stdin);
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("wait for nft: {e}")))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(fail(format!(
            "nft -f failed ({}): {}",
            out.status,
            stderr.trim()
        )));
    }
    written.map_err(|e| fail(format!("write to nft: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wide(i: u8) -> SetElement {
        SetElement {
            family: Family::Inet,
            table: "hostnet",
            set: "acl_in_switch_0_s0",
            key: vec![i; 20],
            key_end: Some(vec![i; 20]),
            data: Some(Data::Goto("acl_in_host_0")),
            text: String::new(),
        }
    }

    #[test]
    fn wide_elements_split_before_the_nest_length_wraps() {
        let all: Vec<SetElement> = (0..2000).map(|i| wide(i as u8)).collect();
        let indices: Vec<usize> = (0..all.len()).collect();
        let messages = group(&all, &indices);
        assert!(
            messages.len() > 2,
            "2000 wide elements need several messages"
        );
        assert_eq!(messages.concat(), indices, "every element once, in order");
        for m in &messages {
            // Encoding panics if the element list's nest passes 64 KiB.
            let (msg, _) = set_message(Change::Add, &all, m);
            assert!(msg.finish(1).len() < 64 << 10);
        }
    }
}

/// What hooking a device costs in each design ([`HookDesign`]): a base
/// chain per device, and one base chain per rule set listing its devices
/// (Linux 6.16+), through the dataplane as hostnetd does it; and the list's
/// `NEWCHAIN` alone, without the rule the dataplane flushes and adds again
/// with it. Measured in one run on the same 1000 veths of a scratch
/// namespace, the variants in turn, two rounds (docs/benchmarks.md,
/// "Hooking devices"). Run it with
/// `cargo test --release -p hostnet-dataplane hook_cost -- --ignored --nocapture`.
#[cfg(test)]
mod hook_cost {
    use std::time::Instant;

    use super::*;
    use crate::linux::{run_in_netns, LinuxDataplane};
    use crate::{Dataplane, Op};

    const N: usize = 1000;

    /// The device-list variant's update: `NEWCHAIN` naming the chain's
    /// hook with the one device to add (Linux 6.16+ updates the list).
    fn list_add(sock: &mut Socket, device: &str) {
        let e = hostnet_nft::endpoint_port(device);
        let ack = libc::NLM_F_ACK as u16;
        let mut msg = nftables_message(NFT_MSG_NEWCHAIN, ack | libc::NLM_F_CREATE as u16, &e);
        msg.attr_str(NFTA_CHAIN_TABLE, "bench_list")
            .attr_str(NFTA_CHAIN_NAME, "ports")
            .begin_nest(NFTA_CHAIN_HOOK)
            .attr(NFTA_HOOK_HOOKNUM, &1u32.to_be_bytes())
            .attr(NFTA_HOOK_PRIORITY, &0i32.to_be_bytes())
            .begin_nest(NFTA_HOOK_DEVS)
            .attr_str(NFTA_DEVICE_NAME, device)
            .end_nest()
            .end_nest();
        let begin = sock.next_seq();
        let mut bytes = batch_marker(NFNL_MSG_BATCH_BEGIN).finish(begin);
        let seq = sock.next_seq();
        bytes.extend_from_slice(&msg.finish(seq));
        let end = sock.next_seq();
        bytes.extend_from_slice(&batch_marker(NFNL_MSG_BATCH_END).finish(end));
        let results = sock.batch(&bytes, begin, &[seq]).expect("batch");
        for (_, r) in results {
            r.expect("add a device to the list");
        }
    }

    fn p50(v: &mut [f64]) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    /// (p50 of the first 100, p50 of the last 100) in µs.
    fn summary(times: &[f64]) -> (f64, f64) {
        let mut first = times[..100].to_vec();
        let mut last = times[times.len() - 100..].to_vec();
        (p50(&mut first), p50(&mut last))
    }

    #[test]
    #[ignore = "a measurement: cargo test --release -p hostnet-dataplane hook_cost -- --ignored --nocapture"]
    fn hook_cost() {
        let dir = tempfile::tempdir().unwrap();
        let ns = dir.path().join("ns");
        crate::linux::create_netns(&ns).unwrap();
        let script: String = (0..N)
            .map(|i| format!("link add hb{i} type veth peer name hbp{i}\n"))
            .collect();
        let mut ip = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .args(["ip", "-batch", "-"])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        ip.stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        assert!(ip.wait().unwrap().success());
        let devices: Vec<String> = (0..N).map(|i| format!("hb{i}")).collect();
        let report = run_in_netns(&ns, || {
            let mut lines = Vec::new();
            for round in 0..2 {
                let mut results = Vec::new();
                for design in [HookDesign::ChainPerDevice, HookDesign::DeviceList] {
                    let dp = LinuxDataplane::new().unwrap().with_hook_design(design);
                    dp.load_tables(&hostnet_nft::tables(&[], design)).unwrap();
                    let mut hook = Vec::new();
                    for d in &devices {
                        let t = Instant::now();
                        dp.execute(&Op::AddElements(vec![hostnet_nft::endpoint_port(d)]))
                            .unwrap();
                        hook.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                    let mut unhook = Vec::new();
                    for d in &devices {
                        let t = Instant::now();
                        dp.execute(&Op::DeleteElements(vec![hostnet_nft::endpoint_port(d)]))
                            .unwrap();
                        unhook.push(t.elapsed().as_secs_f64() * 1e6);
                    }
                    results.push((format!("{design:?}, hook"), hook));
                    results.push((format!("{design:?}, unhook"), unhook));
                }
                // The list's update alone, without the chain's rule flushed
                // and added again: what the rule costs a hook.
                let dp = LinuxDataplane::new().unwrap();
                dp.load_tables(
                    "table netdev bench_list { chain ports { type filter hook egress devices = { \"hostnet-none\" } priority 0; policy accept; }\n}\n",
                )
                .unwrap();
                let mut list = Vec::new();
                let mut sock = dp.netfilter();
                for d in &devices {
                    let t = Instant::now();
                    list_add(&mut sock, d);
                    list.push(t.elapsed().as_secs_f64() * 1e6);
                }
                drop(sock);
                dp.load_tables("delete table netdev bench_list\n").unwrap();
                results.push(("device list, NEWCHAIN alone".to_string(), list));
                for (what, v) in results {
                    let (first, last) = summary(&v);
                    lines.push(format!(
                        "round {round}: {what}: first 100 p50 {first:.1} µs, last 100 p50 {last:.1} µs"
                    ));
                }
            }
            lines
        })
        .unwrap();
        crate::linux::delete_netns(&ns).unwrap();
        for l in report {
            println!("{l}");
        }
    }
}
