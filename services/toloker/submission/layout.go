package submission

// Layout: how many shards the submissions are spread over, and how that
// number changes on a running system without a submission lost, delivered
// twice or paid twice.
//
// Placement. A submission with a retry_id goes to shard
// hash(tenant, pool, retry_id) mod S, S the replica's shard count
// (Settings.Shards, CROWDGATE_SUBMISSION_SHARDS); one without a retry_id
// cannot be replayed and goes to a random shard. So a pool's submissions,
// and with them its totals, indexes and dead letters (each shard holds its
// part; readers add and merge the parts), spread over every shard and over
// the masters of a Redis Cluster. A submission's id ends with its shard, so
// every later step (delivery, RetrySubmission, GetSubmission, retention)
// finds it whatever S is by then.
//
// Layouts. A layout is a placement rule: "r<S>" (by retry_id over S
// shards), or "p16", the rule before this version (by pool, over 16). Every
// replica says in Redis which layout it uses, with its retention
// (retention.go): the hash <prefix>sublayout holds, for each layout, when a
// replica first and last said it (f:<layout>, l:<layout>, unix ms; a
// layout said for the first time is stamped after every layout known,
// whatever the replica's clock), when it was retired (r:<layout>), and
// "max", the most shards any layout ever had.
// Workers, readers and the retention sweep cover shards 0..max-1 for ever,
// so lowering S again loses nothing: old shards drain, new ones fill. A
// layout no replica has said for the longest retention R is retired; one
// retired for R more is dropped; a retired layout said again is back. The
// first replica of this version to find no layout hash but outbox streams
// (data of the rule before) says "p16" for it.
//
// One retry_id, one submission, across layouts. An idempotency key is in
// the shard its layout places it in, so replicas with different layouts
// would look in different shards. The arbiter is the oldest layout (first
// said) not retired; the chain is the retired layouts older than it, oldest
// first, then the arbiter. Each layout instance (a layout and when it was
// first said) has claim keys of its own, one per retry_id, in the shard it
// places the retry_id in: arb:{sub:N}:<instance>:<tenant>:<pool>:<retry_id>
// holding "fwd:<shard>", the shard the retry_id belongs to. A submit with a
// retry_id walks the chain: at each layout's shard x, one script
// (lua/decide.lua) answers a replay when x's idempotency key holds a
// submission id, and otherwise proposes the submit's shard t as the
// layout's claim (SET if empty); a claim found there replaces t and is
// carried on down the chain. Then it is accepted in t (accept.lua), which
// reads the arbiter's claim key when t is the arbiter's shard: a claim
// naming another shard sends the submit there ("forward", once: that shard
// is not the arbiter's). When t is the arbiter's shard no claim is written
// there: accept.lua decides, reading the claim key and the idempotency key
// together. So with one layout in use nothing is added to a submit;
// otherwise one script call per chain layout whose shard differs from t.
//
// Why every submit of a retry_id reaches the same shard. The arbiter's
// claim key and idempotency key decide together in one slot: the first
// of a claim (decide.lua) or a submission id (accept.lua) there is
// final, and every later walk with that arbiter takes it. Views differ
// only for a minute (a replica reads the hash at least every
// min(1m, R/10)) around two moments: when a layout A retires (chains [A]
// and [A, B] meet: both pass A's keys first, and B's claim only ever takes
// A's decision) and when it is dropped (chains [A, B] and [B] meet, R after
// it retired: a walk through A carries A's decision into B's claim, where
// a decision made by a walk without A wins). Work decided through A alone
// was decided before A retired, plus that minute, so a resend reaching a
// chain without A is R − 1m old or more and the replay window (R/2,
// retention.go) refuses it. Claim keys belong to one layout instance, so
// claims left in a dropped layout's keys are never read again (a first
// design kept claims in the idempotency keys, shared by shard number with
// later layouts, and a review found a double payment and a submit that
// could never settle at a drop: layout_drop_test.go). A submission's
// record lists the claim keys its submit wrote or followed (arb); the
// retention sweep deletes them after the submission, as it deletes the
// idempotency key, and a claim whose submit never completed expires
// (claimTTL). The claim is written before the accept, so a submit that
// fails between them accepted nothing: its resend walks the chain again.
//
// The legacy layout's claims are also written in its shard's idempotency
// key (when empty), where the version before, which knows no claim keys,
// finds a value that is not a submission and accepts nothing; this version
// reads a "fwd:" value in an idempotency key as no submission.
//
// Claims expire after claimTTL, but the retention sweep renews the claims
// of submissions still queued or dead (kept until delivered, however
// long), so a resend is always led to them. Known limit (a third review):
// the legacy layout is seeded only when the version before left outbox
// streams (its replicas create them when they start), and it is dropped
// two retentions after the upgrade whatever still runs: replicas of the
// version before must be gone by then.
//
// The version before this one wrote no claims and read only the pool's
// shard: while both versions run, an old replica answers a submit whose
// key holds a claim with an error (the platform's resend reaches an
// upgraded replica), and its archive check would not see queued work in
// other shards. Finish the upgrade before changing the count.

