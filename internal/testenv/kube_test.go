package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// TestMain stops the shared API server once all tests are done, because the
// servers run detached and would otherwise outlive the test binary.
func TestMain(m *testing.M) {
	code := m.Run()
	StopKube()
	os.Exit(code)
}

// kubeconfig holds the few kubeconfig fields a client-certificate admin
// config uses; it is parsed by hand to keep client-go out of this test.
type kubeconfig struct {
	CurrentContext string `json:"current-context"`
	Clusters       []struct {
		Name    string `json:"name"`
		Cluster struct {
			Server                   string `json:"server"`
			CertificateAuthorityData string `json:"certificate-authority-data"`
			CertificateAuthority     string `json:"certificate-authority"`
		} `json:"cluster"`
	} `json:"clusters"`
	Users []struct {
		Name string `json:"name"`
		User struct {
			ClientCertificateData string `json:"client-certificate-data"`
			ClientKeyData         string `json:"client-key-data"`
			ClientCertificate     string `json:"client-certificate"`
			ClientKey             string `json:"client-key"`
		} `json:"user"`
	} `json:"users"`
	Contexts []struct {
		Name    string `json:"name"`
		Context struct {
			Cluster string `json:"cluster"`
			User    string `json:"user"`
		} `json:"context"`
	} `json:"contexts"`
}

// pemField returns inline base64 data if present, else the named file.
func pemField(t *testing.T, data, file string) []byte {
	t.Helper()
	if data != "" {
		b, err := base64.StdEncoding.DecodeString(data)
		if err != nil {
			t.Fatalf("decoding kubeconfig data: %v", err)
		}
		return b
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("reading %s: %v", file, err)
	}
	return b
}

// adminClient builds an HTTP client and server URL from the kubeconfig's
// current context.
func adminClient(t *testing.T, path string) (*http.Client, string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var kc kubeconfig
	if err := yaml.Unmarshal(raw, &kc); err != nil {
		t.Fatalf("parsing %s: %v", path, err)
	}
	var clusterName, userName string
	for _, c := range kc.Contexts {
		if c.Name == kc.CurrentContext {
			clusterName, userName = c.Context.Cluster, c.Context.User
		}
	}
	var server string
	pool := x509.NewCertPool()
	for _, c := range kc.Clusters {
		if c.Name == clusterName {
			server = c.Cluster.Server
			if !pool.AppendCertsFromPEM(pemField(t, c.Cluster.CertificateAuthorityData, c.Cluster.CertificateAuthority)) {
				t.Fatal("no CA certificate in kubeconfig")
			}
		}
	}
	var cert tls.Certificate
	for _, u := range kc.Users {
		if u.Name == userName {
			cert, err = tls.X509KeyPair(
				pemField(t, u.User.ClientCertificateData, u.User.ClientCertificate),
				pemField(t, u.User.ClientKeyData, u.User.ClientKey))
			if err != nil {
				t.Fatalf("client key pair: %v", err)
			}
		}
	}
	if server == "" || cert.Certificate == nil {
		t.Fatalf("kubeconfig %s: current context %q lacks a cluster or client certificate", path, kc.CurrentContext)
	}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:           nil,
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}},
		},
	}, server
}

func TestKubeDefaultNamespace(t *testing.T) {
	client, server := adminClient(t, KubeConfigPath(t))
	resp, err := client.Get(server + "/api/v1/namespaces/default")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/namespaces/default: %s\n%s", resp.Status, body)
	}
	var ns struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &ns); err != nil {
		t.Fatalf("decoding namespace: %v\n%s", err, body)
	}
	if ns.Kind != "Namespace" || ns.Metadata.Name != "default" {
		t.Fatalf("got kind %q name %q, want Namespace default", ns.Kind, ns.Metadata.Name)
	}
}
