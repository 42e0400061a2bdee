package cli

import (
	"fmt"
	"strings"
)

// BrokerError joins an error code from a broker response with the free-text
// message the broker may send beside it, such as the reason an INVALID_CONFIG
// was refused. The code stays in the chain for errors.Is; the message is
// added only when it says something the code's description does not.
func BrokerError(err error, message string) error {
	message = strings.TrimSpace(message)
	if err == nil || message == "" || strings.Contains(err.Error(), message) {
		return err
	}
	return fmt.Errorf("%w (%s)", err, message)
}
