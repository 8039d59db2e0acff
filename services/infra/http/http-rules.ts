/**
 * REST routes derived from the `google.api.http` rules of the proto: the HTTP
 * method, a path template with `{field}` variables, and where the body goes.
 */
import { type DescMethod, type DescService, getOption, hasOption } from '@bufbuild/protobuf';
import { http } from '../../gen/google/api/annotations_pb.js';

export interface HttpRoute {
  verb: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** The template as written, e.g. `/v1/events`. */
  template: string;
  /** Matches a request path; named groups are the path variables. */
  pattern: RegExp;
  /** Field paths bound from the path, in template order. */
  pathFields: string[];
  /** `*` (the whole request), a field name (that field), or '' (no body: query parameters). */
  body: string;
  service: DescService;
  method: DescMethod;
}

/** Every unary method of `services` that has an http rule (additional bindings included). */
export function httpRoutes(services: readonly DescService[]): HttpRoute[] {
  const routes: HttpRoute[] = [];
  for (const service of services) {
    for (const method of service.methods) {
      if (method.methodKind !== 'unary' || !hasOption(method, http)) continue;
      const rule = getOption(method, http);
      for (const r of [rule, ...rule.additionalBindings]) {
        const { case: verb, value } = r.pattern;
        if (verb === undefined || verb === 'custom' || typeof value !== 'string') continue;
        const { pattern, pathFields } = compileTemplate(value);
        routes.push({
          verb: verb.toUpperCase() as HttpRoute['verb'],
          template: value,
          pattern,
          pathFields,
          body: r.body,
          service,
          method,
        });
      }
    }
  }
  return routes;
}

/** `/v1/things/{name}:do` → a RegExp; a variable matches one path segment. */
function compileTemplate(template: string): { pattern: RegExp; pathFields: string[] } {
  const pathFields: string[] = [];
  const source = template.replace(
    /\{([a-z_][a-z0-9_.]*)(=[^}]*)?\}|[.*+?^$()|[\]\\]/g,
    (match, field: string | undefined) => {
      if (field === undefined) return `\\${match}`;
      pathFields.push(field);
      return '([^/:]+)';
    },
  );
  return { pattern: new RegExp(`^${source}$`), pathFields };
}
