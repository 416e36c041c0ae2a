package sidecar

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// Document is one alert to index: its id and its JSON, as read from the
// spool.
type Document struct {
	ID     string
	Source []byte
}

// ItemResult is Elasticsearch's answer for one document of a bulk request.
type ItemResult struct {
	Status    int    // HTTP status of the item
	ErrorType string // e.g. "document_parsing_exception"; "" on success
	Reason    string
	Duplicate bool // already indexed by an earlier delivery (data stream "create" got 409)
}

// OK reports whether the document was indexed.
func (r ItemResult) OK() bool { return r.Status >= 200 && r.Status < 300 }

// Permanent reports whether sending the same document again cannot succeed:
// status 400 (mapping or parse error). Every other failure (429, 5xx, and
// also 401/403/404, which an operator can fix) is retried.
func (r ItemResult) Permanent() bool { return r.Status == http.StatusBadRequest }

// Indexer is the part of Elasticsearch the Deliverer uses. ESIndexer
// implements it on a real cluster; tests implement it in memory.
type Indexer interface {
	// Setup prepares the target: installs the index template and creates
	// the index or data stream (and ILM policy) if missing. It is called
	// before delivery starts and must be safe to call again.
	Setup(ctx context.Context) error
	// Bulk indexes docs (op "index", _id = Document.ID) in one request and
	// returns one ItemResult per document, in order. An error means the
	// request as a whole failed and says nothing about any document.
	Bulk(ctx context.Context, docs []Document) ([]ItemResult, error)
}

// RequestError is a request to Elasticsearch that failed as a whole.
type RequestError struct {
	Op     string // what was asked: "bulk", "put index template", "create index"
	Status int    // HTTP status; 0 when there was no response
	Type   string // Elasticsearch error type, when it sent one
	Reason string // Elasticsearch reason or response text, shortened
	Err    error  // the transport error when Status is 0
}

func (e *RequestError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("elasticsearch %s: %v", e.Op, e.Err)
	}
	msg := fmt.Sprintf("elasticsearch %s: HTTP %d", e.Op, e.Status)
	if e.Type != "" {
		msg += " " + e.Type
	}
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

func (e *RequestError) Unwrap() error { return e.Err }

// Permanent reports whether repeating the request cannot help: a 4xx status
// other than 408 and 429. Only Setup treats it as fatal (a rejected template
// or wrong credentials should stop the daemon with a clear message); Bulk
// failures are always retried.
func (e *RequestError) Permanent() bool {
	return e.Status >= 400 && e.Status < 500 &&
		e.Status != http.StatusRequestTimeout && e.Status != http.StatusTooManyRequests
}

// ESIndexer is the Indexer on Elasticsearch through go-elasticsearch/v8.
// It is safe for concurrent use once Setup has returned.
type ESIndexer struct {
	client    *elasticsearch.Client
	index     string
	target    string
	retention time.Duration

	mu   sync.Mutex
	mode string // ModeIndex or ModeDataStream, chosen by Setup
	ilm  bool   // an ILM policy manages the data stream
}

// NewESIndexer builds a client for cfg's addresses, credentials and CA file.
// It does not contact Elasticsearch. The client's own retries are off: the
// Deliverer retries, with backoff, and counts each retry. Request bodies
// are gzip-compressed.
func NewESIndexer(cfg Config) (*ESIndexer, error) {
	tr, err := transport(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	c, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:           cfg.Addresses,
		APIKey:              cfg.APIKey,
		Username:            cfg.Username,
		Password:            cfg.Password,
		Transport:           tr,
		DisableRetry:        true,
		CompressRequestBody: true,
		// Level 1: a third of the CPU of the default level for almost the
		// same ratio on alert documents (mostly the matrix's zeros).
		CompressRequestBodyLevel: gzip.BestSpeed,
	})
	if err != nil {
		return nil, fmt.Errorf("elasticsearch client: %w", err)
	}
	target := cfg.Target
	if target == "" {
		target = TargetAuto
	}
	return &ESIndexer{client: c, index: cfg.Index, target: target, retention: cfg.Retention, mode: ModeIndex}, nil
}

func transport(caFile string) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	tr.MaxIdleConnsPerHost = 8
	if caFile == "" {
		return tr, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	tr.TLSClientConfig.RootCAs = pool
	return tr, nil
}

// Mode returns how alerts are stored, as chosen by the last Setup:
// ModeIndex or ModeDataStream, and whether an ILM policy manages them.
func (x *ESIndexer) Mode() (mode string, ilm bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.mode, x.ilm
}

