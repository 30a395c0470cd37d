package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
)

// The benchmark re-executes itself for the application and for each
// Rampart proxy, so that each runs, and is measured, as a process of its
// own. Parent and child speak one JSON object per line over the child's
// stdin and stdout:
//
//	child  -> parent  {"op":"sign",...}    a CSR for the child's identity
//	parent -> child   {"op":"signed",...}  the chain and bundle, or an error
//	child  -> parent  {"op":"ready"}       serving
//	parent -> child   {"op":"stats"}       asks for the child's counters
//	child  -> parent  {"op":"stats",...}   the counters
//
// The parent closing the child's stdin is the order to exit, which also
// happens when the parent dies.
const (
	opSign   = "sign"
	opSigned = "signed"
	opReady  = "ready"
	opStats  = "stats"
)

// ctlMsg is one line of the control protocol.
type ctlMsg struct {
	Op string `json:"op"`
	// Namespace, ServiceAccount and CSR ask for a certificate (sign).
	Namespace      string `json:"namespace,omitempty"`
	ServiceAccount string `json:"serviceAccount,omitempty"`
	CSR            []byte `json:"csr,omitempty"`
	// Chain and Bundle answer it in DER (signed), or Error says why not.
	Chain  [][]byte `json:"chain,omitempty"`
	Bundle [][]byte `json:"bundle,omitempty"`
	Error  string   `json:"error,omitempty"`
	// Stats are the child's counters (stats).
	Stats *childStats `json:"stats,omitempty"`
}

// childStats are the counters a child reports: requests served by the
// application; records of the proxy.
type childStats struct {
	Requests int64 `json:"requests,omitempty"`
	// Connections and HTTPRequests count the proxy's records of each kind,
	// Denied the HTTP requests refused, Errors the records with an error.
	Connections  int64 `json:"connections,omitempty"`
	HTTPRequests int64 `json:"httpRequests,omitempty"`
	Denied       int64 `json:"denied,omitempty"`
	Errors       int64 `json:"errors,omitempty"`
	// ByPolicy counts allowed HTTP requests by deciding policy.
	ByPolicy map[string]int64 `json:"byPolicy,omitempty"`
	// GOMAXPROCS is the child's runtime.GOMAXPROCS, so that the parent
	// can check that -proxy-gomaxprocs took effect.
	GOMAXPROCS int `json:"gomaxprocs,omitempty"`
}

// maxLine bounds a control line: a CSR or a chain is a few KiB.
const maxLine = 1 << 20

// ctlChild is the child's end of the control protocol. It is also the
// child's ca.Signer: CSRs go to the parent, which owns the Authority, as a
// node agent's go to the control plane.
type ctlChild struct {
	// signMu serialises signing requests, one answer awaited at a time;
	// mu serialises writes. They are separate so that the reader can
	// answer a stats request while a signing request waits.
	signMu sync.Mutex
	mu     sync.Mutex
	out    *json.Encoder
	signed chan ctlMsg
	// done is closed when stdin ends: the parent wants the child to exit.
	done  chan struct{}
	stats func() childStats
}

// newCtlChild starts reading the parent's messages from in; stats answers
// stats requests.
func newCtlChild(in io.Reader, out io.Writer, stats func() childStats) *ctlChild {
	c := &ctlChild{out: json.NewEncoder(out), signed: make(chan ctlMsg, 1), done: make(chan struct{}), stats: stats}
	go c.read(in)
	return c
}

func (c *ctlChild) read(in io.Reader) {
	defer close(c.done)
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	for sc.Scan() {
		var m ctlMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			fmt.Fprintf(os.Stderr, "control: bad line from parent: %v\n", err)
			continue
		}
		switch m.Op {
		case opSigned:
			select {
			case c.signed <- m:
			default: // nobody asked
			}
		case opStats:
			s := c.stats()
			c.send(ctlMsg{Op: opStats, Stats: &s})
		}
	}
}

func (c *ctlChild) send(m ctlMsg) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Encode(m)
}

// Sign implements ca.Signer over the control channel.
func (c *ctlChild) Sign(ctx context.Context, csr []byte, namespace, serviceAccount string) (chain, bundle [][]byte, err error) {
	c.signMu.Lock()
	defer c.signMu.Unlock()
	select {
	case <-c.signed: // the late answer to a request that timed out
	default:
	}
	if err := c.send(ctlMsg{Op: opSign, Namespace: namespace, ServiceAccount: serviceAccount, CSR: csr}); err != nil {
		return nil, nil, fmt.Errorf("send csr: %w", err)
	}
	select {
	case m := <-c.signed:
		if m.Error != "" {
			return nil, nil, errors.New(m.Error)
		}
		return m.Chain, m.Bundle, nil
	case <-c.done:
		return nil, nil, errors.New("parent went away")
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
}
