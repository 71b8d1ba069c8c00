package project

import (
	"context"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/fieldmask"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/kernel/tenant"
	"github.com/crowdgate/crowdgate/services/kernel/weburl"
)

// fixedFields are the Project fields UpdateProject never changes: the
// output-only ones and the credential (the Toloka account that owns the
// project).
var fixedFields = map[string]bool{
	"project_id": true, "tenant_id": true, "credential_id": true, "environment": true, "toloka_project_id": true,
	"status": true, "landing_url": true, "create_time": true, "archive_time": true,
}

// UpdateProject changes the fields named by the mask (every settable field
// when it is empty), validates the result as CreateProject does and
// replaces the project in Toloka (PUT /projects/{id}), then in the catalog.
func (s *Service) UpdateProject(ctx context.Context, req *crowdgatev1.UpdateProjectRequest) (*crowdgatev1.UpdateProjectResponse, error) {
	tenantID := tenant.FromContext(ctx)
	src := req.GetProject()
	if src == nil {
		return nil, serviceerror.NewInvalidArgument("project", "is required")
	}
	if src.GetProjectId() == "" {
		return nil, serviceerror.NewInvalidArgument("project.project_id", "is required")
	}
	stored, err := s.catalog.Project(ctx, tenantID, src.GetProjectId())
	if err != nil {
		return nil, err
	}
	if c := src.GetCredentialId(); c != "" && c != stored.GetCredentialId() {
		return nil, serviceerror.NewInvalidArgument("project.credential_id", "cannot be changed (the project lives in the Toloka account of credential %s)", stored.GetCredentialId())
	}
	merged, err := mergeProject(stored, src, req.GetUpdateMask().GetPaths())
	if err != nil {
		return nil, err
	}
	if merged.GetPlatformUrl() != stored.GetPlatformUrl() && merged.GetPlatformAudience() == stored.GetPlatformAudience() &&
		stored.GetPlatformAudience() == weburl.Origin(stored.GetPlatformUrl()) && !slices.Contains(req.GetUpdateMask().GetPaths(), "platform_audience") {
		// The audience was the old URL's origin (its default): it follows
		// the platform to its new address (validation defaults it again),
		// or the platform's tokens would name the host it left.
		merged.PlatformAudience = ""
	}
	if stored.GetStatus() == crowdgatev1.ProjectStatus_PROJECT_STATUS_ARCHIVED {
		return nil, serviceerror.NewFailedPrecondition("project %s is archived", stored.GetProjectId())
	}
	tp, err := s.tolokaProject(merged, stored)
	if err != nil {
		return nil, err
	}
	account, err := s.catalog.Account(ctx, tenantID, stored.GetCredentialId())
	if err != nil {
		return nil, err
	}
	updated, err := account.UpdateProject(ctx, stored.GetTolokaProjectId(), tp)
	if err != nil {
		return nil, tolokaError("project", err)
	}
	if st := projectStatus(updated.Status); st != crowdgatev1.ProjectStatus_PROJECT_STATUS_UNSPECIFIED {
		merged.Status = st
	}
	if err := s.catalog.PutProject(ctx, merged); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "project updated", "tenant_id", tenantID, "project_id", merged.GetProjectId(),
		"toloka_project_id", merged.GetTolokaProjectId(), "update_mask", strings.Join(req.GetUpdateMask().GetPaths(), ","))
	return &crowdgatev1.UpdateProjectResponse{Project: merged}, nil
}

// mergeProject returns stored with the fields of src named by paths; no
// paths replaces every settable field. Fixed fields keep stored's values.
func mergeProject(stored, src *crowdgatev1.Project, paths []string) (*crowdgatev1.Project, error) {
	var out *crowdgatev1.Project
	if len(paths) == 0 {
		out = proto.CloneOf(src)
	} else {
		out = proto.CloneOf(stored)
		for _, path := range paths {
			parts := strings.Split(path, ".")
			if fixedFields[parts[0]] {
				continue
			}
			if err := fieldmask.Copy(out.ProtoReflect(), src.ProtoReflect(), path); err != nil {
				return nil, err
			}
		}
	}
	dst, from := out.ProtoReflect(), stored.ProtoReflect()
	fields := dst.Descriptor().Fields()
	for name := range fixedFields {
		fd := fields.ByName(protoreflect.Name(name))
		if from.Has(fd) {
			dst.Set(fd, from.Get(fd))
		} else {
			dst.Clear(fd)
		}
	}
	return out, nil
}
