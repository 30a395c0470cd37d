package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rampartsec/rampart/bench/internal/host"
)

// The load generator runs in the benchmark's own process, apart from the
// proxies and the application, whose CPU is measured. It is a Go HTTP/1.1
// client on a fixed number of keep-alive connections.

// target is where a configuration's requests go and what they must get.
type target struct {
	url    string
	header http.Header
	// body is the expected response body length.
	body int
}

// newClient returns a client with at most conns keep-alive connections.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxConnsPerHost:     conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     time.Minute,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
		},
	}
}

// phase is the outcome of one load phase.
type phase struct {
	// ok and errs count requests answered as expected and the others.
	ok, errs int
	firstErr error
	// elapsed runs from the phase's start to the last response.
	elapsed time.Duration
	// lat holds the latency of every successful request, sorted.
	lat []time.Duration
}

// rate is the rate of successful requests.
func (p phase) rate() float64 {
	if p.elapsed <= 0 {
		return 0
	}
	return float64(p.ok) / p.elapsed.Seconds()
}

// do sends one request and reads the whole response.
func do(ctx context.Context, c *http.Client, t target) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.url, nil)
	if err != nil {
		return err
	}
	req.Header = t.header
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	switch {
	case err != nil:
		return fmt.Errorf("read body: %w", err)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("status %d", resp.StatusCode)
	case n != int64(t.body):
		return fmt.Errorf("body of %d bytes, want %d", n, t.body)
	}
	return nil
}

// worker collects one goroutine's results.
type worker struct {
	ok, errs int
	firstErr error
	lat      []time.Duration
	last     time.Time
}

func (w *worker) done(err error, lat time.Duration) {
	w.last = time.Now()
	if err != nil {
		w.errs++
		if w.firstErr == nil {
			w.firstErr = err
		}
		return
	}
	w.ok++
	w.lat = append(w.lat, lat)
}

func merge(start time.Time, ws []*worker) phase {
	var p phase
	n := 0
	for _, w := range ws {
		n += len(w.lat)
	}
	p.lat = make([]time.Duration, 0, n)
	last := start
	for _, w := range ws {
		p.ok += w.ok
		p.errs += w.errs
		if p.firstErr == nil {
			p.firstErr = w.firstErr
		}
		p.lat = append(p.lat, w.lat...)
		if w.last.After(last) {
			last = w.last
		}
	}
	slices.Sort(p.lat)
	p.elapsed = last.Sub(start)
	return p
}

// openLoop sends rate requests per second for d on conns connections,
// each request at its scheduled time whatever happened to the ones before
// (open loop), so that a slow response delays the requests queued behind
// it and that delay is measured.
//
// A request's latency runs from its scheduled time when its worker was
// still busy with an earlier request then (the request waited: without
// this the stall would go unmeasured, wrk2's coordinated omission), and
// from its actual send time when the worker was idle: Go's timers wake up
// to a millisecond late, which is the generator's delay, not the
// system's.
func openLoop(ctx context.Context, c *http.Client, t target, rate float64, conns int, d time.Duration) phase {
	interval := time.Duration(float64(time.Second) / rate)
	n := int64(d / interval)
	start := time.Now()
	var next atomic.Int64
	ws := make([]*worker, conns)
	var wg sync.WaitGroup
	for i := range ws {
		w := &worker{lat: make([]time.Duration, 0, n/int64(conns)+1)}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				due := start.Add(time.Duration(i) * interval)
				from := due
				if wait := time.Until(due); wait > 0 {
					if host.Sleep(ctx, wait) != nil {
						return
					}
					from = time.Now()
				}
				err := do(ctx, c, t)
				w.done(err, time.Since(from))
			}
		}()
	}
	wg.Wait()
	return merge(start, ws)
}

// closedLoop sends requests back to back on conns connections for d: the
// maximum rate the configuration sustains with that concurrency.
func closedLoop(ctx context.Context, c *http.Client, t target, conns int, d time.Duration) phase {
	start := time.Now()
	end := start.Add(d)
	ws := make([]*worker, conns)
	var wg sync.WaitGroup
	for i := range ws {
		w := &worker{lat: make([]time.Duration, 0, 4096)}
		ws[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && len(w.lat) < maxRequests/conns {
				t0 := time.Now()
				if !t0.Before(end) {
					return
				}
				err := do(ctx, c, t)
				w.done(err, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	return merge(start, ws)
}

// runLoad runs one phase of load l.
func runLoad(ctx context.Context, c *http.Client, t target, l load, o *options, d time.Duration) (phase, error) {
	var p phase
	if l == loadFixed {
		p = openLoop(ctx, c, t, o.rate, o.conns, d)
	} else {
		p = closedLoop(ctx, c, t, o.conns, d)
	}
	if err := ctx.Err(); err != nil {
		return p, err
	}
	if p.ok == 0 {
		return p, fmt.Errorf("no request succeeded: %w", orUnknown(p.firstErr))
	}
	// A healthy configuration fails no request; allow one in a thousand
	// for a connection closed at the wrong moment.
	if p.errs > 0 && float64(p.errs) > 0.001*float64(p.ok+p.errs) {
		return p, fmt.Errorf("%d of %d requests failed, first: %w", p.errs, p.ok+p.errs, p.firstErr)
	}
	return p, nil
}

func orUnknown(err error) error {
	if err == nil {
		return errors.New("unknown error")
	}
	return err
}

// percentile returns the p-quantile (0 < p <= 1) of sorted samples by the
// nearest-rank method: the smallest sample with at least p of all samples
// at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	// The epsilon keeps 0.9*100 from rounding up to 91.
	i := int(math.Ceil(float64(len(sorted))*p-1e-9)) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
