package flbtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Instance is one [OUTPUT] section.
type Instance struct {
	// Name is the plugin name the instance asks for; it must equal (up to
	// case) the name the plugin registers.
	Name string
	// Props are the instance properties, passed as -o key=value in sorted
	// key order. Fluent Bit's core keys (match, host, port, workers,
	// alias, tls*, net.*, ...) never reach the plugin; "workers" sets the
	// instance's worker count and "alias" its name.
	Props map[string]string
}

// Chunk is one flush: the raw msgpack bytes of File, with Tag, to an
// instance.
type Chunk struct {
	// Instance is an index into HostOptions.Instances.
	Instance int
	// Tag may not contain ':'.
	Tag  string
	File string
}

// HostOptions describe one run of flbhost.
type HostOptions struct {
	// Host is the flbhost binary (see BuildHost); Plugin the .so to load.
	Host   string
	Plugin string
	// Workers is the default worker count of every instance (-w). With
	// 0, flushes run one at a time on the engine thread.
	Workers int
	// Repeat flushes every chunk that many times (-r); 0 means 1. With
	// Repeat > 1 the host reports counts only, not each flush.
	Repeat int
	// StackSize is the coroutine stack size in bytes (-s); 0 means the
	// Fluent Bit default of 24 KiB.
	StackSize int
	// ZeroCopy, when > 0, makes that many copies of each chunk before the
	// flushes and hands them out in turn, with no copy (and no poisoning)
	// per flush (-z): Fluent Bit's own cost, for benchmarks.
	ZeroCopy  int
	Instances []Instance
	Chunks    []Chunk
	// Hold keeps the host alive after the flushes until Process.Stop or
	// Process.Signal (-x). Use Start, not Run.
	Hold bool
	// Verbose makes the host trace property lookups on stderr (-v).
	Verbose bool
	// Env is added to the host's environment (os.Environ()).
	Env []string
	// Dir is the host's working directory (default: the caller's).
	Dir string
	// Stdout and Stderr, when set, receive a copy of the host's output
	// as it is produced (e.g. to log it from a test).
	Stdout io.Writer
	Stderr io.Writer
}

