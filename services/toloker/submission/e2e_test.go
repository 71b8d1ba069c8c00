package submission_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/gateway"
	"github.com/crowdgate/crowdgate/services/testsupport/redistest"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// gatewayProcess is one run of the gateway in a process of its own.
type gatewayProcess struct {
	cmd      *exec.Cmd
	exited   chan struct{} // closed when the process has ended
	httpAddr string
	conn     *grpc.ClientConn
	logs     *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// childEnv marks the test binary re-executed as the gateway process.
const childEnv = "CROWDGATE_SUBMISSION_E2E_GATEWAY"

// TestMain lets the test binary run as the gateway: the e2e test starts it
// again with childEnv set, so the gateway runs in a process of its own that
// the test can SIGKILL, with nothing to build.
func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		os.Exit(runGateway())
	}
	os.Exit(m.Run())
}

// runGateway is what cmd/crowdgate does: configuration from the
// environment, then gateway.Run until SIGTERM.
func runGateway() int {
	cfg, err := gateway.Load(nil, os.Getenv, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crowdgate:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := gateway.Run(ctx, cfg, cfg.NewLogger(os.Stderr)); err != nil {
		fmt.Fprintln(os.Stderr, "crowdgate:", err)
		return 1
	}
	return 0
}

// startGateway runs the gateway process with env and waits until it is
// ready. Its ports are picked free just before; if another process takes
// one first and the gateway exits, it starts again on other ports.
func startGateway(t *testing.T, env []string) *gatewayProcess {
	t.Helper()
	for try := 1; ; try++ {
		p, ready := tryStartGateway(t, env)
		if ready {
			return p
		}
		if try == 3 {
			t.Fatalf("the gateway never became ready; logs:\n%s", p.logs.String())
		}
		t.Logf("the gateway exited before it was ready; starting it again. Logs:\n%s", p.logs.String())
	}
}

func tryStartGateway(t *testing.T, env []string) (*gatewayProcess, bool) {
	t.Helper()
	p := &gatewayProcess{httpAddr: freeAddr(t), logs: &syncBuffer{}, exited: make(chan struct{})}
	grpcAddr := freeAddr(t)
	p.cmd = exec.Command(os.Args[0])
	p.cmd.Env = append(os.Environ(), childEnv+"=1")
	p.cmd.Env = append(p.cmd.Env, env...)
	p.cmd.Env = append(p.cmd.Env, "CROWDGATE_HTTP_ADDR="+p.httpAddr, "CROWDGATE_GRPC_ADDR="+grpcAddr)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.exited
		if t.Failed() {
			t.Logf("gateway logs:\n%s", p.logs.String())
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-p.exited:
			return p, false
		default:
		}
		resp, err := http.Get("http://" + p.httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway never became ready; logs:\n%s", p.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p.conn = conn
	return p, true
}

// kill ends the process with SIGKILL: no shutdown, no draining.
func (p *gatewayProcess) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

func TestGatewayKilledDuringDeliveryPaysEachSubmitOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the gateway in processes of its own")
	}
	sim, ts := tolokasim.NewTestServer(tolokasim.Config{
		APIKeys:    map[string]string{"key-acme": "acme"},
		Logger:     slog.New(slog.DiscardHandler),
		RateLimits: tolokasim.UnlimitedRateLimits(),
	})
	t.Cleanup(func() {
		sim.Close()
		ts.Close()
	})
	rdb := redistest.New(t)
	env := []string{
		"REDIS_URL=" + rdb.URL,
		"CROWDGATE_REDIS_PREFIX=" + rdb.Prefix,
		"TOLOKA_PRODUCTION_URL=" + ts.URL + "/api/v1",
		"TOLOKA_SANDBOX_URL=" + ts.URL + "/api/v1",
		"CROWDGATE_ENCRYPTION_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"CROWDGATE_LOG_LEVEL=warn",
		"CROWDGATE_SUBMIT_SYNC_TIMEOUT=100ms",
		"CROWDGATE_SUBMIT_ATTEMPT_TIMEOUT=1s",
		"CROWDGATE_SUBMIT_LEASE_TTL=1500ms",
		"CROWDGATE_SUBMIT_VISIBILITY_TIMEOUT=1s",
		"CROWDGATE_SUBMIT_BASE_BACKOFF=50ms",
		"CROWDGATE_SUBMIT_MAX_BACKOFF=200ms",
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	first := startGateway(t, env)
	creds := crowdgatev1.NewCredentialServiceClient(first.conn)
	cred, err := creds.CreateCredential(ctx, &crowdgatev1.CreateCredentialRequest{
		DisplayName: "acme sandbox", Environment: crowdgatev1.Environment_ENVIRONMENT_SANDBOX, ApiKey: "key-acme",
	})
	if err != nil {
		t.Fatal(err)
	}
	prj, err := crowdgatev1.NewProjectServiceClient(first.conn).CreateProject(ctx, &crowdgatev1.CreateProjectRequest{Project: &crowdgatev1.Project{
		CredentialId:      cred.Credential.CredentialId,
		PublicName:        "Label street signs",
		PublicDescription: "Draw boxes around street signs on our platform",
		PlatformUrl:       "https://label.example.com/start",
		PartnerName:       "Acme Labeling",
		PartnerUrl:        "https://label.example.com",
	}})
	if err != nil {
		t.Fatal(err)
	}
	pools := crowdgatev1.NewPoolServiceClient(first.conn)
	pool, err := pools.CreatePool(ctx, &crowdgatev1.CreatePoolRequest{Pool: &crowdgatev1.Pool{
		ProjectId:                    prj.Project.ProjectId,
		PrivateName:                  "Signs, batch 1",
		WillExpire:                   timestamppb.New(time.Now().Add(30 * 24 * time.Hour)),
		RewardPerAssignment:          "0.05",
		AssignmentMaxDurationSeconds: 3600,
		Defaults:                     &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 1},
	}})
	if err != nil {
		t.Fatal(err)
	}
	poolID := pool.Pool.PoolId
	if _, err := pools.OpenPool(ctx, &crowdgatev1.OpenPoolRequest{PoolId: poolID}); err != nil {
		t.Fatal(err)
	}
	asg, err := sim.CreateAssignment(pool.Pool.TolokaPoolId, "e2e-toloker")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := crowdgatev1.NewSessionServiceClient(first.conn).StartSession(ctx, &crowdgatev1.StartSessionRequest{AssignmentId: asg.ID})
	if err != nil {
		t.Fatal(err)
	}

	// Toloka takes every submit but every answer is lost: the gateway keeps
	// retrying, and is killed with all of them paid and none recorded.
	if err := sim.SetFaults(tolokasim.Faults{PathPrefix: "/api/v1/tasks/external/submit", LostResponseRate: 1}); err != nil {
		t.Fatal(err)
	}
	subs := crowdgatev1.NewSubmissionServiceClient(first.conn)
	const n = 20
	var retryIDs []string
	for i := range n {
		id := fmt.Sprintf("e2e-%02d", i)
		retryIDs = append(retryIDs, id)
		resp, err := subs.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sess.Session.SessionId, RetryId: id, Reward: "0.10"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Submission.State != crowdgatev1.SubmissionState_SUBMISSION_STATE_QUEUED {
			t.Fatalf("submit %s answered %s with every response lost", id, resp.Submission.State)
		}
	}
	poll(t, 15*time.Second, "Toloka took every submit", func() bool { return sim.Ledger(tolokasim.LedgerFilter{}).Count == n })
	totals, err := subs.GetPoolTotals(ctx, &crowdgatev1.GetPoolTotalsRequest{PoolId: poolID})
	if err != nil || totals.Totals.Delivered != 0 || totals.Totals.Queued != n {
		t.Fatalf("before the kill: totals %v, %v; want %d queued", totals, err, n)
	}
	// The requester cannot archive the project while its submits are
	// undelivered.
	_, err = crowdgatev1.NewProjectServiceClient(first.conn).ArchiveProject(ctx, &crowdgatev1.ArchiveProjectRequest{ProjectId: prj.Project.ProjectId})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "20 submits not yet delivered") {
		t.Errorf("ArchiveProject with queued submits: %v, want FAILED_PRECONDITION naming them", err)
	}
	first.kill(t)
	sim.ClearFaults()

	second := startGateway(t, env)
	subs = crowdgatev1.NewSubmissionServiceClient(second.conn)
	poll(t, 20*time.Second, "the restarted gateway delivered every submit", func() bool {
		tot, err := subs.GetPoolTotals(ctx, &crowdgatev1.GetPoolTotalsRequest{PoolId: poolID})
		return err == nil && tot.Totals.Delivered == n
	})
	tot, err := subs.GetPoolTotals(ctx, &crowdgatev1.GetPoolTotalsRequest{PoolId: poolID})
	if err != nil {
		t.Fatal(err)
	}
	if tot.Totals.Queued != 0 || tot.Totals.Dead != 0 || tot.Totals.RewardDelivered != "2.00" {
		t.Errorf("after the restart: totals %v, want all %d delivered, 2.00", tot.Totals, n)
	}
	led := sim.Ledger(tolokasim.LedgerFilter{})
	paid := map[string]int{}
	for _, e := range led.Entries {
		paid[e.RetryID]++
	}
	for _, id := range retryIDs {
		if paid[id] != 1 {
			t.Errorf("retry_id %s paid %d times, want once", id, paid[id])
		}
	}
	if led.Count != n || led.RewardTotal.String() != "2" {
		t.Errorf("Toloka paid %d submits, %s in all; want %d, 2", led.Count, led.RewardTotal, n)
	}
	if led.DuplicatesRefused == 0 {
		t.Errorf("no submit was repeated to Toloka: the restart delivered nothing it had not")
	}

	// Over REST, the reward's digits reach Toloka as sent.
	sim.ClearRequests()
	resp, err := http.Post("http://"+second.httpAddr+"/v1/submissions", "application/json", strings.NewReader(
		`{"session_id": "`+sess.Session.SessionId+`", "retry_id": "rest-1", "reward": "10.520", "quality": "0.50"}`))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Submission struct {
			State  string `json:"state"`
			Reward string `json:"reward"`
		} `json:"submission"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || out.Submission.State != "SUBMISSION_STATE_DELIVERED" || out.Submission.Reward != "10.520" {
		t.Errorf("REST submit: %d %+v %v, want 200, DELIVERED, reward 10.520", resp.StatusCode, out, err)
	}
	if reqs := sim.Requests("/api/v1/tasks/external/submit"); len(reqs) != 1 || !strings.Contains(string(reqs[0].Body), `"reward":10.520`) {
		t.Errorf("Toloka got %v, want one submit with reward 10.520", reqs)
	}

	_, err = crowdgatev1.NewProjectServiceClient(second.conn).ArchiveProject(ctx, &crowdgatev1.ArchiveProjectRequest{ProjectId: prj.Project.ProjectId})
	if err != nil && strings.Contains(err.Error(), "submit") {
		t.Errorf("ArchiveProject after delivery still names submits: %v", err)
	}
}

func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
