import { describe, expect, it } from "vitest";
import { gceRoutes, type RouteSpec, RouteTable } from "../broker/metadata-routes.ts";

const base: RouteSpec[] = [
  { id: "root", path: "/", kind: "listing" },
  { id: "things", path: "/things/", kind: "recursive-directory" },
  { id: "thing", path: "/things/{name}/", kind: "recursive-directory" },
  { id: "thing_colour", path: "/things/{name}/colour", kind: "value" },
  { id: "thing_key", path: "/things/{name}/key", kind: "token" },
];

function tableWith(...extra: RouteSpec[]): RouteTable<RouteSpec> {
  return new RouteTable([...base, ...extra]);
}

describe("RouteTable construction", () => {
  it("accepts a consistent table", () => {
    expect(tableWith().routes.map((route) => route.id)).toEqual([
      "root",
      "things",
      "thing",
      "thing_colour",
      "thing_key",
    ]);
  });

  it.each<[string, RouteSpec, string]>([
    [
      "a duplicate id",
      { id: "thing_colour", path: "/things/{name}/size", kind: "value" },
      'Route id "thing_colour" is used twice in the metadata route table',
    ],
    [
      "a duplicate path",
      { id: "colour_again", path: "/things/{name}/colour", kind: "value" },
      'Route "colour_again" (/things/{name}/colour) conflicts with the route table: the same path as route "thing_colour" (/things/{name}/colour)',
    ],
    [
      "a second parameter name at the same place",
      { id: "other", path: "/things/{id}/size", kind: "value" },
      'Route "other" (/things/{id}/size) conflicts with the route table: parameter {id} next to {name}',
    ],
    [
      "a fixed segment next to a parameter",
      { id: "special", path: "/things/special", kind: "value" },
      'Route "special" (/things/special) conflicts with the route table: a fixed segment next to a parameter',
    ],
    [
      "a route with no directory above it",
      { id: "orphan", path: "/elsewhere/value", kind: "value" },
      'Route "/elsewhere/value" has no directory route "/elsewhere/" above it to list it',
    ],
    [
      "a value below a value",
      { id: "shade", path: "/things/{name}/colour/shade", kind: "value" },
      'Route "/things/{name}/colour/shade" has no directory route "/things/{name}/colour/" above it to list it',
    ],
    [
      "a directory without its trailing slash",
      { id: "dir", path: "/things/{name}/parts", kind: "recursive-directory" },
      'Route "/things/{name}/parts": directory paths, and only they, end with "/"',
    ],
    [
      "a value with a trailing slash",
      { id: "val", path: "/things/{name}/size/", kind: "value" },
      'Route "/things/{name}/size/": directory paths, and only they, end with "/"',
    ],
    [
      "a segment that is neither a name nor a parameter",
      { id: "odd", path: "/things/{name}/si ze", kind: "value" },
      'Route "/things/{name}/si ze": segment "si ze" is neither a name nor a {parameter}',
    ],
  ])("throws on %s", (_what, extra, message) => {
    expect(() => tableWith(extra)).toThrow(new Error(message));
  });

  it("a parameter next to fixed segments conflicts too", () => {
    expect(
      () =>
        new RouteTable([
          { id: "root", path: "/", kind: "listing" },
          { id: "fixed", path: "/fixed", kind: "value" },
          { id: "param", path: "/{any}", kind: "value" },
        ]),
    ).toThrow(
      new Error('Route "param" (/{any}) conflicts with the route table: a parameter next to fixed segments'),
    );
  });
});

describe("RouteTable.match", () => {
  const table = tableWith();

  it("matches directories with or without the trailing slash, values only without", () => {
    expect(table.match("/things")?.route.id).toBe("things");
    expect(table.match("/things/")?.route.id).toBe("things");
    expect(table.match("/things/a/colour")?.route.id).toBe("thing_colour");
    expect(table.match("/things/a/colour/")).toBeUndefined();
    expect(table.match("/")?.route.id).toBe("root");
  });

  it("decodes parameters and refuses empty segments", () => {
    expect(table.match("/things/sa%40example.com/key")).toEqual({
      route: base[4],
      params: { name: "sa@example.com" },
    });
    expect(table.match("/things//colour")).toBeUndefined();
    expect(table.match("things/")).toBeUndefined();
  });

  it("throws URIError on a malformed percent-encoding", () => {
    expect(() => table.match("/things/%E0%A4%A/colour")).toThrow(URIError);
  });
});

describe("RouteTable.entries", () => {
  it("lists fixed children in table order and expands parameters to their values", () => {
    const table = tableWith();
    const things = base[1] as RouteSpec;
    const thing = base[2] as RouteSpec;
    const names = (route: RouteSpec, params = {}) =>
      table.entries(route, params, () => ["a", "b"]).map(({ name, isParameter }) => ({ name, isParameter }));
    expect(names(things)).toEqual([
      { name: "a/", isParameter: true },
      { name: "b/", isParameter: true },
    ]);
    expect(names(thing, { name: "a" })).toEqual([
      { name: "colour", isParameter: false },
      { name: "key", isParameter: false },
    ]);
  });
});

describe("the GCE route table", () => {
  it("has a unique, label-safe id for every route", () => {
    const ids = gceRoutes.routes.map((route) => route.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[a-z][a-z0-9_]*$/);
  });
});
