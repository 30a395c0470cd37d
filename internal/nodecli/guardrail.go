package nodecli

import (
	"github.com/rampartsec/rampart/internal/cli"

	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/rampartsec/rampart/internal/guardrail"
)

// newGuardrailCmd returns `rampart guardrail`, the admission webhook that
// applies Rampart's audit at admission time.
func newGuardrailCmd(s cli.Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "guardrail",
		Short: "Admission guardrail: deny, warn about or audit insecure workloads and RBAC at admission",
		Long: `The guardrail is a validating admission webhook that runs Rampart's audit on every
CREATE and UPDATE of a workload or RBAC object. Each namespace chooses what it does
with labels, in the style of Pod Security Admission:

  guardrail.rampart.io/enforce=LEVEL   deny what violates LEVEL
  guardrail.rampart.io/warn=LEVEL      allow, with warnings
  guardrail.rampart.io/audit=LEVEL     allow, with audit annotations

LEVEL is baseline, restricted, rampart or score:N (deny, warn or annotate when the
workload's KCCSS risk score is at least N). See docs/guardrail.md.`,
		Args: cobra.ArbitraryArgs,
		RunE: cli.GroupRunE,
	}
	cmd.AddCommand(newGuardrailServeCmd(s), newGuardrailInstallCmd(s))
	return cmd
}

// guardrailServeFlags are the flags of `rampart guardrail serve`.
type guardrailServeFlags struct {
	cert, key     string
	listen        string
	kubeconfig    string
	context       string
	clusterScoped string
}

// defaultClusterScopedMode is what the guardrail does with ClusterRoles and
// ClusterRoleBindings: warn and annotate, but not deny, since many charts
// install broad ClusterRoles and a default that denied them would break
// installs the administrator never opted into guarding.
const defaultClusterScopedMode = "warn=rampart,audit=rampart"

func newGuardrailServeCmd(s cli.Streams) *cobra.Command {
	var f guardrailServeFlags
	cmd := &cobra.Command{
		Use:   "serve --cert FILE --key FILE [flags]",
		Short: "Serve the admission webhook over HTTPS",
		Long: `Serve the admission webhook over HTTPS on --listen, at path /validate (and /healthz
for probes), until interrupted. Namespace labels and NetworkPolicies are read from
the API server (--kubeconfig, or the in-cluster service account) and cached.

Cluster-scoped objects (ClusterRoles, ClusterRoleBindings) have no namespace
labels; --cluster-scoped-mode sets their policy as MODE=LEVEL pairs, or none.`,
		Example: `  rampart guardrail serve --cert certs/tls.crt --key certs/tls.key --kubeconfig ~/.kube/config
  rampart guardrail serve --cert /tls/tls.crt --key /tls/tls.key --listen :8443 --cluster-scoped-mode enforce=rampart`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGuardrailServe(cmd.Context(), s, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cert, "cert", "", "serving certificate (PEM); reloaded when the file changes")
	fl.StringVar(&f.key, "key", "", "serving key (PEM)")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:8443", "address to listen on")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig to read namespaces with (default: in-cluster service account)")
	fl.StringVar(&f.context, "context", "", "kubeconfig context for --kubeconfig")
	fl.StringVar(&f.clusterScoped, "cluster-scoped-mode", defaultClusterScopedMode, "policy of cluster-scoped RBAC objects: MODE=LEVEL pairs (enforce, warn, audit) or none")
	return cmd
}

func runGuardrailServe(ctx context.Context, s cli.Streams, f guardrailServeFlags) error {
	if f.cert == "" || f.key == "" {
		return cli.UsageError("--cert and --key are required")
	}
	policy, err := guardrail.ParseModes(f.clusterScoped)
	if err != nil {
		return cli.UsageError("--cluster-scoped-mode: %v", err)
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return cli.UsageError("--listen %q: want HOST:PORT", f.listen)
	}
	cfg, err := restConfig(f.kubeconfig, f.context, "rampart-guardrail")
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return &cli.ExitError{Code: 1, Err: fmt.Errorf("kubernetes client: %w", err)}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(s.Err, nil))
	cluster, err := guardrail.NewInformerCluster(ctx, client)
	if err != nil {
		return &cli.ExitError{Code: 1, Err: fmt.Errorf("read namespaces: %w", err)}
	}
	srv := &guardrail.Server{
		Addr: f.listen, CertFile: f.cert, KeyFile: f.key, Log: log,
		Guardrail: &guardrail.Guardrail{Cluster: cluster, ClusterScoped: policy, Log: log},
	}
	err = srv.Serve(ctx, func(addr net.Addr) {
		log.Info("serving", "url", fmt.Sprintf("https://%s%s", addr, guardrail.ValidatePath), "cluster-scoped-mode", policy.String())
	})
	if err != nil {
		return &cli.ExitError{Code: 1, Err: err}
	}
	return nil
}

// restConfig loads a kubeconfig, or the in-cluster configuration when
// kubeconfig is empty.
func restConfig(kubeconfig, kubeContext, agent string) (*rest.Config, error) {
	if kubeconfig == "" {
		if kubeContext != "" {
			return nil, cli.UsageError("--context needs --kubeconfig")
		}
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, cli.UsageError("no --kubeconfig and not running in a cluster: %v", err)
		}
		cfg.UserAgent = agent
		return cfg, nil
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, &cli.ExitError{Code: 1, Err: fmt.Errorf("load kubeconfig %s: %w", kubeconfig, err)}
	}
	cfg.UserAgent = agent
	return cfg, nil
}

