//go:build ignore

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Rampart endpoint datapath.
 *
 * Two TCX programs are attached to the host side of each endpoint's veth:
 *
 *   from_endpoint  tcx/ingress of the host veth: packets sent BY the endpoint
 *                  (the endpoint's egress direction)
 *   to_endpoint    tcx/egress of the host veth: packets sent TO the endpoint
 *                  (the endpoint's ingress direction)
 *
 * The loader gives every endpoint its own copy of the programs with the
 * endpoint id baked into .rodata (like Cilium's per-endpoint programs), so
 * the datapath never has to trust an ifindex lookup that could go stale when
 * interface indexes are reused. All maps are shared and pinned.
 *
 * Per packet: parse -> decide (conntrack lookup, forward and reverse; on a
 * miss, policy lookup for the peer identity, its CIDR classes and the
 * wildcards -> verdict) -> commit (conntrack refresh or create, counters,
 * flow event). A packet that from_endpoint allows and whose destination is
 * another local endpoint is then decided again, by the same code, for the
 * destination's ingress, and delivered straight into the destination's
 * namespace with bpf_redirect_peer (deliver_local) instead of through the
 * host's forwarding path and to_endpoint.
 *
 * docs/datapath.md is the reference for the map layouts and semantics.
 */

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "types.h"

char __license[] SEC("license") = "Dual BSD/GPL";

/* Set by the loader for each endpoint's copy of the programs. */
volatile const __u16 endpoint_id = 0;

/* BTF anchors: keep enums that no map or struct references in the object's
 * BTF so bpf2go -type can export them. They live in .rodata, which every
 * load already creates for endpoint_id. */
const enum reserved_identity *const __anchor_identity = 0;
const enum endpoint_flags *const __anchor_ep_flags = 0;
const enum ct_flags *const __anchor_ct_flags = 0;
const enum lookup_skip *const __anchor_skip = 0;
const enum stat_index *const __anchor_stat = 0;
const enum tcx_action *const __anchor_tcx = 0;
const enum proxy_mark *const __anchor_mark = 0;
const struct flow_event *const __anchor_event = 0;

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58
#endif
#define IPPROTO_HOPOPTS_ 0
#define IPPROTO_ROUTING_ 43
#define IPPROTO_FRAGMENT_ 44
#define IPPROTO_AH_ 51
#define IPPROTO_DSTOPTS_ 60
#define IPPROTO_NONE_ 59

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

#define NSEC 1000000000ULL
#define IPV6_MAX_EXT_HEADERS 8

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(max_entries, 512 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
	__uint(max_entries, 1024 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct cidr_key);
	__type(value, struct cidr_value);
	__uint(max_entries, 256 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cidr SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, struct endpoint_info);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

/* Sized for two addresses (IPv4 and IPv6) of each of the 64 Ki endpoints;
 * not preallocated, since a node has far fewer. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_addr_key);
	__type(value, struct endpoint_addr);
	__uint(max_entries, 128 * 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoint_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ct_key);
	__type(value, struct ct_entry);
	__uint(max_entries, 512 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conntrack SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

/* EVENTS_WAKEUP_BYTES of unread events wake the reader before its timer
 * (internal/datapath FlowReader); 1/16 of the ring leaves room for the
 * reader to catch up before the ring fills. */
#define EVENTS_WAKEUP_BYTES (256 * 1024)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct frag_key);
	__type(value, struct frag_ports);
	__uint(max_entries, 8192);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} fragments SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__type(key, struct counter_key);
	__type(value, struct counter_value);
	__uint(max_entries, 65536);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, STAT_MAX);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct settings);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, struct token_bucket);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} event_budget SEC(".maps");

/* Parsed packet. Ports are in network order as on the wire. */
struct packet {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;       /* conntrack tuple */
	__be16 dport;       /* conntrack tuple */
	__u16 policy_port;  /* host order: TCP/UDP/SCTP dport, ICMP type << 8 | code */
	enum family family;
	__u8 proto;
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 has_port;      /* policy_port is meaningful for "any proto" lookups */
	__u8 icmp_error;    /* ICMP error: inner tuple parsed into inner_* */
	__u8 fragment;      /* non-first fragment whose ports are unknown */
	__u8 frag_first;    /* first fragment of a fragmented datagram */
	__u32 frag_id;
	/* Inner tuple of an ICMP error, as the inner packet was sent. */
	__be16 inner_sport;
	__be16 inner_dport;
	__u8 inner_proto;
	__u8 fragmented;    /* any fragment, first or later: never delivered locally */
	__u8 pad2[2];
};

static __always_inline void stat_inc(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		*v += 1;
}

static __always_inline struct settings *get_config(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&config, &zero);
}

static __always_inline __u64 timeout_ns(__u32 configured, __u32 def)
{
	return (__u64)(configured ? configured : def) * NSEC;
}

/* ---- parsing ---------------------------------------------------------- */

enum parse_result {
	PARSE_OK = 0,
	PARSE_INVALID = -1,
	PARSE_UNSUPPORTED = -2,
	PARSE_PASS = -3, /* ARP, neighbour discovery: always allowed */
	PARSE_SLOW = 1,  /* parse_direct: not handled in place, use the copying parser */
};

static __always_inline int parse_ports(struct __sk_buff *skb, __u32 off, struct packet *p)
{
	switch (p->proto) {
	case IPPROTO_TCP: {
		__u8 th[14];
		if (bpf_skb_load_bytes(skb, off, th, sizeof(th)) < 0)
			return PARSE_INVALID;
		__builtin_memcpy(&p->sport, &th[0], 2);
		__builtin_memcpy(&p->dport, &th[2], 2);
		p->tcp_flags = th[13];
		p->policy_port = bpf_ntohs(p->dport);
		p->has_port = 1;
		return PARSE_OK;
	}
	case IPPROTO_UDP:
	case IPPROTO_SCTP: {
		__u8 ports[4];
		if (bpf_skb_load_bytes(skb, off, ports, sizeof(ports)) < 0)
			return PARSE_INVALID;
		__builtin_memcpy(&p->sport, &ports[0], 2);
		__builtin_memcpy(&p->dport, &ports[2], 2);
		p->policy_port = bpf_ntohs(p->dport);
		p->has_port = 1;
		return PARSE_OK;
	}
	}
	return PARSE_OK;
}

