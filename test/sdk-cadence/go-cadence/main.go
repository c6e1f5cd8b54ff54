// A workload on Go's oauth2 with the library's own token cache: every tick it asks two
// google.ComputeTokenSource sources (the default scopes, and CADENCE_SCOPES) for a token, as each
// API call would; a source goes to the metadata server only when its copy has 10 s or less left.
// Each of those fetches is recorded: how long it took and how long the token it brought had left.
// Prints {"event":"first"} once both have had a token (asking every tick until then), then runs
// CADENCE_RUN_MS more and prints {"event":"done",...} with the fetches and errors of that run.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

type fetch struct {
	Key    string  `json:"key"`
	Ms     float64 `json:"ms"`
	LeftMs float64 `json:"leftMs"`
}

type source struct {
	key    string
	tokens oauth2.TokenSource
	last   *oauth2.Token
}

func millis(name string) time.Duration {
	value, err := strconv.Atoi(os.Getenv(name))
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s must be a number of milliseconds\n", name)
		os.Exit(2)
	}
	return time.Duration(value) * time.Millisecond
}

func main() {
	run := millis("CADENCE_RUN_MS")
	tick := millis("CADENCE_TICK_MS")
	scopes := strings.Split(os.Getenv("CADENCE_SCOPES"), ",")
	sources := []*source{
		{key: "access default", tokens: google.ComputeTokenSource("")},
		{key: "access " + strings.Join(scopes, " "), tokens: google.ComputeTokenSource("", scopes...)},
	}
	fetches := []fetch{}
	errors := 0
	ask := func() bool {
		ok := true
		for _, s := range sources {
			started := time.Now()
			token, err := s.tokens.Token()
			if err != nil {
				errors++
				ok = false
				fmt.Fprintln(os.Stderr, err)
				continue
			}
			// The reusing source hands back the same token until it fetches a new one.
			if token != s.last {
				fetches = append(fetches, fetch{
					Key:    s.key,
					Ms:     float64(time.Since(started).Microseconds()) / 1000,
					LeftMs: float64(time.Until(token.Expiry).Milliseconds()),
				})
				s.last = token
			}
		}
		return ok
	}
	for !ask() {
		time.Sleep(tick)
	}
	fetches = fetches[:0]
	errors = 0
	fmt.Printf("{\"event\":\"first\",\"atMs\":%d}\n", time.Now().UnixMilli())
	end := time.Now().Add(run)
	for time.Now().Before(end) {
		time.Sleep(tick)
		ask()
	}
	out, _ := json.Marshal(map[string]interface{}{"event": "done", "fetches": fetches, "errors": errors})
	fmt.Println(string(out))
}
