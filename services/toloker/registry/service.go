package registry

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/redis/go-redis/v9"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/restriction"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/toloker/submission"
)

// Payments reads the outbox's counters of Tolokers (*submission.Service):
// submits delivered and dead, and the reward delivered, exact.
type Payments interface {
	TolokerPay(ctx context.Context, tenantID string, userIDs []string) (map[string]submission.TolokerPay, error)
}

// Pools finds a tenant's pool (*catalog.Catalog): NotFound for another
// tenant's.
type Pools interface {
	Pool(ctx context.Context, tenantID, poolID string) (*crowdgatev1.Pool, error)
}

// Service implements crowdgatev1.TolokerServiceServer over the registry and
// the outbox's counters.
type Service struct {
	crowdgatev1.UnimplementedTolokerServiceServer
	reg   *Registry
	pools Pools
	pay   Payments
}

// NewService returns the Toloker service. Every argument is required.
func NewService(reg *Registry, pools Pools, pay Payments) (*Service, error) {
	if reg == nil || pools == nil || pay == nil {
		return nil, errors.New("registry: the registry, the pools and the payments are required")
	}
	return &Service{reg: reg, pools: pools, pay: pay}, nil
}

// checkUserID refuses a user_id that is empty (when required) or could not
// be Toloka's.
func checkUserID(field, v string, required bool) error {
	if v == "" {
		if required {
			return serviceerror.NewInvalidArgument(field, "is required")
		}
		return nil
	}
	if strings.IndexFunc(v, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsControl(r) || r == unicode.ReplacementChar
	}) >= 0 {
		return serviceerror.NewInvalidArgument(field, "%q is not a Toloka user_id", v)
	}
	return nil
}

// GetToloker returns one of the caller's tenant's Tolokers.
func (s *Service) GetToloker(ctx context.Context, req *crowdgatev1.GetTolokerRequest) (*crowdgatev1.GetTolokerResponse, error) {
	if err := checkUserID("user_id", req.GetUserId(), true); err != nil {
		return nil, err
	}
	tenantID := tenant.FromContext(ctx)
	got, err := s.read(ctx, tenantID, []string{req.GetUserId()})
	if err != nil {
		return nil, err
	}
	if len(got) == 0 {
		return nil, &serviceerror.NotFound{Resource: "toloker", ID: req.GetUserId()}
	}
	return &crowdgatev1.GetTolokerResponse{Toloker: got[0]}, nil
}