static __always_inline int is_icmp_echo_request(__u8 proto, __u8 type)
{
	return (proto == IPPROTO_ICMP && type == 8) || (proto == IPPROTO_ICMPV6 && type == 128);
}

static __always_inline int is_icmp_echo_reply(__u8 proto, __u8 type)
{
	return (proto == IPPROTO_ICMP && type == 0) || (proto == IPPROTO_ICMPV6 && type == 129);
}

static __always_inline int is_icmp_error(__u8 proto, __u8 type)
{
	if (proto == IPPROTO_ICMP)
		return type == 3 || type == 11 || type == 12;
	return type >= 1 && type <= 4;
}

/* Parses the first bytes of the packet quoted in an ICMP error: its protocol
 * and ports (or echo identifier), which identify the connection. */
static __always_inline int parse_icmp_inner(struct __sk_buff *skb, __u32 off, struct packet *p)
{
	__u32 l4;
	__u8 proto;

	if (p->family == FAMILY_IPV4) {
		__u8 iph[20];
		if (bpf_skb_load_bytes(skb, off, iph, sizeof(iph)) < 0)
			return PARSE_INVALID;
		if ((iph[0] >> 4) != 4)
			return PARSE_INVALID;
		l4 = off + (iph[0] & 0x0f) * 4;
		proto = iph[9];
	} else {
		__u8 ip6h[40];
		if (bpf_skb_load_bytes(skb, off, ip6h, sizeof(ip6h)) < 0)
			return PARSE_INVALID;
		if ((ip6h[0] >> 4) != 6)
			return PARSE_INVALID;
		l4 = off + 40;
		proto = ip6h[6];
	}

	__u8 l4h[8];
	if (bpf_skb_load_bytes(skb, l4, l4h, sizeof(l4h)) < 0)
		return PARSE_INVALID;

	p->inner_proto = proto;
	switch (proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		__builtin_memcpy(&p->inner_sport, &l4h[0], 2);
		__builtin_memcpy(&p->inner_dport, &l4h[2], 2);
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (is_icmp_echo_request(proto, l4h[0])) {
			__builtin_memcpy(&p->inner_sport, &l4h[4], 2);
			p->inner_dport = 0;
		} else if (is_icmp_echo_reply(proto, l4h[0])) {
			p->inner_sport = 0;
			__builtin_memcpy(&p->inner_dport, &l4h[4], 2);
		} else {
			return PARSE_INVALID;
		}
		break;
	default:
		p->inner_sport = 0;
		p->inner_dport = 0;
	}
	p->icmp_error = 1;
	return PARSE_OK;
}

static __always_inline int parse_icmp(struct __sk_buff *skb, __u32 off, struct packet *p)
{
	__u8 h[8];
	if (bpf_skb_load_bytes(skb, off, h, sizeof(h)) < 0)
		return PARSE_INVALID;

	__u8 type = h[0], code = h[1];
	p->icmp_type = type;
	p->policy_port = ((__u16)type << 8) | code;
	/* ICMP has no port: wildcard-protocol entries only match "any port". */
	p->has_port = 0;

	if (p->proto == IPPROTO_ICMPV6 && type >= 133 && type <= 137)
		return PARSE_PASS;

	if (is_icmp_echo_request(p->proto, type)) {
		__builtin_memcpy(&p->sport, &h[4], 2);
		p->dport = 0;
	} else if (is_icmp_echo_reply(p->proto, type)) {
		p->sport = 0;
		__builtin_memcpy(&p->dport, &h[4], 2);
	} else if (is_icmp_error(p->proto, type)) {
		/* A malformed quote only loses the "related" shortcut; the
		 * error is still subject to policy like any other ICMP. */
		parse_icmp_inner(skb, off + 8, p);
	}
	return PARSE_OK;
}

static __always_inline void frag_key_init(struct frag_key *k, struct packet *p)
{
	__builtin_memcpy(k->saddr, p->saddr, 16);
	__builtin_memcpy(k->daddr, p->daddr, 16);
	k->id = p->frag_id;
	k->proto = p->proto;
	k->family = p->family;
}

/* A later fragment: take the ports recorded from the first one. Without
 * them the fragment can only match "any port" policy. */
static __always_inline void frag_later(struct packet *p)
{
	struct frag_key k = {};
	frag_key_init(&k, p);
	struct frag_ports *fp = bpf_map_lookup_elem(&fragments, &k);
	if (!fp || (p->proto != IPPROTO_TCP && p->proto != IPPROTO_UDP && p->proto != IPPROTO_SCTP)) {
		p->fragment = 1;
		return;
	}
	p->sport = fp->sport;
	p->dport = fp->dport;
	p->policy_port = bpf_ntohs(fp->dport);
	p->has_port = 1;
}

static __always_inline void frag_record(struct packet *p)
{
	struct frag_key k = {};
	frag_key_init(&k, p);
	struct frag_ports fp = { .sport = p->sport, .dport = p->dport };
	bpf_map_update_elem(&fragments, &k, &fp, BPF_ANY);
}

static __always_inline int parse_ipv4(struct __sk_buff *skb, struct packet *p)
{
	__u8 iph[20];
	if (bpf_skb_load_bytes(skb, ETH_HLEN, iph, sizeof(iph)) < 0)
		return PARSE_INVALID;
	if ((iph[0] >> 4) != 4)
		return PARSE_INVALID;
	__u32 ihl = (iph[0] & 0x0f) * 4;
	if (ihl < 20)
		return PARSE_INVALID;

	p->family = FAMILY_IPV4;
	p->proto = iph[9];
	__builtin_memcpy(p->saddr, &iph[12], 4);
	__builtin_memcpy(p->daddr, &iph[16], 4);

	__u16 frag = (__u16)iph[6] << 8 | iph[7];
	if (frag & 0x3fff) {
		p->fragmented = 1;
		p->frag_id = (__u32)iph[4] << 8 | iph[5];
		if (frag & 0x1fff) {
			frag_later(p);
			return PARSE_OK;
		}
		p->frag_first = 1;
	}

	__u32 off = ETH_HLEN + ihl;
	if (p->proto == IPPROTO_ICMP)
		return parse_icmp(skb, off, p);
	return parse_ports(skb, off, p);
}

