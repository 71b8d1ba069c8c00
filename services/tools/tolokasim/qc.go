package tolokasim

import (
	"encoding/json"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file applies a pool's quality control, filter, training requirement
// and speed_quality_balance the way the emulator models Toloka for the
// EXTERNAL flow. Toloka does not document how its collectors read an
// external submit; the README's "Quality control" section lists the
// choices made here.

// Profile is what Toloka knows of a Toloker, for pool filters: the keys of
// the profile and computed filter categories ("country", "languages",
// "client_type", "adult_allowed", "region_by_ip", ...) and their values (a
// string, a number, a boolean, or a list such as languages).
type Profile map[string]any

// submitStat is what one external submit gives the collectors.
type submitStat struct {
	at                      time.Time
	golden, training, real  int64
	quality                 float64
	hasQuality              bool
	skipped                 bool
	reward                  float64
	start, end              time.Time
	goldenRight, trainRight float64
}

// qcKey names a Toloker's history in a pool.
type qcKey struct {
	poolID uint64
	userID string
}

// qcRule is one rule of a pool's quality_control.configs, parsed.
type qcRule struct {
	collector  string
	history    int
	fastSecs   float64
	conditions []qcCondition
	action     qcAction
}

type qcCondition struct {
	Key      string          `json:"key"`
	Operator string          `json:"operator"`
	Value    json.RawMessage `json:"value"`
}

type qcAction struct {
	Type       string `json:"type"`
	Parameters struct {
		Scope          string          `json:"scope"`
		Duration       *int64          `json:"duration"`
		DurationUnit   string          `json:"duration_unit"`
		DurationDays   *int64          `json:"duration_days"`
		PrivateComment string          `json:"private_comment"`
		PublicComment  string          `json:"public_comment"`
		SkillID        json.RawMessage `json:"skill_id"`
		SkillValue     json.Number     `json:"skill_value"`
		FromField      string          `json:"from_field"`
	} `json:"parameters"`
}

// poolRules parses p's quality_control.configs (validated on create).
func poolRules(p *pool) []qcRule {
	raw, ok := p.raw["quality_control"]
	if !ok {
		return nil
	}
	var qc struct {
		Configs []struct {
			CollectorConfig struct {
				Type       string `json:"type"`
				Parameters struct {
					HistorySize                *int     `json:"history_size"`
					FastSubmitThresholdSeconds *float64 `json:"fast_submit_threshold_seconds"`
				} `json:"parameters"`
			} `json:"collector_config"`
			Rules []struct {
				Conditions []qcCondition `json:"conditions"`
				Action     qcAction      `json:"action"`
			} `json:"rules"`
		} `json:"configs"`
	}
	if json.Unmarshal(raw, &qc) != nil {
		return nil
	}
	var out []qcRule
	for _, c := range qc.Configs {
		for _, r := range c.Rules {
			rule := qcRule{collector: c.CollectorConfig.Type, conditions: r.Conditions, action: r.Action}
			if h := c.CollectorConfig.Parameters.HistorySize; h != nil {
				rule.history = *h
			}
			if f := c.CollectorConfig.Parameters.FastSubmitThresholdSeconds; f != nil {
				rule.fastSecs = *f
			}
			out = append(out, rule)
		}
	}
	return out
}

// collect computes a collector's values from a Toloker's submits in a pool
// (oldest first) and the reviews of their assignments there. ok is false
// for collectors the emulator does not compute.
func (s *Server) collectLocked(rule qcRule, hist []submitStat, p *pool, userID string, now time.Time) (map[string]any, bool) {
	recent := hist
	if rule.history > 0 && len(recent) > rule.history {
		recent = recent[len(recent)-rule.history:]
	}
	rate := func(part, whole float64) float64 {
		if whole == 0 {
			return 0
		}
		return 100 * part / whole
	}
	switch rule.collector {
	case "GOLDEN_SET":
		var golden, goldenRight, all, allRight float64
		for _, h := range recent {
			golden += float64(h.golden)
			goldenRight += h.goldenRight
			all += float64(h.golden + h.training)
			allRight += h.goldenRight + h.trainRight
		}
		return map[string]any{
			"golden_set_answers_count": golden, "golden_set_correct_answers_rate": rate(goldenRight, golden),
			"golden_set_incorrect_answers_rate": rate(golden-goldenRight, golden),
			"total_answers_count":               all, "correct_answers_rate": rate(allRight, all), "incorrect_answers_rate": rate(all-allRight, all),
		}, true
	case "MAJORITY_VOTE":
		var total, right float64
		for _, h := range recent {
			if h.hasQuality {
				total += float64(h.real)
				right += h.quality * float64(h.real)
			}
		}
		return map[string]any{"total_answers_count": total, "correct_answers_rate": rate(right, total), "incorrect_answers_rate": rate(total-right, total)}, true
	case "INCOME":
		var sum float64
		for _, h := range hist {
			if now.Sub(h.at) < 24*time.Hour {
				sum += h.reward
			}
		}
		return map[string]any{"income_sum_for_last_24_hours": sum}, true
	case "SKIPPED_IN_ROW_ASSIGNMENTS":
		n := 0
		for i := len(hist) - 1; i >= 0 && hist[i].skipped; i-- {
			n++
		}
		return map[string]any{"skipped_in_row_count": float64(n)}, true
	case "ANSWER_COUNT":
		n := 0
		for _, h := range hist {
			if !h.skipped {
				n++
			}
		}
		return map[string]any{"assignments_accepted_count": float64(n)}, true
	case "ASSIGNMENT_SUBMIT_TIME":
		var total, fast float64
		for _, h := range recent {
			if h.start.IsZero() || h.end.IsZero() {
				continue
			}
			total++
			if h.end.Sub(h.start).Seconds() < rule.fastSecs {
				fast++
			}
		}
		return map[string]any{"total_submitted_count": total, "fast_submitted_count": fast}, true
	case "ACCEPTANCE_RATE", "ASSIGNMENTS_ASSESSMENT":
		var accepted, rejected, pending float64
		for _, a := range s.state.assignments {
			if a.poolID != p.id || a.UserID != userID {
				continue
			}
			switch a.Status {
			case AssignmentAccepted:
				accepted++
			case AssignmentRejected:
				rejected++
			case AssignmentSubmitted:
				pending++
			}
		}
		if rule.collector == "ACCEPTANCE_RATE" {
			total := accepted + rejected
			return map[string]any{"total_assignments_count": total, "accepted_assignments_rate": rate(accepted, total), "rejected_assignments_rate": rate(rejected, total)}, true
		}
		return map[string]any{"pending_assignments_count": pending, "accepted_assignments_count": accepted, "rejected_assignments_count": rejected}, true
	}
	return nil, false
}

// holds reports whether every condition holds for values (conditions are
// ANDed, as toloka-kit and seed 004's own example read them).
func holds(conds []qcCondition, values map[string]any) bool {
	if len(conds) == 0 {
		return false
	}
	for _, c := range conds {
		v, ok := values[c.Key]
		if !ok || !compare(v, c.Operator, decodeValue(c.Value)) {
			return false
		}
	}
	return true
}

func decodeValue(raw json.RawMessage) any {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return nil
	}
	if s, ok := v.(string); ok {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
	}
	return v
}

