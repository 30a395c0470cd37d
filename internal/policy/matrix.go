package policy

// PortProto is a destination port and protocol.
type PortProto struct {
	Port  uint16
	Proto Protocol
}

// EndpointFlow returns the flow from src to dst on pp, with addresses of one
// family (IPv4 when both have one) so that CIDR rules see them.
func EndpointFlow(src, dst *Endpoint, pp PortProto) Flow {
	s := Side{Endpoint: src, Identity: src.Identity}
	d := Side{Endpoint: dst, Identity: dst.Identity}
	PickAddrs(&s, &d)
	return Flow{Src: s, Dst: d, Proto: pp.Proto, Port: pp.Port}
}

// PickAddrs gives endpoint sides that have no address yet one of the family
// the other side uses, IPv4 by default, or any they have.
func PickAddrs(a, b *Side) {
	family := 4
	for _, s := range []*Side{a, b} {
		if s.Addr.IsValid() && s.Addr.Is6() {
			family = 6
		}
	}
	for _, s := range []*Side{a, b} {
		if s.Addr.IsValid() || s.Endpoint == nil {
			continue
		}
		if addr, ok := s.Endpoint.Addr(family); ok {
			s.Addr = addr
		} else if len(s.Endpoint.IPs) > 0 {
			s.Addr = s.Endpoint.IPs[0]
		}
	}
}

// Cell is one matrix result: the flow's verdict and each side's.
type Cell struct {
	Allowed, Egress, Ingress bool
}

// Matrix decides every ordered pair of eps, each endpoint with itself
// included, on every port. The result is indexed [port][src*len(eps)+dst].
func (r *Repository) Matrix(eps []*Endpoint, ports []PortProto) [][]Cell {
	out := make([][]Cell, len(ports))
	for pi, pp := range ports {
		res := make([]Cell, 0, len(eps)*len(eps))
		for _, src := range eps {
			for _, dst := range eps {
				v := r.Decide(EndpointFlow(src, dst, pp))
				res = append(res, Cell{Allowed: v.Allowed, Egress: v.Egress.Allowed, Ingress: v.Ingress.Allowed})
			}
		}
		out[pi] = res
	}
	return out
}
