// The least a Lambda extension on Node can do before Lambda may start the function: bind its
// loopback port with Node's http module, then register with the Extensions API. Nothing else:
// no configuration, no logger, no broker. bench/extension-start.ts starts it beside the layer's
// launcher, so that what the extension adds to Node's own start is set against this floor.
const http = require("node:http");

const [host, port] = (process.env.AWS_LAMBDA_RUNTIME_API ?? "").split(":");
const server = http.createServer((_request, response) => response.end());
server.listen({ host: "127.0.0.1", port: Number(process.env.BROKER_PORT) }, () => {
  const body = JSON.stringify({ events: ["INVOKE", "SHUTDOWN"] });
  const register = http.request(
    {
      host,
      port: Number(port),
      method: "POST",
      path: "/2020-01-01/extension/register",
      headers: {
        "Lambda-Extension-Name": "bare-extension.cjs",
        "Content-Type": "application/json",
        "Content-Length": Buffer.byteLength(body),
      },
    },
    (response) => {
      response.resume();
      response.on("end", () => process.exit(response.statusCode === 200 ? 0 : 1));
    },
  );
  register.on("error", () => process.exit(1));
  register.end(body);
});
