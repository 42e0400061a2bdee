package script

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
)

// Step is one command of a scenario, with the comments above it and the
// output it is expected to print.
type Step struct {
	Comments []string
	Command  string
	Expected string
}

// Parse reads the steps of the scenario file at path, failing t on a
// malformed file.
func Parse(t testing.TB, path string) []Step {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []Step
	var cur Step
	inOutput := false
	var out []string
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		switch {
		case inOutput && text == "":
			cur.Expected = strings.Join(out, "\n")
			steps = append(steps, cur)
			cur, out, inOutput = Step{}, nil, false
		case inOutput:
			out = append(out, text)
		case text == "----":
			if cur.Command == "" {
				t.Fatalf("%s:%d: ---- without a command", path, line)
			}
			inOutput = true
		case text == "" && cur.Command == "":
			// Blank lines between steps carry nothing.
		case strings.HasPrefix(text, "#"):
			cur.Comments = append(cur.Comments, text)
		case cur.Command != "":
			t.Fatalf("%s:%d: second command line %q before ----", path, line, text)
		default:
			cur.Command = text
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if inOutput {
		cur.Expected = strings.Join(out, "\n")
		steps = append(steps, cur)
	} else if cur.Command != "" {
		t.Fatalf("%s: last command %q has no ----", path, cur.Command)
	}
	return steps
}

// Write writes steps back to path in the form Parse reads.
func Write(t testing.TB, path string, steps []Step) {
	t.Helper()
	var b strings.Builder
	for _, s := range steps {
		for _, c := range s.Comments {
			b.WriteString(c + "\n")
		}
		fmt.Fprintf(&b, "%s\n----\n", s.Command)
		if s.Expected != "" {
			b.WriteString(s.Expected + "\n")
		}
		b.WriteString("\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
