package datapath

// Lookup-skip bits, for tests outside the package.
const (
	SkipAnyPeer     = skipAnyPeer
	SkipAnyProto    = skipAnyProto
	SkipCIDR        = skipCIDR
	SkipEgressShift = skipEgressShift
)

// EndpointSkips returns endpoint ep's lookup-skip bits as the programs
// read them.
func (d *Datapath) EndpointSkips(ep EndpointID) (uint32, error) {
	var v bpfEndpointInfo
	if err := d.maps.Endpoints.Lookup(uint16(ep), &v); err != nil {
		return 0, err
	}
	return v.Skip, nil
}
