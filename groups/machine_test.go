package groups

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestMachineScenarios replays testdata/*.txt against a Machine: each
// scenario is a transcript of requests, clock advances and the replies,
// state changes and group states they produce.
func TestMachineScenarios(t *testing.T) {
	runScripts(t, "*.txt", func() func(string, map[string]string) string {
		cfg := DefaultConfig()
		cfg.InitialRebalanceDelayMs = 0
		cfg.OffsetsRetentionMs = 100000
		cfg.MembersPerGroupMax = 3
		r := &machineRunner{m: NewMachine(cfg, "x")}
		return r.run
	})
}

type machineRunner struct {
	m      *Machine
	nowMs  int64
	topics map[string]TopicInfo
}

func (r *machineRunner) run(command string, a map[string]string) string {
	var b strings.Builder
	switch command {
	case "config":
		r.configure(a)
	case "tick":
		r.nowMs += atoi(a["ms"])
		r.m.Tick(r.nowMs)
	case "join":
		r.m.Join(r.nowMs, Waiter(atoi(a["w"])), joinRequest(a))
	case "sync":
		req := SyncRequest{Group: a["g"], MemberID: a["m"], Generation: int32(atoi(a["gen"])), Assignments: map[string][]byte{}}
		if inst, ok := a["instance"]; ok {
			req.InstanceID = &inst
		}
		for _, pair := range list(a["assign"]) {
			id, data, _ := strings.Cut(pair, ":")
			req.Assignments[id] = []byte(data)
		}
		r.m.Sync(r.nowMs, Waiter(atoi(a["w"])), req)
	case "heartbeat":
		req := HeartbeatRequest{Group: a["g"], MemberID: a["m"], Generation: int32(atoi(a["gen"]))}
		if inst, ok := a["instance"]; ok {
			req.InstanceID = &inst
		}
		fmt.Fprintf(&b, "heartbeat: %s\n", errName(r.m.Heartbeat(r.nowMs, req)))
	case "leave":
		var leaving []LeaveMember
		for _, id := range list(a["m"]) {
			leaving = append(leaving, LeaveMember{MemberID: id})
		}
		if inst, ok := a["instance"]; ok {
			leaving = append(leaving, LeaveMember{InstanceID: &inst})
		}
		for i, err := range r.m.Leave(r.nowMs, a["g"], leaving) {
			fmt.Fprintf(&b, "leave %d: %s\n", i, errName(err))
		}
	case "commit":
		r.commit(&b, a)
	case "fetch":
		r.fetch(&b, a["g"])
	case "describe":
		r.describe(&b, a["g"])
	case "list":
		for _, l := range r.m.List() {
			fmt.Fprintf(&b, "%s type=%q state=%s members=%d\n", l.Group, l.ProtocolType, l.State, l.Members)
		}
	case "delete":
		r.deleteGroup(&b, a["g"])
	case "delete-offsets":
		r.deleteOffsets(&b, a)
	case "topics":
		r.topics = map[string]TopicInfo{}
		for _, pair := range list(a["sizes"]) {
			name, size, _ := strings.Cut(pair, ":")
			r.topics[name] = TopicInfo{Partitions: int32(atoi(size))}
		}
	case "cg":
		r.consumerHeartbeat(&b, a)
	case "cdescribe":
		r.consumerDescribe(&b, a["g"])
	case "unload":
		owned := map[string]bool{}
		for _, g := range list(a["g"]) {
			owned[g] = true
		}
		n := r.m.Unload(func(group string) bool { return owned[group] })
		fmt.Fprintf(&b, "unloaded: %d\n", n)
	case "deadline":
		fmt.Fprintf(&b, "next deadline: %d (in %d ms)\n", r.m.NextDeadlineMs(), r.m.NextDeadlineMs()-r.nowMs)
	default:
		return "unknown command " + command
	}
	r.render(&b, r.m.Ready())
	return b.String()
}

func (r *machineRunner) configure(a map[string]string) {
	if v, ok := a["initial-delay"]; ok {
		r.m.cfg.InitialRebalanceDelayMs = int32(atoi(v))
	}
	if v, ok := a["retention"]; ok {
		r.m.cfg.OffsetsRetentionMs = atoi(v)
	}
}

func joinRequest(a map[string]string) JoinRequest {
	req := JoinRequest{Group: a["g"], MemberID: a["m"], ClientID: a["client"], ClientHost: "/127.0.0.1",
		SessionTimeoutMs: 10000, RebalanceTimeoutMs: 30000, ProtocolType: "consumer",
	}
	_, req.RequireKnownMemberID = a["v4"]
	if v, ok := a["session"]; ok {
		req.SessionTimeoutMs = int32(atoi(v))
	}
	if v, ok := a["rebalance"]; ok {
		req.RebalanceTimeoutMs = int32(atoi(v))
	}
	if v, ok := a["type"]; ok {
		req.ProtocolType = v
	}
	if inst, ok := a["instance"]; ok {
		req.InstanceID = &inst
	}
	protocols := a["protocols"]
	if protocols == "" {
		protocols = "range:r"
	}
	if protocols == "none" {
		protocols = ""
	}
	for _, p := range list(protocols) {
		name, meta, _ := strings.Cut(p, ":")
		req.Protocols = append(req.Protocols, Protocol{Name: name, Metadata: []byte(meta)})
	}
	return req
}

func (r *machineRunner) commit(b *strings.Builder, a map[string]string) {
	req := CommitRequest{Group: a["g"], MemberID: a["m"], Generation: int32(atoi(a["gen"]))}
	if err := r.m.CheckCommit(r.nowMs, req); err != nil {
		fmt.Fprintf(b, "commit: %s\n", errName(err))
		return
	}
	offsets := map[TopicPartition]OffsetCommit{}
	for _, pair := range list(a["offsets"]) { // topic:partition:offset
		parts := strings.Split(pair, ":")
		offsets[TopicPartition{parts[0], int32(atoi(parts[1]))}] = OffsetCommit{Offset: atoi(parts[2]), LeaderEpoch: -1, CommitTimestampMs: r.nowMs}
	}
	r.m.ApplyCommit(r.nowMs, a["g"], offsets)
	fmt.Fprintf(b, "commit: ok\n")
}

func (r *machineRunner) fetch(b *strings.Builder, group string) {
	offsets := r.m.FetchOffsets(group, nil)
	tps := make([]TopicPartition, 0, len(offsets))
	for tp := range offsets {
		tps = append(tps, tp)
	}
	sortTopicPartitions(tps)
	for _, tp := range tps {
		fmt.Fprintf(b, "%s-%d: %d\n", tp.Topic, tp.Partition, offsets[tp].Offset)
	}
	if len(tps) == 0 {
		b.WriteString("no offsets\n")
	}
}

func (r *machineRunner) describe(b *strings.Builder, group string) {
	d := r.m.Describe(group)
	fmt.Fprintf(b, "%s: state=%s gen=%d protocol=%q", d.Group, d.State, d.Generation, d.Protocol)
	if g := r.m.groups[group]; g != nil && g.leader != "" {
		fmt.Fprintf(b, " leader=%s", g.leader)
	}
	b.WriteString("\n")
	for _, mem := range d.Members {
		inst := ""
		if mem.InstanceID != nil {
			inst = " instance=" + *mem.InstanceID
		}
		fmt.Fprintf(b, "  %s%s assignment=%q\n", mem.MemberID, inst, mem.Assignment)
	}
}

// deleteGroup checks a deletion and applies it, as the driver does once the
// change's tombstones are written.
func (r *machineRunner) deleteGroup(b *strings.Builder, group string) {
	c, err := r.m.CheckDeleteGroup(r.nowMs, group)
	fmt.Fprintf(b, "delete: %s\n", errName(err))
	if err == nil {
		renderChange(b, c)
		r.m.ApplyDelete(c)
	}
}

func (r *machineRunner) deleteOffsets(b *strings.Builder, a map[string]string) {
	var tps []TopicPartition
	for _, pair := range list(a["offsets"]) { // topic:partition
		topic, p, _ := strings.Cut(pair, ":")
		tps = append(tps, TopicPartition{topic, int32(atoi(p))})
	}
	results, c, err := r.m.CheckDeleteOffsets(r.nowMs, a["g"], tps)
	fmt.Fprintf(b, "delete-offsets: %s\n", errName(err))
	if err != nil {
		return
	}
	for _, tp := range tps {
		fmt.Fprintf(b, "  %s-%d: %s\n", tp.Topic, tp.Partition, errName(results[tp]))
	}
	renderChange(b, c)
	r.m.ApplyDelete(c)
}

func renderChange(b *strings.Builder, c Change) {
	kind := map[ChangeKind]string{ChangeEmpty: "empty", ChangeDeleted: "deleted", ChangeOffsetsDeleted: "offsets-deleted"}[c.Kind]
	fmt.Fprintf(b, "change: %s %s at=%d gen=%d offsets=%v", c.Group, kind, c.AtMs, c.Generation, c.Offsets)
	if c.Kind == ChangeDeleted {
		fmt.Fprintf(b, " persisted=%t", c.Persisted)
	}
	b.WriteString("\n")
}

func (r *machineRunner) render(b *strings.Builder, ready Ready) {
	for _, j := range ready.Joins {
		res := j.Result
		if res.Err != nil {
			fmt.Fprintf(b, "join w%d: %s member=%s\n", j.Waiter, errName(res.Err), res.MemberID)
			continue
		}
		fmt.Fprintf(b, "join w%d: ok member=%s gen=%d leader=%s protocol=%s", j.Waiter, res.MemberID, res.Generation, res.LeaderID, res.Protocol)
		if res.Members != nil {
			var ms []string
			for _, mem := range res.Members {
				ms = append(ms, mem.MemberID+":"+string(mem.Metadata))
			}
			fmt.Fprintf(b, " members=[%s]", strings.Join(ms, " "))
		}
		b.WriteString("\n")
	}
	for _, s := range ready.Syncs {
		if s.Result.Err != nil {
			fmt.Fprintf(b, "sync w%d: %s\n", s.Waiter, errName(s.Result.Err))
			continue
		}
		fmt.Fprintf(b, "sync w%d: ok assignment=%q\n", s.Waiter, s.Result.Assignment)
	}
	for _, c := range ready.Changes {
		renderChange(b, c)
	}
	if ready.Rebalances > 0 {
		fmt.Fprintf(b, "rebalances: %d\n", ready.Rebalances)
	}
}

var errNames = []struct {
	err  error
	name string
}{
	{ErrInvalidGroupID, "INVALID_GROUP_ID"},
	{ErrInvalidSessionTimeout, "INVALID_SESSION_TIMEOUT"},
	{ErrInconsistentProtocol, "INCONSISTENT_GROUP_PROTOCOL"},
	{ErrMemberIDRequired, "MEMBER_ID_REQUIRED"},
	{ErrUnknownMemberID, "UNKNOWN_MEMBER_ID"},
	{ErrIllegalGeneration, "ILLEGAL_GENERATION"},
	{ErrRebalanceInProgress, "REBALANCE_IN_PROGRESS"},
	{ErrFencedInstanceID, "FENCED_INSTANCE_ID"},
	{ErrGroupMaxSize, "GROUP_MAX_SIZE_REACHED"},
	{ErrGroupNotFound, "GROUP_ID_NOT_FOUND"},
	{ErrNonEmptyGroup, "NON_EMPTY_GROUP"},
	{ErrSubscribedToTopic, "GROUP_SUBSCRIBED_TO_TOPIC"},
	{ErrFencedMemberEpoch, "FENCED_MEMBER_EPOCH"},
	{ErrStaleMemberEpoch, "STALE_MEMBER_EPOCH"},
	{ErrUnsupportedAssignor, "UNSUPPORTED_ASSIGNOR"},
	{ErrInvalidRequest, "INVALID_REQUEST"},
	{ErrNotConsumerGroup, "GROUP_ID_NOT_FOUND"},
	{ErrNotCoordinator, "NOT_COORDINATOR"},
}

func errName(err error) string {
	if err == nil {
		return "ok"
	}
	for _, e := range errNames {
		if errors.Is(err, e.err) {
			return e.name
		}
	}
	return err.Error()
}

func atoi(s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil && s != "" {
		panic(fmt.Sprintf("scenario: %q is not a number", s))
	}
	return n
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// consumerHeartbeat runs "cg g=G m=ID epoch=N [topics=a,b] [regex=R]
// [assignor=A] [owned=t:0.1;u:2] [instance=I]".
func (r *machineRunner) consumerHeartbeat(b *strings.Builder, a map[string]string) {
	req := ConsumerHeartbeatRequest{Group: a["g"], MemberID: a["m"], MemberEpoch: int32(atoi(a["epoch"])),
		ClientID: "c", ClientHost: "/127.0.0.1", RebalanceTimeoutMs: 30000, Topics: r.topics}
	if v, ok := a["topics"]; ok {
		req.SubscribedTopics = append([]string{}, list(v)...)
	}
	if v, ok := a["regex"]; ok {
		req.SubscribedRegex = &v
	}
	if v, ok := a["assignor"]; ok {
		req.Assignor = &v
	}
	if v, ok := a["instance"]; ok {
		req.InstanceID = &v
	}
	if v, ok := a["owned"]; ok {
		req.Owned = parseAssignment(v)
	}
	res := r.m.ConsumerHeartbeat(r.nowMs, req)
	if res.Err != nil {
		fmt.Fprintf(b, "cg %s: %s\n", req.MemberID, errName(res.Err))
		return
	}
	fmt.Fprintf(b, "cg %s: epoch=%d assigned=%s\n", res.MemberID, res.MemberEpoch, formatAssignment(res.Assignment))
}

func (r *machineRunner) consumerDescribe(b *strings.Builder, group string) {
	d := r.m.Describe(group)
	if d.Consumer == nil {
		fmt.Fprintf(b, "%s: state=%s (not a consumer group)\n", group, d.State)
		return
	}
	fmt.Fprintf(b, "%s: state=%s epoch=%d assignor=%s\n", group, d.State, d.Consumer.Epoch, d.Consumer.Assignor)
	for _, m := range d.Consumer.Members {
		fmt.Fprintf(b, "  %s epoch=%d assigned=%s target=%s\n", m.MemberID, m.Epoch, formatAssignment(m.Assigned), formatAssignment(m.Target))
	}
}

// parseAssignment reads "t:0.1;u:2"; "-" is the empty assignment.
func parseAssignment(s string) Assignment {
	out := Assignment{}
	if s == "-" {
		return out
	}
	for _, part := range strings.Split(s, ";") {
		topic, ps, _ := strings.Cut(part, ":")
		for _, p := range strings.Split(ps, ".") {
			out[topic] = append(out[topic], int32(atoi(p)))
		}
	}
	return out
}

func formatAssignment(a Assignment) string {
	var parts []string
	for _, topic := range sortedKeys(a) {
		if len(a[topic]) == 0 {
			continue
		}
		var ps []string
		for _, p := range a[topic] {
			ps = append(ps, strconv.Itoa(int(p)))
		}
		parts = append(parts, topic+":"+strings.Join(ps, "."))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ";")
}
