package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"
)

// EnvPrefix starts the name of every environment variable that can stand in
// for a flag.
const EnvPrefix = "CAIRN_"

// EnvName returns the environment variable that stands in for the flag named
// flagName: "data-dir" becomes "CAIRN_DATA_DIR".
func EnvName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// LookupEnv reports the value of an environment variable and whether it is
// set; os.LookupEnv fits, and tests pass a map.
type LookupEnv func(name string) (string, bool)

// BindEnv gives every flag in flags that was not set on the command line the
// value of its environment variable (see EnvName), when that variable is set.
// A flag given on the command line always wins. The variable's value is
// parsed exactly like one occurrence of the flag, so a slice flag such as
// --brokers takes a comma-separated list, and a repeatable flag such as
// --header takes a single item. The help flag is never bound.
//
// BindEnv must run after the command line is parsed, so that Changed tells
// the two sources apart.
func BindEnv(flags *pflag.FlagSet, lookup LookupEnv) error {
	var firstErr error
	flags.VisitAll(func(flag *pflag.Flag) {
		if firstErr != nil || flag.Changed || flag.Name == "help" {
			return
		}
		name := EnvName(flag.Name)
		value, ok := lookup(name)
		if !ok {
			return
		}
		if err := flags.Set(flag.Name, value); err != nil {
			firstErr = fmt.Errorf("environment variable %s=%q for --%s: %w", name, value, flag.Name, err)
		}
	})
	return firstErr
}
