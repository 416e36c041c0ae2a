package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/alert"
)

// EnvSkipBrowser, set to 1, lets TestBrowserHeatmap skip when no Chromium
// is installed (local runs only). Without it a missing Chromium fails the
// test, so CI cannot pass without having drawn the page.
const EnvSkipBrowser = "BEACONGRID_SKIP_BROWSER"

func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("BEACONGRID_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv(EnvSkipBrowser) == "1" {
		t.Skip("no chromium on PATH and " + EnvSkipBrowser + "=1")
	}
	t.Fatal("no chromium on PATH: install Debian's chromium package (apt-get install -y chromium), " +
		"or set " + EnvSkipBrowser + "=1 to skip this test locally")
	return ""
}

// runChromium runs headless Chromium on url with extra flags and returns
// its standard output.
func runChromium(t *testing.T, bin, url string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--hide-scrollbars", "--force-device-scale-factor=1", "--window-size=1000,1000",
		"--virtual-time-budget=30000", "--user-data-dir=" + t.TempDir()}, extra...)
	cmd := exec.CommandContext(ctx, bin, append(args, url)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", extra, err, stderr.String())
	}
	return stdout.Bytes()
}

// browserAlert is alert i with a matrix whose every cell is known: zero in
// most minutes, a count in others, a few large counts (65535 once), and a
// run of one count over the last half hour, so that its string form has
// plain tokens, runs of zeros ("*6") and a run of a count ("9*30").
func browserAlert(i int) alert.Alert {
	a := testAlert(i)
	m := make([]uint16, alert.MatrixLen)
	for k := range m {
		switch {
		case k >= 23*60+30:
			m[k] = 9
		case k == 100:
			m[k] = 65535
		case (k+i)%7 == 0:
			m[k] = uint16(1 + (k/60)%5)
		case k%97 == 3:
			m[k] = 60
		}
	}
	a.Beacon.Matrix = m
	if s, _ := alert.AppendMatrix(nil, m); !strings.Contains(string(s), "*6,") || !strings.HasSuffix(string(s), ",9*30") {
		panic("browserAlert: the matrix no longer has every kind of token: " + string(s))
	}
	a.Timestamp = a.Timestamp.Add(time.Duration(i) * time.Minute)
	return a
}

type renderedCell struct {
	h, m, n int
	x, y    float64
	fill    string
}

var (
	heatmapRe = regexp.MustCompile(`<div class="heatmap" data-id="([^"]+)"[^>]*?data-plot="([0-9.,-]+)" data-cell="([0-9,]+)"`)
	cellRe    = regexp.MustCompile(`<path[^>]*aria-label="h=(\d+) m=(\d+) n=(\d+)"[^>]*>`)
	attrRe    = regexp.MustCompile(` (d|fill)="([^"]*)"`)
	moveRe    = regexp.MustCompile(`^M([0-9.]+),([0-9.]+)h`)
)

