package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
)

var binary string

// What TestMain stamps into the binary.
const (
	stampedVersion   = "v9.8.7-test"
	stampedCommit    = "0123456789abcdef0123456789abcdef01234567"
	stampedBuildTime = "2026-11-23T10:00:00Z"
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "crowdgate-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "crowdgate")
	// Stamped as the Makefile and the Dockerfile do, with values a test can
	// recognise.
	const pkg = "github.com/crowdgate/crowdgate/services/platform/buildinfo."
	ldflags := "-X " + pkg + "Version=" + stampedVersion + " -X " + pkg + "Commit=" + stampedCommit + " -X " + pkg + "BuildTime=" + stampedBuildTime
	if out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", binary, ".").CombinedOutput(); err != nil {
		panic("go build: " + err.Error() + "\n" + string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is the crowdgate binary running under a test.
type process struct {
	cmd      *exec.Cmd
	grpcAddr string
	httpAddr string
	mu       sync.Mutex
	logs     []map[string]any
	exited   chan error
}

// snapshot returns the log lines read so far.
func (p *process) snapshot() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.logs...)
}

// start runs the binary with env and waits for its "serving" log line,
// which names the addresses it listens on.
func start(t *testing.T, env []string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"-http-addr=127.0.0.1:0", "-grpc-addr=127.0.0.1:0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1)}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line map[string]any
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			p.mu.Lock()
			p.logs = append(p.logs, line)
			p.mu.Unlock()
			if line["msg"] == "crowdgate is serving" {
				p.grpcAddr, _ = line["grpc_addr"].(string)
				p.httpAddr, _ = line["http_addr"].(string)
				close(serving)
			}
		}
		p.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case <-serving:
		return p
	case err := <-p.exited:
		t.Fatalf("crowdgate exited before serving: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("crowdgate did not start serving within 30s")
	}
	return nil
}

func TestBinaryServesHealthAndExitsCleanlyOnSIGTERM(t *testing.T) {
	for _, tc := range []struct {
		name         string
		redisURL     func(t *testing.T) string
		wantEmbedded bool
	}{
		{name: "embedded redis", redisURL: func(*testing.T) string { return "" }, wantEmbedded: true},
		{name: "external redis", redisURL: func(t *testing.T) string { return redistest.New(t).URL }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, []string{"REDIS_URL=" + tc.redisURL(t)})

			if out, err := exec.Command(binary, "-healthcheck", "-http-addr="+p.httpAddr).CombinedOutput(); err != nil {
				t.Errorf("-healthcheck on a ready gateway: %v %s", err, out)
			}

			resp, err := http.Get("http://" + p.httpAddr + "/healthz")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(body) != "ok\n" {
				t.Errorf("/healthz = %d %q, want 200 ok", resp.StatusCode, body)
			}

			conn, err := grpc.NewClient(p.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			hc, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil || hc.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Errorf("grpc.health.v1 Check = %v, %v; want SERVING", hc.GetStatus(), err)
			}

			if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-p.exited:
				if err != nil {
					t.Errorf("exit after SIGTERM: %v, want status 0", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("no exit within 30s of SIGTERM")
			}

			warned := false
			for _, l := range p.snapshot() {
				if l["level"] == "WARN" && l["msg"] != nil && strings.Contains(l["msg"].(string), "WILL NOT SURVIVE A RESTART") {
					warned = true
				}
			}
			if warned != tc.wantEmbedded {
				t.Errorf("loud embedded-Redis warning logged = %v, want %v", warned, tc.wantEmbedded)
			}
		})
	}
}

