package ca

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Mode says where an Authority's roots come from.
type Mode string

const (
	// ModeSelfSigned: roots the Authority created, kept in its directory.
	ModeSelfSigned Mode = "self-signed"
	// ModePlugin: an operator's CA in Istio's plug-in layout.
	ModePlugin Mode = "plug-in"
)

// RootPhase is a root's part in the trust bundle.
type RootPhase string

const (
	// PhaseActive: the root signs new leaves and is in the bundle.
	PhaseActive RootPhase = "active"
	// PhaseTrusted: the root is in the bundle but does not sign: the new
	// root of a prepared rotation, the old root of a switched one, or an
	// extra root of a plug-in root-cert.pem.
	PhaseTrusted RootPhase = "trusted"
	// PhaseRetired: the root is no longer in the bundle; it is listed so
	// that an operator can see what was rotated out, and when.
	PhaseRetired RootPhase = "retired"
)

// Status is what `rampart cert list` shows: where the roots come from, how
// far a rotation is, and every root.
type Status struct {
	Mode        Mode          `json:"mode"`
	PluginDir   string        `json:"pluginDir,omitempty"`
	TrustDomain string        `json:"trustDomain"`
	Phase       RotationPhase `json:"phase"`
	Roots       []RootInfo    `json:"roots"`
}

// RootInfo describes one root certificate.
type RootInfo struct {
	Subject   string    `json:"subject"`
	Serial    string    `json:"serial"` // hexadecimal
	NotBefore time.Time `json:"notBefore"`
	NotAfter  time.Time `json:"notAfter"`
	SHA256    string    `json:"sha256"` // fingerprint of the DER, as Fingerprint
	Phase     RootPhase `json:"phase"`
	// PhaseUntil is when the root is scheduled to leave its phase: the
	// switch to the new root for the active root and the pending root of a
	// prepared rotation, the retirement for the old root of a switched
	// one, the retirement itself for a retired root. Zero when nothing is
	// scheduled.
	PhaseUntil  time.Time         `json:"phaseUntil,omitzero"`
	Certificate *x509.Certificate `json:"-"`
}

func describeRoot(c *x509.Certificate, phase RootPhase, until time.Time) RootInfo {
	return RootInfo{
		Subject:     c.Subject.String(),
		Serial:      c.SerialNumber.Text(16),
		NotBefore:   c.NotBefore,
		NotAfter:    c.NotAfter,
		SHA256:      Fingerprint(c),
		Phase:       phase,
		PhaseUntil:  until,
		Certificate: c,
	}
}

// Fingerprint returns the SHA-256 of the certificate's DER as colon-separated
// upper-case hex pairs, the form `openssl x509 -fingerprint -sha256` prints.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// Inspect reads the status of the CA kept in dir without changing
// anything, so that a CLI can show it while the node that owns the
// directory runs. A plug-in CA is read from opts.PluginDir.
func Inspect(dir string, opts Options) (Status, error) {
	o, td, err := opts.resolve()
	if err != nil {
		return Status{}, err
	}
	now := o.Clock.Now()
	var be backend
	if o.PluginDir != "" {
		be, err = loadPlugin(o.PluginDir, now)
	} else {
		be, err = readSelfSigned(dir, td)
	}
	if err != nil {
		return Status{}, err
	}
	st := be.status(now)
	st.TrustDomain = td.Name()
	return st, nil
}

// LeafInfo describes a workload certificate, for `rampart cert show`.
type LeafInfo struct {
	ID          string    `json:"id,omitempty"`        // the SPIFFE ID, if there is exactly one
	Principal   string    `json:"principal,omitempty"` // Istio's form of ID
	Subject     string    `json:"subject"`
	Issuer      string    `json:"issuer"`
	Serial      string    `json:"serial"` // hexadecimal
	NotBefore   time.Time `json:"notBefore"`
	NotAfter    time.Time `json:"notAfter"`
	SHA256      string    `json:"sha256"`
	PublicKey   string    `json:"publicKey"` // "ECDSA P-256", "RSA 2048", ...
	IsCA        bool      `json:"isCA"`
	KeyUsage    []string  `json:"keyUsage"`
	ExtKeyUsage []string  `json:"extKeyUsage"`
	URIs        []string  `json:"uris,omitempty"`
	DNSNames    []string  `json:"dnsNames,omitempty"`
	// Problem says why the certificate is not a well-formed SVID, if it
	// is not; it does not verify the chain.
	Problem string `json:"problem,omitempty"`
}

// DescribeLeaf describes a workload certificate. It describes any
// certificate, and says in Problem what keeps one from being an SVID.
func DescribeLeaf(c *x509.Certificate) LeafInfo {
	li := LeafInfo{
		Subject:     c.Subject.String(),
		Issuer:      c.Issuer.String(),
		Serial:      c.SerialNumber.Text(16),
		NotBefore:   c.NotBefore,
		NotAfter:    c.NotAfter,
		SHA256:      Fingerprint(c),
		PublicKey:   describeKey(c.PublicKey),
		IsCA:        c.IsCA,
		KeyUsage:    keyUsageNames(c.KeyUsage),
		ExtKeyUsage: extKeyUsageNames(c),
		DNSNames:    c.DNSNames,
	}
	for _, u := range c.URIs {
		li.URIs = append(li.URIs, u.String())
	}
	id, err := IDFromLeaf(c)
	if err != nil {
		li.Problem = strings.TrimPrefix(err.Error(), "ca: ")
		return li
	}
	li.ID = id.String()
	li.Principal = Principal(id)
	if err := checkLeafProfile(c, 0); err != nil {
		li.Problem = err.Error()
	}
	return li
}

func describeKey(pub any) string {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return fmt.Sprintf("%T", pub)
	}
}

var keyUsages = []struct {
	bit  x509.KeyUsage
	name string
}{
	{x509.KeyUsageDigitalSignature, "digitalSignature"},
	{x509.KeyUsageContentCommitment, "contentCommitment"},
	{x509.KeyUsageKeyEncipherment, "keyEncipherment"},
	{x509.KeyUsageDataEncipherment, "dataEncipherment"},
	{x509.KeyUsageKeyAgreement, "keyAgreement"},
	{x509.KeyUsageCertSign, "keyCertSign"},
	{x509.KeyUsageCRLSign, "cRLSign"},
	{x509.KeyUsageEncipherOnly, "encipherOnly"},
	{x509.KeyUsageDecipherOnly, "decipherOnly"},
}

func keyUsageNames(ku x509.KeyUsage) []string {
	names := []string{}
	for _, u := range keyUsages {
		if ku&u.bit != 0 {
			names = append(names, u.name)
		}
	}
	return names
}

func extKeyUsageNames(c *x509.Certificate) []string {
	names := []string{}
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			names = append(names, "serverAuth")
		case x509.ExtKeyUsageClientAuth:
			names = append(names, "clientAuth")
		case x509.ExtKeyUsageAny:
			names = append(names, "any")
		default:
			names = append(names, fmt.Sprintf("%d", u))
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		names = append(names, oid.String())
	}
	return names
}