import (
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// Shard counts a replica may use. MaxShards bounds the shard number in an
// id, so it cannot change.
const (
	DefaultShards = 16
	MaxShards     = 1024
)

// legacyLayout is the rule before layouts existed: every submission of a
// pool in shard hash(tenant, pool) mod legacyShards.
const (
	legacyLayout = "p16"
	legacyShards = 16
)

var (
	//go:embed lua/layout.lua
	layoutLua    string
	layoutScript = redis.NewScript(layoutLua)
	//go:embed lua/decide.lua
	decideLua    string
	decideScript = redis.NewScript(decideLua)
)

// layoutName is the layout of a replica placing by retry_id over shards.
func layoutName(shards int) string { return "r" + strconv.Itoa(shards) }

// shardOfRetry is the shard of a retry_id of a tenant's pool under the
// layout name (legacyLayout or "r<S>").
func shardOfRetry(layout, tenantID, poolID, retryID string) int {
	if layout == legacyLayout {
		return shardOf(tenantID, poolID)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(layout, "r"))
	if err != nil || n < 1 {
		n = DefaultShards
	}
	return int(hashParts(tenantID, poolID, retryID) % uint32(n))
}

// shardOf is the shard of a tenant's pool under the legacy layout.
func shardOf(tenantID, poolID string) int {
	return int(hashParts(tenantID, poolID) % legacyShards)
}

// hashParts is the FNV-1a hash of parts joined by NUL bytes.
func hashParts(parts ...string) uint32 {
	h := fnv.New32a()
	for i, p := range parts {
		if i > 0 {
			_, _ = h.Write([]byte{0})
		}
		_, _ = h.Write([]byte(p))
	}
	return h.Sum32()
}

// layoutView is what a replica knows of the layouts in use.
type layoutView struct {
	// chain is the layouts whose shards decide a retry_id, in order: the
	// retired ones still handing over (oldest first), then the arbiter;
	// instances names each with the time it was first said, which names
	// its claim keys (a layout dropped and said again starts afresh).
	chain, instances []string
	// max is the most shards any layout ever had: what readers cover.
	max int
}

// arbiter is the layout that decides alone once the retired ones have
// handed over: the last of the chain ("" in an empty view).
func (v layoutView) arbiter() string {
	if len(v.chain) == 0 {
		return ""
	}
	return v.chain[len(v.chain)-1]
}

// forwardPrefix starts an arbiter's claim value: "fwd:<shard>".
const forwardPrefix = "fwd:"

// parseForward returns the shard of a claim value, ok false when v is not one.
func parseForward(v string) (int, bool) {
	rest, ok := strings.CutPrefix(v, forwardPrefix)
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || n >= MaxShards {
		return 0, false
	}
	return n, true
}

// sayLayout says in Redis that this replica uses its layout at now, forgets
// layouts nobody said since forgetBefore, and returns the view.
func (r *retentions) sayLayout(ctx context.Context, now, forgetBefore time.Time) (layoutView, error) {
	r.mu.Lock()
	said := r.layoutSaid
	r.mu.Unlock()
	seed := "0"
	if !said {
		// The first time: data of the rule before layouts (its streams)
		// makes that rule a layout, if no replica has said one yet.
		n, err := r.rdb.Exists(ctx, r.layoutKey).Result()
		if err != nil {
			return layoutView{}, storage.Unavailable(err)
		}
		if n == 0 {
			legacy, err := r.legacyData(ctx)
			if err != nil {
				return layoutView{}, err
			}
			seed = bit(legacy)
		}
	}
	raw, err := layoutScript.Run(ctx, r.rdb, []string{r.layoutKey},
		r.ownLayout, r.shards, now.UnixMilli(), seed, forgetBefore.UnixMilli(), legacyLayout, legacyShards).StringSlice()
	if err != nil {
		return layoutView{}, storage.Unavailable(err)
	}
	r.mu.Lock()
	r.layoutSaid = true
	r.mu.Unlock()
	v := layoutView{max: r.shards}
	type layout struct {
		name    string
		first   int64
		retired bool
	}
	byName := map[string]*layout{}
	get := func(name string) *layout {
		if byName[name] == nil {
			byName[name] = &layout{name: name, first: -1}
		}
		return byName[name]
	}
	for i := 0; i+1 < len(raw); i += 2 {
		k, val := raw[i], raw[i+1]
		switch {
		case k == "max":
			if n, err := strconv.Atoi(val); err == nil {
				v.max = max(v.max, min(n, MaxShards))
			}
		case strings.HasPrefix(k, "f:"):
			if ms, err := strconv.ParseInt(val, 10, 64); err == nil {
				get(k[2:]).first = ms
			}
		case strings.HasPrefix(k, "r:"):
			get(k[2:]).retired = true
		}
	}
	var all []*layout
	for _, l := range byName {
		if l.first >= 0 {
			all = append(all, l)
		}
	}
	slices.SortFunc(all, func(a, b *layout) int { return cmp.Or(cmp.Compare(a.first, b.first), cmp.Compare(a.name, b.name)) })
	for _, l := range all {
		v.chain = append(v.chain, l.name)
		v.instances = append(v.instances, l.name+"@"+strconv.FormatInt(l.first, 10))
		if !l.retired {
			break // the arbiter: the oldest layout still said
		}
	}
	if len(v.chain) == 0 || byName[v.chain[len(v.chain)-1]].retired {
		// Never: this replica's layout was just said.
		return layoutView{}, fmt.Errorf("submission: the layout hash lists no layout in use after saying %s", r.ownLayout)
	}
	return v, nil
}

// legacyData reports whether an outbox stream of the rule before layouts
// exists.
func (r *retentions) legacyData(ctx context.Context) (bool, error) {
	cmds := make([]*redis.IntCmd, legacyShards)
	if _, err := r.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for shard := range cmds {
			cmds[shard] = p.Exists(ctx, r.streamKey(shard))
		}
		return nil
	}); err != nil {
		return false, storage.Unavailable(err)
	}
	for _, c := range cmds {
		if c.Val() > 0 {
			return true, nil
		}
	}
	return false, nil
}