// compare applies a comparison operator to a Toloker's value and a
// threshold: numbers numerically, anything else by equality; IN and
// NOT_IN look the threshold up in a list value (languages).
func compare(v any, op string, want any) bool {
	if list, ok := v.([]any); ok {
		in := slices.ContainsFunc(list, func(x any) bool { return equalValues(x, want) })
		switch op {
		case "IN", "EQ":
			return in
		case "NOT_IN", "NE":
			return !in
		}
		return false
	}
	a, aNum := toFloat(v)
	b, bNum := toFloat(want)
	if aNum && bNum {
		switch op {
		case "EQ", "IN":
			return a == b
		case "NE", "NOT_IN":
			return a != b
		case "GT":
			return a > b
		case "GTE":
			return a >= b
		case "LT":
			return a < b
		case "LTE":
			return a <= b
		}
		return false
	}
	switch op {
	case "EQ", "IN":
		return equalValues(v, want)
	case "NE", "NOT_IN":
		return !equalValues(v, want)
	}
	return false
}

func equalValues(a, b any) bool {
	if x, ok := toFloat(a); ok {
		y, ok := toFloat(b)
		return ok && x == y
	}
	as, aok := a.(string)
	bs, bok := b.(string)
	if aok && bok {
		return strings.EqualFold(as, bs)
	}
	return a == b
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// recordSubmitLocked records a submit in the Toloker's history of the pool.
func (s *Server) recordSubmitLocked(p *pool, e *LedgerEntry, now time.Time) {
	st := submitStat{at: now, golden: e.GoldenTasksCount, training: e.TrainingTasksCount, real: e.RealTasksCount, skipped: e.Skipped}
	st.reward, _ = strconv.ParseFloat(e.Reward.String(), 64)
	if e.Quality != "" {
		st.quality, _ = e.Quality.Float64()
		st.hasQuality = true
	}
	// Without a quality, every control and training answer counts right.
	q := 1.0
	if st.hasQuality {
		q = st.quality
	}
	st.goldenRight, st.trainRight = q*float64(st.golden), q*float64(st.training)
	if t, err := ParseTime(e.StartTime); err == nil && e.StartTime != "" {
		st.start = t
	}
	if t, err := ParseTime(e.EndTime); err == nil && e.EndTime != "" {
		st.end = t
	}
	key := qcKey{p.id, e.UserID}
	s.state.qcHistory[key] = append(s.state.qcHistory[key], st)
}

// reviewCollectors act on reviews (PATCH /assignments), the others on
// submits.
var reviewCollectors = map[string]bool{"ACCEPTANCE_RATE": true, "ASSIGNMENTS_ASSESSMENT": true}

// evaluateLocked applies p's submit-time rules to userID's statistics now.
func (s *Server) evaluateLocked(account string, p *pool, userID string, now time.Time) {
	s.evaluateRulesLocked(account, p, userID, now, false, "")
}

// evaluateReviewLocked applies p's review-time rules after a review of
// userID's assignment; event is ACCEPT, REJECT or ACCEPT_AFTER_REJECT.
func (s *Server) evaluateReviewLocked(account string, p *pool, userID, event string, now time.Time) {
	s.evaluateRulesLocked(account, p, userID, now, true, event)
}

func (s *Server) evaluateRulesLocked(account string, p *pool, userID string, now time.Time, review bool, event string) {
	hist := s.state.qcHistory[qcKey{p.id, userID}]
	for _, rule := range poolRules(p) {
		if reviewCollectors[rule.collector] != review {
			continue
		}
		values, ok := s.collectLocked(rule, hist, p, userID, now)
		if !ok {
			continue
		}
		if rule.collector == "ASSIGNMENTS_ASSESSMENT" {
			values["assessment_event"] = event
		}
		if !holds(rule.conditions, values) {
			continue
		}
		s.actLocked(account, p, userID, rule, values, now)
	}
}

// actLocked performs a rule's action for userID.
func (s *Server) actLocked(account string, p *pool, userID string, rule qcRule, values map[string]any, now time.Time) {
	a := rule.action
	switch a.Type {
	case "RESTRICTION", "RESTRICTION_V2":
		var until time.Time
		switch {
		case a.Type == "RESTRICTION" && a.Parameters.DurationDays != nil:
			until = now.Add(time.Duration(*a.Parameters.DurationDays) * 24 * time.Hour)
		case a.Type == "RESTRICTION_V2" && a.Parameters.DurationUnit != "PERMANENT" && a.Parameters.Duration != nil:
			unit := map[string]time.Duration{"MINUTES": time.Minute, "HOURS": time.Hour, "DAYS": 24 * time.Hour}[a.Parameters.DurationUnit]
			until = now.Add(time.Duration(*a.Parameters.Duration) * unit)
		}
		s.restrictLocked(account, a.Parameters.Scope, userID, p, until, a.Parameters.PrivateComment, now)
	case "SET_SKILL":
		s.setSkillLocked(account, skillIDOf(a.Parameters.SkillID), userID, a.Parameters.SkillValue, "quality control: SET_SKILL", now)
	case "SET_SKILL_FROM_OUTPUT_FIELD":
		field := a.Parameters.FromField
		if field == "wrong_answers_rate" {
			field = "incorrect_answers_rate"
		}
		v, ok := toFloat(values[field])
		if !ok {
			return
		}
		n := json.Number(strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64))
		s.setSkillLocked(account, skillIDOf(a.Parameters.SkillID), userID, n, "quality control: "+a.Parameters.FromField, now)
	case "REJECT_ALL_ASSIGNMENTS", "APPROVE_ALL_ASSIGNMENTS":
		for _, as := range s.state.assignments {
			if as.poolID != p.id || as.UserID != userID || as.Status != AssignmentSubmitted {
				continue
			}
			if a.Type == "REJECT_ALL_ASSIGNMENTS" {
				as.Status, as.Rejected, as.PublicComment = AssignmentRejected, now, a.Parameters.PublicComment
			} else {
				as.Status, as.Accepted = AssignmentAccepted, now
			}
			as.autoAcceptAt = time.Time{}
			as.render()
		}
	}
	// CHANGE_OVERLAP: the emulator models no tasks, so it changes nothing.
}

