package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// startRedisCluster starts a 3-master Redis Cluster of redis-server
// processes on free loopback ports, assigns the 16384 slots in three ranges,
// joins the nodes and waits for cluster_state:ok. It returns a REDIS_URL
// for cluster mode (redis://first?addr=second&addr=third) and a client per node.
func startRedisCluster(t *testing.T) (string, []*redis.Client) {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (CI installs it): the Redis Cluster test needs it")
		return "", nil
	}
	dir := t.TempDir()
	var ports []int
	for i := range 3 {
		port := freePort(t)
		ports = append(ports, port)
		cmd := exec.Command("redis-server",
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", i)),
			"--dir", dir, "--save", "", "--appendonly", "no", "--logfile", filepath.Join(dir, fmt.Sprintf("redis-%d.log", i)))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	}
	ctx := context.Background()
	nodes := make([]*redis.Client, 3)
	for i, port := range ports {
		nodes[i] = redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port)})
		t.Cleanup(func() { _ = nodes[i].Close() })
		waitFor(t, 10*time.Second, fmt.Sprintf("redis node %d to answer", i), func() bool { return nodes[i].Ping(ctx).Err() == nil })
	}
	bounds := []int64{0, 5461, 10923, 16384}
	for i, n := range nodes {
		if err := n.ClusterAddSlotsRange(ctx, int(bounds[i]), int(bounds[i+1]-1)).Err(); err != nil {
			t.Fatalf("CLUSTER ADDSLOTSRANGE on node %d: %v", i, err)
		}
	}
	for _, port := range ports[1:] {
		if err := nodes[0].ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(port)).Err(); err != nil {
			t.Fatalf("CLUSTER MEET: %v", err)
		}
	}
	for i, n := range nodes {
		waitFor(t, 20*time.Second, fmt.Sprintf("node %d to report cluster_state:ok", i), func() bool {
			info, err := n.ClusterInfo(ctx).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok") && strings.Contains(info, "cluster_known_nodes:3")
		})
	}
	return fmt.Sprintf("redis://127.0.0.1:%d?addr=127.0.0.1:%d&addr=127.0.0.1:%d", ports[0], ports[1], ports[2]), nodes
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWholeFlowOnRedisCluster runs the EXTERNAL flow on a 3-master Redis
// Cluster: credentials, projects, pools, the rate limiter (every Toloka call
// passes it), the landing and its session, the code exchange, and the
// submission outbox. Every multi-key script keeps its keys in one slot
// (hash tags), or Redis Cluster would answer CROSSSLOT and the flow fail.
func TestWholeFlowOnRedisCluster(t *testing.T) {
	clusterURL, nodes := startRedisCluster(t)
	a := startAccessGateway(t, func(c *Config) {
		c.Redis.URL, c.Redis.Mode, c.Redis.Prefix = clusterURL, "cluster", "crowdgate:"
		c.Access.Auth = "off"
	})
	ctx := context.Background()
	ids := buildFlow(t, a, ctx)

	// The landing over HTTP, for a second Toloker: a redirect with a code.
	pool, err := crowdgatev1.NewPoolServiceClient(a.conn).GetPool(ctx, &crowdgatev1.GetPoolRequest{PoolId: ids["pool_id"]})
	if err != nil {
		t.Fatal(err)
	}
	asg, err := a.sim.CreateAssignment(pool.GetPool().GetTolokaPoolId(), "toloker-2")
	if err != nil {
		t.Fatal(err)
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(a.base + LandingPath + "?assignment_id=" + asg.ID)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.HasPrefix(loc, "https://label.example.com/start") || !strings.Contains(loc, "code=") {
		t.Fatalf("landing answered %d Location %q, want a redirect to the platform with a code", resp.StatusCode, loc)
	}
	code := loc[strings.Index(loc, "code=")+len("code="):]
	if i := strings.IndexAny(code, "&#"); i >= 0 {
		code = code[:i]
	}
	sessions := crowdgatev1.NewSessionServiceClient(a.conn)
	ex, err := sessions.ExchangeCode(ctx, &crowdgatev1.ExchangeCodeRequest{Code: code})
	if err != nil {
		t.Fatalf("ExchangeCode on the cluster: %v", err)
	}
	if ex.GetToken() == "" || ex.GetSession().GetUserId() != "toloker-2" {
		t.Fatalf("exchange gave token %q for user %q, want a token for toloker-2", ex.GetToken(), ex.GetSession().GetUserId())
	}

	// Submits through the outbox, one replayed: Toloka pays each once.
	subs := crowdgatev1.NewSubmissionServiceClient(a.conn)
	for i, retry := range []string{"r-1", "r-2", "r-1"} {
		if _, err := subs.Submit(ctx, &crowdgatev1.SubmitRequest{
			SessionId: ex.GetSession().GetSessionId(), RetryId: retry, Reward: "0.25", RealTasksCount: proto.Int32(1),
		}); err != nil {
			t.Fatalf("Submit %d on the cluster: %v", i, err)
		}
	}
	waitFor(t, 30*time.Second, "every submit to be delivered", func() bool {
		tot, err := subs.GetPoolTotals(ctx, &crowdgatev1.GetPoolTotalsRequest{PoolId: ids["pool_id"]})
		return err == nil && tot.GetTotals().GetQueued() == 0 && tot.GetTotals().GetDelivered() == 3
	})
	// The records really spread over the masters.
	holding := 0
	for _, n := range nodes {
		if size, err := n.DBSize(ctx).Result(); err == nil && size > 0 {
			holding++
		}
	}
	if holding < 2 {
		t.Errorf("only %d of 3 masters hold keys: the flow did not use the cluster", holding)
	}
	ledger := a.sim.Ledger(tolokasim.LedgerFilter{UserID: "toloker-2"})
	if ledger.Count != 2 || ledger.RewardTotal.String() != "0.5" {
		t.Errorf("Toloka paid toloker-2 %d submits, %s in all; want 2 submits, 0.5", ledger.Count, ledger.RewardTotal)
	}
}
