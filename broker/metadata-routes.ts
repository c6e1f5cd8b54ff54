/**
 * The GCE metadata paths as data: each path, its kind of answer and a stable id, which is also the
 * `route` metric label. A tree checked when built, so a duplicate or ambiguous route stops start-up.
 * Why by hand, and the path syntax: docs/metadata-server.md#the-route-table
 */

/**
 * `listing`: names its children only (the root, answered without `Metadata-Flavor`); `recursive-directory`:
 * names them, or with `?recursive=true` gives their values as JSON; `value`: a non-secret value;
 * `token`, `identity`: secrets, fetched per request and never part of a recursive answer.
 */
export type RouteKind = "listing" | "recursive-directory" | "value" | "token" | "identity";

export interface RouteSpec {
  readonly id: string;
  readonly path: string;
  readonly kind: RouteKind;
}

const directoryKinds: ReadonlySet<RouteKind> = new Set(["listing", "recursive-directory"]);

export function isDirectory(route: RouteSpec): boolean {
  return directoryKinds.has(route.kind);
}

const account = "/computeMetadata/v1/instance/service-accounts/{account}";

/** Every path the metadata listener serves; anything else is a 404. */
export const gceRouteSpecs = [
  { id: "root", path: "/", kind: "listing" },
  { id: "compute_metadata", path: "/computeMetadata/", kind: "recursive-directory" },
  { id: "v1", path: "/computeMetadata/v1/", kind: "recursive-directory" },
  { id: "instance", path: "/computeMetadata/v1/instance/", kind: "recursive-directory" },
  {
    id: "service_accounts",
    path: "/computeMetadata/v1/instance/service-accounts/",
    kind: "recursive-directory",
  },
  { id: "service_account", path: `${account}/`, kind: "recursive-directory" },
  { id: "service_account_aliases", path: `${account}/aliases`, kind: "value" },
  { id: "service_account_email", path: `${account}/email`, kind: "value" },
  { id: "service_account_identity", path: `${account}/identity`, kind: "identity" },
  { id: "service_account_scopes", path: `${account}/scopes`, kind: "value" },
  { id: "service_account_token", path: `${account}/token`, kind: "token" },
  { id: "project", path: "/computeMetadata/v1/project/", kind: "recursive-directory" },
  { id: "project_numeric_project_id", path: "/computeMetadata/v1/project/numeric-project-id", kind: "value" },
  { id: "project_project_id", path: "/computeMetadata/v1/project/project-id", kind: "value" },
  { id: "universe", path: "/computeMetadata/v1/universe/", kind: "recursive-directory" },
  { id: "universe_universe_domain", path: "/computeMetadata/v1/universe/universe-domain", kind: "value" },
] as const satisfies readonly RouteSpec[];

export type GceRoute = (typeof gceRouteSpecs)[number];
export type GceRouteId = GceRoute["id"];
export type ValueRouteId = Extract<GceRoute, { kind: "value" }>["id"];

/** A node of the path tree: one segment, with static children or a single parameter edge. */
interface RouteNode<R extends RouteSpec> {
  route?: R;
  readonly children: Map<string, RouteNode<R>>;
  param?: { readonly name: string; readonly node: RouteNode<R> };
}

export interface RouteMatch<R extends RouteSpec> {
  readonly route: R;
  /** Decoded parameter values by name, e.g. `{ account: "default" }`. */
  readonly params: Readonly<Record<string, string>>;
}

/** One child of a directory, as a listing names it and a recursive walk visits it. */
export interface DirectoryEntry<R extends RouteSpec> {
  /** The child's segment; a directory's ends with `/`. */
  readonly name: string;
  /** A value of a parameter edge (e.g. an account), rather than a fixed name. */
  readonly isParameter: boolean;
  readonly route: R;
  readonly params: Readonly<Record<string, string>>;
}

const staticSegment = /^[A-Za-z0-9._-]+$/;
const paramSegment = /^\{([a-z][A-Za-z0-9]*)\}$/;

export class RouteTable<R extends RouteSpec> {
  readonly routes: readonly R[];
  readonly #root: RouteNode<R> = { children: new Map() };

  /** Throws on a malformed path, a duplicate id or path, or two routes that could match one URL. */
  constructor(specs: readonly R[]) {
    this.routes = specs;
    const ids = new Set<string>();
    for (const spec of specs) {
      if (ids.has(spec.id))
        throw new Error(`Route id "${spec.id}" is used twice in the metadata route table`);
      ids.add(spec.id);
      this.#insert(spec);
    }
    for (const spec of specs) {
      const parent = parentPath(spec.path);
      if (parent === undefined) continue;
      const found = this.#nodeAt(parent)?.route;
      if (found === undefined || !isDirectory(found)) {
        throw new Error(`Route "${spec.path}" has no directory route "${parent}" above it to list it`);
      }
    }
  }

