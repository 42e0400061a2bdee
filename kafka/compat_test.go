package kafka

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

const compatDocPath = "../docs/kafka-compat.md"

// compatRow is one row of the API table in docs/kafka-compat.md.
type compatRow struct {
	key        int16
	name       string
	minVersion int16
	maxVersion int16
	notes      string
}

// parseCompatTable reads the rows of the markdown table whose first cell is
// an API key; header and separator rows are skipped.
func parseCompatTable(text string) ([]compatRow, error) {
	var rows []compatRow
	sc := bufio.NewScanner(strings.NewReader(text))
	for line := 1; sc.Scan(); line++ {
		cells := strings.Split(strings.TrimSpace(sc.Text()), "|")
		if len(cells) < 5 || cells[0] != "" {
			continue
		}
		cells = cells[1 : len(cells)-1]
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		key, err := strconv.ParseInt(cells[0], 10, 16)
		if err != nil {
			continue // header or separator
		}
		low, high, ok := strings.Cut(cells[2], "-")
		minVersion, errMin := strconv.ParseInt(low, 10, 16)
		maxVersion, errMax := strconv.ParseInt(high, 10, 16)
		if !ok || errMin != nil || errMax != nil {
			return nil, fmt.Errorf("line %d: versions %q: want min-max, like 3-9", line, cells[2])
		}
		row := compatRow{key: int16(key), name: cells[1], minVersion: int16(minVersion), maxVersion: int16(maxVersion)}
		if len(cells) > 3 {
			row.notes = cells[3]
		}
		rows = append(rows, row)
	}
	return rows, sc.Err()
}

func (r compatRow) String() string {
	return fmt.Sprintf("| %d | %s | %d-%d | %s |", r.key, r.name, r.minVersion, r.maxVersion, r.notes)
}

// TestCompatDocMatchesRegistrations proves docs/kafka-compat.md lists exactly
// the APIs and versions the server registers (and so reports in
// ApiVersions), in key order.
func TestCompatDocMatchesRegistrations(t *testing.T) {
	text, err := os.ReadFile(compatDocPath)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := parseCompatTable(string(text))
	if err != nil {
		t.Fatal(err)
	}
	notes := map[int16]string{}
	for _, r := range rows {
		notes[r.key] = r.notes
	}
	var want []compatRow
	for _, a := range SupportedAPIs() {
		note := notes[a.Key]
		if note == "" {
			note = "(describe the deviations from the opening comment of the API's file)"
		}
		want = append(want, compatRow{key: a.Key, name: a.Name, minVersion: a.MinVersion, maxVersion: a.MaxVersion, notes: note})
	}
	same := len(rows) == len(want)
	for i := 0; same && i < len(rows); i++ {
		g, w := rows[i], want[i]
		same = g.key == w.key && g.name == w.name && g.minVersion == w.minVersion && g.maxVersion == w.maxVersion
	}
	if !same {
		var b strings.Builder
		for _, w := range want {
			b.WriteString(w.String() + "\n")
		}
		t.Fatalf("%s disagrees with the registered APIs; its table rows should be:\n%s", compatDocPath, b.String())
	}
}

// TestParseCompatTable proves the parser reads key, name and versions from
// table rows, skips the header, and rejects a malformed version range, so
// the check above cannot pass by reading nothing.
func TestParseCompatTable(t *testing.T) {
	doc := "| Key | API | Versions | Notes |\n| --- | --- | --- | --- |\n| 0 | Produce | 3-9 | acks |\n| 18 | ApiVersions | 0-4 |  |\n"
	rows, err := parseCompatTable(doc)
	if err != nil {
		t.Fatal(err)
	}
	want := []compatRow{{0, "Produce", 3, 9, "acks"}, {18, "ApiVersions", 0, 4, ""}}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Fatalf("rows %v, want %v", rows, want)
	}
	if _, err := parseCompatTable("| 1 | Fetch | 12 | no range |\n"); err == nil {
		t.Fatal("a version without a range was accepted")
	}
}
