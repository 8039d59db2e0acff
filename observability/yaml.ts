/**
 * A small YAML writer for the files rendered here (Prometheus rule files and configurations):
 * maps, lists, strings, numbers and booleans. Strings with line breaks become literal blocks
 * (`|-`), so that PromQL keeps its layout; other strings are written plain when YAML would
 * read them back as the same string, else quoted as Biome formats YAML (double quotes, with
 * JSON's escapes, which are valid YAML; single quotes when that spares escaping double quotes), so
 * that the rendered files pass `biome check` as they are.
 */

type Yaml = string | number | boolean | readonly Yaml[] | { readonly [key: string]: Yaml | undefined };

/** `value` as a YAML document, ending with a newline. */
export function toYaml(value: Yaml): string {
  return `${lines(value, 0).join('\n')}\n`;
}

const PLAIN = /^[A-Za-z0-9_./][A-Za-z0-9_.:/ +-]*$/;
const RESERVED = /^(?:true|false|null|yes|no|on|off|y|n|~)$/i;
const NUMBER_LIKE = /^[-+]?(?:\.?[0-9][0-9_.]*(?:[eE][-+]?[0-9]+)?|\.inf|\.nan)$/i;

function scalar(value: string | number | boolean): string {
  if (typeof value !== 'string') return String(value);
  const plain =
    PLAIN.test(value) &&
    !RESERVED.test(value) &&
    !NUMBER_LIKE.test(value) &&
    !value.endsWith(' ') &&
    !value.includes(': ') &&
    !value.includes(' #');
  if (plain) return value;
  // Double quotes, as Biome's formatter writes YAML, unless the string holds some (PromQL's label
  // values) and single quotes can hold it as it is.
  if (value.includes('"') && !value.includes("'") && [...value].every((c) => c >= ' ')) return `'${value}'`;
  return JSON.stringify(value);
}

function isMultiline(value: Yaml): value is string {
  return typeof value === 'string' && value.includes('\n');
}

function isScalar(value: Yaml): value is string | number | boolean {
  return typeof value !== 'object';
}

function block(text: string, indent: number): string[] {
  const pad = ' '.repeat(indent);
  return ['|-', ...text.split('\n').map((line) => (line === '' ? '' : pad + line))];
}

/** The lines of `value` at `indent` spaces; a scalar is a single line without indentation. */
function lines(value: Yaml, indent: number): string[] {
  const pad = ' '.repeat(indent);
  if (isScalar(value)) return [scalar(value)];
  if (Array.isArray(value)) {
    if (value.length === 0) return [`${pad}[]`];
    const out: string[] = [];
    for (const item of value as readonly Yaml[]) {
      if (isMultiline(item)) {
        const [head, ...rest] = block(item, indent + 2);
        out.push(`${pad}- ${head}`, ...rest);
      } else if (isScalar(item)) {
        out.push(`${pad}- ${scalar(item)}`);
      } else {
        const inner = lines(item, indent + 2);
        out.push(`${pad}- ${inner[0]!.slice(indent + 2)}`, ...inner.slice(1));
      }
    }
    return out;
  }
  const entries = Object.entries(value).filter((e): e is [string, Yaml] => e[1] !== undefined);
  if (entries.length === 0) return [`${pad}{}`];
  const out: string[] = [];
  for (const [key, item] of entries) {
    if (isMultiline(item)) {
      const [head, ...rest] = block(item, indent + 2);
      out.push(`${pad}${scalar(key)}: ${head}`, ...rest);
    } else if (isScalar(item)) {
      out.push(`${pad}${scalar(key)}: ${scalar(item)}`);
    } else if (Array.isArray(item) && item.length === 0) {
      out.push(`${pad}${scalar(key)}: []`);
    } else {
      out.push(`${pad}${scalar(key)}:`, ...lines(item, Array.isArray(item) ? indent + 2 : indent + 2));
    }
  }
  return out;
}
