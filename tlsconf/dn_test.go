package tlsconf

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"

	"github.com/cairnlog/cairn/internal/testcerts"
)

func TestSubjectDN(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "dn")
	for _, tc := range []struct {
		subject pkix.Name
		want    string
	}{
		{pkix.Name{CommonName: "alice"}, "CN=alice"},
		// RFC 2253 order: the most specific attribute (the last encoded) first.
		{pkix.Name{CommonName: "svc", OrganizationalUnit: []string{"ServiceUsers"}, Organization: []string{"Example"}, Locality: []string{"Paris"}, Province: []string{"IDF"}, Country: []string{"FR"}},
			"CN=svc,OU=ServiceUsers,O=Example,L=Paris,ST=IDF,C=FR"},
		{pkix.Name{CommonName: `a,b+c"d\e<f>g;h`}, `CN=a\,b\+c\"d\\e\<f\>g\;h`},
		{pkix.Name{CommonName: "#lead and trail "}, `CN=\#lead and trail\ `},
		// An attribute without a keyword is its OID and hex DER value.
		{pkix.Name{CommonName: "x", ExtraNames: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}, Value: "x@example.com"}}},
			"1.2.840.113549.1.9.1=#0c0d78406578616d706c652e636f6d,CN=x"},
	} {
		leaf := ca.Issue(t, dir, "leaf", testcerts.Options{Subject: tc.subject})
		got, err := SubjectDN(leaf.Cert)
		if err != nil || got != tc.want {
			t.Errorf("SubjectDN(%v) = %q, %v; want %q", tc.subject, got, err, tc.want)
		}
	}
}
