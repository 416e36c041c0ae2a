package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Matrix is the flow's 24 x 60 matrix: MatrixLen per-minute request counts,
// index = hour*60+minute. In JSON it is one string in the run-length form
// below (AppendMatrix, ParseMatrix); docs/alert-schema.md describes it for
// readers in other languages.
//
// The form is a comma-separated list of tokens, read left to right from
// minute 0. A token is a count, or a count, "*" and a repeat:
//
//	token  = count | count "*" repeat
//	count  = "" | [1-9][0-9]*     ("" is 0; at most 65535)
//	repeat = [2-9] | [1-9][0-9]+  (2..1440)
//
// A plain count fills one minute, "c*k" fills k minutes with c, and the
// tokens fill exactly MatrixLen minutes. So a matrix of zeros is "*1440",
// "1,,,,2" is 1, 0, 0, 0, 2, and "3*60,*1380" is 3 in every minute of the
// first hour. AppendMatrix writes a run as "c*k" only where that is shorter
// than k plain tokens, so each matrix has one encoding.
//
// UnmarshalJSON also reads the JSON array of numbers that alerts held
// before this form (spool lines written by an older plugin), and null.
type Matrix []uint16

// MarshalText implements encoding.TextMarshaler: encoding/json writes the
// run-length form as a JSON string (cheaper than a MarshalJSON, whose
// output encoding/json would scan and compact again). It fails unless the
// matrix has MatrixLen cells. Alert's field is omitempty, so an alert
// without a matrix has no beacon.matrix.
func (m Matrix) MarshalText() ([]byte, error) {
	return AppendMatrix(make([]byte, 0, encodedLenHint), m)
}

// encodedLenHint is the buffer MarshalText starts with: enough for a
// beacon every few minutes without growing.
const encodedLenHint = 1536

// UnmarshalJSON implements json.Unmarshaler: a string in the run-length
// form, the legacy array of MatrixLen numbers, or null.
func (m *Matrix) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*m = nil
		return nil
	case len(b) > 0 && b[0] == '[':
		var cells []uint16
		if err := json.Unmarshal(b, &cells); err != nil {
			return fmt.Errorf("beacon.matrix: %w", err)
		}
		if len(cells) != MatrixLen {
			return fmt.Errorf("beacon.matrix: array of %d numbers, want %d", len(cells), MatrixLen)
		}
		*m = cells
		return nil
	case len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"':
		s := b[1 : len(b)-1]
		if bytes.IndexByte(s, '\\') >= 0 { // escaped characters: let encoding/json unquote
			var str string
			if err := json.Unmarshal(b, &str); err != nil {
				return fmt.Errorf("beacon.matrix: %w", err)
			}
			s = []byte(str)
		}
		cells := make(Matrix, MatrixLen)
		if err := ParseMatrix(cells, s); err != nil {
			return err
		}
		*m = cells
		return nil
	}
	return errors.New("beacon.matrix: want a string, an array of numbers or null")
}

// AppendMatrix appends the run-length form of m (see Matrix) to dst. m must
// have MatrixLen cells.
func AppendMatrix(dst []byte, m []uint16) ([]byte, error) {
	if len(m) != MatrixLen {
		return dst, fmt.Errorf("beacon.matrix: %d cells, want %d", len(m), MatrixLen)
	}
	for i := 0; i < len(m); {
		c := m[i]
		j := i + 1
		for j < len(m) && m[j] == c {
			j++
		}
		k := j - i
		if i > 0 {
			dst = append(dst, ',')
		}
		d := countDigits(c)
		// k plain tokens cost k*d+k-1 bytes; one run costs d+1+digits(k).
		if k > 1 && d+1+countDigits(uint16(k)) < k*d+k-1 {
			dst = appendCount(dst, c)
			dst = append(dst, '*')
			dst = strconv.AppendUint(dst, uint64(k), 10)
		} else {
			for r := 0; r < k; r++ {
				if r > 0 {
					dst = append(dst, ',')
				}
				dst = appendCount(dst, c)
			}
		}
		i = j
	}
	return dst, nil
}

