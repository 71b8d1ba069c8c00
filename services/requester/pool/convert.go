package pool

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/money"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
	"github.com/crowdgate/crowdgate/services/platform/toloka"
	"github.com/crowdgate/crowdgate/services/requester/project"
)

// Documented ranges of seed 003.
const (
	MinAssignmentMaxDurationSeconds       = 5
	MinAutoAcceptPeriodDay                = 1
	MaxAutoAcceptPeriodDay                = 21
	MaxAutoCloseAfterCompleteDelaySeconds = 259200
	MinPriority                           = -100
	MaxPriority                           = 100
	MaxDynamicOverlap                     = 30000
	MaxForceLastAssignmentDelaySeconds    = 86400
)

// MinReward is the smallest reward per task suite Toloka accepts (U.S.
// dollars).
var MinReward = money.MustParse("0.01")

func bad(field, format string, args ...any) error {
	return serviceerror.NewInvalidArgument(field, format, args...)
}

func join(prefix, name string) string { return prefix + "." + name }

func index(prefix string, i int) string { return prefix + "[" + strconv.Itoa(i) + "]" }

func between(field string, v, lo, hi int64) error {
	if v < lo || v > hi {
		return bad(field, "must be between %d and %d, got %d", lo, hi, v)
	}
	return nil
}

func atLeast(field string, v, lo int64) error {
	if v < lo {
		return bad(field, "must be at least %d, got %d", lo, v)
	}
	return nil
}

// reward parses a price: a decimal in U.S. dollars, at least MinReward.
func reward(field, s string) (*money.Decimal, error) {
	if s == "" {
		return nil, bad(field, "is required: a decimal in U.S. dollars, at least %s", MinReward)
	}
	d, err := money.Parse(s)
	if err != nil {
		return nil, bad(field, "must be a decimal amount in U.S. dollars such as \"0.05\": %v", err)
	}
	if d.Cmp(MinReward) < 0 {
		return nil, bad(field, "must be at least %s, got %s", MinReward, s)
	}
	return &d, nil
}

