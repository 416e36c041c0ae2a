package flbtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// ModulePath is the module whose root RepoRoot looks for.
const ModulePath = "github.com/beacongrid/beacongrid"

// HostEnv names an environment variable that, when set, gives a prebuilt
// flbhost binary to BuildHost instead of compiling one.
const HostEnv = "BEACONGRID_FLBHOST"

// HostSourcePath is the host's source file, relative to the repository root.
const HostSourcePath = "build/flbhost/flbhost.c"

// HostCFlags are the gcc arguments (after "gcc") that build the host, with
// OUT and SRC standing for the output and source paths. They match the
// command in build/flbhost/README.md.
var HostCFlags = []string{"-O2", "-Wall", "-Wextra", "-o", "OUT", "SRC", "-ldl", "-lpthread"}

// RepoRoot returns the repository root: the nearest directory above the
// working directory (or, failing that, above this source file) whose go.mod
// declares ModulePath.
func RepoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if isModuleRoot(dir) {
				return dir, nil
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", fmt.Errorf("flbtest: no go.mod for %s found above the working directory", ModulePath)
}

func isModuleRoot(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == ModulePath
		}
	}
	return false
}

// BuildHostTo compiles flbhost.c into dir/flbhost with gcc and HostCFlags
// (extraFlags, e.g. "-Werror", come first) and returns its path.
func BuildHostTo(dir string, extraFlags ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, "flbhost")
	src := filepath.Join(root, HostSourcePath)
	args := append([]string{}, extraFlags...)
	for _, a := range HostCFlags {
		switch a {
		case "OUT":
			a = out
		case "SRC":
			a = src
		}
		args = append(args, a)
	}
	cmd := exec.Command("gcc", args...)
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("flbtest: gcc %s: %w\n%s", strings.Join(args, " "), err, output.String())
	}
	return out, nil
}

// BuildHost returns a flbhost binary for the test: $BEACONGRID_FLBHOST if
// set, else one compiled into a temporary directory. It fails the test if
// the host cannot be built.
func BuildHost(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(HostEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("flbtest: %s=%s: %v", HostEnv, p, err)
		}
		return p
	}
	p, err := BuildHostTo(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// BuildPluginTo builds the Go package pkg (an import path, or a path
// relative to the repository root such as "./build/flbhost/probe") with
// -buildmode=c-shared into dir/name and returns the .so path.
func BuildPluginTo(dir, pkg, name string) (string, error) {
	return BuildPluginFlagsTo(dir, pkg, name)
}

// BuildPluginFlagsTo is BuildPluginTo with extra go build flags, such as
// "-tags=beacongrid_debug".
func BuildPluginFlagsTo(dir, pkg, name string, flags ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goroot := os.Getenv("GOROOT")
		if goroot == "" {
			return "", fmt.Errorf("flbtest: no go command in PATH and GOROOT unset")
		}
		goBin = filepath.Join(goroot, "bin", "go")
	}
	out := filepath.Join(dir, name)
	args := append([]string{"build", "-buildmode=c-shared"}, flags...)
	cmd := exec.Command(goBin, append(args, "-o", out, pkg)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	var output bytes.Buffer
	cmd.Stdout = &output
	cmd.Stderr = &output
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("flbtest: go build -buildmode=c-shared %s: %w\n%s", pkg, err, output.String())
	}
	if _, err := os.Stat(out); err != nil {
		return "", errors.Join(fmt.Errorf("flbtest: go build produced no %s", out), err)
	}
	return out, nil
}

// BuildPlugin builds pkg as a c-shared plugin into a temporary directory of
// the test (see BuildPluginTo). c-shared builds are slow: build once per
// test binary (for instance in TestMain with BuildPluginTo) where possible.
func BuildPlugin(t testing.TB, pkg string) string {
	t.Helper()
	name := filepath.Base(strings.TrimRight(pkg, "/")) + ".so"
	p, err := BuildPluginTo(t.TempDir(), pkg, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