func appendCount(dst []byte, c uint16) []byte {
	switch {
	case c == 0:
		return dst
	case c < 10:
		return append(dst, '0'+byte(c))
	case c < 100:
		return append(dst, '0'+byte(c/10), '0'+byte(c%10))
	}
	return strconv.AppendUint(dst, uint64(c), 10)
}

// countDigits is the length of c as a count token: 0 for zero.
func countDigits(c uint16) int {
	switch {
	case c == 0:
		return 0
	case c < 10:
		return 1
	case c < 100:
		return 2
	case c < 1000:
		return 3
	case c < 10000:
		return 4
	}
	return 5
}

// ParseMatrix decodes the run-length form s (see Matrix) into dst, which
// must have MatrixLen cells. It accepts only the grammar of Matrix and
// fails unless the tokens fill exactly MatrixLen minutes; it allocates
// nothing unless it fails.
func ParseMatrix(dst []uint16, s []byte) error {
	if len(dst) != MatrixLen {
		return fmt.Errorf("beacon.matrix: decoding into %d cells, want %d", len(dst), MatrixLen)
	}
	return parseMatrix(dst, s)
}

// CheckMatrix reports whether s is a valid run-length form, as ParseMatrix
// would, without decoding it.
func CheckMatrix(s []byte) error { return parseMatrix(nil, s) }

// parseMatrix is ParseMatrix, filling dst unless it is nil.
func parseMatrix(dst []uint16, s []byte) error {
	const (
		badCount  = "count is not empty or 1..65535 without leading zeros"
		badRepeat = "repeat is not 2..1440 without leading zeros"
	)
	minute, i := 0, 0
	for tok := 0; ; tok++ {
		start := i
		c := 0
		for i < len(s) && s[i]-'0' <= 9 {
			c = c*10 + int(s[i]-'0')
			i++
			if c > 65535 {
				return matrixError(tok, s[start:], minute, badCount)
			}
		}
		if i > start && s[start] == '0' {
			return matrixError(tok, s[start:], minute, badCount)
		}
		n := 1
		if i < len(s) && s[i] == '*' {
			i++
			rs, k := i, 0
			for i < len(s) && s[i]-'0' <= 9 {
				k = k*10 + int(s[i]-'0')
				i++
				if k > MatrixLen {
					return matrixError(tok, s[start:], minute, badRepeat)
				}
			}
			if k < 2 || s[rs] == '0' {
				return matrixError(tok, s[start:], minute, badRepeat)
			}
			n = k
		}
		if i < len(s) && s[i] != ',' {
			if s[i] == '*' {
				return matrixError(tok, s[start:], minute, badRepeat)
			}
			return matrixError(tok, s[start:], minute, badCount)
		}
		if minute+n > MatrixLen {
			return matrixError(tok, s[start:], minute, "runs past minute 1439")
		}
		if dst != nil {
			v := uint16(c)
			for j := minute; j < minute+n; j++ {
				dst[j] = v
			}
		}
		minute += n
		if i == len(s) {
			break
		}
		i++ // the comma
	}
	if minute != MatrixLen {
		return fmt.Errorf("beacon.matrix: the tokens fill %d minutes, want %d", minute, MatrixLen)
	}
	return nil
}

// matrixError describes a bad token; rest is the input from the token on.
func matrixError(tok int, rest []byte, minute int, what string) error {
	t := rest
	if i := bytes.IndexByte(t, ','); i >= 0 {
		t = t[:i]
	}
	const max = 24
	if len(t) > max {
		t = append(t[:max:max], "..."...)
	}
	return fmt.Errorf("beacon.matrix: token %d %q (minute %d): %s", tok, t, minute, what)
}