static __always_inline int parse_ipv6(struct __sk_buff *skb, struct packet *p)
{
	__u8 ip6h[40];
	if (bpf_skb_load_bytes(skb, ETH_HLEN, ip6h, sizeof(ip6h)) < 0)
		return PARSE_INVALID;
	if ((ip6h[0] >> 4) != 6)
		return PARSE_INVALID;

	p->family = FAMILY_IPV6;
	__builtin_memcpy(p->saddr, &ip6h[8], 16);
	__builtin_memcpy(p->daddr, &ip6h[24], 16);

	__u8 nexthdr = ip6h[6];
	__u32 off = ETH_HLEN + 40;

	/* Skip extension headers. More than IPV6_MAX_EXT_HEADERS is treated as
	 * invalid rather than guessed at, as is a fragment header followed by
	 * further parsing of a non-first fragment. */
#pragma unroll
	for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
		__u8 eh[8];
		switch (nexthdr) {
		case IPPROTO_HOPOPTS_:
		case IPPROTO_ROUTING_:
		case IPPROTO_DSTOPTS_:
			if (bpf_skb_load_bytes(skb, off, eh, 2) < 0)
				return PARSE_INVALID;
			nexthdr = eh[0];
			off += ((__u32)eh[1] + 1) * 8;
			continue;
		case IPPROTO_AH_:
			if (bpf_skb_load_bytes(skb, off, eh, 2) < 0)
				return PARSE_INVALID;
			nexthdr = eh[0];
			off += ((__u32)eh[1] + 2) * 4;
			continue;
		case IPPROTO_FRAGMENT_:
			if (bpf_skb_load_bytes(skb, off, eh, 8) < 0)
				return PARSE_INVALID;
			nexthdr = eh[0];
			off += 8;
			p->fragmented = 1;
			p->frag_id = (__u32)eh[4] << 24 | (__u32)eh[5] << 16 | (__u32)eh[6] << 8 | eh[7];
			if ((((__u16)eh[2] << 8) | eh[3]) & 0xfff8) {
				p->proto = nexthdr;
				frag_later(p);
				return PARSE_OK;
			}
			if (eh[3] & 1)
				p->frag_first = 1;
			continue;
		}
		break;
	}

	switch (nexthdr) {
	case IPPROTO_HOPOPTS_:
	case IPPROTO_ROUTING_:
	case IPPROTO_DSTOPTS_:
	case IPPROTO_AH_:
	case IPPROTO_FRAGMENT_:
		return PARSE_INVALID;
	}

	p->proto = nexthdr;
	if (nexthdr == IPPROTO_ICMPV6)
		return parse_icmp(skb, off, p);
	return parse_ports(skb, off, p);
}

/* parse_direct reads the headers of the common packet (IPv4 without options
 * or IPv6 without extension headers, not fragmented, carrying TCP, UDP or
 * SCTP) in place, with direct packet access, instead of copying each header
 * out with bpf_skb_load_bytes: a helper call and a memcpy per header were
 * about a sixth of an established packet's cost. Everything else, and
 * headers that are not in the linear part of the skb, is left to the copying
 * parser (PARSE_SLOW), which reads non-linear data too; pulling the data
 * into the linear part with bpf_skb_pull_data would write to the packet for
 * no gain on these rare paths. Nothing in p is written unless the packet is
 * handled here. */
static __always_inline int parse_direct(struct __sk_buff *skb, struct packet *p)
{
	__u8 *data = (__u8 *)(long)skb->data;
	__u8 *data_end = (__u8 *)(long)skb->data_end;
	__u8 *l3 = data + ETH_HLEN;
	__u8 *l4;
	__u8 proto;
	enum family family;

	if (l3 > data_end)
		return PARSE_SLOW;
	__be16 eth_proto = *(__be16 *)(data + 12);
	if (eth_proto == bpf_htons(ETH_P_IP)) {
		l4 = l3 + 20;
		if (l4 > data_end)
			return PARSE_SLOW;
		/* Version 4, no options; not a fragment (MF or offset). */
		if (l3[0] != 0x45 || (l3[6] & 0x3f) || l3[7])
			return PARSE_SLOW;
		proto = l3[9];
		family = FAMILY_IPV4;
	} else if (eth_proto == bpf_htons(ETH_P_IPV6)) {
		l4 = l3 + 40;
		if (l4 > data_end)
			return PARSE_SLOW;
		if ((l3[0] >> 4) != 6)
			return PARSE_SLOW;
		proto = l3[6];
		family = FAMILY_IPV6;
	} else {
		return PARSE_SLOW;
	}

	__u8 tcp_flags = 0;
	switch (proto) {
	case IPPROTO_TCP:
		if (l4 + 14 > data_end)
			return PARSE_SLOW;
		tcp_flags = l4[13];
		break;
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		if (l4 + 4 > data_end)
			return PARSE_SLOW;
		break;
	default:
		return PARSE_SLOW;
	}

	p->family = family;
	p->proto = proto;
	if (family == FAMILY_IPV4) {
		__builtin_memcpy(p->saddr, l3 + 12, 4);
		__builtin_memcpy(p->daddr, l3 + 16, 4);
	} else {
		__builtin_memcpy(p->saddr, l3 + 8, 16);
		__builtin_memcpy(p->daddr, l3 + 24, 16);
	}
	__builtin_memcpy(&p->sport, l4, 2);
	__builtin_memcpy(&p->dport, l4 + 2, 2);
	p->tcp_flags = tcp_flags;
	p->policy_port = bpf_ntohs(p->dport);
	p->has_port = 1;
	return PARSE_OK;
}

/* parse is a global function so the verifier checks it once, on its own,
 * instead of once per path through the caller: the many independent branches
 * of header parsing would otherwise multiply with those of the policy and
 * conntrack logic. */
