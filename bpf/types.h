/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Types shared between the Rampart datapath programs and the Go loader in
 * internal/datapath. Every struct and enum here is exported to Go through
 * bpf2go -type, so a layout change shows up as a compile error or a failing
 * constants test on the Go side instead of as silent map corruption.
 *
 * Enums that appear inside map keys and values are declared packed so they
 * occupy one byte; the generated Go types are then uint8-based.
 *
 * docs/datapath.md describes the map layouts and the reasoning behind them.
 */
#ifndef RAMPART_TYPES_H
#define RAMPART_TYPES_H

#include <linux/types.h>

/* Direction is always seen from the endpoint: INGRESS is traffic to it,
 * EGRESS is traffic from it. */
enum __attribute__((packed)) direction {
	DIR_INGRESS = 0,
	DIR_EGRESS = 1,
};

/* Address family of a 16-byte address field. IPv4 addresses occupy the first
 * four bytes; the rest is zero. */
enum __attribute__((packed)) family {
	FAMILY_NONE = 0,
	FAMILY_IPV4 = 4,
	FAMILY_IPV6 = 6,
};

/* Reserved security identities, numbered as in Cilium. */
enum reserved_identity {
	IDENTITY_UNKNOWN = 0, /* also the "any identity" wildcard in policy keys */
	IDENTITY_HOST = 1,
	IDENTITY_WORLD = 2,
	IDENTITY_UNMANAGED = 3,
	IDENTITY_HEALTH = 4,
	IDENTITY_INIT = 5,
	IDENTITY_REMOTE_NODE = 6,
	IDENTITY_KUBE_APISERVER = 7,
	IDENTITY_MIN_CLUSTER = 256,
	IDENTITY_CIDR_SCOPE = 1 << 24, /* local CIDR identities: 0x01xxxxxx */
	IDENTITY_SCOPE_MASK = 0xff000000,
	IDENTITY_CIDR_CLASS_FLAG = 0x80000000, /* policy peer = CIDR class id | flag */
};

/* Verdict stored in a policy entry. */
enum __attribute__((packed)) policy_verdict {
	POLICY_NONE = 0,
	POLICY_ALLOW = 1,
	POLICY_DENY = 2,
	POLICY_REDIRECT = 3,
};

/* Verdict reported in flow events and counters. */
enum __attribute__((packed)) flow_verdict {
	VERDICT_FORWARDED = 1,
	VERDICT_DROPPED = 2,
	VERDICT_AUDIT = 3,      /* would have been dropped, passed in audit mode */
	VERDICT_REDIRECTED = 4, /* forwarded with the proxy mark set */
};

/* Why a packet was dropped (or would have been, in audit mode). */
enum __attribute__((packed)) drop_reason {
	REASON_NONE = 0,
	REASON_POLICY_DENIED = 1, /* an explicit deny entry matched */
	REASON_DEFAULT_DENY = 2,  /* enforced direction and no allow matched */
	REASON_CT_NO_ENTRY = 3,   /* reply or mid-stream packet with no conntrack entry, not allowed as new */
	REASON_INVALID = 4,       /* truncated or malformed headers */
	REASON_UNSUPPORTED_L3 = 5,/* ethertype other than IPv4, IPv6, ARP */
	REASON_NO_ENDPOINT = 6,   /* program attached but endpoint not configured: fail closed */
};

/* Conntrack classification of a packet, reported in events. */
enum __attribute__((packed)) ct_status {
	CT_NEW = 0,
	CT_ESTABLISHED = 1, /* same direction as the packet that opened the entry */
	CT_REPLY = 2,
	CT_RELATED = 3, /* ICMP error about a tracked connection */
};

/* TCP state kept in a conntrack entry. Non-TCP entries use CT_TCP_NONE. */
enum __attribute__((packed)) ct_tcp_state {
	CT_TCP_NONE = 0,
	CT_TCP_SYN_SENT = 1,
	CT_TCP_ESTABLISHED = 2,
	CT_TCP_CLOSING = 3,
};

/* Bits of ct_entry.flags. */
enum ct_flags {
	CT_FLAG_AUDIT = 1 << 0,    /* opened by a would-be drop in audit mode */
	CT_FLAG_REDIRECT = 1 << 1, /* forward packets carry the proxy mark */
	CT_FLAG_FIN_FWD = 1 << 2,
	CT_FLAG_FIN_REV = 1 << 3,
	CT_FLAG_SEEN_REPLY = 1 << 4,
};