// tolokaPool validates p, a pool of project prj, and returns the pool to
// send Toloka. Errors name fields under "pool.". now decides whether
// will_expire is in the future.
func tolokaPool(p *crowdgatev1.Pool, prj *crowdgatev1.Project, now time.Time, stored *crowdgatev1.Pool) (*toloka.Pool, error) {
	const f = "pool"
	if strings.TrimSpace(p.GetPrivateName()) == "" {
		return nil, bad(join(f, "private_name"), "is required")
	}
	tp := &toloka.Pool{
		ProjectID:              prj.GetTolokaProjectId(),
		PrivateName:            p.GetPrivateName(),
		PrivateComment:         p.GetPrivateComment(),
		PublicDescription:      p.GetPublicDescription(),
		MayContainAdultContent: toloka.Ptr(p.GetMayContainAdultContent()),
	}
	if p.GetWillExpire() == nil {
		return nil, bad(join(f, "will_expire"), "is required")
	}
	if err := p.GetWillExpire().CheckValid(); err != nil {
		return nil, bad(join(f, "will_expire"), "is not a valid time: %v", err)
	}
	if exp := p.GetWillExpire().AsTime(); !exp.After(now) {
		return nil, bad(join(f, "will_expire"), "must be in the future, got %s", exp.UTC().Format(time.RFC3339))
	}
	tp.WillExpire = toloka.Ptr(toloka.NewTime(p.GetWillExpire().AsTime()))
	var err error
	if tp.RewardPerAssignment, err = reward(join(f, "reward_per_assignment"), p.GetRewardPerAssignment()); err != nil {
		return nil, err
	}
	if p.GetAssignmentMaxDurationSeconds() == 0 {
		return nil, bad(join(f, "assignment_max_duration_seconds"), "is required: seconds per task suite, at least %d", MinAssignmentMaxDurationSeconds)
	}
	if err := between(join(f, "assignment_max_duration_seconds"), p.GetAssignmentMaxDurationSeconds(), MinAssignmentMaxDurationSeconds, math.MaxInt32); err != nil {
		return nil, err
	}
	tp.AssignmentMaxDurationSeconds = toloka.Ptr(int(p.GetAssignmentMaxDurationSeconds()))
	if p.AutoAcceptSolutions != nil {
		tp.AutoAcceptSolutions = toloka.Ptr(p.GetAutoAcceptSolutions())
	}
	if p.AutoAcceptPeriodDay != nil {
		if err := between(join(f, "auto_accept_period_day"), int64(p.GetAutoAcceptPeriodDay()), MinAutoAcceptPeriodDay, MaxAutoAcceptPeriodDay); err != nil {
			return nil, err
		}
		tp.AutoAcceptPeriodDay = toloka.Ptr(int(p.GetAutoAcceptPeriodDay()))
	}
	if p.AutoCloseAfterCompleteDelaySeconds != nil {
		if err := between(join(f, "auto_close_after_complete_delay_seconds"), p.GetAutoCloseAfterCompleteDelaySeconds(), 0, MaxAutoCloseAfterCompleteDelaySeconds); err != nil {
			return nil, err
		}
		tp.AutoCloseAfterCompleteDelaySeconds = toloka.Ptr(int(p.GetAutoCloseAfterCompleteDelaySeconds()))
	}
	if p.Priority != nil {
		if err := between(join(f, "priority"), int64(p.GetPriority()), MinPriority, MaxPriority); err != nil {
			return nil, err
		}
		tp.Priority = toloka.Ptr(int(p.GetPriority()))
	}
	if tp.Defaults, err = defaults(join(f, "defaults"), p.GetDefaults()); err != nil {
		return nil, err
	}
	if ic := p.GetAssignmentsIssuingConfig(); ic != nil {
		if ic.GetIssueTaskSuitesInCreationOrder() && !stored.GetAssignmentsIssuingConfig().GetIssueTaskSuitesInCreationOrder() {
			// Seed 003: "available when the project has
			// assignments_issuing_type AUTOMATED"; every project here is
			// EXTERNAL.
			return nil, bad(join(f, "assignments_issuing_config.issue_task_suites_in_creation_order"),
				"is available only to projects that issue assignments AUTOMATED; a Crowdgate project's are EXTERNAL (the platform issues the work)")
		}
		tp.AssignmentsIssuingConfig = &toloka.AssignmentsIssuingConfig{IssueTaskSuitesInCreationOrder: toloka.Ptr(ic.GetIssueTaskSuitesInCreationOrder())}
	}
	// A filter stored before the filter keys' rules stays as Toloka took it.
	checkKeys := stored == nil || !proto.Equal(p.GetFilter(), stored.GetFilter())
	if tp.Filter, err = project.PoolFilter(prj, join(f, "filter"), p.GetFilter(), checkKeys); err != nil {
		return nil, err
	}
	if qc := p.GetQualityControl(); qc != nil {
		if tp.QualityControl, err = qualityControl(join(f, "quality_control"), qc); err != nil {
			return nil, err
		}
	}
	if dp := p.GetDynamicPricingConfig(); dp != nil {
		if tp.DynamicPricingConfig, err = dynamicPricing(join(f, "dynamic_pricing_config"), dp); err != nil {
			return nil, err
		}
	}
	if do := p.GetDynamicOverlapConfig(); do != nil {
		if tp.DynamicOverlapConfig, err = dynamicOverlap(join(f, "dynamic_overlap_config"), do, p.GetDefaults()); err != nil {
			return nil, err
		}
	}
	if mc := p.GetMixerConfig(); mc != nil {
		if tp.MixerConfig, err = mixer(join(f, "mixer_config"), mc); err != nil {
			return nil, err
		}
	}
	if sq := p.GetSpeedQualityBalance(); sq != nil {
		raw, err := speedQualityBalance(join(f, "speed_quality_balance"), sq)
		if err != nil {
			return nil, err
		}
		tp.Extra = toloka.Extra{"speed_quality_balance": raw}
	}
	return tp, nil
}

