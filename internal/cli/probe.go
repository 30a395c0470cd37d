package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
)

// newProbeCmd is a small traffic tool for trying policies, in the spirit
// of Kubernetes' agnhost: an echo server on TCP and UDP ports, and a
// client that reports whether a peer answers.
func newProbeCmd(s Streams) *cobra.Command {
	cmd := &cobra.Command{Use: "probe", Short: "Echo server and client for trying policies", Args: cobra.ArbitraryArgs, RunE: GroupRunE}
	var tcp, udp, httpPorts []int
	serve := &cobra.Command{
		Use:   "serve [--tcp PORT]... [--udp PORT]... [--http PORT]...",
		Short: "Echo every line received on the given ports (IPv4 and IPv6), or answer HTTP, until stopped",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(tcp)+len(udp)+len(httpPorts) == 0 {
				return UsageError("give at least one --tcp, --udp or --http port")
			}
			for _, p := range httpPorts {
				l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
				if err != nil {
					return &ExitError{Code: 1, Err: err}
				}
				go http.Serve(l, http.HandlerFunc(helloHandler))
			}
			for _, p := range tcp {
				l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
				if err != nil {
					return &ExitError{Code: 1, Err: err}
				}
				go acceptEcho(l)
			}
			for _, p := range udp {
				pc, err := net.ListenPacket("udp", ":"+strconv.Itoa(p))
				if err != nil {
					return &ExitError{Code: 1, Err: err}
				}
				go packetEcho(pc)
			}
			fmt.Fprintf(s.Out, "serving tcp %v udp %v http %v\n", tcp, udp, httpPorts)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			<-ctx.Done()
			return nil
		},
	}
	serve.Flags().IntSliceVar(&tcp, "tcp", nil, "TCP port to serve")
	serve.Flags().IntSliceVar(&udp, "udp", nil, "UDP port to serve")
	serve.Flags().IntSliceVar(&httpPorts, "http", nil, "TCP port to answer HTTP on")
	var timeout time.Duration
	connect := &cobra.Command{
		Use:   "connect tcp|udp HOST:PORT",
		Short: "Send a line and wait for its echo; exit 0 if it came back, 1 if not",
		Args:  cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			proto := strings.ToLower(args[0])
			if proto != "tcp" && proto != "udp" {
				return UsageError("protocol %q: want tcp or udp", args[0])
			}
			if err := echoOnce(proto, args[1], timeout); err != nil {
				fmt.Fprintf(s.Out, "%s %s: no answer (%v)\n", proto, args[1], err)
				return failed
			}
			fmt.Fprintf(s.Out, "%s %s: answered\n", proto, args[1])
			return nil
		},
	}
	connect.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait")
	var headers []string
	get := &cobra.Command{
		Use:   "get URL [--header 'Name: value']...",
		Short: "Send an HTTP GET and print the status and body; exit 0 on 2xx, 1 otherwise",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodGet, args[0], nil)
			if err != nil {
				return UsageError("%v", err)
			}
			for _, h := range headers {
				name, val, ok := strings.Cut(h, ":")
				if !ok || strings.TrimSpace(name) == "" {
					return UsageError("--header %q: want 'Name: value'", h)
				}
				req.Header.Add(strings.TrimSpace(name), strings.TrimSpace(val))
			}
			resp, err := (&http.Client{Timeout: timeout}).Do(req)
			if err != nil {
				fmt.Fprintf(s.Out, "GET %s: no answer (%v)\n", args[0], err)
				return failed
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			fmt.Fprintf(s.Out, "%d %s\n", resp.StatusCode, strings.TrimRight(string(body), "\n"))
			if resp.StatusCode/100 != 2 {
				return failed
			}
			return nil
		},
	}
	get.Flags().StringArrayVar(&headers, "header", nil, "request header 'Name: value' (repeatable)")
	get.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "how long to wait")
	cmd.AddCommand(serve, connect, get)
	return cmd
}

// helloHandler answers every request with the host name and the path, so
// that a client can tell which workload answered what.
func helloHandler(w http.ResponseWriter, r *http.Request) {
	host, _ := os.Hostname()
	fmt.Fprintf(w, "hello from %s: %s %s\n", host, r.Method, r.URL.Path)
}

func acceptEcho(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			io.Copy(c, c)
		}()
	}
}

func packetEcho(pc net.PacketConn) {
	buf := make([]byte, 64<<10)
	for {
		n, addr, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		pc.WriteTo(buf[:n], addr)
	}
}

func echoOnce(proto, addr string, timeout time.Duration) error {
	c, err := net.DialTimeout(proto, addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	const msg = "rampart probe\n"
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != msg {
		return errors.New("wrong echo")
	}
	return nil
}
