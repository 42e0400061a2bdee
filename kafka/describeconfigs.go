package kafka

// DescribeConfigs v0-v4, for topics (resource type 2) and this broker
// (type 4, named by its node id or ""). Topic configs are every config Cairn
// supports, with its effective value and source: 5 (DEFAULT_CONFIG) or 1
// (DYNAMIC_TOPIC_CONFIG); v0 reports IsDefault instead. Synonyms (v1+, when
// asked) list the topic override first, then the broker default it replaces,
// as Kafka orders them. Documentation (v3+) is sent when asked; config
// types (v3+) are STRING, INT, LONG, BOOLEAN or LIST per key. A nil or empty
// ConfigNames means every config; unknown names are left out. Broker configs
// are a short read-only list of the facts tools look at (auto topic creation,
// default partitions, size limits, retention defaults), from the server's
// flags where it has them (source 4, STATIC_BROKER_CONFIG) and fixed
// otherwise (source 5). Other resource types answer INVALID_REQUEST, and a
// broker name other than this node's id answers INVALID_REQUEST, as Kafka.

import (
	"slices"
	"sort"
	"strconv"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/cluster"
)

func init() { register(kmsg.DescribeConfigs.Int16(), 0, 4, handleDescribeConfigs) }

// topicConfigKinds gives each topic config its wire type and the broker
// config whose default it takes (its synonym in Kafka), if Cairn reports one.
// A test checks that every config the cluster supports is listed here.
var topicConfigKinds = map[string]struct {
	configType kmsg.ConfigType
	brokerName string
}{
	"cleanup.policy":                 {kmsg.ConfigTypeList, "log.cleanup.policy"},
	"retention.ms":                   {kmsg.ConfigTypeLong, "log.retention.ms"},
	"retention.bytes":                {kmsg.ConfigTypeLong, "log.retention.bytes"},
	"segment.bytes":                  {kmsg.ConfigTypeInt, "log.segment.bytes"},
	"segment.ms":                     {kmsg.ConfigTypeLong, "log.roll.ms"},
	"index.interval.bytes":           {kmsg.ConfigTypeInt, ""},
	"max.message.bytes":              {kmsg.ConfigTypeInt, "message.max.bytes"},
	"delete.retention.ms":            {kmsg.ConfigTypeLong, ""},
	"message.timestamp.type":         {kmsg.ConfigTypeString, "log.message.timestamp.type"},
	"compression.type":               {kmsg.ConfigTypeString, "compression.type"},
	"min.insync.replicas":            {kmsg.ConfigTypeInt, "min.insync.replicas"},
	"unclean.leader.election.enable": {kmsg.ConfigTypeBoolean, "unclean.leader.election.enable"},
	"min.compaction.lag.ms":          {kmsg.ConfigTypeLong, ""},
	"message.downconversion.enable":  {kmsg.ConfigTypeBoolean, ""},
}

// topicConfigType is a topic config's wire type; STRING for a key added to
// the cluster but not yet to topicConfigKinds.
func topicConfigType(name string) kmsg.ConfigType {
	if k, ok := topicConfigKinds[name]; ok {
		return k.configType
	}
	return kmsg.ConfigTypeString
}

// configSource is where a topic config's effective value comes from.
func configSource(e cluster.ConfigEntry) kmsg.ConfigSource {
	if e.IsDefault {
		return kmsg.ConfigSourceDefaultConfig
	}
	return kmsg.ConfigSourceDynamicTopicConfig
}

func sortConfigEntries(entries []cluster.ConfigEntry) {
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name < entries[j].Name })
}

// brokerConfig is one broker config fact.
type brokerConfig struct {
	name       string
	value      string
	source     kmsg.ConfigSource
	configType kmsg.ConfigType
	doc        string
}

// brokerConfigs lists the broker configs Cairn reports. The fixed values that
// mirror a topic config's default are checked against the cluster's defaults
// by a test, so the two cannot drift apart.
func (s *Server) brokerConfigs() []brokerConfig {
	const static, fixed = kmsg.ConfigSourceStaticBrokerConfig, kmsg.ConfigSourceDefaultConfig
	node := strconv.Itoa(int(s.cluster.NodeID()))
	return []brokerConfig{
		{"auto.create.topics.enable", strconv.FormatBool(s.cfg.AutoCreateTopics), static, kmsg.ConfigTypeBoolean, "create unknown topics named in Metadata requests"},
		{"broker.id", node, static, kmsg.ConfigTypeInt, "this broker's node id"},
		{"cairn.node.state", s.cluster.NodeState(s.cluster.NodeID()), fixed, kmsg.ConfigTypeString,
			"this node's state in the cluster: ACTIVE, or DRAINING while remove-node moves its replicas off"},
		{"compression.type", "producer", fixed, kmsg.ConfigTypeString, "batches are stored as the producer compressed them"},
		{"connections.max.idle.ms", strconv.FormatInt(s.cfg.IdleTimeout.Milliseconds(), 10), static, kmsg.ConfigTypeLong, "close connections idle for this long"},
		{"default.replication.factor", "1", fixed, kmsg.ConfigTypeInt, "a single node holds the only replica"},
		{"delete.topic.enable", "true", fixed, kmsg.ConfigTypeBoolean, "topics can be deleted"},
		{"log.cleanup.policy", "delete", fixed, kmsg.ConfigTypeList, "default cleanup.policy of topics"},
		{"log.message.timestamp.type", "CreateTime", fixed, kmsg.ConfigTypeString, "default message.timestamp.type of topics"},
		{"log.retention.bytes", "-1", fixed, kmsg.ConfigTypeLong, "default retention.bytes of topics"},
		{"log.retention.ms", "604800000", fixed, kmsg.ConfigTypeLong, "default retention.ms of topics"},
		{"log.roll.ms", "604800000", fixed, kmsg.ConfigTypeLong, "default segment.ms of topics"},
		{"log.segment.bytes", "1073741824", fixed, kmsg.ConfigTypeInt, "default segment.bytes of topics"},
		{"message.max.bytes", "1048588", fixed, kmsg.ConfigTypeInt, "default max.message.bytes of topics"},
		{"min.insync.replicas", "1", fixed, kmsg.ConfigTypeInt, "default min.insync.replicas of topics"},
		{"node.id", node, static, kmsg.ConfigTypeInt, "this broker's node id"},
		{"num.partitions", strconv.Itoa(int(s.cfg.DefaultPartitions)), static, kmsg.ConfigTypeInt, "partitions of topics created without a count"},
		{"offsets.topic.replication.factor", "1", fixed, kmsg.ConfigTypeShort, "a single node holds the only replica"},
		{"socket.request.max.bytes", strconv.Itoa(int(s.cfg.RequestBytesMax)), static, kmsg.ConfigTypeInt, "largest request accepted"},
		{"unclean.leader.election.enable", "false", fixed, kmsg.ConfigTypeBoolean, "no effect on a single node"},
	}
}