// speedQualityBalance validates a pool's speed_quality_balance (Toloka:
// TOP_PERCENTAGE_BY_QUALITY with percent 10 to 100 in steps of 10, or
// BEST_CONCURRENT_USERS_BY_QUALITY with a count of at least 1) and returns
// its JSON.
func speedQualityBalance(field string, sq *crowdgatev1.SpeedQualityBalance) (json.RawMessage, error) {
	switch sq.GetType() {
	case crowdgatev1.SpeedQualityBalanceType_SPEED_QUALITY_BALANCE_TYPE_TOP_PERCENTAGE_BY_QUALITY:
		if sq.GetCount() != 0 {
			return nil, bad(join(field, "count"), "is for BEST_CONCURRENT_USERS_BY_QUALITY only")
		}
		if v := sq.GetPercent(); v < 10 || v > 100 || v%10 != 0 {
			return nil, bad(join(field, "percent"), "must be 10 to 100 in steps of 10, got %d", v)
		}
		return json.Marshal(map[string]any{"type": "TOP_PERCENTAGE_BY_QUALITY", "percent": sq.GetPercent()})
	case crowdgatev1.SpeedQualityBalanceType_SPEED_QUALITY_BALANCE_TYPE_BEST_CONCURRENT_USERS_BY_QUALITY:
		if sq.GetPercent() != 0 {
			return nil, bad(join(field, "percent"), "is for TOP_PERCENTAGE_BY_QUALITY only")
		}
		if sq.GetCount() < 1 {
			return nil, bad(join(field, "count"), "must be at least 1, got %d", sq.GetCount())
		}
		return json.Marshal(map[string]any{"type": "BEST_CONCURRENT_USERS_BY_QUALITY", "count": sq.GetCount()})
	}
	return nil, bad(join(field, "type"), "is required: TOP_PERCENTAGE_BY_QUALITY or BEST_CONCURRENT_USERS_BY_QUALITY")
}

func defaults(field string, d *crowdgatev1.PoolDefaults) (*toloka.PoolDefaults, error) {
	if d == nil {
		return nil, bad(field, "is required (default_overlap_for_new_task_suites)")
	}
	if d.GetDefaultOverlapForNewTaskSuites() == 0 {
		return nil, bad(join(field, "default_overlap_for_new_task_suites"), "is required: at least 1")
	}
	if err := atLeast(join(field, "default_overlap_for_new_task_suites"), int64(d.GetDefaultOverlapForNewTaskSuites()), 1); err != nil {
		return nil, err
	}
	out := &toloka.PoolDefaults{DefaultOverlapForNewTaskSuites: toloka.Ptr(int(d.GetDefaultOverlapForNewTaskSuites()))}
	if d.DefaultOverlapForNewTasks != nil {
		if err := atLeast(join(field, "default_overlap_for_new_tasks"), int64(d.GetDefaultOverlapForNewTasks()), 1); err != nil {
			return nil, err
		}
		out.DefaultOverlapForNewTasks = toloka.Ptr(int(d.GetDefaultOverlapForNewTasks()))
	}
	return out, nil
}

var captchaFrequencies = map[crowdgatev1.CaptchaFrequency]string{
	crowdgatev1.CaptchaFrequency_CAPTCHA_FREQUENCY_LOW:    "LOW",
	crowdgatev1.CaptchaFrequency_CAPTCHA_FREQUENCY_MEDIUM: "MEDIUM",
	crowdgatev1.CaptchaFrequency_CAPTCHA_FREQUENCY_HIGH:   "HIGH",
}

