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

// TemplateOptions shape the installed template.
type TemplateOptions struct {
	DataStream bool   // add "data_stream": {} (the target is a data stream)
	ILMPolicy  string // set index.lifecycle.name ("" for none)
}

// IndexTemplate returns the index template body for index: the embedded
// index-template.json with index_patterns set to [index], and o applied.
func IndexTemplate(index string, o TemplateOptions) ([]byte, error) {
	var t map[string]json.RawMessage
	if err := json.Unmarshal(indexTemplate, &t); err != nil {
		return nil, fmt.Errorf("embedded index template: %w", err)
	}
	p, err := json.Marshal([]string{index})
	if err != nil {
		return nil, err
	}
	t["index_patterns"] = p
	if o.DataStream {
		t["data_stream"] = json.RawMessage(`{}`)
	}
	if o.ILMPolicy != "" {
		var tmpl map[string]any
		if err := json.Unmarshal(t["template"], &tmpl); err != nil {
			return nil, fmt.Errorf("embedded index template: %w", err)
		}
		settings, _ := tmpl["settings"].(map[string]any)
		if settings == nil {
			settings = map[string]any{}
			tmpl["settings"] = settings
		}
		idx, _ := settings["index"].(map[string]any)
		if idx == nil {
			idx = map[string]any{}
			settings["index"] = idx
		}
		idx["lifecycle"] = map[string]any{"name": o.ILMPolicy}
		if t["template"], err = json.Marshal(tmpl); err != nil {
			return nil, err
		}
	}
	return json.Marshal(t)
}