__attribute__((noinline)) int parse(struct __sk_buff *skb, struct packet *p)
{
	__be16 proto;

	if (!p)
		return PARSE_INVALID;
	int rc = parse_direct(skb, p);
	if (rc != PARSE_SLOW)
		return rc;
	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0)
		return PARSE_INVALID;

	switch (proto) {
	case bpf_htons(ETH_P_IP):
		rc = parse_ipv4(skb, p);
		break;
	case bpf_htons(ETH_P_IPV6):
		rc = parse_ipv6(skb, p);
		break;
	case bpf_htons(ETH_P_ARP):
		return PARSE_PASS;
	default:
		return PARSE_UNSUPPORTED;
	}
	if (rc == PARSE_OK && p->frag_first && p->has_port)
		frag_record(p);
	return rc;
}

/* ---- identities and policy -------------------------------------------- */

static __always_inline __u32 lookup_identity(struct packet *p, const __u8 *addr)
{
	struct ipcache_key k = {
		.prefixlen = 32 + (p->family == FAMILY_IPV4 ? 32 : 128),
		.family = p->family,
	};
	__builtin_memcpy(k.addr, addr, 16);
	struct ipcache_value *v = bpf_map_lookup_elem(&ipcache, &k);
	return v ? v->identity : IDENTITY_WORLD;
}

static __always_inline int identity_is_world_or_cidr(__u32 id)
{
	return id == IDENTITY_WORLD || (id & IDENTITY_SCOPE_MASK) == IDENTITY_CIDR_SCOPE;
}

struct policy_result {
	struct policy_value deny;
	struct policy_value redirect;
	struct policy_value allow;
};

static __always_inline void policy_collect(struct policy_result *r, struct policy_key *k)
{
	struct policy_value *v = bpf_map_lookup_elem(&policy, k);
	if (!v)
		return;
	switch (v->verdict) {
	case POLICY_DENY:
		if (r->deny.verdict == POLICY_NONE)
			r->deny = *v;
		break;
	case POLICY_REDIRECT:
		if (r->redirect.verdict == POLICY_NONE)
			r->redirect = *v;
		break;
	case POLICY_ALLOW:
		if (r->allow.verdict == POLICY_NONE)
			r->allow = *v;
		break;
	default:
		break;
	}
}

/* Looks up (peer, proto, port) and (peer, any proto, port) for one peer
 * identity. The protocol-specific lookup always includes the port (ICMP
 * type/code for ICMP); the wildcard-protocol lookup includes it only for
 * protocols with ports, so ICMP matches only "any port" wildcard entries. */
static __always_inline void policy_lookup_peer(struct policy_result *r, struct packet *p,
					       __u16 ep, __u8 dir, __u32 peer, __u32 skip)
{
	struct policy_key k = {
		.endpoint = ep,
		.direction = dir,
		.peer = peer,
	};

	k.proto = p->proto;
	if (p->fragment) {
		k.prefixlen = 64;
		k.dport = 0;
	} else if (p->has_port || p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
		/* Port 0 in a TCP/UDP/SCTP flow matches only "any port" entries. */
		k.prefixlen = (p->has_port && p->policy_port == 0) ? 64 : 80;
		k.dport = bpf_htons(p->policy_port);
	} else {
		k.prefixlen = 64;
		k.dport = 0;
	}
	policy_collect(r, &k);

	if (skip & SKIP_ANY_PROTO)
		return;
	k.proto = 0;
	if (p->has_port && !p->fragment && p->policy_port != 0) {
		k.prefixlen = 80;
		k.dport = bpf_htons(p->policy_port);
	} else {
		k.prefixlen = 64;
		k.dport = 0;
	}
	policy_collect(r, &k);
}

/* Whose policy a lookup reads. The endpoint is an argument rather than the
 * program's endpoint_id because from_endpoint also decides for the
 * destination endpoint of the packets it delivers locally. */
struct policy_query {
	__u32 peer_id;
	__u32 skip;     /* the endpoint's lookup_skip bits for dir */
	__u16 endpoint;
	__u8 dir;
	__u8 pad;
};

/* policy_lookup is a global function for the same reason as parse. q->skip
 * holds the endpoint's lookup_skip bits for the direction: lookups of a
 * kind the endpoint has no rows of would miss, so they are left out. */
__attribute__((noinline)) int policy_lookup(struct policy_result *r, struct packet *p,
					    struct policy_query *q)
{
	if (!r || !p || !q)
		return 0;
	__u8 dir = q->dir;
	__u16 ep = q->endpoint;
	__u32 peer_id = q->peer_id;
	__u32 skip = q->skip;
	const __u8 *peer_addr = dir == DIR_EGRESS ? p->daddr : p->saddr;

	policy_lookup_peer(r, p, ep, dir, peer_id, skip);

	if (!(skip & SKIP_CIDR)) {
		struct cidr_key ck = {
			.prefixlen = 32 + (p->family == FAMILY_IPV4 ? 32 : 128),
			.endpoint = ep,
			.direction = dir,
			.family = p->family,
		};
		__builtin_memcpy(ck.addr, peer_addr, 16);
		struct cidr_value *cv = bpf_map_lookup_elem(&cidr, &ck);
		if (cv) {
			__u32 class_any = cv->class_any;
			__u32 class_world = cv->class_world;
			if (class_any)
				policy_lookup_peer(r, p, ep, dir, class_any | IDENTITY_CIDR_CLASS_FLAG, skip);
			if (class_world && identity_is_world_or_cidr(peer_id))
				policy_lookup_peer(r, p, ep, dir, class_world | IDENTITY_CIDR_CLASS_FLAG, skip);
		}
	}

	if (!(skip & SKIP_ANY_PEER))
		policy_lookup_peer(r, p, ep, dir, IDENTITY_UNKNOWN, skip);
	return 0;
}

/* ---- conntrack -------------------------------------------------------- */

static __always_inline void ct_key_fwd(struct ct_key *k, struct packet *p, __u16 ep, __u8 dir)
{
	__builtin_memcpy(k->saddr, p->saddr, 16);
	__builtin_memcpy(k->daddr, p->daddr, 16);
	k->sport = p->sport;
	k->dport = p->dport;
	k->endpoint = ep;
	k->proto = p->proto;
	k->direction = dir;
	k->family = p->family;
}