// TestBrowserHeatmap loads the alerts page in headless Chromium and checks
// that each alert's heatmap has one cell per minute holding exactly the
// alert's count, at the right place, coloured from the count (the rendered
// SVG), and that a screenshot shows those colours at those places.
func TestBrowserHeatmap(t *testing.T) {
	bin := chromiumPath(t)
	rec := NewRecent(10)
	alerts := []alert.Alert{browserAlert(1), browserAlert(2), browserAlert(3)}
	for _, a := range alerts {
		rec.Add([]Document{{ID: a.Event.ID, Source: alertLine(t, a)}})
	}
	const token = "browser-test-token"
	srv := httptest.NewServer(WebHandler(token, rec))
	defer srv.Close()
	url := srv.URL + "/ui/#token=" + token

	dom := string(runChromium(t, bin, url, "--dump-dom"))
	if !strings.Contains(dom, `data-state="ready"`) {
		t.Fatalf("page did not reach the ready state:\n%.3000s", dom)
	}
	// The page lists newest first.
	byID := map[string]alert.Alert{}
	for _, a := range alerts {
		byID[a.Event.ID] = a
	}
	maps := heatmapRe.FindAllStringSubmatchIndex(dom, -1)
	if len(maps) != len(alerts) {
		t.Fatalf("%d heatmaps rendered, want %d", len(maps), len(alerts))
	}
	if got := dom[maps[0][2]:maps[0][3]]; got != alerts[2].Event.ID {
		t.Errorf("first heatmap is %s, want the newest alert %s", got, alerts[2].Event.ID)
	}
	var first []renderedCell
	var plotX, plotY float64
	for i, loc := range maps {
		id := dom[loc[2]:loc[3]]
		a, ok := byID[id]
		if !ok {
			t.Fatalf("heatmap for unknown alert %s", id)
		}
		end := len(dom)
		if i+1 < len(maps) {
			end = maps[i+1][0]
		}
		cells := parseCells(t, dom[loc[1]:end])
		checkCells(t, id, a.Beacon.Matrix, cells)
		if i == 0 {
			first = cells
			xy := strings.Split(dom[loc[4]:loc[5]], ",")
			plotX, _ = strconv.ParseFloat(xy[0], 64)
			plotY, _ = strconv.ParseFloat(xy[1], 64)
		}
	}

	// The screenshot shows the first heatmap as the SVG says: each cell's
	// centre pixel has the cell's fill.
	shot := filepath.Join(t.TempDir(), "page.png")
	runChromium(t, bin, url, "--screenshot="+shot)
	img := readPNG(t, shot)
	bad := 0
	for _, c := range first {
		px := int(plotX + c.x + 5)
		py := int(plotY + c.y + 4)
		want, err := parseHex(c.fill)
		if err != nil {
			t.Fatalf("cell h=%d m=%d: fill %q: %v", c.h, c.m, c.fill, err)
		}
		r, g, b, _ := img.At(px, py).RGBA()
		got := [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
		if colourDist(got, want) > 24 {
			if bad < 5 {
				t.Errorf("screenshot pixel (%d,%d) of cell h=%d m=%d n=%d is %v, SVG fill %s", px, py, c.h, c.m, c.n, got, c.fill)
			}
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d cells differ in the screenshot (kept: %s)", bad, len(first), keepShot(t, shot))
	}
}

func parseCells(t *testing.T, svg string) []renderedCell {
	t.Helper()
	var out []renderedCell
	for _, m := range cellRe.FindAllStringSubmatch(svg, -1) {
		c := renderedCell{}
		c.h, _ = strconv.Atoi(m[1])
		c.m, _ = strconv.Atoi(m[2])
		c.n, _ = strconv.Atoi(m[3])
		for _, a := range attrRe.FindAllStringSubmatch(m[0], -1) {
			switch a[1] {
			case "fill":
				c.fill = a[2]
			case "d":
				if tm := moveRe.FindStringSubmatch(a[2]); tm != nil {
					c.x, _ = strconv.ParseFloat(tm[1], 64)
					c.y, _ = strconv.ParseFloat(tm[2], 64)
				}
			}
		}
		out = append(out, c)
	}
	return out
}

// checkCells compares rendered cells with the matrix: one per minute, the
// same count, placed by minute (x) and hour (y), grey exactly when zero,
// and never lighter for a larger count.
func checkCells(t *testing.T, id string, matrix []uint16, cells []renderedCell) {
	t.Helper()
	if len(cells) != alert.MatrixLen {
		t.Fatalf("alert %s: %d cells rendered, want %d", id, len(cells), alert.MatrixLen)
	}
	seen := make([]bool, alert.MatrixLen)
	lum := map[int]float64{}
	for _, c := range cells {
		k := c.h*60 + c.m
		if c.h < 0 || c.h > 23 || c.m < 0 || c.m > 59 || seen[k] {
			t.Fatalf("alert %s: bad or repeated cell h=%d m=%d", id, c.h, c.m)
		}
		seen[k] = true
		if c.n != int(matrix[k]) {
			t.Fatalf("alert %s: cell %02d:%02d shows %d, matrix holds %d", id, c.h, c.m, c.n, matrix[k])
		}
		if c.x != float64(c.m*12) || c.y != float64(c.h*10) {
			t.Fatalf("alert %s: cell %02d:%02d at (%v,%v), want (%d,%d)", id, c.h, c.m, c.x, c.y, c.m*12, c.h*10)
		}
		rgb, err := parseHex(c.fill)
		if err != nil {
			t.Fatalf("alert %s: cell %02d:%02d fill %q: %v", id, c.h, c.m, c.fill, err)
		}
		if zero := c.fill == "#eef1f4"; zero != (c.n == 0) {
			t.Fatalf("alert %s: cell %02d:%02d n=%d has fill %s", id, c.h, c.m, c.n, c.fill)
		}
		if c.n > 0 {
			lum[c.n] = 0.2126*float64(rgb[0]) + 0.7152*float64(rgb[1]) + 0.0722*float64(rgb[2])
		}
	}
	prevN, prevL := 0, 1e9
	for n := 1; n <= 65535; n++ {
		l, ok := lum[n]
		if !ok {
			continue
		}
		if l > prevL {
			t.Errorf("alert %s: count %d is drawn lighter than count %d", id, n, prevN)
		}
		prevN, prevL = n, l
	}
}

var rgbRe = regexp.MustCompile(`^rgb\((\d+), ?(\d+), ?(\d+)\)$`)

// parseHex reads a colour as Vega writes it: #rrggbb or rgb(r, g, b).
func parseHex(s string) ([3]int, error) {
	var c [3]int
	if m := rgbRe.FindStringSubmatch(s); m != nil {
		for i := range c {
			c[i], _ = strconv.Atoi(m[i+1])
		}
		return c, nil
	}
	if len(s) != 7 || s[0] != '#' {
		return c, errors.New("not #rrggbb or rgb()")
	}
	for i := range c {
		v, err := strconv.ParseUint(s[1+2*i:3+2*i], 16, 8)
		if err != nil {
			return c, err
		}
		c[i] = int(v)
	}
	return c, nil
}

func colourDist(a, b [3]int) int {
	d := 0
	for i := range a {
		d = max(d, abs(a[i]-b[i]))
	}
	return d
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	return img
}

// keepShot copies a failing screenshot where it outlives the test.
func keepShot(t *testing.T, path string) string {
	dst := filepath.Join(os.TempDir(), fmt.Sprintf("beacongrid-%s.png", t.Name()))
	if b, err := os.ReadFile(path); err == nil && os.WriteFile(dst, b, 0o644) == nil {
		return dst
	}
	return path
}

// TestBrowserKibanaVegaSpec renders the Kibana heatmap's Vega spec
// (build/kibana) with the vendored Vega in headless Chromium, its
// Elasticsearch query replaced by one search hit as Kibana would pass it,
// and checks the cells against the alert's matrix as TestBrowserHeatmap does.
func TestBrowserKibanaVegaSpec(t *testing.T) {
	bin := chromiumPath(t)
	var spec string
	for _, o := range readSavedObjects(t) {
		if o.ID == "beacongrid-matrix-heatmap" {
			var vs struct {
				Params struct {
					Spec string `json:"spec"`
				} `json:"params"`
			}
			json.Unmarshal([]byte(o.str(t, "visState")), &vs)
			spec = vs.Params.Spec
		}
	}
	if spec == "" {
		t.Fatal("no Vega heatmap in the saved objects")
	}
	a := browserAlert(4)
	dom := renderKibanaSpec(t, bin, spec, map[string]any{"_id": a.Event.ID, "_source": a})
	checkCells(t, a.Event.ID, a.Beacon.Matrix, parseCells(t, dom))
	// An alert without a matrix draws no cell, and no error.
	a.Beacon.Matrix = nil
	if n := strings.Count(renderKibanaSpec(t, bin, spec, map[string]any{"_id": a.Event.ID, "_source": a}), `aria-label="h=`); n != 0 {
		t.Fatalf("an alert without a matrix drew %d cells", n)
	}
}

// renderKibanaSpec renders the Vega spec in headless Chromium with hit as
// the one search hit and returns the page's DOM once it is drawn.
func renderKibanaSpec(t *testing.T, bin, spec string, hit map[string]any) string {
	t.Helper()
	hits, _ := json.Marshal([]any{hit})
	page := `<!doctype html><html><body data-state="loading"><div id="view"></div>
<script src="/ui/vega.min.js"></script>
<script>
const spec = ` + spec + `;
const d = spec.data[0]; delete d.url; delete d.format; d.values = ` + string(hits) + `;
new vega.View(vega.parse(spec), {renderer: "svg", container: "#view"}).runAsync()
  .then(() => { document.body.dataset.state = "ready"; })
  .catch((e) => { document.body.dataset.state = "error: " + e; });
</script></body></html>`
	mux := http.NewServeMux()
	mux.Handle("/ui/", WebHandler("unused-token", NewRecent(1)))
	mux.HandleFunc("/kibana.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		io.WriteString(w, page)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	dom := string(runChromium(t, bin, srv.URL+"/kibana.html", "--dump-dom"))
	if !strings.Contains(dom, `data-state="ready"`) {
		t.Fatalf("the Kibana spec did not render:\n%.2000s", dom)
	}
	return dom
}
