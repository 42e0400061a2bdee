package kafka

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/quota"
)

func component(typ string, name *string) kadm.ClientQuotaEntityComponent {
	return kadm.ClientQuotaEntityComponent{Type: typ, Name: name}
}

func setQuota(key string, value float64) kadm.AlterClientQuotaOp {
	return kadm.AlterClientQuotaOp{Key: key, Value: value}
}

// describedEntities renders described quotas as "entity key=value ..."
// lines, sorted, for comparison.
func describedEntities(qs kadm.DescribedClientQuotas) []string {
	var out []string
	for _, q := range qs {
		line := q.Entity.String()
		for _, v := range q.Values {
			line += " " + v.String()
		}
		out = append(out, line)
	}
	slices.Sort(out)
	return out
}

// TestClientQuotasAlterDescribe: kadm sets quotas on named and default
// entities, validate_only changes nothing, unsupported keys are refused,
// and DescribeClientQuotas's filters (exact, default, any, strict) select
// as in Kafka.
func TestClientQuotasAlterDescribe(t *testing.T) {
	ts := startServer(t)
	adm := kadm.NewClient(ts.client(t))
	ctx := testContext(t)
	alice, app := kmsg.StringPtr("alice"), kmsg.StringPtr("app")
	altered, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: kadm.ClientQuotaEntity{component(quota.TypeUser, alice)}, Ops: []kadm.AlterClientQuotaOp{setQuota(quota.ProducerByteRate, 1024), setQuota(quota.ConsumerByteRate, 2048)}},
		{Entity: kadm.ClientQuotaEntity{component(quota.TypeUser, alice), component(quota.TypeClientID, app)}, Ops: []kadm.AlterClientQuotaOp{setQuota(quota.RequestPercentage, 25)}},
		{Entity: kadm.ClientQuotaEntity{component(quota.TypeUser, nil), component(quota.TypeClientID, nil)}, Ops: []kadm.AlterClientQuotaOp{setQuota(quota.ProducerByteRate, 512)}},
		{Entity: kadm.ClientQuotaEntity{component(quota.TypeClientID, nil)}, Ops: []kadm.AlterClientQuotaOp{setQuota(quota.ConsumerByteRate, 4096)}},
		{Entity: kadm.ClientQuotaEntity{component(quota.TypeClientID, app)}, Ops: []kadm.AlterClientQuotaOp{setQuota(quota.ControllerMutationRate, 5)}},
		{Entity: kadm.ClientQuotaEntity{component("ip", kmsg.StringPtr("127.0.0.1"))}, Ops: []kadm.AlterClientQuotaOp{setQuota(quota.ProducerByteRate, 5)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range altered {
		refused := i >= 4 // controller_mutation_rate, and the ip entity
		if refused != errors.Is(a.Err, kerr.InvalidRequest) || (!refused && a.Err != nil) {
			t.Errorf("entry %d %v: %v %s", i, a.Entity, a.Err, a.ErrMessage)
		}
	}
	if _, err := adm.ValidateAlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: kadm.ClientQuotaEntity{component(quota.TypeUser, kmsg.StringPtr("bob"))}, Ops: []kadm.AlterClientQuotaOp{setQuota(quota.ProducerByteRate, 1)}},
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		strict     bool
		components []kadm.DescribeClientQuotaComponent
		want       []string
	}{
		{name: "all", want: []string{
			"{client-id=<default>} consumer_byte_rate=4096.000000",
			"{user=<default>, client-id=<default>} producer_byte_rate=512.000000",
			"{user=alice, client-id=app} request_percentage=25.000000",
			"{user=alice} producer_byte_rate=1024.000000 consumer_byte_rate=2048.000000",
		}},
		{name: "exact user", components: []kadm.DescribeClientQuotaComponent{{Type: quota.TypeUser, MatchName: alice}}, want: []string{
			"{user=alice, client-id=app} request_percentage=25.000000",
			"{user=alice} producer_byte_rate=1024.000000 consumer_byte_rate=2048.000000",
		}},
		{name: "exact user, strict", strict: true, components: []kadm.DescribeClientQuotaComponent{{Type: quota.TypeUser, MatchName: alice}}, want: []string{
			"{user=alice} producer_byte_rate=1024.000000 consumer_byte_rate=2048.000000",
		}},
		{name: "default client id", components: []kadm.DescribeClientQuotaComponent{{Type: quota.TypeClientID, MatchType: kmsg.QuotasMatchTypeDefault}}, want: []string{
			"{client-id=<default>} consumer_byte_rate=4096.000000",
			"{user=<default>, client-id=<default>} producer_byte_rate=512.000000",
		}},
		{name: "any user and any client id", components: []kadm.DescribeClientQuotaComponent{{Type: quota.TypeUser, MatchType: kmsg.QuotasMatchTypeAny}, {Type: quota.TypeClientID, MatchType: kmsg.QuotasMatchTypeAny}}, want: []string{
			"{user=<default>, client-id=<default>} producer_byte_rate=512.000000",
			"{user=alice, client-id=app} request_percentage=25.000000",
		}},
		{name: "any client id, strict", strict: true, components: []kadm.DescribeClientQuotaComponent{{Type: quota.TypeClientID, MatchType: kmsg.QuotasMatchTypeAny}}, want: []string{
			"{client-id=<default>} consumer_byte_rate=4096.000000",
		}},
		{name: "no match", components: []kadm.DescribeClientQuotaComponent{{Type: quota.TypeUser, MatchName: kmsg.StringPtr("bob")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := adm.DescribeClientQuotas(ctx, tc.strict, tc.components)
			if err != nil {
				t.Fatal(err)
			}
			if lines := describedEntities(got); !slices.Equal(lines, tc.want) {
				t.Fatalf("described\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
	_, err = adm.DescribeClientQuotas(ctx, false, []kadm.DescribeClientQuotaComponent{{Type: "ip", MatchType: kmsg.QuotasMatchTypeAny}})
	if !errors.Is(err, kerr.InvalidRequest) {
		t.Fatalf("describing an unknown entity type: %v, want INVALID_REQUEST", err)
	}
	// Removing the last key removes the entity.
	if _, err := adm.AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{
		{Entity: kadm.ClientQuotaEntity{component(quota.TypeClientID, nil)}, Ops: []kadm.AlterClientQuotaOp{{Key: quota.ConsumerByteRate, Remove: true}}},
	}); err != nil {
		t.Fatal(err)
	}
	got, err := adm.DescribeClientQuotas(ctx, true, []kadm.DescribeClientQuotaComponent{{Type: quota.TypeClientID, MatchType: kmsg.QuotasMatchTypeAny}})
	if err != nil || len(got) != 0 {
		t.Fatalf("after removing: %v, %v", describedEntities(got), err)
	}
}

// TestClientQuotasNeedConfigRights: under the authorizer, describing needs
// DescribeConfigs and altering AlterConfigs on the cluster.
func TestClientQuotasNeedConfigRights(t *testing.T) {
	ts := authServer(t, false)
	ctx := testContext(t)
	entry := []kadm.AlterClientQuotaEntry{{Entity: kadm.ClientQuotaEntity{component(quota.TypeUser, nil)},
		Ops: []kadm.AlterClientQuotaOp{setQuota(quota.ProducerByteRate, 1000)}}}
	alice := kadm.NewClient(ts.as(t, "alice"))
	if _, err := alice.DescribeClientQuotas(ctx, false, nil); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("describe without rights: %v", err)
	}
	altered, err := alice.AlterClientQuotas(ctx, entry)
	if err != nil || len(altered) != 1 || !errors.Is(altered[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("alter without rights: %v %v", altered, err)
	}
	grant(t, ts, kadm.NewACLs().Allow("User:alice").Clusters().Operations(kadm.OpDescribeConfigs, kadm.OpAlterConfigs))
	altered, err = alice.AlterClientQuotas(ctx, entry)
	if err != nil || altered[0].Err != nil {
		t.Fatalf("alter with AlterConfigs: %v %v", altered, err)
	}
	if got, err := alice.DescribeClientQuotas(ctx, false, nil); err != nil || len(got) != 1 {
		t.Fatalf("describe with DescribeConfigs: %v %v", got, err)
	}
}

// throttleCounter counts the throttled replies a client sees.
type throttleCounter struct{ throttled atomic.Int64 }

func (c *throttleCounter) OnBrokerThrottle(_ kgo.BrokerMetadata, d time.Duration, _ bool) {
	if d > 0 {
		c.throttled.Add(1)
	}
}

// quotaWindow makes the tests' rates settle in a second instead of ten:
// 11 samples of 100 ms.
var quotaWindow = quota.Window{Samples: 11, SampleWindow: 100 * time.Millisecond}

const (
	quotaBytesPerSecond = 200 << 10
	quotaRunTime        = 5 * time.Second
)

// TestProducerHeldToByteRate: a producer whose client id, or whose user,
// has producer_byte_rate 200 KiB/s, producing as fast as it can for a few
// seconds, is told to back off and stays near its quota; an unlimited
// producer would go many times faster on loopback.
func TestProducerHeldToByteRate(t *testing.T) {
	actAsClientPrincipals()
	testPrincipals.Store("quota-test-alice", auth.User("alice"))
	for _, tc := range []struct {
		name, clientID string
		entity         kadm.ClientQuotaEntity
	}{
		{"client id", "quota-producer", kadm.ClientQuotaEntity{component(quota.TypeClientID, kmsg.StringPtr("quota-producer"))}},
		{"default user", "quota-test-alice", kadm.ClientQuotaEntity{component(quota.TypeUser, nil)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := startServer(t, func(c *Config) { c.QuotaWindow = quotaWindow })
			createTopics(t, ts, "limited")
			alterQuota(t, ts, tc.entity, quota.ProducerByteRate, quotaBytesPerSecond)
			var hook throttleCounter
			cl := ts.client(t, kgo.ClientID(tc.clientID), kgo.WithHooks(&hook), kgo.DefaultProduceTopic("limited"),
				kgo.ProducerBatchMaxBytes(16<<10), kgo.MaxBufferedRecords(16), kgo.ProducerBatchCompression(kgo.NoCompression()))
			value := make([]byte, 4<<10)
			var acked atomic.Int64
			ctx, cancel := context.WithTimeout(context.Background(), quotaRunTime+10*time.Second)
			defer cancel()
			start := time.Now()
			for i := 0; i < 100_000 && time.Since(start) < quotaRunTime; i++ {
				cl.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
					if err == nil {
						acked.Add(int64(len(value)))
					}
				})
			}
			if err := cl.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			elapsed := time.Since(start)
			rate := float64(acked.Load()) / elapsed.Seconds()
			t.Logf("%d bytes in %v: %.0f B/s against %d; %d throttled replies", acked.Load(), elapsed, rate, quotaBytesPerSecond, hook.throttled.Load())
			if rate > 1.5*quotaBytesPerSecond {
				t.Errorf("produced at %.0f B/s, over 1.5 × the quota %d", rate, quotaBytesPerSecond)
			}
			if hook.throttled.Load() == 0 {
				t.Error("no reply carried a throttle time")
			}
		})
	}
}

// TestConsumerHeldToByteRate: a consumer with consumer_byte_rate 200 KiB/s
// reading a topic filled beforehand is told to back off and reads near its
// quota.
func TestConsumerHeldToByteRate(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.QuotaWindow = quotaWindow })
	createTopics(t, ts, "filled")
	// Small batches, not compressed: a fetch returns whole batches, and
	// quotas count the bytes on the wire.
	producer := ts.client(t, kgo.DefaultProduceTopic("filled"), kgo.ProducerBatchMaxBytes(16<<10),
		kgo.ProducerBatchCompression(kgo.NoCompression()))
	value := make([]byte, 4<<10)
	ctx := testContext(t)
	for i := 0; i < 1024; i++ { // 4 MiB: more than 5 s at the quota
		producer.Produce(ctx, &kgo.Record{Value: value}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Error(err)
			}
		})
	}
	if err := producer.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	alterQuota(t, ts, kadm.ClientQuotaEntity{component(quota.TypeClientID, kmsg.StringPtr("quota-consumer"))}, quota.ConsumerByteRate, quotaBytesPerSecond)
	var hook throttleCounter
	consumer := ts.client(t, kgo.ClientID("quota-consumer"), kgo.WithHooks(&hook), kgo.ConsumeTopics("filled"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(32<<10), kgo.FetchMaxPartitionBytes(32<<10))
	var consumed int64
	start := time.Now()
	for polls := 0; polls < 10_000 && time.Since(start) < quotaRunTime && consumed < 1024*int64(len(value)); polls++ {
		pollCtx, cancel := context.WithTimeout(ctx, time.Second)
		fetches := consumer.PollFetches(pollCtx)
		cancel()
		fetches.EachRecord(func(r *kgo.Record) { consumed += int64(len(r.Value)) })
	}
	elapsed := time.Since(start)
	rate := float64(consumed) / elapsed.Seconds()
	t.Logf("%d bytes in %v: %.0f B/s against %d; %d throttled replies", consumed, elapsed, rate, quotaBytesPerSecond, hook.throttled.Load())
	if consumed == 0 {
		t.Fatal("consumed nothing")
	}
	if rate > 1.5*quotaBytesPerSecond {
		t.Errorf("consumed at %.0f B/s, over 1.5 × the quota %d", rate, quotaBytesPerSecond)
	}
	if hook.throttled.Load() == 0 {
		t.Error("no reply carried a throttle time")
	}
}

