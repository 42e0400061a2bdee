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
// the two sources apart. Flags marked CommandLineOnly are left alone.
func BindEnv(flags *pflag.FlagSet, lookup LookupEnv) error {
	var firstErr error
	flags.VisitAll(func(flag *pflag.Flag) {
		if firstErr != nil || flag.Changed || flag.Name == "help" || flag.Annotations[commandLineOnly] != nil {
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

// commandLineOnly is the pflag annotation CommandLineOnly sets.
const commandLineOnly = "cairn-command-line-only"

// CommandLineOnly keeps BindEnv from setting the flag name from the
// environment: for a flag that changes what a command acts on, where a
// variable left in the shell for another command must not choose for it
// (CAIRN_DATA_DIR, set for serve, must not turn user create from asking the
// running cluster into staging in a data directory). It panics when flags
// has no such flag, a programming error.
func CommandLineOnly(flags *pflag.FlagSet, name string) {
	if err := flags.SetAnnotation(name, commandLineOnly, []string{"true"}); err != nil {
		panic(fmt.Sprintf("cli: %v", err))
	}
}