/* Bits of endpoint_info.flags. */
enum endpoint_flags {
	EP_INGRESS_ENFORCED = 1 << 0,
	EP_EGRESS_ENFORCED = 1 << 1,
	EP_AUDIT = 1 << 2,
};

/* Bits of endpoint_info.skip: kinds of policy lookup that cannot match for
 * the endpoint because it has no rows of that kind, set by userspace
 * (internal/datapath) after it removed the last such row and cleared before
 * it writes one. A new flow then skips those trie lookups. Zero, which is
 * also what entries written before the field existed hold, does every
 * lookup: a bit may be clear without need, never set with a row present. */
enum lookup_skip {
	SKIP_ANY_PEER = 1 << 0,  /* no rows with the wildcard peer */
	SKIP_ANY_PROTO = 1 << 1, /* no rows with the wildcard protocol */
	SKIP_CIDR = 1 << 2,      /* no CIDR class rows */
	SKIP_EGRESS_SHIFT = 8,   /* ingress bits as above; egress bits shifted by this */
};

/* Which packets produce flow events. Zero is the default so that an
 * unconfigured config map still reports drops and new connections. */
enum __attribute__((packed)) event_level {
	EVENTS_DEFAULT = 0, /* drops, audits and new connections */
	EVENTS_DROPS = 1,   /* drops and audits only */
	EVENTS_ALL = 2,     /* every packet */
	EVENTS_NONE = 3,
};

/* Indexes of the global per-CPU stats array. */
enum stat_index {
	STAT_EVENTS_RATE_LIMITED = 0,
	STAT_EVENTS_RINGBUF_FULL = 1,
	STAT_CT_CREATE_FAILED = 2,
	STAT_COUNTERS_FULL = 3,
	STAT_MAX = 4,
};

/* Return codes of TCX programs (TCX_NEXT etc. in newer uapi headers). A
 * forwarded packet returns TCX_NEXT so that programs attached after ours
 * still run; a drop is final. */
enum tcx_action {
	RET_NEXT = -1,
	RET_PASS = 0,
	RET_DROP = 2,
};

/* Proxy mark, compatible with Cilium's MARK_MAGIC_TO_PROXY: the low 16 bits
 * carry the magic, the high 16 bits the proxy port. */
enum proxy_mark {
	MARK_MAGIC_TO_PROXY = 0x0200,
	MARK_MAGIC_MASK = 0x0f00,
};

/* ipcache: LPM trie from address to security identity.
 * prefixlen = 32 + address prefix length, covering family and pad, so IPv4
 * and IPv6 never match each other's entries. */
struct ipcache_key {
	__u32 prefixlen;
	enum family family;
	__u8 pad[3];
	__u8 addr[16];
};

struct ipcache_value {
	__u32 identity;
	__u32 flags; /* reserved, zero */
};

/* policy: one LPM trie for all endpoints.
 * prefixlen = 64 + port prefix length (0..16): endpoint, direction, proto and
 * peer are always matched exactly; the port is matched as a prefix so that a
 * port range compiles to a handful of entries. */
struct policy_key {
	__u32 prefixlen;
	__u16 endpoint;            /* host order */
	enum direction direction;
	__u8 proto;                /* IPPROTO_*, 0 = any */
	__u32 peer;                /* identity (host order), 0 = any, or class | IDENTITY_CIDR_CLASS_FLAG */
	__be16 dport;              /* network order; ICMP: type << 8 | code */
	__u16 pad;
};

struct policy_value {
	enum policy_verdict verdict;
	__u8 flags;       /* reserved, zero */
	__u16 proxy_port; /* host order, for POLICY_REDIRECT */
	__u32 rule_id;    /* opaque to the kernel; userspace maps it to a rule */
};

/* cidr: LPM trie from (endpoint, direction, peer address) to CIDR classes.
 * prefixlen = 32 + address prefix length. */
struct cidr_key {
	__u32 prefixlen;
	__u16 endpoint;
	enum direction direction;
	enum family family;
	__u8 addr[16];
};

struct cidr_value {
	__u32 class_any;   /* Kubernetes ipBlock class: applies whatever the peer identity, 0 = none */
	__u32 class_world; /* Cilium CIDR class: applies only to world and CIDR identities, 0 = none */
};

