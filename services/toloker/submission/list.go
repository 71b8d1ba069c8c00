package submission

import (
	"context"

	"github.com/redis/go-redis/v9"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/storage"
)

// maxScan bounds the records one ListSubmissions call reads while
// filtering; a page may then be short, with a token to go on.
const maxScan = 5000

// ListSubmissions lists a pool's submissions, newest first, filtered by
// user, state and creation time. Time bounds and pages are ranges of the
// pool's index (ids begin with their creation time); the dead letters have
// an index of their own; the user and other states are filtered while
// reading, at most maxScan records a call (a short page then carries a
// token to go on).
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
	page, err := paging.Parse("submissions/"+req.GetPoolId(), req.GetPageSize(), req.GetPageToken())
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
	shard := shardOf(tenantID, poolID)

	// Bounds on the lexicographic index of ids (which begin with their
	// creation time).
	hi, lo := "+", "-"
	if after := page.After; after != "" {
		if afterShard, ok := parseID(after); !ok || afterShard != shard {
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
	index := s.st.indexKey(shard, tenantID, poolID)
	if req.GetState() == crowdgatev1.SubmissionState_SUBMISSION_STATE_DEAD {
		index = s.st.deadKey(shard, tenantID, poolID)
	}
	keep := func(sub *crowdgatev1.Submission) bool {
		return (req.GetState() == crowdgatev1.SubmissionState_SUBMISSION_STATE_UNSPECIFIED || sub.GetState() == req.GetState()) &&
			(req.GetUserId() == "" || sub.GetUserId() == req.GetUserId())
	}

	var (
		out     []*crowdgatev1.Submission
		next    string
		scanned int
	)
	for {
		batch := min(max(size-len(out), 1)*2, 500)
		ids, err := s.rdb.ZRevRangeByLex(ctx, index, &redis.ZRangeBy{Max: hi, Min: lo, Count: int64(batch)}).Result()
		if err != nil {
			return nil, storage.Unavailable(err)
		}
		recs, err := s.st.getMany(ctx, shard, tenantID, ids)
		if err != nil {
			return nil, err
		}
		scanned += len(ids)
		exhausted := len(ids) < batch
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
		hi = "(" + ids[len(ids)-1]
		if scanned >= maxScan {
			next = ids[len(ids)-1]
			break
		}
	}
	return &crowdgatev1.ListSubmissionsResponse{Submissions: out, NextPageToken: page.Token(next)}, nil
}
