package gateway

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// sentinelGroup is a Redis master, its replica and one Sentinel, each a
// redis-server process on a free loopback port.
type sentinelGroup struct {
	master   *exec.Cmd
	sentinel *redis.SentinelClient
	replica  int
	url      string
}

func startSentinelGroup(t *testing.T) *sentinelGroup {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed (CI installs it): the Sentinel test needs it")
		return nil
	}
	dir := t.TempDir()
	start := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command("redis-server", args...)
		cmd.Dir = dir
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", name, err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	mPort, rPort, sPort := freePort(t), freePort(t), freePort(t)
	common := func(port int, name string) []string {
		return []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
			"--dbfilename", name + ".rdb", "--logfile", filepath.Join(dir, name+".log")}
	}
	g := &sentinelGroup{replica: rPort}
	g.master = start("master", common(mPort, "master")...)
	start("replica", append(common(rPort, "replica"), "--replicaof", "127.0.0.1", strconv.Itoa(mPort))...)
	conf := filepath.Join(dir, "sentinel.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(
		"port %d\nbind 127.0.0.1\nsentinel monitor crowdgate 127.0.0.1 %d 1\nsentinel down-after-milliseconds crowdgate 1000\nsentinel failover-timeout crowdgate 10000\nlogfile %s\n",
		sPort, mPort, filepath.Join(dir, "sentinel.log"))), 0o600); err != nil {
		t.Fatal(err)
	}
	start("sentinel", conf, "--sentinel")

	ctx := context.Background()
	replica := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", rPort)})
	t.Cleanup(func() { _ = replica.Close() })
	waitFor(t, 15*time.Second, "the replica to sync", func() bool {
		info, err := replica.Info(ctx, "replication").Result()
		return err == nil && strings.Contains(info, "master_link_status:up")
	})
	g.sentinel = redis.NewSentinelClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", sPort)})
	t.Cleanup(func() { _ = g.sentinel.Close() })
	waitFor(t, 15*time.Second, "Sentinel to see the master and its replica", func() bool {
		rs, err := g.sentinel.Replicas(ctx, "crowdgate").Result()
		return err == nil && len(rs) == 1
	})
	g.url = fmt.Sprintf("redis://127.0.0.1:%d/0?master_name=crowdgate", sPort)
	return g
}

// TestSubmitsSurviveASentinelFailover runs the flow on a Sentinel-managed
// Redis, kills the master in the middle and lets Sentinel promote the
// replica. Submits acknowledged before the failover (Submit WAITs for the
// replica) and those sent after it are each paid exactly once.
func TestSubmitsSurviveASentinelFailover(t *testing.T) {
	g := startSentinelGroup(t)
	a := startAccessGateway(t, func(c *Config) {
		c.Redis.URL, c.Redis.Mode, c.Redis.Prefix = g.url, "sentinel", "crowdgate:"
		c.Access.Auth = "off"
		c.Submission.MinReplicas = 1
		c.Submission.BaseBackoff, c.Submission.MaxBackoff = 200*time.Millisecond, time.Second
	})
	ctx := context.Background()
	ids := buildFlow(t, a, ctx)
	pool, err := crowdgatev1.NewPoolServiceClient(a.conn).GetPool(ctx, &crowdgatev1.GetPoolRequest{PoolId: ids["pool_id"]})
	if err != nil {
		t.Fatal(err)
	}
	asg, err := a.sim.CreateAssignment(pool.GetPool().GetTolokaPoolId(), "toloker-2")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := crowdgatev1.NewSessionServiceClient(a.conn).StartSession(ctx, &crowdgatev1.StartSessionRequest{AssignmentId: asg.ID})
	if err != nil {
		t.Fatal(err)
	}
	subs := crowdgatev1.NewSubmissionServiceClient(a.conn)
	// submit sends one submit the way a platform does: the same retry_id
	// again until Crowdgate accepts it (the failover may refuse a few).
	submit := func(retryID string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := subs.Submit(ctx, &crowdgatev1.SubmitRequest{SessionId: sess.GetSession().GetSessionId(), RetryId: retryID, Reward: "0.10"})
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("Submit %s never accepted: %v", retryID, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var sent []string
	for i := range 5 {
		id := fmt.Sprintf("before-%d", i)
		submit(id)
		sent = append(sent, id)
	}

	if err := g.master.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "Sentinel to promote the replica", func() bool {
		addr, err := g.sentinel.GetMasterAddrByName(ctx, "crowdgate").Result()
		return err == nil && len(addr) == 2 && addr[1] == strconv.Itoa(g.replica)
	})
	for i := range 5 {
		id := fmt.Sprintf("after-%d", i)
		submit(id)
		sent = append(sent, id)
	}

	waitFor(t, 60*time.Second, "every submit to be delivered after the failover", func() bool {
		tot, err := subs.GetPoolTotals(ctx, &crowdgatev1.GetPoolTotalsRequest{PoolId: ids["pool_id"]})
		return err == nil && tot.GetTotals().GetQueued() == 0 && tot.GetTotals().GetDelivered() == int64(len(sent)+1)
	})
	paid := map[string]int{}
	for _, e := range a.sim.Ledger(tolokasim.LedgerFilter{UserID: "toloker-2"}).Entries {
		paid[e.RetryID]++
	}
	for _, id := range sent {
		if paid[id] != 1 {
			t.Errorf("retry_id %s paid %d times, want once", id, paid[id])
		}
	}
	if len(paid) != len(sent) {
		t.Errorf("Toloka paid %d distinct submits, want %d", len(paid), len(sent))
	}
}
