package hbone_test

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/rampartsec/rampart/internal/hbone"
)

// FuzzServe feeds arbitrary bytes after the client preface to a server
// whose handler echoes every stream. Whatever the bytes, Serve must
// return once the input ends (no hang, no panic, no handler left behind).
func FuzzServe(f *testing.F) {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	enc.WriteField(hpack.HeaderField{Name: ":method", Value: "CONNECT"})
	enc.WriteField(hpack.HeaderField{Name: ":authority", Value: "10.0.0.1:80"})
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndHeaders: true})
	fr.WriteData(1, false, []byte("hello"))
	fr.WriteWindowUpdate(0, 1000)
	fr.WritePing(false, [8]byte{1})
	fr.WriteData(1, true, nil)
	fr.WriteRSTStream(1, http2.ErrCodeCancel)
	fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	f.Add(b.Bytes())
	f.Add(b.Bytes()[:20])
	f.Add([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0})

	f.Fuzz(func(t *testing.T, in []byte) {
		cc, sc := net.Pipe()
		done := make(chan error, 1)
		go func() {
			done <- hbone.Serve(sc, hbone.Config{Handler: func(s *hbone.Stream) {
				s.Respond(200)
				io.Copy(s, s)
				s.CloseWrite()
			}})
		}()
		go io.Copy(io.Discard, cc) // whatever the server answers
		cc.SetDeadline(time.Now().Add(2 * time.Second))
		cc.Write([]byte(http2.ClientPreface))
		cc.Write(in)
		cc.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("Serve did not return after its input ended")
		}
	})
}
