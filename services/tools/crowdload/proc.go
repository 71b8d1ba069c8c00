package crowdload

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// process is a child process the harness started, restartable with the
// same binary, arguments and environment. Its stdout and stderr go to a log
// file (appended across restarts).
type process struct {
	name    string
	bin     string
	args    []string
	env     []string // nil: inherit
	logPath string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when the current incarnation exited
	exitErr error
	starts  int
}

// start starts a new incarnation. The previous one must have exited.
func (p *process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is still running (pid %d)", p.name, p.cmd.Process.Pid)
		}
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "---- crowdload: starting %s (%s) at %s\n", p.name, p.bin, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = p.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.exitErr = cmd, done, nil
	p.starts++
	go func() {
		err := cmd.Wait()
		logf.Close()
		p.mu.Lock()
		p.exitErr = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// pid returns the current incarnation's pid, 0 when it is not running.
func (p *process) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	select {
	case <-p.done:
		return 0
	default:
		return p.cmd.Process.Pid
	}
}

// exited returns a channel closed when the current incarnation exits.
func (p *process) exited() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		c := make(chan struct{})
		close(c)
		return c
	}
	return p.done
}

// exitError is the current incarnation's exit error after it exited.
func (p *process) exitError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.exitErr
}

func (p *process) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return nil
	}
	select {
	case <-p.done:
		return nil
	default:
	}
	return p.cmd.Process.Signal(sig)
}

// kill SIGKILLs the current incarnation and waits for it to exit.
func (p *process) kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.exited()
	return nil
}

// stop SIGTERMs the current incarnation and waits up to grace for it to
// exit, then SIGKILLs it.
func (p *process) stop(grace time.Duration) {
	_ = p.signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.exited():
	case <-t.C:
		_ = p.kill()
	}
}

// logTail returns the last lines of the log, for error messages.
func (p *process) logTail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitFor polls check every 20ms until it succeeds, the process exits or
// timeout passes.
func (p *process) waitFor(ctx context.Context, timeout time.Duration, what string, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	exited := p.exited()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited before %s (%v); log %s:\n%s", p.name, what, p.exitError(), p.logPath, p.logTail(15))
		case <-ctx.Done():
			return fmt.Errorf("%s: not %s within %s (last: %v); log %s:\n%s", p.name, what, timeout, last, p.logPath, p.logTail(15))
		case <-tick.C:
		}
	}
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// findRepo returns dir, or the nearest directory upwards from the working
// directory holding Crowdgate's go.mod.
func findRepo(dir string) (string, error) {
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
			return "", fmt.Errorf("--repo %s: no go.mod: %w", dir, err)
		}
		return dir, nil
	}
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/crowdgate/crowdgate\n")) {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", errors.New("not inside the Crowdgate source tree: give --repo, or --crowdgate-bin and --tolokasim-bin")
		}
		d = parent
	}
}

// buildBinary runs go build for pkg (./cmd/x) of repo into out.
func buildBinary(ctx context.Context, repo, pkg, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = repo
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s: %w\n%s", pkg, err, b)
	}
	return nil
}

// cleanEnv is the harness's environment without the variables that
// configure Crowdgate, Redis or the emulator, so a child gets only what the
// harness gives it.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "CROWDGATE_") || strings.HasPrefix(k, "TOLOKA") || strings.HasPrefix(k, "REDIS_") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// redisServer is a redis-server the harness started: loopback only, AOF on
// with appendfsync always, so a SIGKILL loses nothing acknowledged.
type redisServer struct {
	proc *process
	port int
	url  string
}

func startRedis(ctx context.Context, bin, dir string) (*redisServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "redis")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	r := &redisServer{
		port: port,
		url:  fmt.Sprintf("redis://127.0.0.1:%d/0", port),
		proc: &process{
			name: "redis-server", bin: bin, logPath: filepath.Join(dir, "redis.log"),
			args: []string{
				"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", data,
				"--appendonly", "yes", "--appendfsync", "always", "--save", "",
				// As deploy/README.md asks: submission records stay compact.
				"--hash-max-listpack-value", "1024",
				"--daemonize", "no", "--protected-mode", "yes", "--logfile", "",
			},
		},
	}
	if err := r.proc.start(); err != nil {
		return nil, err
	}
	if err := r.waitReady(ctx); err != nil {
		r.proc.stop(time.Second)
		return nil, err
	}
	return r, nil
}

