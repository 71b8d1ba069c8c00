package submission

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/testsupport/fakeclock"
	"github.com/crowdgate/crowdgate/services/tools/tolokasim"
)

// replica is another Service on the fixture's Redis with shards shards;
// mutate, when set, adjusts the rest of its configuration.
func (f *fixture) replica(shards int, mutate func(*Config)) *Service {
	return f.newService(func(c *Config) {
		if mutate != nil {
			mutate(c)
		}
		c.Settings.Shards = shards
	})
}

// hourly is a fixture whose replicas share a fake clock and a one-hour
// retention (a 30-minute replay window).
type hourly struct {
	*fixture
	clock  *fakeclock.Clock
	config func(*Config)
}

// newHourly builds it; syncTimeout is Settings.SyncTimeout (-1: the
// workers deliver everything).
func newHourly(t *testing.T, start time.Time, syncTimeout time.Duration) *hourly {
	clock := fakeclock.New(start)
	config := func(c *Config) {
		c.Now = clock.Now
		c.Settings.SyncTimeout, c.Settings.Retention = syncTimeout, time.Hour
	}
	return &hourly{fixture: newFixture(t, config), clock: clock, config: config}
}

// replica is another replica with shards shards, on the shared clock.
func (h *hourly) replica(shards int) *Service { return h.fixture.replica(shards, h.config) }

// view says r's layout at the clock's time (reading Redis when r's copy is
// old) and returns r's view.
func (h *hourly) view(r *Service) layoutView {
	h.t.Helper()
	v, err := r.retentions.layout(h.ctx, h.clock.Now())
	if err != nil {
		h.t.Fatal(err)
	}
	return v
}

// inTurn has each of rs say its layout, a minute apart, the first now.
func (h *hourly) inTurn(rs ...*Service) {
	h.t.Helper()
	for i, r := range rs {
		if i > 0 {
			h.clock.Advance(time.Minute)
		}
		h.view(r)
	}
}

// minutes lets n minutes pass, each of rs saying its layout every minute
// (in that order), the way running replicas do.
func (h *hourly) minutes(n int, rs ...*Service) {
	h.t.Helper()
	for range n {
		h.clock.Advance(time.Minute)
		for _, r := range rs {
			h.view(r)
		}
	}
}

// refresh makes r read the layouts (and say its own) now, whatever the
// age of its copy, and returns its view.
func (h *hourly) refresh(r *Service) layoutView {
	h.t.Helper()
	if err := r.retentions.refresh(h.ctx, h.clock.Now()); err != nil {
		h.t.Fatal(err)
	}
	return h.view(r)
}

// submitVia submits through svc and fails the test on an error.
func (f *fixture) submitVia(svc *Service, req *crowdgatev1.SubmitRequest) *crowdgatev1.Submission {
	f.t.Helper()
	resp, err := svc.Submit(f.ctx, req)
	if err != nil {
		f.t.Fatalf("Submit(%v): %v", req, err)
	}
	return resp.GetSubmission()
}

// listAll pages through the pool's submissions (newest first) with pages
// of size.
func (f *fixture) listAll(svc *Service, size int32) []string {
	f.t.Helper()
	var ids []string
	token := ""
	for range 1000 {
		resp, err := svc.ListSubmissions(f.ctx, &crowdgatev1.ListSubmissionsRequest{PoolId: poolID, PageSize: size, PageToken: token})
		if err != nil {
			f.t.Fatal(err)
		}
		for _, s := range resp.GetSubmissions() {
			ids = append(ids, s.GetSubmissionId())
		}
		if token = resp.GetNextPageToken(); token == "" {
			return ids
		}
	}
	f.t.Fatal("ListSubmissions never ended")
	return nil
}