// placement is where a new submission goes, as place decides it.
type placement struct {
	// shard is where it is accepted; replayOf, when set, is the
	// submission the retry_id already belongs to (nothing is accepted).
	shard    int
	replayOf string
	// check is the arbiter's claim key in shard, which accept.lua reads
	// ("" when shard is not the arbiter's shard for the retry_id), and
	// checkClaim its entry in claims should accept.lua follow it.
	check, checkClaim string
	// claims are the keys holding claims of the retry_id this submit
	// wrote or followed ("c<shard>@<instance>", "k<shard>" for a legacy
	// claim), kept with the submission for the retention sweep.
	claims []string
}

// place chooses the shard of a new submission: the retry_id's shard, as
// the chain of deciding layouts decides it (see the top of this file), when
// the platform gave one; a random shard otherwise. A rejected submit
// (reject true) writes no claim; it only looks.
func (s *Service) place(ctx context.Context, tenantID, poolID, retryID string, reject bool, now time.Time) (placement, error) {
	// Said (and so counted in the readers' max) before anything is
	// written to this replica's shards.
	v, err := s.retentions.layout(ctx, now)
	if err != nil {
		return placement{}, err
	}
	if retryID == "" {
		return placement{shard: rand.IntN(s.cfg.Shards)}, nil
	}
	p := placement{shard: shardOfRetry(s.retentions.ownLayout, tenantID, poolID, retryID)}
	var ttl time.Duration
	if !reject {
		_, longest, err := s.retentions.current(ctx, now)
		if err != nil {
			return placement{}, err
		}
		ttl = claimTTL(longest)
	}
	last := len(v.chain) - 1
	arbiterShard := shardOfRetry(v.chain[last], tenantID, poolID, retryID)
	for i, layout := range v.chain {
		x := shardOfRetry(layout, tenantID, poolID, retryID)
		if i == last && x == p.shard {
			break // accept.lua decides, reading this claim key
		}
		legacy := layout == legacyLayout
		res, err := decideScript.Run(ctx, s.rdb,
			[]string{s.st.idemKey(x, tenantID, poolID, retryID), s.st.claimKey(x, v.instances[i], tenantID, poolID, retryID)},
			forwardPrefix+strconv.Itoa(p.shard), bit(!reject), bit(legacy), ttl.Milliseconds()).StringSlice()
		if err != nil {
			return placement{}, storage.Unavailable(err)
		}
		switch {
		case len(res) == 2 && res[0] == "replay":
			if _, ok := parseID(res[1]); !ok {
				return placement{}, fmt.Errorf("submission: idempotency key of shard %d holds %q", x, res[1])
			}
			return placement{replayOf: res[1]}, nil
		case len(res) == 2 && res[0] == "claim" && res[1] == "":
			continue // looked, and no claim yet
		case len(res) == 2 && res[0] == "claim":
			y, ok := parseForward(res[1])
			if !ok {
				return placement{}, fmt.Errorf("submission: claim key of shard %d holds %q", x, res[1])
			}
			p.shard = y // an earlier claim decided: carried down the chain
		case len(res) == 1 && res[0] == "claimed":
		default:
			return placement{}, fmt.Errorf("submission: unexpected decide answer %v", res)
		}
		if !reject {
			p.claims = append(p.claims, "c"+strconv.Itoa(x)+"@"+v.instances[i])
			if legacy {
				p.claims = append(p.claims, "k"+strconv.Itoa(x))
			}
		}
	}
	if p.shard == arbiterShard {
		p.check = s.st.claimKey(arbiterShard, v.instances[last], tenantID, poolID, retryID)
		p.checkClaim = "c" + strconv.Itoa(arbiterShard) + "@" + v.instances[last]
	}
	return p, nil
}

