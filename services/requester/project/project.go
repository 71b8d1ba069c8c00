// Package project is the requester's step that lists work in Toloka: an
// EXTERNAL project.
//
// A project is created in Toloka with assignments_issuing_type EXTERNAL,
// Crowdgate's one landing URL as assignments_issuing_view_config.redirect_url
// and the ptmik_* metadata of seed 001, then stored in the catalog. Its
// Toloker requirements are kept on the project and ANDed into the filter of
// every pool (see PoolFilter). ArchiveProject goes through the archive use
// case, which refuses while any pool has unfinished work.
package project

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/token"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// Length limits of the public texts (characters).
const (
	MaxPublicNameLength        = 150
	MaxPublicDescriptionLength = 2048
)

// Archiver archives a project once nothing is left to finish in its pools
// (*archive.Service).
type Archiver interface {
	ArchiveProject(ctx context.Context, tenantID, projectID string) (*crowdgatev1.Project, error)
}

// Service implements crowdgatev1.ProjectServiceServer.
type Service struct {
	crowdgatev1.UnimplementedProjectServiceServer
	catalog    *catalog.Catalog
	archiver   Archiver
	landingURL string
	now        func() time.Time
	log        *slog.Logger
}

// NewService returns the project service. landingURL is the redirect_url
// every project gives Toloka; archiver archives projects; now is the clock
// (time.Now when nil).
func NewService(cat *catalog.Catalog, archiver Archiver, landingURL string, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{catalog: cat, archiver: archiver, landingURL: landingURL, now: now, log: log}
}

// CreateProject validates the project, creates it in Toloka and stores it.
func (s *Service) CreateProject(ctx context.Context, req *crowdgatev1.CreateProjectRequest) (*crowdgatev1.CreateProjectResponse, error) {
	tenantID := tenant.FromContext(ctx)
	if req.GetProject() == nil {
		return nil, serviceerror.NewInvalidArgument("project", "is required")
	}
	p := proto.Clone(req.GetProject()).(*crowdgatev1.Project)
	// Output-only fields are ignored.
	p.ProjectId, p.TenantId, p.Environment, p.TolokaProjectId, p.Status = "", "", 0, "", 0
	p.LandingUrl, p.CreateTime, p.ArchiveTime = "", nil, nil
	if p.GetCredentialId() == "" {
		return nil, serviceerror.NewInvalidArgument("project.credential_id", "is required")
	}
	tp, err := s.tolokaProject(p, nil)
	if err != nil {
		return nil, err
	}
	cred, err := s.catalog.Credential(ctx, tenantID, p.GetCredentialId())
	if err != nil {
		return nil, err
	}
	account, err := s.catalog.Account(ctx, tenantID, p.GetCredentialId())
	if err != nil {
		return nil, err
	}
	p.ProjectId = storage.NewID("prj")
	p.TenantId = tenantID
	p.Environment = cred.GetEnvironment()
	p.LandingUrl = s.landingURL
	// Hold the credential first, so it cannot be deleted under the project.
	if err := s.catalog.UseCredential(ctx, tenantID, p.GetCredentialId(), p.GetProjectId()); err != nil {
		return nil, err
	}
	release := func() {
		if err := s.catalog.ReleaseCredential(context.WithoutCancel(ctx), tenantID, p.GetCredentialId(), p.GetProjectId()); err != nil {
			s.log.WarnContext(ctx, "could not release a credential", "tenant_id", tenantID, "credential_id", p.GetCredentialId(), "error", err.Error())
		}
	}
	created, err := account.CreateProject(ctx, tp)
	if err != nil {
		release()
		return nil, tolokaError("project", err)
	}
	p.TolokaProjectId = created.ID
	p.Status = projectStatus(created.Status)
	p.CreateTime = timestamppb.New(s.now())
	if created.Created != nil && !created.Created.IsZero() {
		p.CreateTime = timestamppb.New(created.Created.Time)
	}
	if err := s.catalog.CreateProject(ctx, p); err != nil {
		release()
		s.log.ErrorContext(ctx, "project created in Toloka but not stored: it exists in Toloka without a Crowdgate record",
			"tenant_id", tenantID, "toloka_project_id", created.ID, "error", err.Error())
		return nil, err
	}
	s.log.InfoContext(ctx, "project created", "tenant_id", tenantID, "project_id", p.GetProjectId(),
		"toloka_project_id", p.GetTolokaProjectId(), "environment", p.GetEnvironment().String())
	return &crowdgatev1.CreateProjectResponse{Project: p}, nil
}

