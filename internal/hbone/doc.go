// Package hbone carries TCP connections as HTTP/2 CONNECT streams over one
// connection, the framing Istio ambient's HBONE uses between ztunnels:
//
//	HEADERS  :method CONNECT, :authority <ip>:<port>     (client)
//	HEADERS  :status 200                                 (server; any other status refuses)
//	DATA ... both ways; END_STREAM is the half-close of a direction; RST_STREAM aborts
//
// It is a small HTTP/2 endpoint written for that one job on top of
// golang.org/x/net/http2's Framer and hpack (which parse and validate every
// frame and header block), not a general HTTP/2 implementation. A tunnel's
// cost is what a proxy's data path is judged on, and a general
// implementation spends most of it on hand-offs: x/net/http2's server moves
// every DATA frame between its reader, a handler goroutine and a writer
// goroutine through pipes and channels, and its transport does the same on
// the way in. Here:
//
//   - A stream's writer writes its DATA frame itself, one frame per TLS
//     record and system call, under the connection's write lock.
//   - The connection's reader delivers a DATA frame's payload straight to the
//     socket the stream is spliced to (Stream.Splice) with one non-blocking
//     raw write (package sockio), and queues it for the splicing goroutine
//     only when that socket is full. Flow control bounds the queue.
//   - Windows are large (1 MiB per stream, 4 MiB per connection) and are
//     returned only when half is used, so WINDOW_UPDATE frames are rare.
//   - The reader never waits for the write lock or the socket: it queues
//     its frames (window updates, acknowledgements, resets) for whoever
//     holds the lock next, or for a small goroutine, so two peers blocked
//     on full sockets cannot deadlock each other.
//
// Limits bound what a peer can make this side do. At most 10,000 control
// frames wait for the socket (x/net/http2's limit): a peer that causes more
// without reading them is sent GOAWAY ENHANCE_YOUR_CALM and disconnected.
// Handlers count against MaxConcurrentStreams until they return, even
// after the client reset their stream, and a client that keeps resetting
// streams before their answer is disconnected the same way (rapid reset,
// CVE-2023-44487).
//
// Conformance is checked against net/http's own HTTP/2 client and server
// in both directions (interop_test.go).
package hbone