func (s *Server) brokerConfig(name string) (brokerConfig, bool) {
	for _, b := range s.brokerConfigs() {
		if b.name == name {
			return b, true
		}
	}
	return brokerConfig{}, false
}

func handleDescribeConfigs(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var configs []kmsg.DescribeConfigsResponseResourceConfig
		err := c.configAllowed(acl.OpDescribeConfigs, rr.ResourceType, rr.ResourceName)
		if err == nil {
			configs, err = s.describeResource(req, rr)
		}
		if err != nil {
			sr.ErrorCode = errorCode(err)
			sr.ErrorMessage = errorMessage(err)
		} else {
			sr.Configs = configs
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return reply{resp: resp}
}

func (s *Server) describeResource(req *kmsg.DescribeConfigsRequest, rr kmsg.DescribeConfigsRequestResource) ([]kmsg.DescribeConfigsResponseResourceConfig, error) {
	wanted := func(name string) bool { return len(rr.ConfigNames) == 0 || slices.Contains(rr.ConfigNames, name) }
	var out []kmsg.DescribeConfigsResponseResourceConfig
	switch rr.ResourceType {
	case kmsg.ConfigResourceTypeTopic:
		entries, err := s.cluster.DescribeConfigs(rr.ResourceName)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if wanted(e.Name) {
				out = append(out, s.describeTopicConfig(req, e))
			}
		}
	case kmsg.ConfigResourceTypeBroker:
		if err := s.checkBrokerName(rr.ResourceName); err != nil {
			return nil, err
		}
		for _, b := range s.brokerConfigs() {
			if wanted(b.name) {
				out = append(out, describeBrokerConfig(req, b))
			}
		}
	default:
		return nil, refuse(kerr.InvalidRequest,
			"config resource type %d is not supported: Cairn describes topics (2) and brokers (4)", rr.ResourceType)
	}
	return out, nil
}

// checkBrokerName accepts this node's id, or "" for the cluster-wide view.
func (s *Server) checkBrokerName(name string) error {
	node := s.cluster.NodeID()
	if name != "" && name != strconv.Itoa(int(node)) {
		return refuse(kerr.InvalidRequest, "broker %q: this is broker %d; name it or use the empty name", name, node)
	}
	return nil
}

func (s *Server) describeTopicConfig(req *kmsg.DescribeConfigsRequest, e cluster.ConfigEntry) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	value := e.Value
	c.Name, c.Value = e.Name, &value
	c.Source = configSource(e)
	c.IsDefault = e.IsDefault
	c.ConfigType = topicConfigType(e.Name)
	if req.IncludeDocumentation {
		doc := e.Doc
		c.Documentation = &doc
	}
	if req.IncludeSynonyms {
		if !e.IsDefault {
			c.ConfigSynonyms = append(c.ConfigSynonyms, configSynonym(e.Name, e.Value, c.Source))
		}
		if b, ok := s.brokerConfig(topicConfigKinds[e.Name].brokerName); ok {
			c.ConfigSynonyms = append(c.ConfigSynonyms, configSynonym(b.name, b.value, b.source))
		}
	}
	return c
}

func describeBrokerConfig(req *kmsg.DescribeConfigsRequest, b brokerConfig) kmsg.DescribeConfigsResponseResourceConfig {
	c := kmsg.NewDescribeConfigsResponseResourceConfig()
	value := b.value
	c.Name, c.Value = b.name, &value
	c.Source = b.source
	c.IsDefault = b.source == kmsg.ConfigSourceDefaultConfig
	c.ReadOnly = true
	c.ConfigType = b.configType
	if req.IncludeDocumentation {
		doc := b.doc
		c.Documentation = &doc
	}
	if req.IncludeSynonyms {
		c.ConfigSynonyms = append(c.ConfigSynonyms, configSynonym(b.name, b.value, b.source))
	}
	return c
}

func configSynonym(name, value string, source kmsg.ConfigSource) kmsg.DescribeConfigsResponseResourceConfigConfigSynonym {
	syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
	syn.Name, syn.Value, syn.Source = name, &value, source
	return syn
}
