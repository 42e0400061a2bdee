package netshape

import (
	"slices"
	"testing"
)

func TestShapes(t *testing.T) {
	all := []uint64{1, 2, 3, 4, 5}
	for _, tc := range []struct {
		name string
		cut  []Link
		// linked lists the pairs (both ways) that stay linked among all.
		linked [][2]uint64
	}{
		{"isolate", Isolate(3, all), [][2]uint64{{1, 2}, {1, 4}, {1, 5}, {2, 4}, {2, 5}, {4, 5}}},
		{"split", Split([]uint64{1, 2}, []uint64{3, 4, 5}), [][2]uint64{{1, 2}, {3, 4}, {3, 5}, {4, 5}}},
		{"ring", Ring(all), [][2]uint64{{1, 2}, {2, 3}, {3, 4}, {4, 5}, {1, 5}}},
		{"bridge", Bridge([]uint64{1, 2, 3}, []uint64{3, 4, 5}, 3), [][2]uint64{{1, 2}, {1, 3}, {2, 3}, {3, 4}, {3, 5}, {4, 5}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, x := range all {
				for _, y := range all {
					if x >= y {
						continue
					}
					want := slices.Contains(tc.linked, [2]uint64{x, y})
					for _, l := range []Link{{x, y}, {y, x}} {
						if got := !slices.Contains(tc.cut, l); got != want {
							t.Errorf("%d→%d linked %v, want %v (cut %v)", l.From, l.To, got, want, tc.cut)
						}
					}
				}
			}
		})
	}
}
