// Package quota is the arithmetic of Kafka client quotas, without I/O:
// which configured entity a connection's (user, client id) falls under
// (Kafka's precedence, Resolve), and how fast each entity consumes what it
// is limited on (byte rates, request handling time) over a window of
// samples, and how long a client that went over must back off (Manager).
//
// Entities. An entity has a user part, a client-id part, or both; each part
// is absent, the default ("<default>" in Kafka's tools: every user or
// client id that has no quota of its own) or a name. For one key (say
// producer_byte_rate) a connection of user U and client id C is limited by
// the first of these entities that has the key set:
//
//	user=U,         client-id=C
//	user=U,         client-id=<default>
//	user=U
//	user=<default>, client-id=C
//	user=<default>, client-id=<default>
//	user=<default>
//	client-id=C
//	client-id=<default>
//
// The consumption is shared by everyone the entity's parts name: a
// default part stands for the connection's own name, so user=<default>
// gives each user its own quota, while an absent part lumps together every
// value of it (client-id=C alone is shared by all users with that client
// id).
//
// Rates. Each sensor keeps Samples buckets of SampleWindow (Kafka's
// quota.window.num = 11 and quota.window.size.seconds = 1). The rate is
// the buckets' total over the time they cover, at least (Samples-1)
// windows, so a first burst is spread over the whole window instead of
// throttled as if it were a rate over a few milliseconds. When the rate is
// over the limit, the client backs off for (rate-limit)/limit × the
// window: the time it takes, sending nothing, for the rate to come back to
// the limit. The back-off is capped at the window's span (11 s).
//
// Time is passed in (the Manager's clock), so every behaviour here is
// tested with a manual clock.
package quota