static __always_inline void ct_key_rev(struct ct_key *k, struct packet *p, __u16 ep, __u8 dir)
{
	__builtin_memcpy(k->saddr, p->daddr, 16);
	__builtin_memcpy(k->daddr, p->saddr, 16);
	k->sport = p->dport;
	k->dport = p->sport;
	k->endpoint = ep;
	k->proto = p->proto;
	k->direction = dir ^ 1;
	k->family = p->family;
}

static __always_inline __u64 ct_timeout(struct settings *cfg, __u8 proto, __u8 tcp_state)
{
	struct settings empty = {};
	if (!cfg)
		cfg = &empty;
	switch (proto) {
	case IPPROTO_TCP:
		switch (tcp_state) {
		case CT_TCP_ESTABLISHED:
			return timeout_ns(cfg->tcp_established_timeout, 21600);
		case CT_TCP_CLOSING:
			return timeout_ns(cfg->tcp_closing_timeout, 10);
		}
		return timeout_ns(cfg->tcp_syn_timeout, 60);
	case IPPROTO_UDP:
		return timeout_ns(cfg->udp_timeout, 60);
	case IPPROTO_SCTP:
		return timeout_ns(cfg->sctp_timeout, 21600);
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return timeout_ns(cfg->icmp_timeout, 30);
	}
	return timeout_ns(cfg->other_timeout, 60);
}

/* Returns the live entry for k; an expired entry is deleted and treated as
 * missing, so LRU eviction is not the only way an idle connection ends. */
static __always_inline struct ct_entry *ct_lookup(struct ct_key *k, __u64 now)
{
	struct ct_entry *e = bpf_map_lookup_elem(&conntrack, k);
	if (e && e->expires < now) {
		bpf_map_delete_elem(&conntrack, k);
		return 0;
	}
	return e;
}

/* Advances the TCP state of an entry for a packet in the forward (reply = 0)
 * or reverse direction. */
static __always_inline void ct_update_tcp(struct ct_entry *e, __u8 tcp_flags, int reply)
{
	if (tcp_flags & TCP_RST) {
		e->tcp_state = CT_TCP_CLOSING;
		return;
	}
	if (tcp_flags & TCP_FIN)
		e->flags |= reply ? CT_FLAG_FIN_REV : CT_FLAG_FIN_FWD;
	if ((e->flags & (CT_FLAG_FIN_FWD | CT_FLAG_FIN_REV)) == (CT_FLAG_FIN_FWD | CT_FLAG_FIN_REV)) {
		e->tcp_state = CT_TCP_CLOSING;
		return;
	}
	if (reply && e->tcp_state == CT_TCP_SYN_SENT && (tcp_flags & TCP_ACK))
		e->tcp_state = CT_TCP_ESTABLISHED;
}

static __always_inline void ct_refresh(struct ct_entry *e, struct packet *p, struct settings *cfg,
				       __u64 now, __u32 len, int reply)
{
	if (p->proto == IPPROTO_TCP)
		ct_update_tcp(e, p->tcp_flags, reply);
	/* An established packet only reads its entry unless something
	 * changes: the two directions of a connection run on different CPUs,
	 * and a write per packet made the entry's cache line bounce between
	 * them (most of the programs' live cost on request/response traffic).
	 * Per-connection packet and byte counts are therefore opt-in
	 * (settings.ct_accounting); per-endpoint counters are per-CPU. */
	if (reply && !(e->flags & CT_FLAG_SEEN_REPLY))
		e->flags |= CT_FLAG_SEEN_REPLY;
	if (cfg && cfg->ct_accounting) {
		if (reply) {
			__sync_fetch_and_add(&e->packets_rev, 1);
			__sync_fetch_and_add(&e->bytes_rev, len);
		} else {
			__sync_fetch_and_add(&e->packets_fwd, 1);
			__sync_fetch_and_add(&e->bytes_fwd, len);
		}
	}
	__u64 expires = now + ct_timeout(cfg, p->proto, e->tcp_state);
	/* Avoid dirtying the cache line on every packet. A closing entry may
	 * shorten its lifetime, so always write in that case. */
	if (expires > e->expires + NSEC || e->tcp_state == CT_TCP_CLOSING)
		e->expires = expires;
}

/* ---- accounting and events -------------------------------------------- */

static __always_inline void count(__u16 ep, __u8 dir, __u8 verdict, __u8 reason, __u32 len)
{
	struct counter_key k = {
		.endpoint = ep,
		.direction = dir,
		.verdict = verdict,
		.reason = reason,
	};
	struct counter_value *v = bpf_map_lookup_elem(&counters, &k);
	if (!v) {
		struct counter_value zero = {};
		/* NOEXIST fails harmlessly if another CPU won the race. */
		bpf_map_update_elem(&counters, &k, &zero, BPF_NOEXIST);
		v = bpf_map_lookup_elem(&counters, &k);
		if (!v) {
			stat_inc(STAT_COUNTERS_FULL);
			return;
		}
	}
	v->packets += 1;
	v->bytes += len;
}

/* Token bucket per CPU; returns 1 if an event may be sent. */
static __always_inline int event_allowed(struct settings *cfg, __u64 now)
{
	__u64 rate = 10000, burst;
	if (cfg && cfg->events_rate) {
		if (cfg->events_rate == 0xffffffff)
			return 1;
		rate = cfg->events_rate;
	}
	burst = (cfg && cfg->events_burst) ? cfg->events_burst : rate;

	__u32 zero = 0;
	struct token_bucket *b = bpf_map_lookup_elem(&event_budget, &zero);
	if (!b)
		return 1;
	__u64 elapsed = now - b->last;
	if (elapsed > NSEC)
		elapsed = NSEC;
	__u64 tokens = b->tokens + elapsed * rate;
	if (tokens > burst * NSEC)
		tokens = burst * NSEC;
	b->last = now;
	if (tokens < NSEC) {
		b->tokens = tokens;
		return 0;
	}
	b->tokens = tokens - NSEC;
	return 1;
}

struct verdict_info {
	__u32 local_id;
	__u32 peer_id;
	__u32 rule_id;
	__u16 proxy_port;
	__u8 verdict;
	__u8 reason;
	__u8 ct_status;
};

