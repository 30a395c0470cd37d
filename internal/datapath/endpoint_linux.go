package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// linksDir is the subdirectory of PinDir holding one directory of pinned
// TCX links per attached endpoint.
const linksDir = "links"

// Pin names of the two links of an endpoint, named after the programs.
const (
	linkFromEndpoint = "from_endpoint" // tcx ingress of the host veth
	linkToEndpoint   = "to_endpoint"   // tcx egress of the host veth
)

// SetEndpoint creates or replaces the datapath configuration of endpoint
// id. Call it before Attach: attached programs without a configuration drop
// everything (ReasonNoEndpoint), which fails closed.
//
// The configuration is written before the endpoint's local delivery rows
// (EndpointConfig.Addrs), and the programs deliver to an endpoint only
// while its row and its configuration name the same interface, so a
// change of interface never delivers to the old one.
func (d *Datapath) SetEndpoint(id EndpointID, cfg EndpointConfig) error {
	if id == 0 {
		return fmt.Errorf("set endpoint: endpoint id 0: %w", ErrInvalid)
	}
	if cfg.IfIndex < 0 {
		return fmt.Errorf("set endpoint %d: ifindex %d: %w", id, cfg.IfIndex, ErrInvalid)
	}
	keys, row, err := addrRows(id, cfg)
	if err != nil {
		return fmt.Errorf("set endpoint %d: %w", id, err)
	}
	v := bpfEndpointInfo{Identity: uint32(cfg.Identity), Ifindex: uint32(cfg.IfIndex)}
	if cfg.IngressEnforced {
		v.Flags |= flagIngressEnforced
	}
	if cfg.EgressEnforced {
		v.Flags |= flagEgressEnforced
	}
	if cfg.Audit {
		v.Flags |= flagAudit
	}
	// The lookup-skip bits belong to the policy and CIDR writers: keep
	// those already written, or those remembered for a new entry.
	d.epMu.Lock()
	defer d.epMu.Unlock()
	var old bpfEndpointInfo
	err = d.maps.Endpoints.Lookup(uint16(id), &old)
	switch {
	case err == nil:
		v.Skip = old.Skip
	case errors.Is(err, ebpf.ErrKeyNotExist):
		v.Skip = d.skips[id]
	default:
		return fmt.Errorf("set endpoint %d: %w", id, err)
	}
	if err := d.maps.Endpoints.Put(uint16(id), &v); err != nil {
		return fmt.Errorf("set endpoint %d: %w", id, err)
	}
	if err := d.syncAddrs(id, keys, row); err != nil {
		return fmt.Errorf("set endpoint %d: %w", id, err)
	}
	return nil
}

// Endpoint returns the configuration of endpoint id. Addrs, MAC and
// HostMAC are those of its local delivery rows, so they are empty when
// SetEndpoint was not given all of them.
func (d *Datapath) Endpoint(id EndpointID) (EndpointConfig, error) {
	var v bpfEndpointInfo
	if err := d.maps.Endpoints.Lookup(uint16(id), &v); err != nil {
		return EndpointConfig{}, fmt.Errorf("endpoint %d: %w", id, err)
	}
	cfg := EndpointConfig{
		Identity:        Identity(v.Identity),
		IfIndex:         int(v.Ifindex),
		IngressEnforced: v.Flags&flagIngressEnforced != 0,
		EgressEnforced:  v.Flags&flagEgressEnforced != 0,
		Audit:           v.Flags&flagAudit != 0,
	}
	d.epMu.Lock()
	defer d.epMu.Unlock()
	if err := d.localDelivery(id, &cfg); err != nil {
		return EndpointConfig{}, fmt.Errorf("endpoint %d: %w", id, err)
	}
	return cfg, nil
}

// DeleteEndpoint detaches endpoint id and removes everything the datapath
// holds for it: local delivery rows, configuration, policy, CIDR classes,
// conntrack and counters.
func (d *Datapath) DeleteEndpoint(id EndpointID) error {
	errs := []error{d.Detach(id), d.StopLocalDelivery(id)}
	if err := d.maps.Endpoints.Delete(uint16(id)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, fmt.Errorf("delete endpoint %d: %w", id, err))
	}
	errs = append(errs, d.SyncPolicy(id, nil))
	errs = append(errs, d.SyncCIDR(id, nil))
	_, err := d.FlushConntrack(id, CTFilter{})
	errs = append(errs, err)
	errs = append(errs, d.deleteCounters(id))
	d.forgetSkips(id)
	return errors.Join(errs...)
}

// Programs is one endpoint's copy of the datapath programs, loaded but not
// attached. The endpoint id is a load-time constant, so each endpoint has
// its own copy; all copies share the pinned maps.
type Programs struct {
	// FromEndpoint runs on the host veth's tcx ingress: the endpoint's
	// egress direction.
	FromEndpoint *ebpf.Program
	// ToEndpoint runs on the host veth's tcx egress: the endpoint's ingress
	// direction.
	ToEndpoint *ebpf.Program
}

