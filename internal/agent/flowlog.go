package agent

import (
	"strings"
	"sync"

	"github.com/rampartsec/rampart/internal/api"
)

// FlowLog keeps the most recent flows in a ring and fans new ones out to
// followers. A slow follower loses flows rather than slowing the datapath
// reader; its channel is closed when it falls too far behind, and the
// count of lost flows is kept.
type FlowLog struct {
	mu      sync.Mutex
	ring    []api.Flow
	next    int
	full    bool
	subs    map[chan api.Flow]struct{}
	seen    uint64
	dropped uint64 // flows with verdict DROPPED
}

// NewFlowLog returns a log that keeps size flows.
func NewFlowLog(size int) *FlowLog {
	return &FlowLog{ring: make([]api.Flow, size), subs: map[chan api.Flow]struct{}{}}
}

// Add records a flow and hands it to followers.
func (l *FlowLog) Add(f api.Flow) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next] = f
	l.next = (l.next + 1) % len(l.ring)
	l.full = l.full || l.next == 0
	l.seen++
	if f.Verdict == "DROPPED" {
		l.dropped++
	}
	for ch := range l.subs {
		select {
		case ch <- f:
		default:
			delete(l.subs, ch)
			close(ch)
		}
	}
}

// Counts returns the flows seen and dropped since start.
func (l *FlowLog) Counts() (seen, dropped uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seen, l.dropped
}

// Snapshot returns the recorded flows that match, oldest first, at most
// last of them (0: all).
func (l *FlowLog) Snapshot(f api.FlowFilterSpec, last int) []api.Flow {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []api.Flow
	if l.full {
		all = append(all, l.ring[l.next:]...)
	}
	all = append(all, l.ring[:l.next]...)
	var out []api.Flow
	for _, fl := range all {
		if Match(f, fl) {
			out = append(out, fl)
		}
	}
	if last > 0 && len(out) > last {
		out = out[len(out)-last:]
	}
	return out
}

// Subscribe returns a channel of new flows; call the returned function to
// stop. The channel is closed if the follower falls behind.
func (l *FlowLog) Subscribe() (<-chan api.Flow, func()) {
	ch := make(chan api.Flow, 1024)
	l.mu.Lock()
	l.subs[ch] = struct{}{}
	l.mu.Unlock()
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if _, ok := l.subs[ch]; ok {
			delete(l.subs, ch)
			close(ch)
		}
	}
}

// Match reports whether fl passes the filter: verdict, and namespace and
// pod on either side.
func Match(f api.FlowFilterSpec, fl api.Flow) bool {
	if f.Verdict != "" && !strings.EqualFold(f.Verdict, fl.Verdict) {
		return false
	}
	if f.Namespace == "" && f.Pod == "" {
		return true
	}
	for _, name := range []string{fl.Source.Name, fl.Dest.Name} {
		ns, pod, ok := strings.Cut(name, "/")
		if !ok {
			continue
		}
		if (f.Namespace == "" || f.Namespace == ns) && (f.Pod == "" || f.Pod == pod) {
			return true
		}
	}
	return false
}
