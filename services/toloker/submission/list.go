package submission

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
)

// maxScan bounds the records one ListSubmissions call reads while
// filtering; a page may then be short, with a token to go on.
const maxScan = 5000

// ListSubmissions lists a pool's submissions, newest first, filtered by
// user, state and creation time. Time bounds and pages are ranges of the
// pool's index (ids begin with their creation time), merged over the
// shards that hold its parts; the dead letters have an index of their own;
// the user and other states are filtered while reading, at most maxScan
// records a call (a short page then carries a token to go on).
func (s *Service) ListSubmissions(ctx context.Context, req *crowdgatev1.ListSubmissionsRequest) (*crowdgatev1.ListSubmissionsResponse, error) {
	if req.GetPoolId() == "" {
		return nil, serviceerror.NewInvalidArgument("pool_id", "is required")
	}
	if err := checkID("pool_id", req.GetPoolId()); err != nil {
		return nil, err
	}
	if err := checkID("user_id", req.GetUserId()); err != nil {
		return nil, err
	}
	page, err := paging.Parse(listName(req), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	size := page.Size
	if _, ok := crowdgatev1.SubmissionState_name[int32(req.GetState())]; !ok {
		return nil, serviceerror.NewInvalidArgument("state", "unknown state %d", req.GetState())
	}
	from, to := req.GetCreateTimeFrom(), req.GetCreateTimeTo()
	for _, t := range []struct {
		name string
		ok   bool
		err  error
	}{{"create_time_from", from != nil, from.CheckValid()}, {"create_time_to", to != nil, to.CheckValid()}} {
		if t.ok && t.err != nil {
			return nil, serviceerror.NewInvalidArgument(t.name, "%v", t.err)
		}
	}
	tenantID := tenant.FromContext(ctx)
	poolID := req.GetPoolId()
	if _, err := s.catalog.Pool(ctx, tenantID, poolID); err != nil {
		return nil, err
	}
	shards, err := s.shardCount(ctx)
	if err != nil {
		return nil, err
	}

	// Bounds on the lexicographic index of ids (which begin with their
	// creation time).
	hi, lo := "+", "-"
	if after := page.After; after != "" {
		if _, ok := parseID(after); !ok {
			return nil, serviceerror.NewInvalidArgument("page_token", "is not a next_page_token of this list")
		}
		hi = "(" + after
	}
	if to != nil {
		if b := "(" + idBound(to.AsTime()); hi == "+" || b < hi {
			hi = b
		}
	}
	if from != nil {
		lo = "[" + idBound(from.AsTime())
	}
	index := func(shard int) string { return s.st.indexKey(shard, tenantID, poolID) }
	if req.GetState() == crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD {
		index = func(shard int) string { return s.st.deadKey(shard, tenantID, poolID) }
	}
	keep := func(sub *crowdgatev1.Submission) bool {
		return (req.GetState() == crowdgatev1.SubmissionState_SUBMISSION_STATE_UNSPECIFIED || sub.GetState() == req.GetState()) &&
			(req.GetUserId() == "" || sub.GetUserId() == req.GetUserId())
	}

	// Every shard holds a part of the pool's index: merged, newest first.
	merged := newIndexMerge(s.rdb, shardKeys(shards, index), lo, hi, true, min(size*2, 500))
	var (
		out     []*crowdgatev1.Submission
		next    string
		scanned int
	)
	for {
		batch := min(max(size-len(out), 1)*2, 500)
		ids, err := merged.next(ctx, batch)
		if err != nil {
			return nil, err
		}
		recs, err := s.st.getMany(ctx, tenantID, ids)
		if err != nil {
			return nil, err
		}
		scanned += len(ids)
		exhausted := merged.exhausted()
		for i, r := range recs {
			if !keep(r.sub) {
				continue
			}
			out = append(out, r.sub)
			if len(out) == size {
				// A token, unless this was provably the last id.
				if !exhausted || i < len(recs)-1 {
					next = r.sub.GetSubmissionId()
				}
				break
			}
		}
		if exhausted || len(out) == size {
			break
		}
		if scanned >= maxScan {
			next = ids[len(ids)-1]
			break
		}
	}
	return &crowdgatev1.ListSubmissionsResponse{Submissions: out, NextPageToken: page.Token(next)}, nil
}

// listName names the list a ListSubmissions page token belongs to: the
// pool and every filter, so a token taken from the same pool's list with
// other filters (a dashboard that kept it while its user changed the
// state or the Toloker) is INVALID_ARGUMENT naming page_token instead of
// resuming that list in the middle. The unfiltered list keeps the name it
// always had ("submissions/<pool>"), so its tokens stay valid; filters
// follow a NUL, which no pool id holds (checkID).
func listName(req *crowdgatev1.ListSubmissionsRequest) string {
	f := url.Values{}
	if st := req.GetState(); st != crowdgatev1.SubmissionState_SUBMISSION_STATE_UNSPECIFIED {
		f.Set("state", strconv.Itoa(int(st)))
	}
	if u := req.GetUserId(); u != "" {
		f.Set("user_id", u)
	}
	for name, ts := range map[string]*timestamppb.Timestamp{"create_time_from": req.GetCreateTimeFrom(), "create_time_to": req.GetCreateTimeTo()} {
		if ts != nil {
			f.Set(name, fmt.Sprintf("%d.%09d", ts.GetSeconds(), ts.GetNanos()))
		}
	}
	name := "submissions/" + req.GetPoolId()
	if len(f) > 0 {
		name += "\x00" + f.Encode() // Encode sorts by key
	}
	return name
}
