// Package credential is the first step of the requester's side: a
// requester registers a Toloka API key. The key is checked with Toloka
// (GET /projects?limit=1) before it is kept, then sealed at rest by the
// catalog (which alone opens it), and never returned or logged: responses
// carry a fingerprint (an HMAC the catalog computes under a server key).
// ReplaceApiKey swaps a credential's key in place, so its projects and
// pools keep working with the new key.
package credential

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/paging"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/platform/catalog"
	"github.com/crowdgate/crowdgate/services/platform/storage"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// MaxDisplayNameLength bounds a credential's display name, in characters.
const MaxDisplayNameLength = 200

// Service implements crowdgatev1.CredentialServiceServer.
type Service struct {
	crowdgatev1.UnimplementedCredentialServiceServer
	catalog *catalog.Catalog
	toloka  *toloka.Client
	now     func() time.Time
	log     *slog.Logger
}

// NewService returns the credential service: records in cat, keys checked
// with client. now is the clock (time.Now when nil).
func NewService(cat *catalog.Catalog, client *toloka.Client, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{catalog: cat, toloka: client, now: now, log: log}
}

// CreateCredential registers a Toloka API key after Toloka accepted it.
func (s *Service) CreateCredential(ctx context.Context, req *crowdgatev1.CreateCredentialRequest) (*crowdgatev1.CreateCredentialResponse, error) {
	tenantID := tenant.FromContext(ctx)
	name := strings.TrimSpace(req.GetDisplayName())
	switch {
	case name == "":
		return nil, serviceerror.NewInvalidArgument("display_name", "is required")
	case utf8.RuneCountInString(name) > MaxDisplayNameLength:
		return nil, serviceerror.NewInvalidArgument("display_name", "must be at most %d characters", MaxDisplayNameLength)
	}
	env, ok := catalog.TolokaEnvironment(req.GetEnvironment())
	if !ok {
		return nil, serviceerror.NewInvalidArgument("environment", "must be ENVIRONMENT_SANDBOX or ENVIRONMENT_PRODUCTION")
	}
	key, _, err := s.verify(ctx, env, req.GetApiKey())
	if err != nil {
		return nil, err
	}

	now := s.now()
	c := &crowdgatev1.Credential{
		CredentialId: storage.NewID("cred"),
		TenantId:     tenantID,
		DisplayName:  name,
		Environment:  req.GetEnvironment(),
		CreateTime:   timestamppb.New(now),
		VerifyTime:   timestamppb.New(now),
	}
	// The catalog sets the fingerprint.
	if err := s.catalog.CreateCredential(ctx, c, key); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "toloka credential registered", "tenant_id", tenantID, "credential_id", c.GetCredentialId(),
		"environment", string(env), "key_fingerprint", c.GetKeyFingerprint())
	return &crowdgatev1.CreateCredentialResponse{Credential: c}, nil
}

// verify checks an API key as given in a request (field api_key): present,
// usable as a credential, and accepted by Toloka with its cheapest
// authenticated call (GET /projects?limit=1). It returns the key, trimmed,
// and its account. No error holds the key.
func (s *Service) verify(ctx context.Context, env toloka.Environment, apiKey string) (string, *toloka.Account, error) {
	key := strings.TrimSpace(apiKey)
	if key == "" {
		return "", nil, serviceerror.NewInvalidArgument("api_key", "is required")
	}
	account, err := s.toloka.Account(toloka.Credential{Environment: env, Token: key})
	if err != nil {
		// The client's reasons (empty, whitespace inside) never hold the key.
		return "", nil, serviceerror.NewInvalidArgument("api_key", "is not a usable Toloka API key or OAuth token")
	}
	if _, err := account.ListProjects(ctx, toloka.ListOptions{Limit: 1}); err != nil {
		return "", nil, verifyError(err)
	}
	return key, account, nil
}

// ReplaceApiKey gives a credential a new key in place: its projects and
// pools keep the credential and use the new key from now on. The new key
// is checked like CreateCredential's and, when projects use the
// credential, must reach one of them in Toloka (the same account).
func (s *Service) ReplaceApiKey(ctx context.Context, req *crowdgatev1.ReplaceApiKeyRequest) (*crowdgatev1.ReplaceApiKeyResponse, error) {
	tenantID, id := tenant.FromContext(ctx), req.GetCredentialId()
	if id == "" {
		return nil, serviceerror.NewInvalidArgument("credential_id", "is required")
	}
	// The credential first: another tenant's is not found, whatever the key.
	old, err := s.catalog.Credential(ctx, tenantID, id)
	if err != nil {
		return nil, err
	}
	env, ok := catalog.TolokaEnvironment(old.GetEnvironment())
	if !ok {
		return nil, fmt.Errorf("credential %s has no environment", id)
	}
	key, account, err := s.verify(ctx, env, req.GetApiKey())
	if err != nil {
		return nil, err
	}
	if err := s.checkReach(ctx, account, tenantID, id); err != nil {
		return nil, err
	}
	c, err := s.catalog.ReplaceAPIKey(ctx, tenantID, id, key, s.now())
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "toloka credential key replaced", "tenant_id", tenantID, "credential_id", id,
		"environment", string(env), "key_fingerprint", c.GetKeyFingerprint(), "previous_key_fingerprint", old.GetKeyFingerprint())
	return &crowdgatev1.ReplaceApiKeyResponse{Credential: c}, nil
}

