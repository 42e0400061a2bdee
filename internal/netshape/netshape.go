package netshape

// Link is the direction from one node to another.
type Link struct{ From, To uint64 }

// Isolate cuts id off from every other node of all, both ways.
func Isolate(id uint64, all []uint64) []Link {
	var cut []Link
	for _, o := range all {
		if o != id {
			cut = append(cut, Link{id, o}, Link{o, id})
		}
	}
	return cut
}

// Split cuts every link between nodes on different sides.
func Split(sides ...[]uint64) []Link {
	var cut []Link
	for i, a := range sides {
		for j, b := range sides {
			if i == j {
				continue
			}
			for _, x := range a {
				for _, y := range b {
					cut = append(cut, Link{x, y})
				}
			}
		}
	}
	return cut
}

// Ring leaves each node of ring linked only to its two neighbours in that
// order (the last one's neighbour is the first).
func Ring(ring []uint64) []Link {
	var cut []Link
	for i, x := range ring {
		for j, y := range ring {
			d := (j - i + len(ring)) % len(ring)
			if d > 1 && d < len(ring)-1 {
				cut = append(cut, Link{x, y})
			}
		}
	}
	return cut
}

// Bridge splits a from b, except node bridge, which stays linked to both.
func Bridge(a, b []uint64, bridge uint64) []Link {
	var cut []Link
	for _, x := range a {
		for _, y := range b {
			if x != bridge && y != bridge {
				cut = append(cut, Link{x, y}, Link{y, x})
			}
		}
	}
	return cut
}
