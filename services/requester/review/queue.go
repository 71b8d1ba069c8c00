package review

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/access"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// MaxBatch bounds the assignments of one batch review.
const MaxBatch = 100

// batchConcurrency bounds the assignments of a batch decided at once (each
// is a GET and a PATCH to Toloka, within the account's rate limit).
const batchConcurrency = 8

// statusNames maps the API's statuses to Toloka's.
var statusNames = map[crowdgatev1.AssignmentStatus]toloka.AssignmentStatus{}

func init() {
	for t, api := range assignmentStatuses {
		statusNames[api] = t
	}
}

// ListAssignments is a pool's review queue (see the package doc).
func (s *Service) ListAssignments(ctx context.Context, req *crowdgatev1.ListAssignmentsRequest) (*crowdgatev1.ListAssignmentsResponse, error) {
	if req.GetPoolId() == "" {
		return nil, serviceerror.NewInvalidArgument("pool_id", "is required")
	}
	statuses := make([]string, 0, len(req.GetStatuses()))
	for i, st := range req.GetStatuses() {
		name, ok := statusNames[st]
		if !ok {
			return nil, serviceerror.NewInvalidArgument("statuses["+strconv.Itoa(i)+"]", "unknown assignment status %d", st)
		}
		if !slices.Contains(statuses, string(name)) {
			statuses = append(statuses, string(name))
		}
	}
	if len(statuses) == 0 {
		statuses = []string{string(toloka.AssignmentSubmitted)}
	}
	slices.Sort(statuses)
	if u := req.GetUserId(); strings.IndexFunc(u, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return nil, serviceerror.NewInvalidArgument("user_id", "%q is not a Toloka user_id", u)
	}
	from, to := req.GetSubmitTimeFrom(), req.GetSubmitTimeTo()
	for _, t := range []struct {
		name string
		ts   *timestamppb.Timestamp
	}{{"submit_time_from", from}, {"submit_time_to", to}} {
		if t.ts != nil {
			if err := t.ts.CheckValid(); err != nil {
				return nil, serviceerror.NewInvalidArgument(t.name, "%v", err)
			}
		}
	}
	// The token binds Toloka's last id to this pool and these filters.
	list := strings.Join([]string{"assignments", req.GetPoolId(), strings.Join(statuses, ","), req.GetUserId(), stamp(from), stamp(to)}, "/")
	page, err := paging.Parse(list, req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	tenantID := tenant.FromContext(ctx)
	r, err := s.catalog.ResolvePool(ctx, tenantID, req.GetPoolId())
	if err != nil {
		return nil, err
	}
	if r.Pool.GetTolokaPoolId() == "" {
		return nil, serviceerror.NewFailedPrecondition("pool %s has no Toloka pool yet", req.GetPoolId())
	}
	filters := url.Values{"pool_id": {r.Pool.GetTolokaPoolId()}}
	if u := req.GetUserId(); u != "" {
		filters.Set("user_id", u)
	}
	if from != nil {
		filters.Set("submitted_gte", toloka.NewTime(from.AsTime()).String())
	}
	if to != nil {
		filters.Set("submitted_lt", toloka.NewTime(to.AsTime()).String())
	}
	got, err := r.Account.ListAssignments(ctx, toloka.ListOptions{
		Limit: page.Size, Sort: "id", IDGt: page.After, Status: strings.Join(statuses, ","), Filters: filters,
	})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(got.Items))
	for i := range got.Items {
		ids[i] = got.Items[i].ID
	}
	sessions, err := s.sessions.OfAssignments(ctx, tenantID, ids)
	if err != nil {
		return nil, err
	}
	work, err := s.work.AssignmentWork(ctx, tenantID, r.Pool.GetPoolId(), ids)
	if err != nil {
		return nil, err
	}
	out := &crowdgatev1.ListAssignmentsResponse{Assignments: make([]*crowdgatev1.QueuedAssignment, 0, len(got.Items))}
	for i := range got.Items {
		a := &got.Items[i]
		q := work[a.ID]
		if q == nil {
			q = &crowdgatev1.QueuedAssignment{RewardTotal: "0.00", RewardDelivered: "0.00"}
		}
		q.Assignment = toProto(r.Pool, a)
		if sess := sessions[a.ID]; sess != nil {
			q.Session, q.SessionId = sess, sess.GetSessionId()
		}
		out.Assignments = append(out.Assignments, q)
	}
	if got.HasMore && len(ids) > 0 {
		out.NextPageToken = page.Token(ids[len(ids)-1])
	}
	return out, nil
}