func skillIDOf(raw json.RawMessage) string {
	var v any
	_ = json.Unmarshal(raw, &v)
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return strings.Trim(string(raw), `"`)
}

// restrictLocked upserts a requester's restriction, as PUT
// /user-restrictions does.
func (s *Server) restrictLocked(account, scope, userID string, p *pool, until time.Time, comment string, now time.Time) {
	r := &restriction{account: account, scope: scope, userID: userID, willExpire: until, created: now,
		raw: map[string]json.RawMessage{"scope": rawJSON(scope), "user_id": rawJSON(userID)}}
	switch scope {
	case ScopeProject:
		r.projectID = p.projectID
	case ScopePool:
		r.poolID = p.id
	}
	if comment != "" {
		r.raw["private_comment"] = rawJSON(comment)
	}
	if !until.IsZero() {
		r.raw["will_expire"] = rawJSON(FormatTime(until))
	}
	for _, old := range s.state.restrictions {
		if old.account == r.account && old.scope == r.scope && old.userID == r.userID && old.projectID == r.projectID && old.poolID == r.poolID {
			r.id = old.id
			break
		}
	}
	if r.id == 0 {
		r.id = s.newID()
	}
	r.render()
	s.state.restrictions[r.id] = r
}

// setSkillLocked upserts a Toloker's skill value, as PUT /user-skills does.
func (s *Server) setSkillLocked(account, skillID, userID string, value json.Number, reason string, now time.Time) {
	key := skillKey{account, skillID, userID}
	us := s.state.skillIndex[key]
	if us == nil {
		us = &userSkill{id: s.newID(), key: key, created: now}
		s.state.skillIndex[key] = us
		s.state.skills[us.id] = us
	}
	us.value, us.reason, us.modified = value, reason, now
	us.json = mustJSON(userSkillJSON{ID: formatID(us.id), SkillID: skillID, UserID: userID, Value: value, Reason: reason,
		Created: FormatTime(us.created), Modified: FormatTime(us.modified)})
}

