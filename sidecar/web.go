package sidecar

import (
	"crypto/subtle"
	"embed"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// EnvWebToken names the variable (or, with _FILE, the file) holding the
// bearer token of the web page's API. Without a token the page is not served.
const EnvWebToken = "BEACONGRID_WEB_TOKEN"

// DefaultRecent is how many delivered alerts the web page can list.
const DefaultRecent = 200

//go:embed web/index.html web/app.js web/style.css web/vega.min.js web/LICENSE-vega.txt
var webAssets embed.FS

// Recent keeps the last alerts delivered to Elasticsearch, as their spool
// lines, for the web page. It is safe for concurrent use; a nil *Recent
// ignores Add and lists nothing.
type Recent struct {
	mu   sync.Mutex
	buf  [][]byte // ring; buf[next] is the oldest once full
	next int
	full bool
}

// NewRecent returns a Recent holding up to n alerts (n < 1 means DefaultRecent).
func NewRecent(n int) *Recent {
	if n < 1 {
		n = DefaultRecent
	}
	return &Recent{buf: make([][]byte, n)}
}

// Add records delivered documents, oldest first. Only the last Cap of them
// are copied, so a large batch costs no more than a small one.
func (r *Recent) Add(docs []Document) {
	if r == nil {
		return
	}
	if len(docs) > len(r.buf) {
		docs = docs[len(docs)-len(r.buf):]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range docs {
		r.buf[r.next] = append(r.buf[r.next][:0], d.Source...)
		r.next++
		if r.next == len(r.buf) {
			r.next, r.full = 0, true
		}
	}
}

// List returns up to limit alerts, newest first, as copies.
func (r *Recent) List(limit int) [][]byte {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	if limit > 0 && limit < n {
		n = limit
	}
	out := make([][]byte, 0, n)
	for i := 1; i <= n; i++ {
		k := (r.next - i + len(r.buf)) % len(r.buf)
		out = append(out, append([]byte(nil), r.buf[k]...))
	}
	return out
}

// WebHandler serves the alerts page under /ui/: static assets (no data) at
// /ui/ and the recent alerts at /ui/api/alerts?limit=N, which requires
// "Authorization: Bearer <token>". The page reads the token from the URL
// fragment (#token=...), which browsers never send to a server or log, and
// keeps it in session storage. An empty token disables the handler (every
// request gets 404), so the page cannot be served without one.
func WebHandler(token string, recent *Recent) http.Handler {
	if token == "" {
		return http.NotFoundHandler()
	}
	mux := http.NewServeMux()
	static, _ := fs.Sub(webAssets, "web")
	files := http.StripPrefix("/ui/", http.FileServerFS(static))
	mux.Handle("GET /ui/", securityHeaders(files))
	mux.Handle("GET /ui/api/alerts", securityHeaders(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="beacongrid"`)
			http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
			return
		}
		limit := 50
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				http.Error(w, "limit must be a positive integer", http.StatusBadRequest)
				return
			}
			limit = n
		}
		lines := recent.List(limit)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		// The lines are JSON objects already (documentID checked them);
		// they are written as they are, without a decode and re-encode.
		var b strings.Builder
		b.WriteString(`{"alerts":[`)
		for i, l := range lines {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(l)
		}
		b.WriteString("]}\n")
		_, _ = w.Write([]byte(b.String()))
	})))
	return mux
}

// authorized compares the bearer token in constant time.
func authorized(r *http.Request, token string) bool {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(h[len(prefix):]), []byte(token)) == 1
}

// securityHeaders adds a strict Content-Security-Policy. 'unsafe-eval' is
// there because Vega compiles its expressions with the Function constructor
// (its CSP-safe interpreter is not in the vendored bundle); every script
// still comes from this server.
func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy",
			"default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		h.ServeHTTP(w, r)
	})
}
