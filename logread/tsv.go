package logread

import (
	"bytes"
	"errors"
	"fmt"
)

// tsvState is the header state of a Zeek ASCII log. Header lines may appear
// again mid-file (concatenated logs); each #fields line replaces the field
// list.
type tsvState struct {
	sep    []byte
	setSep []byte
	empty  []byte
	unset  []byte
	path   []byte

	names    []byte // all field names, back to back
	nameEnds []int  // end offset of each name in names
	values   [][]byte
	unesc    []byte // scratch for unescaped values
}

func (t *tsvState) reset() {
	t.sep = append(t.sep[:0], '\t')
	t.setSep = append(t.setSep[:0], ',')
	t.empty = append(t.empty[:0], "(empty)"...)
	t.unset = append(t.unset[:0], '-')
	t.path = t.path[:0]
	t.names = t.names[:0]
	t.nameEnds = t.nameEnds[:0]
}

func (t *tsvState) name(i int) []byte {
	start := 0
	if i > 0 {
		start = t.nameEnds[i-1]
	}
	return t.names[start:t.nameEnds[i]]
}

var (
	hdrSeparator = []byte("#separator")
	hdrSetSep    = []byte("#set_separator")
	hdrEmpty     = []byte("#empty_field")
	hdrUnset     = []byte("#unset_field")
	hdrPath      = []byte("#path")
	hdrFields    = []byte("#fields")
)

// tsvLine handles one non-blank line: a header line (rec=false) or a record.
func (r *Reader) tsvLine(line []byte, fn func(key, value []byte)) (rec bool, err error) {
	t := &r.tsv
	if line[0] == '#' {
		return false, t.header(line)
	}
	if len(t.nameEnds) == 0 {
		return false, errors.New("data line before any #fields header")
	}
	t.values = t.values[:0]
	rest := line
	for {
		i := bytes.Index(rest, t.sep)
		if i < 0 {
			t.values = append(t.values, rest)
			break
		}
		t.values = append(t.values, rest[:i])
		rest = rest[i+len(t.sep):]
	}
	if len(t.values) != len(t.nameEnds) {
		return false, fmt.Errorf("%d fields, the #fields header has %d", len(t.values), len(t.nameEnds))
	}
	for i, v := range t.values {
		if bytes.Equal(v, t.unset) || bytes.Equal(v, t.empty) {
			continue
		}
		if bytes.Contains(v, escPrefix) {
			t.unesc = unescape(t.unesc[:0], v)
			v = t.unesc
		}
		fn(t.name(i), v)
	}
	return true, nil
}

// header interprets a '#' line. Unknown '#' lines (#open, #close, #types,
// comments) are ignored.
func (t *tsvState) header(line []byte) error {
	if hasDirective(line, hdrSeparator) {
		// "#separator \x09": the one header separated by a space, since the
		// separator is not known yet.
		v := bytes.TrimSpace(line[len(hdrSeparator):])
		if len(v) == 0 {
			return errors.New("#separator header without a value")
		}
		t.reset()
		t.sep = unescape(t.sep[:0], v)
		return nil
	}
	key, val, ok := t.directive(line)
	if !ok {
		return nil
	}
	switch {
	case bytes.Equal(key, hdrSetSep):
		t.setSep = unescape(t.setSep[:0], val)
	case bytes.Equal(key, hdrEmpty):
		t.empty = unescape(t.empty[:0], val)
	case bytes.Equal(key, hdrUnset):
		t.unset = unescape(t.unset[:0], val)
	case bytes.Equal(key, hdrPath):
		t.path = append(t.path[:0], val...)
	case bytes.Equal(key, hdrFields):
		t.names = t.names[:0]
		t.nameEnds = t.nameEnds[:0]
		for len(val) > 0 {
			i := bytes.Index(val, t.sep)
			var f []byte
			if i < 0 {
				f, val = val, nil
			} else {
				f, val = val[:i], val[i+len(t.sep):]
			}
			if len(f) == 0 {
				return errors.New("#fields header with an empty field name")
			}
			t.names = append(t.names, f...)
			t.nameEnds = append(t.nameEnds, len(t.names))
		}
		if len(t.nameEnds) == 0 {
			return errors.New("#fields header without field names")
		}
	}
	return nil
}

// hasDirective reports whether line is "#name" followed by a space, a tab or
// the end of the line.
func hasDirective(line, name []byte) bool {
	if !bytes.HasPrefix(line, name) {
		return false
	}
	rest := line[len(name):]
	return len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t'
}

// directive splits "#key<sep>value".
func (t *tsvState) directive(line []byte) (key, val []byte, ok bool) {
	i := bytes.Index(line, t.sep)
	if i < 0 {
		return line, nil, false
	}
	return line[:i], line[i+len(t.sep):], true
}

var escPrefix = []byte(`\x`)

// unescape appends v to dst with Zeek's \xHH escapes decoded. Anything that
// is not a complete \xHH sequence is copied as is.
func unescape(dst, v []byte) []byte {
	for len(v) > 0 {
		i := bytes.Index(v, escPrefix)
		if i < 0 || i+4 > len(v) {
			return append(dst, v...)
		}
		dst = append(dst, v[:i]...)
		hi, ok1 := unhex(v[i+2])
		lo, ok2 := unhex(v[i+3])
		if ok1 && ok2 {
			dst = append(dst, hi<<4|lo)
		} else {
			dst = append(dst, v[i:i+4]...)
		}
		v = v[i+4:]
	}
	return dst
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
