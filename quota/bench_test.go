package quota

import (
	"testing"
	"time"

	"github.com/cairnlog/cairn/env"
)

// BenchmarkRecord is what each reply costs: one Record per kind, with no
// quota configured and with a user quota and a client-id default.
func BenchmarkRecord(b *testing.B) {
	for _, bc := range []struct {
		name   string
		config *Config
	}{
		{"none", NewConfig(nil)},
		{"configured", NewConfig([]Quota{
			{Entity: Entity{User: DefaultPart}, Values: Values{ProducerByteRate: 1 << 20}},
			{Entity: Entity{ClientID: DefaultPart}, Values: Values{ConsumerByteRate: 1 << 20, RequestPercentage: 50}},
		})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			clock := env.NewManualClock(time.Unix(0, 0))
			m := NewManager(clock, DefaultWindow, func() *Config { return bc.config })
			for i := 0; i < b.N; i++ {
				m.Record(ProducerByteRate, "alice", "app", 1000)
				m.Record(ConsumerByteRate, "alice", "app", 1000)
				m.Record(RequestPercentage, "alice", "app", 0.001)
			}
		})
	}
}
