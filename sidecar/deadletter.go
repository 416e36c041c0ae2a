package sidecar

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/beacongrid/beacongrid/spool"
)

// DeadLetterFile is the name, in the spool directory, of the file that
// receives spool lines the sidecar cannot deliver: one JSON DeadLetter per
// line, appended and fsynced before the spool position moves past them. The
// spool ignores it (it is not a segment). Nothing reads or trims it: it is
// for an analyst or operator to inspect, fix and replay.
const DeadLetterFile = "dead-letter.jsonl"

// Dead-letter reasons.
const (
	ReasonMalformed = "malformed" // not a JSON object with a non-empty event.id
	ReasonRejected  = "rejected"  // Elasticsearch refused it with status 400
)

// DeadLetter is one undeliverable spool line and why.
type DeadLetter struct {
	Time      time.Time      `json:"time"`
	Reason    string         `json:"reason"`
	Error     string         `json:"error"`
	Status    int            `json:"status,omitempty"`
	ErrorType string         `json:"error_type,omitempty"`
	Index     string         `json:"index,omitempty"`
	ID        string         `json:"id,omitempty"`
	Position  spool.Position `json:"spool_position"` // just after the line
	Line      string         `json:"line"`           // the spool line, verbatim
}

// appendDeadLetters appends dls to path and fsyncs. It returns only once
// they are durable.
func appendDeadLetters(path string, dls []DeadLetter) error {
	if len(dls) == 0 {
		return nil
	}
	var buf []byte
	for _, dl := range dls {
		b, err := json.Marshal(dl)
		if err != nil {
			return fmt.Errorf("dead letter: %w", err)
		}
		buf = append(append(buf, b...), '\n')
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("dead letter: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("dead letter: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	return nil
}

func deadLetterPath(spoolDir string) string { return filepath.Join(spoolDir, DeadLetterFile) }
