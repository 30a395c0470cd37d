package datapath

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -tags linux -cc clang -cflags "-O2 -g -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu" -type direction -type family -type reserved_identity -type policy_verdict -type flow_verdict -type drop_reason -type ct_status -type ct_tcp_state -type ct_flags -type endpoint_flags -type lookup_skip -type event_level -type stat_index -type tcx_action -type proxy_mark -type ipcache_key -type ipcache_value -type policy_key -type policy_value -type cidr_key -type cidr_value -type endpoint_info -type ct_key -type ct_entry -type flow_event -type counter_key -type counter_value -type settings -type token_bucket -type frag_key -type frag_ports -type endpoint_addr_key -type endpoint_addr bpf ../../bpf/datapath.c

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Datapath is an open set of pinned datapath maps plus the knowledge to
// load and attach per-endpoint programs that use them. It is safe for
// concurrent use.
type Datapath struct {
	opts Options
	spec *ebpf.CollectionSpec
	maps bpfMaps
	log  *slog.Logger

	// mu serialises attach and detach; map updates need no lock, except
	// the read-modify-writes of endpoint_info.
	mu sync.Mutex

	// epMu serialises the read-modify-writes of endpoint_info: SetEndpoint
	// owns its configuration, the policy and CIDR writers its skip bits
	// (skip_linux.go), which they also remember in skips for endpoints not
	// configured yet. skipGen counts, per endpoint, the writes that may
	// add rows.
	epMu    sync.Mutex
	skips   map[EndpointID]uint32
	skipGen map[EndpointID]uint64
	// addrs lists, per endpoint, the addresses it has local delivery rows
	// for (local_linux.go). epMu guards it.
	addrs map[EndpointID][]bpfEndpointAddrKey
}

// Open loads the datapath maps, re-using pinned maps under opts.PinDir when
// they exist so that identities, policy and conntrack survive an agent
// restart. Programs already attached through pinned links keep running
// throughout; Open does not touch them.
func Open(opts Options) (*Datapath, error) {
	if opts.PinDir == "" {
		return nil, fmt.Errorf("open datapath: empty pin directory: %w", ErrInvalid)
	}
	if !filepath.IsAbs(opts.PinDir) {
		return nil, fmt.Errorf("open datapath: pin directory %q is not absolute: %w", opts.PinDir, ErrInvalid)
	}
	if err := ensureBPFFS(opts.PinDir); err != nil {
		return nil, fmt.Errorf("open datapath: %w", err)
	}
	if err := os.MkdirAll(opts.PinDir, 0o700); err != nil {
		return nil, fmt.Errorf("open datapath: %w", err)
	}

	spec, err := loadBpf()
	if err != nil {
		return nil, fmt.Errorf("open datapath: %w", err)
	}
	resize := func(name string, n uint32) {
		if n != 0 {
			spec.Maps[name].MaxEntries = n
		}
	}
	resize(bpfMapIpcache, opts.IPCacheMaxEntries)
	resize(bpfMapPolicy, opts.PolicyMaxEntries)
	resize(bpfMapCidr, opts.CIDRMaxEntries)
	resize(bpfMapConntrack, opts.ConntrackMaxEntries)
	resize(bpfMapEvents, opts.RingBufferSize)

	d := &Datapath{opts: opts, spec: spec, log: opts.Logger,
		skips: make(map[EndpointID]uint32), skipGen: make(map[EndpointID]uint64),
		addrs: make(map[EndpointID][]bpfEndpointAddrKey)}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	err = spec.LoadAndAssign(&d.maps, &ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: opts.PinDir},
	})
	if err != nil {
		if errors.Is(err, ebpf.ErrMapIncompatible) {
			return nil, fmt.Errorf("open datapath: pinned maps in %s differ from this build (remove them to upgrade): %w", opts.PinDir, err)
		}
		return nil, fmt.Errorf("open datapath: load maps: %w", err)
	}
	if err := d.loadAddrIndex(); err != nil {
		d.Close()
		return nil, fmt.Errorf("open datapath: %w", err)
	}
	return d, nil
}

// Close releases this process's handles. Pinned maps and links stay, so
// enforcement continues until Remove or Detach.
func (d *Datapath) Close() error {
	return d.maps.Close()
}

// Remove detaches every endpoint, unpins all maps and deletes PinDir. It is
// for uninstalling and for tests; an agent restart must not call it.
func (d *Datapath) Remove() error {
	var errs []error
	eps, err := d.AttachedEndpoints()
	errs = append(errs, err)
	for _, ep := range eps {
		errs = append(errs, d.Detach(ep))
	}
	for _, m := range d.allMaps() {
		errs = append(errs, m.Unpin())
	}
	errs = append(errs, d.Close())
	errs = append(errs, os.RemoveAll(d.opts.PinDir))
	return errors.Join(errs...)
}

