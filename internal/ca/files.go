package ca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// File modes of the state directory. Certificates are public; keys and the
// state file are the CA's alone. The directory itself is closed so that
// even a file created with a wider mode by mistake stays private.
const (
	dirMode   fs.FileMode = 0o700
	keyMode   fs.FileMode = 0o600
	certMode  fs.FileMode = 0o644
	stateMode fs.FileMode = 0o600
)

// tempPrefix starts the name of every file being written, so that Open can
// recognise and remove the leftovers of a crash.
const tempPrefix = ".tmp-"

// ensureDir creates dir with mode 0700, or narrows an existing one to it:
// the directory holds private keys, and a directory another user can enter
// would expose a key file whose own mode is ever wrong.
func ensureDir(dir string) error {
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return fmt.Errorf("ca: create state directory: %w", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("ca: state directory: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("ca: state directory %s: not a directory", dir)
	}
	if fi.Mode().Perm() != dirMode {
		if err := os.Chmod(dir, dirMode); err != nil {
			return fmt.Errorf("ca: narrow state directory to %v: %w", dirMode, err)
		}
	}
	return nil
}

// writeFileAtomic writes data to path so that a reader, or the process after
// a crash, sees either the old file or the whole new one: it writes a
// temporary file in the same directory, syncs it, renames it over path and
// syncs the directory.
func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = f.Chmod(mode); err != nil && runtime.GOOS != "windows" {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Windows cannot sync a directory,
// and does not need to.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeTemps deletes what an interrupted writeFileAtomic left in dir.
func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), tempPrefix) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

func encodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// ParseCertificatesPEM parses every CERTIFICATE block of data, in order. A
// block of another type, text between blocks that is not whitespace, or no
// certificate at all is an error: a file that is meant to hold certificates
// and holds something else is a mistake worth stopping at.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("PEM block %d is %q, want CERTIFICATE", len(certs)+1, b.Type)
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(strings.TrimSpace(string(rest))) != 0 {
		return nil, fmt.Errorf("data after certificate %d is not a PEM block", len(certs))
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate")
	}
	return certs, nil
}

// parseKeyPEM parses the one private key in data: PKCS#8 ("PRIVATE KEY"),
// SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"), the encodings
// Istio's plug-in CA accepts. Only ECDSA and RSA keys can sign for the mesh.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	var key any
	var err error
	b, rest := pem.Decode(data)
	switch {
	case b == nil:
		return nil, errors.New("no PEM private key")
	case b.Type == "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	case b.Type == "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(b.Bytes)
	case b.Type == "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		return nil, fmt.Errorf("PEM block is %q, want PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY", b.Type)
	}
	if err != nil {
		return nil, err
	}
	if next, _ := pem.Decode(rest); next != nil {
		return nil, errors.New("more than one PEM block, want only the key")
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return nil, errors.New("key is Ed25519, want ECDSA or RSA")
	default:
		return nil, fmt.Errorf("key is %T, want ECDSA or RSA", key)
	}
}
