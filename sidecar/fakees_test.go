package sidecar

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeES is an in-memory Elasticsearch for the calls the sidecar makes:
// PUT _index_template/<name>, PUT <index>, POST <index>/_bulk. Every answer
// carries X-Elastic-Product: Elasticsearch, as the v8 client requires.
// Documents are stored by _id, so a re-delivery overwrites.
type fakeES struct {
	t   testing.TB
	srv *httptest.Server

	mu        sync.Mutex
	docs      map[string]json.RawMessage // by _id
	indexOps  int                        // index operations received
	bulkIDs   [][]string                 // ids per bulk request, in order
	templates map[string][]byte
	indices   map[string]bool
	auth      map[string]bool // Authorization headers seen

	// requestStatus, if set, returns a status for a whole bulk request
	// (call numbers from 1); 0 means answer normally.
	requestStatus func(call int) int
	// itemStatus, if set, returns the status of one item; 0 means default
	// (201, or 400 for an invalid source.ip as a real mapping would).
	itemStatus func(call int, id string) int
	// templateStatus, if set, answers PUT _index_template with it.
	templateStatus int
	// onBulk, if set, runs at the start of every bulk request.
	onBulk func(call int)
	// modern makes the fake answer like a full distribution: the data
	// stream and ILM APIs exist. Otherwise it answers them like Elastic's
	// integ-test distribution (400 "no handler found").
	modern      bool
	dataStreams map[string]bool
	policies    map[string][]byte
}

func newFakeES(t testing.TB) *fakeES {
	f := &fakeES{t: t, docs: map[string]json.RawMessage{}, templates: map[string][]byte{}, indices: map[string]bool{}, auth: map[string]bool{},
		dataStreams: map[string]bool{}, policies: map[string][]byte{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// newFakeESTLS is newFakeES over https; it returns the PEM of the server's
// self-signed certificate, to be trusted through Config.CAFile.
func newFakeESTLS(t testing.TB) (*fakeES, []byte) {
	f := &fakeES{t: t, docs: map[string]json.RawMessage{}, templates: map[string][]byte{}, indices: map[string]bool{}, auth: map[string]bool{},
		dataStreams: map[string]bool{}, policies: map[string][]byte{}}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted handshake is expected
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	return f, ca
}

func (f *fakeES) URL() string { return f.srv.URL }

func (f *fakeES) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Elastic-Product", "Elasticsearch")
	w.Header().Set("Content-Type", "application/json")
	f.set(func(f *fakeES) { f.auth[r.Header.Get("Authorization")] = true })
	body, err := readBody(r)
	if err != nil {
		writeJSON(w, 400, esError("parse_exception", err.Error(), 400))
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodPut && len(parts) == 2 && parts[0] == "_index_template":
		f.putTemplate(w, parts[1], body)
	case f.modern && len(parts) == 2 && parts[0] == "_data_stream":
		f.dataStream(w, r.Method, parts[1])
	case f.modern && r.Method == http.MethodPut && len(parts) == 3 && parts[0] == "_ilm" && parts[1] == "policy":
		f.set(func(f *fakeES) { f.policies[parts[2]] = body })
		writeJSON(w, 200, map[string]any{"acknowledged": true})
	case r.Method == http.MethodHead && len(parts) == 1:
		f.mu.Lock()
		ok := f.indices[parts[0]]
		f.mu.Unlock()
		if ok {
			w.WriteHeader(200)
		} else {
			w.WriteHeader(404)
		}
	case r.Method == http.MethodPut && len(parts) == 1:
		f.createIndex(w, parts[0])
	case r.Method == http.MethodPost && len(parts) == 2 && parts[1] == "_bulk":
		f.bulk(w, body)
	default:
		writeJSON(w, 400, map[string]any{"error": "no handler found for uri [" + r.URL.Path + "] and method [" + r.Method + "]"})
	}
}

func (f *fakeES) dataStream(w http.ResponseWriter, method, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case method == http.MethodGet && f.dataStreams[name]:
		writeJSON(w, 200, map[string]any{"data_streams": []any{map[string]any{"name": name}}})
	case method == http.MethodGet:
		writeJSON(w, 404, esError("index_not_found_exception", "no such index ["+name+"]", 404))
	case method == http.MethodPut && (f.dataStreams[name] || f.indices[name]):
		writeJSON(w, 400, esError("resource_already_exists_exception", "data_stream ["+name+"] already exists", 400))
	case method == http.MethodPut:
		f.dataStreams[name] = true
		writeJSON(w, 200, map[string]any{"acknowledged": true})
	default:
		writeJSON(w, 405, map[string]any{"error": "bad method", "status": 405})
	}
}

func readBody(r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return nil, err
		}
		rd = zr
	}
	return io.ReadAll(rd)
}

