package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrRecordsFailed reports a run in which some records failed; the summary
// returned with it is complete.
var ErrRecordsFailed = errors.New("records failed")

// DefaultAdminTimeout bounds topic lookups, creation and offset listings.
const DefaultAdminTimeout = 30 * time.Second

// Dialer creates a client for the cluster under test with extra options.
// The caller closes it.
type Dialer func(options ...kgo.Opt) (*kgo.Client, error)

// Runner runs workloads against one cluster. Its fields are read-only once a
// run starts; one Runner may run workloads one after another.
type Runner struct {
	Dial Dialer
	// Clock paces and times the runs; nil means SystemClock.
	Clock Clock
	// Progress receives a line a second while a workload runs; nil for none.
	Progress io.Writer
	// Notes receives remarks on the set-up (an existing topic, a prefill,
	// unreadable metrics); nil discards them.
	Notes io.Writer
	// MetricsURL is the broker's Prometheus page; "" skips broker figures.
	MetricsURL string
	// HTTPClient reads MetricsURL; nil means http.DefaultClient.
	HTTPClient *http.Client
	// AdminTimeout bounds each topic or offset lookup; 0 means
	// DefaultAdminTimeout.
	AdminTimeout time.Duration
}

func (r *Runner) clock() Clock {
	if r.Clock == nil {
		return SystemClock{}
	}
	return r.Clock
}

func (r *Runner) note(format string, args ...any) {
	if r.Notes != nil {
		fmt.Fprintf(r.Notes, format+"\n", args...)
	}
}

// withAdmin runs call with an admin client and a context bounded by the
// admin timeout.
func (r *Runner) withAdmin(ctx context.Context, call func(context.Context, *kadm.Client) error) error {
	client, err := r.Dial()
	if err != nil {
		return err
	}
	defer client.Close()
	timeout := r.AdminTimeout
	if timeout <= 0 {
		timeout = DefaultAdminTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// A dial to a silent broker outlives the context unless the client
	// is closed.
	stopClosing := context.AfterFunc(ctx, client.Close)
	defer stopClosing()
	return call(ctx, kadm.NewClient(client))
}

// prepareTopic creates the topic if it is missing and returns its
// partition count, noting when an existing topic has another count.
func (r *Runner) prepareTopic(ctx context.Context, options Options) (int32, error) {
	var partitions int32
	err := r.withAdmin(ctx, func(ctx context.Context, admin *kadm.Client) error {
		var err error
		partitions, err = ensureTopic(ctx, admin, options.Topic, options.Partitions)
		return err
	})
	if err == nil && partitions != options.Partitions {
		r.note("topic %s exists with %d partitions; using them, not %d", options.Topic, partitions, options.Partitions)
	}
	return partitions, err
}

// measure runs the timed part of a workload and adds the CPU this process
// and the broker spent on it to summary.
func (r *Runner) measure(ctx context.Context, summary *Summary, timed func()) {
	brokerBefore, brokerErr := r.scrape(ctx)
	cpuBefore, cpuErr := ProcessCPUSeconds()
	timed()
	cpuAfter, cpuAfterErr := ProcessCPUSeconds()
	if cpuErr == nil && cpuAfterErr == nil {
		summary.ClientCPUSeconds = cpuAfter - cpuBefore
	}
	if brokerErr == nil {
		var brokerAfter ProcessSample
		if brokerAfter, brokerErr = r.scrape(context.WithoutCancel(ctx)); brokerErr == nil {
			usage := Usage(brokerBefore, brokerAfter)
			summary.Broker = &usage
		}
	}
	if brokerErr != nil {
		summary.BrokerMetricsError = brokerErr.Error()
		if r.MetricsURL != "" {
			r.note("broker figures unavailable: %v", brokerErr)
		}
	}
}

func (r *Runner) scrape(ctx context.Context) (ProcessSample, error) {
	if r.MetricsURL == "" {
		return ProcessSample{}, errors.New("no metrics url")
	}
	client := r.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	return ScrapeProcess(ctx, client, r.MetricsURL)
}

// newSummary fills the description of a run.
func newSummary(workload Workload, options Options, partitions int32) Summary {
	summary := Summary{
		Workload:    workload,
		Topic:       options.Topic,
		Partitions:  partitions,
		RecordBytes: options.RecordBytes,
	}
	if workload != WorkloadProduce {
		summary.FetchPartitionBytes = options.FetchPartitionBytes
	}
	if workload != WorkloadConsume {
		summary.Producers = options.Producers
		summary.Acks = options.Producer.Acks
		summary.Compression = options.Producer.Compression
		summary.RateTargetPerSecond = options.RatePerSecond
	}
	return summary
}

// Produce sends records as fast as allowed, or at the fixed rate, and
// measures each one's time to acknowledgement.
func (r *Runner) Produce(ctx context.Context, options Options) (Summary, error) {
	if err := options.Validate(WorkloadProduce); err != nil {
		return Summary{}, err
	}
	clientOptions, err := options.Producer.ClientOptions(options.Topic, options.DrainTimeout)
	if err != nil {
		return Summary{}, err
	}
	partitions, err := r.prepareTopic(ctx, options)
	if err != nil {
		return Summary{}, err
	}
	clients, err := dialProducers(ctx, r.Dial, clientOptions, options.Producers)
	if err != nil {
		return Summary{}, err
	}
	defer closeAll(clients)

	summary := newSummary(WorkloadProduce, options, partitions)
	var result produceResult
	r.measure(ctx, &summary, func() {
		run := newProduceRun(options, r.clock(), r.clock().Now(), false)
		stop := startProgress(r.Progress, WorkloadProduce, &run.acked)
		result = run.run(ctx, clients)
		stop()
	})
	summary.Latency = &result.latency
	err = summary.finish(result.outcomes())
	return summary, err
}
