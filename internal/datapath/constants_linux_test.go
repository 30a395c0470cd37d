package datapath

import (
	"testing"
	"unsafe"
)

// TestConstantsMatchC keeps the Go constants of types.go equal to the C
// enums of bpf/types.h, which bpf2go exports as the bpf* constants. The Go
// names are the API; the generated ones only exist on Linux.
func TestConstantsMatchC(t *testing.T) {
	tests := []struct {
		name   string
		goVal  uint64
		cValue uint64
	}{
		{"IdentityAny", uint64(IdentityAny), uint64(bpfReservedIdentityIDENTITY_UNKNOWN)},
		{"IdentityHost", uint64(IdentityHost), uint64(bpfReservedIdentityIDENTITY_HOST)},
		{"IdentityWorld", uint64(IdentityWorld), uint64(bpfReservedIdentityIDENTITY_WORLD)},
		{"IdentityUnmanaged", uint64(IdentityUnmanaged), uint64(bpfReservedIdentityIDENTITY_UNMANAGED)},
		{"IdentityHealth", uint64(IdentityHealth), uint64(bpfReservedIdentityIDENTITY_HEALTH)},
		{"IdentityInit", uint64(IdentityInit), uint64(bpfReservedIdentityIDENTITY_INIT)},
		{"IdentityRemoteNode", uint64(IdentityRemoteNode), uint64(bpfReservedIdentityIDENTITY_REMOTE_NODE)},
		{"IdentityKubeAPIServer", uint64(IdentityKubeAPIServer), uint64(bpfReservedIdentityIDENTITY_KUBE_APISERVER)},
		{"IdentityMinCluster", uint64(IdentityMinCluster), uint64(bpfReservedIdentityIDENTITY_MIN_CLUSTER)},
		{"IdentityCIDRScope", uint64(IdentityCIDRScope), uint64(bpfReservedIdentityIDENTITY_CIDR_SCOPE)},
		{"identityScopeMask", uint64(identityScopeMask), uint64(bpfReservedIdentityIDENTITY_SCOPE_MASK)},
		{"cidrClassFlag", uint64(cidrClassFlag), uint64(bpfReservedIdentityIDENTITY_CIDR_CLASS_FLAG)},

		{"Ingress", uint64(Ingress), uint64(bpfDirectionDIR_INGRESS)},
		{"Egress", uint64(Egress), uint64(bpfDirectionDIR_EGRESS)},

		{"VerdictNone", uint64(VerdictNone), uint64(bpfPolicyVerdictPOLICY_NONE)},
		{"VerdictAllow", uint64(VerdictAllow), uint64(bpfPolicyVerdictPOLICY_ALLOW)},
		{"VerdictDeny", uint64(VerdictDeny), uint64(bpfPolicyVerdictPOLICY_DENY)},
		{"VerdictRedirect", uint64(VerdictRedirect), uint64(bpfPolicyVerdictPOLICY_REDIRECT)},

		{"FlowForwarded", uint64(FlowForwarded), uint64(bpfFlowVerdictVERDICT_FORWARDED)},
		{"FlowDropped", uint64(FlowDropped), uint64(bpfFlowVerdictVERDICT_DROPPED)},
		{"FlowAudit", uint64(FlowAudit), uint64(bpfFlowVerdictVERDICT_AUDIT)},
		{"FlowRedirected", uint64(FlowRedirected), uint64(bpfFlowVerdictVERDICT_REDIRECTED)},

		{"ReasonNone", uint64(ReasonNone), uint64(bpfDropReasonREASON_NONE)},
		{"ReasonPolicyDenied", uint64(ReasonPolicyDenied), uint64(bpfDropReasonREASON_POLICY_DENIED)},
		{"ReasonDefaultDeny", uint64(ReasonDefaultDeny), uint64(bpfDropReasonREASON_DEFAULT_DENY)},
		{"ReasonCTNoEntry", uint64(ReasonCTNoEntry), uint64(bpfDropReasonREASON_CT_NO_ENTRY)},
		{"ReasonInvalid", uint64(ReasonInvalid), uint64(bpfDropReasonREASON_INVALID)},
		{"ReasonUnsupportedL3", uint64(ReasonUnsupportedL3), uint64(bpfDropReasonREASON_UNSUPPORTED_L3)},
		{"ReasonNoEndpoint", uint64(ReasonNoEndpoint), uint64(bpfDropReasonREASON_NO_ENDPOINT)},

		{"CTNew", uint64(CTNew), uint64(bpfCtStatusCT_NEW)},
		{"CTEstablished", uint64(CTEstablished), uint64(bpfCtStatusCT_ESTABLISHED)},
		{"CTReply", uint64(CTReply), uint64(bpfCtStatusCT_REPLY)},
		{"CTRelated", uint64(CTRelated), uint64(bpfCtStatusCT_RELATED)},

		{"TCPNone", uint64(TCPNone), uint64(bpfCtTcpStateCT_TCP_NONE)},
		{"TCPSynSent", uint64(TCPSynSent), uint64(bpfCtTcpStateCT_TCP_SYN_SENT)},
		{"TCPEstablished", uint64(TCPEstablished), uint64(bpfCtTcpStateCT_TCP_ESTABLISHED)},
		{"TCPClosing", uint64(TCPClosing), uint64(bpfCtTcpStateCT_TCP_CLOSING)},

		{"EventsDefault", uint64(EventsDefault), uint64(bpfEventLevelEVENTS_DEFAULT)},
		{"EventsDrops", uint64(EventsDrops), uint64(bpfEventLevelEVENTS_DROPS)},
		{"EventsAll", uint64(EventsAll), uint64(bpfEventLevelEVENTS_ALL)},
		{"EventsNone", uint64(EventsNone), uint64(bpfEventLevelEVENTS_NONE)},

		{"flagIngressEnforced", uint64(flagIngressEnforced), uint64(bpfEndpointFlagsEP_INGRESS_ENFORCED)},
		{"flagEgressEnforced", uint64(flagEgressEnforced), uint64(bpfEndpointFlagsEP_EGRESS_ENFORCED)},
		{"flagAudit", uint64(flagAudit), uint64(bpfEndpointFlagsEP_AUDIT)},
		{"skipAnyPeer", uint64(skipAnyPeer), uint64(bpfLookupSkipSKIP_ANY_PEER)},
		{"skipAnyProto", uint64(skipAnyProto), uint64(bpfLookupSkipSKIP_ANY_PROTO)},
		{"skipCIDR", uint64(skipCIDR), uint64(bpfLookupSkipSKIP_CIDR)},
		{"skipEgressShift", uint64(skipEgressShift), uint64(bpfLookupSkipSKIP_EGRESS_SHIFT)},

		{"ProtoICMP", uint64(ProtoICMP), 1},
		{"ProtoTCP", uint64(ProtoTCP), 6},
		{"ProtoUDP", uint64(ProtoUDP), 17},
		{"ProtoICMPv6", uint64(ProtoICMPv6), 58},
		{"ProtoSCTP", uint64(ProtoSCTP), 132},
	}
	for _, tt := range tests {
		if tt.goVal != tt.cValue {
			t.Errorf("%s = %d in Go, %d in bpf/types.h", tt.name, tt.goVal, tt.cValue)
		}
	}
}

