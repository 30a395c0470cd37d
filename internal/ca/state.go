package ca

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// stateFileName is the state directory's index. It is written last, by
// rename, whenever anything changes, so it is the commit point: root files
// it does not name are leftovers of an interrupted rotation and ignored.
const stateFileName = "state.json"

const stateVersion = 1

// stateFile is the JSON form of state.json.
type stateFile struct {
	Version     int          `json:"version"`
	TrustDomain string       `json:"trustDomain"`
	Roots       []rootRecord `json:"roots"`
}

// rootRecord is what state.json says about one root. Its phase at any time
// is computed from these fields and the clock (see selfSigned.view), so the
// automatic steps of a rotation need no write when they happen.
type rootRecord struct {
	// Name is the root's file stem: the certificate is <Name>.pem, the key
	// <Name>-key.pem.
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// SignFrom is when the root starts signing. A root whose SignFrom is
	// in the future is trusted but does not sign yet (rotation phase a).
	SignFrom time.Time `json:"signFrom"`
	// LeavesUntil is a time no earlier than the NotAfter of every leaf the
	// root signed. It is raised, in steps of a little more than needed so
	// that not every signature costs a write, before each leaf is issued.
	LeavesUntil time.Time `json:"leavesUntil,omitzero"`
	// RetireAt, when set, retires the root before LeavesUntil: an operator
	// finished the rotation early.
	RetireAt time.Time `json:"retireAt,omitzero"`
	// Superseded is set once a newer root signs; the key file is deleted
	// then, since this root will never sign again.
	Superseded bool `json:"superseded,omitempty"`
	// Retired is set once the root has left the bundle for good.
	Retired bool `json:"retired,omitempty"`
}

var rootName = regexp.MustCompile(`^root-[1-9][0-9]{0,8}$`)

func (r rootRecord) certFile() string { return r.Name + ".pem" }
func (r rootRecord) keyFile() string  { return r.Name + "-key.pem" }

func (r rootRecord) generation() int {
	n, _ := strconv.Atoi(r.Name[len("root-"):])
	return n
}

// stateError reports a problem with a file of the state directory. It
// matches ErrState with errors.Is.
type stateError struct {
	file string
	err  error
}

func (e *stateError) Error() string        { return "ca: state " + e.file + ": " + e.err.Error() }
func (e *stateError) Unwrap() error        { return e.err }
func (e *stateError) Is(target error) bool { return target == ErrState }

// selfSigned is the backend of a CA whose roots it creates itself and keeps
// in the state directory.
type selfSigned struct {
	dir     string
	td      spiffeid.TrustDomain
	rootTTL time.Duration
	slack   time.Duration // how far LeavesUntil is raised past a new leaf
	roots   []*rootEntry  // oldest first, as in state.json
}

type rootEntry struct {
	rec  rootRecord
	cert *x509.Certificate
	key  crypto.Signer // nil once superseded
}

// leafBoundSlack returns how far past a new leaf's NotAfter LeavesUntil is
// raised: a quarter of the default lifetime, at most an hour. A root is
// then retired at most that much later than needed, and the state file is
// written about once per slack while the CA is busy rather than per leaf.
func leafBoundSlack(ttl time.Duration) time.Duration {
	return min(time.Hour, ttl/4)
}

// openSelfSigned loads the state of dir, or creates the first root when
// there is none, and applies the steps of a rotation that are due.
func openSelfSigned(dir string, td spiffeid.TrustDomain, o Options, now time.Time) (*selfSigned, error) {
	s := &selfSigned{dir: dir, td: td, rootTTL: o.RootTTL, slack: leafBoundSlack(o.WorkloadTTL)}
	if err := removeTemps(dir); err != nil {
		return nil, fmt.Errorf("ca: clean state directory: %w", err)
	}
	data, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if errors.Is(err, fs.ErrNotExist) {
		e, err := s.createRoot(1, now)
		if err != nil {
			return nil, err
		}
		if err := s.save([]rootRecord{e.rec}); err != nil {
			return nil, err
		}
		s.roots = []*rootEntry{e}
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ca: read state: %w", err)
	}
	if err := s.load(data); err != nil {
		return nil, err
	}
	if err := s.maintain(now); err != nil {
		return nil, err
	}
	// Keys of superseded roots whose deletion failed earlier go now.
	for _, e := range s.roots {
		if e.rec.Superseded || e.rec.Retired {
			if err := os.Remove(filepath.Join(dir, e.rec.keyFile())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("ca: remove key of superseded root: %w", err)
			}
		}
	}
	return s, nil
}

// readSelfSigned loads the state of dir without changing anything, for
// inspection by another process than the one that owns the directory.
func readSelfSigned(dir string, td spiffeid.TrustDomain) (*selfSigned, error) {
	s := &selfSigned{dir: dir, td: td}
	data, err := os.ReadFile(filepath.Join(dir, stateFileName))
	if err != nil {
		return nil, fmt.Errorf("ca: read state: %w", err)
	}
	if err := s.load(data); err != nil {
		return nil, err
	}
	return s, nil
}

