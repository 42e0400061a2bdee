package integration

import (
	"testing"
	"time"
)

// nemesisRecipe is a fixed schedule of faults on three nodes, for a
// sequence a random schedule seldom draws.
type nemesisRecipe struct {
	name     string
	duration time.Duration
	faults   []nemesisFault
}

// Roles of the recipes' nodes (0-based): the minority node paused or cut
// off first, the majority node killed while it is, and the third, cut off
// when the other two come back so that they must make the majority.
const (
	recipeMinority = 2
	recipeKilled   = 0
	recipeThird    = 1
)

// nemesisRecipes are the Tier 2 recipes. In each, the minority node
// falls behind for longer than an election timeout (a pause, or a
// blackhole of its links); then the killed node dies, losing on the lossy
// filesystem what it had not synced; then the third node, the only one
// holding everything, is cut off just before the minority comes back and
// the killed node restarts, so those two must elect a leader and serve
// from what they made durable. After the heal every acknowledged record
// must be where it was acknowledged.
func nemesisRecipes() []nemesisRecipe {
	const (
		behind   = 6 * time.Second // the minority's fault, past the election timeout
		killAt   = 2500 * time.Millisecond
		cutAt    = behind - 100*time.Millisecond // the third cut off first
		duration = 14 * time.Second              // the pair serves alone from behind on
	)
	third := nemesisFault{kind: faultBlackhole, node: recipeThird, start: cutAt, end: duration}
	killed := nemesisFault{kind: faultKill, node: recipeKilled, start: killAt, end: behind}
	var recipes []nemesisRecipe
	for _, minority := range []struct {
		name string
		kind faultKind
	}{{"pause-kill-cut", faultPause}, {"partition-kill-cut", faultBlackhole}} {
		// The minority's end comes before the restart at the same time: a
		// restart waits for the node to be healthy, which needs the minority.
		recipes = append(recipes, nemesisRecipe{name: minority.name, duration: duration, faults: []nemesisFault{
			{kind: minority.kind, node: recipeMinority, start: 0, end: behind}, killed, third,
		}})
	}
	return recipes
}

// TestClusterNemesisRecipes runs each recipe under the workloads and checks
// of TestClusterNemesis (runNemesis).
func TestClusterNemesisRecipes(t *testing.T) {
	for _, r := range nemesisRecipes() {
		t.Run(r.name, func(t *testing.T) {
			t.Logf("recipe %s: %v", r.name, r.faults)
			runNemesis(t, 3, 1, r.duration, r.faults)
		})
	}
}
