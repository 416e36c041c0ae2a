// Package logread reads network log files record by record: Zeek TSV logs
// (with #separator/#fields headers), Zeek JSON logs and other JSON-lines
// logs, each optionally gzip-compressed. The compression and the format are
// detected from the content, not from the file name.
//
// A Reader hands every present field of a record to a callback as a key and
// a textual value, without allocating per field:
//
//	r, err := logread.Open("conn.log.gz")
//	if err != nil { ... }
//	defer r.Close()
//	for {
//		ok, err := r.Next(func(key, value []byte) { ... })
//		if err != nil {
//			if logread.IsLineError(err) {
//				skipped++ // one malformed line; the reader goes on
//				continue
//			}
//			return err // I/O or decompression error: fatal
//		}
//		if !ok {
//			break // end of file
//		}
//	}
//
// Field names are the ones in the file: Zeek's dotted names such as
// "id.orig_h" in both Zeek formats; nested JSON objects are flattened to
// dotted keys ({"source":{"ip":"1.2.3.4"}} gives "source.ip").
package logread

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
)

// Kind is the format of a log file.
type Kind string

// The formats a Reader understands.
const (
	// KindUnknown is reported before the format is known (empty input).
	KindUnknown Kind = ""
	// KindZeekTSV is Zeek's ASCII log format: tab-separated values
	// described by #separator, #fields and related header lines.
	KindZeekTSV Kind = "zeek-tsv"
	// KindJSON is one JSON object per line (Zeek's JSON logs, ECS/Filebeat
	// exports, any JSON-lines file).
	KindJSON Kind = "json"
)

// MaxLineBytes is the longest line a Reader accepts. A longer line is
// skipped and reported as a *LineError.
const MaxLineBytes = 16 << 20

// LineError reports one malformed line. The reader has skipped that line and
// the next call to Next continues with the line after it.
type LineError struct {
	Path string
	Line int
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// IsLineError reports whether err is (or wraps) a *LineError, i.e. whether
// the caller may count it and call Next again.
func IsLineError(err error) bool {
	var le *LineError
	return errors.As(err, &le)
}

// Reader reads records from one log file. It is not safe for concurrent use.
type Reader struct {
	path   string
	closer []io.Closer
	br     *bufio.Reader
	line   int // physical line number of the last line read
	kind   Kind
	fatal  error // sticky I/O error
	eof    bool

	long []byte // assembly buffer for lines longer than the bufio buffer

	tsv  tsvState
	json jsonState
}

// Open opens the file at path. Gzip compression is recognised by its magic
// bytes; the log format by the first non-empty line ('#' for Zeek TSV, '{'
// for JSON). The path "-" reads standard input.
func Open(path string) (*Reader, error) {
	if path == "-" {
		return NewReader(os.Stdin, "-")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := NewReader(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	r.closer = append(r.closer, f)
	return r, nil
}

// NewReader reads a log from rd; name is used in errors and by Path. Closing
// the Reader does not close rd.
func NewReader(rd io.Reader, name string) (*Reader, error) {
	r := &Reader{path: name}
	br := bufio.NewReaderSize(rd, 256<<10)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: gzip: %w", name, err)
		}
		r.closer = append(r.closer, zr)
		br = bufio.NewReaderSize(zr, 256<<10)
	}
	r.br = br
	r.tsv.reset()
	if err := r.detect(); err != nil {
		return nil, err
	}
	return r, nil
}

// detect peeks at the first non-blank byte to choose the format.
func (r *Reader) detect() error {
	for n := 512; ; n *= 2 {
		buf, err := r.br.Peek(n)
		// Blanks and a UTF-8 byte order mark may precede the first line.
		trimmed := bytes.TrimLeft(buf, " \t\r\n\ufeff")
		if len(trimmed) > 0 {
			switch trimmed[0] {
			case '#':
				r.kind = KindZeekTSV
			case '{':
				r.kind = KindJSON
			default:
				return fmt.Errorf("%s: unknown log format (want Zeek TSV starting with '#' or JSON lines starting with '{')", r.path)
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, bufio.ErrBufferFull) {
				if errors.Is(err, io.EOF) {
					return nil // empty or blank input: Next reports EOF
				}
				return fmt.Errorf("%s: unknown log format (only blanks in the first %d bytes)", r.path, len(buf))
			}
			return fmt.Errorf("%s: %w", r.path, err)
		}
	}
}

// Path returns the name the Reader was opened with.
func (r *Reader) Path() string { return r.path }

// Line returns the 1-based number of the line last read: the line of the
// record last returned by Next, or of the line an error refers to.
func (r *Reader) Line() int { return r.line }

// Kind returns the detected format.
func (r *Reader) Kind() Kind { return r.kind }

// Close releases the file and the decompressor.
func (r *Reader) Close() error {
	var first error
	for i := len(r.closer) - 1; i >= 0; i-- {
		if err := r.closer[i].Close(); err != nil && first == nil {
			first = err
		}
	}
	r.closer = nil
	return first
}

// Next reads the next record and calls fn once for each present field, in
// file order, with the field name and its value as text. Unset and empty
// Zeek fields ("-" and "(empty)") and JSON nulls are not passed. The slices
// are valid only during the call to fn.
//
// Next returns ok=false and a nil error at the end of the input. A malformed
// line gives ok=false and a *LineError (fn was not called for it); the next
// call continues with the following line. Any other error is fatal and is
// returned again by every later call.
func (r *Reader) Next(fn func(key, value []byte)) (ok bool, err error) {
	for {
		if r.fatal != nil {
			return false, r.fatal
		}
		if r.eof {
			return false, nil
		}
		line, err := r.readLine()
		if err != nil {
			return false, err
		}
		if line == nil {
			continue // a blank line, or the end (r.eof set)
		}
		var rec bool
		switch r.kind {
		case KindZeekTSV:
			rec, err = r.tsvLine(line, fn)
		case KindJSON:
			rec, err = r.jsonLine(line, fn)
		default:
			err = errors.New("unknown log format")
		}
		if err != nil {
			return false, &LineError{Path: r.path, Line: r.line, Err: err}
		}
		if rec {
			return true, nil
		}
	}
}

// readLine returns the next line without its line ending, or nil for a
// blank line and at the end of input (then r.eof is set). An over-long line
// is consumed and reported as a *LineError.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		r.long = append(r.long[:0], line...)
		tooLong := false
		for err == bufio.ErrBufferFull {
			line, err = r.br.ReadSlice('\n')
			if !tooLong {
				r.long = append(r.long, line...)
				if len(r.long) > MaxLineBytes {
					tooLong = true
					r.long = r.long[:0]
				}
			}
		}
		if tooLong {
			r.line++
			if err != nil && err != io.EOF {
				r.fatal = fmt.Errorf("%s:%d: %w", r.path, r.line, err)
				return nil, r.fatal
			}
			if err == io.EOF {
				r.eof = true
			}
			return nil, &LineError{Path: r.path, Line: r.line, Err: fmt.Errorf("line longer than %d bytes", MaxLineBytes)}
		}
		line = r.long
	}
	if err != nil {
		if err != io.EOF {
			r.line++
			r.fatal = fmt.Errorf("%s:%d: %w", r.path, r.line, err)
			return nil, r.fatal
		}
		r.eof = true
		if len(line) == 0 {
			return nil, nil
		}
	}
	r.line++
	line = bytes.TrimRight(line, "\r\n")
	if r.line == 1 {
		line = bytes.TrimPrefix(line, []byte("\xef\xbb\xbf"))
	}
	if len(line) == 0 || isBlank(line) {
		return nil, nil
	}
	return line, nil
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}