func qualityControl(field string, qc *crowdgatev1.PoolQualityControl) (*toloka.QualityControl, error) {
	out := &toloka.QualityControl{}
	if tr := qc.GetTrainingRequirement(); tr != nil {
		tf := join(field, "training_requirement")
		if strings.TrimSpace(tr.GetTrainingPoolId()) == "" {
			return nil, bad(join(tf, "training_pool_id"), "is required in a training requirement")
		}
		if err := between(join(tf, "training_passing_skill_value"), int64(tr.GetTrainingPassingSkillValue()), 0, 100); err != nil {
			return nil, err
		}
		out.TrainingRequirement = &toloka.TrainingRequirement{
			TrainingPoolID:            tr.GetTrainingPoolId(),
			TrainingPassingSkillValue: toloka.Ptr(int(tr.GetTrainingPassingSkillValue())),
		}
	}
	if cf := qc.GetCaptchaFrequency(); cf != crowdgatev1.CaptchaFrequency_CAPTCHA_FREQUENCY_UNSPECIFIED {
		name, ok := captchaFrequencies[cf]
		if !ok {
			return nil, bad(join(field, "captcha_frequency"), "unknown captcha frequency %d", cf)
		}
		out.CaptchaFrequency = name
	}
	if len(qc.GetConfigs()) > 0 {
		configs, err := project.QualityControlConfigs(join(field, "configs"), qc.GetConfigs())
		if err != nil {
			return nil, err
		}
		out.Configs = configs
	}
	if cp := qc.GetCheckpointsConfig(); cp != nil {
		cf := join(field, "checkpoints_config")
		out.CheckpointsConfig = &toloka.CheckpointsConfig{}
		for _, s := range []struct {
			name string
			in   *crowdgatev1.CheckpointSettings
			out  **toloka.CheckpointSettings
		}{{"real_settings", cp.GetRealSettings(), &out.CheckpointsConfig.RealSettings},
			{"golden_settings", cp.GetGoldenSettings(), &out.CheckpointsConfig.GoldenSettings},
			{"training_settings", cp.GetTrainingSettings(), &out.CheckpointsConfig.TrainingSettings}} {
			if s.in == nil {
				continue
			}
			sf := join(cf, s.name)
			if err := atLeast(join(sf, "target_overlap"), int64(s.in.GetTargetOverlap()), 1); err != nil {
				return nil, err
			}
			if s.in.GetTaskDistributionFunction() == nil {
				return nil, bad(join(sf, "task_distribution_function"), "is required in selective review settings")
			}
			df, err := distribution(join(sf, "task_distribution_function"), s.in.GetTaskDistributionFunction())
			if err != nil {
				return nil, err
			}
			*s.out = &toloka.CheckpointSettings{TargetOverlap: toloka.Ptr(int(s.in.GetTargetOverlap())), TaskDistributionFunction: df}
		}
	}
	if out.TrainingRequirement == nil && out.CaptchaFrequency == "" && out.Configs == nil && out.CheckpointsConfig == nil {
		return nil, nil
	}
	return out, nil
}

// distribution validates a task distribution function: scope POOL or
// PROJECT, UNIFORM distribution, window_days at least 1 and ascending,
// non-overlapping intervals with a frequency of at least 1.
func distribution(field string, d *crowdgatev1.TaskDistributionFunction) (*toloka.TaskDistributionFunction, error) {
	switch d.GetScope() {
	case "POOL", "PROJECT":
	case "":
		return nil, bad(join(field, "scope"), "is required: POOL or PROJECT")
	default:
		return nil, bad(join(field, "scope"), "must be POOL or PROJECT, got %q", d.GetScope())
	}
	dist := d.GetDistribution()
	if dist == "" {
		dist = "UNIFORM"
	}
	if dist != "UNIFORM" {
		return nil, bad(join(field, "distribution"), "must be UNIFORM, got %q", d.GetDistribution())
	}
	if err := atLeast(join(field, "window_days"), int64(d.GetWindowDays()), 1); err != nil {
		return nil, err
	}
	if len(d.GetIntervals()) == 0 {
		return nil, bad(join(field, "intervals"), "must have at least one interval")
	}
	out := &toloka.TaskDistributionFunction{Scope: d.GetScope(), Distribution: dist, WindowDays: toloka.Ptr(int(d.GetWindowDays()))}
	for i, iv := range d.GetIntervals() {
		ip := index(join(field, "intervals"), i)
		lo := int64(1)
		if i == 0 {
			lo = 0
		}
		if err := atLeast(join(ip, "from"), int64(iv.GetFrom()), lo); err != nil {
			return nil, err
		}
		if iv.GetTo() < iv.GetFrom() {
			return nil, bad(join(ip, "to"), "must not be below from (%d), got %d", iv.GetFrom(), iv.GetTo())
		}
		if i > 0 {
			if prev := d.GetIntervals()[i-1]; iv.GetFrom() <= prev.GetTo() {
				return nil, bad(join(ip, "from"), "intervals must ascend without overlapping: %d is not after the previous interval's to (%d)", iv.GetFrom(), prev.GetTo())
			}
		}
		if err := atLeast(join(ip, "frequency"), int64(iv.GetFrequency()), 1); err != nil {
			return nil, err
		}
		out.Intervals = append(out.Intervals, toloka.DistributionInterval{
			From: toloka.Ptr(int(iv.GetFrom())), To: toloka.Ptr(int(iv.GetTo())), Frequency: toloka.Ptr(int(iv.GetFrequency())),
		})
	}
	return out, nil
}

