/**
 * qmp-shell's command syntax: `command key=value key.sub=value …`, values read as JSON
 * when they parse (numbers, true/false, null, arrays, objects) and as strings otherwise;
 * a line starting with `{` is a raw QMP request.
 */
export type ParsedLine = { execute: string; arguments?: Record<string, unknown> } | { error: string } | { empty: true };

function setPath(obj: Record<string, unknown>, path: string[], value: unknown): string | undefined {
  let o = obj;
  for (const k of path.slice(0, -1)) {
    const next = o[k];
    if (next === undefined) o = o[k] = {} as Record<string, unknown>;
    else if (typeof next === 'object' && next !== null && !Array.isArray(next)) o = next as Record<string, unknown>;
    else return `'${k}' is not an object`;
  }
  const last = path[path.length - 1]!;
  if (last in o) return `duplicate key '${path.join('.')}'`;
  o[last] = value;
  return undefined;
}

export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    // 'single quoted' text is a string without its quotes.
    return /^'.*'$/s.test(text) ? text.slice(1, -1) : text;
  }
}

export function parseLine(line: string): ParsedLine {
  const s = line.trim();
  if (!s) return { empty: true };
  if (s.startsWith('{')) {
    try {
      const req = JSON.parse(s);
      if (typeof req.execute !== 'string') return { error: 'a raw request needs "execute"' };
      return { execute: req.execute, ...(req.arguments ? { arguments: req.arguments } : {}) };
    } catch (e) {
      return { error: `bad JSON: ${(e as Error).message}` };
    }
  }
  // Tokens as qmp-shell splits them: whitespace separates, quotes group.
  const [cmd, ...rest] = s.match(/(?:[^\s"']|"(?:\\.|[^"])*"|'(?:\\.|[^'])*')+/g) ?? [];
  const args: Record<string, unknown> = {};
  for (const tok of rest) {
    const eq = tok.indexOf('=');
    if (eq <= 0) return { error: `expected key=value, got '${tok}'` };
    const err = setPath(args, tok.slice(0, eq).split('.'), parseValue(tok.slice(eq + 1)));
    if (err) return { error: err };
  }
  return { execute: cmd!, ...(rest.length ? { arguments: args } : {}) };
}
