/** QEMU version triples as announced in the greeting, compared numerically. */
export interface Version {
  major: number;
  minor: number;
  micro: number;
}

export function parseVersion(s: string): Version {
  const m = /^(\d+)\.(\d+)\.(\d+)$/.exec(s);
  if (!m) throw new Error(`not a version triple: ${s}`);
  return { major: Number(m[1]), minor: Number(m[2]), micro: Number(m[3]) };
}

export function compareVersion(a: Version, b: Version): number {
  return a.major - b.major || a.minor - b.minor || a.micro - b.micro;
}

/** True when `v` lies in [since, before). */
export function inRange(v: Version, since?: string, before?: string): boolean {
  if (since && compareVersion(v, parseVersion(since)) < 0) return false;
  if (before && compareVersion(v, parseVersion(before)) >= 0) return false;
  return true;
}

const parsed = new Map<string, Version>();

/** True when `v` is at least version `s` (parsed once per distinct string). */
export function atLeast(v: Version, s: string): boolean {
  let w = parsed.get(s);
  if (!w) {
    w = parseVersion(s);
    parsed.set(s, w);
  }
  return compareVersion(v, w) >= 0;
}