// TestRaisingAndLoweringTheShardCountPaysEachRetryIDOnce runs replicas with
// 16, 32 and then 7 shards on one Redis, as a rolling change of
// CROWDGATE_SUBMISSION_SHARDS would: every replica replays every retry_id
// another accepted, and gets the same submission back; Toloka is paid each
// retry_id once; the pool's submissions spread over the shards of every
// count, and the totals, the list and the export find all of them.
func TestRaisingAndLoweringTheShardCountPaysEachRetryIDOnce(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.SyncTimeout = -1 })
	replicas := []*Service{f.replica(16, nil), f.replica(32, nil), f.replica(7, nil)}
	s := f.toloker(tolokasim.UserState{})
	first := map[string]string{} // retry_id -> submission id
	var retries []string
	submit := func(via *Service, retry string) string {
		return f.submitVia(via, &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: retry, Reward: "0.01"}).GetSubmissionId()
	}
	for step, via := range replicas {
		// New work through this replica...
		for i := range 40 {
			retry := fmt.Sprintf("r%d-%02d", step, i)
			first[retry] = submit(via, retry)
			retries = append(retries, retry)
		}
		// ...and every retry_id so far replayed through every replica
		// started until now.
		for _, other := range replicas[:step+1] {
			for _, retry := range retries {
				if got := submit(other, retry); got != first[retry] {
					t.Fatalf("replay of %s through a %d-shard replica answered %s, want %s (accepted first)",
						retry, other.cfg.Shards, got, first[retry])
				}
			}
		}
	}
	if tot := f.totals(); tot.Received != int64(len(retries)) {
		t.Fatalf("the pool received %d submissions, want %d (one per retry_id)", tot.Received, len(retries))
	}
	shardsUsed := map[int]bool{}
	for _, id := range first {
		shard, _ := parseID(id)
		shardsUsed[shard] = true
	}
	if len(shardsUsed) < 16 || !slices.ContainsFunc(slices.Collect(maps.Keys(shardsUsed)), func(n int) bool { return n >= 16 }) {
		t.Errorf("the pool's 120 submissions are in %d shards, none past 15: %v; want them spread over the 32-shard layout too", len(shardsUsed), shardsUsed)
	}

	// Every replica delivers (the 7-shard one last, reading every shard).
	for _, r := range replicas {
		f.run(r)
	}
	f.waitTotals("every submission delivered", 30*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == int64(len(retries)) })
	f.paidOnce(retries)

	want := slices.Collect(maps.Values(first))
	slices.Sort(want)
	slices.Reverse(want)
	if diff := cmp.Diff(want, f.listAll(replicas[2], 7)); diff != "" {
		t.Errorf("ListSubmissions through the 7-shard replica, newest first (-want +got):\n%s", diff)
	}
	var exported []string
	if err := replicas[0].Export(f.ctx, tenant.Default, poolID, "", func(sub *crowdgatev1.Submission, _ string) error {
		exported = append(exported, sub.GetSubmissionId())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Reverse(want)
	if diff := cmp.Diff(want, exported); diff != "" {
		t.Errorf("Export through the 16-shard replica, oldest first (-want +got):\n%s", diff)
	}
	pay, err := replicas[2].TolokerPay(f.ctx, tenant.Default, []string{s.UserId})
	if err != nil {
		t.Fatal(err)
	}
	if p := pay[s.UserId]; p.Delivered != int64(len(retries)) || p.RewardDelivered != "1.20" {
		t.Errorf("the Toloker's pay read by the 7-shard replica: %+v, want %d delivered, 1.20", p, len(retries))
	}
}

// TestOneRetryIDSentAtOnceThroughReplicasOfDifferentCountsIsOneSubmission
// races the first submit of each retry_id through replicas with 16, 32
// and 5 shards: every answer names one submission, and one is made.
func TestOneRetryIDSentAtOnceThroughReplicasOfDifferentCountsIsOneSubmission(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.SyncTimeout = -1 })
	replicas := []*Service{f.replica(16, nil), f.replica(32, nil), f.replica(5, nil)}
	for _, r := range replicas {
		// Each says its layout before the race (the 16 is the oldest).
		if err := r.retentions.refresh(f.ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	s := f.toloker(tolokasim.UserState{})
	const n = 60
	got := make([][]string, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range n {
		for _, r := range replicas {
			for range 2 {
				wg.Go(func() {
					resp, err := r.Submit(f.ctx, &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: fmt.Sprintf("race-%02d", i), Reward: "0.10"})
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						t.Errorf("Submit race-%02d through %d shards: %v", i, r.cfg.Shards, err)
						return
					}
					got[i] = append(got[i], resp.GetSubmission().GetSubmissionId())
				})
			}
		}
	}
	wg.Wait()
	for i, ids := range got {
		if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != 1 {
			t.Errorf("race-%02d was answered with submissions %v, want one", i, ids)
		}
	}
	if tot := f.totals(); tot.Received != n {
		t.Errorf("totals %v, want %d received", tot, n)
	}
	f.waitTotals("delivered", 20*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == n })
	if led := f.ledger(); led.Count != n || led.RewardTotal.String() != "6" {
		t.Errorf("Toloka paid %d submits, %s in all; want %d, 6", led.Count, led.RewardTotal, n)
	}
}