// TestLayouts pins the sizes of the structs shared with C, so that a field
// added on one side without regenerating fails here rather than as a
// garbled map entry. bpf2go derives the Go structs from BTF, so a mismatch
// means the committed bpf_bpfel.go is stale.
func TestLayouts(t *testing.T) {
	tests := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"ipcache_key", unsafe.Sizeof(bpfIpcacheKey{}), 24},
		{"ipcache_value", unsafe.Sizeof(bpfIpcacheValue{}), 8},
		{"policy_key", unsafe.Sizeof(bpfPolicyKey{}), 16},
		{"policy_value", unsafe.Sizeof(bpfPolicyValue{}), 8},
		{"cidr_key", unsafe.Sizeof(bpfCidrKey{}), 24},
		{"cidr_value", unsafe.Sizeof(bpfCidrValue{}), 8},
		{"endpoint_info", unsafe.Sizeof(bpfEndpointInfo{}), 16},
		{"ct_key", unsafe.Sizeof(bpfCtKey{}), 44},
		{"ct_entry", unsafe.Sizeof(bpfCtEntry{}), 64},
		{"flow_event", unsafe.Sizeof(bpfFlowEvent{}), 72},
		{"counter_key", unsafe.Sizeof(bpfCounterKey{}), 8},
		{"counter_value", unsafe.Sizeof(bpfCounterValue{}), 16},
		{"settings", unsafe.Sizeof(bpfSettings{}), 40},
		{"endpoint_addr_key", unsafe.Sizeof(bpfEndpointAddrKey{}), 20},
		{"endpoint_addr", unsafe.Sizeof(bpfEndpointAddr{}), 20},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("sizeof(struct %s) = %d, want %d", tt.name, tt.got, tt.want)
		}
	}
}