// A second SIGTERM (or Ctrl-C) ends a shutdown that is taking its time:
// the first one started the drain, the second one stops the process.
func TestASecondSignalEndsAShutdownAtOnce(t *testing.T) {
	p := start(t, []string{"REDIS_URL=" + redistest.New(t).URL, "CROWDGATE_SHUTDOWN_DRAIN=1h"})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The drain has begun once readiness says so.
	for {
		resp, err := http.Get("http://" + p.httpAddr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.Success() {
			t.Errorf("exit after a second SIGTERM: %v, want the process ended by it", err)
		}
	case <-time.After(30 * time.Second): // a bound for the failure report only
		t.Fatal("a second SIGTERM did not end the hour-long drain")
	}
}

func TestBinaryRefusesBadConfiguration(t *testing.T) {
	cmd := exec.Command(binary, "-redis-mode=bogus")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("crowdgate started with a bad REDIS_MODE; output:\n%s", out)
	}
	if !strings.Contains(string(out), "REDIS_MODE") {
		t.Errorf("error output does not name REDIS_MODE:\n%s", out)
	}
}

func TestBinaryHealthcheckFailsWhenNothingListens(t *testing.T) {
	if out, err := exec.Command(binary, "-healthcheck", "-http-addr=127.0.0.1:1").CombinedOutput(); err == nil {
		t.Errorf("-healthcheck succeeded with nothing listening: %s", out)
	}
}

func TestBinaryWithEmbeddedEmulator(t *testing.T) {
	p := start(t, []string{"REDIS_URL="}, "-toloka-emulator=embedded", "-toloka-emulator-addr=127.0.0.1:0")
	var apiURL string
	for _, l := range p.snapshot() {
		if u, ok := l["api_url"].(string); ok {
			apiURL = u
		}
	}
	if apiURL == "" {
		t.Fatal("no api_url logged for the embedded emulator")
	}
	// The emulator answers like Toloka: an unauthenticated call is a 401 with Toloka's error body.
	resp, err := http.Get(apiURL + "/projects")
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ Code string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || body.Code != "AUTHENTICATION_ERROR" {
		t.Errorf("emulator GET /projects = %d %q, want 401 AUTHENTICATION_ERROR", resp.StatusCode, body.Code)
	}
}

// The gateway collects garbage at 400% of its live heap unless GOGC says
// otherwise.
func TestBinaryGCTarget(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want string
	}{
		{"GOGC=", "go_gc_gogc_percent 400"},
		{"GOGC=150", "go_gc_gogc_percent 150"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			p := start(t, []string{tc.env})
			resp, err := http.Get("http://" + p.httpAddr + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), "\n"+tc.want+"\n") {
				t.Errorf("/metrics lacks %q", tc.want)
			}
		})
	}
}

// Every bad setting found while the gateway is built ends the process with
// a non-zero status and one log line that names the setting and the cause;
// never a panic, never a stack trace.
func TestBinaryStartupFailuresNameTheSetting(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	unreachable := "redis://" + free.Addr().String() // nothing answers once it is closed
	free.Close()
	r := redistest.New(t)
	for _, tc := range []struct {
		name    string
		env     []string
		args    []string
		setting string
		cause   string
	}{
		{"port in use", []string{"REDIS_URL=" + r.URL}, []string{"-http-addr=" + busy.Addr().String()}, "CROWDGATE_HTTP_ADDR", "address already in use"},
		{"gRPC port in use", []string{"REDIS_URL=" + r.URL}, []string{"-grpc-addr=" + busy.Addr().String()}, "CROWDGATE_GRPC_ADDR", "address already in use"},
		{"Redis unreachable", []string{"REDIS_URL=" + unreachable}, nil, "REDIS_URL", "connection refused"},
		{"malformed encryption key", []string{"REDIS_URL=" + r.URL, "CROWDGATE_ENCRYPTION_KEY=not-a-key"}, nil, "CROWDGATE_ENCRYPTION_KEY", "not base64"},
		{"short encryption key", []string{"REDIS_URL=" + r.URL, "CROWDGATE_ENCRYPTION_KEY=c2hvcnQ="}, nil, "CROWDGATE_ENCRYPTION_KEY", "32 bytes"},
		{"unreadable TLS file", []string{"REDIS_URL=" + r.URL, "CROWDGATE_GRPC_TLS_CERT=/nonexistent/cert.pem", "CROWDGATE_GRPC_TLS_KEY=/nonexistent/key.pem"}, nil, "CROWDGATE_GRPC_TLS_CERT", "no such file"},
		{"bad mode", nil, []string{"-redis-mode=bogus"}, "REDIS_MODE", "bogus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-http-addr=127.0.0.1:0", "-grpc-addr=127.0.0.1:0"}, tc.args...)
			cmd := exec.Command(binary, args...)
			cmd.Env = append(os.Environ(), tc.env...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() == 0 {
				t.Fatalf("crowdgate ran with %s: %v\n%s", tc.name, err, stderr.String())
			}
			out := stderr.String()
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Fatalf("crowdgate panicked:\n%s", out)
			}
			var failure map[string]any
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var l map[string]any
				if json.Unmarshal([]byte(line), &l) != nil {
					t.Errorf("a line that is not a log line: %q", line)
					continue
				}
				if l["level"] == "ERROR" {
					if failure != nil {
						t.Errorf("more than one error line:\n%s", out)
					}
					failure = l
				}
			}
			msg, _ := failure["err"].(string)
			if !strings.Contains(msg, tc.setting) || !strings.Contains(msg, tc.cause) {
				t.Errorf("the error line %v does not name %s and %q:\n%s", failure, tc.setting, tc.cause, out)
			}
		})
	}
}

