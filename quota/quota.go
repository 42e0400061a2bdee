package quota

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// The keys Kafka defines for user and client-id entities.
const (
	ProducerByteRate = "producer_byte_rate"
	ConsumerByteRate = "consumer_byte_rate"
	// RequestPercentage is the share of one request handler's time, in
	// percent, the entity's requests may take.
	RequestPercentage = "request_percentage"
	// ControllerMutationRate (partition creations and deletions per
	// second) is refused: it is not enforced here.
	ControllerMutationRate = "controller_mutation_rate"
)

// The entity types of Kafka's client quota APIs.
const (
	TypeUser     = "user"
	TypeClientID = "client-id"
)

// Limits on what a client may configure.
const (
	// NameBytesMax bounds a user or client id name.
	NameBytesMax = 1024
	// EntitiesMax bounds the configured entities of a cluster.
	EntitiesMax = 10_000
)

// Kind is what a part of an entity is.
type Kind uint8

const (
	// Absent: the entity has no such part.
	Absent Kind = iota
	// Default: every name that has no entity of its own.
	Default
	// Named: one name.
	Named
)

// Part is the user or client-id part of an entity. Name is set only when
// Kind is Named (and may be empty: the empty client id is a name).
type Part struct {
	Kind Kind
	Name string
}

// DefaultPart is the <default> part.
var DefaultPart = Part{Kind: Default}

// NamedPart is the part naming name.
func NamedPart(name string) Part { return Part{Kind: Named, Name: name} }

func (p Part) String() string {
	switch p.Kind {
	case Default:
		return "<default>"
	case Named:
		return p.Name
	}
	return "-"
}

func comparePart(a, b Part) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), strings.Compare(a.Name, b.Name))
}

// Entity is what a quota is set on: a user, a client id, or both.
type Entity struct {
	User     Part
	ClientID Part
}

func (e Entity) String() string {
	var parts []string
	if e.User.Kind != Absent {
		parts = append(parts, "user="+e.User.String())
	}
	if e.ClientID.Kind != Absent {
		parts = append(parts, "client-id="+e.ClientID.String())
	}
	return strings.Join(parts, ",")
}

// Compare orders entities by user part then client-id part (absent
// first, then default, then names).
func Compare(a, b Entity) int {
	return cmp.Or(comparePart(a.User, b.User), comparePart(a.ClientID, b.ClientID))
}

// ValidateEntity reports why e cannot carry quotas.
func ValidateEntity(e Entity) error {
	if e.User.Kind == Absent && e.ClientID.Kind == Absent {
		return errors.New("quota entity names neither a user nor a client id")
	}
	for _, p := range []Part{e.User, e.ClientID} {
		if p.Kind > Named || (p.Kind != Named && p.Name != "") {
			return fmt.Errorf("quota entity %v: malformed part", e)
		}
		if len(p.Name) > NameBytesMax {
			return fmt.Errorf("quota entity name of %d bytes, at most %d", len(p.Name), NameBytesMax)
		}
	}
	if e.User.Kind == Named && e.User.Name == "" {
		return errors.New("quota entity: a user name may not be empty")
	}
	return nil
}

// ValidateValue reports why key cannot be set to value.
func ValidateValue(key string, value float64) error {
	switch key {
	case ProducerByteRate, ConsumerByteRate:
		if value != math.Trunc(value) {
			return fmt.Errorf("%s must be a whole number of bytes per second, not %v", key, value)
		}
	case RequestPercentage:
	case ControllerMutationRate:
		return fmt.Errorf("%s is not supported", key)
	default:
		return fmt.Errorf("unknown quota key %q", key)
	}
	if !(value > 0) || math.IsInf(value, 0) {
		return fmt.Errorf("%s must be positive and finite, not %v", key, value)
	}
	return nil
}

// Values are an entity's quotas by key.
type Values map[string]float64

// Quota is one entity's quotas.
type Quota struct {
	Entity Entity
	Values Values
}