// filterMatchLocked evaluates p's filter for userID with profile.
func (s *Server) filterMatchLocked(account string, p *pool, userID string, profile Profile) bool {
	raw, ok := p.raw["filter"]
	if !ok {
		return true
	}
	var node any
	if json.Unmarshal(raw, &node) != nil {
		return true
	}
	return s.evalFilterLocked(account, userID, profile, node)
}

func (s *Server) evalFilterLocked(account, userID string, profile Profile, node any) bool {
	m, ok := node.(map[string]any)
	if !ok {
		return false
	}
	if and, ok := m["and"].([]any); ok {
		for _, n := range and {
			if !s.evalFilterLocked(account, userID, profile, n) {
				return false
			}
		}
		return true
	}
	if or, ok := m["or"].([]any); ok {
		for _, n := range or {
			if s.evalFilterLocked(account, userID, profile, n) {
				return true
			}
		}
		return false
	}
	category, _ := m["category"].(string)
	key, _ := m["key"].(string)
	op, _ := m["operator"].(string)
	want := m["value"]
	if category == "skill" {
		us := s.state.skillIndex[skillKey{account, key, userID}]
		if want == nil {
			// EQ with no value: the Toloker lacks the skill.
			return (us == nil) == (op == "EQ")
		}
		if us == nil {
			return false
		}
		v, _ := us.value.Float64()
		return compare(v, op, want)
	}
	v, ok := profile[key]
	if !ok {
		return op == "NE" || op == "NOT_IN"
	}
	return compare(v, op, want)
}

