import { decodeJwt } from "jose";
import { describe, expect, it } from "vitest";
import { demoPrincipal } from "./cloud/cloud.ts";
import { accessTokenOf, getToken } from "./support/broker-probes.ts";
import { captureLog } from "./support/capture-log.ts";
import { hermeticBrokers } from "./support/hermetic-brokers.ts";

/*
 * The audit trail: each AWS JWT the chain mints is logged once, at info, by its jti and the claims
 * it carried, never the token, so that CloudTrail's GetWebIdentityToken event and Google's audit
 * log can be joined to it. BROKER_TOKEN_TAGS reach STS as Tags and come back as request_tags.
 */

const suite = hermeticBrokers();
const tags = { service: "orders", team: "data" };

interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly awsJwt?: { readonly jti: string; readonly claims: Record<string, unknown> };
}

function lines(text: string): LogLine[] {
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as LogLine);
}

describe("the audit line of each AWS JWT", () => {
  it("logs the jti and exactly the claims of the one JWT minted for three scope sets, and no token", async () => {
    const { cloud, scan } = suite;
    const role = demoPrincipal(cloud.world).roleArn;
    cloud.awsSts.allowTagging(role, {
      tagKeys: Object.keys(tags),
      requestTags: { service: [tags.service], team: [tags.team] },
    });
    const log = captureLog();
    const broker = await suite.start({
      impersonate: false,
      env: { BROKER_TOKEN_TAGS: "service=orders, team=data" },
      log: log.stream,
    });
    for (const scopes of ["", "?scopes=https://www.googleapis.com/auth/bigquery", "?scopes=openid"]) {
      accessTokenOf(await getToken(broker, scan, scopes));
    }
    await broker.close(200);

    const [issued, ...more] = cloud.awsSts.issued();
    expect(more).toEqual([]);
    expect(cloud.awsSts.calls.get("GetWebIdentityToken")).toBe(1);
    expect(issued?.requestTags).toEqual(tags);
    const claims = decodeJwt(issued?.token ?? "");
    expect(claims["https://sts.amazonaws.com/"]).toMatchObject({ request_tags: tags });
    const audited = lines(log.text()).filter((line) => line.awsJwt !== undefined);
    expect(audited).toEqual([
      {
        ...audited[0],
        level: 30,
        msg: `AWS JWT ${claims.jti} minted for ${role}`,
        awsJwt: { jti: claims.jti, claims },
      },
    ]);
    expect(typeof claims.jti).toBe("string");

    const text = log.text();
    scan.capture("broker log with the audit line", text);
    expect(text).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/);
    expect(text).not.toMatch(/ya29\.[\w-]+/);
  });

  it("is refused by STS without sts:TagGetWebIdentityToken, and the 503 names the tag statement", async () => {
    const { cloud, scan } = suite;
    const minted = cloud.awsSts.issued().length;
    const broker = await suite.start({ impersonate: false, env: { BROKER_TOKEN_TAGS: "service=orders" } });
    const answer = await getToken(broker, scan);
    expect(answer.status).toBe(503);
    expect(answer.body).toBe(
      `the AWS role may not call sts:GetWebIdentityToken for this audience with these tags; allow it with condition ForAllValues:StringEquals sts:IdentityTokenAudience = ${cloud.brokerEnv({ impersonate: false }).BROKER_AUDIENCE}, and sts:TagGetWebIdentityToken for the tags of BROKER_TOKEN_TAGS (aws:TagKeys service)`,
    );
    expect(cloud.awsSts.issued()).toHaveLength(minted);
    expect(cloud.awsSts.calls.get("GetWebIdentityToken")).toBeGreaterThan(0);
  });
});
