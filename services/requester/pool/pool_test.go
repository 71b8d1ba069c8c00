package pool

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

func stored() *crowdgatev1.Pool {
	return &crowdgatev1.Pool{
		PoolId: "pool_1", TenantId: "t", ProjectId: "prj_1", TolokaPoolId: "7",
		Status: crowdgatev1.PoolStatus_POOL_STATUS_CLOSED, CreateTime: timestamppb.New(timestamppb.Now().AsTime()),
		PrivateName: "old", RewardPerAssignment: "0.05", Priority: proto.Int32(3),
		MixerConfig: &crowdgatev1.MixerConfig{RealTasksCount: 5, GoldenTasksCount: 1},
		Filter:      &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Or{Or: &crowdgatev1.FilterList{}}},
	}
}

func TestMergeFollowsTheUpdateMask(t *testing.T) {
	src := &crowdgatev1.Pool{
		PoolId: "pool_1", PrivateName: "new", RewardPerAssignment: "0.07",
		Status:      crowdgatev1.PoolStatus_POOL_STATUS_OPEN,
		MixerConfig: &crowdgatev1.MixerConfig{RealTasksCount: 9},
		Filter: &crowdgatev1.Filter{Node: &crowdgatev1.Filter_Condition{Condition: &crowdgatev1.FilterCondition{
			Category: "profile", Key: "country", Operator: "EQ", Value: structpb.NewStringValue("RU")}}},
	}
	for _, tc := range []struct {
		name   string
		paths  []string
		change func(p *crowdgatev1.Pool)
	}{
		{"one field", []string{"reward_per_assignment"}, func(p *crowdgatev1.Pool) { p.RewardPerAssignment = "0.07" }},
		{"a field src lacks is cleared", []string{"priority"}, func(p *crowdgatev1.Pool) { p.Priority = nil }},
		{"a nested field", []string{"mixer_config.real_tasks_count"}, func(p *crowdgatev1.Pool) { p.MixerConfig.RealTasksCount = 9 }},
		{"a whole message", []string{"mixer_config"}, func(p *crowdgatev1.Pool) { p.MixerConfig = &crowdgatev1.MixerConfig{RealTasksCount: 9} }},
		{"a oneof member switches the oneof", []string{"filter.condition"}, func(p *crowdgatev1.Pool) { p.Filter = src.Filter }},
		{"output-only and fixed fields are ignored", []string{"status", "pool_id", "project_id", "create_time"}, func(p *crowdgatev1.Pool) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := stored()
			tc.change(want)
			s := stored()
			s.CreateTime = want.CreateTime
			got, err := merge(s, src, tc.paths)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
				t.Errorf("merged (-want +got):\n%s", diff)
			}
		})
	}

	// No mask replaces every settable field and keeps the rest.
	s := stored()
	got, err := merge(s, src, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := proto.Clone(src).(*crowdgatev1.Pool)
	want.ProjectId, want.TenantId, want.TolokaPoolId, want.Status, want.CreateTime = s.ProjectId, s.TenantId, s.TolokaPoolId, s.Status, s.CreateTime
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("merged without a mask (-want +got):\n%s", diff)
	}

	for _, bad := range [][]string{{"nope"}, {"reward_per_assignment.x"}, {"mixer_config.nope"}} {
		_, err := merge(stored(), src, bad)
		var ia *serviceerror.InvalidArgument
		if !errors.As(err, &ia) || ia.Field != "update_mask" {
			t.Errorf("merge with mask %v: %v, want INVALID_ARGUMENT on update_mask", bad, err)
		}
	}
}