func alterQuota(t *testing.T, ts *testServer, entity kadm.ClientQuotaEntity, key string, value float64) {
	t.Helper()
	altered, err := kadm.NewClient(ts.client(t)).AlterClientQuotas(testContext(t),
		[]kadm.AlterClientQuotaEntry{{Entity: entity, Ops: []kadm.AlterClientQuotaOp{setQuota(key, value)}}})
	if err == nil && altered[0].Err != nil {
		err = altered[0].Err
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestRequestPercentageMutesConnection: a client over request_percentage
// gets throttle_time_ms in a reply that is not a produce or a fetch too,
// and the connection's next request is not answered before that time has
// passed.
func TestRequestPercentageMutesConnection(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.QuotaWindow = quotaWindow })
	// The raw connection's client id is "test"; any handling time at all
	// is over a millionth of a percent.
	alterQuota(t, ts, kadm.ClientQuotaEntity{component(quota.TypeClientID, kmsg.StringPtr("test"))}, quota.RequestPercentage, 1e-6)
	rc := ts.dial(t)
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(9)
	req.Topics = []kmsg.MetadataRequestTopic{}
	first := rc.roundTrip(req).(*kmsg.MetadataResponse)
	answered := time.Now()
	if first.ThrottleMillis <= 0 {
		t.Fatalf("throttle_time_ms %d, want > 0", first.ThrottleMillis)
	}
	rc.roundTrip(req)
	// A lower bound only: the mute guarantees it, however slow the machine.
	if waited, throttle := time.Since(answered), time.Duration(first.ThrottleMillis)*time.Millisecond; waited < throttle/2 {
		t.Fatalf("the next request was answered %v after a reply throttling %v", waited, throttle)
	}
}
