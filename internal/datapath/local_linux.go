package datapath

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
)

// Local delivery rows (the endpoint_addrs map, bpf/types.h struct
// endpoint_addr): one per address of an endpoint, naming the endpoint, its
// host veth and the two MACs that routing would write. from_endpoint
// delivers a packet straight into the destination's namespace only when
// both its source and its destination address have a row (the source's
// naming the sending endpoint), so an endpoint without rows is routed by
// the host exactly as before.
//
// SetEndpoint owns an endpoint's rows. d.addrs remembers which addresses
// each endpoint has rows for, so that a change removes the rows it no
// longer wants without scanning the map; Open rebuilds it from the pinned
// map.

func endpointAddrKey(a netip.Addr) (bpfEndpointAddrKey, error) {
	if !a.IsValid() {
		return bpfEndpointAddrKey{}, fmt.Errorf("invalid address: %w", ErrInvalid)
	}
	f, b := addrBytes(a)
	return bpfEndpointAddrKey{Addr: b, Family: f}, nil
}

// addrRows returns the rows cfg asks for endpoint id: none unless it has
// an interface, both MACs and addresses, since a row the programs cannot
// use fully must not exist (they would have to fall back anyway).
func addrRows(id EndpointID, cfg EndpointConfig) ([]bpfEndpointAddrKey, bpfEndpointAddr, error) {
	for _, m := range []struct {
		name string
		mac  net.HardwareAddr
	}{{"MAC", cfg.MAC}, {"HostMAC", cfg.HostMAC}} {
		if len(m.mac) != 0 && len(m.mac) != 6 {
			return nil, bpfEndpointAddr{}, fmt.Errorf("%s %v is not an Ethernet address: %w", m.name, m.mac, ErrInvalid)
		}
	}
	keys := make([]bpfEndpointAddrKey, 0, len(cfg.Addrs))
	for _, a := range cfg.Addrs {
		k, err := endpointAddrKey(a)
		if err != nil {
			return nil, bpfEndpointAddr{}, err
		}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if cfg.IfIndex == 0 || len(cfg.MAC) == 0 || len(cfg.HostMAC) == 0 {
		return nil, bpfEndpointAddr{}, nil
	}
	v := bpfEndpointAddr{Ifindex: uint32(cfg.IfIndex), Endpoint: uint16(id)}
	copy(v.Mac[:], cfg.MAC)
	copy(v.HostMac[:], cfg.HostMAC)
	return keys, v, nil
}

// syncAddrs makes endpoint id's rows keys, all with value v: it writes
// them, then removes the rows id had for other addresses. d.epMu must be
// held.
func (d *Datapath) syncAddrs(id EndpointID, keys []bpfEndpointAddrKey, v bpfEndpointAddr) error {
	for _, k := range keys {
		if err := d.maps.EndpointAddrs.Put(&k, &v); err != nil {
			return fmt.Errorf("local delivery row for %v: %w", bytesAddr(k.Family, k.Addr), err)
		}
	}
	var errs []error
	kept := keys
	for _, k := range d.addrs[id] {
		if slices.Contains(keys, k) {
			continue
		}
		if err := d.deleteAddrRow(id, k); err != nil {
			errs = append(errs, err)
			kept = append(kept, k) // still there: try again next time
		}
	}
	if len(kept) == 0 {
		delete(d.addrs, id)
	} else {
		d.addrs[id] = kept
	}
	return errors.Join(errs...)
}

// deleteAddrRow deletes the row of address k if it still names endpoint
// id: another endpoint may have been given the address since.
func (d *Datapath) deleteAddrRow(id EndpointID, k bpfEndpointAddrKey) error {
	var v bpfEndpointAddr
	err := d.maps.EndpointAddrs.Lookup(&k, &v)
	if errors.Is(err, ebpf.ErrKeyNotExist) || (err == nil && EndpointID(v.Endpoint) != id) {
		return nil
	}
	if err == nil {
		err = d.maps.EndpointAddrs.Delete(&k)
	}
	if err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("delete local delivery row for %v: %w", bytesAddr(k.Family, k.Addr), err)
	}
	return nil
}

// StopLocalDelivery removes endpoint id's local delivery rows, so that
// traffic between it and other local endpoints is routed by the host again
// (and its to_endpoint decides its ingress). It is for endpoints whose
// interface is gone or was replaced while their configuration stays, such
// as the ones the agent finds broken after a restart; SetEndpoint writes
// the rows again, DeleteEndpoint removes them too.
func (d *Datapath) StopLocalDelivery(id EndpointID) error {
	d.epMu.Lock()
	defer d.epMu.Unlock()
	if err := d.syncAddrs(id, nil, bpfEndpointAddr{}); err != nil {
		return fmt.Errorf("stop local delivery to endpoint %d: %w", id, err)
	}
	return nil
}

// loadAddrIndex rebuilds d.addrs from the pinned map.
func (d *Datapath) loadAddrIndex() error {
	var (
		k  bpfEndpointAddrKey
		v  bpfEndpointAddr
		it = d.maps.EndpointAddrs.Iterate()
	)
	for it.Next(&k, &v) {
		id := EndpointID(v.Endpoint)
		d.addrs[id] = append(d.addrs[id], k)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read local delivery rows: %w", err)
	}
	return nil
}

// localDelivery fills cfg's Addrs, MAC and HostMAC from endpoint id's
// rows, in the order SetEndpoint was given them. d.epMu must be held.
func (d *Datapath) localDelivery(id EndpointID, cfg *EndpointConfig) error {
	for _, k := range d.addrs[id] {
		var v bpfEndpointAddr
		err := d.maps.EndpointAddrs.Lookup(&k, &v)
		if errors.Is(err, ebpf.ErrKeyNotExist) || (err == nil && EndpointID(v.Endpoint) != id) {
			continue
		}
		if err != nil {
			return fmt.Errorf("local delivery row for %v: %w", bytesAddr(k.Family, k.Addr), err)
		}
		cfg.Addrs = append(cfg.Addrs, bytesAddr(k.Family, k.Addr))
		cfg.MAC = net.HardwareAddr(v.Mac[:])
		cfg.HostMAC = net.HardwareAddr(v.HostMac[:])
	}
	return nil
}
