package main

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rampartsec/rampart/internal/ca"
)

// fakeParent is the parent's end of a ctlChild's pipes.
type fakeParent struct {
	toChild   *io.PipeWriter
	fromChild *bufio.Scanner
}

func newPipes(t *testing.T, stats func() childStats) (*ctlChild, *fakeParent) {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	t.Cleanup(func() { inW.Close(); outR.Close() })
	c := newCtlChild(inR, outW, stats)
	return c, &fakeParent{toChild: inW, fromChild: bufio.NewScanner(outR)}
}

func (p *fakeParent) recv(t *testing.T) ctlMsg {
	t.Helper()
	if !p.fromChild.Scan() {
		t.Fatalf("no message from the child: %v", p.fromChild.Err())
	}
	var m ctlMsg
	if err := json.Unmarshal(p.fromChild.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (p *fakeParent) send(t *testing.T, m ctlMsg) {
	t.Helper()
	if err := json.NewEncoder(p.toChild).Encode(m); err != nil {
		t.Fatal(err)
	}
}

// TestControlSignAndStats runs a ca.Source in the child over the control
// protocol against a real Authority in the parent: the path every proxy of
// the benchmark gets its certificate by.
func TestControlSignAndStats(t *testing.T) {
	auth, err := ca.Open(t.TempDir(), ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, parent := newPipes(t, func() childStats { return childStats{Requests: 42} })
	go func() {
		// The parent: answer one CSR, then one stats request.
		m := parent.recv(t)
		if m.Op != opSign || m.Namespace != benchNamespace || m.ServiceAccount != clientName {
			t.Errorf("first message %+v, want a CSR for bench/client", m)
			return
		}
		chain, bundle, err := auth.Sign(context.Background(), m.CSR, m.Namespace, m.ServiceAccount)
		if err != nil {
			t.Error(err)
			return
		}
		parent.send(t, ctlMsg{Op: opSigned, Chain: chain, Bundle: bundle})
		parent.send(t, ctlMsg{Op: opStats})
		if m := parent.recv(t); m.Op != opStats || m.Stats == nil || m.Stats.Requests != 42 {
			t.Errorf("stats answer %+v", m)
		}
		parent.toChild.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	src, err := ca.NewSource(ctx, c, ca.SourceOptions{Namespace: benchNamespace, ServiceAccount: clientName})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if got := src.ID().String(); got != "spiffe://cluster.local/ns/bench/sa/client" {
		t.Errorf("source ID = %s", got)
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		t.Fatal("the child did not see its stdin end")
	}
}

func TestControlSignError(t *testing.T) {
	c, parent := newPipes(t, func() childStats { return childStats{} })
	go func() {
		parent.recv(t)
		parent.send(t, ctlMsg{Op: opSigned, Error: "bench may not ask for kube-system/admin"})
	}()
	_, _, err := c.Sign(context.Background(), []byte("csr"), "kube-system", "admin")
	if err == nil || !strings.Contains(err.Error(), "may not ask") {
		t.Errorf("Sign = %v, want the parent's refusal", err)
	}
}

// TestNginxPKI checks the certificates nginx gets: both chain to the
// Rampart root; the client's is an SVID the Rampart proxy would accept;
// the server's carries the DNS name nginx verifies and the server's
// SPIFFE ID.
func TestNginxPKI(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	auth, err := ca.Open(caDir, ca.Options{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := writeNginxPKI(auth, caDir, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(auth.Bundle()[0])
	load := func(file string) *x509.Certificate {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			t.Fatalf("%s: no PEM", file)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	server := load(p.serverCert)
	if _, err := server.Verify(x509.VerifyOptions{Roots: roots, DNSName: nginxServerName, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("server certificate: %v", err)
	}
	if len(server.URIs) != 1 || server.URIs[0].String() != "spiffe://cluster.local/ns/bench/sa/server" {
		t.Errorf("server certificate URIs = %v", server.URIs)
	}
	client := load(p.clientCert)
	bundle, err := auth.GetX509BundleForTrustDomain(auth.TrustDomain())
	if err != nil {
		t.Fatal(err)
	}
	id, err := ca.VerifyPeer([]*x509.Certificate{client}, bundle, ca.RoleClient, time.Now())
	if err != nil || id.String() != "spiffe://cluster.local/ns/bench/sa/client" {
		t.Errorf("client certificate: %v, %v", id, err)
	}
	for _, f := range []string{p.clientKey, p.serverKey} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, fi.Mode())
		}
	}
}