func (r *redisServer) waitReady(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", r.port), MaxRetries: -1})
	defer c.Close()
	return r.proc.waitFor(ctx, 30*time.Second, "answering PING", func(ctx context.Context) error {
		return c.Ping(ctx).Err()
	})
}

// restart SIGKILLs Redis and starts it again on the same port and data
// directory; it returns once Redis answers (after replaying its AOF).
func (r *redisServer) restart(ctx context.Context) error {
	if err := r.proc.kill(); err != nil {
		return err
	}
	if err := r.proc.start(); err != nil {
		return err
	}
	return r.waitReady(ctx)
}

func (r *redisServer) close() { r.proc.stop(5 * time.Second) }

// tolokasimServer is a tolokasim the harness started.
type tolokasimServer struct {
	proc *process
	url  string
}

func startTolokasim(ctx context.Context, bin, dir string, rateLimits bool, hc *http.Client) (*tolokasimServer, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	args := []string{
		"--addr", fmt.Sprintf("127.0.0.1:%d", port), "--operation-delay", "0",
		"--request-log-size", "-1", "--log-level", "warn", "--shutdown-timeout", "2s",
	}
	if !rateLimits {
		args = append(args, "--no-rate-limits")
	}
	t := &tolokasimServer{
		url:  fmt.Sprintf("http://127.0.0.1:%d", port),
		proc: &process{name: "tolokasim", bin: bin, args: args, env: cleanEnv(), logPath: filepath.Join(dir, "tolokasim.log")},
	}
	if err := t.proc.start(); err != nil {
		return nil, err
	}
	emu := newEmulator(t.url, hc)
	if err := t.proc.waitFor(ctx, 30*time.Second, "answering /_admin/healthz", emu.healthy); err != nil {
		t.proc.stop(time.Second)
		return nil, err
	}
	return t, nil
}

func (t *tolokasimServer) close() { t.proc.stop(5 * time.Second) }

// replica is one gateway replica the load is spread over.
type replica interface {
	// Name is for reports ("gateway-1").
	Name() string
	// HTTPURL is the REST and landing base URL.
	HTTPURL() string
	// GRPCAddr is the gRPC address ("" when unknown).
	GRPCAddr() string
	// PID is the running process's pid (0: unknown or not running).
	PID() int
	// Kill stops the replica abruptly (SIGKILL).
	Kill() error
	// Restart starts a killed replica again on the same addresses and
	// returns once it is ready.
	Restart(ctx context.Context) error
}

// externalReplica is a replica the harness did not start.
type externalReplica struct {
	name, httpURL, grpcAddr string
}

func (e *externalReplica) Name() string     { return e.name }
func (e *externalReplica) HTTPURL() string  { return e.httpURL }
func (e *externalReplica) GRPCAddr() string { return e.grpcAddr }
func (e *externalReplica) PID() int         { return 0 }
func (e *externalReplica) Kill() error {
	return errors.New("an external replica cannot be killed")
}
func (e *externalReplica) Restart(context.Context) error {
	return errors.New("an external replica cannot be restarted")
}

// crowdgateReplica is a crowdgate process the harness started.
type crowdgateReplica struct {
	name     string
	proc     *process
	httpAddr string
	grpcAddr string
	hc       *http.Client
}

// crowdgateEnv is what every replica shares.
type crowdgateEnv struct {
	RedisURL      string
	RedisPrefix   string
	TolokaAPIURL  string
	EncryptionKey string
	// Extra are more KEY=VALUE pairs (--gateway-env).
	Extra []string
	// Webhook lets webhook endpoints be http on loopback
	// (CROWDGATE_WEBHOOK_ALLOW_PRIVATE=true, which --gateway-env cannot
	// turn off then) and retries failed deliveries within seconds
	// (webhookRetrySchedule, unless --gateway-env sets another).
	Webhook bool
}

// webhookRetrySchedule is the retry schedule of replicas started with
// --webhook: the default's first wait is 5s and its second 5m, so with 30%
// of answers failing on purpose a run would wait minutes for a few events.
// Twenty retries make a delivery dead with probability 0.3^21 (1e-11).
const webhookRetrySchedule = "100ms,200ms,400ms,800ms,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s,1s"

