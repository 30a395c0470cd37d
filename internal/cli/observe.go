package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rampartsec/rampart/internal/api"
)

func newObserveCmd(s Streams) *cobra.Command {
	var (
		f      api.FlowFilter
		output string
	)
	cmd := &cobra.Command{
		Use:   "observe [--follow] [--verdict FORWARDED|DROPPED|AUDIT] [--namespace NS] [--pod NAME]",
		Short: "Print flows seen by the datapath, with identities, verdict and deciding policy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch strings.ToUpper(f.Verdict) {
			case "", "FORWARDED", "DROPPED", "AUDIT":
				f.Verdict = strings.ToUpper(f.Verdict)
			default:
				return UsageError("--verdict %q: want FORWARDED, DROPPED or AUDIT", f.Verdict)
			}
			if output != "table" && output != "json" {
				return UsageError("unknown output format %q (want table or json)", output)
			}
			enc := json.NewEncoder(s.Out)
			err := client().Flows(cmd.Context(), f, func(fl api.Flow) error {
				if output == "json" {
					return enc.Encode(fl)
				}
				_, err := io.WriteString(s.Out, formatFlow(fl)+"\n")
				return err
			})
			if err != nil {
				return nodeError(s.Err, err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.BoolVarP(&f.Follow, "follow", "f", false, "keep printing new flows")
	fl.StringVar(&f.Verdict, "verdict", "", "only flows with this verdict")
	fl.StringVarP(&f.Namespace, "namespace", "n", "", "only flows to or from this namespace")
	fl.StringVar(&f.Pod, "pod", "", "only flows to or from this workload")
	fl.IntVar(&f.Last, "last", 0, "only the last N recorded flows")
	fl.StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

// formatFlow prints a flow on one line, Hubble style:
// time, source (identity) -> destination (identity), protocol, verdict,
// reason and policy.
func formatFlow(fl api.Flow) string {
	peer := func(p api.FlowPeer) string {
		addr := p.Addr
		if p.Port != 0 {
			if strings.Contains(addr, ":") {
				addr = "[" + addr + "]"
			}
			addr = fmt.Sprintf("%s:%d", addr, p.Port)
		}
		if p.Principal != "" {
			return fmt.Sprintf("%s %s [%s]", p.Name, addr, p.Principal)
		}
		return fmt.Sprintf("%s %s (%d)", p.Name, addr, p.Identity)
	}
	proto := fl.Protocol
	if fl.ICMPType != nil {
		proto = fmt.Sprintf("%s type %d", fl.Protocol, *fl.ICMPType)
	}
	if fl.Layer == "proxy" {
		// The proxy's records: a connection through it, or one HTTP
		// request with its answer.
		proto = "TCP/" + fl.Transport
		if fl.Kind == "request" {
			proto = fmt.Sprintf("HTTP %s %s -> %d %s", fl.Method, fl.Path, fl.Status, fl.Latency.Round(time.Microsecond))
		}
	}
	line := fmt.Sprintf("%s  %s -> %s  %s  %s", fl.Time.Format("15:04:05.000"), peer(fl.Source), peer(fl.Dest), proto, fl.Verdict)
	if fl.DropReason != "" {
		line += " (" + fl.DropReason + ")"
	}
	if fl.Policy != "" {
		line += "  by " + fl.Policy
	}
	return line
}
