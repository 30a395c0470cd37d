package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// be16 returns the uint16 whose in-memory bytes are p in network order, for
// __be16 fields of generated structs.
func be16(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

// fromBE16 undoes be16.
func fromBE16(v uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], v)
	return binary.BigEndian.Uint16(b[:])
}

// addrBytes returns the 16-byte form of a: IPv4 in the first four bytes.
func addrBytes(a netip.Addr) (bpfFamily, [16]byte) {
	var out [16]byte
	if a.Is4() || a.Is4In6() {
		v4 := a.Unmap().As4()
		copy(out[:], v4[:])
		return bpfFamilyFAMILY_IPV4, out
	}
	return bpfFamilyFAMILY_IPV6, a.As16()
}

// bytesAddr undoes addrBytes.
func bytesAddr(f bpfFamily, b [16]uint8) netip.Addr {
	switch f {
	case bpfFamilyFAMILY_IPV4:
		return netip.AddrFrom4([4]byte(b[:4]))
	case bpfFamilyFAMILY_IPV6:
		return netip.AddrFrom16(b)
	}
	return netip.Addr{}
}

// prefixParts validates p and returns its family, masked address bytes and
// length. IPv4-mapped IPv6 prefixes are stored as IPv4 so that a packet
// matches them whichever way userspace spelled the address.
func prefixParts(p netip.Prefix) (bpfFamily, [16]byte, int, error) {
	if !p.IsValid() {
		return 0, [16]byte{}, 0, fmt.Errorf("invalid prefix %v: %w", p, ErrInvalid)
	}
	bitsLen := p.Bits()
	if p.Addr().Is4In6() {
		if bitsLen < 96 {
			return 0, [16]byte{}, 0, fmt.Errorf("prefix %v spans IPv4-mapped and native IPv6: %w", p, ErrInvalid)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), bitsLen-96)
		bitsLen -= 96
	}
	f, b := addrBytes(p.Masked().Addr())
	return f, b, bitsLen, nil
}

// batchPut writes keys and values in one BPF_MAP_UPDATE_BATCH call where
// the kernel supports it for the map type, element by element otherwise.
func batchPut[K, V any](m *ebpf.Map, keys []K, vals []V) error {
	if len(keys) == 0 {
		return nil
	}
	_, err := m.BatchUpdate(keys, vals, nil)
	if err == nil {
		return nil
	}
	if !errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	for i := range keys {
		if err := m.Put(&keys[i], &vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// batchDelete deletes keys, ignoring keys that do not exist.
func batchDelete[K any](m *ebpf.Map, keys []K) error {
	for len(keys) > 0 {
		n, err := m.BatchDelete(keys, nil)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ebpf.ErrKeyNotExist) && n < len(keys):
			keys = keys[n+1:]
		case errors.Is(err, ebpf.ErrNotSupported):
			for i := range keys {
				if err := m.Delete(&keys[i]); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
					return err
				}
			}
			return nil
		default:
			return err
		}
	}
	return nil
}
