package auth

import (
	"testing"

	"github.com/creditledger/creditledger/apikey"
)

func TestMayIngestFor(t *testing.T) {
	for _, tc := range []struct {
		caller   Caller
		customer string
		want     bool
	}{
		{Caller{Scope: apikey.Admin}, "cus_1", true},
		{Caller{Scope: apikey.Ingest}, "cus_1", true},
		{Caller{Scope: apikey.Ingest}, "", true},
		{Caller{Scope: apikey.Ingest, CustomerID: "cus_1"}, "cus_1", true},
		{Caller{Scope: apikey.Ingest, CustomerID: "cus_1"}, "cus_2", false},
		{Caller{Scope: apikey.Ingest, CustomerID: "cus_1"}, "", false},
		{Caller{Scope: apikey.Ingest, CustomerID: "cus_1"}, "CUS_1", false},
		{Caller{Scope: apikey.Read}, "cus_1", false},
		{Caller{Scope: apikey.Portal, CustomerID: "cus_1"}, "cus_1", false},
		{Caller{}, "cus_1", false},
	} {
		if got := tc.caller.MayIngestFor(tc.customer); got != tc.want {
			t.Errorf("%+v.MayIngestFor(%q) = %v, want %v", tc.caller, tc.customer, got, tc.want)
		}
	}
}

func TestPermits(t *testing.T) {
	for _, tc := range []struct {
		scope   apikey.Scope
		method  string
		allowed []apikey.Scope
		want    bool
	}{
		{apikey.Admin, "DELETE", nil, true},
		{apikey.Read, "GET", nil, false},
		{apikey.Read, "GET", []apikey.Scope{apikey.Read}, true},
		{apikey.Read, "HEAD", []apikey.Scope{apikey.Read}, true},
		{apikey.Read, "POST", []apikey.Scope{apikey.Read}, false},
		{apikey.Portal, "GET", []apikey.Scope{apikey.Read}, false},
		{apikey.Portal, "GET", []apikey.Scope{apikey.Read, apikey.Portal}, true},
		{apikey.Portal, "PUT", []apikey.Scope{apikey.Portal}, false},
		{apikey.Ingest, "POST", []apikey.Scope{apikey.Ingest}, true},
		{apikey.Ingest, "GET", []apikey.Scope{apikey.Read, apikey.Portal}, false},
	} {
		if got := Permits(tc.scope, tc.method, tc.allowed); got != tc.want {
			t.Errorf("Permits(%s, %s, %v) = %v, want %v", tc.scope, tc.method, tc.allowed, got, tc.want)
		}
	}
}
