// Package review lets a requester read, accept and reject the assignments of
// their pools, with Toloka's allowed transitions: SUBMITTED to ACCEPTED or
// REJECTED, and REJECTED to ACCEPTED (a rejected job can be accepted
// later, seed 000).
//
// An assignment id starts with its Toloka pool id in hex; the pool is found
// through pool.Service.ByTolokaID and must belong to the caller's tenant
// (another tenant's assignment is NOT_FOUND). Calls use the credential of
// that pool's project.
package review

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/requester/pool"
	"github.com/crowdgate/crowdgate/services/requester/project"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// MaxCommentLength bounds a public comment, in characters (Toloka's limit).
const MaxCommentLength = 2048

// Config is what the service is built from.
type Config struct {
	// Pools finds an assignment's pool.
	Pools *pool.Service
	// Projects gives the pool's project and its Toloka account.
	Projects *project.Service
	// Log receives the service's logs.
	Log *slog.Logger
}

// Service implements crowdgatev1.ReviewServiceServer.
type Service struct {
	crowdgatev1.UnimplementedReviewServiceServer
	cfg Config
}

// NewService returns the review service.
func NewService(cfg Config) *Service {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Service{cfg: cfg}
}

// located is an assignment with the pool and account it was read through.
type located struct {
	pool       *crowdgatev1.Pool
	account    *toloka.Account
	assignment *toloka.Assignment
}

// locate finds the caller's pool of an assignment and reads the assignment
// from Toloka. An assignment of another tenant's pool, or of no known pool,
// is NOT_FOUND.
func (s *Service) locate(ctx context.Context, assignmentID string) (*located, error) {
	if assignmentID == "" {
		return nil, serviceerror.NewInvalidArgument("assignment_id", "is required")
	}
	tolokaPoolID, err := pool.TolokaPoolIDFromAssignment(assignmentID)
	if err != nil {
		return nil, err
	}
	tenantID := tenant.FromContext(ctx)
	pools, err := s.cfg.Pools.ByTolokaID(ctx, tolokaPoolID)
	if err != nil {
		return nil, err
	}
	notFound := &serviceerror.NotFound{Resource: "assignment", ID: assignmentID}
	var lastErr error = notFound
	// A Toloka pool id can exist once per environment; the assignment is in
	// whichever of the tenant's pools Toloka knows it under.
	for _, p := range pools {
		if p.GetTenantId() != tenantID {
			continue
		}
		prj, err := s.cfg.Projects.Get(ctx, tenantID, p.GetProjectId())
		if err != nil {
			return nil, err
		}
		account, err := s.cfg.Projects.Account(ctx, prj)
		if err != nil {
			return nil, err
		}
		a, err := account.GetAssignment(ctx, assignmentID)
		var nf *serviceerror.NotFound
		if errors.As(err, &nf) {
			continue
		}
		if err != nil {
			lastErr = err
			continue
		}
		if a.PoolID != "" && a.PoolID != p.GetTolokaPoolId() {
			continue
		}
		return &located{pool: p, account: account, assignment: a}, nil
	}
	return nil, lastErr
}

// GetAssignment returns an assignment of one of the tenant's pools.
func (s *Service) GetAssignment(ctx context.Context, req *crowdgatev1.GetAssignmentRequest) (*crowdgatev1.GetAssignmentResponse, error) {
	l, err := s.locate(ctx, req.GetAssignmentId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetAssignmentResponse{Assignment: toProto(l.pool, l.assignment)}, nil
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
	from := l.assignment.Status
	ok := false
	for _, st := range allowedFrom[to] {
		ok = ok || st == from
	}
	if !ok {
		names := make([]string, len(allowedFrom[to]))
		for i, st := range allowedFrom[to] {
			names[i] = string(st)
		}
		return nil, serviceerror.NewFailedPrecondition("assignment %s is %s: only %s work can be %s",
			assignmentID, from, strings.Join(names, " or "), strings.ToLower(string(to)))
	}
	var a *toloka.Assignment
	if to == toloka.AssignmentAccepted {
		a, err = l.account.AcceptAssignment(ctx, assignmentID, comment)
	} else {
		a, err = l.account.RejectAssignment(ctx, assignmentID, comment)
	}
	if err != nil {
		return nil, err
	}
	s.cfg.Log.InfoContext(ctx, "assignment reviewed", "tenant_id", l.pool.GetTenantId(), "pool_id", l.pool.GetPoolId(),
		"assignment_id", assignmentID, "from", string(from), "to", string(a.Status))
	return toProto(l.pool, a), nil
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
	return out
}
