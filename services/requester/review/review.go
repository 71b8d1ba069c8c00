// Package review is the requester's step after the work: reading,
// accepting and rejecting the assignments of their pools, with Toloka's
// allowed transitions: SUBMITTED to ACCEPTED or REJECTED, and REJECTED to
// ACCEPTED (a rejected job can be accepted later, seed 000).
//
// An assignment is found through the catalog within the caller's tenant
// (another tenant's assignment is NOT_FOUND) and read with the credential
// of its pool's project. The package also counts a pool's assignments
// awaiting review, one of the things that keep a project from being
// archived.
//
// The review queue (ListAssignments, queue.go) lists a pool's assignments
// from Toloka by status, paged with Toloka's own paging (sort=id,
// id_gt=<last id>, the cursor of the page token), each with its review
// deadline (submit time plus the pool's auto_accept_period_day: Toloka
// accepts SUBMITTED work by itself after it) and what Crowdgate knows of
// it: its session while Crowdgate keeps it, and its submissions (kept).
// BatchAcceptAssignments and BatchRejectAssignments decide many
// assignments of one pool, each on its own: one refusal does not stop the
// others, and each answers what the single call would have.
package review

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/notify/events"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/project"
)

// MaxCommentLength bounds a public comment, in characters (Toloka's limit).
const MaxCommentLength = 2048

// MaxCountedAwaitingReview bounds how many assignments awaiting review are
// counted before the count says "at least".
const MaxCountedAwaitingReview = 10000

// Sessions are the sessions Crowdgate keeps of assignments
// (*session.Service): those of the tenant, by assignment id.
type Sessions interface {
	OfAssignments(ctx context.Context, tenantID string, assignmentIDs []string) (map[string]*crowdgatev1.Session, error)
}

// Work is what the outbox received for a pool's assignments
// (*submission.Service): per assignment, its submissions, their count and
// totals, and the session they came in (QueuedAssignment without the
// assignment).
type Work interface {
	AssignmentWork(ctx context.Context, tenantID, poolID string, assignmentIDs []string) (map[string]*crowdgatev1.QueuedAssignment, error)
}

// Service implements crowdgatev1.ReviewServiceServer.
type Service struct {
	crowdgatev1.UnimplementedReviewServiceServer
	catalog  *catalog.Catalog
	sessions Sessions
	work     Work
	events   *events.Log
	log      *slog.Logger
}

