package toloka

import (
	"context"
	"iter"
	"net/http"
)

// Skill is a Toloka skill (POST /skills). ID, Created, Training and Global
// are set by Toloka and never sent.
type Skill struct {
	ID string `json:"id,omitempty"`
	// Name is visible to the requester only (required).
	Name string `json:"name"`
	// PrivateComment is visible to the requester only.
	PrivateComment string `json:"private_comment,omitempty"`
	// Hidden hides the skill from Tolokers (Toloka's default true).
	Hidden *bool `json:"hidden,omitempty"`
	// SkillTTLHours is how long a Toloker's value lives; nil: for ever.
	SkillTTLHours *int `json:"skill_ttl_hours,omitempty"`
	// PublicName and PublicRequesterDescription are shown to Tolokers, by
	// language code.
	PublicName                 map[string]string `json:"public_name,omitempty"`
	PublicRequesterDescription map[string]string `json:"public_requester_description,omitempty"`
	Created                    *Time             `json:"created,omitempty"`
	Training                   *bool             `json:"training,omitempty"`
	Global                     *bool             `json:"global,omitempty"`
}

// CreateSkill creates s (POST /skills). Like every create it is retried
// only when Toloka refused it: a retry after an ambiguous failure could
// create the skill twice.
func (a *Account) CreateSkill(ctx context.Context, s Skill) (*Skill, error) {
	if s.Name == "" {
		return nil, invalid("name", "is required")
	}
	s.ID, s.Created, s.Training, s.Global = "", nil, nil, nil
	var out Skill
	if _, err := a.do(ctx, request{op: "skill.create", method: http.MethodPost, path: "/skills", body: s, out: &out, mode: retryRefused, resource: "skill"}); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetSkill returns skill id (GET /skills/{id}).
func (a *Account) GetSkill(ctx context.Context, id string) (*Skill, error) {
	path, err := objectPath("/skills", "skill_id", id)
	if err != nil {
		return nil, err
	}
	var out Skill
	if _, err := a.do(ctx, request{op: "skill.get", method: http.MethodGet, path: path, out: &out, resource: "skill", id: id}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListSkills returns one page of skills (GET /skills; Filters may hold
// name).
func (a *Account) ListSkills(ctx context.Context, opts ListOptions) (*List[Skill], error) {
	var out List[Skill]
	if _, err := a.do(ctx, request{op: "skill.list", method: http.MethodGet, path: "/skills", query: opts.values(), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// AllSkills iterates over every skill matching opts (see AllProjects).
func (a *Account) AllSkills(ctx context.Context, opts ListOptions) iter.Seq2[*Skill, error] {
	return paginate(ctx, opts, a.ListSkills, func(s *Skill) string { return s.ID })
}

// GetUserSkill returns user skill id (GET /user-skills/{id}).
func (a *Account) GetUserSkill(ctx context.Context, id string) (*UserSkill, error) {
	path, err := objectPath("/user-skills", "user_skill_id", id)
	if err != nil {
		return nil, err
	}
	var out UserSkill
	if _, err := a.do(ctx, request{op: "user_skill.get", method: http.MethodGet, path: path, out: &out, resource: "user skill", id: id}); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListUserSkills returns one page of Tolokers' skill values
// (GET /user-skills; Filters may hold user_id and skill_id).
func (a *Account) ListUserSkills(ctx context.Context, opts ListOptions) (*List[UserSkill], error) {
	var out List[UserSkill]
	if _, err := a.do(ctx, request{op: "user_skill.list", method: http.MethodGet, path: "/user-skills", query: opts.values(), out: &out}); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteUserSkill removes user skill id (DELETE /user-skills/{id}). A 404
// answering a retry counts as success: the earlier attempt deleted it.
func (a *Account) DeleteUserSkill(ctx context.Context, id string) error {
	path, err := objectPath("/user-skills", "user_skill_id", id)
	if err != nil {
		return err
	}
	_, err = a.do(ctx, request{op: "user_skill.delete", method: http.MethodDelete, path: path, resource: "user skill", id: id, goneIsDone: true})
	return err
}