// checkReach makes sure a new key reaches the projects of the credential
// it replaces: Toloka answers GET /projects/{id} with it for the first of
// them (a key of the same account reaches them all). Without projects
// there is nothing to reach.
func (s *Service) checkReach(ctx context.Context, account *toloka.Account, tenantID, credentialID string) error {
	projects, err := s.catalog.CredentialProjects(ctx, tenantID, credentialID)
	if err != nil {
		return err
	}
	for _, p := range projects {
		if p.GetTolokaProjectId() == "" {
			continue
		}
		_, err := account.GetProject(ctx, p.GetTolokaProjectId())
		var (
			fp *serviceerror.FailedPrecondition
			pd *serviceerror.PermissionDenied
			nf *serviceerror.NotFound
		)
		switch {
		case err == nil:
			return nil
		case errors.As(err, &nf), errors.As(err, &pd), errors.As(err, &fp):
			return serviceerror.NewFailedPrecondition("the new key does not reach this credential's projects: Toloka does not show it project %s (Toloka project %s); give a key of the same Toloka account",
				p.GetProjectId(), p.GetTolokaProjectId())
		default:
			return err
		}
	}
	return nil
}

// verifyError turns Toloka's refusal of a key at registration into the
// caller's error: any refusal of the key itself is FAILED_PRECONDITION;
// Toloka being unreachable or throttling stays what it is.
func verifyError(err error) error {
	var (
		fp *serviceerror.FailedPrecondition
		pd *serviceerror.PermissionDenied
		nf *serviceerror.NotFound
		un *serviceerror.Unavailable
		re *serviceerror.ResourceExhausted
	)
	switch {
	case errors.As(err, &un), errors.As(err, &re):
		return err
	case errors.As(err, &fp):
		return &serviceerror.FailedPrecondition{Message: "Toloka refused the API key: " + fp.Message}
	case errors.As(err, &pd):
		return &serviceerror.FailedPrecondition{Message: "Toloka accepted the API key but denied it access to projects: " + pd.Message}
	case errors.As(err, &nf):
		return &serviceerror.FailedPrecondition{Message: "Toloka refused the API key: the API answered not found; check the environment"}
	}
	return err
}

// GetCredential returns a credential's metadata.
func (s *Service) GetCredential(ctx context.Context, req *crowdgatev1.GetCredentialRequest) (*crowdgatev1.GetCredentialResponse, error) {
	if req.GetCredentialId() == "" {
		return nil, serviceerror.NewInvalidArgument("credential_id", "is required")
	}
	c, err := s.catalog.Credential(ctx, tenant.FromContext(ctx), req.GetCredentialId())
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.GetCredentialResponse{Credential: c}, nil
}

// ListCredentials lists the tenant's credentials, newest first.
func (s *Service) ListCredentials(ctx context.Context, req *crowdgatev1.ListCredentialsRequest) (*crowdgatev1.ListCredentialsResponse, error) {
	page, err := paging.Parse("credentials", req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	items, next, err := s.catalog.ListCredentials(ctx, tenant.FromContext(ctx), page)
	if err != nil {
		return nil, err
	}
	return &crowdgatev1.ListCredentialsResponse{Credentials: items, NextPageToken: next}, nil
}

// DeleteCredential forgets a key, unless an unarchived project uses it.
func (s *Service) DeleteCredential(ctx context.Context, req *crowdgatev1.DeleteCredentialRequest) (*crowdgatev1.DeleteCredentialResponse, error) {
	tenantID, id := tenant.FromContext(ctx), req.GetCredentialId()
	if id == "" {
		return nil, serviceerror.NewInvalidArgument("credential_id", "is required")
	}
	if err := s.catalog.DeleteCredential(ctx, tenantID, id); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "toloka credential deleted", "tenant_id", tenantID, "credential_id", id)
	return &crowdgatev1.DeleteCredentialResponse{}, nil
}