// createRoot makes a new root and writes its files; the caller records it
// in state.json, which is what makes it part of the CA.
func (s *selfSigned) createRoot(generation int, now time.Time) (*rootEntry, error) {
	cert, key, err := newRoot(s.td, generation, now, s.rootTTL)
	if err != nil {
		return nil, err
	}
	rec := rootRecord{Name: "root-" + strconv.Itoa(generation), Created: now, SignFrom: now}
	keyPEM, err := encodeKeyPEM(key)
	if err != nil {
		return nil, fmt.Errorf("ca: encode root key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, rec.keyFile()), keyPEM, keyMode); err != nil {
		return nil, fmt.Errorf("ca: write root key: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, rec.certFile()), encodeCertPEM(cert.Raw), certMode); err != nil {
		return nil, fmt.Errorf("ca: write root certificate: %w", err)
	}
	return &rootEntry{rec: rec, cert: cert, key: key}, nil
}

// load parses and checks state.json and the files it names.
func (s *selfSigned) load(data []byte) error {
	file := filepath.Join(s.dir, stateFileName)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var st stateFile
	if err := dec.Decode(&st); err != nil {
		return &stateError{file, err}
	}
	switch {
	case st.Version != stateVersion:
		return &stateError{file, fmt.Errorf("version %d, want %d", st.Version, stateVersion)}
	case st.TrustDomain != s.td.Name():
		return &stateError{file, fmt.Errorf("trust domain %q, but the options ask for %q: a state directory serves one trust domain", st.TrustDomain, s.td.Name())}
	case len(st.Roots) == 0:
		return &stateError{file, errors.New("no roots")}
	}
	signers := 0
	for i, rec := range st.Roots {
		if !rootName.MatchString(rec.Name) {
			return &stateError{file, fmt.Errorf("root %d: name %q is not root-<n>", i+1, rec.Name)}
		}
		if i > 0 && (rec.generation() <= st.Roots[i-1].generation() || rec.SignFrom.Before(st.Roots[i-1].SignFrom)) {
			return &stateError{file, fmt.Errorf("root %s: out of order after %s", rec.Name, st.Roots[i-1].Name)}
		}
		e := &rootEntry{rec: rec}
		certFile := filepath.Join(s.dir, rec.certFile())
		certPEM, err := os.ReadFile(certFile)
		if err != nil {
			return &stateError{file, fmt.Errorf("root %s: %w", rec.Name, err)}
		}
		certs, err := ParseCertificatesPEM(certPEM)
		if err == nil && len(certs) != 1 {
			err = fmt.Errorf("%d certificates, want 1", len(certs))
		}
		if err == nil {
			err = checkRoot(certs[0])
		}
		if err != nil {
			return &stateError{certFile, err}
		}
		e.cert = certs[0]
		if !rec.Superseded && !rec.Retired {
			keyFile := filepath.Join(s.dir, rec.keyFile())
			keyPEM, err := os.ReadFile(keyFile)
			if err != nil {
				return &stateError{file, fmt.Errorf("root %s: %w", rec.Name, err)}
			}
			key, err := parseKeyPEM(keyPEM)
			if err != nil {
				return &stateError{keyFile, err}
			}
			if !keyMatches(key, e.cert) {
				return &stateError{keyFile, fmt.Errorf("key does not match the certificate in %s", rec.certFile())}
			}
			e.key = key
			signers++
		}
		s.roots = append(s.roots, e)
	}
	if signers == 0 {
		return &stateError{file, errors.New("no root that can sign: every root is superseded or retired")}
	}
	return nil
}

// checkRoot checks that cert can be a self-signed root.
func checkRoot(cert *x509.Certificate) error {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return errors.New("not a CA certificate (basicConstraints CA:true missing)")
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		return fmt.Errorf("not self-signed: %w", err)
	}
	return nil
}

// keyMatches reports whether key is the private half of cert's public key.
func keyMatches(key crypto.Signer, cert *x509.Certificate) bool {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(cert.PublicKey)
}

func (s *selfSigned) records() []rootRecord {
	recs := make([]rootRecord, len(s.roots))
	for i, e := range s.roots {
		recs[i] = e.rec
	}
	return recs
}

// save writes recs as state.json. Callers change the in-memory records only
// after it succeeded, so memory never claims what the disk does not.
func (s *selfSigned) save(recs []rootRecord) error {
	data, err := json.MarshalIndent(stateFile{Version: stateVersion, TrustDomain: s.td.Name(), Roots: recs}, "", "  ")
	if err != nil {
		return fmt.Errorf("ca: encode state: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(s.dir, stateFileName), append(data, '\n'), stateMode); err != nil {
		return fmt.Errorf("ca: write state: %w", err)
	}
	return nil
}

// apply makes recs, just saved, the in-memory state, and deletes the keys
// of roots that became superseded. A deletion that fails is retried by the
// next Open.
func (s *selfSigned) apply(recs []rootRecord) {
	for i, e := range s.roots {
		e.rec = recs[i]
		if (e.rec.Superseded || e.rec.Retired) && e.key != nil {
			e.key = nil
			os.Remove(filepath.Join(s.dir, e.rec.keyFile()))
		}
	}
}

// commit saves recs, then makes them the in-memory state: the one way the
// records change after Open.
func (s *selfSigned) commit(recs []rootRecord) error {
	if err := s.save(recs); err != nil {
		return err
	}
	s.apply(recs)
	return nil
}

// rootView is the phase of every root at one instant.
type rootView struct {
	signer int         // index of the root that signs
	phase  []RootPhase // per root
	until  []time.Time // when each root leaves its phase, if scheduled
}

// view computes the phase of every root at now from the records alone.
//
// The signer is the newest root that has started signing (SignFrom <= now)
// and is not superseded; a newer root is pending: trusted, not signing yet.
// An older root stays trusted until every leaf it signed has expired
// (LeavesUntil) or an operator retired it (RetireAt), and never before its
// successor started signing.
func (s *selfSigned) view(now time.Time) rootView {
	v := rootView{signer: -1, phase: make([]RootPhase, len(s.roots)), until: make([]time.Time, len(s.roots))}
	for i, e := range s.roots {
		if !e.rec.Retired && !e.rec.Superseded && !e.rec.SignFrom.After(now) {
			v.signer = i
		}
	}
	if v.signer < 0 {
		// The clock is before every usable root's SignFrom: it went
		// backwards. The oldest root that still has its key signs.
		for i, e := range s.roots {
			if !e.rec.Retired && !e.rec.Superseded {
				v.signer = i
				break
			}
		}
	}
	for i, e := range s.roots {
		switch {
		case e.rec.Retired:
			v.phase[i] = PhaseRetired
			v.until[i] = e.rec.RetireAt
		case i == v.signer:
			v.phase[i] = PhaseActive
			if i+1 < len(s.roots) {
				v.until[i] = s.roots[i+1].rec.SignFrom
			}
		case i > v.signer:
			v.phase[i] = PhaseTrusted
			v.until[i] = e.rec.SignFrom
		default:
			end := e.rec.LeavesUntil
			if !e.rec.RetireAt.IsZero() && e.rec.RetireAt.Before(end) {
				end = e.rec.RetireAt
			}
			if next := s.roots[i+1].rec.SignFrom; end.Before(next) {
				end = next
			}
			v.until[i] = end
			if now.Before(end) {
				v.phase[i] = PhaseTrusted
			} else {
				v.phase[i] = PhaseRetired
			}
		}
	}
	return v
}

func (v rootView) rotation() RotationPhase {
	for i, p := range v.phase {
		if p == PhaseTrusted && i > v.signer {
			return RotationPrepared
		}
	}
	for i, p := range v.phase {
		if p == PhaseTrusted && i < v.signer {
			return RotationSwitched
		}
	}
	return RotationStable
}

// maintain records in state.json what the clock has made true: roots older
// than the signer are superseded (their keys are deleted) and roots past
// their retirement are retired.
func (s *selfSigned) maintain(now time.Time) error {
	v := s.view(now)
	recs := s.records()
	changed := false
	for i := range recs {
		if i < v.signer && !recs[i].Superseded {
			recs[i].Superseded = true
			changed = true
		}
		if v.phase[i] == PhaseRetired && !recs[i].Retired {
			recs[i].Retired = true
			if recs[i].RetireAt.IsZero() || v.until[i].Before(recs[i].RetireAt) {
				recs[i].RetireAt = v.until[i]
			}
			changed = true
		}
	}
	if !changed {
		return nil
	}
	return s.commit(recs)
}

func (s *selfSigned) signer(now time.Time) (*signingCA, error) {
	if err := s.maintain(now); err != nil {
		return nil, err
	}
	i := s.view(now).signer
	e := s.roots[i]
	return &signingCA{
		cert:     e.cert,
		key:      e.key,
		notAfter: e.cert.NotAfter,
		record: func(notAfter time.Time) error {
			if !notAfter.After(e.rec.LeavesUntil) {
				return nil
			}
			recs := s.records()
			recs[i].LeavesUntil = notAfter.Add(s.slack)
			return s.commit(recs)
		},
	}, nil
}

func (s *selfSigned) bundle(now time.Time) []*x509.Certificate {
	v := s.view(now)
	var out []*x509.Certificate
	for i, e := range s.roots {
		if v.phase[i] != PhaseRetired {
			out = append(out, e.cert)
		}
	}
	return out
}

func (s *selfSigned) status(now time.Time) Status {
	v := s.view(now)
	st := Status{Mode: ModeSelfSigned, TrustDomain: s.td.Name(), Phase: v.rotation()}
	for i, e := range s.roots {
		st.Roots = append(st.Roots, describeRoot(e.cert, v.phase[i], v.until[i]))
	}
	return st
}