// TestSubmissionsOfTheRuleBeforeLayoutsStayPaidOnce: a replica of the
// version before (every pool in one of 16 shards, the "p16" rule) accepts
// retry_ids; the first replica of this version finds its streams, makes
// that rule the arbiter, and replays are answered, never paid again.
func TestSubmissionsOfTheRuleBeforeLayoutsStayPaidOnce(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Settings.SyncTimeout = -1 })
	legacy := f.replica(16, nil)
	// The old version placed by pool and said nothing in the layout hash.
	legacy.retentions.ownLayout = legacyLayout
	legacy.retentions.layoutKey = f.redis.Prefix + "not-the-layout-hash"
	s := f.toloker(tolokasim.UserState{})
	first := map[string]string{}
	var retries []string
	for i := range 30 {
		retry := fmt.Sprintf("old-%02d", i)
		// The old version's accept, in the pool's shard.
		sub := f.submitVia(legacy, &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: retry, Reward: "0.05"})
		if shard, _ := parseID(sub.GetSubmissionId()); shard != shardOf(tenant.Default, poolID) {
			t.Fatalf("the old rule put %s in shard %d, want the pool's %d", retry, shard, shardOf(tenant.Default, poolID))
		}
		first[retry] = sub.GetSubmissionId()
		retries = append(retries, retry)
	}
	if n, _ := f.redis.Client.Exists(f.ctx, f.svc.retentions.layoutKey).Result(); n != 0 {
		t.Fatal("the old version wrote a layout hash")
	}
	upgraded := f.replica(16, nil)
	for _, retry := range retries {
		if got := f.submitVia(upgraded, &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: retry, Reward: "0.05"}).GetSubmissionId(); got != first[retry] {
			t.Fatalf("replay of %s after the upgrade answered %s, want %s", retry, got, first[retry])
		}
	}
	if v, err := upgraded.retentions.layout(f.ctx, time.Now()); err != nil || v.arbiter() != legacyLayout {
		t.Errorf("after the upgrade the arbiter is %q (%v), want the old rule %q", v.arbiter(), err, legacyLayout)
	}
	// New work through the upgraded replica: where the old version would
	// accept the retry_id (the pool's shard) it finds a claim, not nothing,
	// so an old replica still running accepts nothing (its accept script
	// claims the key with SET NX GET).
	fresh := pickRetry(t, func(s func(string) int) bool { return s("r16") != s(legacyLayout) })
	f.submitVia(upgraded, &crowdgatev1.SubmitRequest{SessionId: s.SessionId, RetryId: fresh, Reward: "0.05"})
	retries = append(retries, fresh)
	oldKey := upgraded.st.idemKey(shardOf(tenant.Default, poolID), tenant.Default, poolID, fresh)
	if got, err := f.redis.Client.SetArgs(f.ctx, oldKey, "sub_old_version", redis.SetArgs{Mode: "NX", Get: true}).Result(); err != nil || !strings.HasPrefix(got, forwardPrefix) {
		t.Errorf("the old version's SET NX GET in the pool's shard got %q (%v), want the claim", got, err)
	}
	f.run(upgraded)
	f.waitTotals("delivered", 20*time.Second, func(t *crowdgatev1.PoolTotals) bool { return t.Delivered == 31 })
	f.paidOnce(retries)
}

