// The demo's token path in Go: an HTTP client that takes its Google tokens from the token broker
// through google.ComputeTokenSource (the broker answers as a GCE metadata server at
// GCE_METADATA_HOST), then one greeting written to Cloud Storage with it. No credentials code.
//
// Run once from a shell: greeting <request-id> prints {"object":"gs://…"}. README.md shows the
// same as a Lambda handler (aws-lambda-go).
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: greeting <request-id>")
		os.Exit(2)
	}
	s, err := readSettings()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The token source caches the token and asks the broker again shortly before it expires.
	client := oauth2.NewClient(ctx, google.ComputeTokenSource(""))
	object, err := writeGreeting(ctx, client, s, os.Args[1], time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, _ := json.Marshal(map[string]string{"object": object})
	fmt.Println(string(out))
}