/* What decide found for one endpoint and direction, and what commit has to
 * write for it. Splitting the two lets from_endpoint decide for the
 * destination of a packet it may deliver locally and, when it does not,
 * leave the packet to the destination's own to_endpoint with nothing
 * written: decide writes nothing that a second decide for the same packet
 * would not find or do again (it may delete an expired entry, or a closing
 * one that a SYN reopens). */
struct decision {
	struct verdict_info vi;
	struct ct_entry *e; /* the packet's live entry, refreshed by commit */
	__u32 ifindex;      /* endpoint_info.ifindex; 0 without configuration */
	__u16 endpoint;
	__u8 dir;
	__u8 reply;         /* e is refreshed as the reverse direction */
	__u8 create;        /* commit creates an entry under the forward key */
	__u8 silent;        /* no event: ARP, neighbour discovery */
};

static __always_inline void emit(struct __sk_buff *skb, struct packet *p, struct decision *d,
				 struct settings *cfg, __u64 now)
{
	struct verdict_info *vi = &d->vi;
	__u8 level = cfg ? cfg->events_level : EVENTS_DEFAULT;
	int is_drop = vi->verdict == VERDICT_DROPPED || vi->verdict == VERDICT_AUDIT;

	switch (level) {
	case EVENTS_NONE:
		return;
	case EVENTS_DROPS:
		if (!is_drop)
			return;
		break;
	case EVENTS_ALL:
		break;
	default:
		if (!is_drop && vi->ct_status != CT_NEW)
			return;
	}

	if (!event_allowed(cfg, now)) {
		stat_inc(STAT_EVENTS_RATE_LIMITED);
		return;
	}

	struct flow_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		stat_inc(STAT_EVENTS_RINGBUF_FULL);
		return;
	}
	e->timestamp = now;
	if (d->dir == DIR_EGRESS) {
		e->src_identity = vi->local_id;
		e->dst_identity = vi->peer_id;
	} else {
		e->src_identity = vi->peer_id;
		e->dst_identity = vi->local_id;
	}
	e->rule_id = vi->rule_id;
	e->length = skb->len;
	e->endpoint = d->endpoint;
	if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
		e->sport = bpf_ntohs(p->sport ? p->sport : p->dport);
		e->dport = p->policy_port;
	} else {
		e->sport = bpf_ntohs(p->sport);
		e->dport = bpf_ntohs(p->dport);
	}
	e->proxy_port = vi->proxy_port;
	e->direction = d->dir;
	e->verdict = vi->verdict;
	e->reason = vi->reason;
	e->family = p->family;
	e->proto = p->proto;
	e->ct_status = vi->ct_status;
	e->tcp_flags = p->tcp_flags;
	e->pad = 0;
	__builtin_memcpy(e->saddr, p->saddr, 16);
	__builtin_memcpy(e->daddr, p->daddr, 16);
	/* Batch the reader's wake-ups: a wake-up per event cost the node more
	 * than the event itself (an irq_work, an epoll wake-up and a context
	 * switch, about 25 us per new connection on the benchmark VM). The
	 * reader polls on a short timer and is woken early only when a batch
	 * has accumulated, so bursts never wait for the timer. */
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= EVENTS_WAKEUP_BYTES)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

/* ---- main ------------------------------------------------------------- */

/* decide takes the decision of endpoint d->endpoint, in direction d->dir,
 * about the packet parse found (rc, p): the verdict, and in d what commit
 * must write. It is the one decision path: from_endpoint runs it for its
 * own endpoint's egress and, for a packet it delivers locally, for the
 * destination's ingress; to_endpoint for its own endpoint's ingress. It is
 * a function of its own (not inlined) so that from_endpoint's two calls
 * share one copy and their stack frames do not add up past the 512-byte
 * limit; it is static, not global, because it hands back a pointer to the
 * conntrack entry in d, which a global function may not. */
