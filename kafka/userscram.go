package kafka

// DescribeUserScramCredentials v0 and AlterUserScramCredentials v0: the
// users of SASL/SCRAM (and PLAIN, checked against the same credentials),
// kept in the metadata group. Mechanism codes are Kafka's: 1 SCRAM-SHA-256,
// 2 SCRAM-SHA-512.
//
// Describe with no users lists every user; a named user without credentials
// answers RESOURCE_NOT_FOUND, a name given twice DUPLICATE_RESOURCE. Alter
// answers one result per user named: an unknown mechanism
// UNSUPPORTED_SASL_MECHANISM, iterations outside 4096-16384 or an empty
// name or salt UNACCEPTABLE_CREDENTIAL, a deletion of a missing credential
// RESOURCE_NOT_FOUND, a user's mechanism named twice DUPLICATE_RESOURCE.
// Each change is its own metadata command, applied in request order
// (deletions first); a user's first failure stops that user's later changes.
// The reply waits for the metadata group (off the handler, in request order).
//
// Authorization: Describe on the cluster to describe users (else
// CLUSTER_AUTHORIZATION_FAILED for the request), Alter on the cluster to
// change them (else CLUSTER_AUTHORIZATION_FAILED for each user named), as
// Kafka checks them.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/cluster"
)

func init() {
	register(kmsg.DescribeUserSCRAMCredentials.Int16(), 0, 0, handleDescribeUserScramCredentials)
	register(kmsg.AlterUserSCRAMCredentials.Int16(), 0, 0, handleAlterUserScramCredentials)
}

// scramMechanisms maps Kafka's ScramMechanism codes to names.
var scramMechanisms = map[int8]string{1: sasl.ScramSHA256, 2: sasl.ScramSHA512}

func scramMechanismCode(name string) int8 {
	for code, n := range scramMechanisms {
		if n == name {
			return code
		}
	}
	return 0
}

func handleDescribeUserScramCredentials(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.DescribeUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeUserSCRAMCredentialsResponse)
	if !c.allowedCluster(acl.OpDescribe) {
		resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
		return reply{resp: resp}
	}
	users := map[string]cluster.UserInfo{}
	all := s.cluster.Users()
	for _, u := range all {
		users[u.Name] = u
	}
	result := func(u cluster.UserInfo) kmsg.DescribeUserSCRAMCredentialsResponseResult {
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = u.Name
		for _, c := range u.Credentials {
			info := kmsg.NewDescribeUserSCRAMCredentialsResponseResultCredentialInfo()
			info.Mechanism, info.Iterations = scramMechanismCode(c.Mechanism), c.Iterations
			res.CredentialInfos = append(res.CredentialInfos, info)
		}
		return res
	}
	if len(req.Users) == 0 {
		for _, u := range all {
			resp.Results = append(resp.Results, result(u))
		}
		return reply{resp: resp}
	}
	names := make([]string, len(req.Users))
	for i, u := range req.Users {
		names[i] = u.Name
	}
	dup := duplicates(names)
	for _, name := range names {
		res := kmsg.NewDescribeUserSCRAMCredentialsResponseResult()
		res.User = name
		u, ok := users[name]
		switch {
		case dup[name]:
			setScramError(&res.ErrorCode, &res.ErrorMessage, refuse(kerr.DuplicateResource, "user %q named more than once", name))
		case !ok:
			setScramError(&res.ErrorCode, &res.ErrorMessage, refuse(kerr.ResourceNotFound, "user %q has no SCRAM credential", name))
		default:
			res = result(u)
		}
		resp.Results = append(resp.Results, res)
	}
	return reply{resp: resp}
}

func setScramError(code *int16, message **string, err error) {
	*code, *message = errorCode(err), errorMessage(err)
}

// scramChange is one deletion or upsertion of an Alter request.
type scramChange struct {
	user      string
	code      int8
	upsertion *kmsg.AlterUserSCRAMCredentialsRequestUpsertion
}

func handleAlterUserScramCredentials(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.AlterUserSCRAMCredentialsRequest)
	resp := req.ResponseKind().(*kmsg.AlterUserSCRAMCredentialsResponse)
	var changes []scramChange
	for _, d := range req.Deletions {
		changes = append(changes, scramChange{user: d.Name, code: d.Mechanism})
	}
	for i := range req.Upsertions {
		u := &req.Upsertions[i]
		changes = append(changes, scramChange{user: u.Name, code: u.Mechanism, upsertion: u})
	}
	if !c.allowedCluster(acl.OpAlter) {
		seen := map[string]bool{}
		for _, ch := range changes {
			if !seen[ch.user] {
				seen[ch.user] = true
				res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
				res.User, res.ErrorCode = ch.user, kerr.ClusterAuthorizationFailed.Code
				resp.Results = append(resp.Results, res)
			}
		}
		return reply{resp: resp}
	}
	return reply{wait: func() kmsg.Response {
		var order []string
		failed := map[string]error{}
		seen := map[scramChange]bool{}
		for _, ch := range changes {
			if _, named := failed[ch.user]; !named {
				order = append(order, ch.user)
				failed[ch.user] = nil
			}
			key := scramChange{user: ch.user, code: ch.code}
			if failed[ch.user] == nil && seen[key] {
				failed[ch.user] = refuse(kerr.DuplicateResource, "user %q: mechanism %d changed twice in one request", ch.user, ch.code)
			}
			seen[key] = true
		}
		for _, ch := range changes {
			if failed[ch.user] == nil {
				failed[ch.user] = s.applyScramChange(ch)
			}
		}
		for _, user := range order {
			res := kmsg.NewAlterUserSCRAMCredentialsResponseResult()
			res.User = user
			setScramError(&res.ErrorCode, &res.ErrorMessage, failed[user])
			resp.Results = append(resp.Results, res)
		}
		return resp
	}}
}

// applyScramChange proposes one change after Kafka's checks of it.
func (s *Server) applyScramChange(ch scramChange) error {
	mechanism, ok := scramMechanisms[ch.code]
	switch {
	case ch.user == "":
		return refuse(kerr.UnacceptableCredential, "user name must not be empty")
	case !ok:
		return refuse(kerr.UnsupportedSaslMechanism, "SCRAM mechanism %d: this server knows 1 (%s) and 2 (%s)", ch.code, sasl.ScramSHA256, sasl.ScramSHA512)
	case ch.upsertion == nil:
		if _, exists := s.cluster.ScramCredential(ch.user, mechanism); !exists {
			return refuse(kerr.ResourceNotFound, "user %q has no %s credential", ch.user, mechanism)
		}
		return s.cluster.DeleteScramCredential(ch.user, mechanism)
	}
	u := ch.upsertion
	if err := sasl.CheckCredentialShape(mechanism, u.Salt, u.Iterations); err != nil {
		return refuse(kerr.UnacceptableCredential, "user %q: %v", ch.user, err)
	}
	return s.cluster.UpsertScramCredential(ch.user, mechanism, u.Iterations, u.Salt, u.SaltedPassword)
}
