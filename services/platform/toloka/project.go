package toloka

import (
	"encoding/json"
)

// IssuingType is how a project issues assignments.
type IssuingType string

// Issuing types. EXTERNAL is the partner-only value of the third-party
// platform integration (seed 001): Tolokers are redirected to
// AssignmentsIssuingViewConfig.RedirectURL.
const (
	IssuingAutomated   IssuingType = "AUTOMATED"
	IssuingMapSelector IssuingType = "MAP_SELECTOR"
	IssuingExternal    IssuingType = "EXTERNAL"
)

// ProjectStatus is a project's status.
type ProjectStatus string

// Project statuses.
const (
	ProjectActive   ProjectStatus = "ACTIVE"
	ProjectArchived ProjectStatus = "ARCHIVED"
)

// Metadata keys of the third-party platform integration (seed 001).
const (
	MetaBonusPriceMax = "ptmik_bonus_price_max"
	MetaBonusPriceMin = "ptmik_bonus_price_min"
	MetaPartnerName   = "ptmik_partner_name"
	MetaPartnerURL    = "ptmik_partner_url"
)

// Project is a Toloka project. Optional fields are pointers or omitempty, so
// a request carries exactly the fields that are set. ID, Status, Created and
// Owner are set by Toloka and never sent.
type Project struct {
	// ID is assigned by Toloka.
	ID string `json:"id,omitempty"`
	// PublicName is the name Tolokers see (required).
	PublicName string `json:"public_name,omitempty"`
	// PublicDescription is the description Tolokers see (required).
	PublicDescription string `json:"public_description,omitempty"`
	// PublicInstructions are HTML instructions for Tolokers.
	PublicInstructions string `json:"public_instructions,omitempty"`
	// PrivateComment is visible to the requester only.
	PrivateComment string `json:"private_comment,omitempty"`
	// TaskSpec describes inputs, outputs and the task interface (required).
	TaskSpec *TaskSpec `json:"task_spec,omitempty"`
	// AssignmentsIssuingType is AUTOMATED (Toloka's default), MAP_SELECTOR or
	// EXTERNAL.
	AssignmentsIssuingType IssuingType `json:"assignments_issuing_type,omitempty"`
	// AssignmentsIssuingViewConfig configures MAP_SELECTOR and EXTERNAL
	// issuing (the redirect URL).
	AssignmentsIssuingViewConfig *IssuingViewConfig `json:"assignments_issuing_view_config,omitempty"`
	// AssignmentsAutomergeEnabled allows merging identical tasks.
	AssignmentsAutomergeEnabled *bool `json:"assignments_automerge_enabled,omitempty"`
	// MaxActiveAssignmentsCount is how many task suites a Toloker may hold
	// active at once.
	MaxActiveAssignmentsCount *int `json:"max_active_assignments_count,omitempty"`
	// QualityControl holds project-level quality control rules.
	QualityControl *QualityControl `json:"quality_control,omitempty"`
	// LocalizationConfig holds translations.
	LocalizationConfig *LocalizationConfig `json:"localization_config,omitempty"`
	// Metadata maps keys to lists of strings, for example
	// {"ptmik_partner_name": ["Acme"]}.
	Metadata map[string][]string `json:"metadata,omitempty"`

	// Status is ACTIVE or ARCHIVED (set by Toloka).
	Status ProjectStatus `json:"status,omitempty"`
	// Created is when the project was created (set by Toloka).
	Created *Time `json:"created,omitempty"`
	// Owner is the requester who owns the project (set by Toloka).
	Owner *Owner `json:"owner,omitempty"`

	// Extra holds fields this package does not model.
	Extra Extra `json:"-"`
}

// MarshalJSON writes p, Extra included.
func (p Project) MarshalJSON() ([]byte, error) {
	type plain Project
	return marshalWithExtra(plain(p), p.Extra)
}