func dynamicPricing(field string, d *crowdgatev1.DynamicPricingConfig) (*toloka.DynamicPricingConfig, error) {
	typ := d.GetType()
	if typ == "" {
		typ = "SKILL"
	}
	if typ != "SKILL" {
		return nil, bad(join(field, "type"), "must be SKILL, got %q", d.GetType())
	}
	if strings.TrimSpace(d.GetSkillId()) == "" {
		return nil, bad(join(field, "skill_id"), "is required for dynamic pricing")
	}
	if len(d.GetIntervals()) == 0 {
		return nil, bad(join(field, "intervals"), "must have at least one interval")
	}
	out := &toloka.DynamicPricingConfig{Type: typ, SkillID: d.GetSkillId()}
	type span struct{ from, to, i int32 }
	var spans []span
	for i, iv := range d.GetIntervals() {
		ip := index(join(field, "intervals"), i)
		if err := between(join(ip, "from"), int64(iv.GetFrom()), 0, 100); err != nil {
			return nil, err
		}
		if err := between(join(ip, "to"), int64(iv.GetTo()), 0, 100); err != nil {
			return nil, err
		}
		if iv.GetTo() < iv.GetFrom() {
			return nil, bad(join(ip, "to"), "must not be below from (%d), got %d", iv.GetFrom(), iv.GetTo())
		}
		for _, s := range spans {
			if iv.GetFrom() <= s.to && s.from <= iv.GetTo() {
				return nil, bad(join(ip, "from"), "skill interval [%d, %d] overlaps intervals[%d] [%d, %d]", iv.GetFrom(), iv.GetTo(), s.i, s.from, s.to)
			}
		}
		spans = append(spans, span{iv.GetFrom(), iv.GetTo(), int32(i)})
		r, err := reward(join(ip, "reward_per_assignment"), iv.GetRewardPerAssignment())
		if err != nil {
			return nil, err
		}
		out.Intervals = append(out.Intervals, toloka.PricingInterval{From: toloka.Ptr(int(iv.GetFrom())), To: toloka.Ptr(int(iv.GetTo())), RewardPerAssignment: r})
	}
	return out, nil
}

// defaultPricingTo gives a request's pricing intervals without "to" seed
// 003's default, 100, before the pool is validated and stored. Only the
// request's: a stored interval without it is one written when "to" had no
// presence (a plain int32), so its 0 was a 0, as sent to Toloka then.
func defaultPricingTo(p *crowdgatev1.Pool) {
	for _, iv := range p.GetDynamicPricingConfig().GetIntervals() {
		if iv.To == nil {
			iv.To = proto.Int32(100)
		}
	}
}