// ListTolokers lists the tenant's Tolokers, most recently active first (in
// the pool, with pool_id), within the activity range.
//
// Paging ends, and lists every Toloker present in the range for the whole
// paging and active at most once during it at least once, though activity
// reorders the list while it is paged: the first page pins its time,
// later pages go on down the list below the last one listed, and once the
// bottom is reached the Tolokers active since the first page and before
// the bottom follow, least recently active first (a Toloker active
// between pages moves above the cursor, where the walk down would never
// see them). A Toloker active while the list is paged may thus be listed
// twice, never twice on one page, never more. "Since" is by the replicas'
// clocks: activity a replica records with a clock behind the first page's
// can fall below that time and be missed, as before this walk up.
func (s *Service) ListTolokers(ctx context.Context, req *crowdgatev1.ListTolokersRequest) (*crowdgatev1.ListTolokersResponse, error) {
	from, to := req.GetActiveTimeFrom(), req.GetActiveTimeTo()
	for _, t := range []struct {
		name string
		ts   *timestamppb.Timestamp
	}{{"active_time_from", from}, {"active_time_to", to}} {
		if t.ts != nil {
			if err := t.ts.CheckValid(); err != nil {
				return nil, serviceerror.NewInvalidArgument(t.name, "%v", err)
			}
		}
	}
	list := "tolokers/" + req.GetPoolId() + "/" + stamp(from) + "/" + stamp(to)
	page, err := paging.Parse(list, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	cur, err := parseListCursor(page.After)
	if err != nil {
		return nil, err
	}
	tenantID := tenant.FromContext(ctx)
	index := s.reg.activityKey(tenantID)
	if req.GetPoolId() != "" {
		if _, err := s.pools.Pool(ctx, tenantID, req.GetPoolId()); err != nil {
			return nil, err
		}
		index = s.reg.poolKey(tenantID, req.GetPoolId())
	}
	now := s.reg.now()
	if page.After == "" {
		cur.since = now.UnixMilli()
	}
	lo := now.Add(-s.reg.retention).UnixMilli()
	if from != nil {
		lo = max(lo, from.AsTime().UnixMilli())
	}
	hi := "+inf"
	if to != nil {
		hi = "(" + strconv.FormatInt(to.AsTime().UnixMilli(), 10)
	}
	var entries []redis.Z
	next := ""
	if !cur.rising {
		top := hi
		if cur.after != nil {
			top = strconv.FormatInt(int64(cur.after.Score), 10)
		}
		entries, err = s.scan(ctx, index, strconv.FormatInt(lo, 10), top, cur.after, page.Size+1)
		if err != nil {
			return nil, err
		}
		if len(entries) > page.Size {
			entries = entries[:page.Size]
			next = listCursor{since: cur.since, after: &entries[len(entries)-1]}.String()
		} else if page.After != "" && cur.since > 0 {
			// The bottom: the Tolokers active since the first page follow,
			// up to now: the walk up ends (one active again while it runs
			// moves above it), so paging always ends and lists a Toloker at
			// most twice. (The first page read the whole list at once:
			// nothing moved.)
			cur = listCursor{since: cur.since, rising: true, ceiling: now.UnixMilli()}
		}
	}
	if cur.rising {
		listed := make(map[string]bool, len(entries))
		for _, e := range entries {
			listed[e.Member.(string)] = true
		}
		top := strconv.FormatInt(cur.ceiling, 10)
		if to != nil && to.AsTime().UnixMilli() <= cur.ceiling {
			top = hi
		}
		// Scores are whole milliseconds: after since is from since+1.
		var after *storage.ZCursor
		if cur.after != nil {
			after = &storage.ZCursor{Score: int64(cur.after.Score), Member: cur.after.Member.(string)}
		}
		risen, err := storage.ZAfter(ctx, s.reg.rdb, index, after, max(cur.since+1, lo), top, page.Size+1)
		if err != nil {
			return nil, err
		}
		last := cur.after
		for _, z := range risen {
			if listed[z.Member.(string)] {
				continue // listed above on this page, active since
			}
			if len(entries) == page.Size {
				next = listCursor{since: cur.since, rising: true, ceiling: cur.ceiling, after: last}.String()
				break
			}
			entries = append(entries, z)
			last = &z
		}
	}
	users := make([]string, len(entries))
	for i, e := range entries {
		users[i] = e.Member.(string)
	}
	got, err := s.read(ctx, tenantID, users)
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListTolokersResponse{Tolokers: got, NextPageToken: page.Token(next)}, nil
}

// listCursor is where a ListTolokers page resumes (paging.Page.After).
type listCursor struct {
	// since is when the first page was read (Unix ms); 0 in a token from
	// before it was kept, which pages down only.
	since int64
	// rising is true once the walk down reached the bottom: the walk goes
	// on up through the Tolokers active after since, up to ceiling (when
	// the walk up began, Unix ms).
	rising  bool
	ceiling int64
	// after is the last Toloker listed in the current direction (nil at
	// the start of the walk up).
	after *redis.Z
}

// String returns the cursor as stored in a page token:
// <ms>:<user> TAB d<since> down, u<since>,<ceiling> up (<since>: with no
// user at the start of the walk up). A gateway from before the walk up reads it as its
// own <ms>:<user> (a user_id has no TAB) and pages down from there, so a
// token answered across a rolling upgrade is never refused.
func (c listCursor) String() string {
	dir := "d"
	if c.rising {
		dir = "u"
	}
	at, user := c.since, ""
	if c.after != nil {
		at, user = int64(c.after.Score), c.after.Member.(string)
	}
	walk := dir + strconv.FormatInt(c.since, 10)
	if c.rising {
		walk += "," + strconv.FormatInt(c.ceiling, 10)
	}
	return strconv.FormatInt(at, 10) + ":" + user + "\t" + walk
}

// parseListCursor reads a listCursor; "" is the first page's, and one
// without a TAB a token's from a gateway before the walk up.
func parseListCursor(s string) (listCursor, error) {
	bad := serviceerror.NewInvalidArgument("page_token", "is not a next_page_token of this list")
	var c listCursor
	if s == "" {
		return c, nil
	}
	pos, walk, pinned := strings.Cut(s, "\t")
	ms, user, ok := strings.Cut(pos, ":")
	n, err := strconv.ParseInt(ms, 10, 64)
	if !ok || err != nil {
		return c, bad
	}
	if pinned {
		if walk == "" || (walk[0] != 'd' && walk[0] != 'u') {
			return c, bad
		}
		sinceText, ceilingText, hasCeiling := strings.Cut(walk[1:], ",")
		since, err := strconv.ParseInt(sinceText, 10, 64)
		if err != nil || since <= 0 || hasCeiling != (walk[0] == 'u') {
			return c, bad
		}
		c.since, c.rising = since, walk[0] == 'u'
		if c.rising {
			if c.ceiling, err = strconv.ParseInt(ceilingText, 10, 64); err != nil || c.ceiling < since {
				return c, bad
			}
		}
	}
	if user == "" {
		if !c.rising {
			return c, bad
		}
		return c, nil
	}
	c.after = &redis.Z{Score: float64(n), Member: user}
	return c, nil
}

func stamp(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return strconv.FormatInt(ts.AsTime().UnixMilli(), 10)
}

// scan reads up to n entries of an activity index from hi down to lo,
// newest first, after the cursor (same score, lower member; or lower score).
func (s *Service) scan(ctx context.Context, index, lo, hi string, after *redis.Z, n int) ([]redis.Z, error) {
	var out []redis.Z
	for offset := int64(0); len(out) < n; {
		batch := int64(n - len(out) + 16)
		zs, err := s.reg.rdb.ZRevRangeByScoreWithScores(ctx, index, &redis.ZRangeBy{Max: hi, Min: lo, Offset: offset, Count: batch}).Result()
		if err != nil {
			return nil, storage.Unavailable(err)
		}
		for _, z := range zs {
			if after != nil && z.Score == after.Score && z.Member.(string) >= after.Member.(string) {
				continue // at the cursor's time, not past it yet
			}
			out = append(out, z)
			if len(out) == n {
				break
			}
		}
		if int64(len(zs)) < batch {
			break
		}
		offset += batch
	}
	return out, nil
}

// read returns the Tolokers of the tenant among userIDs that the registry
// has, in order, with their bans and the outbox's counters.
func (s *Service) read(ctx context.Context, tenantID string, userIDs []string) ([]*crowdgatev1.Toloker, error) {
	if len(userIDs) == 0 {
		return nil, nil
	}
	records := make([]*redis.MapStringStringCmd, len(userIDs))
	bans := make([]*redis.MapStringStringCmd, len(userIDs))
	_, err := s.reg.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range userIDs {
			records[i] = p.HGetAll(ctx, s.reg.userKey(tenantID, u))
			bans[i] = p.HGetAll(ctx, s.reg.banKey(tenantID, u))
		}
		return nil
	})
	if err != nil {
		return nil, storage.Unavailable(err)
	}
	pay, err := s.pay.TolokerPay(ctx, tenantID, userIDs)
	if err != nil {
		return nil, err
	}
	now := s.reg.now()
	out := make([]*crowdgatev1.Toloker, 0, len(userIDs))
	for i, u := range userIDs {
		rec := records[i].Val()
		if len(rec) == 0 || rec["n"] == "" {
			continue // never landed, or forgotten
		}
		if a, _ := strconv.ParseInt(rec["a"], 10, 64); a+s.reg.retention.Milliseconds() <= now.UnixMilli() {
			continue // past the retention by this clock (Redis drops it by its own)
		}
		var fields []string
		for k, v := range bans[i].Val() {
			fields = append(fields, k, v)
		}
		out = append(out, s.toloker(tenantID, u, rec, s.reg.decodeRestrictions(fields, now), pay[u], now))
	}
	return out, nil
}

