package example;

import com.google.api.client.http.ByteArrayContent;
import com.google.api.client.http.GenericUrl;
import com.google.api.client.http.HttpRequestFactory;
import com.google.api.client.http.HttpResponseException;
import com.google.gson.JsonParser;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.ZoneOffset;
import java.time.format.DateTimeFormatter;

/**
 * The demo's greeting: hello_&lt;timestamp&gt;.txt holding the request id, written to a Cloud
 * Storage bucket through the JSON API. The request factory adds the Bearer token: this class
 * holds no credential.
 */
public final class Greeting {
  private static final DateTimeFormatter COMPACT =
      DateTimeFormatter.ofPattern("yyyyMMdd'T'HHmmssSSS'Z'").withZone(ZoneOffset.UTC);

  /** GOOGLE_BUCKET (required) and GOOGLE_STORAGE_ENDPOINT (optional), as client-demo/settings.ts reads them. */
  public record Settings(String bucket, String storageEndpoint) {
    public static Settings fromEnvironment() {
      String bucket = System.getenv().getOrDefault("GOOGLE_BUCKET", "").trim();
      if (bucket.isEmpty()) {
        throw new IllegalArgumentException("GOOGLE_BUCKET is required; for example GOOGLE_BUCKET=my-demo-bucket");
      }
      String endpoint = System.getenv().getOrDefault("GOOGLE_STORAGE_ENDPOINT", "").trim();
      return new Settings(bucket, (endpoint.isEmpty() ? "https://storage.googleapis.com" : endpoint).replaceAll("/+$", ""));
    }
  }

  /** A Google API's refusal, with Google's own message. */
  public static final class GoogleApiException extends IOException {
    private static final long serialVersionUID = 1L;

    public GoogleApiException(String message) {
      super(message);
    }
  }

  private Greeting() {}

  /** Writes the greeting of {@code requestId} and returns its gs:// name. */
  public static String write(HttpRequestFactory requests, Settings settings, String requestId, Instant now)
      throws IOException {
    String name = "hello_" + COMPACT.format(now) + ".txt";
    // Bucket names hold only a-z, 0-9, '-', '_' and '.': nothing to escape in the path.
    GenericUrl upload = new GenericUrl(settings.storageEndpoint() + "/upload/storage/v1/b/" + settings.bucket() + "/o");
    upload.set("uploadType", "media");
    upload.set("name", name);
    byte[] body = ("Hello from request " + requestId + "\n").getBytes(StandardCharsets.UTF_8);
    try {
      requests.buildPostRequest(upload, new ByteArrayContent("text/plain", body)).execute().disconnect();
    } catch (HttpResponseException refused) {
      throw new GoogleApiException(googleMessage(refused));
    }
    return "gs://" + settings.bucket() + "/" + name;
  }

  /** The message of Google's error body ({"error": {"message": …}}), or the HTTP status. */
  private static String googleMessage(HttpResponseException refused) {
    try {
      return JsonParser.parseString(refused.getContent()).getAsJsonObject().getAsJsonObject("error").get("message").getAsString();
    } catch (RuntimeException notGoogleJson) {
      return "Cloud Storage answered HTTP " + refused.getStatusCode();
    }
  }
}