func (f *fakeES) putTemplate(w http.ResponseWriter, name string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.templateStatus != 0 {
		writeJSON(w, f.templateStatus, esError("illegal_argument_exception", "template rejected", f.templateStatus))
		return
	}
	if !json.Valid(body) {
		writeJSON(w, 400, esError("x_content_parse_exception", "bad template", 400))
		return
	}
	f.templates[name] = body
	writeJSON(w, 200, map[string]any{"acknowledged": true})
}

func (f *fakeES) createIndex(w http.ResponseWriter, name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.indices[name] {
		writeJSON(w, 400, esError("resource_already_exists_exception", "index ["+name+"] already exists", 400))
		return
	}
	f.indices[name] = true
	writeJSON(w, 200, map[string]any{"acknowledged": true, "index": name})
}

func (f *fakeES) bulk(w http.ResponseWriter, body []byte) {
	f.mu.Lock()
	call := len(f.bulkIDs) + 1
	onBulk := f.onBulk
	f.mu.Unlock()
	if onBulk != nil {
		onBulk(call) // outside the lock: it may block
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ops, err := parseBulk(body)
	if err != nil {
		writeJSON(w, 400, esError("illegal_argument_exception", err.Error(), 400))
		return
	}
	ids := make([]string, len(ops))
	for i, op := range ops {
		ids[i] = op.id
	}
	f.bulkIDs = append(f.bulkIDs, ids)
	if f.requestStatus != nil {
		if s := f.requestStatus(call); s != 0 {
			writeJSON(w, s, esError("es_rejected_execution_exception", "request refused by test", s))
			return
		}
	}
	items := make([]any, len(ops))
	hasErr := false
	for i, op := range ops {
		st := f.status(call, op)
		if _, exists := f.docs[op.id]; op.create && exists && st < 300 {
			st = 409
		}
		item := map[string]any{"_id": op.id, "status": st}
		if st >= 300 {
			hasErr = true
			item["error"] = map[string]any{"type": errType(st), "reason": fmt.Sprintf("test refused %s with %d", op.id, st)}
		} else {
			f.docs[op.id] = op.source
			f.indexOps++
		}
		name := "index"
		if op.create {
			name = "create"
		}
		items[i] = map[string]any{name: item}
	}
	writeJSON(w, 200, map[string]any{"errors": hasErr, "items": items})
}

func (f *fakeES) status(call int, op bulkOp) int {
	if f.itemStatus != nil {
		if s := f.itemStatus(call, op.id); s != 0 {
			return s
		}
	}
	var doc struct {
		Source struct {
			IP string `json:"ip"`
		} `json:"source"`
	}
	if json.Unmarshal(op.source, &doc) != nil || net.ParseIP(doc.Source.IP) == nil {
		return 400
	}
	return 201
}

func errType(status int) string {
	switch {
	case status == 400:
		return "document_parsing_exception"
	case status == 429:
		return "es_rejected_execution_exception"
	default:
		return "unavailable_shards_exception"
	}
}

type bulkOp struct {
	create bool
	id     string
	source json.RawMessage
}

func parseBulk(body []byte) ([]bulkOp, error) {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var ops []bulkOp
	for sc.Scan() {
		type meta struct {
			ID string `json:"_id"`
		}
		var action struct {
			Index  *meta `json:"index"`
			Create *meta `json:"create"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || (action.Index == nil) == (action.Create == nil) {
			return nil, fmt.Errorf("bad action line %q", sc.Text())
		}
		create := action.Create != nil
		if create {
			action.Index = action.Create
		}
		if !sc.Scan() {
			return nil, fmt.Errorf("action without source")
		}
		ops = append(ops, bulkOp{create: create, id: action.Index.ID, source: append(json.RawMessage(nil), sc.Bytes()...)})
	}
	return ops, sc.Err()
}

func esError(typ, reason string, status int) map[string]any {
	return map[string]any{"error": map[string]any{"type": typ, "reason": reason}, "status": status}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// snapshot returns copies of the fake's counters.
func (f *fakeES) snapshot() (docs int, indexOps int, calls [][]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	calls = make([][]string, len(f.bulkIDs))
	copy(calls, f.bulkIDs)
	return len(f.docs), f.indexOps, calls
}

// set changes the fake's behaviour under its lock.
func (f *fakeES) set(change func(f *fakeES)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// template returns the stored template and whether the index exists.
func (f *fakeES) template(name string) (body []byte, indexExists bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.templates[name], f.indices[name]
}

func (f *fakeES) doc(id string) (json.RawMessage, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.docs[id]
	return d, ok
}