// toloker builds the API's view of a stored record.
func (s *Service) toloker(tenantID, userID string, rec map[string]string, bans []restriction.Restriction, pay submission.TolokerPay, now time.Time) *crowdgatev1.Toloker {
	ms := func(field string) int64 {
		n, _ := strconv.ParseInt(rec[field], 10, 64)
		return n
	}
	ts := func(n int64) *timestamppb.Timestamp {
		if n <= 0 {
			return nil
		}
		return timestamppb.New(time.UnixMilli(n))
	}
	type worked struct {
		id string
		at int64
	}
	var pools, projects []worked
	for f, v := range rec {
		at, _ := strconv.ParseInt(v, 10, 64)
		if id, ok := strings.CutPrefix(f, "p:"); ok {
			pools = append(pools, worked{id, at})
		} else if id, ok := strings.CutPrefix(f, "j:"); ok {
			projects = append(projects, worked{id, at})
		}
	}
	ids := func(ws []worked) []string {
		sort.Slice(ws, func(i, j int) bool {
			if ws[i].at != ws[j].at {
				return ws[i].at > ws[j].at
			}
			return ws[i].id < ws[j].id
		})
		out := make([]string, len(ws))
		for i, w := range ws {
			out[i] = w.id
		}
		return out
	}
	sess := &crowdgatev1.TolokerSessions{
		Started:     ms("n"),
		Live:        int64(len(liveSessions(rec, now))),
		Closed:      ms("e:closed"),
		Restricted:  ms("e:restricted"),
		FilteredOut: ms("e:filtered_out"),
		Ended:       ms("e:ended"),
		Revoked:     ms("e:revoked"),
	}
	sess.Expired = max(0, sess.Started-sess.Live-sess.Closed-sess.Restricted-sess.FilteredOut-sess.Ended-sess.Revoked)
	t := &crowdgatev1.Toloker{
		UserId:               userID,
		TenantId:             tenantID,
		FirstLandingTime:     ts(ms("f")),
		LastLandingTime:      ts(ms("l")),
		LastActivityTime:     ts(ms("a")),
		ExpireTime:           ts(ms("a") + s.reg.retention.Milliseconds()),
		ProjectIds:           ids(projects),
		PoolIds:              ids(pools),
		Sessions:             sess,
		SubmissionsDelivered: pay.Delivered,
		SubmissionsDead:      max(0, pay.Dead),
		RewardDelivered:      pay.RewardDelivered,
	}
	if t.RewardDelivered == "" {
		t.RewardDelivered = "0.00"
	}
	for _, b := range bans {
		r := &crowdgatev1.TolokerRestriction{
			BanId: b.ID, Scope: b.Scope.Proto(),
			CredentialId: b.Target.CredentialID, ProjectId: b.Target.ProjectID, PoolId: b.Target.PoolID,
		}
		if !b.Expires.IsZero() {
			r.WillExpire = timestamppb.New(b.Expires)
		}
		t.Restrictions = append(t.Restrictions, r)
	}
	return t
}
