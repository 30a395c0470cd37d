package cli

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rampartsec/rampart/internal/policy"
)

func newPolicyMatrixCmd(s Streams) *cobra.Command {
	var (
		files  []string
		ports  []string
		output string
	)
	cmd := &cobra.Command{
		Use:   "matrix -f PATHS [--ports 80/TCP,81/UDP]",
		Short: "Print the verdict for every ordered pair of workloads on each port",
		Long: `Print the connectivity truth table of the workloads in the manifests: rows are
sources, columns destinations, "." allowed and "X" denied. Without --ports, every
port a workload declares is tabulated. With -o json each result carries the
verdict and the egress and ingress sides' verdicts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return UsageError("unknown output format %q (want table or json)", output)
			}
			targets, err := parsePortList(ports)
			if err != nil {
				return UsageError("--ports: %v", err)
			}
			repo, _, err := loadRepository(cmd.Context(), files, s.In, s.Err)
			if err != nil {
				return err
			}
			if len(targets) == 0 {
				targets = declaredPorts(repo)
			}
			m := computeMatrix(repo, targets)
			if output == "json" {
				return m.writeJSON(s.Out)
			}
			m.writeTable(s.Out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&files, "filename", "f", nil, "manifest files or directories, or - for stdin")
	f.StringSliceVar(&ports, "ports", nil, "ports to tabulate, as PORT/PROTOCOL (default: every declared port)")
	f.StringVarP(&output, "output", "o", "table", "output format: table or json")
	return cmd
}

func parsePortList(list []string) ([]policy.PortProto, error) {
	var out []policy.PortProto
	for _, item := range list {
		num, protoName, ok := strings.Cut(item, "/")
		if !ok {
			protoName = "TCP"
		}
		n, err := strconv.ParseUint(num, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("invalid port %q (want PORT/PROTOCOL, e.g. 80/TCP)", item)
		}
		proto, err := policy.ParseProtocol(protoName)
		if err != nil {
			return nil, err
		}
		out = append(out, policy.PortProto{Port: uint16(n), Proto: proto})
	}
	return out, nil
}

// declaredPorts returns every port any workload declares, sorted.
func declaredPorts(repo *policy.Repository) []policy.PortProto {
	var out []policy.PortProto
	for _, e := range repo.Endpoints() {
		for _, p := range e.Ports {
			out = append(out, policy.PortProto(p))
		}
	}
	slices.SortFunc(out, func(a, b policy.PortProto) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), cmp.Compare(a.Proto, b.Proto))
	})
	return slices.Compact(out)
}

type matrix struct {
	eps     []*policy.Endpoint
	ports   []policy.PortProto
	results [][]policy.Cell // [port][src*len(eps)+dst]
}

func computeMatrix(repo *policy.Repository, ports []policy.PortProto) *matrix {
	eps := repo.Endpoints()
	return &matrix{eps: eps, ports: ports, results: repo.Matrix(eps, ports)}
}

type matrixResult struct {
	From     string `json:"from"`
	To       string `json:"to"`
	Port     uint16 `json:"port"`
	Protocol string `json:"protocol"`
	Verdict  string `json:"verdict"`
	Egress   string `json:"egress"`
	Ingress  string `json:"ingress"`
}

func (m *matrix) writeJSON(w io.Writer) error {
	out := struct {
		Results []matrixResult `json:"results"`
	}{Results: []matrixResult{}}
	n := len(m.eps)
	for pi, pp := range m.ports {
		for i, v := range m.results[pi] {
			out.Results = append(out.Results, matrixResult{
				From: m.eps[i/n].Ref(), To: m.eps[i%n].Ref(), Port: pp.Port, Protocol: pp.Proto.String(),
				Verdict: verdictWord(v.Allowed), Egress: verdictWord(v.Egress), Ingress: verdictWord(v.Ingress),
			})
		}
	}
	return json.NewEncoder(w).Encode(out)
}

func (m *matrix) writeTable(w io.Writer) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	n := len(m.eps)
	for pi, pp := range m.ports {
		if pi > 0 {
			fmt.Fprintln(bw)
		}
		fmt.Fprintln(bw, portString(pp.Proto, pp.Port))
		tw := tabwriter.NewWriter(bw, 0, 4, 2, ' ', 0)
		row := make([]string, 0, n+1)
		row = append(row, "")
		for _, e := range m.eps {
			row = append(row, e.Ref())
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
		for i, src := range m.eps {
			row = append(row[:0], src.Ref())
			for j := range m.eps {
				mark := "X"
				if m.results[pi][i*n+j].Allowed {
					mark = "."
				}
				row = append(row, mark)
			}
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
	}
}
