package groups

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A scenario file is a list of steps:
//
//	# optional comments
//	command key=value key=value
//	----
//	expected output (no blank lines)
//	<blank line>
//
// go test ./groups -rewrite regenerates the expected output in place; review
// the diff before keeping it.
var rewrite = flag.Bool("rewrite", false, "rewrite scenario expectations with the actual output")

type scriptStep struct {
	comments []string
	command  string
	expected string
}

func parseScript(t *testing.T, path string) []scriptStep {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []scriptStep
	var cur scriptStep
	inOutput := false
	var out []string
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		switch {
		case inOutput && text == "":
			cur.expected = strings.Join(out, "\n")
			steps = append(steps, cur)
			cur, out, inOutput = scriptStep{}, nil, false
		case inOutput:
			out = append(out, text)
		case text == "----":
			if cur.command == "" {
				t.Fatalf("%s:%d: ---- without a command", path, line)
			}
			inOutput = true
		case text == "" && cur.command == "":
			// Blank lines between steps carry nothing.
		case strings.HasPrefix(text, "#"):
			cur.comments = append(cur.comments, text)
		case cur.command != "":
			t.Fatalf("%s:%d: second command line %q before ----", path, line, text)
		default:
			cur.command = text
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if inOutput {
		cur.expected = strings.Join(out, "\n")
		steps = append(steps, cur)
	} else if cur.command != "" {
		t.Fatalf("%s: last command %q has no ----", path, cur.command)
	}
	return steps
}

func writeScript(t *testing.T, path string, steps []scriptStep) {
	t.Helper()
	var b strings.Builder
	for _, s := range steps {
		for _, c := range s.comments {
			b.WriteString(c + "\n")
		}
		fmt.Fprintf(&b, "%s\n----\n", s.command)
		if s.expected != "" {
			b.WriteString(s.expected + "\n")
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runScripts runs every testdata file matching pattern through a fresh
// runner made by newRunner.
func runScripts(t *testing.T, pattern string, newRunner func() func(command string, args map[string]string) string) {
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scenario files for %s (%v)", pattern, err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			steps := parseScript(t, path)
			run := newRunner()
			for i := range steps {
				s := &steps[i]
				name, args := splitCommand(s.command)
				got := strings.TrimRight(run(name, args), "\n")
				if *rewrite {
					s.expected = got
					continue
				}
				if got != s.expected {
					t.Fatalf("%s step %d %q:\n got:\n%s\n want:\n%s", path, i+1, s.command, got, s.expected)
				}
			}
			if *rewrite {
				writeScript(t, path, steps)
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
