/**
 * What Grafana does to a PostgreSQL panel's SQL before it runs it, for the tests that run the
 * dashboards' SQL against a real database. First the variables, as Grafana's SQL data sources
 * interpolate them:
 *
 *   $name, ${name}   a multi-value or include-all variable (given as an array): each value quoted
 *                    as a string literal ('' for a quote), joined by commas — `type IN ($type)`
 *                    becomes `type IN ('like','view')`; a single-value variable (a string): the
 *                    value with its quotes doubled, unquoted
 *
 * then the macros of the PostgreSQL data source that Tally's dashboards use, as its backend
 * expands them (Grafana's pkg/tsdb/grafana-postgresql-datasource/macros.go):
 *
 *   $__timeFilter(col)   col BETWEEN '<from>' AND '<to>'   (RFC 3339 UTC, fraction only when not 0)
 *   $__timeFrom()        '<from>'
 *   $__timeTo()          '<to>'
 *   $__time(col)         col AS "time"
 *
 * Anything left that looks like a variable or macro (an unknown name, another macro) is an
 * error, so that a query using something this does not reproduce fails its test instead of
 * passing on text Grafana would have changed.
 */

export interface GrafanaSqlContext {
  /** The dashboard's time range. */
  from: Date;
  to: Date;
  /** Variable values: an array for a multi-value or include-all variable, a string otherwise. */
  variables: Readonly<Record<string, string | readonly string[]>>;
}

/** Go's time.RFC3339Nano of a UTC instant: no fraction when it is zero, no trailing zeros. */
function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.?0+Z$/, 'Z');
}

const quoteLiteral = (value: string) => `'${value.replaceAll("'", "''")}'`;

function variableValue(name: string, context: GrafanaSqlContext): string {
  const value = context.variables[name];
  if (value === undefined) throw new Error(`$${name}: no such variable`);
  if (typeof value === 'string') return value.replaceAll("'", "''");
  if (value.length === 0) throw new Error(`$${name}: no value selected`);
  return value.map(quoteLiteral).join(',');
}

function macro(name: string, args: string[], context: GrafanaSqlContext): string {
  const column = () => {
    if (!args[0]) throw new Error(`$__${name}: missing time column argument`);
    return args[0];
  };
  switch (name) {
    case 'timeFilter':
      return `${column()} BETWEEN '${rfc3339(context.from)}' AND '${rfc3339(context.to)}'`;
    case 'timeFrom':
      return `'${rfc3339(context.from)}'`;
    case 'timeTo':
      return `'${rfc3339(context.to)}'`;
    case 'time':
      return `${column()} AS "time"`;
    default:
      throw new Error(`$__${name}: a macro this substitution does not reproduce`);
  }
}

/** `sql` as Grafana's PostgreSQL data source would run it in `context`; throws on anything it cannot substitute. */
export function interpolateGrafanaSql(sql: string, context: GrafanaSqlContext): string {
  const withVariables = sql.replace(
    /\$(?!__)(\w+)|\$\{(?!__)(\w+)\}/g,
    (_, bare: string | undefined, braced: string | undefined) => variableValue((bare ?? braced)!, context),
  );
  const expanded = withVariables.replace(/\$__(\w+)\(([^)]*)\)/g, (_, name: string, args: string) =>
    macro(
      name,
      args.split(',').map((a) => a.trim()),
      context,
    ),
  );
  const left = /\$\{?\w+/.exec(expanded);
  if (left) throw new Error(`not substituted: ${left[0]} in ${expanded}`);
  return expanded;
}