// trainingPassedLocked reports whether userID meets p's
// training_requirement: their result in the training (UserState.Trainings,
// a percentage) is at least training_passing_skill_value.
func trainingPassed(p *pool, st UserState) bool {
	raw, ok := p.raw["quality_control"]
	if !ok {
		return true
	}
	var qc struct {
		TrainingRequirement *struct {
			TrainingPoolID            json.RawMessage `json:"training_pool_id"`
			TrainingPassingSkillValue float64         `json:"training_passing_skill_value"`
		} `json:"training_requirement"`
	}
	if json.Unmarshal(raw, &qc) != nil || qc.TrainingRequirement == nil {
		return true
	}
	got, ok := st.Trainings[skillIDOf(qc.TrainingRequirement.TrainingPoolID)]
	return ok && got >= qc.TrainingRequirement.TrainingPassingSkillValue
}

// balanceMatchLocked computes speed_quality_balance_match for userID in p:
// Tolokers are ranked by the mean quality of their submits to the pool;
// TOP_PERCENTAGE_BY_QUALITY matches the top percent of those who
// submitted (at least one), BEST_CONCURRENT_USERS_BY_QUALITY the best
// count of those with an ACTIVE assignment in the pool (and the Toloker).
func (s *Server) balanceMatchLocked(p *pool, userID string) bool {
	b := p.balance
	mean := func(u string) float64 {
		var sum, n float64
		for _, h := range s.state.qcHistory[qcKey{p.id, u}] {
			if h.hasQuality {
				sum += h.quality
				n++
			}
		}
		if n == 0 {
			return 0
		}
		return sum / n
	}
	var users []string
	switch b.typ {
	case "TOP_PERCENTAGE_BY_QUALITY":
		for k := range s.state.qcHistory {
			if k.poolID == p.id {
				users = append(users, k.userID)
			}
		}
	case "BEST_CONCURRENT_USERS_BY_QUALITY":
		for k, a := range s.state.active {
			if k.poolID == p.id && a.Status == AssignmentActive {
				users = append(users, k.userID)
			}
		}
	}
	if !slices.Contains(users, userID) {
		users = append(users, userID)
	}
	sort.Slice(users, func(i, j int) bool {
		mi, mj := mean(users[i]), mean(users[j])
		if mi != mj {
			return mi > mj
		}
		return users[i] < users[j]
	})
	limit := int(b.count)
	if b.typ == "TOP_PERCENTAGE_BY_QUALITY" {
		limit = max(1, int(math.Ceil(float64(len(users))*float64(b.percent)/100)))
	}
	rank := slices.Index(users, userID)
	return rank < limit
}

// assignmentsOf returns the ids of userID's assignments in pool poolID
// with status, oldest first (tests).
func (s *Server) assignmentsOf(poolID, userID, status string) []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	id, _ := parseID(poolID)
	var out []*assignment
	for _, a := range s.state.assignments {
		if a.poolID == id && a.UserID == userID && a.Status == status {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b *assignment) int { return strings.Compare(a.ID, b.ID) })
	ids := make([]string, len(out))
	for i, a := range out {
		ids[i] = a.ID
	}
	return ids
}
