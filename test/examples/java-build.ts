import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Debian's jars the Java example compiles and runs against (libgoogle-auth-java and its Depends). */
const jars = [
  "google-auth-library-oauth2-http",
  "google-auth-library-credentials",
  "google-http-client",
  "google-http-client-jackson2",
  "jackson-core",
  "gson",
  "guava",
  "opencensus-api",
  "opencensus-contrib-http-util",
  "grpc-context",
].map((name) => `/usr/share/java/${name}.jar`);

/** What of the JDK and Debian's jars this machine lacks, as one line; undefined when all is there. */
export function missingJava(): string | undefined {
  if (!existsSync("/usr/bin/javac")) return "javac is not installed (openjdk-17-jdk-headless)";
  const missing = jars.filter((jar) => !existsSync(jar));
  return missing.length === 0 ? undefined : `${missing.join(", ")} not installed (libgoogle-auth-java)`;
}

/**
 * Compiles the Java sources under `sourceRoot` with javac against Debian's jars (Maven Central is
 * out of reach) into a fresh folder and returns the classpath that runs them; a failed
 * compilation throws with javac's error.
 */
export function buildJavaProgram(sourceRoot: string): string {
  const out = mkdtempSync(join(tmpdir(), "java-build-"));
  const sources = readdirSync(sourceRoot, { recursive: true, encoding: "utf8" })
    .filter((file) => file.endsWith(".java"))
    .map((file) => join(sourceRoot, file));
  const classpath = jars.join(":");
  const build = spawnSync(
    "/usr/bin/javac",
    ["-encoding", "UTF-8", "-Xlint:all", "-Werror", "-d", out, "-cp", classpath, ...sources],
    { env: { PATH: "/usr/bin:/bin", HOME: out }, encoding: "utf8", timeout: 120_000 },
  );
  if (build.status !== 0) throw new Error(`javac failed: ${build.stderr.trim()}`);
  return `${out}:${classpath}`;
}
