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
// A nil Matrix is JSON null. UnmarshalJSON also reads the JSON array of
// numbers that alerts held before this form (spool lines written by an
// older plugin).
type Matrix []uint16

// MarshalJSON implements json.Marshaler. It fails unless the matrix has
// MatrixLen cells (or is nil).
func (m Matrix) MarshalJSON() ([]byte, error) {
	if m == nil {
		return []byte("null"), nil
	}
	b := make([]byte, 0, 2+encodedLenHint)
	b = append(b, '"')
	b, err := AppendMatrix(b, m)
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}

// encodedLenHint is the buffer MarshalJSON starts with: enough for a
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
	if c == 0 {
		return dst
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
// nothing.
func ParseMatrix(dst []uint16, s []byte) error {
	if len(dst) != MatrixLen {
		return fmt.Errorf("beacon.matrix: decoding into %d cells, want %d", len(dst), MatrixLen)
	}
	minute := 0
	for tok := 0; ; tok++ {
		end := bytes.IndexByte(s, ',')
		last := end < 0
		if last {
			end = len(s)
		}
		t := s[:end]
		countPart, repeatPart := t, []byte(nil)
		star := bytes.IndexByte(t, '*')
		if star >= 0 {
			countPart, repeatPart = t[:star], t[star+1:]
		}
		c, ok := parseDecimal(countPart, 65535)
		if !ok {
			return matrixError(tok, t, minute, "count is not empty or 1..65535 without leading zeros")
		}
		k := 1
		if star >= 0 {
			r, ok := parseDecimal(repeatPart, MatrixLen)
			if !ok || r < 2 {
				return matrixError(tok, t, minute, "repeat is not 2..1440 without leading zeros")
			}
			k = r
		}
		if minute+k > MatrixLen {
			return matrixError(tok, t, minute, "runs past minute 1439")
		}
		for i := minute; i < minute+k; i++ {
			dst[i] = uint16(c)
		}
		minute += k
		if last {
			break
		}
		s = s[end+1:]
	}
	if minute != MatrixLen {
		return fmt.Errorf("beacon.matrix: the tokens fill %d minutes, want %d", minute, MatrixLen)
	}
	return nil
}

// parseDecimal reads b as a decimal without sign or leading zeros, at most
// limit; "" is 0. It reports false for anything else.
func parseDecimal(b []byte, limit int) (int, bool) {
	if len(b) == 0 {
		return 0, true
	}
	if len(b) > 5 || b[0] == '0' {
		return 0, false
	}
	n := 0
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int(ch-'0')
	}
	return n, n <= limit
}

func matrixError(tok int, t []byte, minute int, what string) error {
	const max = 24
	if len(t) > max {
		t = append(t[:max:max], "..."...)
	}
	return fmt.Errorf("beacon.matrix: token %d %q (minute %d): %s", tok, t, minute, what)
}