// Config is the cluster's quotas, immutable once built: readers share it
// and a change builds another.
type Config struct {
	byEntity map[Entity]Values
}

// NewConfig is the config of quotas, which hold distinct entities; it keeps
// its own copy.
func NewConfig(quotas []Quota) *Config {
	c := &Config{byEntity: make(map[Entity]Values, len(quotas))}
	for _, q := range quotas {
		c.byEntity[q.Entity] = copyValues(q.Values)
	}
	return c
}

func copyValues(v Values) Values {
	out := make(Values, len(v))
	for k, x := range v {
		out[k] = x
	}
	return out
}

// Len is how many entities have quotas.
func (c *Config) Len() int {
	if c == nil {
		return 0
	}
	return len(c.byEntity)
}

// Quotas lists the configured entities in Compare order, each with a copy
// of its values.
func (c *Config) Quotas() []Quota {
	if c == nil {
		return nil
	}
	out := make([]Quota, 0, len(c.byEntity))
	for e, v := range c.byEntity {
		out = append(out, Quota{Entity: e, Values: copyValues(v)})
	}
	slices.SortFunc(out, func(a, b Quota) int { return Compare(a.Entity, b.Entity) })
	return out
}

// Resolve is the limit on key of a connection of user and clientID, and
// the entity it comes from, in Kafka's precedence order (package doc). A
// user of "" is an unauthenticated connection: only client-id entities
// apply to it. ok is false when no entity sets key.
func (c *Config) Resolve(user, clientID, key string) (limit float64, from Entity, ok bool) {
	if c.Len() == 0 {
		return 0, Entity{}, false
	}
	entities, n := candidates(user, clientID)
	for _, e := range entities[:n] {
		if v, set := c.byEntity[e][key]; set {
			return v, e, true
		}
	}
	return 0, Entity{}, false
}

// candidates are the first n entities of the array: those that may limit
// (user, clientID), first first. An array, as every request of a client
// with quotas resolves them.
func candidates(user, clientID string) (entities [8]Entity, n int) {
	client := NamedPart(clientID)
	if user != "" {
		u := NamedPart(user)
		entities = [8]Entity{
			{User: u, ClientID: client},
			{User: u, ClientID: DefaultPart},
			{User: u},
			{User: DefaultPart, ClientID: client},
			{User: DefaultPart, ClientID: DefaultPart},
			{User: DefaultPart},
		}
		n = 6
	}
	entities[n], entities[n+1] = Entity{ClientID: client}, Entity{ClientID: DefaultPart}
	return entities, n + 2
}

// Alter is the config after setting and removing values per entity:
// set[e][k] sets key k of e, remove[e] lists keys of e to remove. An
// entity left without values goes. The receiver is unchanged.
func (c *Config) Alter(set map[Entity]Values, remove map[Entity][]string) (*Config, error) {
	out := &Config{byEntity: make(map[Entity]Values, c.Len()+len(set))}
	if c != nil {
		for e, v := range c.byEntity {
			out.byEntity[e] = copyValues(v)
		}
	}
	for e, keys := range remove {
		for _, k := range keys {
			delete(out.byEntity[e], k)
		}
		if len(out.byEntity[e]) == 0 {
			delete(out.byEntity, e)
		}
	}
	for e, v := range set {
		if err := ValidateEntity(e); err != nil {
			return nil, err
		}
		if len(v) == 0 {
			continue
		}
		if out.byEntity[e] == nil {
			out.byEntity[e] = Values{}
		}
		for k, x := range v {
			if err := ValidateValue(k, x); err != nil {
				return nil, fmt.Errorf("%v: %w", e, err)
			}
			out.byEntity[e][k] = x
		}
	}
	if len(out.byEntity) > EntitiesMax {
		return nil, fmt.Errorf("%d quota entities, at most %d", len(out.byEntity), EntitiesMax)
	}
	return out, nil
}
