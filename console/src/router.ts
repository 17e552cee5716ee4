// A hash router: the console is static files under /dashboard/, so routes live after "#".
import { useEffect, useState } from "preact/hooks";

export function currentPath(): string {
  return location.hash.replace(/^#/, "") || "/";
}

export function navigate(path: string): void {
  location.hash = path;
}

export function useRoute(): string {
  const [path, setPath] = useState(currentPath());
  useEffect(() => {
    const on = () => setPath(currentPath());
    addEventListener("hashchange", on);
    return () => removeEventListener("hashchange", on);
  }, []);
  return path;
}

/** Matches "/rules/:id" against a path; the params, decoded, or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split("/");
  const a = path.split("?")[0].split("/");
  if (p.length !== a.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(":")) out[p[i].slice(1)] = decodeURIComponent(a[i]);
    else if (p[i] !== a[i]) return null;
  }
  return out;
}

export const enc = encodeURIComponent;