// TestAFreshRedisHasNoOldRuleAndARetiredLayoutHandsOver: without data of
// the version before, the first layout said is the arbiter; a layout no
// replica says for the longest retention is retired, and for one more
// retention it still decides first (a handover), before it is dropped.
func TestAFreshRedisHasNoOldRuleAndARetiredLayoutHandsOver(t *testing.T) {
	f := newHourly(t, time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), -1)
	clock := f.clock
	a, b := f.replica(16), f.replica(32)
	// What a view decides by: the chain's layouts and the shards read.
	type decides struct {
		Chain []string
		Max   int
	}
	view := func(r *Service) decides {
		v := f.view(r)
		if len(v.instances) != len(v.chain) {
			t.Errorf("view %+v: an instance is missing", v)
		}
		return decides{v.chain, v.max}
	}
	va := view(a)
	clock.Advance(time.Minute)
	vb := view(b)
	if diff := cmp.Diff([]decides{{[]string{"r16"}, 16}, {[]string{"r16"}, 32}}, []decides{va, vb}); diff != "" {
		t.Errorf("views of the 16- and 32-shard replicas (-want +got):\n%s", diff)
	}
	// The 16-shard replica goes away. An hour (the longest retention)
	// later r16 is retired: it still decides first, r32 after it.
	clock.Advance(time.Hour + 2*time.Minute)
	if diff := cmp.Diff(decides{[]string{"r16", "r32"}, 32}, view(b)); diff != "" {
		t.Errorf("r16 unsaid for the retention (-want +got):\n%s", diff)
	}
	// Another hour: dropped, r32 decides alone, still over 32 shards.
	clock.Advance(time.Hour + 2*time.Minute)
	if diff := cmp.Diff(decides{[]string{"r32"}, 32}, view(b)); diff != "" {
		t.Errorf("r16 retired for the retention (-want +got):\n%s", diff)
	}
	// Lowering later keeps reading every shard ever used.
	c := f.replica(4)
	if n, err := c.shardCount(f.ctx); err != nil || n != 32 {
		t.Errorf("a 4-shard replica reads %d shards (%v), want 32", n, err)
	}
}

// TestIndexMergeReadsShardsAsOneSortedIndex checks the k-way merge over
// parts of an index, both directions, with bounds and tiny batches.
func TestIndexMergeReadsShardsAsOneSortedIndex(t *testing.T) {
	f := newFixture(t, nil)
	rdb := f.redis.Client
	keys := []string{f.redis.Prefix + "m:{a}", f.redis.Prefix + "m:{b}", f.redis.Prefix + "m:{c}", f.redis.Prefix + "m:{d}"}
	var all []string
	for i := range 23 {
		id := fmt.Sprintf("id%03d", i)
		all = append(all, id)
		if err := rdb.ZAdd(f.ctx, keys[(i*7)%3], redis.Z{Member: id}).Err(); err != nil { // keys[3] stays empty
			t.Fatal(err)
		}
	}
	rev := slices.Clone(all)
	slices.Reverse(rev)
	for _, tc := range []struct {
		name   string
		lo, hi string
		rev    bool
		want   []string
	}{
		{"all, oldest first", "-", "+", false, all},
		{"all, newest first", "-", "+", true, rev},
		{"after id005", "(id005", "+", false, all[6:]},
		{"before id010, newest first", "-", "(id010", true, slices.Clone(rev[13:])},
		{"between", "[id003", "(id009", false, all[3:9]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, batch := range []int{1, 2, 5, 100} {
				m := newIndexMerge(rdb, keys, tc.lo, tc.hi, tc.rev, batch)
				var got []string
				for {
					ids, err := m.next(context.Background(), 3)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, ids...)
					if len(ids) < 3 {
						break
					}
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("batch %d (-want +got):\n%s", batch, diff)
				}
				if !m.exhausted() {
					t.Errorf("batch %d: not exhausted after a short read", batch)
				}
			}
		})
	}
}

// TestTheShardCountIsBoundedAndNamedWhenWrong: 1 to MaxShards are taken;
// anything else is refused at start with the setting's name.
func TestTheShardCountIsBoundedAndNamedWhenWrong(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		shards int
		ok     bool
	}{{1, true}, {16, true}, {MaxShards, true}, {-1, false}, {MaxShards + 1, false}} {
		_, err := New(f.config(func(c *Config) { c.Settings.Shards = tc.shards }))
		if got := err == nil; got != tc.ok {
			t.Errorf("New with %d shards: %v, want ok %v", tc.shards, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "CROWDGATE_SUBMISSION_SHARDS") {
			t.Errorf("New with %d shards: %q does not name the setting", tc.shards, err)
		}
	}
}