// Close releases the programs; attached links keep their own references.
func (p *Programs) Close() error {
	return errors.Join(p.FromEndpoint.Close(), p.ToEndpoint.Close())
}

// LoadPrograms loads endpoint id's programs without attaching them. Attach
// uses it; tests use it to run crafted packets through BPF_PROG_TEST_RUN.
func (d *Datapath) LoadPrograms(id EndpointID) (*Programs, error) {
	if id == 0 {
		return nil, fmt.Errorf("load programs: endpoint id 0: %w", ErrInvalid)
	}
	spec := d.spec.Copy()
	if err := spec.Variables[bpfVarEndpointId].Set(uint16(id)); err != nil {
		return nil, fmt.Errorf("load programs for endpoint %d: %w", id, err)
	}
	var progs bpfPrograms
	err := spec.LoadAndAssign(&progs, &ebpf.CollectionOptions{MapReplacements: d.allMaps()})
	if err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("load programs for endpoint %d: %+v", id, ve)
		}
		return nil, fmt.Errorf("load programs for endpoint %d: %w", id, err)
	}
	return &Programs{FromEndpoint: progs.FromEndpoint, ToEndpoint: progs.ToEndpoint}, nil
}

func (d *Datapath) endpointLinkDir(id EndpointID) string {
	return filepath.Join(d.opts.PinDir, linksDir, strconv.Itoa(int(id)))
}

// Attach attaches endpoint id's programs to the host-side veth ifindex
// with TCX and pins the links, so they stay attached when this process
// exits. Attaching an already attached endpoint atomically replaces its
// programs (link update, no window without enforcement); if the endpoint
// moved to another interface the old links are detached.
func (d *Datapath) Attach(id EndpointID, ifindex int) error {
	if ifindex <= 0 {
		return fmt.Errorf("attach endpoint %d: ifindex %d: %w", id, ifindex, ErrInvalid)
	}
	progs, err := d.LoadPrograms(id)
	if err != nil {
		return err
	}
	defer progs.Close()

	d.mu.Lock()
	defer d.mu.Unlock()

	dir := d.endpointLinkDir(id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("attach endpoint %d: %w", id, err)
	}
	for _, a := range []struct {
		name string
		prog *ebpf.Program
		typ  ebpf.AttachType
	}{
		{linkFromEndpoint, progs.FromEndpoint, ebpf.AttachTCXIngress},
		{linkToEndpoint, progs.ToEndpoint, ebpf.AttachTCXEgress},
	} {
		if err := d.attachOne(filepath.Join(dir, a.name), ifindex, a.prog, a.typ); err != nil {
			return fmt.Errorf("attach endpoint %d %s to ifindex %d: %w", id, a.name, ifindex, err)
		}
	}
	d.log.Info("attached endpoint", "endpoint", id, "ifindex", ifindex)
	return nil
}

func (d *Datapath) attachOne(pin string, ifindex int, prog *ebpf.Program, typ ebpf.AttachType) error {
	if old, err := link.LoadPinnedLink(pin, nil); err == nil {
		info, ierr := old.Info()
		if ierr == nil && info.TCX() != nil && int(info.TCX().Ifindex) == ifindex {
			err := old.Update(prog)
			old.Close()
			return err
		}
		// Stale: the interface is gone or the endpoint moved.
		old.Unpin()
		old.Close()
	} else if !errors.Is(err, os.ErrNotExist) {
		os.Remove(pin)
	}
	l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: typ})
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Pin(pin); err != nil {
		return fmt.Errorf("pin link: %w", err)
	}
	return nil
}

// Detach detaches endpoint id's programs and removes their pins. Detaching
// an endpoint that is not attached is not an error.
func (d *Datapath) Detach(id EndpointID) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := d.endpointLinkDir(id)
	var errs []error
	for _, name := range []string{linkFromEndpoint, linkToEndpoint} {
		pin := filepath.Join(dir, name)
		l, err := link.LoadPinnedLink(pin, nil)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("detach endpoint %d: %w", id, err), os.Remove(pin))
			continue
		}
		errs = append(errs, l.Unpin(), l.Close())
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	d.log.Info("detached endpoint", "endpoint", id)
	return nil
}

// AttachedEndpoints lists endpoints with pinned links, in id order. After a
// restart the agent compares it with its own endpoint list to find links
// whose endpoint went away while it was down.
func (d *Datapath) AttachedEndpoints() ([]EndpointID, error) {
	ents, err := os.ReadDir(filepath.Join(d.opts.PinDir, linksDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list attached endpoints: %w", err)
	}
	var ids []EndpointID
	for _, e := range ents {
		n, err := strconv.ParseUint(e.Name(), 10, 16)
		if err != nil || n == 0 {
			continue
		}
		ids = append(ids, EndpointID(n))
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, nil
}
