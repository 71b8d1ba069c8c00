// The race detector is off for this test (make test runs it a second
// time, without -race): go-redis v9.23.0, the newest the registry serves,
// races inside ClusterClient.processPipeline while slots move. A node
// batch whose first command answers TRYAGAIN (a script during MIGRATE) is
// requeued whole while one of its commands that answered MOVED/ASK is
// queued for the target node too, so two node goroutines of the next
// attempt write that command's reply (osscluster.go 2295-2296, 2319-2321,
// 2343-2348). Every script Crowdgate sends is safe to run twice, so the
// test's own assertions (each retry_id one submission, paid once, exact
// totals) hold; under -race the library's race fails it now and then.
//go:build !race

package gateway

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/platform/secretbox"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// TestShardsGrowAndSlotsMoveUnderLoadOnRedisCluster runs submits without
// pause against a 3-master Redis Cluster while the system changes under
// them: a replica with 16 shards alone, then beside it a replica with 32
// (more shards than masters, the count raised on a running system), then
// every submission slot of the first master moved to the second (keys
// migrated with MIGRATE while the scripts run), then the 16-shard replica
// stopped. Every submit is replayed through the other replica while both
// run. At the end every retry_id is one submission, delivered and paid
// once, the pool's totals are exact, its history lies on more than one
// master, and the landing's limits are spread over the masters too.
func TestShardsGrowAndSlotsMoveUnderLoadOnRedisCluster(t *testing.T) {
	clusterURL, nodes := startRedisCluster(t)
	ctx := context.Background()
	sim, simSrv := tolokasim.NewTestServer(tolokasim.Config{
		APIKeys: map[string]string{testTolokaKey: "acme"}, Logger: slog.New(slog.DiscardHandler),
		RateLimits: tolokasim.UnlimitedRateLimits(),
	})
	t.Cleanup(simSrv.Close)
	key := base64.StdEncoding.EncodeToString(secretbox.NewRandomKey()) // one key ring for both replicas
	replica := func(shards int) (*accessGateway, func() error) {
		cfg, err := Load([]string{"-http-addr=127.0.0.1:0", "-grpc-addr=127.0.0.1:0"}, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Redis.URL, cfg.Redis.Mode, cfg.Redis.Prefix = clusterURL, "cluster", "crowdgate:"
		cfg.Toloka.ProductionURL, cfg.Toloka.SandboxURL = simSrv.URL+"/api/v1", simSrv.URL+"/api/v1"
		cfg.Access.Auth, cfg.Secrets.Key = "off", key
		cfg.Submission.Shards = shards
		g, stop := startLoggingGateway(t, cfg, slog.New(slog.DiscardHandler), nil)
		conn, err := grpc.NewClient(g.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return &accessGateway{g: g, base: "http://" + g.HTTPAddr(), conn: conn, sim: sim}, stop
	}
	a, stopA := replica(16)
	ids := buildFlow(t, a, ctx)
	pool, err := crowdgatev1.NewPoolServiceClient(a.conn).GetPool(ctx, &crowdgatev1.GetPoolRequest{PoolId: ids["pool_id"]})
	if err != nil {
		t.Fatal(err)
	}
	tolokaPool := pool.GetPool().GetTolokaPoolId()
	var sessions []string
	for i := range 8 {
		asg, err := sim.CreateAssignment(tolokaPool, fmt.Sprintf("worker-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		s, err := crowdgatev1.NewSessionServiceClient(a.conn).StartSession(ctx, &crowdgatev1.StartSessionRequest{AssignmentId: asg.ID})
		if err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, s.GetSession().GetSessionId())
	}

	// The load: workers submit new retry_ids through the live replicas in
	// turn, each retried until it is answered, and replayed through
	// another live replica, which must name the same submission.
	var (
		live     atomic.Pointer[[]crowdgatev1.SubmissionServiceClient]
		accepted atomic.Int64
		resent   atomic.Int64 // requests sent again after an error
		mu       sync.Mutex
		first    = map[string]string{} // retry_id -> submission id
		problems []string
	)
	setLive := func(gs ...*accessGateway) {
		var cs []crowdgatev1.SubmissionServiceClient
		for _, g := range gs {
			cs = append(cs, crowdgatev1.NewSubmissionServiceClient(g.conn))
		}
		live.Store(&cs)
	}
	setLive(a)
	// submit sends req through the live replica pick chooses, again
	// through the then live ones until it is answered.
	submit := func(pick int, req *crowdgatev1.SubmitRequest) string {
		retry := req.GetRetryId()
		for try := 0; ; try++ {
			cs := *live.Load()
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err := cs[(pick+try)%len(cs)].Submit(cctx, req)
			cancel()
			if err == nil {
				return resp.GetSubmission().GetSubmissionId()
			}
			resent.Add(1)
			if try == 50 {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("submit %s: %v", retry, err))
				mu.Unlock()
				return ""
			}
			// A slot in migration may answer TRYAGAIN (UNAVAILABLE here),
			// a stopped replica not at all: the same request again,
			// through the load balancer, as a platform would.
			select {
			case <-time.After(20 * time.Millisecond):
			case <-ctx.Done():
				return ""
			}
		}
	}
	stopLoad := make(chan struct{})
	var load sync.WaitGroup
	for w := range 6 {
		load.Go(func() {
			for n := 0; ; n++ {
				select {
				case <-stopLoad:
					return
				default:
				}
				retry := fmt.Sprintf("load-%d-%05d", w, n)
				req := &crowdgatev1.SubmitRequest{
					SessionId: sessions[(w+n)%len(sessions)], RetryId: retry, Reward: "0.01", StartTime: timestamppb.Now(),
				}
				id := submit(n, req)
				if id == "" {
					return
				}
				mu.Lock()
				first[retry] = id
				mu.Unlock()
				accepted.Add(1)
				if len(*live.Load()) > 1 {
					if again := submit(n+1, req); again != id {
						mu.Lock()
						problems = append(problems, fmt.Sprintf("%s accepted as %s, replayed through the other replica as %s", retry, id, again))
						mu.Unlock()
					}
				}
			}
		})
	}
	waitAccepted := func(n int64, what string) {
		t.Helper()
		target := accepted.Load() + n
		waitFor(t, 60*time.Second, what, func() bool { return accepted.Load() >= target })
	}

	waitAccepted(150, "submits through the 16-shard replica")
	b, _ := replica(32)
	setLive(a, b)
	waitAccepted(150, "submits through the 16- and 32-shard replicas")

	before := accepted.Load()
	slots, keys := moveSubmissionSlots(t, nodes, 0, 1, 32)
	during := accepted.Load() - before
	if slots == 0 || keys == 0 {
		t.Fatalf("moved %d slots with %d keys: the first master held no submission shard, the test moves nothing", slots, keys)
	}
	t.Logf("moved %d submission slots, %d keys, while %d submits were accepted", slots, keys, during)
	if during == 0 {
		t.Error("no submit was accepted while the slots moved: the move was not under load")
	}
	waitAccepted(150, "submits after the slots moved")
	setLive(b)
	if err := stopA(); err != nil {
		t.Errorf("the 16-shard replica's shutdown: %v", err)
	}
	waitAccepted(100, "submits through the 32-shard replica alone")
	close(stopLoad)
	load.Wait()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d retry_ids submitted, %d requests sent again after an error", len(first), resent.Load())
	for _, p := range problems {
		t.Error(p)
	}
	subs := crowdgatev1.NewSubmissionServiceClient(b.conn)
	want := int64(len(first)) + 1 // and buildFlow's one submit
	var tot *crowdgatev1.PoolTotals
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := subs.GetPoolTotals(ctx, &crowdgatev1.GetPoolTotalsRequest{PoolId: ids["pool_id"]})
		if err == nil {
			tot = resp.GetTotals()
		}
		if err == nil && tot.GetDelivered() >= want {
			break
		}
		if time.Now().After(deadline) {
			dead, _ := subs.ListSubmissions(ctx, &crowdgatev1.ListSubmissionsRequest{PoolId: ids["pool_id"], State: crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD, PageSize: 1})
			t.Logf("dead: %v", dead)
			t.Fatalf("not every submission delivered within a minute: totals %v (%v), want %d delivered", tot, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if tot.GetReceived() != want || tot.GetDelivered() != want || tot.GetQueued() != 0 || tot.GetDead() != 0 {
		t.Errorf("pool totals %v, want %d received and delivered (one per retry_id)", tot, want)
	}
	paid := map[string]int{}
	for _, e := range sim.Ledger(tolokasim.LedgerFilter{}).Entries {
		paid[e.RetryID]++
	}
	for retry := range first {
		if paid[retry] != 1 {
			t.Errorf("retry_id %s paid %d times, want once", retry, paid[retry])
		}
	}
	shards := map[int]bool{}
	for _, id := range first {
		n, _ := strconv.Atoi(id[strings.LastIndexByte(id, '_')+1:])
		shards[n] = true
	}
	if len(shards) <= 16 {
		t.Errorf("%d submissions used %d shards, want more than 16 once the count was raised", len(first), len(shards))
	}

	// The pool's history, and the landing's limits, lie on several masters.
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i := range 12 {
		asg, err := sim.CreateAssignment(tolokaPool, fmt.Sprintf("lander-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := noRedirect.Get(b.base + LandingPath + "?assignment_id=" + asg.ID)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("landing %d answered %d", i, resp.StatusCode)
		}
	}
	for what, pattern := range map[string]string{
		"the pool's submission records":       "crowdgate:sub:{sub:*",
		"the landing's per-assignment limits": "*}:landing-asg",
	} {
		holding := 0
		for _, n := range nodes {
			keys, _, err := n.Scan(ctx, 0, pattern, 100000).Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) > 0 {
				holding++
			}
		}
		if holding < 2 {
			t.Errorf("%s are on %d of 3 masters, want them spread", what, holding)
		}
	}
}

// moveSubmissionSlots moves the hash slots of the submission shards
// {sub:0}..{sub:shards-1} that node from serves to node to, one slot at a
// time as redis-cli --cluster reshard does (IMPORTING, MIGRATING, MIGRATE
// of the keys in batches, then the slot's new owner told to every node),
// while the cluster serves. It returns how many slots and keys it moved.
func moveSubmissionSlots(t *testing.T, nodes []*redis.Client, from, to, shards int) (slots, keys int) {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, len(nodes))
	for i, n := range nodes {
		id, err := n.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	host, port, err := net.SplitHostPort(nodes[to].Options().Addr)
	if err != nil {
		t.Fatal(err)
	}
	owned := map[int64]bool{}
	ranges, err := nodes[from].ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	inFrom := func(slot int64) bool {
		for _, r := range ranges {
			if int64(r.Start) <= slot && slot <= int64(r.End) && len(r.Nodes) > 0 && r.Nodes[0].ID == ids[from] {
				return true
			}
		}
		return false
	}
	for shard := range shards {
		slot, err := nodes[from].ClusterKeySlot(ctx, "{sub:"+strconv.Itoa(shard)+"}").Result()
		if err != nil {
			t.Fatal(err)
		}
		if inFrom(slot) {
			owned[slot] = true
		}
	}
	for slot := range owned {
		must := func(c *redis.Client, args ...any) {
			if err := c.Do(ctx, args...).Err(); err != nil {
				t.Fatalf("%v: %v", args, err)
			}
		}
		must(nodes[to], "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[from])
		must(nodes[from], "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to])
		for {
			batch, err := nodes[from].ClusterGetKeysInSlot(ctx, int(slot), 50).Result()
			if err != nil {
				t.Fatal(err)
			}
			if len(batch) == 0 {
				break
			}
			args := []any{"MIGRATE", host, port, "", 0, 10000, "KEYS"}
			for _, k := range batch {
				args = append(args, k)
			}
			must(nodes[from], args...)
			keys += len(batch)
		}
		for _, n := range []int{to, from, 3 - from - to} {
			must(nodes[n], "CLUSTER", "SETSLOT", slot, "NODE", ids[to])
		}
	}
	return len(owned), keys
}
