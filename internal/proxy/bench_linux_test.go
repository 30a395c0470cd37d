package proxy_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// The benchmarks run the loopback mesh (no namespaces, no privilege):
// requests and bytes go client -> Proxy.Dial -> TLS 1.3 + HTTP/2 CONNECT
// -> inbound HBONE listener -> application, all on 127.0.0.0/8. "direct"
// is the same without the proxy, for the ratio.

func BenchmarkHTTPRequest(b *testing.B) {
	for _, mode := range []string{"direct", "tunnel", "tunnel-l7"} {
		b.Run(mode, func(b *testing.B) {
			lb := mustLoopback(b)
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			if mode != "direct" {
				c = lb.httpClient()
				c.Transport.(*http.Transport).MaxIdleConnsPerHost = 64
			}
			if mode == "tunnel-l7" {
				lb.authz.set(func(a *testAuthz) { a.l7[lb.httpAddr.Port()] = true })
			}
			url := "http://" + lb.httpAddr.String() + "/bench"
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					resp, err := c.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
			b.StopTimer()
			c.CloseIdleConnections()
		})
	}
}

// BenchmarkThroughput sends 1 MiB chunks one way through an echo and
// reads them back, reporting bytes per second of payload (each byte
// crosses the tunnel twice).
func BenchmarkThroughput(b *testing.B) {
	for _, mode := range []string{"direct", "tunnel"} {
		b.Run(mode, func(b *testing.B) {
			lb := mustLoopback(b)
			var (
				c   net.Conn
				err error
			)
			if mode == "direct" {
				c, err = net.Dial("tcp", lb.echoAddr.String())
			} else {
				c, err = lb.p.Dial(context.Background(), "shop", "client", lb.echoAddr)
			}
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			chunk := make([]byte, 1<<20)
			b.SetBytes(int64(len(chunk)))
			errc := make(chan error, 1)
			go func() {
				buf := make([]byte, 64<<10)
				total := 0
				for total < b.N*len(chunk) {
					n, err := c.Read(buf)
					total += n
					if err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			b.ResetTimer()
			for range b.N {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			if err := <-errc; err != nil {
				b.Fatal("read back after " + strconv.Itoa(b.N) + " chunks: " + err.Error())
			}
		})
	}
}
