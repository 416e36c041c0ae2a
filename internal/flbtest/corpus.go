package flbtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ReadFuzzCorpus reads the []byte inputs of a Go fuzz corpus directory
// (files in the "go test fuzz v1" format holding one []byte value each,
// such as plugin/chunk/testdata/fuzz/FuzzReader), by file name.
func ReadFuzzCorpus(dir string) (map[string][]byte, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("flbtest: no fuzz corpus in %s", dir)
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		lines := strings.SplitN(string(b), "\n", 3)
		if len(lines) < 2 || lines[0] != "go test fuzz v1" {
			return nil, fmt.Errorf("flbtest: %s: not a corpus file", p)
		}
		v := strings.TrimSpace(lines[1])
		if !strings.HasPrefix(v, "[]byte(") || !strings.HasSuffix(v, ")") {
			return nil, fmt.Errorf("flbtest: %s: not a []byte input", p)
		}
		s, err := strconv.Unquote(v[len("[]byte(") : len(v)-1])
		if err != nil {
			return nil, fmt.Errorf("flbtest: %s: %w", p, err)
		}
		out[filepath.Base(p)] = []byte(s)
	}
	return out, nil
}
