package sasl

import (
	"math/rand/v2"
	"testing"
)

// FuzzTokens feeds the client tokens a network peer controls to the
// decoders and to a whole SCRAM conversation: none may panic, and a
// conversation never succeeds without the password.
func FuzzTokens(f *testing.F) {
	f.Add([]byte("n,,n=alice,r=abc"), []byte("c=biws,r=abc,p=AAEC"))
	f.Add([]byte("y,a=alice,n=al=2Cice,r=x,ext=1"), []byte("c=eSxhPWFsaWNlLA==,r=x,e=1,p="))
	f.Add([]byte("\x00alice\x00pw"), []byte(""))
	f.Add([]byte("n,a=svc,\x01auth=Bearer eyJ.x.y\x01host=h\x01\x01"), []byte(""))
	salt := []byte("0123456789abcdef")
	salted, _ := SaltPassword(ScramSHA256, "pw", salt, IterationsMin)
	cred, _ := NewCredential(ScramSHA256, salt, salted, IterationsMin)
	f.Fuzz(func(t *testing.T, first, final []byte) {
		_, _, _, _ = ParsePlain(first)
		_, _, _ = ParseOAuthBearer(first)
		_, _ = parseClientFirst(string(first))
		_, _ = parseClientFinal(string(final))
		s, _ := NewServer(users{{"alice", ScramSHA256}: cred}, rand.NewChaCha8([32]byte{}))
		conv, _ := s.Start(ScramSHA256)
		if _, _, err := conv.Step(first); err != nil {
			return
		}
		if _, done, err := conv.Step(final); done || err == nil {
			t.Fatalf("a guessed client-final %q succeeded", final)
		}
	})
}