// PinDir returns the bpffs directory of this datapath.
func (d *Datapath) PinDir() string { return d.opts.PinDir }

// allMaps returns every map by its ELF name. It walks the generated struct
// so that a map added to bpf/datapath.c is shared with per-endpoint program
// loads and unpinned by Remove without further edits here.
func (d *Datapath) allMaps() map[string]*ebpf.Map {
	out := make(map[string]*ebpf.Map)
	v := reflect.ValueOf(&d.maps).Elem()
	for i := 0; i < v.NumField(); i++ {
		if m, ok := v.Field(i).Interface().(*ebpf.Map); ok && m != nil {
			out[v.Type().Field(i).Tag.Get("ebpf")] = m
		}
	}
	return out
}

// ensureBPFFS mounts bpffs at BPFFSRoot when dir lies under it and it is not
// mounted yet; a dir elsewhere must already be on bpffs.
func ensureBPFFS(dir string) error {
	root := dir
	if dir == BPFFSRoot || strings.HasPrefix(dir, BPFFSRoot+"/") {
		root = BPFFSRoot
		if !isBPFFS(root) {
			if err := os.MkdirAll(root, 0o755); err != nil {
				return fmt.Errorf("mount bpffs: %w", err)
			}
			if err := unix.Mount("bpf", root, "bpf", 0, "mode=0700"); err != nil {
				return fmt.Errorf("mount bpffs at %s: %w", root, err)
			}
		}
		return nil
	}
	// Walk up to the first existing directory and check its file system.
	for {
		if _, err := os.Stat(root); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			break
		}
		root = parent
	}
	if !isBPFFS(root) {
		return fmt.Errorf("%s is not on a bpffs mount", dir)
	}
	return nil
}

func isBPFFS(path string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false
	}
	return uint64(st.Type) == unix.BPF_FS_MAGIC
}

// SetConfig writes conntrack timeouts and event settings. It takes effect
// for the next packet; existing conntrack entries keep their expiry until
// their next packet.
func (d *Datapath) SetConfig(c Config) error {
	secs := func(t time.Duration) uint32 {
		if t <= 0 {
			return 0
		}
		s := (t + time.Second - 1) / time.Second
		if s > 1<<31 {
			s = 1 << 31
		}
		return uint32(s)
	}
	v := bpfSettings{
		TcpSynTimeout:         secs(c.TCPSynTimeout),
		TcpEstablishedTimeout: secs(c.TCPEstablishedTimeout),
		TcpClosingTimeout:     secs(c.TCPClosingTimeout),
		UdpTimeout:            secs(c.UDPTimeout),
		SctpTimeout:           secs(c.SCTPTimeout),
		IcmpTimeout:           secs(c.ICMPTimeout),
		OtherTimeout:          secs(c.OtherTimeout),
		EventsRate:            c.EventsPerSecond,
		EventsBurst:           c.EventsBurst,
		EventsLevel:           bpfEventLevel(c.Events),
	}
	if c.ConntrackAccounting {
		v.CtAccounting = 1
	}
	if c.DisableLocalRedirect {
		v.LocalRedirectOff = 1
	}
	if err := d.maps.Config.Put(uint32(0), &v); err != nil {
		return fmt.Errorf("set config: %w", err)
	}
	return nil
}

// Stats returns the global counters summed over CPUs.
func (d *Datapath) Stats() (Stats, error) {
	get := func(i bpfStatIndex) (uint64, error) {
		var per []uint64
		if err := d.maps.Stats.Lookup(uint32(i), &per); err != nil {
			return 0, fmt.Errorf("read stats: %w", err)
		}
		var sum uint64
		for _, v := range per {
			sum += v
		}
		return sum, nil
	}
	var s Stats
	var errs [4]error
	s.EventsRateLimited, errs[0] = get(bpfStatIndexSTAT_EVENTS_RATE_LIMITED)
	s.EventsRingbufFull, errs[1] = get(bpfStatIndexSTAT_EVENTS_RINGBUF_FULL)
	s.CTCreateFailed, errs[2] = get(bpfStatIndexSTAT_CT_CREATE_FAILED)
	s.CountersFull, errs[3] = get(bpfStatIndexSTAT_COUNTERS_FULL)
	return s, errors.Join(errs[:]...)
}

// bootNow returns the current CLOCK_BOOTTIME in nanoseconds.
func bootNow() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}
