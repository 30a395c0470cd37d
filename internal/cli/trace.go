package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rampartsec/rampart/internal/identity"
	"github.com/rampartsec/rampart/internal/policy"
)

type traceOpts struct {
	files                []string
	from, to             string
	port, protocol       string
	httpMethod, httpPath string
	httpHeaders          []string
	output               string

	// Mesh options (trace_mesh.go). oldHeaders collects the --http-header
	// spelling, kept as a hidden alias of --header.
	oldHeaders   []string
	jwt, jwtFile string
	fromSA, toSA string
	plaintext    bool
	trustDomain  string
	pathNorm     string
}

func newPolicyTraceCmd(s Streams) *cobra.Command {
	var o traceOpts
	cmd := &cobra.Command{
		Use:   "trace -f PATHS --from NS/POD|IP --to NS/POD|IP --port N|NAME",
		Short: "Explain whether a flow is allowed and which policy decides",
		Long: `Trace a flow through the resolved policy and print the verdict with, for the
egress side of the source and the ingress side of the destination, what decided:
the policy and rule, "not selected by any policy: allowed" or "selected by P, no
rule allows: denied". --from and --to take NAMESPACE/NAME (or KIND/NAMESPACE/NAME),
an IP address, or "host" or "world".

When the input holds Istio security policies (AuthorizationPolicy,
PeerAuthentication, RequestAuthentication) or the destination's namespace is
labelled rampart.io/mesh=enabled, trace also follows the flow through the mesh
and prints each layer in the order the node enforces them, stopping at the
first deny: L3/L4, PeerAuthentication, RequestAuthentication,
AuthorizationPolicy, Cilium rules.http. The source is in the mesh (principal
<trust domain>/ns/<ns>/sa/<sa>) unless --plaintext. Give --method and --path
(and --header, --jwt) to trace an HTTP request; without them trace follows a
connection. Keys behind a jwksUri are never fetched: trace is offline.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runTrace(cmd, s, o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVarP(&o.files, "filename", "f", nil, "manifest files or directories, or - for stdin")
	f.StringVar(&o.from, "from", "", "source: NAMESPACE/NAME, IP, host or world")
	f.StringVar(&o.to, "to", "", "destination: NAMESPACE/NAME, IP, host or world")
	f.StringVar(&o.port, "port", "", "destination port number or name (ICMP: the type; default echo request)")
	f.StringVar(&o.protocol, "protocol", "TCP", "TCP, UDP, SCTP, ICMP or ICMPv6")
	f.StringVar(&o.httpMethod, "method", "", "HTTP method, to evaluate L7 rules and mesh policy (default GET when tracing a request)")
	f.StringVar(&o.httpPath, "path", "", "HTTP path with optional ?query (default /)")
	f.StringArrayVar(&o.httpHeaders, "header", nil, "HTTP header \"Name: value\" (repeatable)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	// The first spellings of the HTTP flags stay as hidden aliases.
	f.StringVar(&o.httpMethod, "http-method", "", "alias of --method")
	f.StringVar(&o.httpPath, "http-path", "", "alias of --path")
	f.StringArrayVar(&o.oldHeaders, "http-header", nil, "alias of --header")
	for _, n := range []string{"http-method", "http-path", "http-header"} {
		_ = f.MarkHidden(n)
	}
	addMeshTraceFlags(cmd, &o)
	return cmd
}

func runTrace(cmd *cobra.Command, s Streams, o traceOpts) error {
	if o.from == "" || o.to == "" {
		return UsageError("--from and --to are required")
	}
	if o.output != "table" && o.output != "json" {
		return UsageError("unknown output format %q (want table or json)", o.output)
	}
	proto, err := policy.ParseProtocol(o.protocol)
	if err != nil {
		return UsageError("%v", err)
	}
	if o.port == "" && !proto.IsICMP() {
		return UsageError("--port is required for %s", proto)
	}
	o.httpHeaders = append(o.oldHeaders, o.httpHeaders...)
	req, err := parseHTTPFlags(o)
	if err != nil {
		return err
	}
	mo, err := parseMeshFlags(cmd, o)
	if err != nil {
		return err
	}
	repo, objs, err := loadRepository(cmd.Context(), o.files, s.In, s.Err)
	if err != nil {
		return err
	}
	src, dst, err := resolveSides(repo, o)
	if err != nil {
		return err
	}
	if mo.overridesServiceAccount() {
		// The service account is part of a workload's identity, so the
		// repository is rebuilt with the workloads running as the flags say.
		if repo, err = mo.applyServiceAccounts(cmd.Context(), objs, src, dst); err != nil {
			return err
		}
		if src, dst, err = resolveSides(repo, o); err != nil {
			return err
		}
	}
	policy.PickAddrs(&src, &dst)
	port, err := resolvePort(o.port, proto, dst)
	if err != nil {
		return UsageError("--port: %v", err)
	}
	flow := policy.Flow{Src: src, Dst: dst, Proto: proto, Port: port}
	if hasMesh(objs, repo, dst) {
		return runMeshTrace(s, o, mo, objs, repo, flow, req)
	}
	if err := mo.needsMesh(); err != nil {
		return err
	}
	if req != nil {
		flow.HTTP = &req.HTTPRequest
	}
	v := repo.Decide(flow)
	if o.output == "json" {
		return writeTraceJSON(s.Out, traceJSONOf(flow, v))
	}
	writeTraceTable(s.Out, flow, v)
	return nil
}

// traceRequest is the HTTP request the flags describe. Path is as given;
// the mesh trace normalizes it as the node proxy does.
type traceRequest struct {
	policy.HTTPRequest
	// Header is HTTPRequest.Headers as an http.Header.
	Header http.Header
}

// parseHTTPFlags returns the request of --method, --path and --header, or
// nil when none is given. Host goes to the request's host, as net/http
// and Envoy keep it.
func parseHTTPFlags(o traceOpts) (*traceRequest, error) {
	if o.httpMethod == "" && o.httpPath == "" && len(o.httpHeaders) == 0 && o.jwt == "" && o.jwtFile == "" {
		return nil, nil
	}
	req := &traceRequest{Header: http.Header{}}
	req.Method, req.Path, req.Headers = o.httpMethod, o.httpPath, req.Header
	if req.Method == "" {
		req.Method = "GET"
	}
	if req.Path == "" {
		req.Path = "/"
	}
	for _, h := range o.httpHeaders {
		name, val, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, UsageError("--header %q: want \"Name: value\"", h)
		}
		val = strings.TrimSpace(val)
		if strings.EqualFold(name, "Host") {
			req.Host = val
			continue
		}
		req.Header.Add(name, val)
	}
	return req, nil
}

// resolveSides resolves --from and --to.
func resolveSides(repo *policy.Repository, o traceOpts) (src, dst policy.Side, err error) {
	if src, err = resolveSide(repo, o.from); err != nil {
		return src, dst, UsageError("--from: %v", err)
	}
	if dst, err = resolveSide(repo, o.to); err != nil {
		return src, dst, UsageError("--to: %v", err)
	}
	return src, dst, nil
}

// resolveSide turns a --from/--to value into a flow side.
func resolveSide(repo *policy.Repository, ref string) (policy.Side, error) {
	switch ref {
	case "host", "world":
		id, _ := identity.ReservedByName(ref)
		return policy.Side{Identity: id}, nil
	}
	if a, err := netip.ParseAddr(ref); err == nil {
		if e := repo.EndpointByAddr(a.String()); e != nil {
			return policy.Side{Endpoint: e, Identity: e.Identity, Addr: a}, nil
		}
		return policy.Side{Identity: identity.Reserved(identity.World), Addr: a}, nil
	}
	e, err := repo.Lookup(ref)
	if err != nil {
		return policy.Side{}, err
	}
	return policy.Side{Endpoint: e, Identity: e.Identity}, nil
}

func resolvePort(p string, proto policy.Protocol, dst policy.Side) (uint16, error) {
	if p == "" {
		if proto == policy.ICMPv6 {
			return 128, nil
		}
		return 8, nil
	}
	if n, err := strconv.ParseUint(p, 10, 16); err == nil {
		return uint16(n), nil
	}
	if dst.Endpoint == nil {
		return 0, fmt.Errorf("named port %q needs a workload destination", p)
	}
	np, ok := dst.Endpoint.NamedPorts[p]
	if !ok {
		return 0, fmt.Errorf("%s declares no port named %q", dst.Endpoint.Ref(), p)
	}
	if np.Proto != proto {
		return 0, fmt.Errorf("port %q of %s is %s, not %s", p, dst.Endpoint.Ref(), np.Proto, proto)
	}
	return np.Port, nil
}

func verdictWord(allowed bool) string {
	if allowed {
		return "allowed"
	}
	return "denied"
}

func describeSide(s policy.Side) string {
	var parts []string
	if s.Endpoint != nil {
		parts = append(parts, s.Endpoint.Kind)
	}
	if s.Identity != nil {
		id := fmt.Sprintf("identity %d", s.Identity.ID)
		if n := identity.ReservedName(s.Identity.ID); n != "" {
			id += " " + n
		}
		parts = append(parts, id)
	}
	if s.Addr.IsValid() && s.Endpoint != nil {
		parts = append(parts, s.Addr.String())
	}
	return fmt.Sprintf("%s (%s)", s, strings.Join(parts, ", "))
}

func writeTraceTable(w io.Writer, f policy.Flow, v policy.Verdict) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "FROM\t%s\n", describeSide(f.Src))
	fmt.Fprintf(tw, "TO\t%s\n", describeSide(f.Dst))
	fmt.Fprintf(tw, "PORT\t%s\n", portString(f.Proto, f.Port))
	if f.HTTP != nil {
		fmt.Fprintf(tw, "HTTP\t%s %s\n", f.HTTP.Method, f.HTTP.Path)
	}
	fmt.Fprintf(tw, "VERDICT\t%s\n", strings.ToUpper(verdictWord(v.Allowed)))
	tw.Flush()
	fmt.Fprintln(w)
	writeTraceSides(w, f, v)
}

// writeTraceSides prints what decided the egress and ingress sides.
func writeTraceSides(w io.Writer, f policy.Flow, v policy.Verdict) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, d := range []struct {
		name string
		side policy.Side
		dec  policy.Decision
	}{{"EGRESS", f.Src, v.Egress}, {"INGRESS", f.Dst, v.Ingress}} {
		fmt.Fprintf(tw, "%s of %s\t%s\t%s\n", d.name, d.side, verdictWord(d.dec.Allowed), d.dec.Explain())
		if r := d.dec.Rule; r != nil && r.Origin.File != "" {
			fmt.Fprintf(tw, "\t\tat %s:%d\n", r.Origin.File, r.Origin.Line)
		}
	}
	tw.Flush()
}

func portString(proto policy.Protocol, port uint16) string {
	if proto.IsICMP() {
		return fmt.Sprintf("%s type %d", proto, port)
	}
	return fmt.Sprintf("%d/%s", port, proto)
}

// traceJSON is the -o json output. The mesh fields are set only when the
// flow goes through the mesh; docs/policy-semantics.md documents them.
type traceJSON struct {
	Verdict  string       `json:"verdict"`
	From     sideJSON     `json:"from"`
	To       sideJSON     `json:"to"`
	Port     uint16       `json:"port"`
	Protocol string       `json:"protocol"`
	Egress   decisionJSON `json:"egress"`
	Ingress  decisionJSON `json:"ingress"`

	Principal string       `json:"principal,omitempty"`
	Layers    []traceLayer `json:"layers,omitempty"`
	DecidedBy string       `json:"decidedBy,omitempty"`
	Answer    string       `json:"answer,omitempty"`
	Caveat    string       `json:"caveat,omitempty"`
	Notes     []string     `json:"notes,omitempty"`
}

type sideJSON struct {
	Name     string `json:"name"`
	Kind     string `json:"kind,omitempty"`
	Identity uint32 `json:"identity"`
	IP       string `json:"ip,omitempty"`
}

type decisionJSON struct {
	Verdict     string   `json:"verdict"`
	Reason      string   `json:"reason"`
	Explanation string   `json:"explanation"`
	Policy      string   `json:"policy,omitempty"`
	Rule        string   `json:"rule,omitempty"`
	File        string   `json:"file,omitempty"`
	Line        int      `json:"line,omitempty"`
	SelectedBy  []string `json:"selectedBy,omitempty"`
}

var reasonNames = map[policy.Reason]string{
	policy.NotSelected: "not-selected", policy.NotIsolated: "not-isolated", policy.AllowedByRule: "allowed-by-rule",
	policy.DeniedByRule: "denied-by-rule", policy.DefaultDeny: "default-deny", policy.L7Denied: "l7-denied",
	policy.Self: "self", policy.NotEndpoint: "not-endpoint",
}

func toSideJSON(s policy.Side) sideJSON {
	out := sideJSON{Name: s.String()}
	if s.Endpoint != nil {
		out.Kind = s.Endpoint.Kind
	}
	if s.Identity != nil {
		out.Identity = uint32(s.Identity.ID)
	}
	if s.Addr.IsValid() {
		out.IP = s.Addr.String()
	}
	return out
}

func toDecisionJSON(d policy.Decision) decisionJSON {
	out := decisionJSON{Verdict: verdictWord(d.Allowed), Reason: reasonNames[d.Reason], Explanation: d.Explain()}
	if d.Rule != nil {
		out.Policy, out.Rule, out.File, out.Line = d.Rule.Origin.Policy(), d.Rule.Origin.Path, d.Rule.Origin.File, d.Rule.Origin.Line
	}
	seen := map[string]bool{}
	for _, s := range d.Selecting {
		if p := s.Origin.Policy(); !seen[p] {
			seen[p] = true
			out.SelectedBy = append(out.SelectedBy, p)
		}
	}
	return out
}

func traceJSONOf(f policy.Flow, v policy.Verdict) traceJSON {
	return traceJSON{
		Verdict: verdictWord(v.Allowed), From: toSideJSON(f.Src), To: toSideJSON(f.Dst),
		Port: f.Port, Protocol: f.Proto.String(),
		Egress: toDecisionJSON(v.Egress), Ingress: toDecisionJSON(v.Ingress),
	}
}

func writeTraceJSON(w io.Writer, t traceJSON) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}