// guardrailInstallFlags are the flags of `rampart guardrail install`.
type guardrailInstallFlags struct {
	selector   string
	serviceURL string
	service    string
	certDir    string
	name       string
	apply      bool
	kubeconfig string
	context    string
}

func newGuardrailInstallCmd(s cli.Streams) *cobra.Command {
	var f guardrailInstallFlags
	cmd := &cobra.Command{
		Use:   "install (--service-url URL | --service NAMESPACE/NAME) [flags]",
		Short: "Print or apply the ValidatingWebhookConfiguration, creating serving certificates",
		Long: `Print the guardrail's ValidatingWebhookConfiguration (admissionregistration.k8s.io/v1,
failurePolicy Fail, sideEffects None), or create or replace it with --apply.

Serving certificates are made in --cert-dir: a self-signed ECDSA P-256 CA (ca.crt,
ca.key) whose certificate becomes the caBundle, and a serving certificate (tls.crt,
tls.key) for the Service's DNS names or the URL's host. Existing files are reused:
the CA always, the serving certificate while it covers those names and has 30 days
left. Keys are mode 0600.

kube-system is never reviewed; --namespace-selector (a label selector such as
env=prod or 'team in (a,b)') narrows the namespaces further.`,
		Example: `  rampart guardrail install --service rampart-system/guardrail --cert-dir certs > guardrail.yaml
  rampart guardrail install --service-url https://127.0.0.1:8443/validate --cert-dir certs --apply --kubeconfig ~/.kube/config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runGuardrailInstall(cmd.Context(), s, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.selector, "namespace-selector", "", "label selector of the namespaces to review (kube-system is always excluded)")
	fl.StringVar(&f.serviceURL, "service-url", "", "https URL the API server sends reviews to (path defaults to /validate)")
	fl.StringVar(&f.service, "service", "", "NAMESPACE/NAME of the Service in front of the webhook (port 443, path /validate)")
	fl.StringVar(&f.certDir, "cert-dir", "rampart-guardrail-certs", "directory of the CA and serving certificates (created, or reused)")
	fl.StringVar(&f.name, "name", guardrail.DefaultWebhookName, "name of the configuration and its webhook")
	fl.BoolVar(&f.apply, "apply", false, "create or replace the configuration in the cluster instead of printing it")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig for --apply")
	fl.StringVar(&f.context, "context", "", "kubeconfig context for --apply")
	return cmd
}

func runGuardrailInstall(ctx context.Context, s cli.Streams, f guardrailInstallFlags) error {
	opts := guardrail.WebhookOptions{Name: f.name}
	var hosts []string
	switch {
	case (f.serviceURL == "") == (f.service == ""):
		return cli.UsageError("give exactly one of --service-url and --service")
	case f.serviceURL != "":
		u, host, err := guardrail.ParseWebhookURL(f.serviceURL)
		if err != nil {
			return cli.UsageError("--service-url: %v", err)
		}
		opts.URL, hosts = u, []string{host}
	default:
		ns, name, ok := strings.Cut(f.service, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return cli.UsageError("--service %q: want NAMESPACE/NAME", f.service)
		}
		svc := types.NamespacedName{Namespace: ns, Name: name}
		opts.Service, hosts = &svc, guardrail.ServiceHosts(svc)
	}
	if f.selector != "" {
		sel, err := metav1.ParseToLabelSelector(f.selector)
		if err != nil {
			return cli.UsageError("--namespace-selector: %v", err)
		}
		opts.NamespaceSelector = sel
	}
	switch {
	case f.apply && f.kubeconfig == "":
		return cli.UsageError("--apply needs --kubeconfig")
	case !f.apply && (f.kubeconfig != "" || f.context != ""):
		return cli.UsageError("--kubeconfig and --context only go with --apply")
	}
	if f.certDir == "" {
		return cli.UsageError("--cert-dir must not be empty")
	}
	certs, err := guardrail.EnsureCerts(f.certDir, hosts, time.Now())
	if err != nil {
		return &cli.ExitError{Code: 1, Err: err}
	}
	if len(certs.Written) > 0 {
		fmt.Fprintf(s.Err, "wrote %s\n", strings.Join(certs.Written, ", "))
	} else {
		fmt.Fprintf(s.Err, "reusing the certificates in %s\n", certs.Dir)
	}
	opts.CABundle = certs.CABundle
	cfg, err := guardrail.WebhookConfiguration(opts)
	if err != nil {
		return cli.UsageError("%v", err)
	}
	if !f.apply {
		data, err := yaml.Marshal(cfg)
		if err != nil {
			return &cli.ExitError{Code: 1, Err: err}
		}
		_, err = s.Out.Write(data)
		return err
	}
	rc, err := restConfig(f.kubeconfig, f.context, "rampart-guardrail-install")
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return &cli.ExitError{Code: 1, Err: fmt.Errorf("kubernetes client: %w", err)}
	}
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	created, err := guardrail.ApplyWebhook(ctx, client, cfg)
	if err != nil {
		return &cli.ExitError{Code: 1, Err: err}
	}
	verb := "configured"
	if created {
		verb = "created"
	}
	fmt.Fprintf(s.Out, "validatingwebhookconfiguration.admissionregistration.k8s.io/%s %s\n", cfg.Name, verb)
	fmt.Fprintf(s.Err, "serve it with: rampart guardrail serve --cert %s --key %s\n", certs.CertPath(), certs.KeyPath())
	return nil
}
