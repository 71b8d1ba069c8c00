// Package skill is the requester's skills: Toloka skills and Tolokers'
// skill values (Toloka's /skills and /user-skills), made and read through a
// credential's Toloka account.
//
// Skills are what a pool's filter (category skill), dynamic pricing and
// quality-control rules (SET_SKILL, SET_SKILL_FROM_OUTPUT_FIELD,
// USERS_ASSESSMENT) name, by Toloka's id. They live in the Toloka account:
// Crowdgate stores no copy, so a skill made in Toloka's own interface is
// listed too, and every id this service answers is Toloka's.
package skill

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// Limits of Toloka's skill fields and lists.
const (
	// MaxNameLength bounds a skill's name (characters).
	MaxNameLength = 150
	// MaxSkillsPage is Toloka's largest GET /skills page.
	MaxSkillsPage = 100
	// MaxUserSkillsPage is Toloka's largest GET /user-skills page.
	MaxUserSkillsPage = 500
)

// Accounts resolves a tenant's credential to its Toloka account
// (*catalog.Catalog): NOT_FOUND for a credential the tenant does not have.
type Accounts interface {
	Account(ctx context.Context, tenantID, credentialID string) (*toloka.Account, error)
}

// Service implements crowdgatev1.SkillServiceServer.
type Service struct {
	crowdgatev1.UnimplementedSkillServiceServer
	accounts Accounts
}

// NewService returns the skill service over accounts.
func NewService(accounts Accounts) *Service { return &Service{accounts: accounts} }

func (s *Service) account(ctx context.Context, field, credentialID string) (*toloka.Account, error) {
	if strings.TrimSpace(credentialID) == "" {
		return nil, serviceerror.NewInvalidArgument(field, "is required")
	}
	return s.accounts.Account(ctx, tenant.FromContext(ctx), credentialID)
}

func required(field, v string) error {
	if strings.TrimSpace(v) == "" {
		return serviceerror.NewInvalidArgument(field, "is required")
	}
	return nil
}

// CreateSkill validates the skill and creates it in Toloka.
func (s *Service) CreateSkill(ctx context.Context, req *crowdgatev1.CreateSkillRequest) (*crowdgatev1.CreateSkillResponse, error) {
	in := req.GetSkill()
	if in == nil {
		return nil, serviceerror.NewInvalidArgument("skill", "is required")
	}
	// The credential first: another tenant's is NOT_FOUND whatever else.
	acc, err := s.account(ctx, "skill.credential_id", in.GetCredentialId())
	if err != nil {
		return nil, err
	}
	name := in.GetName()
	switch n := utf8.RuneCountInString(name); {
	case strings.TrimSpace(name) == "":
		return nil, serviceerror.NewInvalidArgument("skill.name", "is required")
	case n > MaxNameLength:
		return nil, serviceerror.NewInvalidArgument("skill.name", "must be at most %d characters, got %d", MaxNameLength, n)
	}
	ts := toloka.Skill{
		Name: name, PrivateComment: in.GetPrivateComment(),
		PublicName: upperKeys(in.GetPublicName()), PublicRequesterDescription: upperKeys(in.GetPublicRequesterDescription()),
	}
	if in.Hidden != nil {
		ts.Hidden = toloka.Ptr(in.GetHidden())
	}
	if in.SkillTtlHours != nil {
		if in.GetSkillTtlHours() < 1 {
			return nil, serviceerror.NewInvalidArgument("skill.skill_ttl_hours", "must be at least 1 hour, got %d (leave it unset for values that never expire)", in.GetSkillTtlHours())
		}
		ts.SkillTTLHours = toloka.Ptr(int(in.GetSkillTtlHours()))
	}
	for lang := range in.GetPublicName() {
		if strings.TrimSpace(lang) == "" {
			return nil, serviceerror.NewInvalidArgument("skill.public_name", "language codes must not be empty")
		}
	}
	out, err := acc.CreateSkill(ctx, ts)
	if err != nil {
		return nil, named("skill", err)
	}
	return &crowdgatev1.CreateSkillResponse{Skill: skillOf(in.GetCredentialId(), out)}, nil
}