// NewService returns the review service over the catalog, the sessions and
// the outbox's work of assignments, recording each decision in evs
// (assignment.accepted, assignment.rejected). cat, sessions, work and evs
// are required.
func NewService(cat *catalog.Catalog, sessions Sessions, work Work, evs *events.Log, log *slog.Logger) (*Service, error) {
	if cat == nil || sessions == nil || work == nil || evs == nil {
		return nil, errors.New("review: the catalog, the sessions, the work and the event log are required")
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{catalog: cat, sessions: sessions, work: work, events: evs, log: log}, nil
}

// locate finds the caller's assignment through the catalog.
func (s *Service) locate(ctx context.Context, assignmentID string) (*catalog.Found, error) {
	if assignmentID == "" {
		return nil, serviceerror.NewInvalidArgument("assignment_id", "is required")
	}
	return s.catalog.FindAssignment(ctx, assignmentID, tenant.FromContext(ctx), nil)
}

// GetAssignment returns an assignment of one of the tenant's pools.
func (s *Service) GetAssignment(ctx context.Context, req *crowdgatev1.GetAssignmentRequest) (*crowdgatev1.GetAssignmentResponse, error) {
	l, err := s.locate(ctx, req.GetAssignmentId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetAssignmentResponse{Assignment: toProto(l.Pool, l.Assignment)}, nil
}

// AcceptAssignment accepts submitted (or previously rejected) work.
func (s *Service) AcceptAssignment(ctx context.Context, req *crowdgatev1.AcceptAssignmentRequest) (*crowdgatev1.AcceptAssignmentResponse, error) {
	if err := checkComment(req.GetPublicComment(), false); err != nil {
		return nil, err
	}
	a, err := s.decide(ctx, req.GetAssignmentId(), toloka.AssignmentAccepted, req.GetPublicComment())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.AcceptAssignmentResponse{Assignment: a}, nil
}

// RejectAssignment rejects submitted work; the comment is required.
func (s *Service) RejectAssignment(ctx context.Context, req *crowdgatev1.RejectAssignmentRequest) (*crowdgatev1.RejectAssignmentResponse, error) {
	if err := checkComment(req.GetPublicComment(), true); err != nil {
		return nil, err
	}
	a, err := s.decide(ctx, req.GetAssignmentId(), toloka.AssignmentRejected, req.GetPublicComment())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.RejectAssignmentResponse{Assignment: a}, nil
}

func checkComment(c string, required bool) error {
	if required && strings.TrimSpace(c) == "" {
		return serviceerror.NewInvalidArgument("public_comment", "is required: tell the Toloker why the work is rejected")
	}
	if n := utf8.RuneCountInString(c); n > MaxCommentLength {
		return serviceerror.NewInvalidArgument("public_comment", "must be at most %d characters, got %d", MaxCommentLength, n)
	}
	return nil
}

// allowedFrom lists the statuses each decision may leave (Toloka's rules).
var allowedFrom = map[toloka.AssignmentStatus][]toloka.AssignmentStatus{
	toloka.AssignmentAccepted: {toloka.AssignmentSubmitted, toloka.AssignmentRejected},
	toloka.AssignmentRejected: {toloka.AssignmentSubmitted},
}

// decide moves an assignment to status to, if Toloka's rules allow it.
func (s *Service) decide(ctx context.Context, assignmentID string, to toloka.AssignmentStatus, comment string) (*crowdgatev1.Assignment, error) {
	l, err := s.locate(ctx, assignmentID)
	if err != nil {
		return nil, err
	}
	return s.apply(ctx, &l.Resolved, l.Assignment, to, comment)
}

// apply moves assignment a, read from Toloka through r, to status to, if
// Toloka's rules allow it.
func (s *Service) apply(ctx context.Context, r *catalog.Resolved, cur *toloka.Assignment, to toloka.AssignmentStatus, comment string) (*crowdgatev1.Assignment, error) {
	assignmentID := cur.ID
	from := cur.Status
	ok := false
	for _, st := range allowedFrom[to] {
		ok = ok || st == from
	}
	if !ok {
		if from == to {
			// Decided already: by this decision sent before, whose answer
			// was lost (Toloka took it, the caller gave up waiting), or in
			// Toloka itself. Its event is recorded now, once by its id,
			// so no decision goes without one; the answer stays the
			// refusal a decision made twice gets. Not for a decision
			// older than the log's window for repeats: its event was
			// recorded then, and the log would take it again.
			decided := cur.Accepted
			if to == toloka.AssignmentRejected {
				decided = cur.Rejected
			}
			if decided == nil || s.events.Now().Sub(decided.Time) < s.events.RepeatWindow() {
				s.recordDecision(ctx, r.Pool.GetTenantId(), toProto(r.Pool, cur), to)
			}
		}
		names := make([]string, len(allowedFrom[to]))
		for i, st := range allowedFrom[to] {
			names[i] = string(st)
		}
		return nil, serviceerror.NewFailedPrecondition("assignment %s is %s: only %s work can be %s",
			assignmentID, from, strings.Join(names, " or "), strings.ToLower(string(to)))
	}
	var (
		a   *toloka.Assignment
		err error
	)
	if to == toloka.AssignmentAccepted {
		a, err = r.Account.AcceptAssignment(ctx, assignmentID, comment)
	} else {
		a, err = r.Account.RejectAssignment(ctx, assignmentID, comment)
	}
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "assignment reviewed", "tenant_id", r.Pool.GetTenantId(), "pool_id", r.Pool.GetPoolId(),
		"assignment_id", assignmentID, "from", string(from), "to", string(a.Status))
	out := toProto(r.Pool, a)
	s.recordDecision(ctx, r.Pool.GetTenantId(), out, to)
	return out, nil
}

// recordDecision appends the decision's event. Toloka has made the
// decision: a failure to record it is logged, not answered (the review
// stands; the event is what is lost).
func (s *Service) recordDecision(ctx context.Context, tenantID string, a *crowdgatev1.Assignment, to toloka.AssignmentStatus) {
	typ := events.TypeAssignmentAccepted
	if to == toloka.AssignmentRejected {
		typ = events.TypeAssignmentRejected
	}
	ev := s.events.New(tenantID, typ, "assignments/"+a.GetAssignmentId())
	ev.Data = &crowdgatev1.Event_Assignment{Assignment: a}
	if err := s.events.Append(context.WithoutCancel(ctx), ev); err != nil {
		s.log.ErrorContext(ctx, "review: the decision's event was not recorded", "tenant_id", tenantID,
			"assignment_id", a.GetAssignmentId(), "type", typ, "error", err.Error())
	}
}

var assignmentStatuses = map[toloka.AssignmentStatus]crowdgatev1.AssignmentStatus{
	toloka.AssignmentActive:    crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACTIVE,
	toloka.AssignmentSubmitted: crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_SUBMITTED,
	toloka.AssignmentAccepted:  crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_ACCEPTED,
	toloka.AssignmentRejected:  crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_REJECTED,
	toloka.AssignmentSkipped:   crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_SKIPPED,
	toloka.AssignmentExpired:   crowdgatev1.AssignmentStatus_ASSIGNMENT_STATUS_EXPIRED,
}

func toProto(p *crowdgatev1.Pool, a *toloka.Assignment) *crowdgatev1.Assignment {
	ts := func(t *toloka.Time) *timestamppb.Timestamp {
		if t == nil || t.IsZero() {
			return nil
		}
		return timestamppb.New(t.Time)
	}
	out := &crowdgatev1.Assignment{
		AssignmentId:  a.ID,
		PoolId:        p.GetPoolId(),
		UserId:        a.UserID,
		Status:        assignmentStatuses[a.Status],
		PublicComment: a.PublicComment,
		CreateTime:    ts(a.Created),
		SubmitTime:    ts(a.Submitted),
		AcceptTime:    ts(a.Accepted),
		RejectTime:    ts(a.Rejected),
	}
	if a.Reward != nil {
		out.Reward = a.Reward.String()
	}
	if a.Submitted != nil && !a.Submitted.IsZero() && p.AutoAcceptPeriodDay != nil {
		out.ReviewDeadline = timestamppb.New(a.Submitted.Add(time.Duration(p.GetAutoAcceptPeriodDay()) * 24 * time.Hour))
	}
	return out
}

// CountAwaitingReview counts the SUBMITTED assignments of pool r in
// Toloka, up to MaxCountedAwaitingReview; complete is false when it
// stopped there.
func (s *Service) CountAwaitingReview(ctx context.Context, r *catalog.Resolved) (n int, complete bool, err error) {
	return countSubmitted(ctx, r.Account, r.Pool.GetTolokaPoolId())
}

// assignmentLister is the list call countSubmitted needs from a Toloka
// account (GET /assignments?pool_id=&status=SUBMITTED).
type assignmentLister interface {
	ListAssignments(ctx context.Context, opts toloka.ListOptions) (*toloka.List[toloka.Assignment], error)
}

// countSubmitted counts a Toloka pool's SUBMITTED assignments page by page
// (sort=id, id_gt=<last id>).
func countSubmitted(ctx context.Context, lister assignmentLister, tolokaPoolID string) (n int, complete bool, err error) {
	opts := toloka.ListOptions{Limit: 1000, Sort: "id", Status: string(toloka.AssignmentSubmitted),
		Filters: map[string][]string{"pool_id": {tolokaPoolID}}}
	for {
		page, err := lister.ListAssignments(ctx, opts)
		if err != nil {
			return 0, false, project.TolokaError("pool", err)
		}
		n += len(page.Items)
		if !page.HasMore || len(page.Items) == 0 {
			return n, true, nil
		}
		if n >= MaxCountedAwaitingReview {
			return n, false, nil
		}
		opts.IDGt = page.Items[len(page.Items)-1].ID
	}
}