func dynamicOverlap(field string, d *crowdgatev1.DynamicOverlapConfig, defaults *crowdgatev1.PoolDefaults) (*toloka.DynamicOverlapConfig, error) {
	typ := d.GetType()
	if typ == "" {
		typ = "BASIC"
	}
	if typ != "BASIC" {
		return nil, bad(join(field, "type"), "must be BASIC, got %q", d.GetType())
	}
	if err := between(join(field, "max_overlap"), int64(d.GetMaxOverlap()), 1, MaxDynamicOverlap); err != nil {
		return nil, err
	}
	// Seed 003: "Must be higher than the values in defaults", both of them.
	if o := defaults.GetDefaultOverlapForNewTaskSuites(); d.GetMaxOverlap() <= o {
		return nil, bad(join(field, "max_overlap"), "must be higher than defaults.default_overlap_for_new_task_suites (%d), got %d", o, d.GetMaxOverlap())
	}
	if defaults.DefaultOverlapForNewTasks != nil && d.GetMaxOverlap() <= defaults.GetDefaultOverlapForNewTasks() {
		return nil, bad(join(field, "max_overlap"), "must be higher than defaults.default_overlap_for_new_tasks (%d), got %d", defaults.GetDefaultOverlapForNewTasks(), d.GetMaxOverlap())
	}
	mc := d.GetMinConfidence()
	if math.IsNaN(mc) || mc < 0 || mc > 1 {
		return nil, bad(join(field, "min_confidence"), "must be between 0 and 1, got %v", mc)
	}
	conf, err := money.Parse(strconv.FormatFloat(mc, 'f', -1, 64))
	if err != nil {
		return nil, bad(join(field, "min_confidence"), "must have at most %d decimal places", money.MaxFractionDigits)
	}
	if strings.TrimSpace(d.GetAnswerWeightSkillId()) == "" {
		return nil, bad(join(field, "answer_weight_skill_id"), "is required for dynamic overlap")
	}
	if len(d.GetFields()) == 0 {
		return nil, bad(join(field, "fields"), "must name at least one output field")
	}
	out := &toloka.DynamicOverlapConfig{Type: typ, MaxOverlap: toloka.Ptr(int(d.GetMaxOverlap())), MinConfidence: &conf, AnswerWeightSkillID: d.GetAnswerWeightSkillId()}
	for i, fl := range d.GetFields() {
		if strings.TrimSpace(fl.GetName()) == "" {
			return nil, bad(join(index(join(field, "fields"), i), "name"), "is required")
		}
		out.Fields = append(out.Fields, toloka.DynamicOverlapField{Name: fl.GetName()})
	}
	return out, nil
}

func mixer(field string, m *crowdgatev1.MixerConfig) (*toloka.MixerConfig, error) {
	counts := []struct {
		name string
		v    int32
	}{{"real_tasks_count", m.GetRealTasksCount()}, {"golden_tasks_count", m.GetGoldenTasksCount()}, {"training_tasks_count", m.GetTrainingTasksCount()}}
	for _, c := range counts {
		if err := atLeast(join(field, c.name), int64(c.v), 0); err != nil {
			return nil, err
		}
	}
	if m.GetRealTasksCount()+m.GetGoldenTasksCount()+m.GetTrainingTasksCount() == 0 {
		return nil, bad(join(field, "real_tasks_count"), "a task suite needs at least one task: set real_tasks_count, golden_tasks_count or training_tasks_count")
	}
	out := &toloka.MixerConfig{
		RealTasksCount:     toloka.Ptr(int(m.GetRealTasksCount())),
		GoldenTasksCount:   toloka.Ptr(int(m.GetGoldenTasksCount())),
		TrainingTasksCount: toloka.Ptr(int(m.GetTrainingTasksCount())),
	}
	for _, c := range []struct {
		name string
		in   *int32
		out  **int
	}{{"min_real_tasks_count", m.MinRealTasksCount, &out.MinRealTasksCount},
		{"min_golden_tasks_count", m.MinGoldenTasksCount, &out.MinGoldenTasksCount},
		{"min_training_tasks_count", m.MinTrainingTasksCount, &out.MinTrainingTasksCount}} {
		if c.in == nil {
			continue
		}
		if err := atLeast(join(field, c.name), int64(*c.in), 0); err != nil {
			return nil, err
		}
		*c.out = toloka.Ptr(int(*c.in))
	}
	if m.ForceLastAssignmentDelaySeconds != nil {
		if err := between(join(field, "force_last_assignment_delay_seconds"), int64(m.GetForceLastAssignmentDelaySeconds()), 0, MaxForceLastAssignmentDelaySeconds); err != nil {
			return nil, err
		}
		out.ForceLastAssignmentDelaySeconds = toloka.Ptr(int(m.GetForceLastAssignmentDelaySeconds()))
	}
	if m.ForceLastAssignment != nil {
		out.ForceLastAssignment = toloka.Ptr(m.GetForceLastAssignment())
	}
	if m.MixTasksInCreationOrder != nil {
		out.MixTasksInCreationOrder = toloka.Ptr(m.GetMixTasksInCreationOrder())
	}
	if m.ShuffleTasksInTaskSuite != nil {
		out.ShuffleTasksInTaskSuite = toloka.Ptr(m.GetShuffleTasksInTaskSuite())
	}
	// Seed 003: a varied frequency replaces the fixed count, which must be
	// 0 with no minimum.
	for _, d := range []struct {
		name, count, minCount string
		fn                    *crowdgatev1.TaskDistributionFunction
		countV                int32
		minV                  *int32
		out                   **toloka.TaskDistributionFunction
	}{{"golden_task_distribution_function", "golden_tasks_count", "min_golden_tasks_count", m.GetGoldenTaskDistributionFunction(), m.GetGoldenTasksCount(), m.MinGoldenTasksCount, &out.GoldenTaskDistributionFunction},
		{"training_task_distribution_function", "training_tasks_count", "min_training_tasks_count", m.GetTrainingTaskDistributionFunction(), m.GetTrainingTasksCount(), m.MinTrainingTasksCount, &out.TrainingTaskDistributionFunction}} {
		if d.fn == nil {
			continue
		}
		if d.countV != 0 {
			return nil, bad(join(field, d.count), "must be 0 when %s is set", d.name)
		}
		if d.minV != nil {
			return nil, bad(join(field, d.minCount), "must be unset when %s is set", d.name)
		}
		fn, err := distribution(join(field, d.name), d.fn)
		if err != nil {
			return nil, err
		}
		*d.out = fn
	}
	return out, nil
}