// runReseal runs `crowdgate -reseal` with env and returns its exit code and
// log lines.
func runReseal(t *testing.T, env ...string) (int, []map[string]any) {
	t.Helper()
	cmd := exec.Command(binary, "-reseal")
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("-reseal did not exit within 60s:\n%s", stderr.String())
	}
	var lines []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(stderr.String()), "\n") {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) != nil {
			t.Errorf("-reseal wrote a line that is not a log line: %q", line)
			continue
		}
		lines = append(lines, l)
	}
	return cmd.ProcessState.ExitCode(), lines
}

// summary returns the counts of -reseal's summary line.
func summary(t *testing.T, lines []map[string]any) map[string]any {
	t.Helper()
	for _, l := range lines {
		if l["credentials_resealed"] != nil {
			return l
		}
	}
	t.Fatalf("no summary line in %v", lines)
	return nil
}

// TestBinaryReseal stores a credential and a signing key with a gateway
// under K1, then runs `crowdgate -reseal` with the ring "K2,K1": it
// re-seals both and exits 0; run again with K2 alone everything is already
// under K2 (so K1 can go), and K1 alone no longer opens the credential.
func TestBinaryReseal(t *testing.T) {
	r := redistest.New(t)
	k1 := base64.StdEncoding.EncodeToString(secretbox.NewRandomKey())
	k2 := base64.StdEncoding.EncodeToString(secretbox.NewRandomKey())
	base := []string{"REDIS_URL=" + r.URL, "CROWDGATE_REDIS_PREFIX=" + r.Prefix}

	p := start(t, append(base, "CROWDGATE_ENCRYPTION_KEY="+k1), "-toloka-emulator=embedded", "-toloka-emulator-addr=127.0.0.1:0")
	resp, err := http.Post("http://"+p.httpAddr+"/v1/credentials", "application/json",
		strings.NewReader(`{"display_name": "demo", "environment": "ENVIRONMENT_SANDBOX", "api_key": "`+DemoAPIKey+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CreateCredential = %d %s", resp.StatusCode, body)
	}
	if resp, err = http.Get("http://" + p.httpAddr + "/.well-known/jwks.json"); err != nil { // makes the first signing key
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-p.exited; err != nil {
		t.Fatalf("gateway exit: %v", err)
	}

	code, lines := runReseal(t, append(base, "CROWDGATE_ENCRYPTION_KEY="+k2+","+k1)...)
	if code != 0 {
		t.Fatalf("-reseal with [K2, K1] exited %d: %v", code, lines)
	}
	s := summary(t, lines)
	if s["credentials_resealed"] != 1.0 || s["signing_keys_resealed"] != 1.0 {
		t.Errorf("first -reseal %v, want one credential and one signing key re-sealed", s)
	}

	code, lines = runReseal(t, append(base, "CROWDGATE_ENCRYPTION_KEY="+k2)...)
	if s := summary(t, lines); code != 0 || s["credentials_current"] != 1.0 || s["credentials_resealed"] != 0.0 ||
		s["signing_keys_current"] != 1.0 || s["signing_keys_unreadable"] != 0.0 {
		t.Errorf("-reseal with K2 alone exited %d with %v, want everything already under K2", code, s)
	}

	code, lines = runReseal(t, append(base, "CROWDGATE_ENCRYPTION_KEY="+k1)...)
	var failure string
	for _, l := range lines {
		if l["level"] == "ERROR" && l["msg"] == "crowdgate -reseal failed" {
			failure, _ = l["err"].(string)
		}
	}
	if code == 0 || !strings.Contains(failure, "CROWDGATE_ENCRYPTION_KEY") {
		t.Errorf("-reseal with K1 alone after the reseal exited %d (%q), want a failure naming CROWDGATE_ENCRYPTION_KEY", code, failure)
	}
	for _, l := range lines {
		b, _ := json.Marshal(l)
		for _, secret := range []string{k1, k2, DemoAPIKey} {
			if strings.Contains(string(b), secret) {
				t.Errorf("a log line of -reseal holds a secret: %s", b)
			}
		}
	}
}

// TestBinaryVersion: -version prints what the build stamped (and needs no
// configuration: it works with a refused setting in the environment); the
// serving log line and /metrics carry the same build.
func TestBinaryVersion(t *testing.T) {
	cmd := exec.Command(binary, "-version")
	cmd.Env = append(os.Environ(), "REDIS_MODE=bogus")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crowdgate -version: %v", err)
	}
	for _, want := range []string{"crowdgate " + stampedVersion, "commit " + stampedCommit, "built " + stampedBuildTime, "go1."} {
		if !strings.Contains(string(out), want) {
			t.Errorf("crowdgate -version = %q, want it to contain %q", out, want)
		}
	}

	p := start(t, nil)
	var logged map[string]any
	for _, line := range p.snapshot() {
		if line["msg"] == "crowdgate is starting" {
			logged = line
		}
	}
	if logged == nil || logged["version"] != stampedVersion || logged["commit"] != stampedCommit || logged["build_time"] != stampedBuildTime {
		t.Errorf("start-up log line = %v, want the stamped version, commit and build time", logged)
	}
	resp, err := http.Get("http://" + p.httpAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	want := `crowdgate_build_info{commit="` + stampedCommit + `",go_version="go1.`
	if !strings.Contains(string(body), want) || !strings.Contains(string(body), `version="`+stampedVersion+`"} 1`) {
		t.Errorf("/metrics lacks the stamped crowdgate_build_info series")
	}
}

// A SIGTERM while the gateway waits for Redis at startup (a rolling deploy
// stopping a replica that never became ready) is a requested stop: the
// process exits 0, saying it stopped before it started, not that it
// "cannot start" (which would page someone for nothing).
func TestASignalDuringStartupIsACleanStop(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers PING
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	defer func() {
		for len(accepted) > 0 {
			(<-accepted).Close()
		}
	}()
	cmd := exec.Command(binary, "-http-addr=127.0.0.1:0", "-grpc-addr=127.0.0.1:0")
	cmd.Env = append(os.Environ(), "REDIS_URL=redis://"+ln.Addr().String())
	var out strings.Builder
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case c := <-accepted: // the gateway is waiting for Redis's PING
		accepted <- c
	case err := <-exited:
		t.Fatalf("crowdgate exited before it reached Redis: %v\n%s", err, out.String())
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = <-exited
	logs := out.String()
	if err != nil {
		t.Errorf("exit after a SIGTERM during startup: %v, want 0\n%s", err, logs)
	}
	if strings.Contains(logs, "cannot start") || !strings.Contains(logs, "stopped before it started") {
		t.Errorf("the logs do not say it stopped before it started (and only that):\n%s", logs)
	}
}
