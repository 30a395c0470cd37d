package guardrail

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
)

// MaxBodyBytes bounds an AdmissionReview. The API server accepts objects of
// up to 3 MiB; an update carries the object twice, plus the review itself.
const MaxBodyBytes = 7 << 20

// Handler serves AdmissionReviews over HTTP. Every answer, even to a
// request that is not an AdmissionReview at all, is an AdmissionReview
// JSON body that denies with a status, never Go's plain-text error page:
// the API server shows its message to the user.
type Handler struct {
	Guardrail *Guardrail
	// MaxBodyBytes overrides the package's MaxBodyBytes when positive.
	MaxBodyBytes int64
}

var _ http.Handler = (*Handler)(nil)

// ServeHTTP answers a POST of application/json with the review's answer
// (HTTP 200, as the API server expects, also for a review it denies as
// malformed). Other methods get 405 and other content types 415, with an
// AdmissionReview body that says so.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reply := func(status int, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		w.Write(body)
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		reply(http.StatusMethodNotAllowed, encodeReview(denied("", http.StatusMethodNotAllowed, fmt.Sprintf("method %s: want POST of an AdmissionReview", r.Method))))
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		reply(http.StatusUnsupportedMediaType, encodeReview(denied("", http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: want application/json", r.Header.Get("Content-Type")))))
		return
	}
	limit := h.MaxBodyBytes
	if limit <= 0 {
		limit = MaxBodyBytes
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			reply(http.StatusOK, encodeReview(denied("", http.StatusRequestEntityTooLarge, fmt.Sprintf("AdmissionReview larger than %d bytes", limit))))
			return
		}
		reply(http.StatusOK, encodeReview(denied("", http.StatusBadRequest, fmt.Sprintf("read body: %v", err))))
		return
	}
	reply(http.StatusOK, h.Guardrail.ReviewBytes(r.Context(), body))
}
