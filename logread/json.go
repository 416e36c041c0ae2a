package logread

import (
	"fmt"

	"github.com/valyala/fastjson"
)

// jsonState holds the parser and scratch buffers reused across lines.
type jsonState struct {
	p   fastjson.Parser
	key []byte // dotted key being built
	val []byte // scratch for numbers and joined arrays
}

// jsonLine parses one JSON object and passes its flattened fields to fn.
func (r *Reader) jsonLine(line []byte, fn func(key, value []byte)) (bool, error) {
	j := &r.json
	v, err := j.p.ParseBytes(line)
	if err != nil {
		return false, fmt.Errorf("invalid JSON: %w", err)
	}
	if v.Type() != fastjson.TypeObject {
		return false, fmt.Errorf("JSON %s where an object was expected", v.Type())
	}
	o, _ := v.Object()
	j.key = j.key[:0]
	// visit is called for each member of the object being flattened; j.key
	// holds that object's prefix ("" or "a.b."). The parser bounds the
	// nesting depth. A local closure keeps fn from escaping to the heap.
	var visit func(k []byte, v *fastjson.Value)
	visit = func(k []byte, v *fastjson.Value) {
		prefix := len(j.key)
		j.key = append(j.key, k...)
		switch v.Type() {
		case fastjson.TypeNull:
		case fastjson.TypeObject:
			j.key = append(j.key, '.')
			o, _ := v.Object()
			o.Visit(visit)
		case fastjson.TypeArray:
			j.val = appendArray(j.val[:0], v)
			if len(j.val) > 0 {
				fn(j.key, j.val)
			}
		case fastjson.TypeString:
			s, _ := v.StringBytes()
			fn(j.key, s)
		default: // number, true, false: their literal text
			j.val = v.MarshalTo(j.val[:0])
			fn(j.key, j.val)
		}
		j.key = j.key[:prefix]
	}
	o.Visit(visit)
	return true, nil
}

// appendArray joins the scalar elements of an array, and of arrays nested in
// it, with commas (Zeek's set separator); nulls and objects are left out.
func appendArray(dst []byte, v *fastjson.Value) []byte {
	return appendElems(dst, v, len(dst))
}

func appendElems(dst []byte, v *fastjson.Value, start int) []byte {
	a, _ := v.Array()
	for _, e := range a {
		switch e.Type() {
		case fastjson.TypeNull, fastjson.TypeObject:
			continue
		case fastjson.TypeArray:
			dst = appendElems(dst, e, start)
			continue
		}
		if len(dst) > start {
			dst = append(dst, ',')
		}
		if e.Type() == fastjson.TypeString {
			s, _ := e.StringBytes()
			dst = append(dst, s...)
		} else {
			dst = e.MarshalTo(dst)
		}
	}
	return dst
}
