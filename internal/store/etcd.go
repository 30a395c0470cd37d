package store

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// listPageSize bounds one range request of List; pages are read at one
// revision, so a List is a consistent snapshot however long it is.
const listPageSize = 1000

// Etcd is a Store on etcd, embedded ([OpenEmbedded]) or remote
// ([OpenRemote]). It is safe for concurrent use.
type Etcd struct {
	cli       *clientv3.Client
	endpoints []string
	done      chan struct{} // closed by Close; ends watches
	closeOnce sync.Once
	closeErr  error
	stop      func() error // stops what the back end started; may be nil
}

var _ Store = (*Etcd)(nil)

func newEtcd(cli *clientv3.Client, endpoints []string, stop func() error) *Etcd {
	return &Etcd{cli: cli, endpoints: endpoints, done: make(chan struct{}), stop: stop}
}

// Endpoints returns the client URLs of the etcd the store talks to, for
// diagnostics (etcdctl --endpoints=...).
func (s *Etcd) Endpoints() []string { return append([]string(nil), s.endpoints...) }

// Close implements Store. It ends every watch, closes the client and, for
// the embedded back end, stops etcd and releases the state directory.
func (s *Etcd) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.closeErr = s.cli.Close()
		if errors.Is(s.closeErr, context.Canceled) {
			s.closeErr = nil
		}
		if s.stop != nil {
			if err := s.stop(); err != nil && s.closeErr == nil {
				s.closeErr = err
			}
		}
	})
	return s.closeErr
}

func (s *Etcd) closed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// wrap turns a client error into the store's: ErrClosed after Close, the
// context's error when it ended, a hint for etcd's size limits.
func (s *Etcd) wrap(ctx context.Context, op string, err error) error {
	switch {
	case s.closed():
		return fmt.Errorf("%s: %w", op, ErrClosed)
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", op, ctx.Err())
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("%s: %w (etcd's --max-txn-ops limits the writes of one transaction)", op, err)
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%s: %w (etcd's --max-request-bytes limits the size of one transaction)", op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Get implements Store.
func (s *Etcd) Get(ctx context.Context, key string) (KV, error) {
	if s.closed() {
		return KV{}, fmt.Errorf("get %s: %w", key, ErrClosed)
	}
	resp, err := s.cli.Get(ctx, key)
	if err != nil {
		return KV{}, s.wrap(ctx, "get "+key, err)
	}
	if len(resp.Kvs) == 0 {
		return KV{}, fmt.Errorf("get %s: %w", key, ErrNotFound)
	}
	kv := resp.Kvs[0]
	return KV{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision}, nil
}

// List implements Store. Long lists are read in pages, all at the revision
// of the first page.
func (s *Etcd) List(ctx context.Context, prefix string) ([]KV, int64, error) {
	if s.closed() {
		return nil, 0, fmt.Errorf("list %s: %w", prefix, ErrClosed)
	}
	start, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	if prefix == "" {
		start, end = "\x00", "\x00" // every key
	}
	var (
		out []KV
		rev int64
	)
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(listPageSize)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		resp, err := s.cli.Get(ctx, start, opts...)
		if err != nil {
			return nil, 0, s.wrap(ctx, "list "+prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			out = append(out, KV{Key: string(kv.Key), Value: kv.Value, Revision: kv.ModRevision})
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, rev, nil
		}
		start = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Apply implements Store: one etcd transaction whose compare part is conds
// and whose success part is every put and delete.
func (s *Etcd) Apply(ctx context.Context, puts []KV, deletes []string, conds ...Condition) (int64, error) {
	if s.closed() {
		return 0, fmt.Errorf("apply: %w", ErrClosed)
	}
	cmps, err := compares(conds)
	if err != nil {
		return 0, err
	}
	ops, err := writeOps(puts, deletes)
	if err != nil {
		return 0, err
	}
	resp, err := s.cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, s.wrap(ctx, "apply", err)
	}
	if !resp.Succeeded {
		return 0, &ConflictError{Failed: s.failed(ctx, conds, resp.Header.Revision)}
	}
	return resp.Header.Revision, nil
}

// Delete implements Store.
func (s *Etcd) Delete(ctx context.Context, key string) (int64, error) {
	if s.closed() {
		return 0, fmt.Errorf("delete %s: %w", key, ErrClosed)
	}
	if key == "" {
		return 0, errors.New("delete: empty key")
	}
	resp, err := s.cli.Delete(ctx, key)
	if err != nil {
		return 0, s.wrap(ctx, "delete "+key, err)
	}
	if resp.Deleted == 0 {
		return 0, fmt.Errorf("delete %s: %w", key, ErrNotFound)
	}
	return resp.Header.Revision, nil
}

// Compact discards the history before rev. Watches that ask for older
// revisions then get an ErrCompacted event. The embedded back end also
// compacts on its own (EmbeddedConfig.HistoryRetention).
func (s *Etcd) Compact(ctx context.Context, rev int64) error {
	if s.closed() {
		return fmt.Errorf("compact: %w", ErrClosed)
	}
	if _, err := s.cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		return s.wrap(ctx, fmt.Sprintf("compact to %d", rev), err)
	}
	return nil
}

func compares(conds []Condition) ([]clientv3.Cmp, error) {
	cmps := make([]clientv3.Cmp, 0, len(conds))
	for _, c := range conds {
		if c.key == "" {
			return nil, errors.New("apply: condition on an empty key")
		}
		switch c.op {
		case condMissing:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(c.key), "=", 0))
		case condExists:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(c.key), ">", 0))
		case condRevision:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(c.key), "=", c.rev))
		default:
			return nil, fmt.Errorf("apply: %s", c)
		}
	}
	return cmps, nil
}

// writeOps checks and converts the writes of Apply. etcd refuses a
// transaction that writes one key twice; saying which key is kinder.
func writeOps(puts []KV, deletes []string) ([]clientv3.Op, error) {
	seen := make(map[string]bool, len(puts)+len(deletes))
	ops := make([]clientv3.Op, 0, len(puts)+len(deletes))
	for _, p := range puts {
		if p.Key == "" {
			return nil, errors.New("apply: put of an empty key")
		}
		if seen[p.Key] {
			return nil, fmt.Errorf("apply: key %s is written twice", p.Key)
		}
		seen[p.Key] = true
		ops = append(ops, clientv3.OpPut(p.Key, string(p.Value)))
	}
	for _, k := range deletes {
		if k == "" {
			return nil, errors.New("apply: delete of an empty key")
		}
		if seen[k] {
			return nil, fmt.Errorf("apply: key %s is written twice", k)
		}
		seen[k] = true
		ops = append(ops, clientv3.OpDelete(k))
	}
	return ops, nil
}

// failed reports which conditions did not hold, judged at rev, the revision
// the failed transaction read. If that cannot be read back every condition
// is reported.
func (s *Etcd) failed(ctx context.Context, conds []Condition, rev int64) []Condition {
	var out []Condition
	for _, c := range conds {
		resp, err := s.cli.Get(ctx, c.key, clientv3.WithRev(rev), clientv3.WithKeysOnly())
		if err != nil {
			return conds
		}
		var exists bool
		var mod int64
		if len(resp.Kvs) > 0 {
			exists, mod = true, resp.Kvs[0].ModRevision
		}
		switch {
		case c.op == condMissing && exists,
			c.op == condExists && !exists,
			c.op == condRevision && mod != c.rev:
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return conds
	}
	return out
}
