package kafka

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// alterUserRequest upserts a SCRAM-SHA-256 credential for user.
func alterUserRequest(user string) *kmsg.AlterUserSCRAMCredentialsRequest {
	r := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
	u := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
	u.Name, u.Mechanism, u.Iterations = user, 1, 4096
	u.Salt, u.SaltedPassword = []byte("0123456789abcdef"), make([]byte, 32)
	r.Upsertions = append(r.Upsertions, u)
	return r
}

// TestManagingUsersNeedsClusterRights: with the authorizer on, a user
// without Alter on the cluster cannot create users nor, without Describe,
// list them; a super user can, and so can the user once granted Alter
// (which implies Describe).
func TestManagingUsersNeedsClusterRights(t *testing.T) {
	ts := authServer(t, false)
	ctx := testContext(t)
	alter := func(as, user string) int16 {
		t.Helper()
		resp, err := ts.as(t, as).Broker(0).Request(ctx, alterUserRequest(user))
		if err != nil {
			t.Fatal(err)
		}
		results := resp.(*kmsg.AlterUserSCRAMCredentialsResponse).Results
		if len(results) != 1 || results[0].User != user {
			t.Fatalf("alter %s as %s: results %+v", user, as, results)
		}
		return results[0].ErrorCode
	}
	describe := func(as string) (int16, int) {
		t.Helper()
		resp, err := ts.as(t, as).Broker(0).Request(ctx, kmsg.NewPtrDescribeUserSCRAMCredentialsRequest())
		if err != nil {
			t.Fatal(err)
		}
		r := resp.(*kmsg.DescribeUserSCRAMCredentialsResponse)
		return r.ErrorCode, len(r.Results)
	}
	if code := alter("bob", "mallory"); code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("bob creating a user without Alter on the cluster: %v, want CLUSTER_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	if code, _ := describe("bob"); code != kerr.ClusterAuthorizationFailed.Code {
		t.Fatalf("bob listing users without Describe on the cluster: %v, want CLUSTER_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	if code := alter("admin", "carol"); code != 0 {
		t.Fatalf("admin (a super user) creating a user: %v", kerr.ErrorForCode(code))
	}
	grant(t, ts, kadm.NewACLs().Clusters().Allow("User:bob").Operations(kadm.OpAlter))
	if code := alter("bob", "dave"); code != 0 {
		t.Fatalf("bob creating a user with Alter on the cluster: %v", kerr.ErrorForCode(code))
	}
	if code, n := describe("bob"); code != 0 || n != 2 {
		t.Fatalf("bob listing users with Alter on the cluster: %v, %d users, want carol and dave", kerr.ErrorForCode(code), n)
	}
}