// claimTTL is how long a claim lives at most: the retention sweep deletes
// it with the submission it names (which lives at least a retention), so
// the TTL only bounds the claims of submits that never completed. Four
// times the longest retention leaves room for raising the retention later.
func claimTTL(longest time.Duration) time.Duration { return 4 * longest }

// shardCount is how many shards readers cover: every shard any layout
// ever used, read from Redis now (one HGET). A replica says a larger count
// before it writes to a new shard, so a reader (the archive check, pool
// totals) never misses a shard's part.
func (s *Service) shardCount(ctx context.Context) (int, error) {
	n, err := s.rdb.HGet(ctx, s.retentions.layoutKey, "max").Int()
	if err != nil && !errors.Is(err, redis.Nil) {
		return 0, storage.Unavailable(err)
	}
	return max(min(n, MaxShards), s.cfg.Shards, DefaultShards), nil
}

// knownShards is the shard count as last read (without a round trip; at
// least the replica's own): what the workers and the event relay read.
func (s *Service) knownShards() int {
	s.retentions.mu.Lock()
	defer s.retentions.mu.Unlock()
	return max(s.retentions.view.max, s.cfg.Shards)
}

// errTooManyForwards answers a submit that accept.lua sent on twice: the
// shard an arbiter's claim names is not the arbiter's shard, so a second
// forward means a claim this code never writes.
var errTooManyForwards = &serviceerror.Unavailable{Message: "the submission's shard could not be settled; try again"}
