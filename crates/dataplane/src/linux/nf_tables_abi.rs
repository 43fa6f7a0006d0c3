//! The nf_tables netlink ABI hostnet speaks (`linux/netfilter/nf_tables.h`,
//! `linux/netfilter/nfnetlink.h`, libnftnl's userdata): one place for the
//! numbers the element batches, the counters' dumps and the start-up
//! table reads share.

pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(super) const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
pub(super) const NFNL_MSG_BATCH_END: u16 = 0x11;
pub(super) const NFT_MSG_NEWTABLE: u16 = 0;
pub(super) const NFT_MSG_DELTABLE: u16 = 2;
pub(super) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(super) const NFT_MSG_DELCHAIN: u16 = 5;
pub(super) const NFT_MSG_NEWRULE: u16 = 6;
pub(super) const NFT_MSG_DELRULE: u16 = 8;
pub(super) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(super) const NFT_MSG_DELSETELEM: u16 = 14;
/// Like DELSETELEM but a missing element is not an error (Linux 6.3+).
pub(super) const NFT_MSG_DESTROYSETELEM: u16 = 30;
pub(super) const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
pub(super) const NFTA_SET_ELEM_LIST_SET: u16 = 2;
pub(super) const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
pub(super) const NFTA_LIST_ELEM: u16 = 1;
pub(super) const NFTA_SET_ELEM_KEY: u16 = 1;
pub(super) const NFTA_SET_ELEM_DATA: u16 = 2;
pub(super) const NFTA_SET_ELEM_KEY_END: u16 = 10;
pub(super) const NFTA_DATA_VERDICT: u16 = 2;
pub(super) const NFTA_VERDICT_CODE: u16 = 1;
pub(super) const NFTA_VERDICT_CHAIN: u16 = 2;
/// `NFT_GOTO`, `NFT_RETURN` and `NF_DROP`, as the kernel's signed verdict codes.
pub(super) const NFT_GOTO: i32 = -4;
pub(super) const NFT_RETURN: i32 = -5;
pub(super) const NF_DROP: i32 = 0;
pub(super) const NFTA_DATA_VALUE: u16 = 1;
pub(super) const NFTA_TABLE_NAME: u16 = 1;
pub(super) const NFTA_CHAIN_TABLE: u16 = 1;
pub(super) const NFTA_CHAIN_NAME: u16 = 3;
pub(super) const NFTA_CHAIN_HOOK: u16 = 4;
pub(super) const NFTA_HOOK_HOOKNUM: u16 = 1;
pub(super) const NFTA_HOOK_PRIORITY: u16 = 2;
pub(super) const NFTA_HOOK_DEVS: u16 = 4;
pub(super) const NFTA_CHAIN_POLICY: u16 = 5;
pub(super) const NFTA_CHAIN_TYPE: u16 = 7;
pub(super) const NFTA_DEVICE_NAME: u16 = 1;
pub(super) const NFTA_RULE_TABLE: u16 = 1;
pub(super) const NFTA_RULE_CHAIN: u16 = 2;
pub(super) const NFTA_RULE_EXPRESSIONS: u16 = 4;
pub(super) const NFTA_EXPR_NAME: u16 = 1;
pub(super) const NFTA_EXPR_DATA: u16 = 2;
pub(super) const NFTA_IMMEDIATE_DREG: u16 = 1;
pub(super) const NFTA_IMMEDIATE_DATA: u16 = 2;
/// `NFT_REG_VERDICT`: an immediate into it is a verdict.
pub(super) const NFT_REG_VERDICT: u32 = 0;
/// The first 32-bit register; a lookup key fills consecutive ones.
pub(super) const NFT_REG32_00: u32 = 8;
pub(super) const NFTA_META_DREG: u16 = 1;
pub(super) const NFTA_META_KEY: u16 = 2;
pub(super) const NFT_META_NFPROTO: u32 = 15;
pub(super) const NFT_META_L4PROTO: u32 = 16;
pub(super) const NFTA_CMP_SREG: u16 = 1;
pub(super) const NFTA_CMP_OP: u16 = 2;
pub(super) const NFTA_CMP_DATA: u16 = 3;
pub(super) const NFT_CMP_EQ: u32 = 0;
pub(super) const NFTA_PAYLOAD_DREG: u16 = 1;
pub(super) const NFTA_PAYLOAD_BASE: u16 = 2;
pub(super) const NFTA_PAYLOAD_OFFSET: u16 = 3;
pub(super) const NFTA_PAYLOAD_LEN: u16 = 4;
pub(super) const NFTA_BITWISE_SREG: u16 = 1;
pub(super) const NFTA_BITWISE_DREG: u16 = 2;
pub(super) const NFTA_BITWISE_LEN: u16 = 3;
pub(super) const NFTA_BITWISE_MASK: u16 = 4;
pub(super) const NFTA_BITWISE_XOR: u16 = 5;
pub(super) const NFTA_LOOKUP_SET: u16 = 1;
pub(super) const NFTA_LOOKUP_SREG: u16 = 2;
pub(super) const NFTA_LOOKUP_DREG: u16 = 3;
pub(super) const NF_ACCEPT: u32 = 1;
pub(super) const NFT_MSG_GETSETELEM: u16 = 13;
/// One expression attached to the element (the kernel's choice when the
/// set has exactly one, as hostnet's counter sets do).
pub(super) const NFTA_SET_ELEM_EXPR: u16 = 7;
/// Several expressions, each an `NFTA_LIST_ELEM`.
pub(super) const NFTA_SET_ELEM_EXPRESSIONS: u16 = 11;
pub(super) const NFTA_COUNTER_BYTES: u16 = 1;
pub(super) const NFTA_COUNTER_PACKETS: u16 = 2;
pub(super) const NFT_MSG_GETTABLE: u16 = 1;
pub(super) const NFT_MSG_GETCHAIN: u16 = 4;
pub(super) const NFT_MSG_NEWSET: u16 = 9;
pub(super) const NFT_MSG_GETSET: u16 = 10;
pub(super) const NFTA_TABLE_USERDATA: u16 = 6;
/// libnftnl's userdata record of a table's comment.
pub(super) const NFTNL_UDATA_TABLE_COMMENT: u8 = 0;
/// A base chain's one device (older kernels, and beside the list).
pub(super) const NFTA_HOOK_DEV: u16 = 3;
pub(super) const NFTA_SET_TABLE: u16 = 1;
pub(super) const NFTA_SET_NAME: u16 = 2;
pub(super) const NFTA_SET_FLAGS: u16 = 3;
/// Sets the kernel makes for a rule's literal `{ … }`: part of the rule.
pub(super) const NFT_SET_ANONYMOUS: u32 = 0x1;
/// Sets rules add to from the packet path (`flags dynamic`): not the
/// store's.
pub(super) const NFT_SET_EVAL: u32 = 0x20;
