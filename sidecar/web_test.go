package sidecar

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRecentRing(t *testing.T) {
	r := NewRecent(3)
	if got := r.List(10); len(got) != 0 {
		t.Fatalf("empty ring lists %d", len(got))
	}
	doc := func(i int) Document { return Document{ID: fmt.Sprint(i), Source: []byte(fmt.Sprintf(`{"n":%d}`, i))} }
	r.Add([]Document{doc(1), doc(2)})
	want := func(limit int, exp ...string) {
		t.Helper()
		got := r.List(limit)
		var s []string
		for _, b := range got {
			s = append(s, string(b))
		}
		if strings.Join(s, " ") != strings.Join(exp, " ") {
			t.Fatalf("List(%d) = %v, want %v", limit, s, exp)
		}
	}
	want(10, `{"n":2}`, `{"n":1}`)
	r.Add([]Document{doc(3), doc(4)})
	want(10, `{"n":4}`, `{"n":3}`, `{"n":2}`)
	want(2, `{"n":4}`, `{"n":3}`)
	// A batch larger than the ring keeps only its newest lines.
	r.Add([]Document{doc(5), doc(6), doc(7), doc(8), doc(9)})
	want(0, `{"n":9}`, `{"n":8}`, `{"n":7}`)
	// List returns copies: changing them does not change the ring.
	r.List(1)[0][0] = 'X'
	want(1, `{"n":9}`)
	var nilRing *Recent
	nilRing.Add([]Document{doc(1)})
	if nilRing.List(5) != nil {
		t.Fatal("nil Recent lists something")
	}
}

func TestWebHandlerAuth(t *testing.T) {
	rec := NewRecent(10)
	a := testAlert(1)
	rec.Add([]Document{{ID: a.Event.ID, Source: alertLine(t, a)}})
	srv := httptest.NewServer(WebHandler("s3cret-token", rec))
	defer srv.Close()

	get := func(path, auth string) (int, string, http.Header) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	for _, auth := range []string{"", "Bearer wrong", "Basic s3cret-token", "Bearer s3cret-token2", "Bearer "} {
		if st, _, h := get("/ui/api/alerts", auth); st != http.StatusUnauthorized || h.Get("WWW-Authenticate") == "" {
			t.Errorf("auth %q: HTTP %d, want 401 with WWW-Authenticate", auth, st)
		}
	}
	st, body, h := get("/ui/api/alerts", "Bearer s3cret-token")
	if st != 200 || h.Get("Content-Type") != "application/json" {
		t.Fatalf("with token: HTTP %d %s", st, h.Get("Content-Type"))
	}
	var out struct {
		Alerts []json.RawMessage `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || len(out.Alerts) != 1 {
		t.Fatalf("body %q: %v, %d alerts", body, err, len(out.Alerts))
	}
	if string(out.Alerts[0]) != string(alertLine(t, a)) {
		t.Fatal("alert not forwarded unchanged")
	}
	if st, _, _ := get("/ui/api/alerts?limit=-1", "Bearer s3cret-token"); st != http.StatusBadRequest {
		t.Errorf("limit=-1: HTTP %d, want 400", st)
	}
	// Static assets carry no data and need no token, but a strict CSP.
	st, body, h = get("/ui/", "")
	if st != 200 || !strings.Contains(body, "vega.min.js") || !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("/ui/: HTTP %d, CSP %q", st, h.Get("Content-Security-Policy"))
	}
	if st, _, _ := get("/ui/vega.min.js", ""); st != 200 {
		t.Fatalf("vega.min.js: HTTP %d", st)
	}

	// Without a token the page is not served at all.
	off := httptest.NewServer(WebHandler("", rec))
	defer off.Close()
	for _, p := range []string{"/ui/", "/ui/api/alerts"} {
		res, err := http.Get(off.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("no token: %s HTTP %d, want 404", p, res.StatusCode)
		}
	}
}