  /**
   * Resolves a raw request path (no query). Directories match with or without the trailing slash
   * (Node's detection asks for `/computeMetadata/v1/instance`); values only without it. Throws
   * `URIError` on a malformed percent-encoding, which the caller reports as a bad request.
   */
  match(rawPath: string): RouteMatch<R> | undefined {
    if (!rawPath.startsWith("/")) return undefined;
    const segments = rawPath.slice(1).split("/");
    const trailingSlash = segments.at(-1) === "";
    if (trailingSlash) segments.pop();
    let node = this.#root;
    const params: Record<string, string> = {};
    for (const raw of segments) {
      // Most paths hold no escape; skipping the decode keeps the token route's hot path short.
      const segment = raw.includes("%") ? decodeURIComponent(raw) : raw;
      const next = node.children.get(segment);
      if (next !== undefined) {
        node = next;
      } else if (node.param !== undefined && segment !== "") {
        params[node.param.name] = segment;
        node = node.param.node;
      } else {
        return undefined;
      }
    }
    const route = node.route;
    if (route === undefined || (trailingSlash && !isDirectory(route))) return undefined;
    return { route, params };
  }

  /**
   * The children of a directory, in table order, with parameter edges expanded to the values
   * `paramValues` gives (e.g. the service accounts). Directory names end with `/`, as GCE lists them.
   */
  entries(
    directory: R,
    params: Readonly<Record<string, string>>,
    paramValues: (name: string) => readonly string[],
  ): DirectoryEntry<R>[] {
    const node = this.#nodeAt(directory.path);
    if (node === undefined || !isDirectory(directory))
      throw new Error(`"${directory.path}" is not a directory route`);
    const entries: DirectoryEntry<R>[] = [];
    for (const [segment, child] of node.children) entries.push(entryOf(segment, false, child, params));
    if (node.param !== undefined) {
      const { name, node: child } = node.param;
      for (const value of paramValues(name)) {
        entries.push(entryOf(value, true, child, { ...params, [name]: value }));
      }
    }
    return entries;
  }

  #insert(spec: R): void {
    if (!spec.path.startsWith("/")) throw new Error(`Route "${spec.path}" must start with "/"`);
    if (spec.path.endsWith("/") !== isDirectory(spec)) {
      throw new Error(`Route "${spec.path}": directory paths, and only they, end with "/"`);
    }
    let node = this.#root;
    for (const segment of segmentsOf(spec.path)) {
      const param = paramSegment.exec(segment)?.[1];
      if (param !== undefined) {
        if (node.children.size > 0) throw conflict(spec, "a parameter next to fixed segments");
        if (node.param !== undefined && node.param.name !== param) {
          throw conflict(spec, `parameter {${param}} next to {${node.param.name}}`);
        }
        node.param ??= { name: param, node: { children: new Map() } };
        node = node.param.node;
      } else if (staticSegment.test(segment)) {
        if (node.param !== undefined) throw conflict(spec, "a fixed segment next to a parameter");
        let next = node.children.get(segment);
        if (next === undefined) {
          next = { children: new Map() };
          node.children.set(segment, next);
        }
        node = next;
      } else {
        throw new Error(`Route "${spec.path}": segment "${segment}" is neither a name nor a {parameter}`);
      }
    }
    if (node.route !== undefined) {
      throw conflict(spec, `the same path as route "${node.route.id}" (${node.route.path})`);
    }
    node.route = spec;
  }

  #nodeAt(path: string): RouteNode<R> | undefined {
    let node: RouteNode<R> | undefined = this.#root;
    for (const segment of segmentsOf(path)) {
      node = paramSegment.test(segment) ? node?.param?.node : node?.children.get(segment);
    }
    return node;
  }
}

function entryOf<R extends RouteSpec>(
  segment: string,
  isParameter: boolean,
  node: RouteNode<R>,
  params: Readonly<Record<string, string>>,
): DirectoryEntry<R> {
  // Every node has a route: the constructor requires a directory route above each route.
  const route = node.route;
  if (route === undefined) throw new Error(`Metadata route tree has a node without a route at "${segment}"`);
  return { name: isDirectory(route) ? `${segment}/` : segment, isParameter, route, params };
}

/** Segments of a table path; the trailing slash of a directory adds none. */
function segmentsOf(path: string): string[] {
  const trimmed = path.slice(1).replace(/\/$/, "");
  return trimmed === "" ? [] : trimmed.split("/");
}

/** The directory path one level up, or undefined for the root. */
function parentPath(path: string): string | undefined {
  const segments = segmentsOf(path);
  if (segments.length === 0) return undefined;
  return `/${segments
    .slice(0, -1)
    .map((s) => `${s}/`)
    .join("")}`;
}

function conflict(spec: RouteSpec, what: string): Error {
  return new Error(`Route "${spec.id}" (${spec.path}) conflicts with the route table: ${what}`);
}

/** The metadata server's table, built (and so checked) when the module loads. */
export const gceRoutes = new RouteTable<GceRoute>(gceRouteSpecs);