// Toloka's pool state, in the API's terms.

var poolStatuses = map[toloka.PoolStatus]crowdgatev1.PoolStatus{
	toloka.PoolOpen:     crowdgatev1.PoolStatus_POOL_STATUS_OPEN,
	toloka.PoolClosed:   crowdgatev1.PoolStatus_POOL_STATUS_CLOSED,
	toloka.PoolArchived: crowdgatev1.PoolStatus_POOL_STATUS_ARCHIVED,
	toloka.PoolLocked:   crowdgatev1.PoolStatus_POOL_STATUS_LOCKED,
}

var closeReasons = map[string]crowdgatev1.CloseReason{
	toloka.CloseManual:                   crowdgatev1.CloseReason_CLOSE_REASON_MANUAL,
	toloka.CloseExpired:                  crowdgatev1.CloseReason_CLOSE_REASON_EXPIRED,
	toloka.CloseCompleted:                crowdgatev1.CloseReason_CLOSE_REASON_COMPLETED,
	toloka.CloseNotEnoughBalance:         crowdgatev1.CloseReason_CLOSE_REASON_NOT_ENOUGH_BALANCE,
	toloka.CloseAssignmentsLimitExceeded: crowdgatev1.CloseReason_CLOSE_REASON_ASSIGNMENTS_LIMIT_EXCEEDED,
	toloka.CloseBlocked:                  crowdgatev1.CloseReason_CLOSE_REASON_BLOCKED,
	toloka.CloseForUpdate:                crowdgatev1.CloseReason_CLOSE_REASON_FOR_UPDATE,
}

func timestamp(t *toloka.Time) *timestamppb.Timestamp {
	if t == nil || t.IsZero() {
		return nil
	}
	return timestamppb.New(t.Time)
}

// applyState copies Toloka's view of a pool's state onto p and reports
// whether anything changed.
func applyState(p *crowdgatev1.Pool, tp *toloka.Pool) bool {
	before := proto.Clone(p)
	p.Status = poolStatuses[tp.Status]
	p.LastCloseReason = closeReasons[tp.LastCloseReason]
	p.LastStarted = timestamp(tp.LastStarted)
	p.LastStopped = timestamp(tp.LastStopped)
	return !proto.Equal(before, p)
}
