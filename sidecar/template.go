package sidecar

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// indexTemplate is the composable index template for alert documents. The
// file is also what docs/alert-schema.md describes; its index_patterns are
// replaced by the configured index name (IndexTemplate).
//
//go:embed index-template.json
var indexTemplate []byte

// IndexTemplate returns the index template body for index: the embedded
// index-template.json with index_patterns set to [index].
func IndexTemplate(index string) ([]byte, error) {
	var t map[string]json.RawMessage
	if err := json.Unmarshal(indexTemplate, &t); err != nil {
		return nil, fmt.Errorf("embedded index template: %w", err)
	}
	p, err := json.Marshal([]string{index})
	if err != nil {
		return nil, err
	}
	t["index_patterns"] = p
	return json.Marshal(t)
}
