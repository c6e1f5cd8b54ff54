// The Go SDK's metadata client (cloud.google.com/go/compute/metadata), configured only through
// GCE_METADATA_HOST as on a workload: detection, project, account and token. Prints JSON on one line.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"cloud.google.com/go/compute/metadata"
)

func main() {
	results := map[string]interface{}{"onGCE": metadata.OnGCE()}
	if project, err := metadata.ProjectID(); err == nil {
		results["project"] = project
	} else {
		results["projectError"] = err.Error()
	}
	if email, err := metadata.Email("default"); err == nil {
		results["email"] = email
	} else {
		results["emailError"] = err.Error()
	}
	if body, err := metadata.Get("instance/service-accounts/default/token"); err == nil {
		var token struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
			TokenType   string `json:"token_type"`
		}
		if err := json.Unmarshal([]byte(body), &token); err != nil {
			results["tokenError"] = err.Error()
		} else {
			results["token"] = token.AccessToken
			results["tokenType"] = token.TokenType
			results["expiresIn"] = token.ExpiresIn
		}
	} else {
		results["tokenError"] = err.Error()
	}
	out, _ := json.Marshal(results)
	fmt.Println(string(out))
	os.Exit(0)
}