// tolokaProject validates p (normalising codes and filling defaults in
// place) and returns the project to send Toloka. stored is the project as
// stored, for an update (nil for a new one).
func (s *Service) tolokaProject(p, stored *crowdgatev1.Project) (*toloka.Project, error) {
	const f = "project."
	name := p.GetPublicName()
	switch {
	case strings.TrimSpace(name) == "":
		return nil, serviceerror.NewInvalidArgument(f+"public_name", "is required")
	case utf8.RuneCountInString(name) > MaxPublicNameLength:
		return nil, serviceerror.NewInvalidArgument(f+"public_name", "must be at most %d characters, got %d", MaxPublicNameLength, utf8.RuneCountInString(name))
	}
	desc := p.GetPublicDescription()
	switch {
	case strings.TrimSpace(desc) == "":
		return nil, serviceerror.NewInvalidArgument(f+"public_description", "is required")
	case utf8.RuneCountInString(desc) > MaxPublicDescriptionLength:
		return nil, serviceerror.NewInvalidArgument(f+"public_description", "must be at most %d characters, got %d", MaxPublicDescriptionLength, utf8.RuneCountInString(desc))
	}
	platform, err := RedirectURL(f+"platform_url", p.GetPlatformUrl(), true)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(p.GetPlatformAudience()) == "" {
		p.PlatformAudience = platform.Scheme + "://" + platform.Host
	}
	if strings.HasPrefix(strings.ToLower(p.GetPlatformAudience()), token.TenantAudienceScheme) {
		// Tokens carry their tenant's audience; no project may claim one.
		return nil, serviceerror.NewInvalidArgument(f+"platform_audience", "must not start with %s (Crowdgate's tenant audiences)", token.TenantAudienceScheme)
	}
	if p.GetReturnUrl() != "" {
		if _, err := RedirectURL(f+"return_url", p.GetReturnUrl(), false); err != nil {
			return nil, err
		}
	}
	if strings.TrimSpace(p.GetPartnerName()) == "" {
		return nil, serviceerror.NewInvalidArgument(f+"partner_name", "is required (ptmik_partner_name)")
	}
	if p.GetPartnerUrl() == "" {
		return nil, serviceerror.NewInvalidArgument(f+"partner_url", "is required (ptmik_partner_url)")
	}
	if u, err := url.Parse(p.GetPartnerUrl()); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, serviceerror.NewInvalidArgument(f+"partner_url", "must be an absolute http(s) URL, got %q", p.GetPartnerUrl())
	}
	metadata := map[string][]string{
		toloka.MetaPartnerName: {p.GetPartnerName()},
		toloka.MetaPartnerURL:  {p.GetPartnerUrl()},
	}
	var prices [2]*money.Decimal
	for i, b := range []struct {
		field, value, key string
	}{{"bonus_price_min", p.GetBonusPriceMin(), toloka.MetaBonusPriceMin}, {"bonus_price_max", p.GetBonusPriceMax(), toloka.MetaBonusPriceMax}} {
		if b.value == "" {
			continue
		}
		d, err := money.Parse(b.value)
		if err != nil {
			return nil, serviceerror.NewInvalidArgument(f+b.field, "must be a decimal amount in U.S. dollars such as \"0.50\": %v", err)
		}
		if d.Sign() < 0 {
			return nil, serviceerror.NewInvalidArgument(f+b.field, "must not be negative")
		}
		prices[i] = &d
		metadata[b.key] = []string{d.String()}
	}
	if prices[0] != nil && prices[1] != nil && prices[1].Cmp(*prices[0]) < 0 {
		return nil, serviceerror.NewInvalidArgument(f+"bonus_price_max", "must not be below bonus_price_min (%s)", prices[0].String())
	}
	// A requirements filter stored before the filter keys' rules stays as
	// Toloka took it; one given anew meets them.
	checkKeys := stored == nil || !proto.Equal(p.GetTolokerRequirements().GetFilter(), stored.GetTolokerRequirements().GetFilter())
	if err := normalizeRequirements(f+"toloker_requirements", p.GetTolokerRequirements(), checkKeys); err != nil {
		return nil, err
	}
	tp := &toloka.Project{
		PublicName:                   name,
		PublicDescription:            desc,
		PublicInstructions:           p.GetPublicInstructions(),
		PrivateComment:               p.GetPrivateComment(),
		AssignmentsIssuingType:       toloka.IssuingExternal,
		AssignmentsIssuingViewConfig: &toloka.IssuingViewConfig{RedirectURL: s.landingURL},
		Metadata:                     metadata,
	}
	if tp.TaskSpec, err = taskSpec(f+"task_spec", p.GetTaskSpec()); err != nil {
		return nil, err
	}
	if tp.LocalizationConfig, err = localizationConfig(f+"localization_config", p.GetLocalizationConfig()); err != nil {
		return nil, err
	}
	if qc := p.GetQualityControl(); qc != nil && len(qc.GetConfigs()) > 0 {
		configs, err := QualityControlConfigs(f+"quality_control.configs", qc.GetConfigs())
		if err != nil {
			return nil, err
		}
		tp.QualityControl = &toloka.QualityControl{Configs: configs}
	}
	if p.MaxActiveAssignmentsCount != nil {
		if n := p.GetMaxActiveAssignmentsCount(); n < 1 {
			return nil, serviceerror.NewInvalidArgument(f+"max_active_assignments_count", "must be at least 1, got %d", n)
		}
		tp.MaxActiveAssignmentsCount = toloka.Ptr(int(p.GetMaxActiveAssignmentsCount()))
	}
	if p.GetAssignmentsAutomergeEnabled() {
		tp.AssignmentsAutomergeEnabled = toloka.Ptr(true)
	}
	return tp, nil
}