// UnmarshalJSON reads p, keeping unmodelled fields in Extra.
func (p *Project) UnmarshalJSON(b []byte) error {
	type plain Project
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*p = Project(v)
	p.Extra = x
	return nil
}

// forRequest returns a copy of p without the fields Toloka sets.
func (p Project) forRequest() Project {
	p.ID, p.Status, p.Created, p.Owner = "", "", nil, nil
	return p
}

// Owner identifies the requester who owns an object.
type Owner struct {
	ID        string `json:"id,omitempty"`
	Myself    *bool  `json:"myself,omitempty"`
	CompanyID string `json:"company_id,omitempty"`
}

// IssuingViewConfig is assignments_issuing_view_config.
type IssuingViewConfig struct {
	// RedirectURL is where EXTERNAL projects send Tolokers. It must be
	// registered with Toloka support first.
	RedirectURL string `json:"redirect_url,omitempty"`
	// TitleTemplate and DescriptionTemplate are shown for MAP_SELECTOR tasks.
	TitleTemplate       string `json:"title_template,omitempty"`
	DescriptionTemplate string `json:"description_template,omitempty"`
	// MapProvider is GOOGLE or YANDEX (MAP_SELECTOR only).
	MapProvider string `json:"map_provider,omitempty"`

	// Extra holds fields this package does not model.
	Extra Extra `json:"-"`
}

// MarshalJSON writes c, Extra included.
func (c IssuingViewConfig) MarshalJSON() ([]byte, error) {
	type plain IssuingViewConfig
	return marshalWithExtra(plain(c), c.Extra)
}

// UnmarshalJSON reads c, keeping unmodelled fields in Extra.
func (c *IssuingViewConfig) UnmarshalJSON(b []byte) error {
	type plain IssuingViewConfig
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*c = IssuingViewConfig(v)
	c.Extra = x
	return nil
}

// TaskSpec is a project's task_spec.
type TaskSpec struct {
	// InputSpec maps input field names to their specifications.
	InputSpec map[string]FieldSpec `json:"input_spec,omitempty"`
	// OutputSpec maps output field names to their specifications.
	OutputSpec map[string]FieldSpec `json:"output_spec,omitempty"`
	// ViewSpec describes the task interface.
	ViewSpec *ViewSpec `json:"view_spec,omitempty"`

	// Extra holds fields this package does not model.
	Extra Extra `json:"-"`
}

// MarshalJSON writes s, Extra included.
func (s TaskSpec) MarshalJSON() ([]byte, error) {
	type plain TaskSpec
	return marshalWithExtra(plain(s), s.Extra)
}

// UnmarshalJSON reads s, keeping unmodelled fields in Extra.
func (s *TaskSpec) UnmarshalJSON(b []byte) error {
	type plain TaskSpec
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*s = TaskSpec(v)
	s.Extra = x
	return nil
}

// FieldSpec specifies one input or output field.
type FieldSpec struct {
	// Type is url, boolean, integer, string, float, json, file or
	// coordinates (Toloka writes them in upper case in responses).
	Type string `json:"type"`
	// Required defaults to true at Toloka.
	Required *bool `json:"required,omitempty"`
	// Hidden hides an input value from Tolokers.
	Hidden *bool `json:"hidden,omitempty"`
	// MinValue and MaxValue bound numbers, digits kept as given.
	MinValue json.Number `json:"min_value,omitempty"`
	MaxValue json.Number `json:"max_value,omitempty"`
	// AllowedValues is a JSON array of allowed strings or numbers.
	AllowedValues json.RawMessage `json:"allowed_values,omitempty"`
	// MinLength and MaxLength bound strings.
	MinLength *int `json:"min_length,omitempty"`
	MaxLength *int `json:"max_length,omitempty"`
	// CurrentLocation fills a coordinates output with the Toloker's position.
	CurrentLocation *bool `json:"current_location,omitempty"`

	// Extra holds fields this package does not model.
	Extra Extra `json:"-"`
}

