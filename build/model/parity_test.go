package model

import (
	"encoding/csv"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

// parityTolerance is the largest difference allowed between leaves' score in
// Go and LightGBM's Booster.predict in Python for the same row.
const parityTolerance = 1e-9

// TestParity scores rows through the Go model and compares each with the
// prediction LightGBM itself made for the row (build/train/predict.py).
//
// By default it uses the committed testdata/parity_model.{txt,json} and
// testdata/parity.csv. `make parity` runs LightGBM live and points the test at
// the fresh output with two variables (absolute paths, since go test runs in
// the package directory):
//
//	BEACONGRID_PARITY_CSV    predictions CSV written by predict.py
//	BEACONGRID_PARITY_MODEL  model text it scored with (metadata: same path, .json)
//
// A variable that is set must name an existing file: the test fails rather
// than skips, so a broken `make parity` cannot pass quietly.
func TestParity(t *testing.T) {
	csvPath := envOr("BEACONGRID_PARITY_CSV", "testdata/parity.csv")
	txtPath := envOr("BEACONGRID_PARITY_MODEL", "testdata/parity_model.txt")
	jsonPath := strings.TrimSuffix(txtPath, ".txt") + ".json"

	m, err := Load(txtPath, jsonPath)
	if err != nil {
		t.Fatalf("load model: %v", err)
	}
	names, cases, rows, want, err := readParityCSV(csvPath)
	if err != nil {
		t.Fatalf("read %s: %v", csvPath, err)
	}
	if err := m.CheckFeatures(names); err != nil {
		t.Fatalf("%s does not match the model: %v", csvPath, err)
	}
	if len(rows) == 0 {
		t.Fatalf("%s has no rows", csvPath)
	}

	var maxDiff float64
	exact, failed := 0, 0
	for i, row := range rows {
		got := m.Predict(row)
		d := math.Abs(got - want[i])
		if !(d <= parityTolerance) { // also catches NaN
			failed++
			if failed <= 20 {
				t.Errorf("row %d (%s): leaves %.17g, LightGBM %.17g, diff %.3g", i+2, cases[i], got, want[i], d)
			}
			continue
		}
		maxDiff = math.Max(maxDiff, d)
		if math.Float64bits(got) == math.Float64bits(want[i]) {
			exact++
		}
	}
	if failed > 20 {
		t.Errorf("... %d rows differ in all", failed)
	}
	t.Logf("parity: model %s, %d rows from %s: %d bit-identical, max |diff| %.3g (tolerance %g)",
		m.Version(), len(rows), csvPath, exact, maxDiff, parityTolerance)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// readParityCSV reads predict.py output: case, the features, prediction.
func readParityCSV(path string) (names, cases []string, rows [][]float64, want []float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.ReuseRecord = false
	header, err := r.Read()
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if len(header) < 3 || header[0] != "case" || header[len(header)-1] != "prediction" {
		return nil, nil, nil, nil, &csv.ParseError{Line: 1, Err: errBadHeader}
	}
	names = header[1 : len(header)-1]
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, nil, nil, err
		}
		line, _ := r.FieldPos(0)
		row := make([]float64, len(names))
		for j := range names {
			if row[j], err = strconv.ParseFloat(rec[j+1], 64); err != nil {
				return nil, nil, nil, nil, &csv.ParseError{Line: line, Column: j + 2, Err: err}
			}
		}
		p, err := strconv.ParseFloat(rec[len(rec)-1], 64)
		if err != nil {
			return nil, nil, nil, nil, &csv.ParseError{Line: line, Column: len(rec), Err: err}
		}
		cases = append(cases, rec[0])
		rows = append(rows, row)
		want = append(want, p)
	}
	return names, cases, rows, want, nil
}

var errBadHeader = parityError("header must be: case, <features...>, prediction")

type parityError string

func (e parityError) Error() string { return string(e) }
