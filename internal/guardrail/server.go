package guardrail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// ValidatePath is the path the webhook configuration sends reviews to.
const ValidatePath = "/validate"

// Server is the guardrail's HTTPS endpoint: ValidatePath for reviews and
// /healthz for probes.
type Server struct {
	Addr              string // host:port to listen on
	CertFile, KeyFile string // serving certificate and key (PEM)
	Guardrail         *Guardrail
	Log               *slog.Logger // nil logs nothing
}

// Serve listens and serves until ctx is done, then shuts down gracefully
// (in-flight reviews get five seconds). ready, when not nil, is called with
// the listening address once connections are accepted. The certificate is
// read again when its files change, so that a renewed certificate needs no
// restart.
func (s *Server) Serve(ctx context.Context, ready func(net.Addr)) error {
	kp := &keyPair{certFile: s.CertFile, keyFile: s.KeyFile}
	if _, err := kp.get(nil); err != nil {
		return err
	}
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle(ValidatePath, &Handler{Guardrail: s.Guardrail})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write(encodeReview(denied("", http.StatusNotFound, fmt.Sprintf("no endpoint %s: reviews go to %s", r.URL.Path, ValidatePath))))
	})
	srv := &http.Server{
		Handler: mux,
		TLSConfig: &tls.Config{
			MinVersion:     tls.VersionTLS12,
			GetCertificate: kp.get,
		},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.Addr, err)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shut)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// keyPair loads a certificate and key, and loads them again when either
// file's modification time or size changes. A failed reload keeps serving
// the previous pair: a renewal tool writing the two files one after the
// other must not take the webhook down in between.
type keyPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp
	checked time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// recheck is how often, at most, the files are looked at.
const recheck = 10 * time.Second

func (k *keyPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.cert != nil && time.Since(k.checked) < recheck {
		return k.cert, nil
	}
	k.checked = time.Now()
	var stamp [2]fileStamp
	for i, f := range []string{k.certFile, k.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			if k.cert != nil {
				return k.cert, nil
			}
			return nil, fmt.Errorf("serving certificate: %w", err)
		}
		stamp[i] = fileStamp{st.ModTime(), st.Size()}
	}
	if k.cert != nil && stamp == k.stamp {
		return k.cert, nil
	}
	c, err := tls.LoadX509KeyPair(k.certFile, k.keyFile)
	if err != nil {
		if k.cert != nil {
			return k.cert, nil
		}
		return nil, fmt.Errorf("load serving certificate %s and key %s: %w", k.certFile, k.keyFile, err)
	}
	k.cert, k.stamp = &c, stamp
	return k.cert, nil
}
