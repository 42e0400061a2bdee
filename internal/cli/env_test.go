package cli

import (
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func mapLookup(env map[string]string) LookupEnv {
	return func(name string) (string, bool) {
		value, ok := env[name]
		return value, ok
	}
}

func TestEnvNameUppercasesAndReplacesDashes(t *testing.T) {
	cases := map[string]string{
		"data-dir":      "CAIRN_DATA_DIR",
		"brokers":       "CAIRN_BROKERS",
		"key-separator": "CAIRN_KEY_SEPARATOR",
		"until-end":     "CAIRN_UNTIL_END",
	}
	for flag, want := range cases {
		if got := EnvName(flag); got != want {
			t.Errorf("EnvName(%q) = %q, want %q", flag, got, want)
		}
	}
}

func newTestFlags() (*pflag.FlagSet, *string, *[]string, *int32, *bool, *[]string) {
	flags := pflag.NewFlagSet("test", pflag.ContinueOnError)
	dataDir := flags.String("data-dir", "default-dir", "")
	brokers := flags.StringSlice("brokers", []string{"127.0.0.1:9092"}, "")
	partitions := flags.Int32("partitions", 1, "")
	untilEnd := flags.Bool("until-end", false, "")
	headers := flags.StringArray("header", nil, "")
	return flags, dataDir, brokers, partitions, untilEnd, headers
}

func TestBindEnvFillsFlagsNotGivenOnTheCommandLine(t *testing.T) {
	flags, dataDir, brokers, partitions, untilEnd, headers := newTestFlags()
	if err := flags.Parse(nil); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CAIRN_DATA_DIR":   "/var/lib/cairn",
		"CAIRN_BROKERS":    "a:9092,b:9092",
		"CAIRN_PARTITIONS": "6",
		"CAIRN_UNTIL_END":  "true",
		"CAIRN_HEADER":     "trace=a,b",
	}
	if err := BindEnv(flags, mapLookup(env)); err != nil {
		t.Fatal(err)
	}
	if *dataDir != "/var/lib/cairn" {
		t.Errorf("data-dir = %q", *dataDir)
	}
	if strings.Join(*brokers, "|") != "a:9092|b:9092" {
		t.Errorf("brokers = %q, want the comma-separated list split", *brokers)
	}
	if *partitions != 6 {
		t.Errorf("partitions = %d", *partitions)
	}
	if !*untilEnd {
		t.Errorf("until-end not set from the environment")
	}
	if len(*headers) != 1 || (*headers)[0] != "trace=a,b" {
		t.Errorf("header = %q, want one item kept whole", *headers)
	}
}

func TestBindEnvLetsTheCommandLineWin(t *testing.T) {
	flags, dataDir, brokers, partitions, _, _ := newTestFlags()
	if err := flags.Parse([]string{"--data-dir", "/cli", "--brokers", "cli:9092"}); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"CAIRN_DATA_DIR":   "/env",
		"CAIRN_BROKERS":    "env:9092",
		"CAIRN_PARTITIONS": "3",
	}
	if err := BindEnv(flags, mapLookup(env)); err != nil {
		t.Fatal(err)
	}
	if *dataDir != "/cli" || len(*brokers) != 1 || (*brokers)[0] != "cli:9092" {
		t.Errorf("command line lost: data-dir %q brokers %q", *dataDir, *brokers)
	}
	if *partitions != 3 {
		t.Errorf("partitions = %d, want 3 from the environment", *partitions)
	}
}

func TestBindEnvLeavesDefaultsWhenNothingIsSet(t *testing.T) {
	flags, dataDir, brokers, _, _, _ := newTestFlags()
	if err := flags.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := BindEnv(flags, mapLookup(nil)); err != nil {
		t.Fatal(err)
	}
	if *dataDir != "default-dir" || (*brokers)[0] != "127.0.0.1:9092" {
		t.Errorf("defaults changed: %q %q", *dataDir, *brokers)
	}
	if flags.Changed("data-dir") {
		t.Errorf("data-dir marked changed without a value")
	}
}

func TestBindEnvRejectsAnUnparsableValueNamingTheVariable(t *testing.T) {
	flags, _, _, _, _, _ := newTestFlags()
	if err := flags.Parse(nil); err != nil {
		t.Fatal(err)
	}
	err := BindEnv(flags, mapLookup(map[string]string{"CAIRN_PARTITIONS": "many"}))
	if err == nil || !strings.Contains(err.Error(), "CAIRN_PARTITIONS") {
		t.Fatalf("err = %v, want one naming CAIRN_PARTITIONS", err)
	}
}

func TestBindEnvNeverBindsHelp(t *testing.T) {
	flags := pflag.NewFlagSet("test", pflag.ContinueOnError)
	help := flags.Bool("help", false, "")
	if err := flags.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := BindEnv(flags, mapLookup(map[string]string{"CAIRN_HELP": "true"})); err != nil {
		t.Fatal(err)
	}
	if *help {
		t.Errorf("CAIRN_HELP turned on --help")
	}
}

// TestBindEnvLeavesCommandLineOnlyFlags: a flag marked CommandLineOnly
// keeps its default when only its variable is set, and takes the command
// line's value; the other flags still read the environment.
func TestBindEnvLeavesCommandLineOnlyFlags(t *testing.T) {
	env := mapLookup(map[string]string{"CAIRN_DATA_DIR": "from-env", "CAIRN_PARTITIONS": "3"})
	flags, dataDir, _, partitions, _, _ := newTestFlags()
	CommandLineOnly(flags, "data-dir")
	if err := flags.Parse(nil); err != nil {
		t.Fatal(err)
	}
	if err := BindEnv(flags, env); err != nil {
		t.Fatal(err)
	}
	if *dataDir != "default-dir" || flags.Changed("data-dir") {
		t.Errorf("data-dir = %q (changed %v), want the default: the variable must not set it", *dataDir, flags.Changed("data-dir"))
	}
	if *partitions != 3 {
		t.Errorf("partitions = %d, want 3 from the environment", *partitions)
	}

	flags, dataDir, _, _, _, _ = newTestFlags()
	CommandLineOnly(flags, "data-dir")
	if err := flags.Parse([]string{"--data-dir", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if err := BindEnv(flags, env); err != nil {
		t.Fatal(err)
	}
	if *dataDir != "from-flag" {
		t.Errorf("data-dir = %q, want the command line's", *dataDir)
	}
}
