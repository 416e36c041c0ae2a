package sidecar

import (
	"bytes"
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
	// the index if missing (later: the data stream and ILM policy). It is
	// called before delivery starts and must be safe to call again.
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
// It is safe for concurrent use.
type ESIndexer struct {
	client *elasticsearch.Client
	index  string
}

// NewESIndexer builds a client for cfg's addresses, credentials and CA file.
// It does not contact Elasticsearch. The client's own retries are off: the
// Deliverer retries, with backoff, and counts each retry.
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
	})
	if err != nil {
		return nil, fmt.Errorf("elasticsearch client: %w", err)
	}
	return &ESIndexer{client: c, index: cfg.Index}, nil
}

func transport(caFile string) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
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

// Setup installs the index template named after the index, then creates the
// index unless it exists.
func (x *ESIndexer) Setup(ctx context.Context) error {
	body, err := IndexTemplate(x.index)
	if err != nil {
		return err
	}
	res, err := x.client.Indices.PutIndexTemplate(x.index, bytes.NewReader(body),
		x.client.Indices.PutIndexTemplate.WithContext(ctx))
	if err := checkResponse("put index template", res, err); err != nil {
		return err
	}
	res, err = x.client.Indices.Create(x.index, x.client.Indices.Create.WithContext(ctx))
	err = checkResponse("create index", res, err)
	var re *RequestError
	if errors.As(err, &re) && re.Type == "resource_already_exists_exception" {
		return nil
	}
	return err
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
	body, err := encodeBulk(docs)
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
	return decodeBulk(res.Body, len(docs))
}

// encodeBulk writes the NDJSON body: an index action with the id, then the
// document, for each doc.
func encodeBulk(docs []Document) ([]byte, error) {
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
		buf.WriteString(`{"index":{"_id":`)
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

func decodeBulk(r io.Reader, n int) ([]ItemResult, error) {
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
