package fieldmask

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
	"github.com/crowdgate/crowdgate/services/kernel/serviceerror"
)

func TestCopy(t *testing.T) {
	stored := &crowdgatev1.Pool{PrivateName: "old", RewardPerAssignment: "0.05",
		Defaults: &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 3}}
	src := &crowdgatev1.Pool{PrivateName: "new", Defaults: &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 5}}
	for _, tc := range []struct {
		path    string
		want    *crowdgatev1.Pool
		wantErr bool
	}{
		{path: "private_name", want: &crowdgatev1.Pool{PrivateName: "new", RewardPerAssignment: "0.05",
			Defaults: &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 3}}},
		{path: "reward_per_assignment", want: &crowdgatev1.Pool{PrivateName: "old",
			Defaults: &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 3}}},
		{path: "defaults.default_overlap_for_new_task_suites", want: &crowdgatev1.Pool{PrivateName: "old", RewardPerAssignment: "0.05",
			Defaults: &crowdgatev1.PoolDefaults{DefaultOverlapForNewTaskSuites: 5}}},
		{path: "nope", wantErr: true},
		{path: "private_name.x", wantErr: true},
		{path: "defaults.nope", wantErr: true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			dst := proto.CloneOf(stored)
			err := Copy(dst.ProtoReflect(), src.ProtoReflect(), tc.path)
			var ia *serviceerror.InvalidArgument
			if tc.wantErr {
				if !errors.As(err, &ia) || ia.Field != "update_mask" {
					t.Fatalf("Copy(%q) = %v, want INVALID_ARGUMENT on update_mask", tc.path, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, dst, protocmp.Transform()); diff != "" {
				t.Errorf("Copy(%q) (-want +got):\n%s", tc.path, diff)
			}
		})
	}
}
