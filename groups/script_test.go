package groups

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/internal/script"
)

// A scenario file is a list of steps in the form package internal/script
// reads.
//
// go test ./groups -rewrite regenerates the expected output in place; review
// the diff before keeping it.
var rewrite = flag.Bool("rewrite", false, "rewrite scenario expectations with the actual output")

// runScripts runs every testdata file matching pattern through a fresh
// runner made by newRunner.
func runScripts(t *testing.T, pattern string, newRunner func() func(command string, args map[string]string) string) {
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scenario files for %s (%v)", pattern, err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			steps := script.Parse(t, path)
			run := newRunner()
			for i := range steps {
				s := &steps[i]
				name, args := splitCommand(s.Command)
				got := strings.TrimRight(run(name, args), "\n")
				if *rewrite {
					s.Expected = got
					continue
				}
				if got != s.Expected {
					t.Fatalf("%s step %d %q:\n got:\n%s\n want:\n%s", path, i+1, s.Command, got, s.Expected)
				}
			}
			if *rewrite {
				script.Write(t, path, steps)
			}
		})
	}
}

func splitCommand(line string) (string, map[string]string) {
	fields := strings.Fields(line)
	args := map[string]string{}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		args[k] = v
	}
	return fields[0], args
}
