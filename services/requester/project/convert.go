package project

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
)

// This file converts the API's filter, quality-control and task-spec
// messages to Toloka's JSON, validating as it goes: every function returns
// the first bad value as a serviceerror.InvalidArgument naming its proto
// field path ("pool.quality_control.configs[0].rules[1].action.parameters.skill_id").
// The pool service uses the exported ones too.

// MaxFilterJSONLength is Toloka's bound on a filter's JSON, in characters.
const MaxFilterJSONLength = 10000

// maxFilterDepth bounds the nesting of a filter tree.
const maxFilterDepth = 10

func bad(field, format string, args ...any) error {
	return serviceerror.NewInvalidArgument(field, format, args...)
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func index(prefix string, i int) string { return prefix + "[" + strconv.Itoa(i) + "]" }

// Toloka's filter grammar, in the order Toloka's documents write it.
type (
	andNode struct {
		And []any `json:"and"`
	}
	orNode struct {
		Or []any `json:"or"`
	}
	conditionNode struct {
		Category string          `json:"category"`
		Key      string          `json:"key"`
		Operator string          `json:"operator"`
		Value    json.RawMessage `json:"value"`
	}
)

var (
	filterCategories = []string{"profile", "computed", "skill"}
	filterOperators  = []string{"EQ", "NE", "GT", "GTE", "LT", "LTE", "IN", "NOT_IN"}
)

// filterNode validates f and returns its Toloka form. checkKeys applies
// each key's rules (filterkeys.go): to a filter as given, not to one stored
// before those rules, which Toloka took then and which stays as it is.
func filterNode(field string, f *crowdgatev1.Filter, depth int, checkKeys bool) (any, error) {
	if depth > maxFilterDepth {
		return nil, bad(field, "filters may nest at most %d levels", maxFilterDepth)
	}
	switch n := f.GetNode().(type) {
	case *crowdgatev1.Filter_And:
		children, err := filterList(join(field, "and"), n.And, depth, checkKeys)
		if err != nil {
			return nil, err
		}
		return andNode{And: children}, nil
	case *crowdgatev1.Filter_Or:
		children, err := filterList(join(field, "or"), n.Or, depth, checkKeys)
		if err != nil {
			return nil, err
		}
		return orNode{Or: children}, nil
	case *crowdgatev1.Filter_Condition:
		return filterCondition(join(field, "condition"), n.Condition, checkKeys)
	}
	return nil, bad(field, "must set exactly one of and, or, condition")
}

func filterList(field string, l *crowdgatev1.FilterList, depth int, checkKeys bool) ([]any, error) {
	fs := l.GetFilters()
	if len(fs) == 0 {
		return nil, bad(join(field, "filters"), "must have at least one operand")
	}
	out := make([]any, 0, len(fs))
	for i, f := range fs {
		n, err := filterNode(index(join(field, "filters"), i), f, depth+1, checkKeys)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func filterCondition(field string, c *crowdgatev1.FilterCondition, checkKeys bool) (any, error) {
	if !oneOf(c.GetCategory(), filterCategories) {
		return nil, bad(join(field, "category"), "must be one of %s, got %q", strings.Join(filterCategories, ", "), c.GetCategory())
	}
	if strings.TrimSpace(c.GetKey()) == "" {
		return nil, bad(join(field, "key"), "is required")
	}
	if !oneOf(c.GetOperator(), filterOperators) {
		return nil, bad(join(field, "operator"), "must be one of %s, got %q", strings.Join(filterOperators, ", "), c.GetOperator())
	}
	if c.GetValue() == nil || c.GetValue().GetKind() == nil {
		return nil, bad(join(field, "value"), "is required (use null_value to compare with null)")
	}
	switch c.GetValue().GetKind().(type) {
	case *structpb.Value_StructValue, *structpb.Value_ListValue:
		// Toloka compares an attribute with one value (IN: the attribute
		// holds it).
		return nil, bad(join(field, "value"), "must be a string, number, boolean or null")
	}
	v, err := valueJSON(c.GetValue())
	if err != nil {
		return nil, bad(join(field, "value"), "%v", err)
	}
	if checkKeys {
		if at, why := checkConditionKey(c.GetCategory(), c.GetKey(), c.GetOperator(), c.GetValue()); at != "" {
			return nil, bad(join(field, at), "%s", why)
		}
	}
	return conditionNode{Category: c.GetCategory(), Key: c.GetKey(), Operator: c.GetOperator(), Value: v}, nil
}

func valueJSON(v *structpb.Value) (json.RawMessage, error) {
	if n, ok := v.GetKind().(*structpb.Value_NumberValue); ok && (math.IsNaN(n.NumberValue) || math.IsInf(n.NumberValue, 0)) {
		return nil, errNotFinite
	}
	b, err := protojson.Marshal(v)
	if err != nil {
		return nil, err
	}
	// protojson output is not stable in whitespace; compact it.
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var errNotFinite = errors.New("must be a finite number")

func oneOf(s string, allowed []string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

// Toloker requirements.

var (
	countryCode  = regexp.MustCompile(`^[A-Z]{2}$`)
	languageCode = regexp.MustCompile(`^[A-Z]{2}([_-][A-Z]{2,4})?$`)
	clientTypes  = []string{"BROWSER", "TOLOKA_APP"}
)

// normalizeRequirements validates r and upper-cases its codes in place.
func normalizeRequirements(field string, r *crowdgatev1.TolokerRequirements, checkKeys bool) error {
	if r == nil {
		return nil
	}
	for i, c := range r.Countries {
		c = strings.ToUpper(strings.TrimSpace(c))
		if !countryCode.MatchString(c) {
			return bad(index(join(field, "countries"), i), "must be an ISO 3166-1 alpha-2 country code such as RU, got %q", r.Countries[i])
		}
		r.Countries[i] = c
	}
	for i, l := range r.Languages {
		l = strings.ToUpper(strings.TrimSpace(l))
		if !languageCode.MatchString(l) {
			return bad(index(join(field, "languages"), i), "must be an ISO 639-1 language code such as EN, got %q", r.Languages[i])
		}
		r.Languages[i] = l
	}
	for i, c := range r.ClientTypes {
		c = strings.ToUpper(strings.TrimSpace(c))
		if !oneOf(c, clientTypes) {
			return bad(index(join(field, "client_types"), i), "must be BROWSER or TOLOKA_APP, got %q", r.ClientTypes[i])
		}
		r.ClientTypes[i] = c
	}
	if r.Filter != nil {
		if _, err := filterNode(join(field, "filter"), r.Filter, 1, checkKeys); err != nil {
			return err
		}
	}
	return nil
}

// requirementNodes returns the members of the top-level AND that express
// r in Toloka's filter grammar: one OR group per listed attribute, with the
// operators Toloka documents for each key (profile.country EQ,
// profile.languages IN, computed.client_type EQ), adult_allowed as one
// condition and r.Filter as given.
func requirementNodes(field string, r *crowdgatev1.TolokerRequirements) ([]any, error) {
	if r == nil {
		return nil, nil
	}
	var out []any
	group := func(category, key, operator string, values []string) {
		if len(values) == 0 {
			return
		}
		or := orNode{}
		for _, v := range values {
			b, _ := json.Marshal(v)
			or.Or = append(or.Or, conditionNode{Category: category, Key: key, Operator: operator, Value: b})
		}
		out = append(out, or)
	}
	group("profile", "country", "EQ", r.GetCountries())
	group("profile", "languages", "IN", r.GetLanguages())
	group("computed", "client_type", "EQ", r.GetClientTypes())
	if r.AdultAllowed != nil {
		out = append(out, conditionNode{Category: "profile", Key: "adult_allowed", Operator: "EQ",
			Value: json.RawMessage(strconv.FormatBool(r.GetAdultAllowed()))})
	}
	if r.Filter != nil {
		// The project's stored requirements, checked when they were
		// stored: under the rules of then.
		n, err := filterNode(join(field, "filter"), r.Filter, 1, false)
		if err != nil {
			return nil, err
		}
		out = appendAndMember(out, n)
	}
	return out, nil
}

// appendAndMember adds n to the members of an AND, splicing an AND's
// operands so the tree stays shallow.
func appendAndMember(members []any, n any) []any {
	if a, ok := n.(andNode); ok {
		return append(members, a.And...)
	}
	return append(members, n)
}

// PoolFilter returns the filter a pool of project p sends Toloka: the
// project's Toloker requirements ANDed with the pool's own filter f
// (validated, named field in errors), or nil when there is neither. The JSON
// must fit Toloka's MaxFilterJSONLength.
//
// checkKeys applies each filter key's rules to f: false for a pool's
// filter stored before those rules, which stays as it is.
func PoolFilter(p *crowdgatev1.Project, field string, f *crowdgatev1.Filter, checkKeys bool) (json.RawMessage, error) {
	members, err := requirementNodes("project.toloker_requirements", p.GetTolokerRequirements())
	if err != nil {
		return nil, err
	}
	if f != nil {
		n, err := filterNode(field, f, 1, checkKeys)
		if err != nil {
			return nil, err
		}
		members = appendAndMember(members, n)
	}
	if len(members) == 0 {
		return nil, nil
	}
	b, err := marshalJSON(andNode{And: members})
	if err != nil {
		return nil, err
	}
	if n := len([]rune(string(b))); n > MaxFilterJSONLength {
		return nil, bad(field, "the filter's JSON, with the project's Toloker requirements, is %d characters; Toloka allows at most %d", n, MaxFilterJSONLength)
	}
	return b, nil
}

// marshalJSON marshals without HTML escaping, so texts reach Toloka as sent.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Quality control (seed 004).

// enumName is an API enum value's Toloka name: its name without prefix.
func enumName(name, prefix string) string { return strings.TrimPrefix(name, prefix) }

// QualityControlConfigs validates rule sets (named field in errors) and
// returns their Toloka form.
func QualityControlConfigs(field string, cfgs []*crowdgatev1.QualityControlConfig) ([]toloka.QualityControlConfig, error) {
	var out []toloka.QualityControlConfig
	for i, c := range cfgs {
		p := index(field, i)
		tc, err := qualityControlConfig(p, c)
		if err != nil {
			return nil, err
		}
		out = append(out, tc)
	}
	return out, nil
}

func qualityControlConfig(p string, c *crowdgatev1.QualityControlConfig) (toloka.QualityControlConfig, error) {
	var out toloka.QualityControlConfig
	cc := c.GetCollectorConfig()
	if cc == nil {
		return out, bad(join(p, "collector_config"), "is required")
	}
	collector, err := collectorConfig(join(p, "collector_config"), cc)
	if err != nil {
		return out, err
	}
	out.CollectorConfig = collector
	if len(c.GetRules()) == 0 {
		return out, bad(join(p, "rules"), "must have at least one rule")
	}
	for j, r := range c.GetRules() {
		rp := index(join(p, "rules"), j)
		rule, err := qualityRule(rp, cc.GetType(), r)
		if err != nil {
			return out, err
		}
		out.Rules = append(out.Rules, rule)
	}
	return out, nil
}

func collectorConfig(p string, cc *crowdgatev1.CollectorConfig) (*toloka.CollectorConfig, error) {
	typ := cc.GetType()
	if _, known := crowdgatev1.CollectorType_name[int32(typ)]; !known || typ == crowdgatev1.CollectorType_COLLECTOR_TYPE_UNSPECIFIED {
		return nil, bad(join(p, "type"), "is required: GOLDEN_SET, MAJORITY_VOTE, INCOME, SKIPPED_IN_ROW_ASSIGNMENTS, ANSWER_COUNT, ASSIGNMENT_SUBMIT_TIME, ACCEPTANCE_RATE, ASSIGNMENTS_ASSESSMENT, USERS_ASSESSMENT, TRAINING or CAPTCHA")
	}
	name := enumName(typ.String(), "COLLECTOR_TYPE_")
	out := &toloka.CollectorConfig{Type: name}
	pp := join(p, "parameters")
	params := cc.GetParameters()
	if params == nil {
		params = &crowdgatev1.CollectorParameters{}
	}
	positive := func(f string, v *int32) error {
		if v != nil && *v < 1 {
			return bad(join(pp, f), "must be at least 1, got %d", *v)
		}
		return nil
	}
	for _, f := range []struct {
		name string
		v    *int32
	}{{"history_size", params.HistorySize}, {"answer_threshold", params.AnswerThreshold},
		{"history_size_submit", params.HistorySizeSubmit}, {"fast_submit_threshold_seconds", params.FastSubmitThresholdSeconds}} {
		if err := positive(f.name, f.v); err != nil {
			return nil, err
		}
	}
	if params.HistorySize != nil && !historyCollectors[typ] {
		return nil, bad(join(pp, "history_size"), "is not a parameter of %s collectors (only GOLDEN_SET, MAJORITY_VOTE, ASSIGNMENT_SUBMIT_TIME, ACCEPTANCE_RATE and CAPTCHA count a history)", name)
	}
	historySize := params.HistorySize
	isSubmitTime := typ == crowdgatev1.CollectorType_COLLECTOR_TYPE_ASSIGNMENT_SUBMIT_TIME
	switch {
	case params.HistorySizeSubmit != nil && !isSubmitTime:
		return nil, bad(join(pp, "history_size_submit"), "is for ASSIGNMENT_SUBMIT_TIME collectors only (use history_size)")
	case params.HistorySizeSubmit != nil && params.HistorySize != nil && *params.HistorySize != *params.HistorySizeSubmit:
		return nil, bad(join(pp, "history_size_submit"), "set history_size or history_size_submit, not both")
	case params.HistorySizeSubmit != nil:
		historySize = params.HistorySizeSubmit
	}
	if params.AnswerThreshold != nil && typ != crowdgatev1.CollectorType_COLLECTOR_TYPE_MAJORITY_VOTE {
		return nil, bad(join(pp, "answer_threshold"), "is for MAJORITY_VOTE collectors only")
	}
	if params.FastSubmitThresholdSeconds != nil && !isSubmitTime {
		return nil, bad(join(pp, "fast_submit_threshold_seconds"), "is for ASSIGNMENT_SUBMIT_TIME collectors only")
	}
	switch {
	case typ == crowdgatev1.CollectorType_COLLECTOR_TYPE_MAJORITY_VOTE && params.AnswerThreshold == nil:
		return nil, bad(join(pp, "answer_threshold"), "is required for MAJORITY_VOTE")
	case isSubmitTime && params.FastSubmitThresholdSeconds == nil:
		return nil, bad(join(pp, "fast_submit_threshold_seconds"), "is required for ASSIGNMENT_SUBMIT_TIME")
	}
	tp := &toloka.CollectorParameters{}
	if historySize != nil {
		tp.HistorySize = toloka.Ptr(int(*historySize))
	}
	extra := toloka.Extra{}
	if params.AnswerThreshold != nil {
		extra["answer_threshold"] = json.RawMessage(strconv.Itoa(int(*params.AnswerThreshold)))
	}
	if params.FastSubmitThresholdSeconds != nil {
		extra["fast_submit_threshold_seconds"] = json.RawMessage(strconv.Itoa(int(*params.FastSubmitThresholdSeconds)))
	}
	if len(extra) > 0 {
		tp.Extra = extra
	}
	if tp.HistorySize != nil || tp.Extra != nil {
		out.Parameters = tp
	}
	return out, nil
}

func qualityRule(rp string, collector crowdgatev1.CollectorType, r *crowdgatev1.QualityControlRule) (toloka.Rule, error) {
	var out toloka.Rule
	if len(r.GetConditions()) == 0 {
		return out, bad(join(rp, "conditions"), "must have at least one condition")
	}
	cname := enumName(collector.String(), "COLLECTOR_TYPE_")
	keys := CollectorKeys(collector)
	for k, c := range r.GetConditions() {
		cp := index(join(rp, "conditions"), k)
		key := c.GetKey()
		if strings.TrimSpace(key) == "" {
			return out, bad(join(cp, "key"), "is required: one of %s for %s", strings.Join(keys, ", "), cname)
		}
		spec, ok := conditionKeys[collector][key]
		if !ok {
			return out, bad(join(cp, "key"), "%q is not a key of %s collectors: one of %s", key, cname, strings.Join(keys, ", "))
		}
		op := c.GetOperator()
		if _, known := crowdgatev1.ComparisonOperator_name[int32(op)]; !known || op == crowdgatev1.ComparisonOperator_COMPARISON_OPERATOR_UNSPECIFIED {
			return out, bad(join(cp, "operator"), "is required: EQ, NE, GT, LT, GTE or LTE")
		}
		opName := enumName(op.String(), "COMPARISON_OPERATOR_")
		if spec.equalityOnly() && opName != "EQ" && opName != "NE" {
			return out, bad(join(cp, "operator"), "%s compares with EQ or NE only, got %s", key, opName)
		}
		v, err := spec.value(join(cp, "value"), key, c.GetValue())
		if err != nil {
			return out, err
		}
		out.Conditions = append(out.Conditions, toloka.Condition{Key: key, Operator: opName, Value: v})
	}
	if r.GetAction() == nil {
		return out, bad(join(rp, "action"), "is required")
	}
	action, err := ruleAction(join(rp, "action"), collector, r.GetAction())
	if err != nil {
		return out, err
	}
	out.Action = action
	return out, nil
}

// actionParams lists which parameters each action takes.
var actionParams = map[crowdgatev1.RuleActionType][]string{
	crowdgatev1.RuleActionType_RULE_ACTION_TYPE_RESTRICTION:                 {"scope", "duration", "duration_unit", "private_comment"},
	crowdgatev1.RuleActionType_RULE_ACTION_TYPE_RESTRICTION_V2:              {"scope", "duration", "duration_unit", "private_comment"},
	crowdgatev1.RuleActionType_RULE_ACTION_TYPE_SET_SKILL_FROM_OUTPUT_FIELD: {"skill_id", "from_field"},
	crowdgatev1.RuleActionType_RULE_ACTION_TYPE_CHANGE_OVERLAP:              {"delta", "open_pool"},
	crowdgatev1.RuleActionType_RULE_ACTION_TYPE_REJECT_ALL_ASSIGNMENTS:      {"public_comment"},
	crowdgatev1.RuleActionType_RULE_ACTION_TYPE_APPROVE_ALL_ASSIGNMENTS:     {},
	crowdgatev1.RuleActionType_RULE_ACTION_TYPE_SET_SKILL:                   {"skill_id", "skill_value"},
}

func ruleAction(ap string, collector crowdgatev1.CollectorType, a *crowdgatev1.RuleAction) (*toloka.Action, error) {
	typ := a.GetType()
	allowed, known := actionParams[typ]
	if !known {
		return nil, bad(join(ap, "type"), "is required: RESTRICTION, RESTRICTION_V2, SET_SKILL_FROM_OUTPUT_FIELD, CHANGE_OVERLAP, REJECT_ALL_ASSIGNMENTS, APPROVE_ALL_ASSIGNMENTS or SET_SKILL")
	}
	name := enumName(typ.String(), "RULE_ACTION_TYPE_")
	pp := join(ap, "parameters")
	p := a.GetParameters()
	if p == nil {
		p = &crowdgatev1.RuleActionParameters{}
	}
	set := map[string]bool{
		"scope":           p.GetScope() != crowdgatev1.RestrictionScope_RESTRICTION_SCOPE_UNSPECIFIED,
		"skill_id":        p.GetSkillId() != "",
		"from_field":      p.GetFromField() != "",
		"skill_value":     p.SkillValue != nil,
		"delta":           p.Delta != nil,
		"public_comment":  p.GetPublicComment() != "",
		"open_pool":       p.OpenPool != nil,
		"duration_unit":   p.GetDurationUnit() != crowdgatev1.DurationUnit_DURATION_UNIT_UNSPECIFIED,
		"duration":        p.Duration != nil,
		"private_comment": p.GetPrivateComment() != "",
	}
	for _, f := range []string{"scope", "skill_id", "from_field", "skill_value", "delta", "public_comment", "open_pool", "duration_unit", "duration", "private_comment"} {
		if set[f] && !oneOf(f, allowed) {
			return nil, bad(join(pp, f), "is not a parameter of %s actions", name)
		}
	}
	out := &toloka.Action{Type: name}
	tp := &toloka.ActionParameters{PrivateComment: p.GetPrivateComment()}
	requireScope := func() error {
		if !set["scope"] {
			return bad(join(pp, "scope"), "is required for %s: POOL, PROJECT or ALL_PROJECTS", name)
		}
		if _, ok := crowdgatev1.RestrictionScope_name[int32(p.GetScope())]; !ok {
			return bad(join(pp, "scope"), "unknown scope %d", p.GetScope())
		}
		tp.Scope = enumName(p.GetScope().String(), "RESTRICTION_SCOPE_")
		return nil
	}
	switch typ {
	case crowdgatev1.RuleActionType_RULE_ACTION_TYPE_RESTRICTION:
		if err := requireScope(); err != nil {
			return nil, err
		}
		if set["duration_unit"] && p.GetDurationUnit() != crowdgatev1.DurationUnit_DURATION_UNIT_DAYS {
			return nil, bad(join(pp, "duration_unit"), "RESTRICTION bans are counted in days; use RESTRICTION_V2 for other units")
		}
		if p.Duration != nil {
			if *p.Duration < 1 {
				return nil, bad(join(pp, "duration"), "must be at least 1, got %d", *p.Duration)
			}
			tp.Extra = toloka.Extra{"duration_days": json.RawMessage(strconv.Itoa(int(*p.Duration)))}
		}
	case crowdgatev1.RuleActionType_RULE_ACTION_TYPE_RESTRICTION_V2:
		if err := requireScope(); err != nil {
			return nil, err
		}
		unit := p.GetDurationUnit()
		if _, ok := crowdgatev1.DurationUnit_name[int32(unit)]; !ok || unit == crowdgatev1.DurationUnit_DURATION_UNIT_UNSPECIFIED {
			return nil, bad(join(pp, "duration_unit"), "is required for RESTRICTION_V2: MINUTES, HOURS, DAYS or PERMANENT")
		}
		tp.DurationUnit = enumName(unit.String(), "DURATION_UNIT_")
		switch {
		case unit == crowdgatev1.DurationUnit_DURATION_UNIT_PERMANENT && p.Duration != nil:
			return nil, bad(join(pp, "duration"), "must not be set for a PERMANENT ban")
		case unit == crowdgatev1.DurationUnit_DURATION_UNIT_PERMANENT:
		case p.Duration == nil:
			return nil, bad(join(pp, "duration"), "is required for a %s ban", tp.DurationUnit)
		case *p.Duration < 1:
			return nil, bad(join(pp, "duration"), "must be at least 1, got %d", *p.Duration)
		default:
			tp.Duration = toloka.Ptr(int(*p.Duration))
		}
	case crowdgatev1.RuleActionType_RULE_ACTION_TYPE_SET_SKILL_FROM_OUTPUT_FIELD:
		if !set["skill_id"] {
			return nil, bad(join(pp, "skill_id"), "is required for SET_SKILL_FROM_OUTPUT_FIELD")
		}
		fields := OutputFields(collector)
		cname := enumName(collector.String(), "COLLECTOR_TYPE_")
		if len(fields) == 0 {
			return nil, bad(join(ap, "type"), "SET_SKILL_FROM_OUTPUT_FIELD needs a collector with a rate (GOLDEN_SET, MAJORITY_VOTE, ACCEPTANCE_RATE, TRAINING or CAPTCHA), not %s", cname)
		}
		if !set["from_field"] {
			return nil, bad(join(pp, "from_field"), "is required for SET_SKILL_FROM_OUTPUT_FIELD: one of %s", strings.Join(fields, ", "))
		}
		if !oneOf(p.GetFromField(), fields) {
			return nil, bad(join(pp, "from_field"), "%q is not a field of %s collectors: one of %s", p.GetFromField(), cname, strings.Join(fields, ", "))
		}
		tp.SkillID, tp.FromField = p.GetSkillId(), p.GetFromField()
	case crowdgatev1.RuleActionType_RULE_ACTION_TYPE_SET_SKILL:
		if !set["skill_id"] {
			return nil, bad(join(pp, "skill_id"), "is required for SET_SKILL")
		}
		if p.SkillValue == nil {
			return nil, bad(join(pp, "skill_value"), "is required for SET_SKILL")
		}
		if v := *p.SkillValue; v < 0 || v > 100 {
			return nil, bad(join(pp, "skill_value"), "must be between 0 and 100, got %d", v)
		}
		tp.SkillID, tp.SkillValue = p.GetSkillId(), toloka.Ptr(int(*p.SkillValue))
	case crowdgatev1.RuleActionType_RULE_ACTION_TYPE_CHANGE_OVERLAP:
		if collector != crowdgatev1.CollectorType_COLLECTOR_TYPE_ASSIGNMENTS_ASSESSMENT && collector != crowdgatev1.CollectorType_COLLECTOR_TYPE_USERS_ASSESSMENT {
			return nil, bad(join(ap, "type"), "CHANGE_OVERLAP is for ASSIGNMENTS_ASSESSMENT and USERS_ASSESSMENT collectors, not %s", enumName(collector.String(), "COLLECTOR_TYPE_"))
		}
		if p.Delta == nil {
			return nil, bad(join(pp, "delta"), "is required for CHANGE_OVERLAP")
		}
		tp.Delta = toloka.Ptr(int(*p.Delta))
		if p.OpenPool != nil {
			tp.OpenPool = toloka.Ptr(*p.OpenPool)
		}
	case crowdgatev1.RuleActionType_RULE_ACTION_TYPE_REJECT_ALL_ASSIGNMENTS:
		if strings.TrimSpace(p.GetPublicComment()) == "" {
			return nil, bad(join(pp, "public_comment"), "is required for REJECT_ALL_ASSIGNMENTS: Tolokers see why")
		}
		tp.PublicComment = p.GetPublicComment()
	case crowdgatev1.RuleActionType_RULE_ACTION_TYPE_APPROVE_ALL_ASSIGNMENTS:
		return out, nil
	}
	out.Parameters = tp
	return out, nil
}

// Task spec (seed 002).

var fieldTypes = []string{"url", "boolean", "integer", "string", "float", "json", "file", "coordinates"}

// minimalTaskSpec is sent when a project has none: Toloka requires one, but
// an EXTERNAL project's work happens on the partner platform.
func minimalTaskSpec() *toloka.TaskSpec {
	return &toloka.TaskSpec{
		InputSpec:  map[string]toloka.FieldSpec{"assignment_id": {Type: "string", Required: toloka.Ptr(false)}},
		OutputSpec: map[string]toloka.FieldSpec{"result": {Type: "json", Required: toloka.Ptr(false)}},
	}
}

func taskSpec(p string, ts *crowdgatev1.TaskSpec) (*toloka.TaskSpec, error) {
	if ts == nil {
		return minimalTaskSpec(), nil
	}
	out := &toloka.TaskSpec{}
	var err error
	if out.InputSpec, err = fieldSpecs(join(p, "input_spec"), ts.GetInputSpec(), false); err != nil {
		return nil, err
	}
	if out.OutputSpec, err = fieldSpecs(join(p, "output_spec"), ts.GetOutputSpec(), true); err != nil {
		return nil, err
	}
	if vs := ts.GetViewSpec(); vs != nil {
		if out.ViewSpec, err = viewSpec(join(p, "view_spec"), vs); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func fieldSpecs(p string, specs map[string]*crowdgatev1.FieldSpec, output bool) (map[string]toloka.FieldSpec, error) {
	if len(specs) == 0 {
		return nil, bad(p, "must name at least one field")
	}
	out := make(map[string]toloka.FieldSpec, len(specs))
	for _, name := range slices.Sorted(maps.Keys(specs)) {
		f := specs[name]
		fp := p + "[" + strconv.Quote(name) + "]"
		if strings.TrimSpace(name) == "" {
			return nil, bad(p, "field names must not be empty")
		}
		if f == nil {
			return nil, bad(fp, "must not be empty")
		}
		t := strings.ToLower(f.GetType())
		switch {
		case t == "":
			return nil, bad(join(fp, "type"), "is required")
		case !oneOf(t, fieldTypes):
			return nil, bad(join(fp, "type"), "must be one of %s, got %q", strings.Join(fieldTypes, ", "), f.GetType())
		case t == "file" && !output:
			return nil, bad(join(fp, "type"), "file fields are output fields only")
		}
		fs := toloka.FieldSpec{Type: t}
		if f.Required != nil {
			fs.Required = toloka.Ptr(f.GetRequired())
		}
		if f.GetHidden() {
			if output {
				return nil, bad(join(fp, "hidden"), "output fields cannot be hidden")
			}
			fs.Hidden = toloka.Ptr(true)
		}
		var err error
		if fs.MinValue, err = number(join(fp, "min_value"), f.MinValue); err != nil {
			return nil, err
		}
		if fs.MaxValue, err = number(join(fp, "max_value"), f.MaxValue); err != nil {
			return nil, err
		}
		if f.MinValue != nil && f.MaxValue != nil && f.GetMinValue() > f.GetMaxValue() {
			return nil, bad(join(fp, "max_value"), "must not be below min_value")
		}
		if len(f.GetAllowedValues()) > 0 {
			vals := make([]json.RawMessage, 0, len(f.GetAllowedValues()))
			for i, v := range f.GetAllowedValues() {
				b, err := valueJSON(v)
				if err != nil || v.GetKind() == nil {
					return nil, bad(index(join(fp, "allowed_values"), i), "must be a string, number or boolean")
				}
				vals = append(vals, b)
			}
			fs.AllowedValues, _ = json.Marshal(vals)
		}
		for _, l := range []struct {
			name string
			v    *int32
		}{{"min_length", f.MinLength}, {"max_length", f.MaxLength}} {
			if l.v != nil && *l.v < 0 {
				return nil, bad(join(fp, l.name), "must not be negative")
			}
		}
		if f.MinLength != nil && f.MaxLength != nil && f.GetMinLength() > f.GetMaxLength() {
			return nil, bad(join(fp, "max_length"), "must not be below min_length")
		}
		if f.MinLength != nil {
			fs.MinLength = toloka.Ptr(int(f.GetMinLength()))
		}
		if f.MaxLength != nil {
			fs.MaxLength = toloka.Ptr(int(f.GetMaxLength()))
		}
		if f.CurrentLocation != nil {
			if !output || t != "coordinates" {
				return nil, bad(join(fp, "current_location"), "applies to coordinates output fields only")
			}
			fs.CurrentLocation = toloka.Ptr(f.GetCurrentLocation())
		}
		out[name] = fs
	}
	return out, nil
}

func number(field string, v *float64) (json.Number, error) {
	if v == nil {
		return "", nil
	}
	if math.IsNaN(*v) || math.IsInf(*v, 0) {
		return "", bad(field, "must be a finite number")
	}
	return json.Number(strconv.FormatFloat(*v, 'g', -1, 64)), nil
}

func viewSpec(p string, vs *crowdgatev1.ViewSpec) (*toloka.ViewSpec, error) {
	out := &toloka.ViewSpec{Markup: vs.GetMarkup(), Script: vs.GetScript(), Styles: vs.GetStyles(), Type: vs.GetType()}
	if s := vs.GetSettings(); s != nil {
		out.Settings = &toloka.ViewSettings{
			ShowSkip: s.ShowSkip, ShowTimer: s.ShowTimer, ShowTitle: s.ShowTitle, ShowSubmit: s.ShowSubmit,
			ShowFullscreen: s.ShowFullscreen, ShowInstructions: s.ShowInstructions, ShowFinish: s.ShowFinish,
			ShowMessage: s.ShowMessage, ShowReward: s.ShowReward,
		}
	}
	if a := vs.GetAssets(); a != nil && (len(a.GetScriptUrls()) > 0 || len(a.GetStyleUrls()) > 0) {
		out.Assets = &toloka.ViewAssets{ScriptURLs: a.GetScriptUrls(), StyleURLs: a.GetStyleUrls()}
	}
	if c := vs.GetConfig(); c != nil {
		b, err := protojson.Marshal(c)
		if err != nil {
			return nil, bad(join(p, "config"), "%v", err)
		}
		out.Extra = toloka.Extra{"config": compact(b)}
	}
	if lc := vs.GetLocalizationConfig(); lc != nil {
		b, err := protojson.Marshal(lc)
		if err != nil {
			return nil, bad(join(p, "localization_config"), "%v", err)
		}
		out.LocalizationConfig = compact(b)
	}
	return out, nil
}

func compact(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

func localizationConfig(p string, lc *crowdgatev1.LocalizationConfig) (*toloka.LocalizationConfig, error) {
	if lc == nil {
		return nil, nil
	}
	out := &toloka.LocalizationConfig{DefaultLanguage: strings.ToUpper(strings.TrimSpace(lc.GetDefaultLanguage()))}
	if out.DefaultLanguage != "" && !languageCode.MatchString(out.DefaultLanguage) {
		return nil, bad(join(p, "default_language"), "must be a language code such as EN, got %q", lc.GetDefaultLanguage())
	}
	for i, al := range lc.GetAdditionalLanguages() {
		ap := index(join(p, "additional_languages"), i)
		lang := strings.ToUpper(strings.TrimSpace(al.GetLanguage()))
		if !languageCode.MatchString(lang) {
			return nil, bad(join(ap, "language"), "must be a language code such as RU, got %q", al.GetLanguage())
		}
		tl := toloka.AdditionalLanguage{Language: lang}
		for _, t := range []struct {
			name string
			in   *crowdgatev1.LocalizedText
			out  **toloka.LocalizedValue
		}{{"public_name", al.GetPublicName(), &tl.PublicName}, {"public_description", al.GetPublicDescription(), &tl.PublicDescription},
			{"public_instructions", al.GetPublicInstructions(), &tl.PublicInstructions}} {
			if t.in == nil {
				continue
			}
			src := t.in.GetSource()
			if src == "" {
				src = "REQUESTER"
			}
			*t.out = &toloka.LocalizedValue{Value: t.in.GetValue(), Source: src}
		}
		out.AdditionalLanguages = append(out.AdditionalLanguages, tl)
	}
	return out, nil
}
