package main

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/cairnlog/cairn/quota"
)

func newQuotaCommand() *cobra.Command {
	var connection clientFlags
	cmd := &cobra.Command{
		Use:   "quota",
		Short: "Set, list and remove client quotas",
		Long: `Set, list and remove the client quotas the brokers hold producers, consumers
and their request handling time to (Kafka's AlterClientQuotas and
DescribeClientQuotas, so any Kafka cluster works too). A quota is set on a
user, a client id, or a user and a client id; --default-user and
--default-client-id stand for every user or client id without a quota of
its own. Changing quotas needs AlterConfigs on the cluster, listing them
DescribeConfigs on the cluster, or a super user.`,
		Args: cobra.NoArgs,
	}
	connection.register(cmd.PersistentFlags(), "how long to wait for the cluster to answer")
	cmd.AddCommand(
		newQuotaSetCommand(&connection),
		newQuotaListCommand(&connection),
		newQuotaRemoveCommand(&connection),
	)
	return cmd
}

// quotaEntityFlags name one entity: a user (or the default user), a
// client id (or the default client id), or both.
type quotaEntityFlags struct {
	user, clientID               string
	defaultUser, defaultClientID bool
}

func (f *quotaEntityFlags) register(flags *pflag.FlagSet) {
	flags.StringVar(&f.user, "user", "", "the user (the name of its principal, User:NAME)")
	flags.BoolVar(&f.defaultUser, "default-user", false, "every user without a quota of its own")
	flags.StringVar(&f.clientID, "client-id", "", "the client id")
	flags.BoolVar(&f.defaultClientID, "default-client-id", false, "every client id without a quota of its own")
}

// entity is the entity the flags name, as the quota APIs spell it.
func (f *quotaEntityFlags) entity(flags *pflag.FlagSet) (kadm.ClientQuotaEntity, error) {
	user, err := entityComponent(quota.TypeUser, f.user, flags.Changed("user"), f.defaultUser)
	if err != nil {
		return nil, err
	}
	client, err := entityComponent(quota.TypeClientID, f.clientID, flags.Changed("client-id"), f.defaultClientID)
	if err != nil {
		return nil, err
	}
	entity := append(user, client...)
	if len(entity) == 0 {
		return nil, errors.New("name a user (--user or --default-user), a client id (--client-id or --default-client-id), or both")
	}
	return entity, nil
}

func entityComponent(typ, name string, named, isDefault bool) (kadm.ClientQuotaEntity, error) {
	switch {
	case named && isDefault:
		return nil, fmt.Errorf("--%s and --default-%s name different entities: give one", typ, typ)
	case isDefault:
		return kadm.ClientQuotaEntity{{Type: typ}}, nil
	case named:
		return kadm.ClientQuotaEntity{{Type: typ, Name: &name}}, nil
	}
	return nil, nil
}

// formatQuota is one line of quota list: the entity, then key=value pairs
// in key order.
func formatQuota(q kadm.DescribedClientQuota) string {
	values := make([]string, len(q.Values))
	for i, v := range q.Values {
		values[i] = fmt.Sprintf("%s=%s", v.Key, formatQuotaValue(v.Value))
	}
	sort.Strings(values)
	return formatEntity(q.Entity) + "\t" + strings.Join(values, " ")
}

// formatEntity is e as type=name pairs joined by commas, <default> for a
// default name.
func formatEntity(e kadm.ClientQuotaEntity) string {
	parts := make([]string, len(e))
	for i, c := range e {
		parts[i] = c.String()
	}
	return strings.Join(parts, ",")
}

// formatQuotaValue writes byte rates whole and percentages as short as
// they go.
func formatQuotaValue(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
