package topicrules

import (
	"errors"
	"fmt"
)

// ErrInvalidTopic is wrapped by every topic name validation error.
var ErrInvalidTopic = errors.New("invalid topic name")

// nameBytesMax is Kafka's limit: a partition directory name must fit a
// file name with room for the partition suffix.
const nameBytesMax = 249

// ValidateName applies Kafka's topic name rules.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrInvalidTopic)
	case name == "." || name == "..":
		return fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	case len(name) > nameBytesMax:
		return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidTopic, len(name), nameBytesMax)
	}
	for i := 0; i < len(name); i++ {
		b := name[i]
		ok := b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-'
		if !ok {
			return fmt.Errorf("%w: %q has %q; use ASCII letters, digits, '.', '_' and '-'", ErrInvalidTopic, name, b)
		}
	}
	return nil
}
