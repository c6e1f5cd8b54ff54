package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// settings are read from the environment, with the names client-demo/settings.ts reads:
//
//	GOOGLE_BUCKET             required: the bucket the greeting is written to
//	GOOGLE_STORAGE_ENDPOINT   optional: another base URL for the Cloud Storage JSON API
//	                          (Private Service Connect, an emulator)
type settings struct {
	bucket          string
	storageEndpoint string
}

func readSettings() (settings, error) {
	bucket := strings.TrimSpace(os.Getenv("GOOGLE_BUCKET"))
	if bucket == "" {
		return settings{}, fmt.Errorf("GOOGLE_BUCKET is required; for example GOOGLE_BUCKET=my-demo-bucket")
	}
	endpoint := strings.TrimSpace(os.Getenv("GOOGLE_STORAGE_ENDPOINT"))
	if endpoint == "" {
		endpoint = "https://storage.googleapis.com"
	}
	return settings{bucket: bucket, storageEndpoint: strings.TrimRight(endpoint, "/")}, nil
}

// googleAPIError is a Google API's refusal, carrying Google's own message.
type googleAPIError struct {
	Code    int
	Message string
}

func (e *googleAPIError) Error() string { return e.Message }

// writeGreeting uploads hello_<timestamp>.txt holding the request id, as the demo does, and
// returns its gs:// name. The client adds the Bearer token: it holds no credential itself.
func writeGreeting(ctx context.Context, client *http.Client, s settings, requestID string, now time.Time) (string, error) {
	utc := now.UTC()
	name := fmt.Sprintf("hello_%s%03dZ.txt", utc.Format("20060102T150405"), utc.Nanosecond()/int(time.Millisecond))
	upload := fmt.Sprintf("%s/upload/storage/v1/b/%s/o?%s", s.storageEndpoint, url.PathEscape(s.bucket),
		url.Values{"uploadType": {"media"}, "name": {name}}.Encode())
	body := []byte("Hello from request " + requestID + "\n")
	request, err := http.NewRequestWithContext(ctx, http.MethodPost, upload, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	request.Header.Set("Content-Type", "text/plain")
	response, err := client.Do(request)
	if err != nil {
		return "", err
	}
	defer response.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(response.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if response.StatusCode >= 300 {
		var refusal struct {
			Error googleAPIError `json:"error"`
		}
		if json.Unmarshal(answer, &refusal) != nil || refusal.Error.Message == "" {
			return "", fmt.Errorf("Cloud Storage answered HTTP %d", response.StatusCode)
		}
		return "", &refusal.Error
	}
	return "gs://" + s.bucket + "/" + name, nil
}