// MarshalJSON writes s, Extra included.
func (s FieldSpec) MarshalJSON() ([]byte, error) {
	type plain FieldSpec
	return marshalWithExtra(plain(s), s.Extra)
}

// UnmarshalJSON reads s, keeping unmodelled fields in Extra.
func (s *FieldSpec) UnmarshalJSON(b []byte) error {
	type plain FieldSpec
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*s = FieldSpec(v)
	s.Extra = x
	return nil
}

// ViewSpec is a task interface: classic markup/script/styles, or a
// Template Builder spec (Type "tb" with its config in Extra["config"]).
type ViewSpec struct {
	Markup   string        `json:"markup,omitempty"`
	Script   string        `json:"script,omitempty"`
	Styles   string        `json:"styles,omitempty"`
	Settings *ViewSettings `json:"settings,omitempty"`
	Assets   *ViewAssets   `json:"assets,omitempty"`
	// Type is "tb" for Template Builder.
	Type string `json:"type,omitempty"`
	// LocalizationConfig is Template Builder's localizationConfig.
	LocalizationConfig json.RawMessage `json:"localizationConfig,omitempty"`

	// Extra holds fields this package does not model (Template Builder's
	// config, lock, ...).
	Extra Extra `json:"-"`
}

// MarshalJSON writes s, Extra included.
func (s ViewSpec) MarshalJSON() ([]byte, error) {
	type plain ViewSpec
	return marshalWithExtra(plain(s), s.Extra)
}

// UnmarshalJSON reads s, keeping unmodelled fields in Extra.
func (s *ViewSpec) UnmarshalJSON(b []byte) error {
	type plain ViewSpec
	var v plain
	x, err := unmarshalWithExtra(b, &v)
	if err != nil {
		return err
	}
	*s = ViewSpec(v)
	s.Extra = x
	return nil
}

// ViewSettings are the standard interface elements to show; each defaults
// to true at Toloka.
type ViewSettings struct {
	ShowSkip         *bool `json:"showSkip,omitempty"`
	ShowTimer        *bool `json:"showTimer,omitempty"`
	ShowTitle        *bool `json:"showTitle,omitempty"`
	ShowSubmit       *bool `json:"showSubmit,omitempty"`
	ShowFullscreen   *bool `json:"showFullscreen,omitempty"`
	ShowInstructions *bool `json:"showInstructions,omitempty"`
	ShowFinish       *bool `json:"showFinish,omitempty"`
	ShowMessage      *bool `json:"showMessage,omitempty"`
	ShowReward       *bool `json:"showReward,omitempty"`
}

// ViewAssets are files the task interface loads, in order.
type ViewAssets struct {
	ScriptURLs []string `json:"script_urls,omitempty"`
	StyleURLs  []string `json:"style_urls,omitempty"`
}

// LocalizationConfig is a project's localization_config.
type LocalizationConfig struct {
	// DefaultLanguage is the language of the public name, description and
	// instructions ("EN").
	DefaultLanguage     string               `json:"default_language,omitempty"`
	AdditionalLanguages []AdditionalLanguage `json:"additional_languages,omitempty"`
}

// AdditionalLanguage is one translation.
type AdditionalLanguage struct {
	Language           string          `json:"language"`
	PublicName         *LocalizedValue `json:"public_name,omitempty"`
	PublicDescription  *LocalizedValue `json:"public_description,omitempty"`
	PublicInstructions *LocalizedValue `json:"public_instructions,omitempty"`
	// TBViewSpec is the Template Builder translation ({"keys": [...]}).
	TBViewSpec json.RawMessage `json:"tb_view_spec,omitempty"`
}

// LocalizedValue is a translated text and its source (REQUESTER).
type LocalizedValue struct {
	Value  string `json:"value"`
	Source string `json:"source,omitempty"`
}
