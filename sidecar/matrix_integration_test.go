//go:build integration

package sidecar

import (
	"net/http"
	"slices"
	"testing"

	"github.com/beacongrid/beacongrid/alert"
)

// TestIntegrationLegacySpoolLines: after an upgrade the spool still holds
// lines with the array matrix, followed by new ones. Real Elasticsearch
// gets all of them, each with the string matrix holding the same cells.
func TestIntegrationLegacySpoolLines(t *testing.T) {
	url, index := itES(t)
	dir := t.TempDir()
	want := upgradeSpool(t, dir, browserAlert, 300, 20, 400, 20)
	cfg := testConfig(dir, url)
	cfg.Index = index
	if sent := itDrain(t, cfg); sent != len(want) {
		t.Fatalf("indexed %d, want %d", sent, len(want))
	}
	if got := itCount(t, url, index); got != len(want) {
		t.Fatalf("_count = %d, want %d", got, len(want))
	}
	if dls := readDeadLetters(t, dir); len(dls) != 0 {
		t.Fatalf("%d dead letters: %+v", len(dls), dls[0])
	}
	for _, a := range want {
		var got struct {
			Source struct {
				Beacon struct {
					Matrix any `json:"matrix"`
				} `json:"beacon"`
			} `json:"_source"`
		}
		esDo(t, http.MethodGet, url+"/"+index+"/_doc/"+a.Event.ID, nil, &got)
		s, ok := got.Source.Beacon.Matrix.(string)
		if !ok {
			t.Fatalf("alert %s: _source beacon.matrix is %T, want the string form", a.Event.ID, got.Source.Beacon.Matrix)
		}
		cells := make([]uint16, alert.MatrixLen)
		if err := alert.ParseMatrix(cells, []byte(s)); err != nil || !slices.Equal(cells, a.Beacon.Matrix) {
			t.Fatalf("alert %s: matrix in Elasticsearch differs (%v)", a.Event.ID, err)
		}
	}
}