struct endpoint_info {
	__u32 identity; /* the endpoint's own security identity */
	__u32 ifindex;  /* host-side veth; local delivery checks endpoint_addr.ifindex against it */
	__u32 flags;    /* enum endpoint_flags */
	__u32 skip;     /* enum lookup_skip: lookups that cannot match; 0 = do them all */
};

/* endpoint_addrs: an address of a local endpoint -> what delivering a packet
 * straight into the endpoint's namespace takes (bpf_redirect_peer on its
 * host veth, and the Ethernet addresses routing would have written). It is
 * a map of its own, not fields of endpoint_info, so that the pinned
 * endpoints map of an older version stays loadable; a missing row means
 * the host routes packets to the address, as before local delivery. */
struct endpoint_addr_key {
	__u8 addr[16];
	enum family family;
	__u8 pad[3];
};

struct endpoint_addr {
	__u32 ifindex;      /* host-side veth; its peer is the endpoint's interface */
	__u16 endpoint;
	__u8 host_mac[6];   /* the host veth's MAC: Ethernet source after routing */
	__u8 mac[6];        /* the endpoint interface's MAC: Ethernet destination */
	__u8 pad[2];
};

/* conntrack key: the tuple of the packet that opened the connection, as
 * seen by this endpoint in this direction. Replies are found by looking up
 * the reversed tuple with the opposite direction. ICMP echo uses the
 * identifier as sport (request) and dport 0. */
struct ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u16 endpoint;
	__u8 proto;
	enum direction direction;
	enum family family;
	__u8 pad[3];
};

struct ct_entry {
	__u64 expires; /* CLOCK_BOOTTIME ns */
	__u64 created; /* CLOCK_BOOTTIME ns */
	__u64 packets_fwd;
	__u64 bytes_fwd;
	__u64 packets_rev;
	__u64 bytes_rev;
	__u32 rule_id;       /* policy rule that allowed the connection, 0 = default */
	__u32 peer_identity; /* peer identity when the entry was created */
	__u16 proxy_port;
	enum ct_tcp_state tcp_state;
	__u8 flags;          /* enum ct_flags */
	__u8 pad[4];
};

struct flow_event {
	__u64 timestamp; /* CLOCK_BOOTTIME ns */
	__u32 src_identity;
	__u32 dst_identity;
	__u32 rule_id;
	__u32 length;
	__u16 endpoint;
	__u16 sport;      /* host order; ICMP echo: identifier */
	__u16 dport;      /* host order; ICMP: type << 8 | code */
	__u16 proxy_port;
	enum direction direction;
	enum flow_verdict verdict;
	enum drop_reason reason;
	enum family family;
	__u8 proto;
	enum ct_status ct_status;
	__u8 tcp_flags;
	__u8 pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* fragments: ports of fragmented datagrams, recorded from the first
 * fragment so that later fragments, which carry no L4 header, get the same
 * policy and conntrack treatment. */
struct frag_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u32 id; /* IPv4 identification or IPv6 fragment id, network order */
	__u8 proto;
	enum family family;
	__u8 pad[2];
};

struct frag_ports {
	__be16 sport;
	__be16 dport;
};

struct counter_key {
	__u16 endpoint;
	enum direction direction;
	enum flow_verdict verdict;
	enum drop_reason reason;
	__u8 pad[3];
};

struct counter_value {
	__u64 packets;
	__u64 bytes;
};

/* Global configuration, one element. Zero fields mean the built-in default,
 * so the datapath behaves sensibly before userspace writes it. */
struct settings {
	__u32 tcp_syn_timeout;         /* seconds, default 60 */
	__u32 tcp_established_timeout; /* seconds, default 21600 */
	__u32 tcp_closing_timeout;     /* seconds, default 10 */
	__u32 udp_timeout;             /* seconds, default 60 */
	__u32 sctp_timeout;            /* seconds, default 21600 */
	__u32 icmp_timeout;            /* seconds, default 30 */
	__u32 other_timeout;           /* seconds, default 60 */
	__u32 events_rate;             /* events per second per CPU, default 10000; 0xffffffff = unlimited */
	__u32 events_burst;            /* bucket size, default events_rate */
	enum event_level events_level;
	__u8 ct_accounting;            /* count packets and bytes per connection */
	__u8 local_redirect_off;       /* 1: traffic between local endpoints is routed by the host (no bpf_redirect_peer) */
	__u8 pad;
};

/* Per-CPU token bucket for event rate limiting. */
struct token_bucket {
	__u64 last;   /* ns */
	__u64 tokens; /* scaled by 1e9 */
};

#endif