func stamp(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return strconv.FormatInt(ts.AsTime().UnixMilli(), 10)
}

// BatchAcceptAssignments accepts many of a pool's assignments, each on its
// own.
func (s *Service) BatchAcceptAssignments(ctx context.Context, req *crowdgatev1.BatchAcceptAssignmentsRequest) (*crowdgatev1.BatchAcceptAssignmentsResponse, error) {
	results, err := s.batch(ctx, req.GetPoolId(), req.GetAssignmentIds(), toloka.AssignmentAccepted, req.GetPublicComment())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.BatchAcceptAssignmentsResponse{Results: results}, nil
}

// BatchRejectAssignments rejects many of a pool's assignments with one
// comment, each on its own.
func (s *Service) BatchRejectAssignments(ctx context.Context, req *crowdgatev1.BatchRejectAssignmentsRequest) (*crowdgatev1.BatchRejectAssignmentsResponse, error) {
	results, err := s.batch(ctx, req.GetPoolId(), req.GetAssignmentIds(), toloka.AssignmentRejected, req.GetPublicComment())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.BatchRejectAssignmentsResponse{Results: results}, nil
}

// batch decides every assignment of ids in the caller's pool poolID. What
// concerns the whole request (the pool, the list, the comment) fails it;
// what concerns one assignment is that assignment's result.
func (s *Service) batch(ctx context.Context, poolID string, ids []string, to toloka.AssignmentStatus, comment string) ([]*crowdgatev1.ReviewResult, error) {
	switch {
	case poolID == "":
		return nil, serviceerror.NewInvalidArgument("pool_id", "is required")
	case len(ids) == 0:
		return nil, serviceerror.NewInvalidArgument("assignment_ids", "is required: name 1 to %d assignments", MaxBatch)
	case len(ids) > MaxBatch:
		return nil, serviceerror.NewInvalidArgument("assignment_ids", "names %d assignments, at most %d a call", len(ids), MaxBatch)
	}
	if err := checkComment(comment, to == toloka.AssignmentRejected); err != nil {
		return nil, err
	}
	r, err := s.catalog.ResolvePool(ctx, tenant.FromContext(ctx), poolID)
	if err != nil {
		return nil, err
	}
	results := make([]*crowdgatev1.ReviewResult, len(ids))
	sem := make(chan struct{}, batchConcurrency)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			res := &crowdgatev1.ReviewResult{AssignmentId: id}
			a, err := s.decideIn(ctx, r, id, to, comment)
			if err != nil {
				res.Error = s.resultError(ctx, r, id, err)
			} else {
				res.Assignment = a
			}
			results[i] = res
		})
	}
	wg.Wait()
	return results, nil
}

// decideIn decides one assignment of the pool r: NotFound unless Toloka
// places it in the pool.
func (s *Service) decideIn(ctx context.Context, r *catalog.Resolved, id string, to toloka.AssignmentStatus, comment string) (*crowdgatev1.Assignment, error) {
	if err := catalog.CheckAssignmentID("assignment_id", id); err != nil {
		return nil, err
	}
	notHere := &serviceerror.NotFound{Resource: "assignment", ID: id}
	if pool, _ := toloka.ParseAssignmentID(id); pool != r.Pool.GetTolokaPoolId() {
		return nil, notHere
	}
	a, err := r.Account.GetAssignment(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.PoolID != r.Pool.GetTolokaPoolId() || (a.ID != "" && a.ID != id) {
		return nil, notHere
	}
	a.ID = id
	return s.apply(ctx, r, a, to, comment)
}

// resultError is what a batch answers for one assignment's refusal: the
// code and message the single call would have answered (an internal
// failure is logged, not shown).
func (s *Service) resultError(ctx context.Context, r *catalog.Resolved, id string, err error) *crowdgatev1.ReviewError {
	st := serviceerror.ToStatus(err)
	var un *serviceerror.Unavailable
	if errors.As(err, &un) || st.Code() == codes.Internal {
		s.log.WarnContext(ctx, "batch review: an assignment failed", "pool_id", r.Pool.GetPoolId(), "assignment_id", id, "err", err)
	}
	return &crowdgatev1.ReviewError{Code: access.CodeName(st.Code()), Message: st.Message()}
}