func startCrowdgate(ctx context.Context, name, bin, dir string, e crowdgateEnv, hc *http.Client) (*crowdgateReplica, error) {
	hp, err := freePort()
	if err != nil {
		return nil, err
	}
	gp, err := freePort()
	if err != nil {
		return nil, err
	}
	g := &crowdgateReplica{
		name: name, hc: hc,
		httpAddr: fmt.Sprintf("127.0.0.1:%d", hp),
		grpcAddr: fmt.Sprintf("127.0.0.1:%d", gp),
	}
	// Defaults --gateway-env may change, then what it may not.
	// The harness stands in for the load balancer (it writes the Tolokers'
	// addresses in X-Forwarded-For from loopback), so loopback is trusted.
	env := append(cleanEnv(), "CROWDGATE_LOG_LEVEL=info", "CROWDGATE_SHUTDOWN_TIMEOUT=10s",
		"CROWDGATE_TRUSTED_PROXIES=127.0.0.0/8,::1/128")
	if e.Webhook {
		env = append(env, "CROWDGATE_WEBHOOK_RETRY_SCHEDULE="+webhookRetrySchedule)
	}
	env = append(env, e.Extra...)
	if e.Webhook {
		env = append(env, "CROWDGATE_WEBHOOK_ALLOW_PRIVATE=true")
	}
	env = append(env,
		"CROWDGATE_HTTP_ADDR="+g.httpAddr,
		"CROWDGATE_GRPC_ADDR="+g.grpcAddr,
		"CROWDGATE_PUBLIC_URL=http://"+g.httpAddr,
		"REDIS_URL="+e.RedisURL,
		"CROWDGATE_REDIS_PREFIX="+e.RedisPrefix,
		"TOLOKA_SANDBOX_URL="+e.TolokaAPIURL,
		"TOLOKA_PRODUCTION_URL="+e.TolokaAPIURL,
		"CROWDGATE_ENCRYPTION_KEY="+e.EncryptionKey,
		"CROWDGATE_LOG_FORMAT=json",
	)
	g.proc = &process{name: name, bin: bin, env: env, logPath: filepath.Join(dir, name+".log")}
	if err := g.Restart(ctx); err != nil {
		g.proc.stop(time.Second)
		return nil, err
	}
	return g, nil
}

func (g *crowdgateReplica) Name() string     { return g.name }
func (g *crowdgateReplica) HTTPURL() string  { return "http://" + g.httpAddr }
func (g *crowdgateReplica) GRPCAddr() string { return g.grpcAddr }
func (g *crowdgateReplica) PID() int         { return g.proc.pid() }
func (g *crowdgateReplica) Kill() error      { return g.proc.kill() }

// Restart starts the process and waits until it logged "crowdgate is
// serving" on the expected addresses and /readyz answers 200.
func (g *crowdgateReplica) Restart(ctx context.Context) error {
	if err := g.proc.start(); err != nil {
		return err
	}
	starts := g.proc.starts
	return g.proc.waitFor(ctx, 60*time.Second, "ready", func(ctx context.Context) error {
		if !servingLogged(g.proc.logPath, starts, g.httpAddr) {
			return errors.New(`no "crowdgate is serving" log line yet`)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.HTTPURL()+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := g.hc.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("/readyz answered %d", resp.StatusCode)
		}
		return nil
	})
}

func (g *crowdgateReplica) close() { g.proc.stop(15 * time.Second) }

// servingLogged reports whether the incarnation number starts of the
// process logging to path has logged "crowdgate is serving" with httpAddr.
func servingLogged(path string, starts int, httpAddr string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return scanServing(f, starts, httpAddr)
}

// scanServing reads a replica's log (incarnations separated by the
// harness's "---- crowdload: starting" lines) and reports whether
// incarnation number starts logged the serving line with httpAddr.
func scanServing(r io.Reader, starts int, httpAddr string) bool {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "---- crowdload: starting ") {
			n++
			continue
		}
		if n == starts && strings.Contains(line, `"msg":"crowdgate is serving"`) &&
			strings.Contains(line, `"http_addr":"`+httpAddr+`"`) {
			return true
		}
	}
	return false
}