// Setup prepares the target. With Target auto it uses a data stream
// (bulk op "create") when the cluster has the data stream API and no plain
// index of that name exists, managed by the ILM policy named after the index
// when the cluster has ILM; otherwise a plain index (bulk op "index"). It
// installs the index template named after the index, then creates the data
// stream or index unless it exists. It is safe to repeat.
func (x *ESIndexer) Setup(ctx context.Context) error {
	ds, err := x.dataStreamState(ctx)
	if err != nil {
		return err
	}
	useDS := false
	switch x.target {
	case TargetIndex:
	case TargetDataStream:
		if ds == dsUnsupported {
			return &RequestError{Op: "set up data stream", Status: http.StatusBadRequest,
				Reason: "this cluster has no data stream API; use --target auto or index"}
		}
		if ds == dsPlainIndex {
			return &RequestError{Op: "set up data stream", Status: http.StatusBadRequest,
				Reason: "a plain index named " + x.index + " exists; use --target index or another --index"}
		}
		useDS = true
	default: // auto
		useDS = ds == dsExists || ds == dsMissing
	}
	ilm := false
	if useDS {
		if ilm, err = x.putPolicy(ctx); err != nil {
			return err
		}
	}
	policy := ""
	if ilm {
		policy = x.index
	}
	body, err := IndexTemplate(x.index, TemplateOptions{DataStream: useDS, ILMPolicy: policy})
	if err != nil {
		return err
	}
	res, err := x.client.Indices.PutIndexTemplate(x.index, bytes.NewReader(body),
		x.client.Indices.PutIndexTemplate.WithContext(ctx))
	if err := checkResponse("put index template", res, err); err != nil {
		return err
	}
	if useDS {
		if ds == dsMissing {
			res, err = x.client.Indices.CreateDataStream(x.index, x.client.Indices.CreateDataStream.WithContext(ctx))
			if err := checkResponse("create data stream", res, err); err != nil && !alreadyExists(err) {
				return err
			}
		}
	} else {
		res, err = x.client.Indices.Create(x.index, x.client.Indices.Create.WithContext(ctx))
		if err := checkResponse("create index", res, err); err != nil && !alreadyExists(err) {
			return err
		}
	}
	x.mu.Lock()
	x.mode, x.ilm = ModeIndex, false
	if useDS {
		x.mode, x.ilm = ModeDataStream, ilm
	}
	x.mu.Unlock()
	return nil
}

func alreadyExists(err error) bool {
	var re *RequestError
	return errors.As(err, &re) && re.Type == "resource_already_exists_exception"
}

type dsState int

const (
	dsUnsupported dsState = iota // no data stream API
	dsMissing                    // API present, no data stream and no index of the name
	dsExists                     // the data stream exists
	dsPlainIndex                 // API present, but a plain index has the name
)

// dataStreamState asks GET _data_stream/<index>. A cluster with the API
// answers 200 or 404 with an Elasticsearch error type; one without it
// (Elastic's integ-test distribution) answers 400 or 405 "no handler" or
// "incorrect HTTP method". 401/403 and transport errors are returned.
func (x *ESIndexer) dataStreamState(ctx context.Context) (dsState, error) {
	res, err := x.client.Indices.GetDataStream(x.client.Indices.GetDataStream.WithName(x.index),
		x.client.Indices.GetDataStream.WithContext(ctx))
	if err != nil {
		return 0, &RequestError{Op: "get data stream", Err: err}
	}
	err = checkResponse("get data stream", res, nil)
	var re *RequestError
	switch {
	case err == nil:
		return dsExists, nil
	case !errors.As(err, &re):
		return 0, err
	case re.Status == http.StatusNotFound && re.Type != "":
		exists, err := x.indexExists(ctx)
		if err != nil {
			return 0, err
		}
		if exists {
			return dsPlainIndex, nil
		}
		return dsMissing, nil
	case re.Status == http.StatusBadRequest || re.Status == http.StatusMethodNotAllowed:
		return dsUnsupported, nil
	}
	return 0, err
}

func (x *ESIndexer) indexExists(ctx context.Context) (bool, error) {
	res, err := x.client.Indices.Exists([]string{x.index}, x.client.Indices.Exists.WithContext(ctx))
	if err != nil {
		return false, &RequestError{Op: "index exists", Err: err}
	}
	defer res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, &RequestError{Op: "index exists", Status: res.StatusCode}
}

// putPolicy installs the ILM policy named after the index: roll the write
// index over at 30 days or 50 GB per primary shard, delete an index
// Retention after its rollover. It reports false, without error, when the
// cluster has no ILM API (400/405, as without the data stream API).
func (x *ESIndexer) putPolicy(ctx context.Context) (bool, error) {
	body := ILMPolicy(x.retention)
	res, err := x.client.ILM.PutLifecycle(x.index, x.client.ILM.PutLifecycle.WithBody(bytes.NewReader(body)),
		x.client.ILM.PutLifecycle.WithContext(ctx))
	err = checkResponse("put ILM policy", res, err)
	var re *RequestError
	switch {
	case err == nil:
		return true, nil
	case errors.As(err, &re) && re.Type == "" && (re.Status == http.StatusBadRequest || re.Status == http.StatusMethodNotAllowed):
		return false, nil
	}
	return false, err
}