// Args returns the flbhost command-line arguments for o.
func (o HostOptions) Args() ([]string, error) {
	if o.Plugin == "" {
		return nil, errors.New("flbtest: HostOptions.Plugin is empty")
	}
	if len(o.Instances) == 0 {
		return nil, errors.New("flbtest: HostOptions.Instances is empty")
	}
	args := []string{"-p", o.Plugin}
	if o.Workers != 0 {
		args = append(args, "-w", strconv.Itoa(o.Workers))
	}
	if o.Repeat != 0 {
		args = append(args, "-r", strconv.Itoa(o.Repeat))
	}
	if o.StackSize != 0 {
		args = append(args, "-s", strconv.Itoa(o.StackSize))
	}
	if o.ZeroCopy != 0 {
		args = append(args, "-z", strconv.Itoa(o.ZeroCopy))
	}
	if o.Hold {
		args = append(args, "-x")
	}
	if o.Verbose {
		args = append(args, "-v")
	}
	for _, in := range o.Instances {
		if in.Name == "" {
			return nil, errors.New("flbtest: an Instance has no Name")
		}
		args = append(args, "-i", in.Name)
		keys := make([]string, 0, len(in.Props))
		for k := range in.Props {
			if k == "" || strings.Contains(k, "=") {
				return nil, fmt.Errorf("flbtest: invalid property key %q", k)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			args = append(args, "-o", k+"="+in.Props[k])
		}
	}
	for _, c := range o.Chunks {
		if c.Instance < 0 || c.Instance >= len(o.Instances) {
			return nil, fmt.Errorf("flbtest: chunk %s: no instance %d", c.File, c.Instance)
		}
		if c.Tag == "" || strings.Contains(c.Tag, ":") {
			return nil, fmt.Errorf("flbtest: chunk %s: invalid tag %q", c.File, c.Tag)
		}
		if c.File == "" {
			return nil, errors.New("flbtest: chunk without File")
		}
		args = append(args, "-c", fmt.Sprintf("%d:%s:%s", c.Instance, c.Tag, c.File))
	}
	return args, nil
}

// Call is an Init or exit call the host made on an instance.
type Call struct {
	Instance string
	// Func is the exit function used (FLBPluginExitCtx, FLBPluginExit or
	// none); empty for Init.
	Func string
	RC   int
}

// Flush is one flush the host reported (only when Repeat <= 1).
type Flush struct {
	Instance string
	Tag      string
	Chunk    string
	RC       int
}

// Result is what the host reported.
type Result struct {
	// Plugin is the name the plugin registered ("" if it did not).
	Plugin  string
	Inits   []Call
	Flushes []Flush
	Exits   []Call
	// Unregistered says FLBPluginUnregister was called.
	Unregistered bool
	// RCOK, RCRetry and RCError count flush return codes 1, 2 and any
	// other (Fluent Bit treats any other value as an error); RCOther is
	// the part of RCError that was not 0.
	RCOK, RCRetry, RCError, RCOther int64
	// FlushCount, Bytes and Records total the flushes made; Records
	// counts top-level msgpack objects (group markers included).
	FlushCount, Bytes, Records int64
	// Seconds is the wall time of the flush phase, CPUSeconds the CPU
	// time (user + system, all threads) the host process used in it.
	Seconds, CPUSeconds float64
	// Released says what ended a hold (stdin, eof, SIGUSR1, SIGTERM...).
	Released string
	// Done says the host reached its final line; Status is its status.
	Done   bool
	Status int
	// ExitCode is the process exit code (-1 if killed by a signal).
	ExitCode int
	Stdout   string
	Stderr   string
}

// HostError is returned when the host does not exit with status 0.
type HostError struct {
	ExitCode int
	Err      error
	Stderr   string
}

func (e *HostError) Error() string {
	return fmt.Sprintf("flbhost: %v\n%s", e.Err, lastLines(e.Stderr, 20))
}

func (e *HostError) Unwrap() error { return e.Err }

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Process is a running host (see Start).
type Process struct {
	cmd      *exec.Cmd
	stdin    io.WriteCloser
	stdout   bytes.Buffer
	stderr   lockedBuffer
	holding  chan struct{}
	readDone chan struct{}
	waitOnce sync.Once
	result   *Result
	err      error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Start starts the host. With opts.Hold it returns once the host has made
// every flush and is holding; call Stop or Signal to let it run its exit
// sequence. If the host exits before holding, Start returns the Process
// together with an error, and Wait gives the Result. Without Hold, call
// Wait. Cancelling ctx sends SIGTERM, then SIGKILL 10 s later.
func Start(ctx context.Context, opts HostOptions) (*Process, error) {
	if opts.Host == "" {
		return nil, errors.New("flbtest: HostOptions.Host is empty")
	}
	args, err := opts.Args()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, opts.Host, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = opts.Dir
	cmd.Env = append(os.Environ(), opts.Env...)
	p := &Process{cmd: cmd, holding: make(chan struct{}), readDone: make(chan struct{})}
	if opts.Stderr != nil {
		cmd.Stderr = io.MultiWriter(&p.stderr, opts.Stderr)
	} else {
		cmd.Stderr = &p.stderr
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if opts.Hold {
		if p.stdin, err = cmd.StdinPipe(); err != nil {
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("flbtest: start %s: %w", opts.Host, err)
	}
	go p.read(stdout, opts.Stdout)
	if !opts.Hold {
		return p, nil
	}
	select {
	case <-p.holding:
		return p, nil
	case <-p.readDone:
		if _, err := p.Wait(); err != nil {
			return p, err
		}
		return p, errors.New("flbtest: host exited without holding")
	}
}

func (p *Process) read(r io.Reader, tee io.Writer) {
	defer close(p.readDone)
	br := bufio.NewReader(r)
	held := false
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			p.stdout.WriteString(line)
			if tee != nil {
				_, _ = io.WriteString(tee, line)
			}
			if !held && strings.TrimRight(line, "\n") == "flbhost: holding" {
				held = true
				close(p.holding)
			}
		}
		if err != nil {
			return
		}
	}
}

// Stop writes a line to the host's stdin to end its hold, then waits.
func (p *Process) Stop() (*Result, error) {
	if p.stdin != nil {
		_, _ = io.WriteString(p.stdin, "\n")
		_ = p.stdin.Close()
	}
	return p.Wait()
}

// Signal sends sig to the host (SIGTERM, SIGINT or SIGUSR1 end a hold;
// SIGTERM and SIGINT also stop further flushes), then waits.
func (p *Process) Signal(sig os.Signal) (*Result, error) {
	if err := p.cmd.Process.Signal(sig); err != nil {
		return nil, err
	}
	return p.Wait()
}

// Pid returns the host's process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Wait waits for the host to exit and returns what it reported. The error
// is a *HostError when the exit status is not 0; the Result is returned
// whenever the host ran.
func (p *Process) Wait() (*Result, error) {
	p.waitOnce.Do(func() {
		<-p.readDone
		werr := p.cmd.Wait()
		if p.stdin != nil {
			_ = p.stdin.Close()
		}
		res := ParseOutput(p.stdout.String())
		res.Stdout = p.stdout.String()
		res.Stderr = p.stderr.String()
		res.ExitCode = p.cmd.ProcessState.ExitCode()
		p.result = res
		if werr != nil {
			p.err = &HostError{ExitCode: res.ExitCode, Err: werr, Stderr: res.Stderr}
		}
	})
	return p.result, p.err
}

// Run runs the host to completion (opts.Hold must be false) and returns
// what it reported; see Process.Wait for the error.
func Run(ctx context.Context, opts HostOptions) (*Result, error) {
	if opts.Hold {
		return nil, errors.New("flbtest: Run with Hold; use Start and Process.Stop")
	}
	p, err := Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	return p.Wait()
}

var (
	reFlush = regexp.MustCompile(`^flush instance=(\S+) tag=(\S*) chunk=(.*) rc=(-?\d+)$`)
	reKV    = regexp.MustCompile(`(\w+)=(\S*)`)
)

func kvs(s string) map[string]string {
	m := map[string]string{}
	for _, sm := range reKV.FindAllStringSubmatch(s, -1) {
		if _, ok := m[sm[1]]; !ok {
			m[sm[1]] = sm[2]
		}
	}
	return m
}

func atoi64(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}

// ParseOutput parses flbhost's stdout. Lines it does not know (such as
// the plugin's own output) are ignored.
func ParseOutput(out string) *Result {
	res := &Result{}
	for _, line := range strings.Split(out, "\n") {
		if m := reFlush.FindStringSubmatch(line); m != nil {
			res.Flushes = append(res.Flushes, Flush{Instance: m[1], Tag: m[2], Chunk: m[3], RC: int(atoi64(m[4]))})
			continue
		}
		rest, ok := strings.CutPrefix(line, "flbhost: ")
		if !ok {
			continue
		}
		verb, args, _ := strings.Cut(rest, " ")
		switch {
		case verb == "register":
			name, _, _ := strings.Cut(strings.TrimPrefix(args, "name="), " ")
			res.Plugin = name
		case verb == "init":
			kv := kvs(args)
			res.Inits = append(res.Inits, Call{Instance: kv["instance"], RC: int(atoi64(kv["rc"]))})
		case verb == "exit":
			kv := kvs(args)
			res.Exits = append(res.Exits, Call{Instance: kv["instance"], Func: kv["func"], RC: int(atoi64(kv["rc"]))})
		case verb == "unregister":
			res.Unregistered = true
		case verb == "released":
			res.Released = kvs(args)["by"]
		case verb == "done":
			res.Done = true
			res.Status = int(atoi64(kvs(args)["status"]))
		case strings.HasPrefix(verb, "rc_ok="):
			kv := kvs(rest)
			res.RCOK, res.RCRetry = atoi64(kv["rc_ok"]), atoi64(kv["rc_retry"])
			res.RCError, res.RCOther = atoi64(kv["rc_error"]), atoi64(kv["rc_other"])
		case strings.HasPrefix(verb, "flushes="):
			kv := kvs(rest)
			res.FlushCount, res.Bytes, res.Records = atoi64(kv["flushes"]), atoi64(kv["bytes"]), atoi64(kv["records"])
			res.Seconds, _ = strconv.ParseFloat(kv["seconds"], 64)
			res.CPUSeconds, _ = strconv.ParseFloat(kv["cpu_seconds"], 64)
		}
	}
	return res
}