// RedirectURL checks a URL Crowdgate redirects Tolokers to: absolute https,
// or http on a loopback host (local development). required says whether an
// empty value is an error.
func RedirectURL(field, raw string, required bool) (*url.URL, error) {
	if raw == "" {
		if required {
			return nil, serviceerror.NewInvalidArgument(field, "is required")
		}
		return nil, nil
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return nil, serviceerror.NewInvalidArgument(field, "must be an absolute https URL, got %q", raw)
	}
	if u.User != nil {
		return nil, serviceerror.NewInvalidArgument(field, "must not carry user credentials")
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !loopbackHost(u.Hostname()) {
			return nil, serviceerror.NewInvalidArgument(field, "must use https (http is allowed only for loopback hosts), got %q", raw)
		}
	default:
		return nil, serviceerror.NewInvalidArgument(field, "must be an absolute https URL, got %q", raw)
	}
	return u, nil
}

func loopbackHost(h string) bool {
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// GetProject returns one project.
func (s *Service) GetProject(ctx context.Context, req *crowdgatev1.GetProjectRequest) (*crowdgatev1.GetProjectResponse, error) {
	if req.GetProjectId() == "" {
		return nil, serviceerror.NewInvalidArgument("project_id", "is required")
	}
	p, err := s.catalog.Project(ctx, tenant.FromContext(ctx), req.GetProjectId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetProjectResponse{Project: p}, nil
}

// ListProjects lists the tenant's projects, newest first.
func (s *Service) ListProjects(ctx context.Context, req *crowdgatev1.ListProjectsRequest) (*crowdgatev1.ListProjectsResponse, error) {
	if _, ok := crowdgatev1.ProjectStatus_name[int32(req.GetStatus())]; !ok {
		return nil, serviceerror.NewInvalidArgument("status", "unknown project status %d", req.GetStatus())
	}
	page, err := paging.Parse("projects", req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	var keep func(*crowdgatev1.Project) bool
	if st := req.GetStatus(); st != crowdgatev1.ProjectStatus_PROJECT_STATUS_UNSPECIFIED {
		keep = func(p *crowdgatev1.Project) bool { return p.GetStatus() == st }
	}
	items, next, err := s.catalog.ListProjects(ctx, tenant.FromContext(ctx), page, keep)
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListProjectsResponse{Projects: items, NextPageToken: next}, nil
}

// ArchiveProject closes and archives every pool, then the project, once
// nothing is left to finish (see the archive use case).
func (s *Service) ArchiveProject(ctx context.Context, req *crowdgatev1.ArchiveProjectRequest) (*crowdgatev1.ArchiveProjectResponse, error) {
	if req.GetProjectId() == "" {
		return nil, serviceerror.NewInvalidArgument("project_id", "is required")
	}
	p, err := s.archiver.ArchiveProject(ctx, tenant.FromContext(ctx), req.GetProjectId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ArchiveProjectResponse{Project: p}, nil
}

// ProjectStatus is the API's status of a Toloka project status.
func ProjectStatus(s toloka.ProjectStatus) crowdgatev1.ProjectStatus { return projectStatus(s) }

func projectStatus(s toloka.ProjectStatus) crowdgatev1.ProjectStatus {
	switch s {
	case toloka.ProjectActive:
		return crowdgatev1.ProjectStatus_PROJECT_STATUS_ACTIVE
	case toloka.ProjectArchived:
		return crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED
	}
	return crowdgatev1.ProjectStatus_PROJECT_STATUS_UNSPECIFIED
}

// tolokaError names, in a validation error Toloka answered, the field of the
// request message it concerns (Toloka's field paths are those of the API's
// message under "project." or "pool."); other errors pass unchanged.
func tolokaError(message string, err error) error {
	var ia *serviceerror.InvalidArgument
	if errors.As(err, &ia) {
		field := message
		if ia.Field != "" {
			field = message + "." + ia.Field
		}
		return &serviceerror.InvalidArgument{Field: field, Reason: ia.Reason}
	}
	return err
}

// TolokaError is tolokaError for the pool service: Toloka's validation
// errors of a pool request are named under "pool.".
func TolokaError(message string, err error) error { return tolokaError(message, err) }