// ILMPolicy returns the body of the ILM policy for retention.
func ILMPolicy(retention time.Duration) []byte {
	days := int((retention + 24*time.Hour - 1) / (24 * time.Hour))
	if days < 1 {
		days = 1
	}
	return []byte(fmt.Sprintf(`{"policy":{"_meta":{"managed_by":"beacongrid sidecar"},"phases":{`+
		`"hot":{"actions":{"rollover":{"max_age":"30d","max_primary_shard_size":"50gb"}}},`+
		`"delete":{"min_age":"%dd","actions":{"delete":{}}}}}}`, days))
}

// checkResponse turns a transport error or an error status into a
// RequestError, and closes the body.
func checkResponse(op string, res *esapi.Response, err error) error {
	if err != nil {
		return &RequestError{Op: op, Err: err}
	}
	defer res.Body.Close()
	if res.IsError() {
		return responseError(op, res)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	return nil
}

// bulkFilter trims the bulk response to what is checked.
var bulkFilter = []string{"errors", "items.*.status", "items.*.error.type", "items.*.error.reason"}

// Bulk sends docs to the index in one _bulk request.
func (x *ESIndexer) Bulk(ctx context.Context, docs []Document) ([]ItemResult, error) {
	mode, _ := x.Mode()
	op := "index"
	if mode == ModeDataStream {
		op = "create"
	}
	body, err := encodeBulk(docs, op)
	if err != nil {
		return nil, err
	}
	res, err := x.client.Bulk(bytes.NewReader(body),
		x.client.Bulk.WithContext(ctx),
		x.client.Bulk.WithIndex(x.index),
		x.client.Bulk.WithFilterPath(bulkFilter...))
	if err != nil {
		return nil, &RequestError{Op: "bulk", Err: err}
	}
	defer res.Body.Close()
	if res.IsError() {
		return nil, responseError("bulk", res)
	}
	return decodeBulk(res.Body, len(docs), op == "create")
}

// encodeBulk writes the NDJSON body: an op ("index" or "create") action
// with the id, then the document, for each doc.
func encodeBulk(docs []Document, op string) ([]byte, error) {
	n := 0
	for _, d := range docs {
		n += len(d.Source) + len(d.ID) + 24
	}
	buf := bytes.NewBuffer(make([]byte, 0, n))
	for _, d := range docs {
		id, err := json.Marshal(d.ID)
		if err != nil {
			return nil, err
		}
		buf.WriteString(`{"` + op + `":{"_id":`)
		buf.Write(id)
		buf.WriteString("}}\n")
		buf.Write(d.Source)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

type bulkResponse struct {
	Errors bool                         `json:"errors"`
	Items  []map[string]bulkItemOutcome `json:"items"`
}

type bulkItemOutcome struct {
	Status int `json:"status"`
	Error  *struct {
		Type   string `json:"type"`
		Reason string `json:"reason"`
	} `json:"error"`
}

// decodeBulk reads a bulk response for n documents. With create, a 409
// (version_conflict_engine_exception: a document of that _id is in the
// data stream's write index already, from an earlier delivery) is a
// success marked Duplicate.
func decodeBulk(r io.Reader, n int, create bool) ([]ItemResult, error) {
	var br bulkResponse
	if err := json.NewDecoder(r).Decode(&br); err != nil {
		return nil, &RequestError{Op: "bulk", Err: fmt.Errorf("decode response: %w", err)}
	}
	if len(br.Items) != n {
		return nil, &RequestError{Op: "bulk", Err: fmt.Errorf("response has %d items for %d documents", len(br.Items), n)}
	}
	out := make([]ItemResult, n)
	for i, item := range br.Items {
		for _, o := range item { // one key: the op ("index")
			out[i] = ItemResult{Status: o.Status}
			if create && o.Status == http.StatusConflict {
				out[i] = ItemResult{Status: http.StatusOK, Duplicate: true}
				continue
			}
			if o.Error != nil {
				out[i].ErrorType = o.Error.Type
				out[i].Reason = shorten(o.Error.Reason)
			}
		}
	}
	return out, nil
}

// responseError reads an error response: Elasticsearch's JSON error, or the
// start of whatever else answered.
func responseError(op string, res *esapi.Response) error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	e := &RequestError{Op: op, Status: res.StatusCode}
	var body struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && len(body.Error) > 0 {
		var obj struct {
			Type   string `json:"type"`
			Reason string `json:"reason"`
		}
		if json.Unmarshal(body.Error, &obj) == nil {
			e.Type, e.Reason = obj.Type, shorten(obj.Reason)
			return e
		}
		var s string
		if json.Unmarshal(body.Error, &s) == nil {
			e.Reason = shorten(s)
			return e
		}
	}
	e.Reason = shorten(string(b))
	return e
}

// shorten keeps log lines and dead letters bounded.
func shorten(s string) string {
	s = strings.TrimSpace(s)
	const max = 500
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
