package plugin_test

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/beacongrid/beacongrid/internal/flbtest"
)

// Every chunk of the reader's fuzz corpus, whole and cut in half, flushed
// into the built plugin through the C host (cgo, small coroutine stacks,
// two workers): each flush returns FLB_OK, nothing panics, the process
// ends with its orderly exit.
func TestFuzzCorpusThroughHost(t *testing.T) {
	host, so := binaries(t)
	root, err := flbtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	corpus, err := flbtest.ReadFuzzCorpus(filepath.Join(root, "plugin", "chunk", "testdata", "fuzz", "FuzzReader"))
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(corpus))
	for n := range corpus {
		names = append(names, n)
	}
	sort.Strings(names)
	dir := t.TempDir()
	var chunks []flbtest.Chunk
	for _, n := range names {
		data := corpus[n]
		for i, part := range [][]byte{data, data[:len(data)/2]} {
			if len(part) == 0 {
				continue // the host flushes no empty chunk files
			}
			p := filepath.Join(dir, n+"-"+string(rune('a'+i)))
			if err := os.WriteFile(p, part, 0o644); err != nil {
				t.Fatal(err)
			}
			chunks = append(chunks, flbtest.Chunk{Instance: 0, Tag: "fuzz", File: p})
		}
	}
	res, err := run(t, flbtest.HostOptions{
		Host: host, Plugin: so, Workers: 2,
		Instances: []flbtest.Instance{{Name: "beacongrid", Props: map[string]string{"spool_dir": filepath.Join(dir, "spool"), "instance_name": "fuzz"}}},
		Chunks:    chunks,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Stderr)
	}
	if res.RCOK != int64(len(chunks)) || res.RCError != 0 || strings.Contains(res.Stderr, "panic") {
		t.Fatalf("%d chunks: ok=%d error=%d\n%s", len(chunks), res.RCOK, res.RCError, res.Stderr)
	}
	if !res.Done || res.Status != 0 || len(res.Exits) != 1 {
		t.Fatalf("no orderly exit: done %v status %d exits %v", res.Done, res.Status, res.Exits)
	}
	t.Logf("%d corpus chunks flushed", len(chunks))
}