// GetSkill reads one skill from Toloka.
func (s *Service) GetSkill(ctx context.Context, req *crowdgatev1.GetSkillRequest) (*crowdgatev1.GetSkillResponse, error) {
	acc, err := s.account(ctx, "credential_id", req.GetCredentialId())
	if err != nil {
		return nil, err
	}
	if err := required("skill_id", req.GetSkillId()); err != nil {
		return nil, err
	}
	out, err := acc.GetSkill(ctx, req.GetSkillId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetSkillResponse{Skill: skillOf(req.GetCredentialId(), out)}, nil
}

// ListSkills pages through the account's skills by Toloka id.
func (s *Service) ListSkills(ctx context.Context, req *crowdgatev1.ListSkillsRequest) (*crowdgatev1.ListSkillsResponse, error) {
	pg, err := paging.Parse("skills/"+req.GetCredentialId(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	acc, err := s.account(ctx, "credential_id", req.GetCredentialId())
	if err != nil {
		return nil, err
	}
	opts := toloka.ListOptions{Limit: min(pg.Size, MaxSkillsPage), Sort: "id", IDGt: pg.After}
	if n := req.GetName(); n != "" {
		opts.Filters = url.Values{"name": {n}}
	}
	list, err := acc.ListSkills(ctx, opts)
	if err != nil {
		return nil, err
	}
	resp := &crowdgatev1.ListSkillsResponse{}
	for i := range list.Items {
		resp.Skills = append(resp.Skills, skillOf(req.GetCredentialId(), &list.Items[i]))
	}
	if list.HasMore && len(list.Items) > 0 {
		resp.NextPageToken = pg.Token(list.Items[len(list.Items)-1].ID)
	}
	return resp, nil
}

var hundred = money.MustParse("100")

// SetUserSkill sets a Toloker's value of a skill in Toloka.
func (s *Service) SetUserSkill(ctx context.Context, req *crowdgatev1.SetUserSkillRequest) (*crowdgatev1.SetUserSkillResponse, error) {
	acc, err := s.account(ctx, "credential_id", req.GetCredentialId())
	if err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, v string }{{"skill_id", req.GetSkillId()}, {"user_id", req.GetUserId()}} {
		if err := required(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if req.GetValue() == "" {
		return nil, serviceerror.NewInvalidArgument("value", "is required: a decimal from 0 to 100 such as \"80\" or \"75.5\"")
	}
	v, err := money.Parse(req.GetValue())
	if err != nil {
		return nil, serviceerror.NewInvalidArgument("value", "%q is not a decimal from 0 to 100: %v", req.GetValue(), err)
	}
	if strings.HasPrefix(v.String(), "-") || v.Cmp(hundred) > 0 {
		return nil, serviceerror.NewInvalidArgument("value", "must be between 0 and 100, got %s", req.GetValue())
	}
	out, err := acc.SetUserSkill(ctx, toloka.UserSkill{SkillID: req.GetSkillId(), UserID: req.GetUserId(), Value: &v, Reason: req.GetReason()})
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.SetUserSkillResponse{UserSkill: userSkillOf(out)}, nil
}

// ListUserSkills pages through Tolokers' skill values by Toloka id.
func (s *Service) ListUserSkills(ctx context.Context, req *crowdgatev1.ListUserSkillsRequest) (*crowdgatev1.ListUserSkillsResponse, error) {
	pg, err := paging.Parse("user-skills/"+req.GetCredentialId()+"/"+req.GetUserId()+"/"+req.GetSkillId(), req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	acc, err := s.account(ctx, "credential_id", req.GetCredentialId())
	if err != nil {
		return nil, err
	}
	opts := toloka.ListOptions{Limit: min(pg.Size, MaxUserSkillsPage), Sort: "id", IDGt: pg.After, Filters: url.Values{}}
	if u := req.GetUserId(); u != "" {
		opts.Filters.Set("user_id", u)
	}
	if sk := req.GetSkillId(); sk != "" {
		opts.Filters.Set("skill_id", sk)
	}
	list, err := acc.ListUserSkills(ctx, opts)
	if err != nil {
		return nil, err
	}
	resp := &crowdgatev1.ListUserSkillsResponse{}
	for i := range list.Items {
		resp.UserSkills = append(resp.UserSkills, userSkillOf(&list.Items[i]))
	}
	if list.HasMore && len(list.Items) > 0 {
		resp.NextPageToken = pg.Token(list.Items[len(list.Items)-1].ID)
	}
	return resp, nil
}

// DeleteUserSkill removes a Toloker's skill value in Toloka.
func (s *Service) DeleteUserSkill(ctx context.Context, req *crowdgatev1.DeleteUserSkillRequest) (*crowdgatev1.DeleteUserSkillResponse, error) {
	acc, err := s.account(ctx, "credential_id", req.GetCredentialId())
	if err != nil {
		return nil, err
	}
	if err := required("user_skill_id", req.GetUserSkillId()); err != nil {
		return nil, err
	}
	if err := acc.DeleteUserSkill(ctx, req.GetUserSkillId()); err != nil {
		return nil, err
	}
	return &crowdgatev1.DeleteUserSkillResponse{}, nil
}

// upperKeys returns m with its language codes upper-cased, as Toloka
// writes them; nil for an empty map.
func upperKeys(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[strings.ToUpper(strings.TrimSpace(k))] = v
	}
	return out
}

func skillOf(credentialID string, s *toloka.Skill) *crowdgatev1.Skill {
	out := &crowdgatev1.Skill{
		CredentialId: credentialID, SkillId: s.ID, Name: s.Name, PrivateComment: s.PrivateComment,
		Hidden: s.Hidden, PublicName: s.PublicName, PublicRequesterDescription: s.PublicRequesterDescription,
	}
	if s.SkillTTLHours != nil {
		out.SkillTtlHours = toloka.Ptr(int32(*s.SkillTTLHours))
	}
	if s.Created != nil && !s.Created.IsZero() {
		out.CreateTime = timestamppb.New(s.Created.Time)
	}
	return out
}

func userSkillOf(u *toloka.UserSkill) *crowdgatev1.UserSkill {
	out := &crowdgatev1.UserSkill{UserSkillId: u.ID, SkillId: u.SkillID, UserId: u.UserID}
	switch {
	case u.ExactValue != nil:
		out.Value = u.ExactValue.String()
	case u.Value != nil:
		out.Value = u.Value.String()
	}
	if u.Created != nil && !u.Created.IsZero() {
		out.CreateTime = timestamppb.New(u.Created.Time)
	}
	if u.Modified != nil && !u.Modified.IsZero() {
		out.ModifyTime = timestamppb.New(u.Modified.Time)
	}
	return out
}

// named puts Toloka's validation errors of a skill under "skill.".
func named(prefix string, err error) error {
	var ia *serviceerror.InvalidArgument
	if errors.As(err, &ia) {
		field := prefix
		if ia.Field != "" {
			field = prefix + "." + ia.Field
		}
		return &serviceerror.InvalidArgument{Field: field, Reason: ia.Reason}
	}
	return err
}
