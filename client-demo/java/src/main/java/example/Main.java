package example;

import com.google.api.client.http.HttpRequestFactory;
import com.google.api.client.http.javanet.NetHttpTransport;
import com.google.auth.http.HttpCredentialsAdapter;
import com.google.auth.oauth2.GoogleCredentials;
import com.google.gson.JsonObject;
import java.io.IOException;
import java.time.Instant;

/**
 * The demo's token path in Java: Application Default Credentials find the token broker as a GCE
 * metadata server (GCE_METADATA_HOST) and return ComputeEngineCredentials; an HTTP request
 * factory with those credentials writes one greeting to Cloud Storage. No credentials code.
 *
 * <p>Run once from a shell: {@code java example.Main <request-id>} prints
 * {"credentials":"…","object":"gs://…"}. README.md shows the same as a Lambda handler.
 */
public final class Main {
  private Main() {}

  public static void main(String[] args) throws IOException {
    if (args.length != 1) {
      System.err.println("usage: java example.Main <request-id>");
      System.exit(2);
    }
    Greeting.Settings settings = Greeting.Settings.fromEnvironment();
    // The credentials cache the token and ask the broker again shortly before it expires.
    GoogleCredentials credentials = GoogleCredentials.getApplicationDefault();
    HttpRequestFactory requests = new NetHttpTransport().createRequestFactory(new HttpCredentialsAdapter(credentials));
    try {
      String object = Greeting.write(requests, settings, args[0], Instant.now());
      JsonObject out = new JsonObject();
      out.addProperty("credentials", credentials.getClass().getName());
      out.addProperty("object", object);
      System.out.println(out);
    } catch (Greeting.GoogleApiException refused) {
      System.err.println(refused.getMessage());
      System.exit(1);
    }
  }
}