static __attribute__((noinline)) void decide(int rc, struct packet *p, struct decision *d, __u64 now)
{
	struct verdict_info *vi = &d->vi;
	__u16 ep = d->endpoint;
	__u8 dir = d->dir;

	struct endpoint_info *info = bpf_map_lookup_elem(&endpoints, &ep);
	__u32 ep_flags = 0, skip = 0;
	if (info) {
		vi->local_id = info->identity;
		ep_flags = info->flags;
		skip = info->skip;
		d->ifindex = info->ifindex;
	}

	if (rc == PARSE_PASS) {
		vi->verdict = VERDICT_FORWARDED;
		d->silent = 1;
		return;
	}
	if (rc != PARSE_OK) {
		vi->verdict = VERDICT_DROPPED;
		vi->reason = rc == PARSE_UNSUPPORTED ? REASON_UNSUPPORTED_L3 : REASON_INVALID;
		return;
	}

	__u8 *peer_addr = dir == DIR_EGRESS ? p->daddr : p->saddr;
	if (!info) {
		vi->peer_id = lookup_identity(p, peer_addr);
		vi->verdict = VERDICT_DROPPED;
		vi->reason = REASON_NO_ENDPOINT;
		return;
	}

	/* Conntrack: the forward key (a packet in the direction that opened
	 * the connection) and the reversed one (a reply). Which is looked up
	 * first only saves a lookup: a connection has one entry at this
	 * endpoint, so at most one of them hits. Replies come from the lower
	 * port (the service's) to the higher (the client's) in nearly all
	 * traffic, and ICMP echo replies carry their identifier as the
	 * destination port, so such packets try the reversed key first; a SYN
	 * never does, so port reuse after close is always seen. */
	struct ct_key key = {};
	struct ct_key rkey = {};
	struct ct_entry *e;
	if (!p->fragment) {
		int reply_first = bpf_ntohs(p->sport) < bpf_ntohs(p->dport) &&
				  !(p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN);
		if (reply_first) {
			ct_key_rev(&rkey, p, ep, dir);
			e = ct_lookup(&rkey, now);
			if (e)
				goto reply;
		}

		ct_key_fwd(&key, p, ep, dir);
		e = ct_lookup(&key, now);
		if (e && p->proto == IPPROTO_TCP && (p->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN &&
		    e->tcp_state == CT_TCP_CLOSING) {
			/* Port reuse after close: re-check policy. */
			bpf_map_delete_elem(&conntrack, &key);
			e = 0;
		}
		/* A tracked packet takes its peer's identity from the entry,
		 * saving the ipcache lookup on every established packet. */
		if (e) {
			d->e = e;
			vi->ct_status = CT_ESTABLISHED;
			vi->peer_id = e->peer_identity;
			vi->rule_id = e->rule_id;
			/* An audited connection was reported once, when it
			 * opened; its later packets count as forwarded. */
			vi->verdict = VERDICT_FORWARDED;
			if (e->flags & CT_FLAG_REDIRECT) {
				vi->verdict = VERDICT_REDIRECTED;
				vi->proxy_port = e->proxy_port;
			}
			return;
		}

		if (!reply_first) {
			ct_key_rev(&rkey, p, ep, dir);
			e = ct_lookup(&rkey, now);
			if (e) {
			reply:
				d->e = e;
				d->reply = 1;
				vi->ct_status = CT_REPLY;
				vi->peer_id = e->peer_identity;
				vi->rule_id = e->rule_id;
				vi->verdict = VERDICT_FORWARDED;
				return;
			}
		}

		if (p->icmp_error) {
			/* The quoted packet travelled the other way: either it
			 * opened a connection in the opposite direction, or it
			 * was a reply on one opened in this direction. rkey is
			 * reused for its keys to keep the stack frame small. */
			struct ct_key *ik = &rkey;
			__builtin_memcpy(ik->saddr, p->daddr, 16);
			__builtin_memcpy(ik->daddr, p->saddr, 16);
			ik->sport = p->inner_sport;
			ik->dport = p->inner_dport;
			ik->endpoint = ep;
			ik->proto = p->inner_proto;
			ik->direction = dir ^ 1;
			ik->family = p->family;
			e = ct_lookup(ik, now);
			if (!e) {
				__builtin_memcpy(ik->saddr, p->saddr, 16);
				__builtin_memcpy(ik->daddr, p->daddr, 16);
				ik->sport = p->inner_dport;
				ik->dport = p->inner_sport;
				ik->direction = dir;
				e = ct_lookup(ik, now);
			}
			if (e) {
				vi->ct_status = CT_RELATED;
				vi->peer_id = lookup_identity(p, peer_addr);
				vi->rule_id = e->rule_id;
				vi->verdict = VERDICT_FORWARDED;
				return;
			}
		}
	}

	/* New flow (or an ICMP error, a fragment): policy. */
	vi->peer_id = lookup_identity(p, peer_addr);
	struct policy_result r = {};
	struct policy_query q = {
		.peer_id = vi->peer_id,
		.skip = dir == DIR_EGRESS ? skip >> SKIP_EGRESS_SHIFT : skip,
		.endpoint = ep,
		.dir = dir,
	};
	policy_lookup(&r, p, &q);

	int enforced = ep_flags & (dir == DIR_EGRESS ? EP_EGRESS_ENFORCED : EP_INGRESS_ENFORCED);
	vi->ct_status = CT_NEW;
	if (r.deny.verdict) {
		vi->verdict = VERDICT_DROPPED;
		vi->reason = REASON_POLICY_DENIED;
		vi->rule_id = r.deny.rule_id;
	} else if (r.redirect.verdict) {
		vi->verdict = VERDICT_REDIRECTED;
		vi->rule_id = r.redirect.rule_id;
		vi->proxy_port = r.redirect.proxy_port;
	} else if (r.allow.verdict) {
		vi->verdict = VERDICT_FORWARDED;
		vi->rule_id = r.allow.rule_id;
	} else if (enforced) {
		vi->verdict = VERDICT_DROPPED;
		vi->reason = REASON_DEFAULT_DENY;
	} else {
		vi->verdict = VERDICT_FORWARDED;
	}

	/* Packets that cannot open a connection. */
	int opens = 1;
	if (p->fragment || p->icmp_error)
		opens = 0;
	else if (p->proto == IPPROTO_TCP) {
		if (p->tcp_flags & (TCP_RST | TCP_FIN))
			opens = 0;
		else if ((p->tcp_flags & (TCP_SYN | TCP_ACK)) != TCP_SYN && vi->reason == REASON_DEFAULT_DENY)
			vi->reason = REASON_CT_NO_ENTRY;
	} else if (p->proto == IPPROTO_ICMP || p->proto == IPPROTO_ICMPV6) {
		if (!is_icmp_echo_request(p->proto, p->icmp_type)) {
			opens = 0;
			if (is_icmp_echo_reply(p->proto, p->icmp_type) && vi->reason == REASON_DEFAULT_DENY)
				vi->reason = REASON_CT_NO_ENTRY;
		}
	}

	if (vi->verdict == VERDICT_DROPPED && (ep_flags & EP_AUDIT))
		vi->verdict = VERDICT_AUDIT;

	d->create = opens && vi->verdict != VERDICT_DROPPED;
}

/* commit writes what decide decided: the conntrack refresh or new entry,
 * the proxy mark, the endpoint's counters and the flow event. Counting and
 * emission live here once rather than at every decision point, which keeps
 * the programs and their verification small; commit is not inlined because
 * from_endpoint calls it from four places. */
static __attribute__((noinline)) void commit(struct __sk_buff *skb, struct packet *p,
					     struct decision *d, struct settings *cfg, __u64 now)
{
	struct verdict_info *vi = &d->vi;
	__u32 len = skb->len;

	if (d->e)
		ct_refresh(d->e, p, cfg, now, len, d->reply);
	if (vi->verdict == VERDICT_REDIRECTED)
		skb->mark = MARK_MAGIC_TO_PROXY | ((__u32)vi->proxy_port << 16);
	if (d->create) {
		struct ct_entry ne = {
			.created = now,
			.rule_id = vi->rule_id,
			.peer_identity = vi->peer_id,
			.proxy_port = vi->proxy_port,
		};
		if (vi->verdict == VERDICT_AUDIT)
			ne.flags |= CT_FLAG_AUDIT;
		if (vi->verdict == VERDICT_REDIRECTED)
			ne.flags |= CT_FLAG_REDIRECT;
		if (p->proto == IPPROTO_TCP)
			ne.tcp_state = (p->tcp_flags & TCP_SYN) ? CT_TCP_SYN_SENT : CT_TCP_ESTABLISHED;
		ne.packets_fwd = 1;
		ne.bytes_fwd = len;
		ne.expires = now + ct_timeout(cfg, p->proto, ne.tcp_state);
		struct ct_key key = {};
		ct_key_fwd(&key, p, d->endpoint, d->dir);
		if (bpf_map_update_elem(&conntrack, &key, &ne, BPF_ANY) < 0)
			stat_inc(STAT_CT_CREATE_FAILED);
	}
	count(d->endpoint, d->dir, vi->verdict, vi->reason, len);
	if (!d->silent)
		emit(skb, p, d, cfg, now);
}

/* deliver_local delivers a packet that the source endpoint's egress
 * allowed straight into the destination endpoint's namespace with
 * bpf_redirect_peer, as Cilium does between the endpoints of one node: the
 * host's IP forwarding, neighbour lookup, qdisc and the destination veth's
 * egress hook are skipped, so to_endpoint never sees the packet, and the
 * destination's ingress decision is taken here by the same decide(), under
 * the destination's endpoint id, with its counters and events.
 *
 * It acts only where the outcome is the one routing and to_endpoint would
 * have produced, and otherwise returns RET_NEXT, leaving the packet to the
 * host with nothing written for the destination:
 *   - the frame was addressed to the host (PACKET_HOST), as routing
 *     requires, and is not a fragment (the host may reassemble those);
 *   - its source is an address of this endpoint (what strict reverse-path
 *     filtering on the host veth lets through) and its destination one of a
 *     local endpoint whose delivery row matches its configuration;
 *   - its TTL or hop limit survives forwarding (otherwise the host sends
 *     the ICMP error);
 *   - the destination's verdict is a plain allow or an audit pass: a proxy
 *     redirect needs its mark seen by the host's routing, and a drop is
 *     committed here and stays a drop.
 * The rewrite is what routing would have done: Ethernet source the
 * destination's host veth, destination the endpoint's interface, TTL or
 * hop limit decremented (with the IPv4 header checksum). */
static __always_inline int deliver_local(struct __sk_buff *skb, struct packet *p,
					 struct settings *cfg, __u64 now)
{
	if (p->fragmented || skb->pkt_type != PACKET_HOST)
		return RET_NEXT;

	/* The destination first: traffic leaving the node misses there and
	 * pays one lookup, not two. */
	struct endpoint_addr_key k = { .family = p->family };
	__builtin_memcpy(k.addr, p->daddr, 16);
	struct endpoint_addr *dst = bpf_map_lookup_elem(&endpoint_addrs, &k);
	if (!dst || !dst->ifindex)
		return RET_NEXT;
	__builtin_memcpy(k.addr, p->saddr, 16);
	struct endpoint_addr *src = bpf_map_lookup_elem(&endpoint_addrs, &k);
	if (!src || src->endpoint != endpoint_id)
		return RET_NEXT;

	__u8 *data = (__u8 *)(long)skb->data;
	__u8 *data_end = (__u8 *)(long)skb->data_end;
	__u8 *l3 = data + ETH_HLEN;
	__u8 ttl;
	if (p->family == FAMILY_IPV4) {
		if (l3 + 20 > data_end)
			return RET_NEXT;
		ttl = l3[8];
	} else {
		if (l3 + 40 > data_end)
			return RET_NEXT;
		ttl = l3[7];
	}
	if (ttl <= 1)
		return RET_NEXT;

	struct decision d = { .endpoint = dst->endpoint, .dir = DIR_INGRESS };
	decide(PARSE_OK, p, &d, now);
	if (d.vi.verdict == VERDICT_REDIRECTED || d.ifindex != dst->ifindex)
		return RET_NEXT;
	if (d.vi.verdict == VERDICT_DROPPED) {
		commit(skb, p, &d, cfg, now);
		return RET_DROP;
	}

	/* Map lookups do not move packet data, so the checked pointers hold. */
	__builtin_memcpy(data, dst->mac, 6);
	__builtin_memcpy(data + 6, dst->host_mac, 6);
	if (p->family == FAMILY_IPV4) {
		__be16 old = *(__be16 *)(l3 + 8);
		l3[8] = ttl - 1;
		__be16 new = *(__be16 *)(l3 + 8);
		/* The header is linear and was just written in place, so the
		 * helper has nothing to pull or copy and cannot fail; should it,
		 * the checksum no longer matches and the packet is dropped. */
		if (bpf_l3_csum_replace(skb, ETH_HLEN + 10, old, new, sizeof(new)) < 0) {
			d.e = 0;
			d.create = 0;
			d.vi.verdict = VERDICT_DROPPED;
			d.vi.reason = REASON_INVALID;
			commit(skb, p, &d, cfg, now);
			return RET_DROP;
		}
	} else {
		l3[7] = ttl - 1;
	}
	commit(skb, p, &d, cfg, now);
	return bpf_redirect_peer(dst->ifindex, 0);
}

static __always_inline int handle(struct __sk_buff *skb, __u8 dir)
{
	struct packet p = {};
	struct decision d = { .endpoint = endpoint_id, .dir = dir };
	struct settings *cfg = get_config();
	__u64 now = bpf_ktime_get_boot_ns();

	int rc = parse(skb, &p);
	decide(rc, &p, &d, now);
	commit(skb, &p, &d, cfg, now);
	if (d.vi.verdict == VERDICT_DROPPED)
		return RET_DROP;
	if (dir == DIR_EGRESS && rc == PARSE_OK && !(cfg && cfg->local_redirect_off) &&
	    (d.vi.verdict == VERDICT_FORWARDED || d.vi.verdict == VERDICT_AUDIT))
		return deliver_local(skb, &p, cfg, now);
	return RET_NEXT;
}

SEC("tcx/ingress")
int from_endpoint(struct __sk_buff *skb)
{
	return handle(skb, DIR_EGRESS);
}

SEC("tcx/egress")
int to_endpoint(struct __sk_buff *skb)
{
	return handle(skb, DIR_INGRESS);
}
