package pool

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	crowdgatev1 "github.com/crowdgate/crowdgate/gen/crowdgate/v1"
)

// TestAStoredIntervalToZeroKeepsItsBounds: before 8bb4e13
// PricingInterval.to was a plain proto3 int32, so a pool stored (or sent
// by a client built from the old proto) with the interval [0, 0] (skill
// exactly 0) has no "to" on the wire. Decoded now it has no presence and
// is converted as [0, 100]: the next UpdatePool of any field re-prices
// every skill level at Toloka (or refuses the pool as overlapping).
func TestAStoredIntervalToZeroKeepsItsBounds(t *testing.T) {
	// {from: 0, to: 0, reward_per_assignment: "0.05"} as the old code wrote it.
	var b []byte
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, "0.05")
	iv := &crowdgatev1.PricingInterval{}
	if err := proto.Unmarshal(b, iv); err != nil {
		t.Fatal(err)
	}
	out, err := dynamicPricing("pool.dynamic_pricing_config", &crowdgatev1.DynamicPricingConfig{Type: "SKILL", SkillId: "1", Intervals: []*crowdgatev1.PricingInterval{iv}})
	if err != nil {
		t.Fatal(err)
	}
	if got := *out.Intervals[0].To; got != 0 {
		t.Errorf("a stored [0, 0] interval is sent to Toloka as [0, %d]", got)
	}
}
