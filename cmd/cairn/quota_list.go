package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/quota"
)

func newQuotaListCommand(connection *clientFlags) *cobra.Command {
	var entity quotaEntityFlags
	var anyUser, anyClientID, strict bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List client quotas, all or those the filters select",
		Long: `List the client quotas, one entity a line: the entity, then key=value pairs.
--user and --client-id select an entity with that name, --default-user and
--default-client-id the default one, --any-user and --any-client-id any
entity with a user or a client id. Entities may have parts the filters do
not name unless --strict.`,
		Example: `  cairn quota list
  cairn quota list --user alice
  cairn quota list --any-client-id --strict`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var components []kadm.DescribeClientQuotaComponent
			for _, c := range []struct {
				typ              string
				name             string
				named, def, anyp bool
			}{
				{quota.TypeUser, entity.user, cmd.Flags().Changed("user"), entity.defaultUser, anyUser},
				{quota.TypeClientID, entity.clientID, cmd.Flags().Changed("client-id"), entity.defaultClientID, anyClientID},
			} {
				component, ok, err := quotaFilterComponent(c.typ, c.name, c.named, c.def, c.anyp)
				if err != nil {
					return err
				}
				if ok {
					components = append(components, component)
				}
			}
			return withKafkaClient(cmd, connection, func(ctx context.Context, client *kgo.Client) error {
				quotas, err := kadm.NewClient(client).DescribeClientQuotas(ctx, strict, components)
				if err != nil {
					return fmt.Errorf("describe client quotas: %w", err)
				}
				for _, q := range quotas {
					if _, err := fmt.Fprintln(cmd.OutOrStdout(), formatQuota(q)); err != nil {
						return err
					}
				}
				return nil
			})
		},
	}
	entity.register(cmd.Flags())
	cmd.Flags().BoolVar(&anyUser, "any-user", false, "entities with any user, named or default")
	cmd.Flags().BoolVar(&anyClientID, "any-client-id", false, "entities with any client id, named or default")
	cmd.Flags().BoolVar(&strict, "strict", false, "only entities with no parts other than those the filters name")
	return cmd
}

// quotaFilterComponent is the filter on one entity type, if the flags give
// one.
func quotaFilterComponent(typ, name string, named, isDefault, isAny bool) (kadm.DescribeClientQuotaComponent, bool, error) {
	c := kadm.DescribeClientQuotaComponent{Type: typ}
	given := 0
	for _, b := range []bool{named, isDefault, isAny} {
		if b {
			given++
		}
	}
	switch {
	case given > 1:
		return c, false, fmt.Errorf("--%s, --default-%s and --any-%s: give one", typ, typ, typ)
	case named:
		c.MatchType, c.MatchName = kmsg.QuotasMatchTypeExact, &name
	case isDefault:
		c.MatchType = kmsg.QuotasMatchTypeDefault
	case isAny:
		c.MatchType = kmsg.QuotasMatchTypeAny
	default:
		return c, false, nil
	}
	return c, true, nil
}
