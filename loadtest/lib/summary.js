/**
 * End-of-test summaries: a text table on stdout, and the full k6 summary as JSON at SUMMARY_JSON
 * (when set) for a benchmark harness, with a `tally` block saying which script ran with what.
 */

/**
 * A `handleSummary` for `script`; `settings` (rate, duration, batch size, …) is copied into the
 * JSON's `tally` block.
 */
export function summaryHandler(script, config, settings) {
  return (data) => {
    const out = { stdout: textSummary(script, settings, data) };
    if (config.summaryJson) {
      const tally = {
        script,
        settings,
        target: { http: config.httpUrl, grpc: config.grpcAddr },
        thresholdsOk: thresholdsOk(data),
      };
      out[config.summaryJson] = `${JSON.stringify({ tally, ...data }, null, 2)}\n`;
    }
    return out;
  };
}

/** True when every threshold of the run passed. */
export function thresholdsOk(data) {
  return Object.values(data.metrics).every((m) => Object.values(m.thresholds ?? {}).every((t) => t.ok));
}

function textSummary(script, settings, data) {
  const lines = [];
  const seconds = (data.state?.testRunDurationMs ?? 0) / 1000;
  const described = Object.entries(settings)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  lines.push('', `tally load test ${script} (${seconds.toFixed(1)} s): ${described}`, '');

  const names = Object.keys(data.metrics).sort();
  const width = Math.max(...names.map((n) => n.length)) + 2;
  for (const name of names) {
    const metric = data.metrics[name];
    lines.push(`  ${name.padEnd(width, '.')} ${formatValues(metric)}`);
    for (const [expression, result] of Object.entries(metric.thresholds ?? {}))
      lines.push(`      ${result.ok ? 'ok  ' : 'FAIL'} threshold ${expression}`);
  }

  const failedChecks = collectChecks(data.root_group).filter((c) => c.fails > 0);
  if (failedChecks.length > 0) {
    lines.push('', '  failed checks:');
    for (const c of failedChecks) lines.push(`    ${c.name}: ${c.fails} of ${c.passes + c.fails} failed`);
  }
  lines.push('', `  thresholds: ${thresholdsOk(data) ? 'all passed' : 'SOME FAILED'}`, '');
  return `${lines.join('\n')}\n`;
}

function collectChecks(group) {
  if (!group) return [];
  const checks = Array.isArray(group.checks) ? group.checks : Object.values(group.checks ?? {});
  const groups = Array.isArray(group.groups) ? group.groups : Object.values(group.groups ?? {});
  return [...checks, ...groups.flatMap(collectChecks)];
}

function formatValues(metric) {
  const v = metric.values;
  const unit = (x) => formatUnit(metric.contains, x);
  switch (metric.type) {
    case 'trend':
      return ['avg', 'med', 'p(90)', 'p(95)', 'p(99)', 'max']
        .filter((k) => v[k] !== undefined)
        .map((k) => `${k}=${unit(v[k])}`)
        .join(' ');
    case 'counter':
      return `${unit(v.count)} (${unit(v.rate)}/s)`;
    case 'rate':
      return `${(v.rate * 100).toFixed(2)}% (${v.passes} of ${v.passes + v.fails})`;
    default:
      return `${unit(v.value)} (min ${unit(v.min)}, max ${unit(v.max)})`;
  }
}

function formatUnit(contains, x) {
  if (x === undefined || x === null) return '-';
  if (contains === 'time') return x >= 1000 ? `${(x / 1000).toFixed(2)}s` : `${x.toFixed(2)}ms`;
  if (contains === 'data') {
    if (x >= 1e6) return `${(x / 1e6).toFixed(1)}MB`;
    if (x >= 1e3) return `${(x / 1e3).toFixed(1)}kB`;
    return `${Math.round(x)}B`;
  }
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}
